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
# # 03 · Regularization: overfitting and the five levers
#
# A network with enough parameters can fit almost any training set, including its noise. Regularization is
# everything we do so that what the network learns on the training set also holds on data it has not seen.
# Interviewers ask about it because the answer shows whether you have fought overfitting on a real project
# or only read about dropout. This notebook builds a model that overfits on purpose and then pulls each lever
# against the *same* baseline, with the same seeds, so every statement below is a measurement.
#
# **Interview questions answered here**
# 1. *How do you reduce overfitting?* (the layered answer: data, model, objective, training, evaluation)
# 2. *Dropout vs batch normalization?* and why dropout behaves differently in train and eval mode
# 3. *What is early stopping?* and how validation selection can itself overfit
# 4. *What is label smoothing?* when it helps calibration and when it hurts
# 5. Why can a network that fits random labels still generalise on real ones? (memorisation)
#
# Data: MNIST-1D (Greydanus 2020), 10 classes of length-40 signals. It is small enough for CPUs yet hard
# enough for an MLP to overfit convincingly (scikit-learn's digits is too easy for that).

# %%
from helpers import setup

cfg = setup("03_regularization")

# %%
import inspect
from dataclasses import replace

import torch
from IPython.display import Code, Markdown, display

from helpers import data, regularization as reg
from helpers.claims import claim
from helpers.config import pick
from helpers.plotting import learning_curves
from helpers.widgets import Slider, explore

# %% [markdown]
# All sizes of the notebook live in the next cell. At `DL_SCALE=quick` (tests) the MLP is 256 units wide and
# trains for 40 epochs; at `full` (the default) it is 512 wide and trains for 100 epochs. Every claim below
# was checked for seeds 0–4 at both scales.

# %%
N_TRAIN = 500                      # small training set: the MLP overfits it
WIDTH = pick(quick=256, full=512)  # hidden units per layer (2 hidden layers)
EPOCHS = pick(quick=40, full=100)
PATIENCE = pick(quick=10, full=20)  # early-stopping patience (epochs)
SIZES = pick(quick=[250, 500, 2000], full=[125, 250, 500, 1000, 2000])  # data-size sweep
DIGITS_EPOCHS = pick(quick=10, full=20)  # label smoothing on the easy task
MEMO_WIDTH, MEMO_MAX_EPOCHS = 256, 300
BASE = reg.Recipe(width=WIDTH, epochs=EPOCHS, lr=1e-3, batch_size=64)
BASE

# %% [markdown]
# ## 1. An overfitting model
#
# **Idea.** Give a wide MLP only 500 training examples and train it for long. It will drive the training loss
# to almost zero by memorising the examples, while the validation loss, after an early dip, climbs again.
#
# **Mechanism.** Cross-entropy keeps rewarding larger logits on training examples that are already classified
# correctly, so the weights grow and the predicted probabilities sharpen. On unseen examples the sharpened
# mistakes cost $-\log p(y\mid x)$, which grows without bound as the wrong class's probability approaches 1.
# The *generalisation gap* is train accuracy minus held-out accuracy.
#
# We train the baseline and every lever of section 2 in one go (same split, same initial weights per seed)
# and keep all models, so later sections reuse them instead of retraining.

# %%
split = data.mnist1d(n_train=N_TRAIN, seed=cfg.seed)
runs = reg.run_levers(N_TRAIN, BASE, seed=cfg.seed)
baseline = runs["baseline"]
fig = learning_curves({"baseline MLP": baseline.history}, title="A wide MLP on 500 MNIST-1D examples overfits")

# %%
over = reg.overfitting_numbers(baseline.history)
{k: round(v, 3) for k, v in over.items()}

# %% [markdown]
# **Claim check.** The baseline fits its training set (training accuracy at least 0.99) and its validation
# loss bottoms out in the first half of training and then rises by more than 0.3 nats. Across seeds 0–4 the rise
# measured 0.74–0.99 nats at quick scale and 1.7–2.0 at full, so 0.3 leaves a wide margin; the minimum came within
# the first third of training (epoch/total 0.15–0.33 quick, 0.03–0.07 full); the gap measured 0.62–0.66 (threshold 0.4).

# %%
claim("the baseline MLP fits its training set (final train accuracy)",
      baseline.history.final()["train_acc"], ">=", 0.99)
claim("validation loss rises after its minimum (final minus minimum, nats)", over["val-loss rise"], ">", 0.3)
claim("the validation-loss minimum comes in the first half of training (epoch / total)",
      over["best val-loss epoch"] / EPOCHS, "<", 0.5)
claim("the generalisation gap (train minus validation accuracy) is large", over["gap (train-val acc)"], ">", 0.4)

# %% [markdown]
# **Practical consequence.** Training loss alone says nothing about generalisation: always watch a held-out
# curve, and read the validation *loss* as an early warning (it turns up well before accuracy falls).
#
# ## 2. The five levers, one experiment each
#
# A layered answer to "how do you reduce overfitting?" walks through five places to intervene:
#
# | layer | lever tried here | what it changes |
# |---|---|---|
# | data | 4x more training examples; shift augmentation | what the model sees |
# | model | a 32-unit instead of a wide MLP | capacity |
# | objective | weight decay; label smoothing | what the loss rewards |
# | training | dropout; early stopping | how the weights are reached |
# | evaluation | untouched test set; see section 5 | whether we can trust the numbers |
#
# Each lever is switched on alone against the baseline (same data split and initial weights). Shift
# augmentation rolls each signal by up to 4 positions, which encodes one thing we know about MNIST-1D: a
# digit's pattern may sit anywhere in the signal. The source of the augmentation (a `train_transform` for
# `helpers.train.fit`) is short:

# %%
display(Code(inspect.getsource(reg.random_shift), language="python"))

# %% [markdown]
# Mixup (Zhang et al. 2018) is the other classic augmentation: train on convex blends of two examples with the
# same blend of their labels. It is available as `reg.mixup(alpha, n_classes)` and as a lever in exercise 2.
# In our scratch runs on this baseline, mixup (alpha 0.4) moved test accuracy by about a point while shifts
# gained ten or more, so the table uses shifts: an augmentation pays when it encodes a true invariance.

# %%
display(Code(inspect.getsource(reg.mixup), language="python"))

# %% [markdown]
# All metrics are on the **test** split, which nothing in this notebook trains or selects on (early
# stopping reads the validation split). NLL is the plain cross-entropy even for the label-smoothing model.

# %%
display(Markdown(reg.lever_table(runs)))

# %%
fig = reg.plot_levers(runs)

# %% [markdown]
# **Claim check.** Every lever improves test NLL on this overfitting baseline, but the accuracy gains differ a lot:
# the two *data* levers (more data, and an augmentation that encodes a known invariance) buy far more accuracy than
# dropout. Across seeds 0–4 (quick / full): the smallest NLL improvement of any lever was 0.39–0.61 / 0.87–1.1 nats
# (threshold 0.2); shift augmentation gained 0.094–0.12 / 0.15–0.20 accuracy (threshold 0.06), 4x data
# 0.16–0.21 / 0.18–0.22 (threshold 0.08), and the better data lever led dropout by 0.17–0.21 / 0.14–0.18
# (threshold 0.05).

# %%
nll_gain = {name: baseline.test_nll - run.test_nll for name, run in runs.items() if name != "baseline"}
acc_gain = {name: run.test_acc - baseline.test_acc for name, run in runs.items()}
claim("every lever lowers test NLL vs the baseline (smallest improvement, nats)", min(nll_gain.values()), ">", 0.2)
claim("shift augmentation raises test accuracy (gain)", acc_gain["shift augmentation"], ">", 0.06)
claim("4x more data raises test accuracy (gain)", acc_gain["more data (4x)"], ">", 0.08)
claim("the best data lever beats dropout by a wide margin (accuracy gain difference)",
      max(acc_gain["shift augmentation"], acc_gain["more data (4x)"]) - acc_gain["dropout"], ">", 0.05)

# %% [markdown]
# ### More data, as a curve
# The "more data" lever is the end point of a sweep over training-set sizes (the runs at 500 and 2000 examples
# are reused from the table).

# %%
sweep = reg.size_sweep(SIZES, BASE, seed=cfg.seed, known={N_TRAIN: baseline, 2000: runs["more data (4x)"]})
fig = reg.plot_size_sweep(sweep)

# %% [markdown]
# The train curve stays at 1.0 (the wide MLP memorises any of these sets) while test accuracy climbs, so the
# gap shrinks only from the test side. Across seeds 0–4, test accuracy rose by 0.24–0.29 (quick) and 0.30–0.36
# (full) from the smallest to the largest set; the claim asks for 0.1.

# %%
smallest, largest = sweep[min(sweep)], sweep[max(sweep)]
claim("test accuracy rises with training-set size (largest minus smallest)",
      largest.test_acc - smallest.test_acc, ">", 0.1)

# %% [markdown]
# **Practical consequence.** Start with the data: more examples or an augmentation that encodes a true
# invariance. Penalties and noise (weight decay, dropout, smoothing) mostly fix *confidence* (NLL, ECE) on a
# model this data-starved; they cannot supply information the training set lacks. Read the sign column of the
# table too: a lever that fixes NLL can cost accuracy (a too-small model, or stopping on NLL), so say which
# metric you are regularising for.
#
# ## 3. Dropout vs weight decay, side by side
#
# **Two different mechanisms.**
# - *Dropout* (Srivastava et al. 2014) multiplies each hidden unit by a random mask $m\sim\text{Bernoulli}(q)$
#   during training, $q = 1-p$. No unit can rely on a particular partner (less co-adaptation), and every
#   mini-batch trains a different thinned sub-network; at test time the full network approximates the average
#   of that exponential ensemble.
# - *Weight decay* shrinks every weight towards zero at each step, $w \leftarrow w - \eta\lambda w$ (decoupled, as in
#   AdamW; Loshchilov & Hutter 2019). It is a norm penalty: a large weight must earn its size by reducing the loss.
#
# Both runs below come from the lever table (dropout $p=0.5$, AdamW weight decay $\lambda=3$).

# %%
trio = {name: runs[name] for name in ("baseline", "dropout", "weight decay")}
fig = reg.plot_dropout_vs_decay(trio)

# %%
norms = {name: run.history.extra["weight_norm"][-1] for name, run in trio.items()}
rise = {name: reg.overfitting_numbers(run.history)["val-loss rise"] for name, run in trio.items()}
{name: {"test acc": round(r.test_acc, 3), "test NLL": round(r.test_nll, 2), "weight norm": round(norms[name], 1),
        "train-val gap": round(r.history.final()["gap"], 3), "val-loss rise": round(rise[name], 2)}
 for name, r in trio.items()}

# %% [markdown]
# **Claim check.** Both levers cut test NLL by more than 0.5 nats (measured 0.79–0.90 for dropout and
# 0.70–0.83 for weight decay at quick scale across seeds 0–4; 0.87–1.1 and 1.3–1.7 at full). Weight decay shrinks
# the weight norm to less than 75% of the baseline's (60–65% measured), which is its mechanism. Dropout damps the
# late rise of the validation loss to less than 75% of the baseline's (0–5% measured at quick scale, where 40
# epochs are short, and 45–53% at full).

# %%
claim("dropout lowers test NLL (baseline minus dropout, nats)", baseline.test_nll - runs["dropout"].test_nll, ">", 0.5)
claim("weight decay lowers test NLL (baseline minus weight decay, nats)",
      baseline.test_nll - runs["weight decay"].test_nll, ">", 0.5)
claim("weight decay shrinks the weight norm (ratio to baseline)", norms["weight decay"] / norms["baseline"], "<", 0.75)
claim("dropout damps the late rise of validation loss (ratio to baseline)", rise["dropout"] / rise["baseline"], "<", 0.75)

# %% [markdown]
# **Practical consequence.** On a model this data-starved, neither lever moves accuracy much (see the table:
# a few points at most), but both make its probabilities far less wrong. Weight decay acts on the parameters
# (norms, the histogram's narrower peak); dropout acts on the activations, so it also changes the forward
# pass between training and evaluation, which is the next section.
#
# ## 4. Dropout in train vs eval mode, and why dropout before BatchNorm misbehaves
#
# **Inverted dropout.** In training, keep a unit with probability $q$ and divide by $q$:
# $\tilde h = h\,m/q$. Then $\mathbb E[\tilde h] = h$, so evaluation can use the network unchanged. The second
# moment is not preserved: $\mathbb E[\tilde h^2] = h^2/q$. For zero-mean activations the train-mode variance is
# therefore $1/q$ times the eval-mode variance.
#
# **Consequence for BatchNorm.** A BatchNorm layer after dropout estimates its running variance from the
# inflated train-mode activations. At evaluation dropout switches off, the variance falls by $q$, and the
# normalised output shrinks by $\sqrt q$: a *variance shift* between training and testing (Li et al. 2019).

# %%
stats = reg.dropout_statistics(0.5, seed=cfg.seed)
{k: round(v, 4) for k, v in stats.items()}

# %%
bn_stats = reg.dropout_then_batchnorm(0.5, seed=cfg.seed)
{k: round(v, 4) for k, v in bn_stats.items()}

# %% [markdown]
# **Claim check.** With 200,000 activations the measured variance ratio is within 5% of $1/q$ and the means agree;
# BatchNorm's running variance absorbs the dropout noise (about $1/q$ = 2), so its eval-mode output standard
# deviation lands within 5% of $\sqrt q \approx 0.71$ times the train-mode one. These are sampling statements:
# the relative errors measured below 1% for every seed.

# %%
claim("train/eval variance ratio under dropout matches 1/p_keep (relative error)",
      abs(stats["variance ratio train/eval"] / stats["theory 1/p_keep"] - 1), "<", 0.05)
claim("inverted dropout keeps the mean (|train mean - eval mean|)",
      abs(stats["mean train"] - stats["mean eval"]), "<", 0.02)
claim("after dropout, BatchNorm's eval output shrinks by sqrt(p_keep) (relative error)",
      abs(bn_stats["eval/train std ratio"] / bn_stats["theory sqrt(p_keep)"] - 1), "<", 0.05)

# %% [markdown]
# **Explorer (live).** Move the dropout rate: the left panel shows the activation distribution in both modes,
# the right panel the variance ratio and BatchNorm's shrinkage, with the measured points on the theory curves.

# %%
explore(reg.dropout_explorer, p=Slider(0.05, 0.9, 0.05, 0.5, label="dropout rate p"))

# %% [markdown]
# **Practical consequence: dropout vs batch normalization.** They solve different problems. BatchNorm
# standardises activations with batch statistics to make optimisation easier (any regularisation is a side
# effect of batch noise); dropout injects noise on purpose. Both behave differently in train and eval mode, so
# `model.eval()` matters twice over, and if you combine them put dropout *after* the last BatchNorm (or use it
# only before the classifier) to avoid the variance shift.
#
# ## 5. Early stopping, and how validation selection overfits
#
# **Idea.** Keep the weights from the epoch where the validation metric was best and stop once it has not improved
# for `PATIENCE` epochs. The *criterion* matters: validation NLL punishes over-confident mistakes and turns up
# early; validation accuracy keeps improving for longer. We run `helpers.train.EarlyStopping` with each criterion
# (the validation-loss run is the early-stopping lever from section 2).

# %%
stopping = {"val_loss": runs["early stopping"],
            "val_acc": reg.train_recipe(split, replace(BASE, patience=PATIENCE, monitor="val_acc"), cfg.seed)}
fig = reg.plot_early_stopping(baseline.history, stopping)

# %%
{monitor: {"restored epoch": r.history.best_epoch, "test acc": round(r.test_acc, 3), "test NLL": round(r.test_nll, 2)}
 for monitor, r in stopping.items()}

# %% [markdown]
# **Claim check.** Stopping on validation NLL restores a much earlier epoch than stopping on validation
# accuracy and pays for it in test accuracy. Across seeds 0–4 the restored epochs differed by 16–26 (quick) and
# 9–44 (full), and the accuracy cost was 0.019–0.079 (quick) and 0.048–0.10 (full). The threshold is the
# qualitative one (a cost above zero); its smallest margin, 0.019, is 19 of the 1000 test examples.

# %%
acc_cost = stopping["val_acc"].test_acc - stopping["val_loss"].test_acc
claim("stopping on validation NLL restores an earlier epoch than stopping on accuracy (epoch difference)",
      stopping["val_acc"].history.best_epoch - stopping["val_loss"].history.best_epoch, ">", 0)
claim("stopping on NLL costs test accuracy (accuracy-stopped minus NLL-stopped)", acc_cost, ">", 0.0)

# %% [markdown]
# **Validation overfitting.** Every time we pick a model, epoch or hyperparameter by its validation score we
# fit the validation set a little. Here we try 200 near-identical candidates (the dropout model with small
# random weight perturbations, so their true accuracies are alike), score each on a 100-example validation
# set, and keep the winner. Its validation score is the maximum of many noisy draws, so it is inflated; the
# untouched test set shows that the winner is no better than the average candidate.

# %%
selection = reg.best_of_many(runs["dropout"].model, split, n_candidates=200, n_val=100, seed=cfg.seed)
fig = reg.plot_best_of_many(selection)
{k: round(v, 3) for k, v in selection.items() if isinstance(v, float)}

# %% [markdown]
# **Claim check.** The winner's validation accuracy beats the average candidate's by more than 0.03 (measured
# 0.05–0.08 across seeds 0–4 at both scales), and on the test set less than half of that edge survives (the
# test edge measured at most 14% of the validation edge, and was negative for some seeds).

# %%
claim("picking the best of 200 on validation inflates its score (winner minus mean validation accuracy)",
      selection["val edge (winner - mean)"], ">", 0.03)
claim("the validation edge does not survive on the untouched test set (test edge / validation edge)",
      selection["test edge (winner - mean)"] / selection["val edge (winner - mean)"], "<", 0.5)

# **Practical consequence.** Early stopping is a selection on validation data like any other: choose the
# criterion that matches the metric you ship (accuracy vs calibrated probabilities), and report the final
# number on a holdout that no decision touched (or use cross-validation when data are scarce).
#
# ## 6. Label smoothing: calibration helps, until the model is not over-confident
#
# **Idea.** Replace the one-hot target with $(1-\varepsilon)$ on the true class plus $\varepsilon/K$ spread over all
# $K$ classes. The loss then stops rewarding ever-larger logits: the optimum predicts at most
# $1-\varepsilon+\varepsilon/K$. In PyTorch it is one argument,
# `F.cross_entropy(logits, y, label_smoothing=0.1)`, passed to `fit` as `loss_fn`.
#
# **The nuance** (Müller, Kornblith & Hinton 2019): smoothing fixes over-confidence, but a model that was
# already well calibrated becomes *under*-confident. We compare the over-confident MNIST-1D baseline with an easy
# task (digits, where a plain MLP is both accurate and calibrated). Calibration is measured by the expected
# calibration error (ECE, 15 equal-width bins, `helpers.calibration`).

# %%
digits_split = data.digits(seed=cfg.seed)
digits_runs = reg.digits_smoothing_runs(smoothing=0.1, epochs=DIGITS_EPOCHS, seed=cfg.seed)
mnist_runs = {"no smoothing": baseline, "smoothing 0.1": runs["label smoothing"]}
fig = reg.plot_confidences({"MNIST-1D, 500 examples (over-confident)": mnist_runs, "digits (easy)": digits_runs},
                           {"MNIST-1D, 500 examples (over-confident)": split, "digits (easy)": digits_split})

# %%
calib = {task: {name: reg.confidence_summary(r.model, s.x_test, s.y_test) for name, r in rs.items()}
         for task, rs, s in (("MNIST-1D", mnist_runs, split), ("digits", digits_runs, digits_split))}
{task: {name: {k: round(v, 3) for k, v in s.items() if k != "confidence"} for name, s in d.items()}
 for task, d in calib.items()}

# %% [markdown]
# **Claim check.** On MNIST-1D smoothing cuts ECE to less than 70% of the baseline's (measured 48–54% at quick
# scale and 18–25% at full across seeds 0–4). On digits it *raises* ECE by more than 0.05 (measured +0.10 to +0.13
# in every seed, from about 0.02 to about 0.13), because the mean confidence falls more than 0.05 below the accuracy
# (0.12–0.14 below): under-confidence.

# %%
mn, dg = calib["MNIST-1D"], calib["digits"]
claim("label smoothing cuts ECE on the over-confident MNIST-1D model (ratio)",
      mn["smoothing 0.1"]["ECE"] / mn["no smoothing"]["ECE"], "<", 0.7)
claim("on easy digits label smoothing raises ECE (smoothed minus plain)",
      dg["smoothing 0.1"]["ECE"] - dg["no smoothing"]["ECE"], ">", 0.05)
claim("the smoothed digits model is under-confident (accuracy minus mean confidence)",
      dg["smoothing 0.1"]["accuracy"] - dg["smoothing 0.1"]["mean confidence"], ">", 0.05)

# %% [markdown]
# **Practical consequence.** Use label smoothing when a model is over-confident and you care about ranking or
# accuracy; do not use it where the probabilities themselves matter (risk scores, distillation teachers — Müller
# et al. found smoothed teachers distil worse) without checking calibration, and prefer temperature scaling
# (notebook 06) when calibration is the only goal.
#
# ## 7. Memorisation: random labels (Zhang et al. 2017)
#
# **Idea.** If the capacity to memorise were what made networks overfit, a network that can memorise noise
# should never generalise. Zhang et al. showed that standard networks fit completely random labels, just more
# slowly, yet generalise when the labels are real. We repeat it on digits: the same MLP, trained until 99% training
# accuracy, once with true labels and once with the training labels shuffled.

# %%
memo = reg.memorisation_runs(width=MEMO_WIDTH, max_epochs=MEMO_MAX_EPOCHS, seed=cfg.seed)
fig = reg.plot_memorisation(memo)
epochs_needed = {name: len(r.history.epoch) for name, r in memo.items()}
epochs_needed

# %% [markdown]
# **Claim check.** With random labels the network still reaches at least 99% training accuracy, its test
# accuracy stays near chance (below 0.2), and it needs 1.5–10 times as many epochs as with true labels
# (measured 5.3–6.3 across seeds 0–4; random-label test accuracy 0.08–0.12).

# %%
random_run, true_run = memo["random labels"], memo["true labels"]
claim("the MLP memorises random labels (train accuracy)", random_run.history.train_acc[-1], ">=", 0.99)
claim("random-label training leaves test accuracy near chance", random_run.test_acc, "<", 0.2)
claim("random labels take longer to fit (epoch ratio random/true)",
      epochs_needed["random labels"] / epochs_needed["true labels"], "between", (1.5, 10))

# %% [markdown]
# **Practical consequence.** Capacity alone does not explain generalisation: the *same* network memorises or
# generalises depending on the data. Real structure is learned first and fast, noise later and slowly — which is
# why early stopping and noisy-label checks work, and why "the model is too big" is an incomplete diagnosis.
#
# ## Explorer: pull the levers yourself
# Set dropout, weight decay, training-set size, label smoothing and epochs, then press **Run** (a few seconds;
# up to half a minute for 3200 examples and 150 epochs):
# the curves show train (dashed) and validation (solid), the table the gap and test numbers.

# %%
explore(reg.overfitting_explorer, run_button=True,
        dropout=Slider(0.0, 0.8, 0.1, 0.0, label="dropout"),
        weight_decay=Slider(0.0, 5.0, 0.5, 0.0, label="weight decay"),
        n_train=Slider(100, 3200, 100, 500, label="training examples"),
        label_smoothing=Slider(0.0, 0.3, 0.05, 0.0, label="label smoothing"),
        epochs=Slider(10, 150, 10, 40, label="epochs"))


# %% [markdown]
# ## Your turn
#
# **Exercise 1: inverted dropout.** Write `inverted_dropout(x, p, training)`: in training, zero each entry with
# probability `p` and scale the survivors by `1/(1-p)`; in evaluation return `x` unchanged. The checker compares
# its statistics with `torch.nn.functional.dropout`.

# %%
def inverted_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    raise NotImplementedError


# %%
reg.check_inverted_dropout(inverted_dropout);

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# def inverted_dropout(x, p, training):
#     if not training or p == 0:
#         return x
#     mask = (torch.rand_like(x) >= p).to(x.dtype)
#     return x * mask / (1 - p)
# ```
# </details>
#
# **Exercise 2: choose the levers.** A colleague has 500 labelled sensor signals in which each event pattern can
# occur at any position. Their MLP reaches 100% training accuracy and about a third on validation, and they plan
# to "just add dropout". Pick the set of levers you would try first from
# `reg.LEVER_CHOICES` and run the cell: the checker trains the baseline and your choice and compares test accuracy
# (about 5 seconds).

# %%
print(reg.LEVER_CHOICES)
my_levers = None  # e.g. {"dropout", "weight decay"}

# %%
reg.check_lever_choice(my_levers);

# %% [markdown]
# <details><summary>Solution</summary>
#
# `{"shift augmentation"}`. What we know about the data, that patterns move, is worth more than any penalty:
# shift augmentation turns each signal into many, which is the data lever. Dropout alone buys a few points at most,
# as the lever table showed, and stacking dropout 0.5 on top of the augmentation underfits in this 40-epoch budget
# (try it: the checker reports the accuracy of whatever you choose). More levers is not automatically better.
# </details>
#
# ## Interview answer
# Generated from this run's numbers.

# %%
display(Markdown(f"""**"How do you reduce overfitting?"** First confirm it: here training accuracy reached
{baseline.history.final()['train_acc']:.2f} while validation stayed at {baseline.history.final()['val_acc']:.2f}, and the
validation loss turned up after epoch {over['best val-loss epoch']}. Then go layer by layer (this run's test numbers):"""))
display(Markdown(reg.layered_table(runs)))

# %%
display(Markdown(f"""Data levers come first because they add information; penalties and noise mainly repair
confidence. For evaluation, keep a test set no decision touches: the best of 200 candidates on validation showed an
edge of {selection['val edge (winner - mean)']:.3f} that shrank to {selection['test edge (winner - mean)']:+.3f} on test.

**"Dropout vs batch norm?"** Dropout injects noise (an implicit ensemble); BatchNorm normalises with batch statistics
to ease optimisation. Inverted dropout keeps the mean but multiplied the variance by
{stats['variance ratio train/eval']:.2f} at p=0.5, so a BatchNorm after it shrank its eval outputs to
{bn_stats['eval/train std ratio']:.2f} of their train-mode scale.

**"Early stopping?"** Keep the best validation checkpoint and choose the criterion on purpose: stopping on NLL
restored epoch {stopping['val_loss'].history.best_epoch} and cost {acc_cost:.3f} test accuracy against stopping on
accuracy (epoch {stopping['val_acc'].history.best_epoch}).

**"Label smoothing?"** It cut ECE from {mn['no smoothing']['ECE']:.3f} to {mn['smoothing 0.1']['ECE']:.3f} on the
over-confident model but raised it from {dg['no smoothing']['ECE']:.3f} to {dg['smoothing 0.1']['ECE']:.3f} on easy digits."""))

# %% [markdown]
# ## Traps
#
# - **"Just use dropout."** The lever table refutes it: dropout changed test accuracy by a few points at most,
#   while shift augmentation and more data gained well over 0.08 in every seed. Dropout is one lever of the
#   training layer, not an answer.
# - **"Dropout and BatchNorm are interchangeable regularisers."** Section 4: they do different things, and
#   dropout before BatchNorm gives a measured train/eval variance shift of $1/q$.
# - **"Early stopping is free."** Section 5: the criterion changed the restored epoch and the test accuracy, and
#   selecting on validation inflated the validation score; only an untouched test set tells the truth.
# - **"Label smoothing always improves calibration."** Section 6: on the easy task it made the model
#   under-confident and raised ECE.
# - **"A network that can memorise noise cannot generalise."** Section 7: the same MLP memorised random
#   labels and generalised on true ones; what it learns depends on the data.
