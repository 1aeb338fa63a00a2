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
# # 08 · Traps and checklist: a capstone you can tell as your interview story
#
# The last question of most deep-learning interviews is the open one: *describe one model you trained, the
# data problem that mattered most, and the metric trade-off you made*. A strong answer is specific: a number
# for what went wrong, the mechanism behind it, and the decision it forced. This notebook gives you such a
# model. It generates a year of support messages to be routed to one of five queues, plants the problems
# real routing data has, finds each one with a check, fixes it, picks the model a product can afford, and
# then writes the story up with the numbers this run measured.
#
# The interview guide lists five **traps**: maths recited without intuition, one regularization trick for
# every problem, ignoring data quality, overstating big models, and no deployment awareness. Each gets
# executed evidence here. Its **checklist** closes the notebook as eight questions you first answer from
# memory and then check against a live experiment.
#
# **Interview questions answered here**
# 1. *Your validation accuracy was great and production was worse: why?* (leakage through near-copies, drift)
# 2. *How do you find mislabelled data?* (confident learning, against the naive baseline)
# 3. *Is a bigger model or an ensemble worth it?* (a product-cost table and a service-level rule)
# 4. *Validation loss goes up: are you overfitting?* (what early stopping watches)
# 5. *Can you trust the model's confidence?* (temperature scaling, thresholds per segment)
# 6. *How would you make it cheaper to serve?* (int8, batching, retrieval)
# 7. *Describe one model you trained.* (the story, generated from this run)

# %%
from helpers import setup

cfg = setup("08_traps_and_checklist")

# %% [markdown]
# All sizes live in this one cell. The quick scale runs in well under a minute on two CPU cores; the full
# scale generates two and a half times more messages and trains longer.

# %%
from helpers.config import pick

MESSAGES = pick(quick=6000, full=15000)
EPOCHS = pick(quick=12, full=16)
WIDTH, LEARNING_RATE, MEMBERS = 256, 1e-3, 5
SINGLE_CALLS = pick(quick=150, full=300)
print(f"scale {cfg.scale}: {MESSAGES} messages, MLPs of width {WIDTH} trained {EPOCHS} epochs, on {cfg.device}")

# %% [markdown]
# ## 1. The data: a year of support messages, with problems planted
#
# Each message is a bag of words about one of five queues (billing, refund, shipping, technical, account),
# sent through one of three channels (email, chat, phone) about one of two products (web, app). Some words
# change meaning with the product: *code* is a promo code on the web and a sign-in code in the app, so a
# model that cannot combine a word with the product (a linear one) loses information. Then the problems:
#
# - **Incident bursts.** A quarter of the messages are near-copies written during incidents: within about a
#   day, many customers send almost the same text, and all of it goes to the team that owns the incident.
#   Which team that is cannot be read from the words.
# - **Drift.** The app's share grows from 20% to 80% over the year, shipping messages surge 2.5-fold in the
#   last two months, and new words appear from day 220 (a *locker* pickup, a *passkey* sign-in).
# - **Systematic label noise.** Agents filed most chat messages about refunds under billing.
# - **Noisy phone transcripts.** Speech recognition mishears about one word in four.
#
# The test set is the future, days 300 to 360, scored against the **true** queues; everything before is
# the labelled past, with its mistakes.

# %%
import numpy as np

from helpers import tables
from helpers.experiments import nb08_traps_and_checklist as capstone

messages = capstone.generate(MESSAGES, cfg.seed)
tables.show(capstone.planted(messages))
incident = messages.burst == messages.burst[messages.burst >= 0][0]
for i in [*range(3), *np.flatnonzero(incident)[:3]]:
    print(messages.text(i))

# %% [markdown]
# The last three lines are copies from one incident: the same words, an error code, and a label that the
# words do not predict.

# %% [markdown]
# ## 2. Trap: ignoring data quality (A) — the leak
#
# **Plain idea.** A validation set estimates how the model will do on data it has never seen. If near-copies
# of validation messages sit in the training set, the model can recall the answer instead of working it
# out, and the estimate is too good. Kapoor & Narayanan (2023) found leakage of this and other kinds across
# 294 papers in 17 fields; Barz & Denzler (2020) found near-duplicates of training images for 3.3% of the
# CIFAR-10 and 10% of the CIFAR-100 test images.
#
# **Mechanism.** A random split of days 0–300 puts copies of each incident on both sides. A *time* split
# trains on days before 240 and validates on days 240–300, as the model will be used: trained on the past,
# applied to the future. We measure the **near-twin rate**, the share of validation messages whose word
# vector has cosine similarity $\frac{a \cdot b}{\lVert a \rVert \lVert b \rVert} \ge 0.9$ with some
# training message, and then what each split's validation accuracy promised against the accuracy on days
# 300–360. The model is logistic regression on bag-of-words features whose vocabulary is fitted on the
# training rows only.

# %%
runs = {kind: capstone.split_run(messages, kind, cfg.seed) for kind in ("random", "time")}
tables.show([{"split": kind, "validation accuracy": run.validation_accuracy,
              "future accuracy": run.future_accuracy, "overstatement": run.overstatement,
              "near-twins in validation": run.twin_rate} for kind, run in runs.items()])
capstone.leak_figure(runs);

# %% [markdown]
# The random split's validation promises far more than the future delivers; the time split's promise is
# close. The claims: the random split overstates the future by a wide margin, by more than the time split
# does (the control: same model, same data, only the split differs), and its validation is full of
# near-twins while the time split's has almost none. Across seeds 0–4 we measured overstatements of
# 0.09–0.17 at quick scale and 0.10–0.19 at full scale (random) against at most 0.05 either way (time), and
# twin rates of about 15% against under 1%.

# %%
from helpers.claims import claim

claim("a random split's validation accuracy overstates accuracy on the future by more than 6 points",
      runs["random"].overstatement, ">", 0.06)
claim("the random split overstates the future by at least 8 points more than the time split does",
      runs["random"].overstatement - runs["time"].overstatement, ">", 0.08)
claim("the time split's validation accuracy is within 10 points of accuracy on the future",
      abs(runs["time"].overstatement), "<", 0.10)
claim("more than 10% of the random split's validation messages have a near-twin in training",
      runs["random"].twin_rate, ">", 0.10)
claim("fewer than 3% of the time split's validation messages have a near-twin in training",
      runs["time"].twin_rate, "<", 0.03);

# %% [markdown]
# **Explorer.** Change the share of incident copies, how faithfully each copy repeats its incident's words,
# and the split. With no bursts, does the random split still overstate? At a copy fidelity of 0.7, do the
# near-twins disappear while the overstatement stays? (Exact near-twin detection only catches near-verbatim
# copies; the model memorises the incident's error code either way.) Each change regenerates 5000 messages
# and trains logistic regression, in well under a second.

# %%
from helpers.widgets import Choice, Slider, explore

explore(capstone.leak_explorer, burst_share=Slider(0.0, 0.5, 0.05, 0.25),
        copy_fidelity=Slider(0.5, 1.0, 0.05, 0.95), split_kind=Choice(["random", "time"], "random"))

# %% [markdown]
# **Practical consequence.** Split by time (or by group: customer, incident, patient) whenever the model will
# meet a future or new groups, and check for near-duplicates across the split before trusting a score.

# %% [markdown]
# ## 3. Trap: ignoring data quality (B) — labels found wrong by confident learning
#
# **Plain idea.** If some labels are wrong, a model that did not train on an example can disagree with its
# label. But a model also disagrees wherever it is simply mistaken, so "prediction differs from the label"
# flags far too much. Confident learning (Northcutt, Jiang & Chuang 2021) only counts disagreements the
# model is *confident* about, with confidence measured against the model's own typical confidence in each
# class. Applied to the test sets of ten popular benchmarks, it led Northcutt, Athalye & Mueller (2021) to an
# average of 3.3% label errors (candidates confirmed by crowd workers).
#
# **Mechanism.** With out-of-fold probabilities $\hat p_j(x)$ (every message scored by a model trained on the
# other four folds), the threshold of class $j$ is
# $t_j = \frac{1}{|X_{\tilde y = j}|}\sum_{x \in X_{\tilde y=j}} \hat p_j(x)$.
# The **confident joint** $C_{ij}$ counts messages labelled $i$ whose most probable class among those with
# $\hat p_j(x) \ge t_j$ is $j$; rescaled row by row to the label counts and normalised, it estimates the
# joint distribution $Q_{ij}$ of (given label, true label). Then, for each off-diagonal cell, the
# $n\,Q_{ij}$ messages labelled $i$ with the largest margin $\hat p_j - \hat p_i$ are flagged. Here it is,
# written from scratch:

# %%
from helpers.scratch import confident_learning
from helpers.source import show_source

show_source(confident_learning.per_class_thresholds, confident_learning.confident_joint,
            confident_learning.estimate_joint, confident_learning.find_label_issues)

# %% [markdown]
# We audit every labelled message of days 0–300. The out-of-fold model sees **words only**: given the
# channel as a feature, it would learn the agents' habit ("chat plus refund words means billing") and agree
# with the wrong labels.

# %%
past = np.concatenate([runs["time"].rows["train"], runs["time"].rows["validation"]])
audit = capstone.audit_labels(messages, past, seed=cfg.seed)
quality = {row["method"]: row for row in audit.quality(messages)}
tables.show(list(quality.values()))

# %%
from helpers import plotting

queues = list(capstone.QUEUES)
plotting.heatmap(audit.joint * len(past), queues, queues, "Estimated (given, true) queue counts, days 0-300",
                 "true queue (estimated)", "given label", "messages", fmt="{:.0f}");

# %% [markdown]
# The estimate finds the planted pattern without being told: its largest off-diagonal cell is *labelled
# billing, really refund*. The claims compare the two methods on the same out-of-fold probabilities
# (precision is the share of flags that are real errors, recall the share of errors flagged), and check that
# the flags concentrate in the chat channel. Across seeds 0–4 at both scales: precision ratio 1.7–2.2,
# recall 0.68–0.77.

# %%
off_diagonal = audit.joint * (1 - np.eye(len(queues)))
given, true = np.unravel_index(off_diagonal.argmax(), off_diagonal.shape)
chat = messages.channel[past] == capstone.CHANNELS.index("chat")
claim("the largest off-diagonal cell of the estimated joint is (labelled billing, really refund)",
      f"({queues[given]}, {queues[true]})", "==", "(billing, refund)")
precision_ratio = quality["confident learning"]["precision"] / quality["prediction disagrees"]["precision"]
claim("confident learning's flags are at least 1.5 times as precise as flagging every disagreement",
      precision_ratio, ">", 1.5)
claim("confident learning flags more than 55% of the wrong labels", quality["confident learning"]["recall"], ">", 0.55)
claim("chat's share among the flagged messages exceeds its share of all messages by more than 5 points",
      chat[audit.flagged].mean() - chat.mean(), ">", 0.05);

# %% [markdown]
# **Did relabelling help?** We replace each flagged label with the out-of-fold model's guess and retrain the
# time-split logistic regression (with the channel as a feature again). The segment that was mislabelled,
# chat messages truly about refunds, is scored on the future; the control is accuracy on the other channels,
# which relabelling should leave alone.

# %%
rows, x = runs["time"].rows, runs["time"].x
cleaned_model = capstone.logistic_regression(x[rows["train"]], audit.cleaned[rows["train"]])
relabel = {name: capstone.segment_scores(messages, model, x, rows["test"])
           for name, model in (("as recorded", runs["time"].model), ("relabelled", cleaned_model))}
tables.show([{"labels": name, **scores} for name, scores in relabel.items()])
claim("relabelling the flagged messages raises chat-refund recall on the future by more than 15 points",
      relabel["relabelled"]["chat-refund recall"] - relabel["as recorded"]["chat-refund recall"], ">", 0.15)
claim("relabelling changes accuracy on email and phone messages by less than 4 points",
      abs(relabel["relabelled"]["email and phone accuracy"] - relabel["as recorded"]["email and phone accuracy"]),
      "<", 0.04);

# %% [markdown]
# ### Your turn
#
# Write the first step of confident learning yourself: `thresholds(probs, labels)` returns, for every class
# $j$, the mean of `probs[:, j]` over the rows labelled $j$. The checker compares it with the version above
# on random probabilities.

# %%
def thresholds(probs, labels):
    raise NotImplementedError


capstone.check_thresholds(thresholds);

# %% [markdown]
# <details><summary>Solution</summary>
#
# `return np.array([probs[labels == j, j].mean() for j in range(probs.shape[1])])` (with
# `import numpy as np`; a class that labels nothing would need a default). The threshold is the model's own
# yardstick: an over-confident model needs a high bar before its disagreement means anything.
# </details>

# %% [markdown]
# ## 4. Traps: overstating big models, no deployment awareness — the product-cost table
#
# **Plain idea.** A model is worth its quality *and* its cost: latency for one user, throughput for many,
# memory, and how hard it is to run. The guide's warning, "a model that is 0.5% better offline but 5x slower
# may be worse for the product", is a table away from being checked. We train, on the relabelled time-split
# data, an MLP (two hidden layers of 256 units, kept at its best validation-accuracy epoch), four more with
# other seeds for an ensemble, logistic regression in PyTorch, gradient-boosted trees and nearest neighbours
# (scikit-learn; Grinsztajn et al. 2022 found trees still lead on medium-sized tabular data). The MLP is
# trained once; every later section reuses it.

# %%
from helpers.experiments import nb08_traps_and_checklist_models as shipping

splits = shipping.to_splits(x, rows, audit.cleaned, audit.cleaned, messages.true_queue, cfg.device)
mlp_run = shipping.train_mlp(splits, WIDTH, EPOCHS, LEARNING_RATE, cfg.seed)
members = [mlp_run.model] + [shipping.train_mlp(splits, WIDTH, EPOCHS, LEARNING_RATE, cfg.seed + 100 * k).model
                             for k in range(1, MEMBERS)]
linear = shipping.train_linear(splits, EPOCHS, 1e-2, cfg.seed)
trees, neighbours = shipping.tree_and_neighbours(x[rows["train"]], audit.cleaned[rows["train"]], cfg.seed)

# %% [markdown]
# Every model is then served the same way, on the CPU with one thread: probabilities for a float32 batch.
# Latency is measured one message at a time, interleaved across models in rounds (each model's turn starts
# with one untimed call, so its weights are back in cache); throughput is measured in batches of 256. We
# report the median (p50) and 95th percentile (p95) of single-message latency, and claim only ratios of
# *fastest* calls, which a busy machine cannot inflate much. Speeds depend on the CPU: this table is a fact
# about this machine.

# %%
from helpers.timing import machine_note

int8 = shipping.quantize(mlp_run.model)
served = [shipping.serve_sklearn("logistic regression (sklearn)", cleaned_model),
          shipping.serve_torch("logistic regression (torch)", linear),
          shipping.serve_sklearn("nearest neighbours", neighbours), shipping.serve_sklearn("boosted trees", trees),
          shipping.serve_torch("MLP", mlp_run.model), shipping.serve_torch("MLP int8", int8),
          shipping.serve_torch(f"ensemble of {MEMBERS} MLPs", shipping.Ensemble(members))]
cost = shipping.cost_table(served, x[rows["test"]], messages.true_queue[rows["test"]], len(queues), SINGLE_CALLS)
by_name = {row["model"]: row for row in cost}
print(machine_note("cpu"))
tables.show(cost)

# %% [markdown]
# Read the table column by column. Quality barely separates the models: macro-F1 (the mean F1 over the five
# queues, so a small queue counts as much as a big one) moves by a few hundredths, and across seeds the
# trees beat the MLP on some and lose on others (at quick scale we measured −0.004 to +0.03), so no winner
# is claimed. Cost
# separates them by orders of magnitude. Part of a scikit-learn model's single-message time is the
# library's per-call overhead (input checks, Python dispatch); that is a real serving cost unless the model is
# compiled for serving. The claims, each a ratio of fastest single-message calls or of
# stored bytes (across seeds 0–4 at both scales: the ensemble about 5x slower for at most 0.008 macro-F1,
# trees about 15x slower per message, nearest neighbours 7x larger at quick scale and 21x at full, since they
# store every training message):

# %%
mlp, ensemble = by_name["MLP"], by_name[f"ensemble of {MEMBERS} MLPs"]
claim("the ensemble changes macro-F1 by less than 0.03 over the single MLP",
      abs(ensemble["macro-F1"] - mlp["macro-F1"]), "<", 0.03)
claim("the ensemble takes more than 2.5 times the MLP's time per single message",
      ensemble["fastest ms"] / mlp["fastest ms"], ">", 2.5)
claim("boosted trees take more than 8 times the MLP's time per single message",
      by_name["boosted trees"]["fastest ms"] / mlp["fastest ms"], ">", 8)
claim("nearest neighbours store more than 4 times the MLP's bytes (the model is the training data)",
      by_name["nearest neighbours"]["size kB"] / mlp["size kB"], ">", 4);

# %% [markdown]
# **Retrieval instead of a bigger model.** No model can read an incident's owner from the words. But
# incidents repeat themselves, and a labelled copy is usually on file within hours. A duplicate lookup
# routes each future message to the recorded queue of its most similar message labelled at least two hours
# earlier, when the cosine similarity reaches 0.8, and leaves the rest to the MLP.

# %%
mlp_predictions = shipping.predict(mlp_run.model, splits.x_test)
found = capstone.duplicate_lookup(messages, rows["test"], similarity=0.8)
hits = found >= 0
future_truth = messages.true_queue[rows["test"]]
with_lookup = np.where(hits, found, mlp_predictions)
lookup_gain = (with_lookup == future_truth).mean() - (mlp_predictions == future_truth).mean()
print(f"lookup hits {hits.mean():.1%} of future messages, {(found[hits] == future_truth[hits]).mean():.1%} right; "
      f"accuracy {(mlp_predictions == future_truth).mean():.3f} -> {(with_lookup == future_truth).mean():.3f}")
claim("the duplicate lookup's answers are more than 95% right", (found[hits] == future_truth[hits]).mean(), ">", 0.95)
claim("adding the duplicate lookup raises the MLP's accuracy on the future by more than 5 points",
      lookup_gain, ">", 0.05);

# %% [markdown]
# **The service-level rule.** Write the decision down before looking at the scores: *among models whose p95
# single-message latency meets the budget, ship the cheapest (lowest median latency) whose macro-F1 is within
# a tolerance of the best of them*. Google's Rules of Machine Learning put it bluntly: do not be afraid to
# launch a product without machine learning (rule 1), and keep the first model simple and get the
# infrastructure right (rule 4). Move the budget and the tolerance and watch which model ships. The p95 is
# measured on this machine while it runs other work too, so it includes waiting for the CPU.

# %%
from functools import partial

budget, tolerance = 1.0, 0.01
shipped, reason = shipping.ship(cost, budget, tolerance)
print(f"ships: {shipped} ({reason})")
explore(partial(shipping.ship_explorer, table=cost), p95_budget_ms=Slider(0.01, 100, 0.25, 1.0, log=True),
        tolerance=Slider(0.0, 0.1, 0.005, 0.01))

# %% [markdown]
# ## 5. Trap: one regularization trick for every problem — what early stopping watches
#
# **Plain idea.** A validation loss that rises while training loss falls is the textbook sign of
# overfitting, and the textbook reflex is dropout or weight decay. But the loss averages over messages,
# and a few confidently wrong ones can dominate it: cross-entropy $-\log \hat p_y$ grows without bound as
# the model grows confident in the wrong class. Incident copies are exactly that: their label (the owner)
# is not in the words, so the better the model reads the words, the more confidently it is wrong on them.
#
# **Experiment.** We kept the MLP's weights after every epoch, so one run can be stopped by several rules:
# lowest validation loss, best validation accuracy, or the last epoch. We split the validation loss into
# incident copies and ordinary messages, and train the same MLP with dropout (0.3) and with decoupled weight
# decay (AdamW, 0.1) to see what the reflex buys.

# %%
validation_bursts = messages.burst[rows["validation"]] >= 0
losses = shipping.loss_by_group(mlp_run, splits.x_val, splits.y_val, validation_bursts)
shipping.stopping_figure(mlp_run, losses);

# %%
dropout_run = shipping.train_mlp(splits, WIDTH, EPOCHS, LEARNING_RATE, cfg.seed, dropout=0.3)
decay_run = shipping.train_mlp(splits, WIDTH, EPOCHS, LEARNING_RATE, cfg.seed, weight_decay=0.1)
truth = future_truth
ablation = [{"model": f"plain MLP, stopped on {rule}", "epoch": mlp_run.epoch_by(rule),
             "macro-F1": shipping.macro_f1(shipping.predict(mlp_run.at(mlp_run.epoch_by(rule)), splits.x_test),
                                           truth, len(queues))} for rule in shipping.STOP_RULES]
ablation += [{"model": name, "epoch": run.epoch_by("validation accuracy"),
              "macro-F1": shipping.macro_f1(shipping.predict(run.model, splits.x_test), truth, len(queues))}
             for name, run in (("dropout 0.3", dropout_run), ("weight decay 0.1", decay_run))]
tables.show(ablation)

# %% [markdown]
# The loss curve alone says "overfitting after epoch one or two". Split by kind, it says something else:
# the loss on ordinary messages keeps falling, and the rise comes from incident copies. Neither dropout nor
# weight decay can fix labels the words do not contain; they move macro-F1 by about a hundredth, while the
# duplicate lookup above, a fix in the data pipeline, added several points. Across seeds 0–4 at quick scale
# the loss-stopped model was 0.04–0.07 worse in macro-F1 on four seeds and 0.008 *better* on one, so we do
# not claim that stopping on accuracy wins; we claim the mechanism.

# %%
loss_epoch, accuracy_epoch = mlp_run.epoch_by("validation loss"), mlp_run.epoch_by("validation accuracy")
claim("validation loss bottoms out at least 3 epochs before validation accuracy peaks",
      accuracy_epoch - loss_epoch, ">=", 3)
claim("between those epochs the loss on incident copies rises by more than 1 nat",
      losses["True"][accuracy_epoch] - losses["True"][loss_epoch], ">", 1.0)
claim("between those epochs the loss on ordinary messages falls",
      losses["False"][accuracy_epoch] - losses["False"][loss_epoch], "<", 0.0)
regularizer_change = max(abs(row["macro-F1"] - ablation[0]["macro-F1"]) for row in ablation[3:])
claim("dropout and weight decay each move macro-F1 by less than 0.03", regularizer_change, "<", 0.03);

# %% [markdown]
# ## 6. Calibration and thresholds
#
# **Plain idea.** A routing service acts on confidence: above a threshold it routes automatically, below it
# asks a person. That only works if "90% confident" means right 90% of the time. Temperature scaling (Guo et
# al. 2017) divides
# the logits by one number $T$ fitted on validation data, $\hat p = \mathrm{softmax}(z / T)$, which changes
# confidence but never the predicted class; the expected calibration error (ECE) averages
# $|\text{accuracy} - \text{confidence}|$ over confidence bins (notebook 06 takes both apart).
#
# **The leak poisons calibration too.** A random split's validation looks easy, so the temperature fitted on
# it says "sharpen" ($T<1$), while the model is in fact over-confident on the future. We compare both
# splits' logistic regressions against the temperature fitted, for reference only, on the future's own
# labels.

# %%
temperatures = {kind: shipping.fit_temperature(run.model.decision_function(run.x[run.rows["validation"]]),
                                               messages.given_queue[run.rows["validation"]])
                for kind, run in runs.items()}
hindsight = {kind: shipping.fit_temperature(run.model.decision_function(run.x[rows["test"]]), future_truth)
             for kind, run in runs.items()}
tables.show([{"split": kind, "T fitted on its validation": temperatures[kind],
              "T fitted on the future (hindsight)": hindsight[kind]} for kind in runs])
claim("the temperature fitted on the random split's validation is below 1 (it says sharpen)",
      temperatures["random"], "<", 1.0)
claim("the time split's temperature is more than twice the random split's",
      temperatures["time"] / temperatures["random"], ">", 2.0);

# %% [markdown]
# Now the MLP. Its temperature is fitted on the time split's validation messages and judged on the future.

# %%
logits = {name: shipping.logits(mlp_run.model, tensor) for name, tensor in
          (("validation", splits.x_val), ("future", splits.x_test))}
temperature = shipping.fit_temperature(logits["validation"], audit.cleaned[rows["validation"]])
future_probs = {"before scaling": shipping.softmax(logits["future"]),
                f"T = {temperature:.2f}": shipping.softmax(logits["future"], temperature)}
ece = {name: shipping.expected_calibration_error(probs, future_truth) for name, probs in future_probs.items()}
shipping.reliability_figure(future_probs, future_truth)
claim("the MLP's temperature fitted on validation is above 1.5 (it was over-confident)", temperature, ">", 1.5)
claim("temperature scaling cuts the MLP's ECE on the future by more than 10%",
      ece[f"T = {temperature:.2f}"] / ece["before scaling"], "<", 0.9);

# %% [markdown]
# Across seeds 0–4 the MLP's temperature was 2.7–3.8 at quick scale and 2.7–4.4 at full scale, and scaling
# cut future ECE by 18–58% (quick) and 53–73% (full). What remains
# comes from drift (new words, the shipping surge) and from incident copies, which stay confidently wrong at
# any temperature.
#
# **Thresholds by segment.** Phone transcripts are noisier, so one threshold for all channels would route
# too many phone messages. Per channel, we pick the lowest confidence threshold whose routed validation
# messages reach 80% accuracy, in two ways: with the **point estimate** of that accuracy, or with its
# **Wilson (1927) lower bound**, which is 95% sure the true rate is above it and sits well below the point
# estimate when few messages back it. Choosing the threshold where the estimate first reaches the target
# selects a lucky spot, and a segment of a few hundred messages has plenty of those.

# %%
routing_data = {name: {"confidence": probs.max(axis=1), "correct": probs.argmax(axis=1) == labels,
                       "segment": messages.channel[part]}
                for name, probs, labels, part in (
                    ("validation", shipping.softmax(logits["validation"], temperature),
                     audit.cleaned[rows["validation"]], rows["validation"]),
                    ("future", future_probs[f"T = {temperature:.2f}"], future_truth, rows["test"]))}
routing = [row for rule in shipping.ROUTING_RULES for row in
           shipping.segment_routing(routing_data["validation"], routing_data["future"], capstone.CHANNELS, 0.8, rule)]
tables.show(routing)
point_shortfall = max(0.8 - row["routed accuracy"] for row in routing
                      if row["rule"] == "point estimate" and row["coverage"] > 0)
claim("with point-estimate thresholds, some channel's routed accuracy on the future misses 80% by over 3 points",
      point_shortfall, ">", 0.03);

# %% [markdown]
# **What did not work.** The point-estimate thresholds promised 80% on validation and broke the promise on
# the future in at least one channel on every seed (usually phone, the smallest and noisiest). The Wilson
# bound routes fewer messages and usually keeps closer to the target, but it did not close the gap on every
# seed: a bound protects against small samples, not against drift and incidents. In production the
# thresholds need re-checking on the most recent labelled week.

# %% [markdown]
# ## 7. Shrink and serve
#
# **Plain idea.** Dynamic int8 quantization stores each linear layer's weights in 8 bits with a scale, and
# quantizes the activations on the fly for every batch. Storage shrinks by nearly 4x; compute gets faster
# when there is enough work per call for int8 matrix kernels to pay for the extra quantize and dequantize
# steps. With one message per call there is not, which is why batching matters as much as precision.

# %%
int8_row = by_name["MLP int8"]
claim("the int8 MLP is more than 3.5 times smaller than the float32 MLP", mlp["size kB"] / int8_row["size kB"],
      ">", 3.5)
claim("in batches of 256 the int8 MLP serves more than 1.5 times as many messages per second",
      int8_row["messages/s at 256"] / mlp["messages/s at 256"], ">", 1.5)
claim("one message at a time, the int8 MLP is slower than float32 (speed-up below 0.8)",
      mlp["fastest ms"] / int8_row["fastest ms"], "<", 0.8)
claim("int8 changes the MLP's macro-F1 on the future by less than 0.01",
      abs(int8_row["macro-F1"] - mlp["macro-F1"]), "<", 0.01)
claim("batching 256 messages per call multiplies the MLP's throughput by more than 5",
      mlp["messages/s at 256"] * mlp["fastest ms"] / 1e3, ">", 5);

# %% [markdown]
# Across seeds 0–4 at both scales: 3.8x smaller, 2.1–2.3x the throughput at batch 256, 0.6x the speed at
# batch 1, and batching alone about 16–18x. On a CPU with other vector extensions the same code gives other
# ratios (the int8 speed-up at batch 256 has been measured from about 2x to 7x on machines like these).

# %% [markdown]
# ## 8. The story: your answer to "describe one model you trained"
#
# The numbers above are enough to answer the last checklist item. The template below only fills in what this
# run measured; rerun with another seed and the story changes with the data. Read it aloud: it should take
# about ninety seconds.

# %%
from helpers.experiments import nb08_traps_and_checklist_story as story

best = max(cost, key=lambda row: row["macro-F1"])
ship_row = by_name.get(shipped, {"macro-F1": 0.0, "p95 ms": 0.0})
facts = story.Facts(
    messages=MESSAGES, random_overstatement=runs["random"].overstatement,
    time_overstatement=runs["time"].overstatement, random_twins=runs["random"].twin_rate,
    flagged=int(audit.flagged.sum()), precision_ratio=precision_ratio,
    recall_before=relabel["as recorded"]["chat-refund recall"],
    recall_after=relabel["relabelled"]["chat-refund recall"],
    shipped=shipped or "nothing", shipped_f1=ship_row["macro-F1"], shipped_p95_ms=ship_row["p95 ms"],
    p95_budget_ms=budget, tolerance=tolerance, best_model=best["model"], best_f1=best["macro-F1"],
    ensemble_gain=ensemble["macro-F1"] - mlp["macro-F1"], ensemble_slowdown=ensemble["fastest ms"] / mlp["fastest ms"],
    int8_size_ratio=mlp["size kB"] / int8_row["size kB"],
    int8_speedup_batch=int8_row["messages/s at 256"] / mlp["messages/s at 256"],
    int8_speedup_single=mlp["fastest ms"] / int8_row["fastest ms"], temperature=temperature,
    ece_before=ece["before scaling"], ece_after=ece[f"T = {temperature:.2f}"], lookup_gain=lookup_gain,
    loss_epoch=loss_epoch, accuracy_epoch=accuracy_epoch, regularizer_change=regularizer_change)
print("Resume bullet:\n" + story.resume_bullet(facts) + "\n\nNinety-second answer:\n" + story.interview_answer(facts))

# %% [markdown]
# Compare it with the guide's model bullets ("diagnosed validation drift caused by time-based leakage; rebuilt
# split and recalibrated thresholds by segment"): every clause now carries a number you measured and can
# defend in a follow-up question.

# %% [markdown]
# ## 9. The traps, refuted by this run

# %%
tables.show(story.traps_table(facts))

# %% [markdown]
# ## 10. The checklist: predict, then measure
#
# The guide asks you to answer eight questions without notes. Each is turned into a prediction: write a
# number for each (replace `None`), then run the next cell. Every answer is measured right now by a small
# experiment (a second or less each), so it holds on your machine, at your scale and seed, whatever other
# notebooks did.

# %%
predictions = {
    1: None,  # factor by which dL/dw1 changes when w2 doubles
    2: None,  # factor by which Adam's first step grows when the loss is multiplied by 1000
    3: None,  # orders of magnitude between first and last hidden layer's gradient, 20 sigmoid layers
    4: None,  # how much the train-validation gap shrinks from 200 to 2000 training messages
    5: None,  # standard deviation of a 256-dimensional dot product of unit-variance vectors
    6: None,  # initial cross-entropy of an untrained 5-queue classifier
    7: None,  # how many times smaller a transformer layer gets with int8 dynamic quantization
    8: None,  # the random split's overstatement once incident bursts are removed
}

# %%
questions = story.checklist(x[rows["train"]], audit.cleaned[rows["train"]], x[rows["validation"]],
                            audit.cleaned[rows["validation"]], len(queues),
                            lambda: capstone.split_run(capstone.generate(capstone.EXPLORER_MESSAGES, cfg.seed,
                                                                         burst_share=0.0), "random").overstatement)
answers = story.check_predictions(questions, predictions)
tables.show(answers)

# %% [markdown]
# Each measurement is also a claim, so the answers above are evidence, not decoration.

# %%
measured = [row["measured"] for row in answers]
claim("doubling w2 doubles dL/dw1 (the chain rule)", measured[0], "between", (1.99, 2.01))
claim("scaling the loss by 1000 leaves Adam's first step within 1% of its size", measured[1], "between", (0.99, 1.01))
claim("in a 20-layer sigmoid MLP the first layer's gradient is over 8 orders of magnitude smaller", measured[2], ">", 8)
claim("ten times more training data shrinks logistic regression's train-validation gap", measured[3], ">", 0.0)
claim("a 256-dimensional dot product of unit-variance vectors has a spread near sqrt(256) = 16",
      measured[4], "between", (14.5, 17.5))
claim("an untrained 5-queue classifier starts within 0.05 of ln 5", abs(measured[5] - np.log(5)), "<", 0.05)
claim("int8 dynamic quantization shrinks a transformer layer by less than 3x (attention's input projection "
      "stays float32)", measured[6], "<", 3.0)
claim("without incident bursts the random split overstates the future by less than 6 points",
      abs(measured[7]), "<", 0.06)
print(f"slowest question took {max(row['seconds'] for row in answers):.2f} s");

# %% [markdown]
# ## Interview answer
#
# The story in section 8 answers the open question. Here are the short ones, one or two sentences each:
# the mechanism, a number from this run, and the decision rule it leads to.

# %%
print("\n\n".join(story.short_answers(facts)))

# %% [markdown]
# **What did not work, said plainly.** No model clearly wins on quality: the MLP, the trees, nearest
# neighbours and logistic regression trade places across seeds within a few hundredths of macro-F1. Early
# stopping on validation loss misleads here: it stops after an epoch or two because of confidently wrong
# incident copies, although on the future it cost macro-F1 on most seeds and not on all. Per-segment
# thresholds from point estimates broke their promise on the future, and the Wilson bound narrowed but did
# not close that gap under drift. And no model could learn an incident's owner from the words: only
# retrieval of already-labelled copies did.
