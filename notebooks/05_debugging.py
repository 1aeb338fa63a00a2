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
# # 05 · Debugging training failures
#
# Interviewers love debugging questions because the answer shows whether you have trained real models.
# Anyone can recite "lower the learning rate"; someone who has lost a week to a missing `zero_grad()` or a
# validation set fed through the wrong preprocessing answers in an **order**, and knows which check
# separates one cause from another. This notebook plants twenty bugs, one at a time, in a healthy training
# pipeline and runs the senior checklist on each as code: every check is a function that acts on one part
# of the pipeline, and every claim about what a check catches, or misses, is measured and asserted.
#
# **Questions this notebook answers**
# - Training loss is not decreasing. What do you check, and in which order?
# - "Loss at init is ln C" and "overfit one batch" passed. Is the pipeline correct?
# - Training loss improves but validation gets worse, or looks too good. What happened, and how do you find out?
# - A NaN appeared. How do you find where it came from?
# - What do masking, class weights, broadcasting and truncation bugs look like, and what catches each?

# %%
from helpers import setup

cfg = setup("05_debugging")

# %% [markdown]
# **The map.** The symptom tells you where to start; the checks below tell you which cause it is.
#
# | symptom | first check | bugs it finds here |
# |---|---|---|
# | loss flat near ln C | labels vs inputs; update size; gradients reach every tensor | shuffled labels, tiny rate |
# | loss spikes, then stalls | update-to-weight ratio; a repeated step at learning rate 0 | huge rate, no `zero_grad` |
# | loss falls, then floors high | loss of a perfect prediction; overfit one batch | softmax before cross-entropy |
# | loss is NaN | a finiteness guard after `backward()`, then anomaly mode | a hand-written log of a softmax |
# | validation far below training | validation scale; adversarial validation | raw validation inputs, shift |
# | validation worse as training goes on, audits pass | the train/validation gap over training | overfitting (notebook 03) |
# | validation too good to be true | near-duplicates across the split; a split by time | leakage, drift |
# | fine on average, failing users | metrics by segment: class, tag, length, time | starved class, truncation |
#
# Before any of these, **look at a batch** exactly as the model receives it, after the loader and augmentation:
# label-sorted data that was never shuffled (every batch one class), an augmentation that changes the label (a
# flipped 6 is a 9), or augmentation applied to validation too all show up in a minute of looking, and in none of
# the checks below.
#
# All sizes live in one cell. At quick scale each pipeline trains for fewer steps; the claims hold at both.

# %%
from helpers.config import pick

STEPS = pick(quick=200, full=800)    # mini-batch steps of each diagnosed training run (batch 128)
OVERFIT_STEPS = 100                  # steps on one fixed batch of 32 examples
NAN_STEPS = 30                       # steps of the NaN hunt at 100x the learning rate
TIMING_ROUNDS = pick(quick=3, full=5)
print(f"scale {cfg.scale}: {STEPS} training steps per pipeline, {OVERFIT_STEPS} steps to overfit one batch")

# %% [markdown]
# ## 1. A pipeline with a place for every bug
#
# **Plain idea.** A training run is six decisions: how the data is prepared, which model is built, which loss
# it minimises, which optimizer updates which parameters, what one training step does, and how predictions
# are made. A bug lives in exactly one of them. We make each a separate field of one object, so a bug can be
# planted by name — `dataclasses.replace(pipeline, loss=buggy_loss)` — and a check can act on one part directly:
# call the loss on a perfect prediction, repeat one training step, predict twice.

# %%
from helpers.scratch import pipeline
from helpers.source import show_source

show_source(pipeline.Pipeline, pipeline.train_step, pipeline.predict)

# %% [markdown]
# The healthy pipeline for MNIST-1D (Greydanus, 2020; ten classes of length-40 signals): an MLP with two
# hidden layers of 128 units, BatchNorm and dropout 0.1, trained by Adam at a learning rate of 2e-3 on
# batches of 128. Two more healthy pipelines join it below: scikit-learn's 8x8 digits, and a padded sequence
# tagger for the masking bugs.

# %%
from helpers.experiments import nb05_debugging

mnist = nb05_debugging.healthy("mnist1d", cfg.seed)
mnist.data

# %% [markdown]
# ## 2. Two famous checks on a healthy run
#
# **Loss at init.** An untrained classifier should spread its probability evenly over the $C$ classes. Its
# logits are small and nearly equal, the softmax gives each class about $1/C$, and the cross-entropy is
#
# $$\mathcal{L}_0 = -\log \operatorname{softmax}(z)_y \approx -\log \tfrac{1}{C} = \ln C,$$
#
# 2.30 nats for ten classes. A much larger value means the logits start large (bad scale or initialisation);
# a much smaller one means the loss is not the average over examples you think it is.
#
# **Overfit one batch.** A model with ample capacity, trained on the same 32 examples again and again, should
# drive their loss to nearly zero (here: below a tenth of ln C in 100 steps). If it cannot, something between the
# inputs and the update is broken.
#
# Both checks run the pipeline's own parts: `loss_at_init` calls the pipeline's loss on a fresh model, and
# `overfit_one_batch` predicts once (as a loop that evaluates before it trains does), then calls the pipeline's
# own optimizer and training step.

# %%
from helpers.scratch import training_checks

show_source(training_checks.loss_at_init, training_checks.overfit_one_batch)

# %% [markdown]
# `diagnose` runs the whole checklist of section 3 on a pipeline: one training run, plus a dozen direct probes.
# Here is the report of the healthy MNIST-1D pipeline, and its learning curves.

# %%
from helpers import tables
from helpers.scratch.diagnose import diagnose

healthy_report = diagnose(mnist, STEPS, OVERFIT_STEPS)
tables.show(healthy_report.rows())

# %%
fig = nb05_debugging.curves_figure(healthy_report, mnist.data.n_classes)

# %% [markdown]
# The loss starts at ln 10 and falls, one batch is memorised, and the model beats the best input-independent
# guess (always predicting the most common class) by a wide margin. Across seeds 0–4 we measured a loss at
# init of 1.00–1.02 × ln 10, an overfit loss below 0.003 nats, and a validation accuracy of 0.55–0.59 at quick
# scale (200 steps) and 0.62–0.64 at full scale (800 steps), a little below the 0.68 that the MNIST-1D paper
# reports for an MLP trained longer.

# %%
from helpers.claims import claim

claim("the healthy pipeline's loss at init is within 5% of ln C",
      abs(healthy_report.value("init_loss") - 1), "<=", 0.05)
claim("overfitting one batch of 32 drives the healthy pipeline's loss below 2% of ln C",
      healthy_report.value("overfit_loss"), "<", 0.02)
claim("the healthy pipeline beats the input-independent baseline by more than 0.3 in validation accuracy",
      healthy_report.value("baseline_gain"), ">", 0.3)

# %% [markdown]
# ## 3. The checklist as code
#
# The guide's ordered answer to "training loss is not decreasing" has seven steps; its answer to "validation
# gets worse" adds an eighth: look at the split and at segments. Each step becomes a few checks. A check that
# only reads the logged curves cannot separate a wrong loss from a wrong learning rate — both give a flat curve —
# so most checks act on one part of the pipeline directly:

# %%
from helpers.experiments import nb05_debugging_figures as figures
from helpers.scratch.diagnose import RULE, RULES
from helpers.scratch.diagnose import STEPS as CHECKLIST

tables.show([{"step": f"{rule.step}. {CHECKLIST[rule.step]}", "check": rule.check, "healthy range": rule.text()}
             for rule in RULES])

# %% [markdown]
# The ranges were set with margin from the healthy pipelines here, and two are tied to this data. The 1-NN label
# check assumes that raw distance means similarity, which holds for MNIST-1D and digits; on raw images or text
# the nearest neighbour can disagree even with correct labels, so compare embeddings from a pretrained model
# instead. Padding invariance sits under the loss (step 2): masking is part of what the loss averages over.
#
# Four of the probes, each a few lines. **A perfect prediction should cost nothing**: logits of 30 on the true
# class and 0 elsewhere give a cross-entropy of $\ln(1 + (C-1)e^{-30}) \approx 0$. **Class weights should not
# explode**: at uniform logits every example's gradient has the same size unless the loss weights it, so the
# spread of those sizes *is* the spread of the effective weights. **A repeated step at learning rate 0** sees
# the same weights, batch and dropout masks twice: it must produce the same gradient twice, unless old gradients
# are never cleared. **Backprop from one example** (Karpathy's dependency check): the gradient of example $i$'s
# output with respect to the inputs must vanish on every other example, in eval mode, since BatchNorm in train
# mode mixes a batch by design.

# %%
show_source(training_checks.confident_loss, training_checks.weight_spread,
            training_checks.step_gradient_ratio, training_checks.batch_leak)

# %% [markdown]
# ## 4. The gallery: every planted bug, every check
#
# Twenty bugs, each planted by name in one part of one healthy pipeline (table below), and four healthy
# pipelines: MNIST-1D, digits, digits through a plain-SGD MLP without normalization, and the tagger. `gallery` diagnoses each. The healthy MNIST-1D report from section 2 is reused, and
# the bugs that only change the validation split reuse its training run, since they train the same model.

# %%
reports = nb05_debugging.gallery(cfg.seed, STEPS, OVERFIT_STEPS, done={"healthy MNIST-1D": healthy_report})
expected = {name: bug.step for name, bug in nb05_debugging.BUGS.items()}
parts = {name: bug.part for name, bug in nb05_debugging.BUGS.items()}

# %% [markdown]
# Read the heatmap row by row. Green passes, orange fails, grey does not apply (padding checks for unpadded
# data, input statistics for token ids), and the dark cell marked X is the **first failure in checklist order**:
# where a debugging session that follows the checklist stops and looks. The number after each bug's name is the
# step whose check was built to catch it; that is not always the part it lives in (an optimizer given only the
# head is caught at step 5, when tensors fail to move).

# %%
fig = figures.heatmap(reports, expected)

# %%
tables.show(figures.measured_rows(reports, parts, expected))

# %% [markdown]
# Two things to read off. No check *earlier* than the one built for a bug fires on it, so each bug is stopped
# by a check that names its cause; later checks often fail too — a broken learning rate also fails "beats the
# baseline" — which is why the *order* matters: fix the first failure, then rerun. And the four healthy
# pipelines, Adam with BatchNorm and plain SGD without it, pass every check that applies to them: on these
# pipelines no threshold cries wolf. A very different model (a CNN, a transformer, a huge learning-rate warmup)
# may need its own healthy run to set the ranges, which is how a team should calibrate such a checklist.

# %%
healthy_names = list(nb05_debugging.HEALTHY)
claim("every healthy pipeline (MNIST-1D, digits with Adam and with plain SGD, tagging) passes every check",
      sum(f.passed is False for name in healthy_names for f in reports[name].findings), "==", 0)
claim("no check before the step expected to catch it fires on any planted bug, and that step's check does",
      sum(reports[name].first_failure() is not None and reports[name].first_failure().rule.step == step
          for name, step in expected.items()), "==", len(expected))

# %% [markdown]
# **Explorer.** Pick a bug and press Run: the pipeline is trained afresh (about a second), and you see what the
# curves show — often very little — next to the check that stops the checklist.

# %%
from functools import partial

from helpers.widgets import Choice, explore

explore(partial(nb05_debugging.explore_bug, seed=cfg.seed), run_button=True,
        bug=Choice(list(nb05_debugging.CHOICES), "reshape mixes the batch"))

# %% [markdown]
# ## 5. What the famous checks miss
#
# "Loss at init" and "overfit one batch" are necessary, not sufficient. Both act on one batch at the start of
# training, so anything that only shows across batches, across modes, in some parameters, or in part of the
# data slips through:
#
# - **Shuffled labels** overfit one batch as easily as true ones: a network memorises 32 arbitrary labels.
# - **`reshape` where a transpose was meant** mixes the examples of a batch. One fixed batch is one fixed
#   mixture, which a network can still memorise; on fresh batches it learns nothing.
# - **Eval mode left on in training** (the loop evaluates, then forgets `model.train()`) turns dropout off,
#   and BatchNorm normalizes with running statistics that never update (still mean 0 and variance 1), so it
#   normalizes nothing. The overfit check predicts once before it trains, as a real loop does, so the bug is
#   active there (its overfit loss differs from the healthy one in the table) and still the batch is memorised.
#   The init check cannot see it at all: it measures a fresh model and never runs the training step. The
#   curves do not name it either: validation ends a few points below the healthy run, nothing more.
# - **A frozen layer** receives no gradient, and a gradient check that — like most — only loops over parameters
#   with `requires_grad=True` skips it by its very definition (the table's "tensors without gradient" is 0).
#   Only "did every tensor move?" catches it.
# - **Exploding class weights** leave the loss at init at ln C: a weighted mean divides by the sum of the weights.
# - **Pads counted in the loss** change nothing a learner looks at; only a padding-invariance test sees them.
# - **Softmax before cross-entropy** passes the init check *better* than the healthy loss (uniform probabilities
#   fed back in as logits are uniform again), and costs only a few points of accuracy; but a perfect prediction
#   now costs $\ln(1 + (C-1)/e) = 1.46$ nats, so one batch can never be overfit.

# %%
missed = ["shuffled labels", "reshape mixes the batch", "eval mode in training", "first layer frozen",
          "exploding class weights", "pads counted in the loss"]
tables.show([{"pipeline": name, "loss at init / ln C": reports[name].value("init_loss"),
              "overfit-one-batch loss / ln C": reports[name].value("overfit_loss"),
              "tensors without gradient": reports[name].value("no_gradient"),
              "validation accuracy": reports[name].extras["val_accuracy"],
              "caught by": "—" if reports[name].first_failure() is None else
              figures.SHORT[reports[name].first_failure().rule.key]} for name in ["healthy MNIST-1D", *missed]])

# %%
famous = {name: reports[name].passed("init_loss") and reports[name].passed("overfit_loss") for name in missed}
claim("eval mode in training is active in the overfit check: its overfit loss differs from the healthy one by over 10%",
      abs(reports["eval mode in training"].value("overfit_loss") / healthy_report.value("overfit_loss") - 1), ">", 0.1)
claim("shuffled labels, a batch-mixing reshape, eval mode in training, a frozen layer, exploding class weights "
      "and counted pads all pass both famous checks", sum(famous.values()), "==", len(missed))
softmax = reports["softmax before cross-entropy"]
claim("softmax before cross-entropy puts the loss at init within 5% of ln C", abs(softmax.value("init_loss") - 1),
      "<=", 0.05)
claim("with softmax before cross-entropy, overfitting one batch stalls near ln(1 + 9/e) = 1.46 nats",
      sum(softmax.extras["overfit_losses"][-5:]) / 5, "between", (1.40, 1.50))
claim("the movement check finds parameter tensors that never change with a frozen layer",
      reports["first layer frozen"].value("unchanged"), ">=", 0.2)


# %% [markdown]
# ### Your turn: catch eval mode in training
#
# Write `trains_in_train_mode(pipeline) -> bool`: True when the pipeline's training step runs its dropout and
# BatchNorm layers in train mode. Build a model with `pipeline.fresh_model()` and an optimizer with
# `pipeline.make_optimizer(model)`; call `pipeline.predict(model, x)` once first (a real loop evaluates before
# it trains, and that is when the bug bites); then record `module.training` from a forward *pre*-hook
# (`module.register_forward_pre_hook`) on every `torch.nn.Dropout` and `torch.nn.BatchNorm1d`, and run
# `pipeline.step(model, optimizer, x, y)` once with `x, y = pipeline.batch(64)`. The checker runs your function
# on two healthy pipelines, the eval-mode bug, and the bug that leaves *prediction* in train mode (whose training
# step is fine).

# %%
def trains_in_train_mode(pipeline):
    raise NotImplementedError


nb05_debugging.check_train_mode(trains_in_train_mode, cfg.seed);

# %% [markdown]
# ## 6. Learning rate: too high diverges, too low looks flat
#
# **Mechanism.** The loss curve cannot tell a rate that is too high from a bug that scrambles the data, but the
# size of each update relative to the weights can: the **update-to-weight ratio**
# $\lVert \Delta W \rVert / \lVert W \rVert$ per layer. Karpathy's rule of thumb is a scale ratio of about
# $10^{-3}$ over training. Adam moves every weight by about the learning rate $\eta$ in its first steps,
# whatever the gradient's size, so a layer of $n$ weights starts near $\eta\sqrt{n} / \lVert W \rVert$: about
# 0.04 for our healthy layers, and 100 times that at 100x the rate, where the first step moves the weights by
# several times their own size. The loss spikes, and the updates then shrink by many orders of magnitude (the
# figure draws anything below $10^{-8}$ on that line): the network has stopped learning, at chance, because its
# ReLUs have died — a unit whose pre-activation is negative for every input outputs 0 and passes back no gradient. At 1/1000 of the rate the ratio stays near $10^{-5}$, and the flat
# loss curve looks exactly like a data bug.

# %%
rates = {"healthy (2e-3)": reports["healthy MNIST-1D"], "x100 (0.2)": reports["learning rate x100"],
         "/1000 (2e-6)": reports["learning rate /1000"]}
fig = figures.learning_rate_figure(rates, mnist.data.n_classes, RULE["update_ratio"].threshold)

# %%
tables.show([{"run": name, "largest update / weight (first 20 steps)": report.value("update_ratio"),
              "largest loss / ln C": report.extras["loss_spike"],
              "overfit-one-batch loss": report.value("overfit_loss"),
              "validation accuracy": report.extras["val_accuracy"]} for name, report in rates.items()])

# %% [markdown]
# Across seeds 0–4 at both scales the 100x run's first update reached 3.9 times the weights (healthy 0.039),
# and its loss peaked at 9–16 x ln C; at 1/1000 the largest ratio was 3.9e-5. Both ended at chance. The
# practical consequence: when a curve is flat, compute the update ratio before touching the data; when it
# spikes, compare against a run at a much lower rate — the healthy run is that control here.
#
# **Dead units: an activation check.** The same question asked of the activations: what share of each hidden
# layer's ReLUs output 0 on *every* validation input? Such a unit has no gradient and cannot recover. Watch the
# share per layer during training; a share that climbs toward 1 in one layer points at too high a rate (or a bad
# initialisation), and a gradient norm that shrinks layer by layer toward the input points at vanishing gradients.

# %%
claim("at 100x the learning rate an update in the first 20 steps changes a weight matrix by over half its norm",
      reports["learning rate x100"].value("update_ratio"), ">", 0.5)
claim("at 1/1000 of the learning rate no update in the first 20 steps changes a weight matrix by 0.1% of its norm",
      reports["learning rate /1000"].value("update_ratio"), "<", 1e-3)
claim("at 100x the learning rate the training loss spikes above 5 ln C",
      reports["learning rate x100"].extras["loss_spike"], ">", 5)
claim("both mis-set learning rates end near chance (validation accuracy below 0.2)",
      max(rates["x100 (0.2)"].extras["val_accuracy"], rates["/1000 (2e-6)"].extras["val_accuracy"]), "<", 0.2)

# %%
dead = {name: nb05_debugging.dead_unit_shares(report.run.model, mnist.data.x_val) for name, report in rates.items()}
tables.show([{"run": name, "dead units, hidden layer 1": shares[0], "dead units, hidden layer 2": shares[1]}
             for name, shares in dead.items()])
claim("after training at 100x the learning rate more than 90% of one hidden layer's ReLUs are dead",
      max(dead["x100 (0.2)"]), ">", 0.9)
claim("the healthy run has no hidden layer with more than 5% dead ReLUs", max(dead["healthy (2e-3)"]), "<", 0.05)

# %% [markdown]
# ## 7. NaN hunting
#
# **Plain idea.** NaNs have many sources. In the forward pass: float16 activations overflowing past 65,504 (use
# loss scaling with float16, or bfloat16, which has float32's range), a missing epsilon (a division by a zero
# norm, a log or square root of 0), NaNs already in the inputs. In the backward pass: the derivative of such an
# operation is infinite even where its output is not. The usual remedies: epsilons, the library's fused losses,
# gradient clipping, a learning-rate warmup, and a lower rate. The case below is a backward-first NaN.
# Cross-entropy written by hand as
# $-\log(\operatorname{softmax}(z))_y$ works until a large step makes some probability underflow to exactly 0.
# The forward pass is still fine as long as that class is not the label — it only picks $\log p_y$ — but the
# backward pass of $\log$ divides by $p$: $0 / 0 = \text{NaN}$ for every class that underflowed. Adam then
# writes NaN into every weight, and only the *next* forward pass shows a NaN loss, in every layer at once.
#
# **The recipe.** A guard right after `backward()` that checks the loss and gradients are finite (one
# synchronisation), and, when it trips, a replay of that one step under `torch.autograd.detect_anomaly`, which
# names the backward function that returned NaN. `torch.nn.functional.cross_entropy` computes `log_softmax`
# directly, $z_y - \log\sum_j e^{z_j}$ with the maximum subtracted, and never takes the log of an underflowed
# probability.

# %%
from helpers.experiments import nb05_debugging_nan
from helpers.scratch import nan_hunting

show_source(nan_hunting.naive_cross_entropy, nan_hunting.gradients_finite, nan_hunting.anomaly_origin)

# %%
naive = nb05_debugging_nan.hunt(cfg.seed, steps=NAN_STEPS)
library = nb05_debugging_nan.hunt(cfg.seed, steps=NAN_STEPS, naive=False)
hunts = {"-log(softmax)": naive, "F.cross_entropy": library}
tables.show([{"loss": name, "guard trips at step": run.guard_step, "loss at that step": run.loss_at_guard,
              "anomaly replay names": run.origin, "first non-finite loss (step)": run.nan_loss_step,
              "forward hooks blame": run.blamed} for name, run in hunts.items()])

# %%
fig = nb05_debugging_nan.figure(naive, library)

# %% [markdown]
# Depending on the seed, the hand-written loss breaks in one of two ways. Either the gradients turn NaN while
# the loss is still an ordinary number, and one step later every weight is NaN — forward hooks looking for "the
# first layer whose output is NaN" then blame the first linear layer, which did nothing wrong; or the label's
# own probability underflows, the loss becomes infinite, and hooks on the layers find nothing at all. In both
# cases the guard plus the anomaly replay point at `LogBackward0`, the `log` in the loss. The control is the
# library's cross-entropy at the *same* learning rate: its loss spikes, but it never produces a NaN, so the
# learning rate alone does not explain the NaN. Yet the control is not healthy either: its loss sits dead at
# about ln 10 after the spike. "No NaN" does not mean "training works"; that rate is still wrong.
#
# What each tool costs per training step, as CPU time of the calling thread (so other programs on the machine do
# not distort the ratios; interleaved rounds, fastest round):

# %%
import math

from helpers.timing import machine_note

costs = nb05_debugging_nan.overheads(cfg.seed, TIMING_ROUNDS)
print({name: f"{seconds * 1e3:.2f} ms" for name, seconds in costs.items()}, "|", machine_note(cfg.device))

# %%
claim("a finiteness guard after backward() plus an anomaly replay names LogBackward0 as the origin of the NaN",
      naive.origin, "==", "LogBackward0")
claim("the library cross-entropy at the same learning rate produces no non-finite loss or gradient in 30 steps",
      (library.guard_step is not None) + (library.nan_loss_step is not None), "==", 0)
claim("the library cross-entropy at that rate ends with its loss within 10% of ln C: no NaN, and no learning",
      abs(sum(library.losses[-5:]) / 5 / math.log(10) - 1), "<=", 0.1)
claim("anomaly detection makes a training step cost at least 3x a plain one", costs["anomaly"] / costs["plain"],
      ">=", 3)
claim("the finiteness guard adds less than half a step's cost", costs["guard"] / costs["plain"], "<", 1.5)

# %% [markdown]
# So: keep the guard on in every long run (it is nearly free), and switch anomaly mode on only to replay the
# step the guard caught — it records a traceback for every operation of the forward pass.
#
# ## 8. Masking: three bugs, three different checks
#
# **Plain idea.** Sequences in a batch are padded to one length, and the loss must average over real tokens
# only:
#
# $$\mathcal{L} = \frac{\sum_{t} m_t\,\ell_t}{\sum_t m_t}, \qquad m_t = 1 \text{ for a real token, 0 for a pad.}$$
#
# Our tagger reads token sequences that end with an end-of-sequence token, padded with the **same** id — as
# many tokenizers do. The correct mask comes from each sequence's length: every position up to and including
# the first end token.

# %%
from helpers.scratch import masking

show_source(masking.real_tokens, masking.masked_cross_entropy)

# %% [markdown]
# Three ways to get it wrong, each caught by a different check:
#
# - **Dividing by every position** (`numel`) instead of the mask's sum shrinks the loss by the share of real
#   tokens — the loss at init is no longer ln 8. *Caught by the init check.*
# - **Counting pads** (no mask at all) teaches the model to tag padding, which it does easily: accuracy is
#   unharmed and the loss at init is still about ln 8. The loss now depends on how much padding a batch
#   happens to carry. *Caught only by padding invariance:* append 16 pad columns and the loss must not move.
# - **A mask built as `x != pad_id`** drops every end token too, because the pad id *is* the end id. The
#   model never learns to tag the end; the loss is padding-invariant and starts at ln 8. *Caught only by a
#   metric per segment* — here, recall per tag.

# %%
masking_bugs = ["healthy tagging", "masked loss divided by numel", "pads counted in the loss", "mask drops end tokens"]
tables.show([{"pipeline": name, "loss at init / ln 8": reports[name].value("init_loss"),
              "loss change from 16 pad columns": reports[name].value("padding_change"),
              "token accuracy": reports[name].extras["val_accuracy"],
              "end-token recall": reports[name].extras["recalls"][masking.END_TAG]} for name in masking_bugs])

# %%
from helpers.experiments import nb05_debugging_divergence

fig = nb05_debugging_divergence.recall_figure(
    {name: reports[name].extras["recalls"] for name in ("healthy tagging", "mask drops end tokens")},
    masking.END_TAG, "the end-of-sequence tag", xlabel="tag")

# %%
eos = reports["mask drops end tokens"]
claim("dividing a masked loss by numel pulls the loss at init below 85% of ln C",
      reports["masked loss divided by numel"].value("init_loss"), "<", 0.85)
claim("counting pads in the loss leaves token accuracy above 0.99",
      reports["pads counted in the loss"].extras["val_accuracy"], ">", 0.99)
claim("counting pads makes the loss change by more than 0.1% when padding is appended",
      reports["pads counted in the loss"].value("padding_change"), ">", 1e-3)
claim("a mask built as x != pad_id keeps token accuracy above 0.85", eos.extras["val_accuracy"], ">", 0.85)
claim("a mask built as x != pad_id leaves end-of-sequence recall below 0.05",
      eos.extras["recalls"][masking.END_TAG], "<", 0.05)


# %% [markdown]
# ### Your turn: a padding-invariance check
#
# Write `ignores_padding(pipeline) -> bool`: True when the pipeline's loss does not change when padding is
# appended. Take `x, y = pipeline.batch(64)` and a model from `pipeline.fresh_model()` in eval mode; append 16
# columns of `pipeline.pad_id` to `x` and 16 columns of label 0 to `y` (`torch.cat(..., dim=1)`); compare
# `pipeline.loss(model(x), x, y)` before and after, under `torch.no_grad()`. Call the loss invariant when the
# relative change is below 1e-4. The checker tries the healthy tagger, both padding bugs, and the end-token
# mask — which *does* ignore padding, since its bug is elsewhere.

# %%
def ignores_padding(pipeline):
    raise NotImplementedError


nb05_debugging.check_padding_invariance(ignores_padding, cfg.seed);

# %% [markdown]
# ## 9. Class weights that explode
#
# **Plain idea.** When a class is rare, weighting its examples by inverse frequency, $w_c = N / (C\,N_c)$, seems
# to give it a fair share of the loss. With a class of 3 examples among 3,200 its weight is about 107 times the
# others'. The weighted mean divides by the sum of the weights in the batch,
# $\mathcal{L} = \sum_i w_{y_i} \ell_i / \sum_i w_{y_i}$, so **the loss at init is still ln C**; but the few
# batches that contain one of those 3 examples now produce gradients dominated by it. The control is the same
# starved data without weights.

# %%
weighting = {"inverse-frequency weights": reports["exploding class weights"],
             "no weights (same data)": reports["starved class"], "healthy data": reports["healthy MNIST-1D"]}
fig = figures.gradient_figure(weighting)

# %%
starved = nb05_debugging.STARVED_CLASS
clean_recall = reports["healthy MNIST-1D"].extras["recalls"][starved]
tables.show([{"run": name, "loss at init / ln C": report.value("init_loss"),
              "largest / median gradient norm": report.extras["grad_spike"],
              f"recall of class {starved}": report.extras["recalls"][starved],
              "validation accuracy": report.extras["val_accuracy"]} for name, report in weighting.items()])

# %% [markdown]
# The weights barely rescue the rare class: three examples are three examples, and 107x weights mostly let
# the model memorise them harder. The control is the same starved data without weights: across seeds 0–4 the
# weights raised the class's recall by 0.00–0.14 at quick scale and 0.01–0.15 at full scale, and it stayed
# below half of what the class reaches with all its data (at most 0.29 of it). Cap the weights (a square root of the inverse frequency, or a maximum of
# about 10), resample, or better, collect more data; and always look at the class's own recall.

# %%
weighted, unweighted = weighting["inverse-frequency weights"], weighting["no weights (same data)"]
claim("inverse-frequency weights for a class of 3 examples pass the loss-at-init check",
      weighted.value("init_loss"), "between", RULE["init_loss"].threshold)
claim("inverse-frequency weights at least double the max-to-median gradient norm of the same data without weights",
      weighted.extras["grad_spike"] / unweighted.extras["grad_spike"], ">=", 2)
claim("inverse-frequency weights raise the starved class's recall by less than 0.3 over the same data without weights",
      weighted.extras["recalls"][starved] - unweighted.extras["recalls"][starved], "<", 0.3)
claim("with inverse-frequency weights the starved class keeps less than half its recall with full data",
      weighted.extras["recalls"][starved] / clean_recall, "<", 0.5)

# %% [markdown]
# ## 10. Training improves, validation does not: leakage, shift, drift and segments
#
# "Training loss improves but validation gets worse" has four readings: overfitting, leakage, distribution
# shift, or an evaluation bug. Overfitting is notebook 03's subject; here are the other three, each planted in
# a clean MNIST-1D split, with the untouched test split as the honest reference. Two audits of the split,
# written from scratch:
#
# - **Near-duplicates.** The share of validation rows that sit much closer to a training row than training rows
#   sit to one another. Copies score as if the model had seen them, because it has.
# - **Adversarial validation.** Train a classifier to tell training rows from validation rows; if its
#   cross-validated ROC AUC is well above 0.5, the two splits come from different distributions. Ours is a
#   logistic regression on each feature and its square, so it sees shifts in mean and in spread.

# %%
from helpers.scratch import split_audit

show_source(split_audit.near_duplicate_fraction, split_audit.adversarial_auc)

# %%
split_faults = ["healthy MNIST-1D", "near-duplicate leak", "covariate shift"]
tables.show([{"validation split": name, "validation accuracy": reports[name].extras["val_accuracy"],
              "test accuracy": reports[name].extras["test_accuracy"],
              "near-duplicate share": reports[name].value("near_duplicates"),
              "adversarial AUC": reports[name].value("adversarial_auc")} for name in split_faults])

# %% [markdown]
# The three runs train the *same* model (only validation differs), so their test accuracy is identical. With
# 30% of validation replaced by lightly jittered copies of training rows, validation reads higher than the
# truth; with validation recorded by a noisier sensor (noise of one standard deviation), it reads far lower.
# Across seeds 0–4 the leak lifted validation accuracy by 0.03–0.06 at quick scale and 0.09–0.11 at full scale
# (a longer-trained model has memorised its training rows better), and the shift sank it 0.27–0.42 below test.
# Each audit sees one fault and is blind to the other: copies do not change the distribution, and noise
# creates no copies. Run both.

# %%
leak, shift, clean = (reports[name] for name in ("near-duplicate leak", "covariate shift", "healthy MNIST-1D"))
claim("near-duplicate leakage makes validation accuracy read more than 0.01 higher than on the clean split",
      leak.extras["val_accuracy"] - clean.extras["val_accuracy"], ">", 0.01)
claim("the near-duplicate check flags the leak", leak.value("near_duplicates"), ">=", 0.2)
claim("adversarial validation is blind to the leak", leak.value("adversarial_auc"), "<", 0.6)
claim("covariate shift makes validation accuracy read more than 0.15 below test",
      shift.extras["test_accuracy"] - shift.extras["val_accuracy"], ">", 0.15)
claim("adversarial validation flags the shift", shift.value("adversarial_auc"), ">", 0.8)
claim("the near-duplicate check is blind to the shift", shift.value("near_duplicates"), "<=", 0.01)

# %% [markdown]
# **Look by segment.** An aggregate metric averages failures away. Cut one class down to 3 training examples
# and the overall validation accuracy drops by only a few points, while the class itself is almost never found. Its recall, not the average, shows it.

# %%
fig = nb05_debugging_divergence.recall_figure(
    {name: reports[name].extras["recalls"] for name in ("healthy MNIST-1D", "starved class")},
    starved, f"class {starved}: 3 training examples")

# %%
starved_report = reports["starved class"]
claim("starving one class costs less than 0.15 of overall validation accuracy",
      clean.extras["val_accuracy"] - starved_report.extras["val_accuracy"], "<", 0.15)
claim("the starved class's recall falls below 0.3", starved_report.extras["recalls"][starved], "<", 0.3)

# %% [markdown]
# **Time.** When the world drifts, a random split hides it: validation rows come from the same times as
# training rows. Here the sensor gets noisier over time (Gaussian noise of standard deviation $t$, in units of
# the standardized features, at time $t \in [0, 1)$); the last 20% of time is the future. We pick models either
# with a random split of the past or with a time-based split (validate on the latest past), and compare each
# validation estimate with the accuracy actually reached in the future.

# %%
drift = nb05_debugging_divergence.time_drift(cfg.seed, steps=STEPS)
tables.show([{"split": "random", "validation": drift.random_val, "future": drift.random_future},
             {"split": "by time", "validation": drift.time_val, "future": drift.time_future}])
fig = nb05_debugging_divergence.drift_figure(drift)

# %%
random_gap = drift.random_val - drift.random_future
time_gap = drift.time_val - drift.time_future
claim("a random split overestimates future accuracy by more than 0.05", random_gap, ">", 0.05)
claim("a time-based split overestimates future accuracy by at least 0.02 less than a random split does",
      random_gap - time_gap, ">", 0.02)

# %% [markdown]
# **Explorer.** Leak a share of validation and shift it by sensor noise, then press Run: validation against the
# untouched test split, the two audits against their limits, and every check of the checklist that fires. The
# model is the healthy run's (both faults touch only validation), so each run takes a fraction of a second.

# %%
from helpers.widgets import Slider

explore(partial(nb05_debugging_divergence.explore_divergence, seed=cfg.seed, steps=STEPS,
                run=reports["healthy MNIST-1D"].run), run_button=True,
        leak_fraction=Slider(0.0, 0.5, 0.05, 0.2), shift_size=Slider(0.0, 2.0, 0.1, 0.0))

# %% [markdown]
# ## 11. Silent preprocessing bugs: scale, broadcasting and truncation
#
# Three preprocessing bugs that raise no error.
#
# **Scale.** The gallery fed the digits as raw 0–255 pixel values to the healthy pipeline: the input-scale check
# fired (an input RMS above 100 instead of about 1), yet validation accuracy barely moved, because BatchNorm
# rescales the first layer's output and Adam rescales every update. Take both away — the same data through an
# MLP without normalization, trained by plain SGD — and the 0–255 pixels are fatal: the first layer's outputs are
# in the hundreds, the loss at init is many times ln C, and the first steps blow the weights apart.

# %%
scale_rows = [{"pixels": "standardized", "model": "MLP with BatchNorm, Adam", "loss at init / ln C":
               reports["healthy digits"].value("init_loss"),
               "validation accuracy": reports["healthy digits"].extras["val_accuracy"]},
              {"pixels": "0-255", "model": "MLP with BatchNorm, Adam", "loss at init / ln C":
               reports["unscaled 0-255 pixels"].value("init_loss"),
               "validation accuracy": reports["unscaled 0-255 pixels"].extras["val_accuracy"]}]
scale_rows += nb05_debugging.scale_without_normalization(cfg.seed, STEPS,
                                                         healthy_run=reports["healthy digits, plain SGD"].run)
tables.show(scale_rows)

# %%
claim("with BatchNorm and Adam, 0-255 pixels cost less than 0.05 validation accuracy",
      scale_rows[0]["validation accuracy"] - scale_rows[1]["validation accuracy"], "<", 0.05)
claim("without normalization, plain SGD on standardized pixels reaches more than 0.85 validation accuracy",
      scale_rows[2]["validation accuracy"], ">", 0.85)
claim("without normalization, plain SGD on 0-255 pixels stays near chance (below 0.2)",
      scale_rows[3]["validation accuracy"], "<", 0.2)
claim("without normalization, 0-255 pixels put the loss at init above 3 ln C",
      scale_rows[3]["loss at init / ln C"], ">", 3)

# %% [markdown]
# So the input-scale check is a question, not a verdict: here the architecture absorbed the bug, and a change
# of optimizer or a removed normalization layer would expose it. Fix the scale anyway.
#
# **Broadcasting.** A regression model predicts a column, shape $(N, 1)$; the targets are often stored flat,
# shape $(N,)$. Subtracting them broadcasts to an $(N, N)$ table of *every* prediction minus *every* target, and
# its mean is minimised by predicting the average target for every input. PyTorch's `mse_loss` warns once; a
# busy log swallows the warning. The same check that caught softmax before cross-entropy catches it: the loss of
# a perfect prediction must be 0.

# %%
from helpers.experiments import nb05_debugging_silent

broadcast = {target: nb05_debugging_silent.fit_regression(target, cfg.seed) for target in ("column", "flat")}
tables.show([{"target shape": "(N, 1)" if target == "column" else "(N,)", "validation R²": run.r2,
              "loss of a perfect prediction": run.perfect_loss, "warning": run.warning or "none"}
             for target, run in broadcast.items()])

# %%
claim("with a flat (N,) target the regression learns nothing (validation R² below 0.1)",
      broadcast["flat"].r2, "<", 0.1)
claim("with a column (N, 1) target the same regression explains more than half the variance",
      broadcast["column"].r2, ">", 0.5)
claim("with a flat target a perfect prediction costs more than 0.5 (the check that catches it)",
      broadcast["flat"].perfect_loss, ">", 0.5)

# %% [markdown]
# **Truncation.** A tokenizer that truncates to a maximum length throws away whatever came after it. In this
# task each sequence (8 to 64 tokens) holds one keyword at a random position, and the label is the keyword. A
# bag-of-words classifier is perfect on every length when nothing is cut; truncated at 32 tokens, it fails on
# long sequences exactly as often as their keyword sat past the cut. The overall accuracy still looks fine; the
# check is the share of examples truncated, and the metric is accuracy by length.

# %%
cuts = [nb05_debugging_silent.truncation(limit, cfg.seed) for limit in (32, 64)]
fig = nb05_debugging_silent.truncation_figure(cuts)

# %%
cut, uncut = (result["by length"] for result in cuts)
claim("truncation at 32 tokens costs more than 0.2 accuracy on sequences of 48 tokens or more",
      cut["8-31"] - cut["48-64"], ">", 0.2)
claim("without truncation every length bucket stays above 0.95 accuracy", min(uncut.values()), ">", 0.95)

# %% [markdown]
# ## Interview answer
#
# The ordered checklist, as you would say it, with the numbers this run measured:

# %%
from IPython.display import Markdown

Markdown(figures.spoken_checklist(reports))

# %% [markdown]
# **For NaNs:** "I put a finiteness guard after `backward()` — it is nearly free — and when it trips I replay
# that step under `detect_anomaly`, which names the backward function. Here it named `LogBackward0`, a
# hand-written log of a softmax; the library's cross-entropy at the same learning rate never produced a NaN."
#
# Across seeds 0–4 at both scales the same answer held with these numbers: nearest-neighbour agreement beyond
# the majority class 0.43–0.45 on clean labels and about 0 on shuffled ones; loss at init 1.00–1.02 x ln C; a
# perfect prediction after a softmax 1.46 nats; a weight spread of 107x; update-to-weight ratios of 0.039 (healthy),
# 3.9 (100x) and 3.9e-5 (1/1000); a repeated step at rate 0 giving exactly 2.0x the gradient without `zero_grad`;
# 0.97–1.00 of one example's gradient leaking after the bad reshape; padding changing the loss by 0.4–4.6% when
# pads were counted; adversarial AUC 0.90 under the shift and 0.48–0.51 under the leak; end-token recall 0 at
# 0.91 token accuracy.
#
# ## Traps
#
# - **"Loss at init is ln C and one batch overfits, so the pipeline is fine."** Six planted bugs passed both
#   checks in section 5, from shuffled labels to counted pads.
# - **"The loss is flat, so the data is bad."** A learning rate 1000x too low gives the same flat curve; the
#   update-to-weight ratio (3.9e-5 against a healthy 0.039) separates them in one number.
# - **"A lower training loss means a better model."** Dividing a masked loss by every position multiplied the
#   loss at init by 0.68–0.70 (the share of real tokens) with the same model underneath; compare losses only
#   under the same loss function, mode and masking.
# - **"I checked the gradients: every parameter with `requires_grad` has one."** That loop skips exactly the
#   frozen layer; check that every tensor *moves*.
# - **"Validation is lower than training, so it is overfitting."** It can be a shift (adversarial AUC 0.9)
#   or a preprocessing mismatch (validation 3.6 standard deviations off); overfitting is the diagnosis left
#   when the split audits pass.
# - **"Validation accuracy is high, so the model is good."** Near-duplicates inflate it; a random split hides
#   drift; a starved class or a dropped end token hides in the average.
# - **"Inverse-frequency class weights fix imbalance."** For a class of 3 examples they made the gradient norm
#   spikier and left the class's recall below half of what it reaches with all its data.
