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
# # 06 · Accurate but poorly calibrated: reliability diagrams, ECE, temperature scaling
#
# A classifier gives you two things: a predicted class and a probability. Accuracy grades only the
# first. Whenever a threshold or a cost is attached to the probability (flag a transaction when the
# fraud score is above 0.9, pass a scan to a doctor when the model is unsure, rank search results,
# price a risk) the second one has to mean what it says: of all the cases scored 0.8, about 80% should
# be right. A model with that property is **calibrated**. Modern networks are often accurate and yet
# systematically over-confident (Guo et al. 2017), and an interviewer who asks "the model is accurate
# but poorly calibrated, what do you do?" wants to hear how you would *measure* it, *fix* it without
# hurting accuracy, and *why it matters* for the decision downstream.
#
# **Interview questions this notebook answers**
# 1. What does "calibrated" mean, and how do you measure it (reliability diagram, ECE)?
# 2. Why are modern networks over-confident, and what makes it worse or better (training length, width,
#    weight decay, label smoothing)?
# 3. How does temperature scaling work, why does it leave accuracy unchanged, and where is it fitted?
# 4. When does calibration matter, and how much can you trust an ECE number?

# %%
from helpers import setup

cfg = setup("06_calibration")

# %%
import inspect
from functools import partial

import numpy as np
import torch
from IPython.display import Code, Markdown, display

from helpers import calibration as cal
from helpers import data as datasets
from helpers.claims import claim
from helpers.config import pick
from helpers.train import predict_logits
from helpers.widgets import Choice, Slider, explore

# %% [markdown]
# All sizes live in the next cell. `quick` (what the tests run) trains smaller and shorter models;
# `full` (the default) trains a wider network for longer and sweeps more settings. Every claim below
# holds at both scales for seeds 0–4.

# %%
N_TRAIN = 1200                          # a small training set, so the wide MLP over-fits
WIDTH = pick(quick=256, full=512)       # hidden units per layer of the over-confident MLP
EPOCHS = pick(quick=60, full=100)       # trained long, well past the best validation loss
SWEEP_WIDTHS = pick(quick=[32, 64], full=[32, 64, 128])
WEIGHT_DECAY = 1e-2                     # L2 penalty (Adam) for the weight-decay model
LABEL_SMOOTHING = 0.1
DIGITS = dict(width=64, epochs=pick(quick=30, full=60), lr=3e-3)
N_BINS = 15                             # Guo et al. (2017) use 15 equal-width bins
THRESHOLD = 0.8                         # the decision rule: act only when confidence >= 0.8
SMALL_TEST = 200                        # a small test set for the ECE noise experiment
N_BOOT = pick(quick=300, full=2000)
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
# $$\text{ECE} = \sum_{m=1}^{M} \frac{|B_m|}{n}\,\bigl|\text{acc}(B_m) - \text{conf}(B_m)\bigr|,
# \qquad \text{MCE} = \max_m \bigl|\text{acc}(B_m) - \text{conf}(B_m)\bigr|.$$
#
# ECE is the average gap, weighted by how many predictions fall in each bin; MCE is the worst bin
# (what matters in safety settings). The *equal-mass* variant picks bin edges so each bin holds the same
# number of predictions (Nixon et al. 2019). Two proper scoring rules complete the picture: the
# negative log-likelihood $-\frac1n\sum_i \log p_i(y_i)$ and the Brier score
# $\frac1n\sum_i\sum_k (p_{ik} - [y_i = k])^2$ (Brier 1950). Both reward calibration *and* sharpness,
# and both are minimised only by the true probabilities.
#
# **Edges, decided once.** A confidence exactly on an edge (0.6 with 5 bins) belongs to the bin that
# *ends* there, $(0.4, 0.6]$. Because a float32 0.6 is stored as 0.6000000238, the helper rounds the
# edges to the probabilities' own dtype before comparing, then accumulates in float64; that way a
# hand computation and the code always agree. Here is the whole implementation:

# %%
display(Code(inspect.getsource(cal.bin_indices) + "\n" + inspect.getsource(cal.calibration_error),
             language="python"))

# %% [markdown]
# ## 2. An accurate but over-confident network
#
# **Idea.** Cross-entropy keeps falling after every training example is classified correctly: the
# network can always lower it further by making its logits larger, which pushes confidence towards 1.
# On examples it has *not* seen, that extra confidence is unearned. We make this happen on purpose: a
# wide two-layer MLP (no dropout, no weight decay) trained for a long time on 1,200 MNIST-1D signals
# (Greydanus 2020), a deliberately hard 10-class task: the paper's MLP reaches 68% with over three times as
# much data, a CNN 94%.
# A callback records the validation error, NLL and ECE after every epoch.

# %%
data = datasets.mnist1d(n_train=N_TRAIN, seed=cfg.seed)
tracker = cal.CalibrationTracker(data.x_val, data.y_val, N_BINS)
model, history = cal.train_classifier(data, width=WIDTH, epochs=EPOCHS, seed=cfg.seed, callbacks=[tracker])
val_logits, test_logits = predict_logits(model, data.x_val), predict_logits(model, data.x_test)
test_probs = test_logits.softmax(-1)
before = cal.calibration_report(test_logits, data.y_test, N_BINS)
print(data)
print({k: round(v, 3) for k, v in before.items()})

# %% [markdown]
# Chance is 10%, so the network has learned a lot; but compare its accuracy with its mean confidence.
# The confidence histogram (Guo et al.'s Figure 1 in miniature) shows where the gap comes from: a
# large pile of predictions at confidence near 1, and across the middle range far more wrong answers
# than the stated confidence allows.

# %%
fig = cal.confidence_histogram(test_probs, data.y_test, "Test confidence of the over-confident MLP")

# %%
fig = cal.reliability_diagram(test_probs, data.y_test, "Over-confident MLP (test set)", N_BINS)

# %% [markdown]
# Every bar sits below the diagonal: at every confidence level the model is right less often than it
# claims. **Claim:** the test ECE is above 0.15. Across seeds 0–4 we measured 0.28–0.31 at quick scale
# and 0.33–0.36 at full scale, so 0.15 leaves a wide margin while still failing for a calibrated model.

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
fig = cal.epoch_curves(record)
best_epoch = int(np.argmin(record["nll"]))
nll_rise = record["nll"][-1] - record["nll"][best_epoch]
error_change = record["error"][-1] - record["error"][best_epoch]
ece_growth = record["ece"][-1] - record["ece"][best_epoch]
print(f"NLL minimum at epoch {best_epoch + 1}: NLL {record['nll'][best_epoch]:.2f} -> {record['nll'][-1]:.2f}, "
      f"error {record['error'][best_epoch]:.3f} -> {record['error'][-1]:.3f}, "
      f"ECE {record['ece'][best_epoch]:.3f} -> {record['ece'][-1]:.3f}")

# %% [markdown]
# **Claims.** From the NLL minimum to the last epoch, validation NLL rises by more than 0.3 nats
# (measured 0.65–0.82 at quick, 1.2–1.4 at full, seeds 0–4), while validation error does not get worse
# by more than 2 points (it changed by −0.04 to −0.006 at quick and −0.06 to −0.04 at full), and ECE grows
# by more than 0.1 (measured 0.17–0.22 at quick, 0.24–0.26 at full).

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
# change**. $T$ is chosen to minimise the NLL on a held-out *validation* split (never the test split),
# a one-parameter fit that cannot over-fit much (Guo et al. 2017, a single-parameter form of Platt
# scaling). Optimising $\log T$ rather than $T$ keeps $T$ positive without constraints.

# %%
display(Code(inspect.getsource(cal.fit_temperature), language="python"))

# %%
temperature = cal.fit_temperature(val_logits, data.y_val)
grid = np.logspace(-0.5, 1.2, 60)
fig = cal.nll_temperature_plot(val_logits, data.y_val, test_logits, data.y_test, grid, temperature)
print(f"fitted on validation: T = {temperature:.2f}")

# %%
scaled_logits = cal.apply_temperature(test_logits, temperature)
scaled_probs = scaled_logits.softmax(-1)
after = cal.calibration_report(scaled_logits, data.y_test, N_BINS)
predictions_changed = int((scaled_logits.argmax(-1) != test_logits.argmax(-1)).sum())
fig = cal.reliability_diagrams({"before (T = 1)": (test_probs, data.y_test),
                                f"after (T = {temperature:.2f})": (scaled_probs, data.y_test)},
                               "Temperature scaling on the untouched test set", N_BINS)

# %% [markdown]
# **Claims.** The fitted temperature is above 1.5 (measured 3.1–3.4 at quick, 4.1–4.4 at full), test ECE
# falls below half its value (the ratio after/before was 0.15–0.20 at quick and 0.11–0.16 at full),
# test NLL falls, and not a single test prediction changes (argmax is invariant, so we count changed
# predictions rather than compare accuracies approximately).

# %%
claim("The fitted temperature is above 1.5 (the model was over-confident)", temperature, ">", 1.5)
claim("Temperature scaling cuts test ECE below half its value", after["ece"] / before["ece"], "<", 0.5)
claim("Temperature scaling lowers test NLL", after["nll"] - before["nll"], "<", 0.0)
claim("Temperature scaling changes no test prediction", predictions_changed, "==", 0)

# %% [markdown]
# Our numbers beside those of Guo et al. (2017, Table 1, ECE with 15 bins). Theirs come from a
# 110-layer ResNet on CIFAR-100; ours from a small MLP, but the pattern is the same: a large gap before,
# a small one after, with one scalar fitted on validation data.

# %%
rows = [("Guo et al. 2017: ResNet-110, CIFAR-100", 16.53, 1.26),
        (f"this run: MLP width {WIDTH}, MNIST-1D", 100 * before["ece"], 100 * after["ece"])]
table = "| model | ECE before (%) | ECE after temperature scaling (%) |\n|---|---|---|\n"
table += "\n".join(f"| {name} | {b:.2f} | {a:.2f} |" for name, b, a in rows)
display(Markdown(table + f"\n\nTest accuracy {before['accuracy']:.3f} before and {after['accuracy']:.3f} after; "
                 f"NLL {before['nll']:.2f} → {after['nll']:.2f}; Brier {before['brier']:.3f} → {after['brier']:.3f}."))

# %% [markdown]
# **Explorer.** Slide the temperature from 0.25 to 8 and watch the reliability diagram: below the
# fitted value the bars stay under the diagonal (over-confident), far above it they rise over it
# (under-confident). Accuracy never moves. It answers live (well under a second per update).

# %%
explore(partial(cal.explore_temperature, test_logits, data.y_test),
        temperature=Slider(0.25, 8.0, 0.02, 1.0, log=True), n_bins=Slider(5, 30, 1, N_BINS))

# %% [markdown]
# **Practical consequence.** Temperature scaling is the first thing to try: one parameter, fitted in
# milliseconds on the validation split, no retraining, and the accuracy you already validated is
# provably untouched. Keep the validation split for it, refit after every retraining, and remember it
# corrects *average* over- or under-confidence only; it cannot fix a model that is over-confident on
# some inputs and under-confident on others.
#
# ## 4. What changes calibration
#
# Guo et al. (2017) found that depth, width, weaker weight decay and batch normalisation all made
# networks less calibrated. We already saw training length. Now we retrain the same recipe with
# narrower layers, with an L2 penalty, and with label smoothing (Szegedy et al. 2016), which trains
# against targets $(1 - \varepsilon)\,\text{one-hot} + \varepsilon/K$ so the network is never asked for
# confidence 1. Each model gets its own temperature fitted on validation; the over-confident model
# from section 2 is reused, not retrained.

# %%
settings = {f"width {w}": dict(width=w, epochs=EPOCHS) for w in SWEEP_WIDTHS}
settings[f"width {WIDTH} + L2 {WEIGHT_DECAY:g}"] = dict(width=WIDTH, epochs=EPOCHS, weight_decay=WEIGHT_DECAY)
settings[f"width {WIDTH} + smoothing {LABEL_SMOOTHING:g}"] = dict(width=WIDTH, epochs=EPOCHS,
                                                                   label_smoothing=LABEL_SMOOTHING)
sweep = cal.calibration_sweep(data, settings, seed=cfg.seed, n_bins=N_BINS)
sweep[f"width {WIDTH} (section 2)"] = {**before, "temperature": temperature,
                                      "ece_scaled": after["ece"], "nll_scaled": after["nll"]}
for name, r in sweep.items():
    print(f"{name:28s} accuracy {r['accuracy']:.3f}  ECE {r['ece']:.3f}  T {r['temperature']:.2f}")

# %%
fig = cal.sweep_bars(sweep, "What changes calibration (MNIST-1D, test set)")

# %% [markdown]
# **Claims.** The width-32 network is far better calibrated than the wide one (ECE lower by 0.21–0.26 at
# quick and 0.20–0.22 at full; we require 0.1); an L2 penalty of 0.01 more than halves the wide model's ECE
# (ratio 0.17–0.26 at quick, 0.25–0.34 at full); label smoothing 0.1 cuts it to below 0.6 of its value
# (ratio 0.32–0.44 at quick, 0.10–0.14 at full).

# %%
wide = sweep[f"width {WIDTH} (section 2)"]["ece"]
claim("A narrow (width-32) MLP is better calibrated: ECE gap to the wide one above 0.1",
      wide - sweep["width 32"]["ece"], ">", 0.1)
claim("An L2 penalty more than halves the wide model's ECE",
      sweep[f"width {WIDTH} + L2 {WEIGHT_DECAY:g}"]["ece"] / wide, "<", 0.5)
claim("Label smoothing cuts the over-confident model's ECE below 0.6 of its value",
      sweep[f"width {WIDTH} + smoothing {LABEL_SMOOTHING:g}"]["ece"] / wide, "<", 0.6)

# %% [markdown]
# ### Label smoothing can overshoot: an easy task becomes under-confident
#
# Label smoothing does not know how confident the model *should* be; it caps confidence for every
# example. On an easy task (scikit-learn's 8x8 digits, 95–98% test accuracy) a plain MLP is already
# nearly calibrated, and smoothing pulls correct predictions down from near 1 towards about 0.9: the
# bars now sit *above* the diagonal, and the fitted temperature falls below 1 (it sharpens).
# (Pixels are scaled to [0, 1] here; see the note in `cal.unit_digits`.)

# %%
digits = cal.unit_digits(seed=cfg.seed)
digit_models = {"plain": cal.train_classifier(digits, seed=cfg.seed, **DIGITS)[0],
                f"smoothing {LABEL_SMOOTHING:g}": cal.train_classifier(
                    digits, seed=cfg.seed, label_smoothing=LABEL_SMOOTHING, **DIGITS)[0]}
digit_probs = {name: (predict_logits(m, digits.x_test).softmax(-1), digits.y_test) for name, m in digit_models.items()}
digit_reports = {name: cal.evaluate_calibration(m, digits, N_BINS) for name, m in digit_models.items()}
fig = cal.reliability_diagrams(digit_probs, "Digits: plain vs label smoothing (test set)", N_BINS)
for name, r in digit_reports.items():
    print(f"{name:15s} accuracy {r['accuracy']:.3f}  confidence {r['confidence']:.3f}  ECE {r['ece']:.3f}  "
          f"T {r['temperature']:.2f}  ECE after scaling {r['ece_scaled']:.3f}")

# %% [markdown]
# **Claims.** With smoothing the digits model's ECE is above 0.08 (measured 0.13–0.15 at quick and
# 0.12–0.13 at full), without it below 0.06 (0.018–0.030 at quick, 0.008–0.037 at full), and the
# temperature fitted to the smoothed model is below 0.8 (0.33–0.54 at quick, 0.37–0.53 at full).

# %%
smoothed, plain = digit_reports[f"smoothing {LABEL_SMOOTHING:g}"], digit_reports["plain"]
claim("Label smoothing makes the easy-task model under-confident: ECE above 0.08", smoothed["ece"], ">", 0.08)
claim("Without smoothing the easy-task model is nearly calibrated: ECE below 0.06", plain["ece"], "<", 0.06)
claim("The temperature fitted to the smoothed model is below 0.8 (it sharpens)", smoothed["temperature"], "<", 0.8)

# %% [markdown]
# **Practical consequence.** Over-confidence grows with capacity and training length and shrinks with
# regularisation; label smoothing helps an over-confident model but is not a calibration method, and it
# can overshoot. Whatever you train with, measure calibration on held-out data and finish with a
# temperature fitted on validation: it repairs both directions (T > 1 and T < 1).
#
# ## 5. Why calibration matters, and how far to trust an ECE number
#
# ### A decision with a threshold
#
# A common deployment rule: act automatically when the confidence is at least $t$, otherwise abstain
# and send the case to a person. Whoever picks $t = 0.8$ expects the automated cases to be right about
# 80% of the time or more. With the over-confident model that promise is broken; after temperature
# scaling it holds, at the price of acting on fewer cases.

# %%
thresholds = np.round(np.arange(0.3, 0.96, 0.05), 2)
curves = {"before scaling": cal.coverage_accuracy(test_probs, data.y_test, thresholds),
          "after scaling": cal.coverage_accuracy(scaled_probs, data.y_test, thresholds)}
fig = cal.coverage_plot(curves, "Act only when confidence >= t (MNIST-1D test set)", mark=THRESHOLD)
at_t = {name: cal.coverage_accuracy(p, data.y_test, [THRESHOLD]) for name, p in
        (("before", test_probs), ("after", scaled_probs))}
for name, c in at_t.items():
    print(f"t = {THRESHOLD}: {name} scaling acts on {c['coverage'][0]:.1%} of cases, right on {c['accuracy'][0]:.1%}")

# %% [markdown]
# **Claims.** Before scaling, the cases acted on at $t = 0.8$ are right less than 75% of the time
# (measured 0.60–0.66 at quick and 0.56–0.60 at full, seeds 0–4); after scaling they are right at least
# 80% of the time, as the threshold promises (0.97–1.0 at both scales).

# %%
claim(f"Before scaling, the threshold {THRESHOLD} over-promises: accuracy when acting below 0.75",
      at_t["before"]["accuracy"][0], "<", 0.75)
claim(f"After scaling, accuracy when acting at threshold {THRESHOLD} is at least {THRESHOLD}",
      at_t["after"]["accuracy"][0], ">=", THRESHOLD)

# %% [markdown]
# In the right panel the two curves nearly coincide: temperature rarely swaps which of two cases is
# more confident, so the *ranking* (and any trade-off chosen by coverage) barely changes. What changes
# is the *meaning* of the threshold: after scaling, "0.8" means 80%, and the same number now buys far
# less coverage.
# That is exactly what ranking, risk scoring, medical triage and safety cut-offs rely on.
#
# ### The ECE estimate has its own noise
#
# ECE is itself measured on a finite sample, and it is biased upwards: even a *perfectly* calibrated
# model shows a positive ECE, because each bin's accuracy is a noisy estimate and the absolute value
# turns noise into gap. We build such a model by construction (labels drawn from its own
# probabilities) and measure its ECE at several test-set sizes.

# %%
floor = cal.ece_noise_floor(NOISE_SIZES, N_BINS, repeats=NOISE_REPEATS, seed=cfg.seed)
fig = cal.noise_floor_plot(floor)
for n, m, s in zip(floor["n"], floor["mean"], floor["std"]):
    print(f"n = {n:>6}: ECE {m:.4f} ± {s:.4f} (true value 0)")

# %% [markdown]
# **Claims.** With 100 test examples a perfectly calibrated model still measures an ECE above 0.05
# (0.10–0.12 across seeds 0–4 and both scales), and the estimate shrinks by more than 5x from 100 to
# 10,000 examples (ratio 8–11), roughly as $1/\sqrt{n}$.

# %%
claim("A perfectly calibrated model measured on 100 examples shows ECE above 0.05", floor["mean"][0], ">", 0.05)
shrink = floor["mean"][0] / floor["mean"][list(floor["n"]).index(10_000)]
claim("The ECE noise floor shrinks more than 5x from 100 to 10,000 examples", shrink, ">", 5)

# %% [markdown]
# A bootstrap interval makes the noise visible for a real model. We keep only 200 test examples (a
# realistic size for a rare class or a new market), resample them with replacement and recompute ECE.

# %%
small = torch.randperm(len(data.y_test), generator=torch.Generator().manual_seed(cfg.seed))[:SMALL_TEST].to(data.y_test.device)
intervals = {name: cal.bootstrap_ece(p[small], data.y_test[small], N_BOOT, N_BINS, seed=cfg.seed)
             for name, p in (("before scaling", test_probs), ("after scaling", scaled_probs))}
for name, b in intervals.items():
    print(f"{name}: ECE {b['ece']:.3f}, 90% bootstrap interval [{b['low']:.3f}, {b['high']:.3f}]")
print(f"digits, already calibrated: ECE {plain['ece']:.3f} before and {plain['ece_scaled']:.3f} after scaling")

# %% [markdown]
# Two lessons. The interval is wide, so on 200 examples ECE differences of a few hundredths are not
# evidence. And for the scaled model the interval may even sit *above* the estimate: resampling with
# replacement adds the same upward bias we just measured, so read the bootstrap for the *spread*,
# not as a correction of the value.
#
# **Claim.** On 200 examples, the 90% bootstrap interval of the scaled model's ECE is wider than 0.04
# (measured 0.068–0.083 across seeds 0–4 and both scales).
# This is also why ECE can *rise* after scaling a model that was already calibrated (look at the digits
# line above on some seeds): the fitted $T$ is close to 1, the true change is tiny, and what you read
# is noise from a small validation set and a small test set.

# %%
width_after = intervals["after scaling"]["high"] - intervals["after scaling"]["low"]
claim("On 200 test examples the 90% bootstrap interval of ECE is wider than 0.04", width_after, ">", 0.04)

# %% [markdown]
# **Explorer.** The number of bins and their placement change the ECE estimate too. Equal-width bins
# leave the high-confidence bins crowded and the rest nearly empty; equal-mass bins give every bin the
# same number of predictions. Compare both on the over-confident model (the right panel shows the whole
# curve for 5–30 bins).

# %%
explore(partial(cal.explore_bins, test_probs, data.y_test),
        n_bins=Slider(5, 30, 1, N_BINS), scheme=Choice(list(cal.SCHEMES)))

# %% [markdown]
# **Practical consequence.** Report ECE with its binning and its sample size, add an interval when the
# test set is small, and pair it with a proper scoring rule (NLL or Brier), which needs no bins.
#
# ## Your turn
#
# **1. ECE by hand.** Ten predictions of a 4-class model, each with its top-class confidence and
# whether it was right. Use 5 equal-width bins $(0, 0.2], (0.2, 0.4], \dots, (0.8, 1]$ (an edge value
# belongs to the bin that ends there). Compute ECE on paper and type your number.

# %%
display(Markdown("| example | " + " | ".join(str(i + 1) for i in range(10)) + " |\n|---|" + "---|" * 10 +
                 "\n| confidence | " + " | ".join(f"{c:g}" for c in cal.HAND_CASE_CONFIDENCE) +
                 " |\n| correct | " + " | ".join("yes" if ok else "no" for ok in cal.HAND_CASE_CORRECT) + " |"))

# %%
my_ece = None  # replace with your hand-computed ECE, e.g. 0.123

# %%
cal.check_hand_ece(my_ece);


# %% [markdown]
# <details><summary>Solution</summary>
#
# Bins: $(0.8, 1]$ holds 0.95, 0.9, 0.85 (2 of 3 right): gap $|0.667 - 0.9| = 0.233$.
# $(0.6, 0.8]$ holds 0.8, 0.72, 0.65 (2 of 3 right): gap $|0.667 - 0.723| = 0.057$.
# $(0.4, 0.6]$ holds 0.6, 0.55 (1 of 2): gap $|0.5 - 0.575| = 0.075$.
# $(0.2, 0.4]$ holds 0.4, 0.3 (1 of 2): gap $|0.5 - 0.35| = 0.15$.
# ECE $= 0.3 \cdot 0.233 + 0.3 \cdot 0.057 + 0.2 \cdot 0.075 + 0.2 \cdot 0.15 = 0.132$.
# Check: `cal.expected_calibration_error(*cal.hand_case(), n_bins=5)`.
# </details>
#
# **2. Temperature by search.** Write `search_temperature(logits, labels)` that finds $T$ by a
# one-dimensional search (a grid on a log scale, or golden-section search) minimising the NLL of
# `logits / T`. The checker compares it with `fit_temperature` on this notebook's validation logits.

# %%
def search_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Return the temperature that minimises the NLL of softmax(logits / T)."""
    raise NotImplementedError


# %%
cal.check_temperature_search(search_temperature, val_logits, data.y_val);

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# def search_temperature(logits, labels):
#     grid = torch.logspace(-1, 1, 400, dtype=torch.float64)
#     nll = [torch.nn.functional.cross_entropy(logits.double() / t, labels).item() for t in grid]
#     return grid[int(np.argmin(nll))].item()
# ```
# NLL is smooth and has a single minimum in $T$ here, so a fine log-spaced grid lands within a
# fraction of a percent of L-BFGS.
# </details>
#
# ## Interview answer
#
# *"The model is accurate but poorly calibrated. What do you do?"* The answer below is filled in with
# this run's numbers.

# %%
display(Markdown(f"""
Accuracy says how often the top class is right; calibration says whether a stated probability
matches the observed frequency. I would first **measure** it on held-out data: a reliability diagram
and ECE (15 equal-width bins), plus NLL or Brier, which need no bins. In this notebook a wide MLP
reached test accuracy {before['accuracy']:.1%} with mean confidence {before['confidence']:.1%}: ECE
{before['ece']:.3f}, NLL {before['nll']:.2f}. Validation NLL had started rising {EPOCHS - best_epoch - 1}
epochs before the end while the error did not get worse: over-fitting shows in probabilities first.
"""))

# %%
display(Markdown(f"""
The first **fix** is temperature scaling: one scalar fitted on the validation split by minimising NLL.
Here T = {temperature:.2f}; test ECE fell to {after['ece']:.3f} and NLL to {after['nll']:.2f}, and
{predictions_changed} of {len(data.y_test)} predictions changed, because dividing logits by T cannot
change the argmax. Training choices matter too: a width-32 network had ECE {sweep['width 32']['ece']:.3f},
an L2 penalty brought the wide one to {sweep[f'width {WIDTH} + L2 {WEIGHT_DECAY:g}']['ece']:.3f}, label smoothing to
{sweep[f'width {WIDTH} + smoothing {LABEL_SMOOTHING:g}']['ece']:.3f}. But label smoothing can overshoot: on the easy
digits task it raised ECE from {plain['ece']:.3f} to {smoothed['ece']:.3f} (under-confident; fitted T
{smoothed['temperature']:.2f} < 1).
"""))

# %%
display(Markdown(f"""
It **matters** wherever a probability drives an action: with "act when confidence ≥ {THRESHOLD}" the
uncalibrated model was right on only {at_t['before']['accuracy'][0]:.1%} of the cases it acted on; after
scaling, {at_t['after']['accuracy'][0]:.1%}. Ranking, risk pricing, medical triage and safety cut-offs all
depend on this. Finally, ECE is a noisy estimate: on 200 examples its 90% bootstrap interval spans
{width_after:.3f}, so small ECE differences need more data before they mean anything.
"""))

# %% [markdown]
# ## Traps
#
# - **"High accuracy means the probabilities can be trusted."** Section 2: a model far above chance had
#   a mean confidence well above its accuracy and ECE above 0.15.
# - **"Temperature scaling trades accuracy for calibration."** Section 3: zero test predictions changed;
#   argmax is invariant to dividing by $T$.
# - **"Fit the temperature on the test set."** We fitted on validation and evaluated on the untouched
#   test split; fitting on test reports a calibration you will not get in production.
# - **"Label smoothing is a calibration method."** Section 4: it helped the over-confident MNIST-1D
#   model but made the digits model under-confident (fitted $T < 1$).
# - **"Stop at the best validation accuracy and the probabilities will be fine."** Section 2: NLL and ECE
#   kept getting worse while the error stayed flat.
# - **"ECE is an exact number."** Section 5: a perfectly calibrated model measures ECE well above zero
#   on small samples, the bootstrap interval is wide, and the value moves with the number and placement
#   of bins.
