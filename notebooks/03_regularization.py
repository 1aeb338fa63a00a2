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
# # 03 · Regularization: overfitting, and levers in five layers
#
# A network with enough parameters can fit almost any training set, including its noise. Regularization is
# everything we do so that what the network learns on the training set also holds on data it has not seen.
# Interviewers ask about it because the answer shows whether you have fought overfitting on a real project
# or only read about dropout. This notebook builds a model that overfits on purpose and then pulls each lever
# against the *same* baseline, with the same seeds, so every statement below is a measurement.
#
# **Interview questions answered here**
# 1. *How do you reduce overfitting?* The layered answer: data, model, objective, training, evaluation.
# 2. *Dropout vs batch normalization?* Why dropout behaves differently in train and eval mode, what goes wrong
#    when dropout feeds a BatchNorm layer, and what BatchNorm itself buys.
# 3. *What is early stopping?* Where it pays, where it costs, and how selecting on validation data overfits.
# 4. *What is label smoothing?* When it helps calibration and when it hurts.
# 5. *Why can a network that fits random labels still generalise on real ones?* (memorisation)
#
# A habit runs through every section: a regularizer often looks good on test NLL only because it makes an
# over-confident model less confident, which one temperature fitted on validation data also does. So every
# lever is scored twice, as trained and after temperature scaling.
#
# Data: MNIST-1D (Greydanus 2020), 10 classes of length-40 signals. It is small enough for CPUs yet hard
# enough for an MLP to overfit convincingly (scikit-learn's digits is too easy for that, but serves below
# where an easy task is the point).

# %%
from helpers import setup

cfg = setup("03_regularization")

# %%
from dataclasses import replace

from IPython.display import Markdown, display

from helpers import data, tables
from helpers.claims import claim
from helpers.config import pick
from helpers.experiments import nb03_regularization_levers as levers
from helpers.experiments import nb03_regularization_noise as noise
from helpers.scratch import regularizers
from helpers.source import show_source
from helpers.widgets import Slider, explore

# %% [markdown]
# All sizes of the notebook live in the next cell. At `DL_SCALE=quick` (tests) the MLP is 256 units wide and
# trains for 40 epochs; at `full` (the default) it is 512 wide and trains for 100 epochs. Every claim below
# was checked for seeds 0–4 at both scales.

# %%
N_TRAIN = 500                       # small training set: the MLP overfits it
WIDTH = pick(quick=256, full=512)   # hidden units per layer (2 hidden layers)
EPOCHS = pick(quick=40, full=100)
PATIENCE = pick(quick=10, full=20)  # early-stopping patience (epochs), for every criterion
SIZES = pick(quick=[250, 500, 2000], full=[125, 250, 500, 1000, 2000])  # data-size sweep
BN_BATCHES = (64, 256)              # BatchNorm at the baseline's batch size and a larger one
BN_DEPTH, BN_DROPOUT = 5, 0.5       # the MLP whose dropout feeds BatchNorm layers ...
BN_WIDTH, BN_EPOCHS = 256, 40       # ... at the quick sizes at both scales (section 4 says why)
NOISE_RATE, NOISY_EPOCHS = 0.4, pick(quick=30, full=60)  # label noise on digits
DIGITS_EPOCHS = pick(quick=10, full=20)  # label smoothing on the easy task
MEMO_WIDTH, MEMO_MAX_EPOCHS = 256, 300
BASE = levers.Recipe(width=WIDTH, epochs=EPOCHS, lr=1e-3, batch_size=64)
BASE

# %% [markdown]
# ## 1. An overfitting model
#
# **Idea.** Give a wide MLP only 500 training examples and train it for long. It drives the training loss
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
runs = levers.run_levers(N_TRAIN, BASE, patience=PATIENCE, seed=cfg.seed)
baseline = runs["baseline"]
fig = levers.learning_curves(baseline.history, "A wide MLP on 500 MNIST-1D examples overfits")

# %%
over = levers.overfitting_numbers(baseline.history)
{k: round(v, 3) for k, v in over.items()}

# %% [markdown]
# **Claim check.** The baseline fits its training set (training accuracy at least 0.99), its validation loss
# bottoms out in the first half of training and then rises by more than 0.3 nats, and the gap between train
# and validation accuracy exceeds 0.4. Across seeds 0–4 the rise measured 0.74–0.99 nats at quick scale and
# 1.7–2.0 at full, the minimum came at 15–33% of training (quick) and 3–7% (full), and the gap measured 0.62–0.66.

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
# ## 2. Levers in five layers, one experiment each
#
# A layered answer to "how do you reduce overfitting?" walks through five places to intervene:
#
# | layer | levers tried here | what it changes |
# |---|---|---|
# | data | 4x more training examples; shift augmentation | what the model sees |
# | model | a 32-unit MLP; a 1-D CNN | capacity, and what the architecture assumes |
# | objective | weight decay; label smoothing | what the loss rewards |
# | training | dropout; early stopping | how the weights are reached |
# | evaluation | untouched test set; temperature scaling as the control | whether we can trust the numbers |
#
# Each lever is switched on alone against the baseline (same data split and initial weights). Shift
# augmentation rolls each signal by up to 4 positions, which encodes one thing we know about MNIST-1D: a
# digit's pattern may sit anywhere in the signal. As a `train_transform` for `helpers.train.fit` it is one
# gather per batch:

# %%
show_source(regularizers.random_shift)

# %% [markdown]
# Mixup (Zhang et al. 2018) is the other classic augmentation: train on convex blends of two examples with the
# same blend of their labels. It is a lever in exercise 2. On this baseline (α = 0.4) it moved test accuracy by
# +0.00 to +0.04 in our runs while shifts gained 0.09 to 0.20: an augmentation pays when it encodes a true
# invariance of the data, and mixup encodes only a smoothness assumption.

# %%
show_source(regularizers.mixup)

# %% [markdown]
# The *model* layer has two levers: fewer units (less capacity), and a different architecture. The 1-D CNN
# (three convolutions, then an average over positions) builds in what the shift augmentation teaches by
# example: a pattern means the same thing wherever it sits. It has about 11 thousand parameters against the
# MLP's 79 thousand at 256 units (289 thousand at 512), and trains with the same optimizer, learning rate and
# epochs.
#
# **Reading the table.** Every metric is on the **test** split, which nothing in this notebook trains or
# selects on (early stopping reads validation). NLL is plain cross-entropy, also for the smoothed model.
# "NLL after T-scaling" divides each model's logits by one temperature $T$ fitted on the validation split
# (Guo et al. 2017; notebook 06): accuracy cannot change, only confidence. The row *baseline + temperature
# scaling* is the control: a lever whose NLL gain disappears after scaling only recalibrated the model. For
# early stopping, "train acc" and "epoch kept" are those of the restored weights.

# %%
tables.show(levers.lever_rows(runs))

# %%
fig = levers.plot_levers(runs)

# %% [markdown]
# **Claim check: accuracy.** The two *data* levers (more data, and an augmentation that encodes a known
# invariance) each raise test accuracy, and the better of them beats dropout by a wide margin; the CNN, which
# encodes the same invariance in the architecture, raises it too.
# Across seeds 0–4 (quick / full): shift augmentation gained 0.094–0.12 / 0.14–0.20 (threshold 0.06), 4x data
# 0.16–0.22 / 0.18–0.22 (threshold 0.08), the CNN 0.068–0.086 / 0.16–0.29 (threshold 0.03; after 40 epochs it is
# still underfitting, see its train accuracy), and the better data lever led dropout by 0.17–0.21 / 0.14–0.18
# (threshold 0.05).

# %%
acc_gain = {name: run.test_acc - baseline.test_acc for name, run in runs.items()}
claim("shift augmentation raises test accuracy (gain)", acc_gain["shift augmentation"], ">", 0.06)
claim("4x more data raises test accuracy (gain)", acc_gain["more data (4x)"], ">", 0.08)
claim("the 1-D CNN raises test accuracy at the same learning rate and budget (gain)", acc_gain["1-D CNN"], ">", 0.03)
claim("the best data lever beats dropout by a wide margin (accuracy gain difference)",
      max(acc_gain["shift augmentation"], acc_gain["more data (4x)"]) - acc_gain["dropout"], ">", 0.05)

# %% [markdown]
# **Claim check: NLL, net of recalibration.** As trained, every lever lowers test NLL, and it is tempting to call
# that regularization. But one temperature fitted on validation (the table's second row) takes the baseline most
# of the way, with no retraining. After scaling every model, the penalty and noise levers (weight decay, label
# smoothing, dropout, early stopping) keep less than 40% of their as-trained NLL gain: most of it was
# recalibration. The data levers keep theirs.
# Across seeds 0–4 (quick / full): temperature scaling alone took 0.71–0.91 / 1.6–2.0 nats off the baseline's NLL
# (threshold 0.4); the largest share of its as-trained gain that any penalty or noise lever kept was 0.08–0.13 /
# 0.06–0.10 (threshold 0.4); after scaling, shift augmentation still gained 0.26–0.34 / 0.43–0.55 nats (threshold
# 0.15) and 4x data 0.43–0.57 / 0.49–0.56 (threshold 0.25).

# %%
nll_gain = {name: baseline.test_nll - run.test_nll for name, run in runs.items()}
scaled_gain = {name: baseline.scaled_nll - run.scaled_nll for name, run in runs.items()}
kept = {name: scaled_gain[name] / nll_gain[name] for name in ("weight decay", "label smoothing", "dropout",
                                                             "early stopping")}
claim("temperature scaling alone lowers the baseline's test NLL (nats)",
      baseline.test_nll - baseline.scaled_nll, ">", 0.4)
claim("penalty and noise levers keep little NLL gain after temperature scaling (largest share kept)",
      max(kept.values()), "<", 0.4)
claim("shift augmentation still lowers NLL after temperature scaling both (nats)",
      scaled_gain["shift augmentation"], ">", 0.15)
claim("4x more data still lowers NLL after temperature scaling both (nats)", scaled_gain["more data (4x)"], ">", 0.25)

# %% [markdown]
# **Levers this notebook does not train.** The guide's list has more data and evaluation levers than a toy
# data set can show: *label cleaning* (find mislabelled examples, e.g. by their loss, and fix them; section 5
# shows what 40% wrong labels do), *class balance* (resample or reweight rare classes), *leakage and
# duplicate checks* (a near-copy of a test example in training inflates every score), *better splits* (by
# time, user or site, as the model will meet them) and *segment metrics* (accuracy per slice, where the
# aggregate hides a failing group). Notebook 05 plants such bugs and finds them; notebook 08 runs the whole
# checklist on one data set. Other levers worth naming: *freezing layers / fine-tuning* a pretrained network
# (fewer free parameters, prior knowledge from a large data set), *stochastic depth* (drop whole residual blocks
# in training), *CutMix* (paste a patch of one image into another, mixing labels by area), and *class-balanced* or
# *auxiliary* losses (an extra target that shares the representation).
#
# ### More data, as a curve
# The "more data" lever is the end point of a sweep over training-set sizes (the runs at 500 and 2000 examples
# are reused from the table).

# %%
sweep = levers.size_sweep(SIZES, BASE, seed=cfg.seed, known={N_TRAIN: baseline, 2000: runs["more data (4x)"]})
fig = levers.plot_size_sweep(sweep)

# %% [markdown]
# The train curve stays at 1.0 (the wide MLP memorises any of these sets) while test accuracy climbs, so the
# gap narrows only from the test side; it does not close at 2000 examples. Across seeds 0–4, test accuracy rose
# by 0.24–0.29 (quick) and 0.30–0.36 (full) from the smallest to the largest set; the claim asks for 0.1.

# %%
smallest, largest = sweep[min(sweep)], sweep[max(sweep)]
claim("test accuracy rises with training-set size (largest minus smallest)",
      largest.test_acc - smallest.test_acc, ">", 0.1)

# %% [markdown]
# **Practical consequence.** Start with the data: more examples, an augmentation that encodes a true
# invariance, or an architecture that encodes it. Penalties and noise (weight decay, dropout, smoothing)
# mostly fix *confidence* on a model this data-starved, and a single temperature fixes most of that too;
# they cannot supply information the training set lacks. Read the sign column as well: a lever that fixes
# NLL can cost accuracy (a too-small model, or stopping on NLL), so say which metric you are regularising for.
#
# ## 3. Dropout vs weight decay, side by side
#
# **Two different mechanisms.**
# - *Dropout* (Srivastava et al. 2014) multiplies each hidden unit by a random mask $m\sim\text{Bernoulli}(q)$
#   during training, $q = 1-p$. No unit can rely on a particular partner (less co-adaptation), and every
#   mini-batch trains a different thinned sub-network; at test time the full network approximates the average
#   of that exponential ensemble. In practice: $p = 0.1$ in transformers (on attention weights and after each
#   sub-layer), 0.2–0.5 on the fully connected layers of older vision models, rarely on convolutions.
# - *Weight decay* shrinks every weight towards zero at each step, $w \leftarrow w - \eta\lambda w$ (decoupled, as in
#   AdamW; Loshchilov & Hutter 2019). It is a norm penalty: a large weight must earn its size by reducing the loss.
#
# Both runs come from the lever table (dropout $p=0.5$; AdamW weight decay $\lambda=3$ on weight matrices only,
# not biases). $\lambda = 3$ sounds huge, but decoupled decay multiplies by the learning rate: each step
# shrinks every weight by $\eta\lambda = 10^{-3}\cdot 3 = 0.3\%$, which over the 320 steps of a quick run (800 at
# full) would shrink an unused weight to about a third (a tenth).
#
# *L2 penalty vs decoupled decay.* With SGD, adding $\tfrac{\lambda}{2}\lVert w\rVert^2$ to the loss and decaying the
# weights are the same update. With Adam they are not: the penalty's gradient is divided by Adam's per-weight scale,
# so weights with large gradients are barely decayed; AdamW decays every weight by the same factor (notebook 02
# compares the optimizers). *L1 vs L2:* an L1 penalty $\lambda\lVert w\rVert_1$ pulls every weight towards zero by
# the same amount per step, so small weights reach exactly zero (sparsity, feature selection); L2 shrinks in
# proportion to size and leaves weights small but non-zero.

# %%
trio = {name: runs[name] for name in ("baseline", "dropout", "weight decay")}
fig = levers.plot_dropout_vs_decay(trio)

# %%
norms = {name: run.history.extra["weight_norm"][-1] for name, run in trio.items()}
rise = {name: levers.overfitting_numbers(run.history)["val-loss rise"] for name, run in trio.items()}
late = len(baseline.history.epoch) * 4 // 5  # the epoch where the last fifth of training starts
tables.show([{"run": name, "test acc": r.test_acc, "NLL after T-scaling": r.scaled_nll, "weight norm": norms[name],
              "final train loss": r.history.final()["train_loss"], "val-loss rise": rise[name],
              "val acc gain in the last fifth": r.history.val_acc[-1] - r.history.val_acc[late]}
             for name, r in trio.items()])

# %% [markdown]
# **Claim check.** Weight decay shrinks the weight norm to less than 75% of the baseline's, which is its
# mechanism. Dropout damps the late rise of the validation loss to less than 75% of the baseline's. Neither
# claim is about NLL as trained: section 2 showed that a temperature does most of that. Across seeds 0–4 weight
# decay's norm ratio measured 0.64–0.65 (quick) and 0.59–0.60 (full); dropout's rise ratio 0–0.05 at quick, where
# 40 epochs are too short for its validation loss to turn up at all, and 0.45–0.53 at full.

# %%
claim("weight decay shrinks the weight norm (ratio to baseline)", norms["weight decay"] / norms["baseline"], "<", 0.75)
claim("dropout damps the late rise of validation loss (ratio to baseline)",
      rise["dropout"] / rise["baseline"], "<", 0.75)

# %% [markdown]
# **Reading the panels.** Dropout does not shrink weights the way decay does: its weight norm ended at about 80%
# of the baseline's at quick scale and slightly *above* it (about 1.04 times) at full scale in our runs. Nothing in
# dropout's objective penalises size, and its noise keeps the training loss above zero (see the table); a likely
# reading, which we did not measure, is that its gradients therefore stay larger and keep moving the weights. Dropout regularises the *function* (no unit can be relied
# on), not the parameters. The budget matters too: in the 40-epoch quick run dropout's validation accuracy is still
# rising in the last fifth of training while the baseline's is flat, so the short budget caps dropout; by 100
# epochs (full) its curve has flattened as well (the last column).
#
# **Practical consequence.** On a model this data-starved neither lever moves accuracy much (a few points at
# most), and most of their NLL gain is what a temperature gives. Weight decay acts on the parameters (norms,
# the histogram's narrower peak); dropout acts on the activations, so it also changes the forward pass between
# training and evaluation, which is the next section.
#
# ## 4. Dropout in train vs eval mode, and BatchNorm
#
# **Inverted dropout.** In training, keep a unit with probability $q$ and divide by $q$:
# $\tilde h = h\,m/q$. Then $\mathbb E[\tilde h] = h$, so evaluation can use the network unchanged. The second
# moment is not preserved: $\mathbb E[\tilde h^2] = h^2/q$, so for zero-mean activations the train-mode variance is
# $1/q$ times the eval-mode variance. From scratch it is three lines after the checks:

# %%
show_source(regularizers.inverted_dropout)

# %%
stats = noise.dropout_statistics(0.5, seed=cfg.seed)
{k: round(v, 4) for k, v in stats.items()}

# %% [markdown]
# **Claim check.** On 200,000 zero-mean activations the from-scratch dropout and `nn.Dropout` zero the same
# share of units (within 0.01 of each other) and both multiply the variance by $1/q = 2$ (within 5%). These
# are sampling statements: the errors measured below 1% for every seed.

# %%
claim("from-scratch and nn.Dropout zero the same share of units (absolute difference)",
      abs(stats["share zeroed (ours)"] - stats["share zeroed (nn.Dropout)"]), "<", 0.01)
claim("train/eval variance ratio under dropout matches 1/(1-p) (largest relative error of the two)",
      max(abs(stats[f"variance ratio train/eval ({who})"] / stats["theory 1/(1-p)"] - 1)
          for who in ("ours", "nn.Dropout")), "<", 0.05)

# %% [markdown]
# **What a BatchNorm after dropout sees.** In a network, dropout usually follows a ReLU, whose outputs are not
# zero-mean. With $\mathbb E[\tilde h] = \mathbb E[h]$ and $\mathbb E[\tilde h^2] = \mathbb E[h^2]/q$, the variance
# in evaluation over the variance learned in training is
# $$\frac{\operatorname{Var} h}{\mathbb E[h^2]/q - \mathbb E[h]^2},$$
# which is $q$ for zero-mean inputs and smaller for ReLU outputs: for ReLU of a standard Gaussian
# ($\mathbb E[h] = 1/\sqrt{2\pi}$, $\mathbb E[h^2] = 1/2$) it is 0.405 at $p = 0.5$, not 0.5.
#
# **Explorer (live).** Move the dropout rate: the left panel shows one ReLU unit's activations in both modes, the
# right panel the eval/train variance ratio a BatchNorm layer after dropout sees, the measured point on the ReLU
# theory curve, with the zero-mean curve for comparison.

# %%
explore(noise.dropout_explorer, dropout=Slider(0.05, 0.9, 0.05, 0.5))

# %% [markdown]
# ### BatchNorm, trained
#
# BatchNorm (Ioffe & Szegedy 2015) standardises each unit with the mean and variance of the current mini-batch
# in training, and with running averages of them in evaluation. Its purpose is optimisation (it keeps each
# layer's inputs on one scale); any regularization is a side effect of the batch statistics' noise, which is
# larger in smaller batches. We train the baseline MLP with BatchNorm at two batch sizes, each against the same
# MLP without it (the run at 64 is the baseline itself). The MLP has two hidden layers and BatchNorm only in the
# second (the first layer reads the raw signal), so this is one BatchNorm layer.

# %%
bn_runs = levers.batchnorm_runs(split, BASE, BN_BATCHES, seed=cfg.seed, known={("no BatchNorm", 64): baseline})
tables.show([{"network": name, "batch size": size, "train acc": run.history.final()["train_acc"],
              "test acc": run.test_acc, "test NLL": run.test_nll, "NLL after T-scaling": run.scaled_nll}
             for (name, size), run in bn_runs.items()])

# %% [markdown]
# **Claim check.** BatchNorm raises test accuracy at both batch sizes, and mildly: by less than half of what 4x
# more data buys. Across seeds 0–4 the smaller of the two gains measured 0.025–0.078 (quick) and 0.034–0.066
# (full), and the larger one was 0.22–0.37 of the gain from 4x data. Read the control at batch 256 too: without
# BatchNorm the MLP does not quite fit its training set in the quick budget (train accuracy about 0.9), so part of
# BatchNorm's gain there is easier optimisation, its actual purpose, rather than regularization. And the gain was
# about the same at both batch sizes, so this experiment cannot credit it to the noise of small batches: it measures
# what BatchNorm buys, not how that splits between optimisation and regularization (that would need a run at full
# batch, where the batch statistics carry no noise, with enough steps to converge).

# %%
bn_gain = {size: bn_runs["BatchNorm", size].test_acc - bn_runs["no BatchNorm", size].test_acc for size in BN_BATCHES}
claim("BatchNorm raises test accuracy at both batch sizes (smaller gain)", min(bn_gain.values()), ">", 0.0)
claim("BatchNorm's accuracy gain is mild (larger gain / gain of 4x more data)",
      max(bn_gain.values()) / acc_gain["more data (4x)"], "<", 0.5)

# %% [markdown]
# **Dropout before BatchNorm: the variance shift** (Li et al. 2019). A BatchNorm layer after dropout learns
# its running variance from train-mode activations, inflated by dropout's noise. In evaluation dropout is off,
# the inputs have a smaller variance than the running statistics assume, and the normalised outputs shrink,
# layer after layer. The fix costs one pass over the training data: recompute BatchNorm's statistics with
# dropout switched off.

# %%
show_source(regularizers.reestimate_batchnorm)

# %%
shift_recipe = replace(BASE, width=BN_WIDTH, epochs=BN_EPOCHS)
shifted = levers.dropout_before_batchnorm(split, shift_recipe, BN_DEPTH, BN_DROPOUT, seed=cfg.seed)
{"eval variance / running variance, per BatchNorm layer": [round(r, 2) for r in shifted["shift before"]],
 "predicted by dropout alone": [round(r, 2) for r in shifted["shift predicted by dropout alone"]],
 "after re-estimation": [round(r, 2) for r in shifted["shift after"]],
 "test acc as trained": round(shifted["run"].test_acc, 3),
 "test acc, re-estimated with dropout on (control)": round(shifted["test acc re-estimated with dropout on"], 3),
 "test acc after the fix": round(shifted["test acc after fix"], 3)}

# %% [markdown]
# **Claim check.** In this 5-layer MLP with dropout 0.5 before each BatchNorm, every BatchNorm layer sees in
# evaluation less than 0.6 of the variance it expects; the first one sees what dropout alone predicts from the
# formula above (within 0.05), and the deeper ones see less than that prediction, because the shifts compound: each
# layer's eval-mode inputs are already shrunk by the layers below. After re-estimation every ratio is within 0.3
# of 1 (not exactly 1, because the test inputs are not the training inputs), and test accuracy rises by more than
# 0.02. The control: re-estimating the statistics exactly with dropout still *on* (no retraining either) gains
# less, by more than 0.02, so the fix works by switching dropout off, not by replacing running averages.
# Across seeds 0–4 (the same sizes at both scales) the largest ratio before the fix was 0.41–0.42 (the first
# BatchNorm, within 0.013 of the formula; the deeper ones measured 0.13–0.15 below it), the ratios after it were
# within 0.05–0.16 of 1, the fix gained 0.040–0.075 test accuracy, and it beat the dropout-on control by
# 0.038–0.069.
#
# This network is trained at 256 units for 40 epochs at both scales, because what the shift *costs* depends on
# the network: at 512 units and 100 epochs the same fix changed test accuracy by only −0.002 to +0.02 (seeds
# 0–2), while the variance shift itself was as large as here. The shift is certain; its price is not, and the
# fix is one cheap pass over the training data.

# %%
claim("with dropout before BatchNorm, eval-mode variance falls short of the running variance (largest ratio)",
      max(shifted["shift before"]), "<", 0.6)
claim("re-estimating BatchNorm statistics removes the shift (largest distance of a ratio from 1 after the fix)",
      max(abs(r - 1) for r in shifted["shift after"]), "<", 0.3)
claim("the first BatchNorm layer's shift matches the dropout formula (absolute difference)",
      abs(shifted["shift before"][0] - shifted["shift predicted by dropout alone"][0]), "<", 0.05)
claim("deeper BatchNorm layers see a larger shift than dropout alone predicts (largest measured minus prediction)",
      max(m - q for m, q in zip(shifted["shift before"][1:], shifted["shift predicted by dropout alone"][1:])), "<", 0)
claim("the fix raises test accuracy (after minus before)", shifted["test acc after fix"] - shifted["run"].test_acc,
      ">", 0.02)
claim("re-estimating with dropout on gains less than the fix (fix minus control)",
      shifted["test acc after fix"] - shifted["test acc re-estimated with dropout on"], ">", 0.02)

# %% [markdown]
# **Practical consequence: dropout vs batch normalization.** They solve different problems. BatchNorm
# standardises activations with batch statistics to make optimisation easier, and the noise of those
# statistics may regularise mildly (here we measured its total gain, not that split); dropout injects noise on
# purpose. Both behave differently in train and eval mode, so
# `model.eval()` matters twice over. If you combine them, put dropout *after* the last BatchNorm (or only
# before the classifier), or re-estimate BatchNorm's statistics with dropout off. Transformers use
# LayerNorm instead, which normalises each example over its own features and so does not depend on the batch
# at all; notebook 04 compares the two across batch sizes.
#
# ## 5. Early stopping, and how validation selection overfits
#
# **Definition.** Early stopping watches a validation metric after every epoch, keeps a copy of the weights
# from the best epoch so far, stops once the metric has not improved for `PATIENCE` epochs, and restores the
# kept weights. The *criterion* matters: validation NLL punishes over-confident mistakes and turns up early;
# validation accuracy keeps improving for longer. We run `helpers.train.EarlyStopping` with each criterion and
# the same patience (the validation-loss run is the early-stopping lever from section 2).

# %%
stopping = {"val_loss": runs["early stopping"],
            "val_acc": levers.train_recipe(split, replace(BASE, patience=PATIENCE, monitor="val_acc"), cfg.seed)}
restored = {monitor: run.history.restored_epoch for monitor, run in stopping.items()}
fig = noise.plot_early_stopping(baseline.history, restored)

# %%
distance = {monitor: run.history.extra["distance_from_init"][restored[monitor]] for monitor, run in stopping.items()}
distance["no stopping"] = baseline.history.extra["distance_from_init"][-1]
tables.show([{"criterion": monitor, "epoch kept": restored.get(monitor, EPOCHS), "test acc": run.test_acc,
              "train acc": run.row()["train acc"], "distance from init": distance[monitor]}
             for monitor, run in [*stopping.items(), ("no stopping", baseline)]])
acc_spike = noise.spike(baseline.history, restored["val_acc"])
print(f"validation accuracy at the epoch kept by val_acc, minus the ten epochs around it: {acc_spike:+.3f}")

# %% [markdown]
# **Claim check.** With the same patience, stopping on validation NLL restores an earlier epoch than stopping on
# validation accuracy and pays for it in test accuracy. Across seeds 0–4 the restored epochs differed by 16–26
# (quick) and 9–44 (full), and the cost measured 0.019–0.079 (quick) and 0.048–0.10 (full); its smallest margin,
# 0.019, is 19 of the 1000 test examples.
#
# Look at where the accuracy criterion stops: on a noisy plateau, the best epoch is a one-epoch spike about one
# to two points above the ten epochs around it (printed above). Keeping the maximum of a noisy curve is selection
# on noise, the same effect as the best-of-many experiment below; a smoother criterion (NLL, or accuracy averaged
# over a few epochs) is less exposed to it.

# %%
acc_cost = stopping["val_acc"].test_acc - stopping["val_loss"].test_acc
claim("stopping on validation NLL restores an earlier epoch than stopping on accuracy (epoch difference)",
      restored["val_acc"] - restored["val_loss"], ">", 0)
claim("stopping on NLL costs test accuracy (accuracy-stopped minus NLL-stopped)", acc_cost, ">", 0.0)

# %% [markdown]
# ### Where early stopping pays: noisy labels
# On clean MNIST-1D early stopping bought nothing: the NLL-stopped model lost accuracy, and the accuracy-stopped
# one landed near the model trained to the end, because the network keeps learning real structure (with its
# over-confidence, which a temperature repairs) almost the whole time. Early stopping earns its place when the
# training labels are wrong.
# Networks learn the patterns shared by many examples first and memorise the exceptions later (Arpit et al.
# 2017), so with noisy labels there is an epoch where the model has the signal and not yet the noise. We flip
# 40% of the digits labels, in training *and* validation, to a random other class, keep the test labels
# clean, and train one MLP to the end and one with early stopping on the noisy validation loss. The control is
# the same pair of runs on clean labels.

# %%
noisy = noise.label_noise_runs(NOISE_RATE, width=256, epochs=NOISY_EPOCHS, patience=PATIENCE, seed=cfg.seed)
clean = noise.label_noise_runs(0.0, width=256, epochs=NOISY_EPOCHS, patience=PATIENCE, seed=cfg.seed)
fig = noise.plot_label_noise(noisy)

# %%
ended, stopped = noisy["to the end"], noisy["early stopping"]
es_epoch = stopped["history"].restored_epoch
{"labels wrong in training": round(noisy["noise in train"], 3),
 "test acc, trained to the end": round(ended["test acc"], 3),
 "test acc, early stopping": round(stopped["test acc"], 3), "restored epoch": es_epoch,
 "distance from init at the restored epoch": round(stopped["probe"].distance[es_epoch], 1),
 "distance from init at the end": round(ended["probe"].distance[-1], 1),
 "clean labels: test acc to the end / early stopping": (round(clean["to the end"]["test acc"], 3),
                                                        round(clean["early stopping"]["test acc"], 3))}

# %% [markdown]
# **Claim check.** Early stopping on the *noisy* validation loss keeps a model that is more than 0.1 more
# accurate on clean test labels than the one trained to the end, and its gain under noise exceeds its gain on
# clean labels (where it gains nothing or loses a little) by more than 0.1. Across seeds 0–4 the gain under noise
# measured 0.16–0.33 (quick) and 0.17–0.33 (full), and the difference of gains 0.17–0.33 (quick) and 0.18–0.33
# (full).
#
# The validation labels are as wrong as the training labels, so why does a noisy validation set pick the right
# epoch? Under symmetric noise of rate $\rho$ over $K$ classes, a correct prediction scores when its label was not
# flipped and a wrong one when the label was flipped to exactly the predicted class, so in expectation
# $$\text{noisy accuracy} = \frac{\rho}{K-1} + \Big(1 - \frac{\rho K}{K-1}\Big)\,\text{clean accuracy} = 0.044 +
# 0.556\,\text{clean accuracy}$$
# for $\rho = 0.4$, $K = 10$. It increases with clean accuracy, so the noisy set ranks epochs as a clean one would
# (the grey line in the left panel, predicted from the test curve, follows the measured validation curve). It
# would fail at $\rho \ge (K-1)/K$, where the slope reaches zero, or under asymmetric noise that flips labels
# towards one particular wrong class.

# %%
claim("with 40% label noise, early stopping beats training to the end on clean test labels (accuracy gain)",
      stopped["test acc"] - ended["test acc"], ">", 0.1)
claim("early stopping gains more under label noise than on clean labels (difference of gains)",
      (stopped["test acc"] - ended["test acc"]) - (clean["early stopping"]["test acc"] - clean["to the end"]["test acc"]),
      ">", 0.1)

# %% [markdown]
# **Early stopping and L2, related but not shown equal here.** The right panel shows that the weights drift away
# from their initialisation epoch after epoch, so stopping earlier keeps them closer: that is true by construction
# of any run whose distance grows, and it is not by itself evidence of a penalty. The theory: for a quadratic loss
# and plain gradient descent, stopping after $t$ steps at learning rate $\eta$ acts like an L2 penalty of strength
# about $1/(\eta t)$ towards the initial weights (Bishop 1995; Goodfellow et al. 2016, section 7.8). Every run here
# uses AdamW on a non-quadratic loss, so read the analogy as intuition (both limit how far the weights travel), not
# as something this notebook measured.
#
# ### Validation overfitting
# Every time we pick a model, epoch or hyperparameter by its validation score we fit the validation set a
# little. Here we try 200 near-identical candidates (the dropout model with small random weight perturbations,
# so their true accuracies are alike), score each on a 100-example validation set, and keep the winner. Its
# validation score is the maximum of many noisy draws. We compare *edges over the average candidate*, on
# validation and on test, not the winner's raw validation and test scores: a particular 100 examples can be
# easier or harder than the test set as a whole, which would shift both numbers for reasons unrelated to
# selection.

# %%
selection = noise.best_of_many(runs["dropout"].model, split, n_candidates=200, n_val=100, seed=cfg.seed)
fig = noise.plot_best_of_many(selection)
{k: round(selection[k], 3) for k in ("mean validation accuracy", "mean test accuracy", "validation edge", "test edge",
                                      "predicted share that survives (at most)")}

# %% [markdown]
# This is a demonstration, and its outcome is predictable before picking any winner. Write each candidate's
# validation score as its true accuracy plus sampling noise. Then the expected test edge of the validation winner
# is $\operatorname{Var}(\text{true}) / \operatorname{Var}(\text{validation})$ of its validation edge (regression to
# the mean). The candidates' spread on the 1000 test examples bounds the true spread from above, so
# $\operatorname{Var}(\text{test}) / \operatorname{Var}(\text{validation})$ predicts at most how much survives.
# With candidates this alike and a validation set of 100 examples that share is small (the dashed line), and
# that is the point of the design: when the candidates differ less than the validation set's noise, the winner
# is mostly the luckiest draw. In practice the same arithmetic tells you when a leaderboard gap means nothing.
#
# **Claim check.** The winner's validation accuracy beats the average candidate's by more than 0.03; the spreads
# predict that less than a quarter of that edge is real; and on the untouched test set less than half of it
# survives. Across seeds 0–4 (quick / full) the validation edge measured 0.05–0.08 / 0.05–0.07, the predicted
# share 0.07–0.17 / 0.11–0.18, and the surviving share −0.07 to 0.14 / −0.35 to 0.15.

# %%
claim("picking the best of 200 on validation inflates its score (winner minus mean validation accuracy)",
      selection["validation edge"], ">", 0.03)
claim("the candidates' spreads predict that little of the edge is real (var(test) / var(validation))",
      selection["predicted share that survives (at most)"], "<", 0.25)
claim("the validation edge does not survive on the untouched test set (test edge / validation edge)",
      selection["test edge"] / selection["validation edge"], "<", 0.5)

# %% [markdown]
# **Practical consequence.** Early stopping is cheap insurance where labels are noisy and a real loss where they
# are clean and the budget is short. It is also a selection on validation data like any other: choose the
# criterion that matches the metric you ship (accuracy vs calibrated probabilities), prefer a smooth criterion
# (NLL, or a moving average) over a spiky one, and report the final number on a holdout that no decision
# touched (or use cross-validation when data are scarce).
#
# ## 6. Label smoothing: calibration helps, until the model is not over-confident
#
# **Idea.** Replace the one-hot target with $1-\varepsilon$ on the true class plus $\varepsilon/K$ spread over all
# $K$ classes. The loss then stops rewarding ever-larger logits: its optimum puts probability
# $1-\varepsilon+\varepsilon/K$ (0.91 for $\varepsilon = 0.1$, $K = 10$) on the true class. From scratch it is a
# weighted sum of log-probabilities, equal to `F.cross_entropy(logits, y, label_smoothing=0.1)`:

# %%
show_source(regularizers.smoothed_targets, regularizers.smoothed_cross_entropy)

# %% [markdown]
# **The nuance** (Müller, Kornblith & Hinton 2019): smoothing fixes over-confidence, but a model that was
# already well calibrated becomes *under*-confident. We compare the over-confident MNIST-1D baseline with an
# easy task (digits, where a plain MLP is both accurate and calibrated). Calibration is measured by the
# expected calibration error: sort predictions into 15 equal-width confidence bins and average
# $|\text{accuracy} - \text{confidence}|$ over the bins, weighted by how many predictions each holds.

# %%
digits_split, digits_runs = levers.digits_smoothing_runs(0.1, epochs=DIGITS_EPOCHS, width=256, seed=cfg.seed)
mnist_models = {"no smoothing": baseline.model, "smoothing 0.1": runs["label smoothing"].model}
digits_models = {name: run.model for name, run in digits_runs.items()}
fig = noise.plot_confidences({"MNIST-1D, 500 examples (over-confident)": (split, mnist_models),
                              "digits (easy)": (digits_split, digits_models)})

# %%
calib = {task: {name: noise.confidence_summary(model, s) for name, model in nets.items()}
         for task, nets, s in (("MNIST-1D", mnist_models, split), ("digits", digits_models, digits_split))}
tables.show([{"task": task, "model": name, **{k: v for k, v in summary.items() if k != "confidence"}}
             for task, d in calib.items() for name, summary in d.items()])

# %% [markdown]
# These are confidence histograms, not reliability diagrams: they show how sure the model is, not whether it is
# right as often as it is sure (notebook 06 draws those). The dotted line is the optimum of the smoothed loss on
# *training* examples. Test predictions can sit above it (the table's last column: a few percent of the smoothed
# MNIST-1D model's, and far more of the smoothed digits model's): the cap holds where the training loss is
# minimised, and an unseen input can land further from the decision boundaries than the training examples did.
#
# **Claim check.** On MNIST-1D smoothing cuts ECE to less than 70% of the baseline's, but temperature scaling
# alone (fitted on validation, no retraining) does at least as well, within 0.02 ECE, so smoothing is not the tool
# to reach for when calibration is the goal. On
# digits smoothing *raises* ECE by more than 0.05, because the mean confidence falls more than 0.05 below the
# accuracy: under-confidence. Across seeds 0–4 (quick / full): the ECE ratio measured 0.48–0.54 / 0.18–0.25;
# smoothed minus temperature-scaled ECE 0.10–0.15 / 0.003–0.065 (scaling clearly better at quick, about equal at
# full); on digits the ECE rise 0.10–0.13 and the under-confidence 0.12–0.14 at both scales.

# %%
mn, dg = calib["MNIST-1D"], calib["digits"]
claim("label smoothing cuts ECE on the over-confident MNIST-1D model (ratio)",
      mn["smoothing 0.1"]["ECE"] / mn["no smoothing"]["ECE"], "<", 0.7)
claim("temperature scaling alone calibrates the MNIST-1D baseline at least as well as smoothing, within 0.02 ECE "
      "(smoothed ECE minus scaled)", mn["smoothing 0.1"]["ECE"] - baseline.scaled_ece, ">", -0.02)
claim("on easy digits label smoothing raises ECE (smoothed minus plain)",
      dg["smoothing 0.1"]["ECE"] - dg["no smoothing"]["ECE"], ">", 0.05)
claim("the smoothed digits model is under-confident (accuracy minus mean confidence)",
      dg["smoothing 0.1"]["accuracy"] - dg["smoothing 0.1"]["mean confidence"], ">", 0.05)

# %% [markdown]
# **Practical consequence.** Use label smoothing when a model is over-confident and you care about ranking or
# accuracy; do not use it where the probabilities themselves matter (risk scores, thresholds) without checking
# calibration, and prefer temperature scaling (notebook 06) when calibration is the only goal.
#
# **Follow-ups an interviewer may ask.**
# - *Distillation teachers.* Müller et al. (2019) found that smoothed teachers distil *worse*: smoothing pulls
#   the examples of a class into tight, equidistant clusters and erases the information about which wrong
#   classes are similar, which is exactly what a student learns from the teacher's soft outputs.
# - *MC dropout.* Keeping dropout on at test time and averaging $T$ stochastic forward passes (Gal &
#   Ghahramani 2016) gives a cheap ensemble: the spread of the $T$ predictions is an uncertainty estimate, and
#   the average is often better calibrated than one deterministic pass.
#
# ## 7. Memorisation: random labels (Zhang et al. 2017)
#
# **Idea.** If the capacity to memorise were what made networks overfit, a network that can memorise noise
# should never generalise. Zhang et al. showed that standard networks fit completely random labels, just more
# slowly, yet generalise when the labels are real. We repeat it on digits: the same MLP, trained until 99% training
# accuracy, once with true labels and once with the training labels shuffled.

# %%
memo = noise.memorisation_runs(width=MEMO_WIDTH, max_epochs=MEMO_MAX_EPOCHS, seed=cfg.seed)
fig = noise.plot_memorisation(memo)
epochs_needed = {name: run["epochs"] for name, run in memo.items()}
epochs_needed

# %% [markdown]
# **Claim check.** With random labels the network still reaches at least 99% training accuracy, its test
# accuracy stays near chance (below 0.2), and it needs 1.5–10 times as many epochs as with true labels.
# Across seeds 0–4 at both scales the epoch ratio measured 5.3–6.3 and the random-label test accuracy
# 0.09–0.12.

# %%
random_run = memo["random labels"]
claim("the MLP memorises random labels (train accuracy)", random_run["history"].train_acc[-1], ">=", 0.99)
claim("random-label training leaves test accuracy near chance", random_run["test acc"], "<", 0.2)
claim("random labels take longer to fit (epoch ratio random/true)",
      epochs_needed["random labels"] / epochs_needed["true labels"], "between", (1.5, 10))

# %% [markdown]
# **Practical consequence.** Capacity alone does not explain generalisation: the *same* network memorises or
# generalises depending on the data. Real structure is learned first and fast, noise later and slowly, which is
# why early stopping works against noisy labels (section 5) and why "the model is too big" is an incomplete
# diagnosis. What does explain generalisation is still open research; the leading answers are implicit biases of
# training: gradient descent from a small initialisation prefers simple, low-norm solutions among the many that
# fit, and networks fit simple functions before complex ones (simplicity bias).
#
# ## Explorer: pull the levers yourself
# Set dropout, weight decay, training-set size, label smoothing and epochs, then press **Run** (about four
# CPU-seconds at the start values, longer on a busy machine or at 2000 examples and 60 epochs): the curves show train (dashed) and validation
# (solid), the table the gap and test numbers. Weight decay moves in powers of ten; its lowest value is effectively
# none. Try to reproduce the lever table's story: which setting closes the gap, and which only tames the NLL?

# %%
explore(levers.overfitting_explorer, run_button=True,
        dropout=Slider(0.0, 0.8, 0.1, 0.0),
        weight_decay=Slider(1e-5, 10.0, 0.25, 1e-5, log=True),
        n_train=Slider(100, 2000, 100, 500),
        label_smoothing=Slider(0.0, 0.3, 0.05, 0.0),
        epochs=Slider(10, 60, 10, 40))


# %% [markdown]
# ## Your turn
#
# **Exercise 1: inverted dropout.** Write `inverted_dropout(x, p, training)`: in training, zero each entry with
# probability `p` and scale the survivors by `1/(1-p)`; in evaluation return `x` unchanged. The checker compares
# its statistics with `torch.nn.Dropout`.

# %%
def inverted_dropout(x, p: float, training: bool):
    raise NotImplementedError


# %%
noise.check_inverted_dropout(inverted_dropout);

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
# to "just add dropout". Pick the set of levers you would try first from `levers.LEVER_CHOICES` and run the
# cell: the checker trains your choice on the notebook's data and compares its test accuracy with the baseline's
# (a few seconds).

# %%
print(levers.LEVER_CHOICES)
my_levers = None  # e.g. {"dropout", "weight decay"}

# %%
levers.check_lever_choice(my_levers, baseline, split, seed=cfg.seed, patience=PATIENCE);

# %% [markdown]
# <details><summary>Solution</summary>
#
# `{"shift augmentation"}`. What we know about the data, that patterns move, is worth more than any penalty:
# shift augmentation turns each signal into many, which is the data lever (a CNN with pooling would be the
# model-layer version of the same knowledge). Dropout alone buys a few points at most, as the lever table
# showed, and stacking penalties on top of the augmentation can underfit in a short budget (try it: the
# checker reports the accuracy of whatever you choose). More levers is not automatically better.
# </details>
#
# ## Interview answer
# What you can say aloud in about a minute, with this run's numbers; the full table follows as backup.

# %%
display(Markdown(levers.spoken_answer(
    runs, bn_gain=bn_gain[64], variance_seen=max(shifted["shift before"]),
    fix_gain=shifted["test acc after fix"] - shifted["run"].test_acc,
    noisy_stopped=stopped["test acc"], noisy_ended=ended["test acc"])))

# %%
tables.show([{k: row[k] for k in ("layer", "lever", "test acc", "change in test acc", "NLL after T-scaling")}
             for row in levers.lever_rows(runs)])

# %% [markdown]
# ## Traps
#
# - **"Just use dropout."** The lever table refutes it: dropout changed test accuracy by a few points at most,
#   while shift augmentation and more data gained far more in every seed. Dropout is one lever of the
#   training layer, not an answer.
# - **"This regularizer lowered test NLL, so it generalises better."** Section 2: one temperature fitted on
#   validation gave the baseline most of that gain; compare against a temperature-scaled baseline.
# - **"Dropout and BatchNorm are interchangeable regularisers."** Section 4: they do different things,
#   BatchNorm's gain was modest and mixes easier optimisation with any regularization, and dropout before BatchNorm gives a measured train/eval variance shift
#   that costs accuracy until the statistics are re-estimated.
# - **"Early stopping always helps"** or **"early stopping is free."** Section 5: on clean data it cost
#   accuracy, against noisy labels it saved far more; and selecting on validation inflated the validation
#   score, so only an untouched test set tells the truth.
# - **"Label smoothing always improves calibration."** Section 6: on the easy task it made the model
#   under-confident and raised ECE, and on the hard one temperature scaling calibrated better.
# - **"A network that can memorise noise cannot generalise."** Section 7: the same MLP memorised random
#   labels and generalised on true ones; what it learns depends on the data.
