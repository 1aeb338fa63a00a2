"""Calibration from scratch: does a stated probability match how often the event happens?

Read top to bottom.  Everything is measured on pairs (confidence, outcome): a probability in [0, 1]
and whether its event happened (1.0 or 0.0).  The usual event is "the top class is right" (top-label
calibration); "the label is class k" gives the class-wise view.  Then: the bins of a reliability
diagram, the calibration error read off them, the Brier score's decomposition, the errors that
perfectly calibrated forecasts would show (is a measured error more than noise?), and three fixes:
temperature scaling (one number fitted on held-out data), histogram binning (a lookup table from
confidence to observed frequency) and focal loss (a training objective).

Equal-width bin m of M holds confidences in ((m-1)/M, m/M] (the first also holds 0).  The edges are
rounded to the confidences' own dtype before comparing, so a float32 0.6 lands in the bin that ends
at 0.6, as it would on paper; sums are then accumulated in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional

from helpers.config import one_thread
from helpers.metrics import check_logits
from helpers.validation import check_choice, check_float, check_int, check_shape

SCHEMES = ("equal-width", "equal-mass")


def check_forecasts(confidence: torch.Tensor, outcome: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``confidence`` (n,) holds probabilities and ``outcome`` (n,) zeros and ones."""
    if confidence.dim() != 1 or len(confidence) == 0 or outcome.shape != confidence.shape:
        raise ValueError(f"confidence and outcome must have the same shape (n,), n >= 1, got "
                         f"{tuple(confidence.shape)} and {tuple(outcome.shape)}")
    if not confidence.is_floating_point() or not ((confidence >= 0) & (confidence <= 1)).all():
        raise ValueError("confidence must hold floating-point probabilities in [0, 1]")
    if not ((outcome == 0) | (outcome == 1)).all():
        raise ValueError("outcome must hold 0 (the event did not happen) or 1 (it did)")


def top_label(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The top class's probability (the confidence) and whether the top class is right (1.0 or 0.0)."""
    check_shape("probs", probs, (None, None))
    check_shape("labels", labels, (len(probs),))
    if len(labels) == 0 or labels.is_floating_point() or not 0 <= labels.min() <= labels.max() < probs.shape[1]:
        raise ValueError(f"labels must hold at least one class index, each in [0, {probs.shape[1] - 1}]")
    if not torch.isfinite(probs).all() or probs.min() < 0 or (probs.double().sum(-1) - 1).abs().max() > 1e-4:
        raise ValueError("probs must be rows of probabilities that sum to 1 (pass softmax(logits), not logits)")
    confidence, prediction = probs.detach().max(-1)                         # (n,), (n,)
    return confidence, (prediction == labels).double()


# ----------------------------------------------------------------------------- measuring
def bin_indices(confidence: torch.Tensor, n_bins: int = 15, scheme: str = "equal-width") -> torch.Tensor:
    """The bin (0 .. n_bins-1) of each confidence: equal-width ((m-1)/M, m/M], or equal-mass (by rank)."""
    check_int("n_bins", n_bins, 1, 1000)
    check_choice("scheme", scheme, SCHEMES)
    if scheme == "equal-width":
        inner_edges = (torch.arange(1, n_bins, dtype=torch.float64) / n_bins).to(confidence)   # (M-1,)
        return torch.bucketize(confidence.contiguous(), inner_edges, right=False)            # (n,)
    rank = torch.empty(len(confidence), dtype=torch.long, device=confidence.device)
    rank[confidence.argsort(stable=True)] = torch.arange(len(confidence), device=confidence.device)
    return rank * n_bins // len(confidence)                                # (n,) bins of equal size (+-1)


@dataclass(frozen=True)
class ReliabilityBins:
    """What a reliability diagram draws, per bin (nan where a bin is empty)."""

    count: torch.Tensor        # (M,) |B_m|, examples in the bin
    confidence: torch.Tensor   # (M,) conf(B_m), their mean confidence
    frequency: torch.Tensor    # (M,) acc(B_m), how often their event happened


def reliability_bins(confidence: torch.Tensor, outcome: torch.Tensor, n_bins: int = 15,
                     scheme: str = "equal-width") -> ReliabilityBins:
    """Group the forecasts by confidence; in each group take the mean confidence and the event's frequency."""
    check_forecasts(confidence, outcome)
    bin_of = bin_indices(confidence, n_bins, scheme)                        # (n,)
    count = torch.bincount(bin_of, minlength=n_bins).double()               # (M,)
    mean_confidence = torch.bincount(bin_of, confidence.double(), minlength=n_bins) / count   # 0/0 = nan
    frequency = torch.bincount(bin_of, outcome.double(), minlength=n_bins) / count
    return ReliabilityBins(count, mean_confidence, frequency)


def calibration_error(confidence: torch.Tensor, outcome: torch.Tensor, n_bins: int = 15,
                      scheme: str = "equal-width") -> float:
    """ECE = sum over bins of |B_m| / n * |acc(B_m) - conf(B_m)|: the average gap to the diagonal."""
    bins = reliability_bins(confidence, outcome, n_bins, scheme)            # (M,) each
    gaps = (bins.frequency - bins.confidence).abs()                         # (M,) nan where empty
    return float((bins.count * gaps).nansum() / len(confidence))


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15,
                               scheme: str = "equal-width") -> float:
    """Top-label ECE (Guo et al. 2017): the event is "the top class is right", its probability the confidence."""
    confidence, correct = top_label(probs, labels)                          # (n,), (n,)
    return calibration_error(confidence, correct, n_bins, scheme)


def classwise_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Class-wise ECE (Kull et al. 2019): for every class k the event "the label is k" with probability
    p_k, over all examples; the K calibration errors averaged."""
    top_label(probs, labels)                                                # validates probs and labels
    is_class = functional.one_hot(labels, probs.shape[1]).double()          # (n, K)
    errors = [calibration_error(probs[:, k], is_class[:, k], n_bins) for k in range(probs.shape[1])]
    return sum(errors) / len(errors)


def brier_decomposition(confidence: torch.Tensor, outcome: torch.Tensor, n_bins: int = 15) -> dict[str, float]:
    """Brier score mean (confidence - outcome)^2 = reliability - resolution + uncertainty (Murphy 1973).

    Reliability is the squared gap to the diagonal (small is good); resolution, how far the binned
    frequencies move from the base rate (large is good: the forecasts tell cases apart); uncertainty,
    the base rate's own variance.  Exact when each bin holds one confidence value; for a multi-class
    Brier score add the parts of the events "the label is k" over k.
    """
    bins = reliability_bins(confidence, outcome, n_bins)                    # (M,) each
    weight = bins.count / len(confidence)                                   # (M,)
    base_rate = outcome.double().mean()
    return {"brier": float(((confidence.double() - outcome) ** 2).mean()),
            "reliability": float((weight * (bins.confidence - bins.frequency) ** 2).nansum()),
            "resolution": float((weight * (bins.frequency - base_rate) ** 2).nansum()),
            "uncertainty": float(base_rate * (1 - base_rate))}


# ----------------------------------------------------------------------------- is it more than noise?
def resampled_errors(confidence: torch.Tensor, n_draws: int = 200, n_bins: int = 15, scheme: str = "equal-width",
                     seed: int = 0) -> torch.Tensor:
    """The calibration error of ``n_draws`` outcome vectors drawn from the forecasts themselves,
    outcome_i ~ Bernoulli(confidence_i): what a perfectly calibrated forecaster with exactly these
    confidences would measure (consistency resampling, Broecker and Smith 2007).

    All draws at once: a bin's |B_m| * |acc - conf| is the absolute sum of (outcome - confidence) in it.
    """
    check_forecasts(confidence, torch.zeros_like(confidence))
    check_int("n_draws", n_draws, 1, 50_000_000 // len(confidence))
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    bin_of = bin_indices(confidence, n_bins, scheme).cpu()                  # (n,), checks n_bins and scheme
    confidence = confidence.detach().double().cpu()                         # (n,)
    outcomes = torch.bernoulli(confidence.expand(n_draws, -1), generator=generator)   # (D, n)
    slot = torch.arange(n_draws).unsqueeze(1) * n_bins + bin_of             # (D, n): one slot per draw and bin
    sums = torch.bincount(slot.flatten(), (outcomes - confidence).flatten(), minlength=n_draws * n_bins)
    return sums.view(n_draws, n_bins).abs().sum(1) / len(confidence)       # (D,) one ECE per draw


# ----------------------------------------------------------------------------- fixing
def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The one T > 0 that minimises the NLL of softmax(logits / T) (Guo et al. 2017); fit it on validation.

    Optimising log T keeps T positive without constraints; argmax(logits / T) = argmax(logits).
    """
    check_logits(logits, labels)
    check_int("max_iter", max_iter, 1, 10_000)
    if not torch.isfinite(logits).all():
        raise ValueError("logits must be finite")
    logits = logits.detach().double()                                       # (n, K)
    log_t = torch.zeros(1, dtype=torch.float64, device=logits.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def nll() -> torch.Tensor:
        optimizer.zero_grad()
        loss = functional.cross_entropy(logits / log_t.exp(), labels)      # mean of -log softmax(z / T)[y]
        loss.backward()
        return loss

    with one_thread():
        optimizer.step(nll)
    return float(log_t.detach().exp())


@dataclass(frozen=True)
class HistogramBinning:
    """Histogram binning (Zadrozny and Elkan 2001): a lookup table from a confidence's bin to the
    frequency its event had in that bin on validation data."""

    inner_edges: torch.Tensor  # (M-1,) edges between equal-mass bins of the validation confidences
    frequency: torch.Tensor    # (M,) the new confidence for every forecast that falls in bin m

    def __call__(self, confidence: torch.Tensor) -> torch.Tensor:
        """Every confidence replaced by its bin's validation frequency."""
        return self.frequency[torch.bucketize(confidence.double().contiguous(), self.inner_edges)]   # (n,)


def fit_histogram_binning(confidence: torch.Tensor, outcome: torch.Tensor, n_bins: int = 10) -> HistogramBinning:
    """Cut the validation confidences into ``n_bins`` bins of equal size; record each bin's frequency.

    Frequencies are Laplace-smoothed, (events + 1) / (count + 2), so no bin promises exactly 0 or 1.
    """
    check_forecasts(confidence, outcome)
    check_int("n_bins", n_bins, 1, len(confidence))
    ordered = confidence.double().sort().values                             # (n,)
    cut = torch.arange(1, n_bins, device=confidence.device) * len(ordered) // n_bins   # (M-1,) ranks
    inner_edges = (ordered[cut - 1] + ordered[cut]) / 2                     # midway between neighbours
    bin_of = torch.bucketize(confidence.double().contiguous(), inner_edges)    # (n,)
    events = torch.bincount(bin_of, outcome.double(), minlength=n_bins)     # (M,)
    count = torch.bincount(bin_of, minlength=n_bins)                        # (M,)
    return HistogramBinning(inner_edges, (events + 1) / (count + 2))


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float = 3.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017), the batch mean of -(1 - p_y)^gamma * log p_y; gamma = 0 is cross-entropy.

    Mukhoti et al. (2020): down-weighting the examples already right with confidence keeps the network
    from pushing their logits ever larger, the road to over-confidence.
    """
    check_logits(logits, labels)
    check_float("gamma", gamma, 0.0, 20.0)
    log_p = functional.log_softmax(logits, -1).gather(1, labels.unsqueeze(1)).squeeze(1)   # (n,) log p_y
    return (-((1 - log_p.exp()) ** gamma) * log_p).mean()
