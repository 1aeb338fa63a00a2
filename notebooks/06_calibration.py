# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Accurate but poorly calibrated: measuring, fixing and distrusting calibration
#
# A classifier gives you two things: a predicted class and a probability. Accuracy grades only the
# first. Whenever a threshold or a cost is attached to the probability (flag a transaction when the
# fraud score is above 0.9, send a scan to a doctor when the model is unsure, rank search results,
# price a risk) the second one has to mean what it says: of all the cases scored 0.8, about 80% should
# turn out right. A model with that property is **calibrated**. Modern networks are often accurate and
# yet systematically over-confident (Guo et al. 2017). An interviewer who asks "the model is accurate but
# poorly calibrated, what do you do?" wants to hear how you would *measure* it, *fix* it without hurting
# accuracy, where the fix *stops working*, and *why it matters* for the decision downstream.
#
# **Interview questions this notebook answers**
# 1. What does "calibrated" mean, and how do you measure it (reliability diagram, ECE)?
# 2. Why are modern networks over-confident, and which training choices make it better or worse
#    (training length, width, weight decay, label smoothing, focal loss)?
# 3. How does temperature scaling work, why does it leave accuracy unchanged, and what can one
#    temperature not fix (histogram binning, distribution shift, segments)?
# 4. What does ECE not see (sharpness, class-wise calibration), and how far can you trust an ECE number?

# %%
from helpers import setup

cfg = setup("06_calibration")

# %%
from functools import partial

import numpy as np
import torch
from IPython.display import Markdown, display

from helpers import data as datasets
from helpers import tables
from helpers.claims import claim
from helpers.config import pick
from helpers.experiments import nb06_calibration as lab
from helpers.experiments import nb06_calibration_figures as figures
from helpers.scratch import calibration as scratch
from helpers.source import show_source
from helpers.widgets import Choice, Slider, explore

# %% [markdown]
# All sizes live in the next cell. `quick` trains smaller and shorter models; `full` (the default)
# trains a wider network for longer and repeats the noise experiments more often. Every claim below holds
# at both scales for seeds 0–4, and the ranges quoted beside the claims were measured that way.

# %%
N_TRAIN = 1200                          # a small training set, so the wide MLP over-fits
WIDTH = pick(quick=256, full=512)       # hidden units per layer of the over-confident MLP
EPOCHS = pick(quick=60, full=100)       # trained long, well past the best validation loss
NARROW = 32                             # width of the low-capacity comparison
WEIGHT_DECAY = 1e-2                     # Adam's L2 penalty on the weights
LABEL_SMOOTHING = 0.1
FOCAL_GAMMA = 3.0                       # Mukhoti et al. (2020) use gamma = 3
DIGITS = dict(width=64, epochs=pick(quick=30, full=60), lr=3e-3)
N_BINS = 15                             # Guo et al. (2017) use 15 equal-width bins
BINNING_BINS = 10                       # histogram binning: 10 equal-mass bins of validation forecasts
THRESHOLD = 0.8                         # the decision rule: act only when confidence >= 0.8
REVIEW_COSTS = [0.1, 0.2, 0.3, 0.4]     # cost of a human review, in units of the cost of a wrong action
NOISE_LEVELS = [0.0, 0.25, 0.5, 1.0]    # Gaussian noise added to the inputs (standard deviations)
SMALL_TEST = 200                        # a small test set for the ECE noise experiments
N_BOOT = pick(quick=500, full=2000)
DEBIAS_REPEATS = pick(quick=30, full=100)
NOISE_SIZES = pick(quick=[100, 300, 1000, 3000, 10_000], full=[100, 300, 1000, 3000, 10_000, 100_000])
NOISE_REPEATS = pick(quick=5, full=20)

# %% [markdown]
# ## 1. What "calibrated" means, and how to measure it
#
# **Idea.** Take every prediction the model made with confidence near 0.8 and check how many were
# right. If about 80% were, the model is calibrated at 0.8. A *reliability diagram* does this for every
# confidence level at once: it bins predictions by confidence and plots each bin's accuracy against its
# mean confidence. A calibrated model sits on the diagonal; bars *below* it mean over-confidence.
#
# **Math.** With top-class confidence $\hat p$ and prediction $\hat y$, perfect calibration is
# $P(\hat y = y \mid \hat p = p) = p$ for all $p$. Split $[0, 1]$ into $M$ bins
# $B_m = \left(\tfrac{m-1}{M}, \tfrac{m}{M}\right]$; then
#
# $$\text{ECE} = \sum_{m=1}^{M} \frac{|B_m|}{n}\,\bigl|\text{acc}(B_m) - \text{conf}(B_m)\bigr|.$$
#
# ECE is the average gap to the diagonal, weighted by how many predictions fall in each bin. The
# *equal-mass* variant picks bin edges so each bin holds the same number of predictions (Nixon et al.
# 2019). Two proper scoring rules complete the picture: the negative log-likelihood
# $-\frac1n\sum_i \log p_i(y_i)$ and the Brier score $\frac1n\sum_i\sum_k (p_{ik} - [y_i = k])^2$
# (Brier 1950). Both reward calibration *and* sharpness, and both are minimised only by the true
# probabilities; neither needs bins.
#
# **One identity worth knowing.** $|B_m|\,(\text{acc}(B_m) - \text{conf}(B_m))$ is the bin's sum of
# (correct − confidence), so by the triangle inequality
# $\text{ECE} \ge \bigl|\tfrac1n\sum_i(\text{correct}_i - \hat p_i)\bigr| = |\text{accuracy} - \text{mean confidence}|$,
# with equality when every bin errs in the same direction. A model that is over-confident everywhere has an
# ECE equal to its confidence gap, whatever the bins.
#
# The code measures everything on pairs *(confidence, outcome)*: a probability and whether its event
# happened. For the usual top-label ECE the event is "the top class is right". A confidence exactly on an
# edge (0.6 with 5 bins) belongs to the bin that *ends* there; the edges are rounded to the
# probabilities' own dtype, so a float32 0.6 (stored as 0.6000000238) behaves as on paper. The whole
# implementation:

# %%
show_source(scratch.bin_indices, scratch.reliability_bins, scratch.calibration_error,
            scratch.expected_calibration_error)

# %% [markdown]
# ## 2. An accurate but over-confident network
#
# **Idea.** Cross-entropy keeps falling after every training example is classified correctly: the
# network can always lower it further by making its logits larger, which pushes confidence towards 1.
# On examples it has *not* seen, that extra confidence is unearned. We make this happen on purpose: a
# wide two-layer MLP (no dropout, no weight decay) trained for a long time on 1,200 MNIST-1D signals
# (Greydanus 2020), a deliberately hard 10-class task: the paper's MLP reaches 68% with over three times
# as much data. A callback records the validation error, NLL and ECE before training and after every epoch.

# %%
data = datasets.mnist1d(n_train=N_TRAIN, seed=cfg.seed)
tracker = lab.CalibrationTracker(data.x_val, data.y_val, N_BINS)
model, history = lab.train_classifier(data, width=WIDTH, epochs=EPOCHS, seed=cfg.seed, callbacks=[tracker])
run = lab.calibrate(model, data, N_BINS)
before, after = run.before, run.after
raw_pair = scratch.top_label(run.test_logits.softmax(-1), run.test_labels)
print(data)
tables.show([{"split": "test", **lab.readable(before)}])

# %% [markdown]
# Chance is 10%, so the network has learned a lot; but compare its accuracy with its mean confidence.
# The confidence histogram (Guo et al.'s Figure 1 in miniature) shows where the gap comes from: a large
# pile of predictions at confidence near 1, and across the middle range far more wrong answers than the
# stated confidence allows.

# %%
figures.confidence_histogram(*raw_pair, "Test confidence of the over-confident MLP");

# %%
figures.reliability_diagrams({"Over-confident MLP (test set)": raw_pair}, "Reliability diagram", N_BINS);

# %% [markdown]
# Every bar sits below the diagonal: at every confidence level the model is right less often than it
# claims, so its ECE equals its confidence gap (the identity above). The numbers on the bars say how many
# test predictions each bin holds, and both the bar and its gap line fade with that count: a bin of two
# examples draws a faint line, the last bin holds the largest group. **Claim:** the test ECE is above 0.15
# (measured 0.29–0.31 at quick scale and 0.33–0.37 at full scale, seeds 0–4).

# %%
claim("The wide MLP trained long is over-confident: test ECE above 0.15", before["ece"], ">", 0.15)

# %% [markdown]
# ### Over-fitting shows up in probability before it shows up in accuracy
#
# Guo et al. (2017, section 3) noticed that validation NLL starts rising long before validation error
# does. The same happens here: after the NLL minimum (dotted line) the error keeps improving or stays
# flat, while NLL climbs and ECE grows with the mean confidence.

# %%
record = history.extra["calibration"]
figures.epoch_curves(record)
best_epoch = int(np.argmin(record["nll"]))
nll_rise = record["nll"][-1] - record["nll"][best_epoch]
error_change = record["error"][-1] - record["error"][best_epoch]
ece_growth = record["ece"][-1] - record["ece"][best_epoch]
print(f"NLL minimum after {best_epoch} epochs: NLL {record['nll'][best_epoch]:.2f} -> {record['nll'][-1]:.2f}, "
      f"error {record['error'][best_epoch]:.3f} -> {record['error'][-1]:.3f}, "
      f"ECE {record['ece'][best_epoch]:.3f} -> {record['ece'][-1]:.3f}")

# %% [markdown]
# **Claims.** From the NLL minimum to the last epoch, validation NLL rises by more than 0.3 nats
# (measured 0.65–0.82 at quick, 1.2–1.4 at full), while validation error does not get worse by more
# than 2 points (it changed by −0.04 to −0.006 at quick and −0.06 to −0.04 at full), and ECE grows by
# more than 0.1 (measured 0.17–0.22 at quick, 0.24–0.26 at full).

# %%
claim("Validation NLL rises by more than 0.3 nats after its minimum", nll_rise, ">", 0.3)
claim("...while validation error does not rise by more than 0.02", error_change, "<", 0.02)
claim("...and validation ECE grows by more than 0.1", ece_growth, ">", 0.1)

# %% [markdown]
# **Practical consequence.** Early stopping on validation *accuracy* picks a late epoch with
# over-confident probabilities; if probabilities matter, watch validation NLL (or ECE) as well, and
# expect to recalibrate.
#
# ## 3. Temperature scaling
#
# **Idea.** The network ranks classes well; it just states its belief too strongly. Divide every logit
# vector by one number $T$ before the softmax: $T > 1$ softens all predictions, $T < 1$ sharpens them.
#
# **Math.** $\hat p_i = \operatorname{softmax}(z_i / T)$. Because $z/T$ is a monotone rescaling of each
# logit vector, $\arg\max_k z_{ik}/T = \arg\max_k z_{ik}$: **predictions, and therefore accuracy, cannot
# change**. $T$ is chosen to minimise the NLL on a held-out *validation* split (never the test split), a
# one-parameter fit that cannot over-fit much (Guo et al. 2017, a single-parameter form of Platt scaling).
# Optimising $\log T$ rather than $T$ keeps $T$ positive without constraints.

# %%
show_source(scratch.fit_temperature)

# %%
grid = np.logspace(-0.5, 1.2, 60)
figures.nll_temperature_plot((run.val_logits, run.val_labels), (run.test_logits, run.test_labels), grid,
                             run.temperature)
print(f"fitted on validation: T = {run.temperature:.2f}")

# %%
scaled_logits = run.test_logits / run.temperature
scaled_pair = scratch.top_label(scaled_logits.softmax(-1), run.test_labels)
predictions_changed = int((scaled_logits.argmax(-1) != run.test_logits.argmax(-1)).sum())
figures.reliability_diagrams({"before (T = 1)": raw_pair, f"after (T = {run.temperature:.2f})": scaled_pair},
                             "Temperature scaling on the untouched test set", N_BINS);

# %% [markdown]
# **Claims.** The fitted temperature is above 1.5 (measured 3.1–3.4 at quick, 4.1–4.4 at full), test
# ECE falls below half its value (the ratio after/before was 0.15–0.20 at quick and 0.12–0.16 at full),
# and test NLL falls. The last line is an *implementation check*, not a finding: dividing by $T$ cannot
# move an argmax, so a changed prediction could only mean a bug in the code.

# %%
claim("The fitted temperature is above 1.5 (the model was over-confident)", run.temperature, ">", 1.5)
claim("Temperature scaling cuts test ECE below half its value", after["ece"] / before["ece"], "<", 0.5)
claim("Temperature scaling lowers test NLL", after["nll"] - before["nll"], "<", 0.0)
assert predictions_changed == 0, f"dividing the logits by T changed {predictions_changed} predictions: a bug"
print(f"implementation check: {predictions_changed} of {len(run.test_labels)} test predictions changed")

# %% [markdown]
# Our numbers beside those of Guo et al. (2017, Table 1, ECE with 15 bins). Theirs come from a
# 110-layer ResNet on CIFAR-100, ours from a small MLP, but the pattern is the same: a large gap before,
# a small one after, with one scalar fitted on validation data.

# %%
tables.show([{"model": "Guo et al. 2017: ResNet-110, CIFAR-100", "ECE before (%)": 16.53, "ECE after (%)": 1.26},
             {"model": f"this run: MLP width {WIDTH}, MNIST-1D", "ECE before (%)": 100 * before["ece"],
              "ECE after (%)": 100 * after["ece"]}])
print(f"accuracy {before['accuracy']:.3f} before and {after['accuracy']:.3f} after; NLL {before['nll']:.2f} -> "
      f"{after['nll']:.2f}; Brier {before['brier']:.3f} -> {after['brier']:.3f}")

# %% [markdown]
# ### Is the ECE that is left more than noise?
#
# An ECE measured on a finite test set is never zero, even for a perfectly calibrated model: each bin's
# accuracy is a noisy estimate, and the absolute value turns noise of either sign into gap. So before
# reading the scaled model's ECE as "still a few points off", ask what a model that is calibrated *by
# construction*, with exactly these confidences, would measure on as many examples. Draw every outcome
# from its own confidence, $o_i \sim \text{Bernoulli}(\hat p_i)$, many times, and compute the ECE of each
# draw (consistency resampling, Bröcker and Smith 2007; Vaicenavicius et al. 2019 use it as a test of
# calibration). The p-value is the share of the $D$ draws that reach the observed ECE,
# $p = \bigl(1 + \#\{d : \text{ECE}_d \ge \text{ECE}\}\bigr) / (1 + D)$.

# %%
show_source(scratch.resampled_errors)

# %%
noise = {name: lab.noise_check(*pair, seed=cfg.seed) for name, pair in
         (("before scaling", raw_pair), ("after scaling", scaled_pair))}
tables.show([{"model": name, **row} for name, row in noise.items()])

# %% [markdown]
# **Claims.** Before scaling, the ECE lies beyond every one of the 200 calibrated draws (p is at its
# smallest possible value, 1/201, at both scales; the ECE is 7–10x the draws' 95th percentile). After
# scaling, the ECE is less than twice what a calibrated model with the same confidences measures on
# average (1.1–1.6x across seeds and scales). Whether the remainder is *detectable* depends on the seed:
# p ranged from 0.02 to 0.31, so on some seeds a miscalibration of a point or so shows on 1,000 examples
# and on others it does not. Either way, what is left is the size of the noise floor: two recalibrated
# models whose ECEs differ by a point or two on this test set are not shown to differ (section 4 marks
# each model's floor, section 8 measures how it shrinks with more data).

# %%
claim("Before scaling, the ECE lies beyond the calibrated draws (p below 0.01)",
      noise["before scaling"]["p-value"], "<", 0.01)
claim("After scaling, the ECE is less than twice the mean ECE of a calibrated model with the same confidences",
      noise["after scaling"]["ECE"] / noise["after scaling"]["ECE if calibrated: mean"], "<", 2.0)

# %% [markdown]
# **Explorer.** Slide the temperature from 0.25 to 8 and watch the reliability diagram: below the
# fitted value the bars stay under the diagonal (over-confident), far above it they rise over it
# (under-confident). Accuracy never moves. It updates when you release the slider, in well under a second.

# %%
explore(partial(figures.explore_temperature, run.test_logits, run.test_labels),
        temperature=Slider(0.25, 8.0, 0.02, 1.0, log=True), n_bins=Slider(5, 30, 1, N_BINS))

# %% [markdown]
# ### What one temperature cannot fix
#
# Look again at the right-hand diagram above: after scaling, the high-confidence bins sit *above* the
# diagonal. Why does a fit on NLL overshoot there? NLL charges $-\log p$ of the true class, which is
# large for every confidently *wrong* prediction, so the fitted $T$ grows until those are softened enough,
# and with one number for everything the few predictions that deserved their confidence are softened
# too. (Over all test cases, mean confidence and accuracy after scaling agree within a few points, in a
# direction that changes with the seed; the systematic mismatch is at the top.) So "after scaling, 0.8
# means 80%" is not what happens: the cases at or above 0.8 are right more often than stated.
#
# A more flexible map fixes the shape. **Histogram binning** (Zadrozny and Elkan 2001) cuts the
# validation confidences into bins and replaces every confidence by its bin's observed validation
# accuracy: a lookup table instead of one number. Applied to the top label only (Gupta and Ramdas 2021)
# it keeps every prediction and changes only the stated confidence. Applied to every class separately
# and renormalised (the multi-class version Guo et al. compared with) it can change the predicted
# class. We fit both on the same validation split as the temperature and score all on the test set.

# %%
show_source(scratch.HistogramBinning, scratch.fit_histogram_binning)

# %%
recalibration = lab.recalibration_table(run, BINNING_BINS, THRESHOLD, N_BINS)
tables.show(recalibration)
by_method = {row["method"]: row for row in recalibration}
binned_pair = (scratch.fit_histogram_binning(*scratch.top_label(run.val_logits.softmax(-1), run.val_labels),
                                             BINNING_BINS)(raw_pair[0]), raw_pair[1])
figures.reliability_diagrams({f"temperature scaling (T = {run.temperature:.2f})": scaled_pair,
                              "top-label histogram binning": binned_pair}, "Two recalibrations, same test set", N_BINS,
                             at_own_values=["top-label histogram binning"]);

# %% [markdown]
# Histogram binning outputs only its bins' validation frequencies (at most 10 distinct values; fewer when
# two bins share a frequency or a test case never falls in one), so its diagram draws one bar per output
# value rather than re-binning them into 15 bins, which would merge several values into one bar.
#
# **Claims.** After temperature scaling, the test cases with confidence at least 0.8 are right more often
# than their mean confidence says, by more than 3 points (measured 0.09–0.11 at quick and 0.08–0.12 at
# full, seeds 0–4). Top-label histogram binning shrinks that gap (by 0.05–0.09 at quick, 0.06–0.10 at
# full). It pays in log loss of the top label, because a lookup table gives every case in a bin the same
# confidence and so throws away the ranking inside the bin (+0.015 to +0.027 nats at quick, +0.025 to
# +0.040 at full). Its ECE is *not* reliably lower than temperature scaling's with 800 validation examples
# (lower on some seeds, higher on others), so we do not claim that. One-vs-rest binning, the last row,
# changes predictions (the count is in the table) and with them the accuracy: the reason to prefer the
# top-label form when predictions must not move.

# %%
scaled_top, binned_top = by_method["temperature scaling"], by_method["top-label histogram binning"]
top_gap = {name: row["their accuracy"] - row["their mean confidence"] for name, row in by_method.items()}
claim(f"After temperature scaling, cases at or above {THRESHOLD} are right more often than stated (by > 0.03)",
      top_gap["temperature scaling"], ">", 0.03)
claim("Top-label histogram binning shrinks that gap", abs(top_gap["top-label histogram binning"])
      - abs(top_gap["temperature scaling"]), "<", 0.0)
claim("...but costs top-label log loss against temperature scaling",
      binned_top["top-label log loss (nats)"] - scaled_top["top-label log loss (nats)"], ">", 0.0)

# %% [markdown]
# **Practical consequence.** Start with temperature scaling: one number, no change to any prediction,
# hard to over-fit. If a decision depends on one region of confidence (a cut-off at 0.8), check the
# reliability diagram *there*. A binned map (or isotonic regression, its monotone cousin) fixes the shape,
# but it needs more validation data, loses resolution inside each bin, and in its one-vs-rest form changes
# predictions (see the table's second column). A rule of thumb for choosing: a temperature (or Platt
# scaling, its two-parameter form for a binary score) when validation data are scarce and predictions must
# not move; isotonic regression or binning when there are thousands of validation cases and the curve is
# not a simple stretch; Dirichlet calibration (Kull et al. 2019), a regularised linear map on the
# log-probabilities, when the whole probability vector must be calibrated class by class and every class
# has enough validation data.
#
# ## 4. Training choices, and the control every one of them must beat
#
# Guo et al. (2017) found that capacity, weaker weight decay and batch normalisation all made networks
# less calibrated; depth and batch normalisation are not tested here (each would cost another training
# run). We retrain the same recipe with narrower layers, with an L2 penalty, with label smoothing
# (Szegedy et al. 2016), which trains against targets $(1 - \varepsilon)\,\text{one-hot} + \varepsilon/K$,
# and with **focal loss** (Lin et al. 2017), which Mukhoti et al. (2020) proposed as a loss designed for
# calibration: $-(1 - p_y)^\gamma \log p_y$ down-weights the examples the network already gets right with
# confidence, so it stops pushing their logits ever larger.
#
# The **control** is the cheapest alternative: the plain model of section 2 followed by temperature
# scaling. A training-time fix is worth its retraining only if it beats that control, on NLL (which also
# rewards sharpness) as well as on ECE.

# %%
show_source(scratch.focal_loss)

# %%
settings = {f"width {NARROW}": dict(width=NARROW, epochs=EPOCHS),
            f"L2 {WEIGHT_DECAY:g}": dict(width=WIDTH, epochs=EPOCHS, weight_decay=WEIGHT_DECAY),
            f"label smoothing {LABEL_SMOOTHING:g}": dict(width=WIDTH, epochs=EPOCHS, label_smoothing=LABEL_SMOOTHING),
            f"focal loss γ = {FOCAL_GAMMA:g}": dict(width=WIDTH, epochs=EPOCHS, focal_gamma=FOCAL_GAMMA)}
sweep = {"cross-entropy (section 2)": run, **lab.calibration_sweep(data, settings, seed=cfg.seed, n_bins=N_BINS)}
floors = {name: lab.noise_check(*scratch.top_label((r.test_logits / r.temperature).softmax(-1), r.test_labels),
                                n_bins=N_BINS, seed=cfg.seed) for name, r in sweep.items()}
tables.show([{"model": name, "accuracy": r.before["accuracy"], "ECE": r.before["ece"], "NLL": r.before["nll"],
              "T": r.temperature, "ECE after T": r.after["ece"],
              "calibrated model's ECE, 95th pct": floors[name]["ECE if calibrated: 95th percentile"],
              "p after T": floors[name]["p-value"], "NLL after T": r.after["nll"]} for name, r in sweep.items()])

# %%
figures.sweep_bars(sweep, "What changes calibration (MNIST-1D, test set)", N_BINS, seed=cfg.seed);

# %% [markdown]
# **Claims.**
# - Focal loss lowers the wide model's ECE (ratio 0.51–0.59 at quick, 0.53–0.59 at full), but the control
#   beats it: temperature scaling of the cross-entropy model reaches a lower ECE (by 0.10–0.13 at quick,
#   0.13–0.16 at full) and a lower NLL, even after focal loss gets its own temperature (by 0.05–0.07 nats at
#   quick, 0.03–0.06 at full). Mukhoti et al. report focal loss plus temperature scaling ahead on large
#   image networks; at this scale that does not reproduce, and the plain model with a temperature wins.
# - Label smoothing lowers ECE too, but its NLL stays above the control's (by 0.21–0.32 nats at quick,
#   0.16–0.21 at full), even after its own temperature. A temperature cannot undo smoothing: Müller et al.
#   (2019) show that it pulls each class's penultimate features into a tight cluster and erases how similar
#   the wrong classes are to each other, which is also why a smoothed teacher distils worse.
# - The L2 penalty beats the control: higher accuracy (+0.04 to +0.07 at quick, +0.03 to +0.08 at full) and
#   a lower NLL than the temperature-scaled cross-entropy model (by 0.10–0.19 nats at quick, 0.07–0.16 at
#   full). It is a better model, not only a better-calibrated one.
# - The width-32 network's ECE is lower by more than 0.1 (by 0.21–0.26 at quick, 0.20–0.22 at full), but it
#   is also less accurate (by 0.05–0.08 at both scales): capacity and accuracy change together, so this run
#   cannot say whether width itself, or the extra fitting that width allows, drives the over-confidence.
# - After temperature scaling, all five models sit at or near their noise floors (the black ticks, and the
#   table's "95th pct" column: the ECE that a model calibrated by construction, with the same confidences,
#   stays under on these 1,000 examples 95% of the time). No model's ECE after $T$ exceeded that floor by
#   more than 0.02 in our runs (seeds 0–4 at quick, 0–2 at full), and the order changes with the seed: the
#   L2 model, best by NLL, had the *highest* ECE after $T$ on several seeds (p below 0.01). So do not rank
#   models by ECE after $T$; the NLL panel, a proper score that needs no bins, separates them, and that is
#   what the claims below compare.

# %%
plain, focal = sweep["cross-entropy (section 2)"], sweep[f"focal loss γ = {FOCAL_GAMMA:g}"]
smoothed, l2 = sweep[f"label smoothing {LABEL_SMOOTHING:g}"], sweep[f"L2 {WEIGHT_DECAY:g}"]
narrow = sweep[f"width {NARROW}"]
claim("Focal loss lowers the wide model's test ECE (ratio below 0.75)",
      focal.before["ece"] / plain.before["ece"], "<", 0.75)
claim("...but temperature scaling of the cross-entropy model reaches a lower ECE",
      focal.before["ece"] - plain.after["ece"], ">", 0.03)
claim("...and a lower NLL than focal loss with its own temperature", focal.after["nll"] - plain.after["nll"], ">", 0.0)
claim("Label smoothing's NLL stays above the temperature-scaled cross-entropy model's",
      smoothed.before["nll"] - plain.after["nll"], ">", 0.05)
claim("An L2 penalty beats the control: lower NLL than the temperature-scaled model",
      l2.before["nll"] - plain.after["nll"], "<", 0.0)
claim("...and higher accuracy", l2.before["accuracy"] - plain.before["accuracy"], ">", 0.0)
claim(f"A width-{NARROW} MLP has an ECE lower by more than 0.1", plain.before["ece"] - narrow.before["ece"], ">", 0.1)
claim("...and a lower accuracy (capacity and accuracy move together)",
      plain.before["accuracy"] - narrow.before["accuracy"], ">", 0.02)

# %% [markdown]
# ### Label smoothing can overshoot: an easy task becomes under-confident
#
# Label smoothing does not know how confident the model *should* be; it caps confidence for every
# example. On an easy task (scikit-learn's 8x8 digits, 95–98% test accuracy) a plain MLP is already
# nearly calibrated, and smoothing pulls correct predictions down from near 1 towards about 0.9: the
# bars now sit *above* the diagonal, and the fitted temperature falls below 1 (it sharpens). Pixels are
# scaled to [0, 1] here, not standardised: a pixel that is blank in every training image would otherwise
# blow up on the few validation images where it is not.

# %%
digits = lab.unit_digits(seed=cfg.seed)
digit_models = {"plain": lab.train_classifier(digits, seed=cfg.seed, **DIGITS)[0],
                f"smoothing {LABEL_SMOOTHING:g}": lab.train_classifier(digits, seed=cfg.seed,
                                                                      label_smoothing=LABEL_SMOOTHING, **DIGITS)[0]}
digit_runs = {name: lab.calibrate(m, digits, N_BINS) for name, m in digit_models.items()}
figures.reliability_diagrams({name: scratch.top_label(r.test_logits.softmax(-1), r.test_labels)
                              for name, r in digit_runs.items()}, "Digits: plain vs label smoothing (test set)", N_BINS)
tables.show([{"model": name, **lab.readable(r.before), "T": r.temperature, "ECE after T": r.after["ece"]}
             for name, r in digit_runs.items()])

# %% [markdown]
# **Claims.** With smoothing the digits model is under-confident: its mean confidence is below its
# accuracy by more than 0.08 (by 0.12–0.15 at quick and 0.12–0.13 at full). Without smoothing its ECE
# is below 0.06 (0.017–0.031 at quick, 0.008–0.037 at full), and the temperature fitted to the smoothed
# model is below 0.8 (0.33–0.54 at quick, 0.37–0.54 at full).

# %%
digits_smoothed, digits_plain = digit_runs[f"smoothing {LABEL_SMOOTHING:g}"], digit_runs["plain"]
claim("Label smoothing makes the easy-task model under-confident: mean confidence below accuracy by more than 0.08",
      digits_smoothed.before["confidence"] - digits_smoothed.before["accuracy"], "<", -0.08)
claim("Without smoothing the easy-task model is nearly calibrated: ECE below 0.06",
      digits_plain.before["ece"], "<", 0.06)
claim("The temperature fitted to the smoothed model is below 0.8 (it sharpens)", digits_smoothed.temperature, "<", 0.8)

# %% [markdown]
# **Practical consequence.** Here over-confidence grew with training length (section 2), shrank with
# weight decay, and fell in the narrow model, which was also less accurate; but judge a training-time fix
# against the cheapest alternative, a temperature fitted on validation. Here only weight decay beat it,
# because it made a better model; label smoothing and focal loss bought calibration that one number buys
# for free, and smoothing can overshoot.
#
# ## 5. Calibration under shift, and by segment
#
# A temperature is fitted on validation data and silently assumes production looks the same. Ovadia et
# al. (2019) corrupted test inputs with growing intensity and found that calibration degrades with the
# shift for every method they tried, temperature scaling included. We do the same with Gaussian noise
# added to the MNIST-1D signals (in units of the standardised inputs), keep the temperature fitted on
# clean validation data, and compare it with a temperature refitted on validation data shifted the same way.

# %%
shifted = lab.shifted_logits(model, data, NOISE_LEVELS, seed=cfg.seed)
shift_rows = lab.shift_study(run, shifted, N_BINS)
tables.show(shift_rows)
figures.shift_plot(shift_rows);
worst = shift_rows[-1]
kept = (worst["ECE as trained"] - worst["ECE, T from clean validation"]) / (
    worst["ECE as trained"] - worst["ECE, T refitted on shifted validation"])
print(f"at noise {worst['noise']:g}: the clean temperature achieves {kept:.0%} of the ECE reduction "
      "that a refitted one achieves")

# %% [markdown]
# **Claims.** At the strongest noise the ECE with the clean temperature is more than twice its
# in-distribution value (measured 4.3–5.6x at quick, 4.9–6.7x at full): the temperature's gain only
# partly survives the shift (the printed fraction is how much of a refit's ECE reduction it keeps). The
# control: a temperature refitted on shifted validation data cuts that ECE by more than half (to 0.07–0.21
# of it), so the problem is a stale temperature, not data that cannot be calibrated.

# %%
claim("Under the strongest input noise, ECE with the clean temperature is more than twice the clean-test value",
      worst["ECE, T from clean validation"] / after["ece"], ">", 2.0)
claim("A temperature refitted on shifted validation data cuts that ECE by more than half",
      worst["ECE, T refitted on shifted validation"] / worst["ECE, T from clean validation"], "<", 0.5)

# %% [markdown]
# ### Recalibrating by segment
#
# Real traffic mixes segments (devices, markets, customer types) that a single model serves. Suppose
# half of it comes from a noisy sensor: the same validation signals seen through both sensors, noisy at
# the strongest level above. One temperature fitted on the pooled validation data looks fine on the pooled
# test set, but it is an average of two different corrections: too soft for the clean segment, too sharp
# for the noisy one. Recalibrating by segment means fitting one temperature (or one decision threshold)
# per segment, on that segment's own validation data.

# %%
segments = lab.segment_study(run, shifted[NOISE_LEVELS[-1]], N_BINS)
tables.show(segments["rows"])
segment_rows = {(row["segment"], row["temperature"]): row for row in segments["rows"]}
print(f"pooled test ECE with one temperature: {segments['pooled ECE']:.3f}")

# %% [markdown]
# **Claims.** With one temperature for both segments the clean segment is under-confident (confidence −
# accuracy −0.15 to −0.13 at quick, −0.17 to −0.13 at full) and the noisy one over-confident (+0.09 to
# +0.11 at quick, +0.09 to +0.13 at full), while the pooled ECE hides both (0.18–0.45 of the smaller
# segment ECE). A temperature per segment cuts each segment's ECE by more than a third (to 0.28–0.51 of
# its value).

# %%
claim("One pooled temperature leaves the clean segment under-confident (gap below -0.05)",
      segment_rows[("clean", "one T for both")]["confidence - accuracy"], "<", -0.05)
claim("...and the noisy segment over-confident (gap above 0.03)",
      segment_rows[("noisy", "one T for both")]["confidence - accuracy"], ">", 0.03)
claim("The pooled ECE is lower than either segment's ECE under the pooled temperature", segments["pooled ECE"]
      / min(segment_rows[(s, "one T for both")]["ECE"] for s in ("clean", "noisy")), "<", 1.0)
claim("A temperature per segment cuts each segment's ECE by more than a third", max(
      segment_rows[(s, "T per segment")]["ECE"] / segment_rows[(s, "one T for both")]["ECE"]
      for s in ("clean", "noisy")), "<", 0.67)

# %% [markdown]
# **Practical consequence.** Calibration is a property of a model *and a population*. Monitor it per
# segment, refit the temperature (or the decision thresholds) per segment when segments differ, and refit
# after a shift; a pooled ECE can look perfect while every segment is wrong in opposite directions.
# Refitting needs *labelled* data from the shifted distribution or the segment. Without labels: have a
# small random sample labelled (a few hundred cases bound the ECE to within a few points, section 8),
# watch the mean confidence per segment, which moves with a shift even when no labels arrive, and refit
# on a schedule. Ovadia et al. (2019) found that deep ensembles kept their calibration best under shift;
# an ensemble costs one training run per member, which this notebook does not spend.
#
# ## 6. What ECE does not see
#
# ### Sharpness
#
# ECE measures only the gap to the diagonal. A predictor that ignores its input and always outputs the
# training class frequencies is almost perfectly calibrated (its one confidence, about 0.1, is right
# about 10% of the time) and completely useless. What it lacks is *sharpness*, or *resolution*: its
# forecasts never separate one case from another. The Brier score's decomposition (Murphy 1973) makes
# both visible, for every event "the label is $k$" with forecast $p_k$, after grouping forecasts into bins:
#
# $$\text{Brier} = \underbrace{\sum_m w_m(\text{conf}_m - \text{freq}_m)^2}_{\text{reliability (lower is better)}}
# \;-\; \underbrace{\sum_m w_m(\text{freq}_m - \bar o)^2}_{\text{resolution (higher is better)}}
# \;+\; \underbrace{\bar o (1 - \bar o)}_{\text{uncertainty}},$$
#
# where bin $m$ holds a share $w_m = |B_m|/n$ of the forecasts and $\bar o$ is the base rate of the event.
#
# ### Top-label against class-wise
#
# Top-label ECE checks only the probability of the predicted class. A decision that uses the other
# probabilities (the second choice in a ranking, an expected cost over all classes) needs them calibrated
# too: *class-wise* ECE (Kull et al. 2019) bins every class's probability over all examples and compares
# it with how often the label was that class. To see the difference we scramble the temperature-scaled
# model's non-top probabilities among the other classes: the top class and its confidence are untouched
# (so top-label ECE is identical), while the alternatives become noise.

# %%
show_source(scratch.brier_decomposition, scratch.classwise_calibration_error)

# %%
scaled_probs = scaled_logits.softmax(-1)
predictors = {"base rates (ignores the input)": lab.base_rate_probs(data.y_train, len(run.test_labels), data.n_classes),
              "as trained": run.test_logits.softmax(-1), "temperature-scaled": scaled_probs,
              "temperature-scaled, alternatives scrambled": lab.scrambled_alternatives(scaled_probs, cfg.seed)}
sharpness = {row["predictor"]: row for row in lab.sharpness_table(predictors, run.test_labels, N_BINS)}
tables.show(list(sharpness.values()))

# %% [markdown]
# **Claims.** The base-rate predictor has a lower top-label ECE than the temperature-scaled model
# (lower by 0.03–0.04 at both scales), yet no resolution at all, while the model's resolution is above
# 0.2 (0.29–0.31) and its Brier score lower by more than 0.1 (by 0.25–0.27). Scrambling the alternatives
# leaves the top-label ECE unchanged (by construction) and multiplies the class-wise ECE by 1.9–2.4.

# %%
base, scaled_row = sharpness["base rates (ignores the input)"], sharpness["temperature-scaled"]
scrambled = sharpness["temperature-scaled, alternatives scrambled"]
claim("A predictor that always outputs the base rates has a lower ECE than the temperature-scaled model",
      base["ECE (top label)"] - scaled_row["ECE (top label)"], "<", 0.0)
claim("...but no resolution, while the model's resolution is above 0.2", scaled_row["resolution"], ">", 0.2)
claim("The Brier score ranks the model above the base rates by more than 0.1",
      base["Brier"] - scaled_row["Brier"], ">", 0.1)
claim("Scrambling the non-top probabilities raises the class-wise ECE by more than half",
      scrambled["class-wise ECE"] / scaled_row["class-wise ECE"], ">", 1.5)

# %% [markdown]
# **Practical consequence.** Never report ECE alone: pair it with accuracy and a proper score (NLL or
# Brier), which reward resolution. State which calibration you measured (top-label or class-wise), and
# choose the one your decision uses.
#
# ## 7. Why calibration matters: a decision with a threshold
#
# A common deployment rule: act automatically when the confidence is at least $t$, otherwise abstain and
# send the case to a person. A *calibrated* model promises that the accuracy of the cases it acts on
# equals their mean confidence, so the left panel plots, for each threshold, the accuracy of the accepted
# cases against their mean confidence: a calibrated model follows the diagonal. (Their accuracy being at
# least $t$ is a weaker promise: a model that is far too soft keeps it by acting on almost nothing.)

# %%
thresholds = np.round(np.arange(0.3, 0.96, 0.05), 2)
curves = {"before scaling": lab.coverage_accuracy(run.test_logits.softmax(-1), run.test_labels, thresholds),
          "after scaling": lab.coverage_accuracy(scaled_probs, run.test_labels, thresholds)}
figures.coverage_plot(curves, "Act only when confidence >= t (MNIST-1D test set)", mark=THRESHOLD)
at_t = {name: lab.coverage_accuracy(p, run.test_labels, [THRESHOLD]) for name, p in
        (("before", run.test_logits.softmax(-1)), ("after", scaled_probs))}
accepted_gap = {name: abs(c["accuracy"][0] - c["confidence"][0]) for name, c in at_t.items()}
for name, c in at_t.items():
    print(f"t = {THRESHOLD}: {name} scaling acts on {c['coverage'][0]:.1%} of cases; their mean confidence "
          f"{c['confidence'][0]:.2f}, their accuracy {c['accuracy'][0]:.2f}, gap {accepted_gap[name]:.2f}")

# %% [markdown]
# **Claims.** Before scaling, the cases acted on at $t = 0.8$ are right less than 75% of the time
# (measured 0.60–0.66 at quick and 0.56–0.60 at full, seeds 0–4), far below their mean confidence.
# Temperature scaling shrinks the gap between their accuracy and their mean confidence by more than half
# (to 0.21–0.35 of it), and changes what the threshold buys: it acted on 49–54% of cases before scaling
# at quick (62–68% at full) and on 8–11% after. The gap that is left has the other sign: the accepted
# cases are right *more* often than stated, the top-bin under-confidence of section 3.

# %%
claim(f"Before scaling, the threshold {THRESHOLD} over-promises: accuracy when acting below 0.75",
      at_t["before"]["accuracy"][0], "<", 0.75)
claim("Temperature scaling shrinks the accepted cases' gap between accuracy and mean confidence by more than half",
      accepted_gap["after"] / accepted_gap["before"], "<", 0.5)

# %% [markdown]
# The right panel is the ranking view: accuracy against the share of cases acted on. The curves do *not*
# coincide. Dividing by $T$ keeps each example's argmax, but not the order of confidences *across*
# examples: the top probability $1 / \sum_k e^{(z_k - z_{\max})/T}$ depends on the gaps to every other
# logit, and $T$ changes how much the small gaps count against the large ones, so two cases can swap
# places. We measure the ranking by the AUROC of confidence for right against wrong predictions (the
# chance that a random right prediction is more confident than a random wrong one).

# %%
ranking = {name: lab.confidence_auroc(*pair) for name, pair in (("before", raw_pair), ("after", scaled_pair))}
print(f"AUROC of confidence, right vs wrong: {ranking['before']:.3f} before scaling, {ranking['after']:.3f} after")

# %% [markdown]
# **Claim.** Temperature scaling raises the AUROC of confidence by more than 0.01 (by 0.021–0.053 across
# seeds and scales): on this model the softened confidences also rank right above wrong predictions
# better. A side effect, not a guarantee; on another model it can go the other way.

# %%
claim("Temperature scaling changes the ranking: the AUROC of confidence for right vs wrong rises by more than 0.01",
      ranking["after"] - ranking["before"], ">", 0.01)

# %% [markdown]
# ### Choosing the threshold from costs
#
# Where does 0.8 come from? Say a wrong automatic action costs 1 and a review costs $r$. Acting on a case
# whose top class is right with probability $p$ costs $1 - p$ on average, so the cheaper choice is to act
# exactly when $p > 1 - r$ (for a yes/no decision with costs $c_{FP}$ and $c_{FN}$ the same argument gives
# the threshold $c_{FP} / (c_{FP} + c_{FN})$). A review that costs a fifth of an error gives $t = 0.8$. The
# rule is only right if $p$ is calibrated. The control: with labelled validation data one can skip
# calibration and tune the threshold of the raw model directly.

# %%
costs = lab.cost_study(run, REVIEW_COSTS)
tables.show(costs)
at_threshold = next(row for row in costs if np.isclose(row["Bayes threshold 1 - r"], THRESHOLD))

# %% [markdown]
# **Claims.** With a review cost of 0.2, acting at the rule's threshold before scaling costs more than
# sending every case to review (by 0.07–0.16 per case); after scaling it costs less (by 0.015–0.022). And
# it is no worse than the control, the unscaled model with its threshold tuned on validation (within
# 0.01; the difference was −0.007 to +0.001). Calibration buys a threshold that can be written down for
# any cost ratio without tuning; it does not beat tuning on labelled data at one fixed cost.

# %%
claim("Before scaling, acting at the threshold 1 - r costs more than reviewing every case",
      at_threshold["before scaling, at 1 - r"] - at_threshold["review every case"], ">", 0.0)
claim("After scaling, acting at 1 - r costs less than reviewing every case",
      at_threshold["after scaling, at 1 - r"] - at_threshold["review every case"], "<", 0.0)
claim("...and no more than the unscaled model with a threshold tuned on validation (within 0.01)",
      at_threshold["after scaling, at 1 - r"] - at_threshold["before scaling, threshold tuned on validation"], "<", 0.01)

# %% [markdown]
# **Practical consequence.** A threshold on a calibrated probability means what it says, and the cost
# ratio gives it directly; on an uncalibrated one it must be tuned on labelled data, again for every cost
# ratio and after every shift. Quote the coverage with the accuracy: a threshold that is "right 100% of
# the time" on 8% of the cases is a different product from one that is right 60% of the time on 60%.
#
# ## 8. How far to trust an ECE number
#
# ECE is itself measured on a finite sample, and it is biased upwards: even a *perfectly* calibrated
# model shows a positive ECE, because each bin's accuracy is a noisy estimate and the absolute value turns
# noise of either sign into gap. We build such a model (labels drawn from its own probabilities) and
# measure its ECE at several sample sizes.

# %%
floor = lab.ece_noise_floor(NOISE_SIZES, N_BINS, repeats=NOISE_REPEATS, seed=cfg.seed)
figures.noise_floor_plot(floor)
tables.show([{"examples": n, "mean ECE": m, "sd": s, "true ECE": 0} for n, m, s in
             zip(floor["n"], floor["mean"], floor["std"])])

# %% [markdown]
# **Claims.** With 100 examples a perfectly calibrated model still measures an ECE above 0.05 (0.10–0.12
# across seeds 0–4 and both scales), and the estimate shrinks by more than 5x from 100 to 10,000 examples
# (ratio 8.0–10.8), roughly as $1/\sqrt{n}$.

# %%
claim("A perfectly calibrated model measured on 100 examples shows ECE above 0.05", floor["mean"][0], ">", 0.05)
shrink = floor["mean"][0] / floor["mean"][list(floor["n"]).index(10_000)]
claim("The ECE noise floor shrinks more than 5x from 100 to 10,000 examples", shrink, ">", 5)

# %% [markdown]
# ### A bootstrap interval, and why it sits above the estimate
#
# Now a real model on only 200 test examples (a realistic size for a rare class or a new market). The
# bootstrap resamples them with replacement and recomputes ECE. For the temperature-scaled model the
# whole 90% interval can lie *above* the estimate. That is the bias again: every resample adds fresh
# noise, and the absolute value turns it into more ECE. The bootstrap therefore measures the bias, and the
# *bias-corrected* estimate subtracts it: $2\,\widehat{\text{ECE}} - \text{mean of the resampled ECEs}$
# (Efron and Tibshirani 1993; Kumar et al. 2019 debias the squared calibration error in the same spirit).

# %%
small = torch.randperm(len(run.test_labels), generator=torch.Generator().manual_seed(cfg.seed))[:SMALL_TEST]
intervals = {name: lab.bootstrap_ece(pair[0][small], pair[1][small], N_BOOT, N_BINS, seed=cfg.seed)
             for name, pair in (("before scaling", raw_pair), ("after scaling", scaled_pair))}
tables.show([{"model": name, **b} for name, b in intervals.items()])
small_noise = lab.noise_check(scaled_pair[0][small], scaled_pair[1][small], seed=cfg.seed)
print(f"scaled model on these {SMALL_TEST} examples: ECE {small_noise['ECE']:.3f}; a calibrated model with the same "
      f"confidences measures {small_noise['ECE if calibrated: mean']:.3f} on average, p = {small_noise['p-value']:.2f}")

# %% [markdown]
# Does the correction help? On the real model we do not know the true ECE, so we test it where we do: a
# synthetic over-confident predictor whose ECE we measure on 300,000 examples, then estimate from 200
# examples many times over.

# %%
debias = lab.debiasing_study(SMALL_TEST, DEBIAS_REPEATS, n_boot=200, n_bins=N_BINS, seed=cfg.seed)
tables.show([debias])

# %% [markdown]
# **Claims.** On 200 examples the scaled model's ECE cannot be told apart from a calibrated model's: the
# consistency test of section 3 gives p above 0.05 (0.15–0.95 across seeds 0–4 and both scales), so the
# whole number is at the noise floor and an interval around it describes noise. The bootstrap replicates
# average above the estimate (by 0.016–0.045: the bias is visible), and the 90% interval is wider than
# 0.04 (0.068–0.081). On the synthetic predictor the plain estimate overstates the truth by
# 0.038–0.041 on average, and the bias-corrected estimate's mean absolute error is smaller by
# 0.014–0.017. The 90% percentile interval contains the truth in fewer than half the repeats (see the
# coverage in the table): read a bootstrap interval of ECE as a measure of spread, not as a confidence
# interval for the true value.

# %%
scaled_interval = intervals["after scaling"]
claim("On 200 examples the scaled model's ECE is not distinguishable from a calibrated model's (p above 0.05)",
      small_noise["p-value"], ">", 0.05)
claim("On 200 examples the bootstrap replicates of the scaled model's ECE average above the estimate",
      scaled_interval["replicate mean"] - scaled_interval["ECE"], ">", 0.0)
claim("On 200 test examples the 90% bootstrap interval of ECE is wider than 0.04",
      scaled_interval["interval high"] - scaled_interval["interval low"], ">", 0.04)
claim("With known truth, the plain ECE estimate on 200 examples overstates it on average",
      debias["mean error, plain"], ">", 0.01)
claim("...and the bias-corrected estimate is closer to the truth", debias["mean absolute error, bias-corrected"]
      - debias["mean absolute error, plain"], "<", 0.0)
claim("The 90% percentile interval contains the true ECE in fewer than half the repeats",
      debias["interval coverage"], "<", 0.5)

# %% [markdown]
# ### The binning is part of the number
#
# The number of bins and their placement change the estimate too, and the reason is the same noise. On
# the over-confident model every bin errs the same way, so by the identity of section 1 its ECE equals
# $|\text{mean confidence} - \text{accuracy}|$ whatever the bins. On the temperature-scaled model, try
# 5 to 30 bins of either kind: its ECE climbs with the number of bins. The grey band is the control, the
# 90% range of the ECE that outcomes resampled from the model's own confidences give (calibrated by
# construction, as in section 3): it climbs just as much, because more bins hold fewer examples each and
# the noise floor of section 8 rises. Equal-mass bins climb a little higher: a bin of $|B_m|$ calibrated
# examples contributes noise of order $\sqrt{|B_m|}$ to the sum, and for a given number of bins the sum
# of $\sqrt{|B_m|}$ is largest when the bins are equally full.

# %%
over_binnings = [scratch.calibration_error(*raw_pair, m, scheme) for m in figures.EXPLORER_BINS
                 for scheme in scratch.SCHEMES]
over_bound = abs(float(raw_pair[0].mean() - raw_pair[1].mean()))
binning = {scheme: figures.binning_curves(*scaled_pair, scheme, seed=cfg.seed) for scheme in scratch.SCHEMES}
tables.show([{"binning": scheme, "bins": f"{c['bins'][0]} -> {c['bins'][-1]}",
              "scaled model's ECE": f"{c['model'][0]:.3f} -> {c['model'][-1]:.3f}",
              "calibrated by construction (mean)": f"{c['calibrated mean'][0]:.3f} -> {c['calibrated mean'][-1]:.3f}"}
             for scheme, c in binning.items()])

# %% [markdown]
# **Claims.** Over 5–30 bins of both kinds, every bin of the over-confident model errs the same way: its
# ECE never leaves $|\text{mean confidence} - \text{accuracy}|$ by more than 0.01 (at most 0.004 across
# seeds and scales). For outcomes resampled from the scaled model's confidences, which are calibrated by
# construction, the mean ECE with 30 bins is more than 1.5 times the mean ECE with 5, for both kinds of
# bins (2.2–2.5 times): an ECE that grows with the bin count is what noise looks like, not evidence of a
# model that errs in both directions.

# %%
claim("Every bin of the over-confident model errs the same way: ECE equals |mean confidence - accuracy| "
      "for every binning (within 0.01)", max(over_binnings) - over_bound, "<", 0.01)
claim("Even for a calibrated model, ECE with 30 bins is more than 1.5x ECE with 5 bins (both schemes)",
      min(c["calibrated mean"][-1] / c["calibrated mean"][0] for c in binning.values()), ">", 1.5)

# %%
explore(partial(figures.explore_bins, *scaled_pair, curves_by_scheme=binning),
        n_bins=Slider(5, 30, 1, N_BINS), scheme=Choice(list(scratch.SCHEMES)))

# %% [markdown]
# **Practical consequence.** Report ECE with its binning and its sample size, compare it with the ECE
# of outcomes resampled from the model's own confidences (a p-value costs milliseconds), add a
# bias-corrected value when the test set is small, and pair it with a proper scoring rule (NLL or Brier),
# which needs no bins.
#
# ## Your turn
#
# **1. ECE by hand.** Ten predictions, each with its top-class confidence and whether it was right. Use
# 5 equal-width bins $(0, 0.2], (0.2, 0.4], \dots, (0.8, 1]$ (an edge value belongs to the bin that ends
# there). Compute ECE on paper and type your number.

# %%
tables.show([{"example": i + 1, "confidence": c, "correct": "yes" if ok else "no"}
             for i, (c, ok) in enumerate(zip(lab.HAND_CASE_CONFIDENCE, lab.HAND_CASE_CORRECT))])

# %%
my_ece = None  # replace with your hand-computed ECE, e.g. 0.123

# %%
lab.check_hand_ece(my_ece);

# %% [markdown]
# <details><summary>Solution</summary>
#
# Bins: $(0.8, 1]$ holds 0.95, 0.9, 0.85 (2 of 3 right): gap $|0.667 - 0.9| = 0.233$.
# $(0.6, 0.8]$ holds 0.8, 0.72, 0.65 (2 of 3 right): gap $|0.667 - 0.723| = 0.057$.
# $(0.4, 0.6]$ holds 0.6, 0.55 (1 of 2): gap $|0.5 - 0.575| = 0.075$.
# $(0.2, 0.4]$ holds 0.4, 0.3 (1 of 2): gap $|0.5 - 0.35| = 0.15$.
# ECE $= 0.3 \cdot 0.233 + 0.3 \cdot 0.057 + 0.2 \cdot 0.075 + 0.2 \cdot 0.15 = 0.132$.
# Check: `scratch.calibration_error(*lab.hand_case(), n_bins=5)`.
# </details>
#
# **2. Fit on the test set, and see what the report would say.** Write `ece_when_fitted_on_test` that
# fits top-label histogram binning (10 bins) on the *test* forecasts of the over-confident model, applies
# it to the same forecasts and returns their ECE. The checker compares it with the honest number: binning
# fitted on validation, scored on test. Then try the same with a temperature
# (`scratch.fit_temperature(run.test_logits, run.test_labels)`): how much does one parameter flatter itself?

# %%
def ece_when_fitted_on_test(confidence: torch.Tensor, correct: torch.Tensor) -> float:
    """Fit histogram binning on (confidence, correct), apply it to the same forecasts, return their ECE."""
    raise NotImplementedError


# %%
lab.check_fitted_on_test(ece_when_fitted_on_test, *raw_pair, by_method["top-label histogram binning"]["ECE"]);

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# def ece_when_fitted_on_test(confidence, correct):
#     binning = scratch.fit_histogram_binning(confidence, correct, 10)
#     return scratch.calibration_error(binning(confidence), correct)
# ```
# Scored on the forecasts it was fitted to, the lookup table reproduces each bin's observed accuracy, so
# the ECE comes out near zero: a number you will never see in production. One temperature has one degree
# of freedom and flatters itself far less (on 1,000 test examples its ECE barely moves, and can even rise,
# because T minimises NLL, not ECE), but the rule is the same for both: fit on validation, report on test.
# </details>
#
# ## Interview answer
#
# *"The model is accurate but poorly calibrated. What do you do?"* Filled in with this run's numbers.

# %%
display(Markdown(f"""
**Measure.** Calibration asks whether a stated probability matches the observed frequency. On held-out
data I draw a reliability diagram and report ECE beside a proper score. Here: accuracy
{before['accuracy']:.0%} at mean confidence {before['confidence']:.0%}, ECE {before['ece']:.3f}, NLL
{before['nll']:.2f}; validation NLL rose for {EPOCHS - best_epoch} epochs while the error did not get
worse, so over-fitting shows in the probabilities first.

**Fix.** First a temperature fitted on validation NLL: T = {run.temperature:.2f} cut test ECE to
{after['ece']:.3f}, close to the {noise['after scaling']['ECE if calibrated: mean']:.3f} that a perfectly
calibrated model with the same confidences measures on these {len(run.test_labels)} examples, with no
prediction changed, because dividing logits by T keeps the argmax. A training-time fix must beat that
control: L2 did (test NLL {l2.before['nll']:.2f} against {plain.after['nll']:.2f}, with higher accuracy);
focal loss and label smoothing did not.
"""))

# %%
display(Markdown(f"""
**Limits.** One T fixes the average, not the shape: after scaling, the cases above {THRESHOLD} were right
{100 * top_gap['temperature scaling']:.0f} points more often than they stated; histogram binning repairs
that at some cost in sharpness. Under strong input noise the clean T left ECE at
{worst['ECE, T from clean validation']:.3f} instead of {after['ece']:.3f}: refit after shifts, and per segment.

**Why it matters.** Thresholds drive actions. Acting at confidence ≥ {THRESHOLD} covered
{at_t['before']['coverage'][0]:.0%} of cases at {at_t['before']['accuracy'][0]:.0%} accuracy before
scaling, against a stated {at_t['before']['confidence'][0]:.0%}; after scaling it covers
{at_t['after']['coverage'][0]:.0%} at {at_t['after']['accuracy'][0]:.0%} against a stated
{at_t['after']['confidence'][0]:.0%}. With calibrated probabilities the threshold follows from the costs
(act when p > 1 − review cost / error cost). And ECE is a noisy estimate: test it against labels
resampled from the model's own confidences before reading a difference of a point or two.
"""))

# %% [markdown]
# **Follow-up questions, in one breath each.**
# - *Is this ECE significant?* Resample the outcomes from the model's own confidences and see where the
#   observed ECE falls among those draws (section 3).
# - *Why is the NLL-fitted temperature too soft at the top?* NLL is dominated by confidently wrong
#   predictions, so one $T$ softens everything enough for them (section 3).
# - *Isotonic, Platt or Dirichlet?* A temperature (Platt for a binary score) with little validation data,
#   isotonic or binning with thousands of cases and a bent curve, Dirichlet (Kull et al. 2019) when every
#   class's probability must be calibrated (section 3).
# - *Label smoothing before distillation?* No: it erases the similarities between wrong classes that the
#   student learns from (Müller et al. 2019), and no temperature brings them back (section 4).
# - *What holds calibration under shift?* Deep ensembles did best in Ovadia et al. (2019); anything
#   fitted on validation data goes stale with the shift (section 5).
#
# ## Traps
#
# - **"High accuracy means the probabilities can be trusted."** Section 2: a model far above chance had
#   a mean confidence well above its accuracy and ECE above 0.15.
# - **"Temperature scaling trades accuracy for calibration."** Section 3: dividing by $T$ cannot change
#   an argmax, so accuracy is untouched.
# - **"Temperature scaling does not change the ranking."** Section 7: each example keeps its argmax, but
#   the order of confidences across examples changes; here the AUROC of confidence rose.
# - **"After temperature scaling, 0.8 means 80%."** Sections 3 and 7: the top bins were under-confident;
#   one number cannot fix the shape of the curve, and the threshold bought far less coverage.
# - **"Fit the temperature on the test set."** Your turn 2: a recalibration scored on the data it was fitted
#   to reports a calibration you will not get in production.
# - **"Label smoothing (or focal loss) is the calibration fix."** Section 4: both lowered ECE, but a
#   temperature on the plain model did better, and smoothing made the digits model under-confident.
# - **"Calibrated once, calibrated for good."** Section 5: under input noise the validation temperature
#   lost much of its gain, and a pooled temperature left two segments wrong in opposite directions.
# - **"Lower ECE means a better model."** Sections 4 and 6: a predictor that ignores its input beat the
#   model on ECE, and after scaling five models' ECEs sat at the noise floor while their NLLs differed.
# - **"ECE is an exact number, and the bootstrap interval contains the truth."** Section 8: ECE is biased
#   upwards on small samples, the bootstrap inherits the bias, and the value grows with the bin count even
#   for a calibrated model.
