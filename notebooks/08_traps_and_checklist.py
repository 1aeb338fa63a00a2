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
# 2. *How do you find mislabelled data, and was the fancy method needed?* (confident learning, with controls)
# 3. *Is a bigger model, an ensemble or a foundation model worth it?* (a product-cost table and a
#    service-level rule)
# 4. *Validation loss goes up: are you overfitting?* (what early stopping watches)
# 5. *Can you trust the model's confidence?* (temperature per population, thresholds per segment)
# 6. *How would you make it cheaper to serve, and notice when it goes stale?* (int8, batching, monitoring)
# 7. *Describe one model you trained.* (the story, generated from this run, with its follow-up questions)

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
#   Which team that is cannot be read from the words. The agents always file these copies correctly.
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
# **Mechanism.** A *random* split of days 0–300 puts copies of each incident on both sides. A *group* split
# holds out whole incidents (and a fifth of the ordinary messages), so no incident is on both sides. A *time*
# split trains on days before 240 and validates on days 240–300, as the model will be used: trained on the
# past, applied to the future. We measure the **near-twin rate**, the share of validation messages whose
# word vector has cosine similarity $\frac{a \cdot b}{\lVert a \rVert \lVert b \rVert} \ge 0.9$ with some
# training message, and then what each split's validation accuracy promised against the accuracy on days
# 300–360. The model is logistic regression on bag-of-words features whose vocabulary is fitted on the
# training rows only. **The control:** the same random split on a data set generated the same way but
# without incident bursts. If the bursts cause the leak, its overstatement should vanish there.

# %%
runs = {f"{kind} split": capstone.split_run(messages, kind, cfg.seed) for kind in ("random", "group", "time")}
calm = capstone.generate(MESSAGES, cfg.seed, burst_share=0.0)
runs["random split, no bursts"] = capstone.split_run(calm, "random", cfg.seed)
time_run = runs["time split"]
tables.show([{"split": kind, "validation accuracy": run.validation_accuracy,
              "future accuracy": run.future_accuracy, "overstatement": run.overstatement,
              "near-twins in validation": run.twin_rate} for kind, run in runs.items()])
capstone.leak_figure(runs);

# %% [markdown]
# The random split's validation promises far more than the future delivers; without the bursts, the same
# split promises what it delivers. Holding out whole incidents removes the near-twins, and the time split's
# promise is close. The claims: the random split overstates the future by a wide margin, by more than the
# time split does (same model, same data, only the split differs), and by more than the same split on data
# without bursts (the control); its validation is full of near-twins while the others have almost none.
# Across seeds 0–4 we measured overstatements of 0.09–0.17 at quick scale and 0.10–0.19 at full scale
# (random) against at most 0.05 either way (time) and under 0.02 either way without bursts. The group split
# has no near-twins either, but its promise fell on either side of the future (by up to about 9 points on
# the seeds we tried): it removes the copies, not the drift.

# %%
from helpers.claims import claim

random_run, calm_run = runs["random split"], runs["random split, no bursts"]
claim("a random split's validation accuracy overstates accuracy on the future by more than 6 points",
      random_run.overstatement, ">", 0.06)
claim("the random split overstates the future by at least 8 points more than the time split does",
      random_run.overstatement - time_run.overstatement, ">", 0.08)
claim("the time split's validation accuracy is within 10 points of accuracy on the future",
      abs(time_run.overstatement), "<", 0.10)
claim("the random split overstates by more than 6 points more with incident bursts than on the same data without",
      random_run.overstatement - calm_run.overstatement, ">", 0.06)
claim("without incident bursts the random split overstates accuracy on the future by less than 2 points",
      calm_run.overstatement, "<", 0.02)
claim("more than 10% of the random split's validation messages have a near-twin in training",
      random_run.twin_rate, ">", 0.10)
claim("fewer than 3% of the group and time splits' validation messages have a near-twin in training",
      max(runs["group split"].twin_rate, time_run.twin_rate), "<", 0.03);

# %% [markdown]
# **Explorer.** Change the share of incident copies, how faithfully each copy repeats its incident's words,
# and the split. With no bursts, does the random split still overstate? At a copy fidelity of 0.7, do the
# near-twins disappear while the overstatement stays? (Exact near-twin detection only catches near-verbatim
# copies; the model memorises the incident's error code either way.) Each change regenerates 5000 messages
# and trains logistic regression, in well under a second.

# %%
from helpers.widgets import Choice, Slider, explore

explore(capstone.leak_explorer, burst_share=Slider(0.0, 0.5, 0.05, 0.25),
        copy_fidelity=Slider(0.5, 1.0, 0.05, 0.95), split_kind=Choice(list(capstone.SPLITS), "random"))

# %% [markdown]
# **Practical consequence.** Split by time (or by group: customer, incident, patient) whenever the model will
# meet a future or new groups, and check for near-duplicates across the split before trusting a score. A
# group split removes the copies but not drift; when the model will meet the future, the time split is the
# honest one.

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
# with the wrong labels. Two baselines get the same probabilities: flagging every disagreement, and, at
# **the same number of flags** as confident learning, the labels the model finds least likely (lowest
# self-confidence $\hat p_{\tilde y}(x)$). The second is the fair comparison: precision can always be bought
# by flagging fewer.

# %%
rows, x = time_run.rows, time_run.x
past = np.concatenate([rows["train"], rows["validation"]])
audit = capstone.audit_labels(messages, past, seed=cfg.seed)
quality = {row["method"]: row for row in audit.quality(messages)}
tables.show(list(quality.values()))
capstone.label_noise_figure(audit, messages);

# %% [markdown]
# The estimate finds the planted pattern without being told: its largest off-diagonal cell is *labelled
# billing, really refund*, while the other cells hold the model's ordinary confusions. The claims compare the
# methods on the same out-of-fold probabilities (precision is the share of flags that are real errors,
# recall the share of errors flagged). Across seeds 0–4 at both scales: precision 1.7–2.2 times that of
# every disagreement, 1.5–1.8 times that of the least self-confident labels at the same budget; recall
# 0.68–0.77.

# %%
off_diagonal = audit.joint * (1 - np.eye(len(capstone.QUEUES)))
given, true = np.unravel_index(off_diagonal.argmax(), off_diagonal.shape)
chat = messages.channel[past] == capstone.CHANNELS.index("chat")
precision = {name: row["precision"] for name, row in quality.items()}
claim("the largest off-diagonal cell of the estimated joint is (labelled billing, really refund)",
      f"({capstone.QUEUES[given]}, {capstone.QUEUES[true]})", "==", "(billing, refund)")
claim("confident learning's flags are at least 1.5 times as precise as flagging every disagreement",
      precision["confident learning"] / precision["prediction disagrees"], ">", 1.5)
claim("at the same number of flags, confident learning is more than 1.2 times as precise as the least "
      "self-confident labels", precision["confident learning"] / precision["least self-confident, same budget"],
      ">", 1.2)
claim("confident learning flags more than 55% of the wrong labels", quality["confident learning"]["recall"], ">", 0.55)
claim("chat's share among the flagged messages exceeds its share of all messages by more than 5 points",
      chat[audit.flagged].mean() - chat.mean(), ">", 0.05);

# %% [markdown]
# **Did relabelling help, and was confident learning needed for it?** We replace flagged labels with the
# out-of-fold model's guess and retrain the time-split logistic regression (with the channel as a feature
# again). The segment that was mislabelled, chat messages truly about refunds, is scored on the future; the
# email and phone messages, which relabelling should leave alone, are the first control. Two more rows are
# the controls for the obvious other readings: relabelling **every disagreement** (was the precise method
# needed?), and leaving the labels as recorded but **dropping the channel feature** (is the fix the labels,
# or the feature the noise hides behind?).

# %%
relabel_rows, relabelled_models = capstone.relabelling(messages, audit, time_run)
cleaned_model = relabelled_models["confident learning's flags relabelled"]
tables.show(relabel_rows)
recall = {row["labels"]: row["chat-refund recall"] for row in relabel_rows}
others = {row["labels"]: row["email and phone accuracy"] for row in relabel_rows}
claim("relabelling confident learning's flags raises chat-refund recall on the future by more than 15 points",
      recall["confident learning's flags relabelled"] - recall["as recorded"], ">", 0.15)
claim("relabelling every disagreement instead also raises chat-refund recall by more than 15 points",
      recall["every disagreement relabelled"] - recall["as recorded"], ">", 0.15)
claim("relabelling confident learning's flags changes accuracy on email and phone messages by less than 4 points",
      abs(others["confident learning's flags relabelled"] - others["as recorded"]), "<", 0.04);

# %% [markdown]
# So the recall gain is **not** confident learning's doing: relabelling every disagreement recovers the
# segment about as well (across seeds the two differed by up to 0.10 either way, on a segment of only 30–60
# future messages at quick scale and 90–110 at full), and simply hiding the channel from the model recovers
# much of it too (0.79–0.99 across seeds and scales). What confident learning buys is precision: relabelling every disagreement
# overwrites about three times as many *right* labels (the last column). On a data set where the model's
# guesses are worse than the agents', those overwritten labels would cost accuracy everywhere else.

# %% [markdown]
# ### Your turn: drop instead of relabel?
#
# Many pipelines *remove* flagged examples instead of relabelling them (cleanlab's default). First predict:
# will dropping confident learning's flagged messages from training raise chat-refund recall on the future
# more or less than relabelling them? Then write `prune(train_rows, flagged_rows)`, which returns the
# training rows that are not flagged. The checker tests it, trains on what it keeps and shows the answer.

# %%
def prune(train_rows, flagged_rows):
    raise NotImplementedError


capstone.check_pruning(prune, messages, audit, time_run, recall["confident learning's flags relabelled"]);

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
# report the median (p50), the 95th percentile (p95) and the fastest single-message call. On a machine
# shared with other work, the p95 mostly measures how often the operating system paused us (the ensemble's
# p95 has been seen more than 20 times its median), so the table flags it, the claims use ratios of
# *fastest* calls and the shipping rule uses the median. A real service measures its p95 on its own
# hardware under real traffic.

# %%
from helpers.timing import machine_note

int8 = shipping.quantize(mlp_run.model)
served = [shipping.serve_sklearn("logistic regression (sklearn)", cleaned_model),
          shipping.serve_torch("logistic regression (torch)", linear),
          shipping.serve_sklearn("nearest neighbours", neighbours), shipping.serve_sklearn("boosted trees", trees),
          shipping.serve_torch("MLP", mlp_run.model), shipping.serve_torch("MLP int8", int8),
          shipping.serve_torch(f"ensemble of {MEMBERS} MLPs", shipping.Ensemble(members))]
future_truth, future_copies = messages.true_queue[rows["test"]], messages.burst[rows["test"]] >= 0
cost = shipping.cost_table(served, x[rows["test"]], future_truth, len(capstone.QUEUES), ~future_copies, SINGLE_CALLS)
by_name = {row["model"]: row for row in cost}
print(machine_note("cpu"))
tables.show(cost)

# %% [markdown]
# Read the table column by column. Quality barely separates the models: macro-F1 (the mean F1 over the five
# queues, so a small queue counts as much as a big one) moves by a few hundredths, and across seeds the
# trees beat the MLP on some and lose on others, so no winner is claimed. Part of the reason is that about a
# quarter of the future are incident copies that no model can route from the words; on ordinary messages
# alone (the second column) the spread is wider, 0.88–0.94 across models and seeds at quick scale and
# 0.92–0.96 at full, and nearest neighbours or trees often lead there. Cost separates the models by orders of magnitude. Part of a scikit-learn
# model's single-message time is the library's per-call overhead (input checks, Python dispatch); that is a
# real serving cost unless the model is compiled for serving. The claims, each a ratio of fastest
# single-message calls or of stored bytes (across seeds 0–4 at both scales: the ensemble about 5x slower for
# at most 0.008 macro-F1, trees about 15x slower per message, nearest neighbours 7x larger at quick scale and
# 21x at full, since they store every training message):

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
# **The service-level rule.** Write the decision down before looking at the scores: *among models whose
# median single-message latency meets the budget, ship the cheapest (lowest median) whose macro-F1 is within
# a tolerance of the best of them*. Google's Rules of Machine Learning put it bluntly: do not be afraid to
# launch a product without machine learning (rule 1), and keep the first model simple and get the
# infrastructure right (rule 4). Which model ships depends on the seed: where logistic regression is within
# the tolerance of the MLP, the cheaper model ships; where the MLP is clearly better, it does. Everything
# after this cell (calibration, thresholds, the story) uses the model that shipped. Move the budget and the
# tolerance and watch the choice change; the grey bars reach to each model's p95 on this busy machine.

# %%
from functools import partial

P50_BUDGET_MS, TOLERANCE = 0.25, 0.01
shipped, reason = shipping.ship(cost, P50_BUDGET_MS, TOLERANCE)
if shipped is None:  # a machine too slow for the budget: the fastest model ships rather than none
    shipped = min(cost, key=lambda row: row["p50 ms"])["model"]
    reason += f"; the fastest, {shipped}, ships instead"
shipped_model = {model.name: model for model in served}[shipped]
print(f"ships: {shipped} ({reason})")
explore(partial(shipping.ship_explorer, table=cost),
        p50_budget_ms=Slider(0.005, 100, 0.25, P50_BUDGET_MS, log=True, label="median latency budget (ms)"),
        tolerance=Slider(0.0, 0.1, 0.005, TOLERANCE, label="macro-F1 tolerance"))

# %% [markdown]
# **When would a foundation model be worth it?** Not every problem needs a large language model, and this
# one shows why: most of the shipped model's errors are incident copies, whose queue is not in the words at
# all, so no encoder, however large, can fix them. Where a pretrained model *does* help is language the
# labelled data lacks: the new words that arrive from day 220. A pretrained encoder knows that *passkey* is
# close to *password* because it read both in similar company. A stand-in we can afford here: word vectors
# learned without labels from co-occurrence counts (positive pointwise mutual information, factorised by
# SVD; Levy & Goldberg 2014 showed word2vec implicitly does the same) over a separate, unlabelled corpus of
# support text from the same year. **The control** learns the same vectors from that corpus's text before
# day 240 only, when the new words were still rare: if the gain comes from having read the new words, it
# should shrink there.

# %%
from helpers.scratch import word_vectors

show_source(word_vectors.ppmi, word_vectors.word_vectors)
corpus = capstone.generate(MESSAGES, cfg.seed + 1000)
stand_in = capstone.pretrained_stand_in(messages, time_run, audit.cleaned, cleaned_model, corpus)
tables.show(stand_in)
new_words = {row["features"]: row["accuracy, messages with new words"] for row in stand_in}
other_words = {row["features"]: row["accuracy, other ordinary messages"] for row in stand_in}

# %% [markdown]
# Across seeds 0–4 at quick scale the year's vectors added 2–6 points on messages with new words and
# between −1 and +1 point on the other ordinary messages, while the older-text control moved the new-word
# messages by −3 to +2 points: the gain came from having read the new words. At full scale, with two and a
# half times more labelled messages, the new words are largely learned from the labels themselves: the
# vectors added 1–2 points on new-word messages, 0–1 elsewhere, and the control 0–1. That is why nothing is claimed here: whether pretraining pays depends on
# how much of the language the labelled data already covers, which is exactly the question to ask before
# paying for a foundation model.
#
# A gain of a few points on about half of the future's messages is real but small, and a real pretrained encoder
# costs tens of milliseconds per message on a CPU, hundreds of times the shipped model. It becomes worth it
# when the labelled data is small relative to the language the product meets (new products, new markets,
# long-tail wording), when the gain on those messages clears the tolerance above, and when the latency
# budget has room; it never is for errors the words cannot explain.
#
# **Fresh labels, not a bigger model.** Incidents repeat themselves, and a labelled copy is usually on file
# within hours. A duplicate lookup routes each future message to the recorded queue of its most similar
# message labelled at least two hours earlier (cosine similarity at least 0.8) and leaves the rest to the
# shipped model. Be precise about what this is: the lookup reads labels recorded *during* days 300–360,
# which no trained model saw, and in this data set the copies of an incident are never mislabelled, so its
# hits on them are right by construction. Nothing here is claimed; the table only shows where the gain comes
# from.

# %%
found = shipping.duplicate_lookup(messages.day, capstone.presence(messages), messages.given_queue, rows["test"])
lookup = shipping.lookup_table(shipped_model.predict_proba(x[rows["test"]]).argmax(axis=1), found, future_truth,
                               future_copies, len(capstone.QUEUES))
tables.show(lookup)

# %% [markdown]
# The gain lives entirely in the incident copies; on ordinary messages the lookup rarely fires and changes
# next to nothing. In production the same information reaches any model that is retrained often enough, or
# a rule that routes a new incident's copies to its owner once the first one is filed.

# %% [markdown]
# ## 5. Trap: one regularization trick for every problem — what early stopping watches
#
# **Plain idea.** A validation loss that rises while training loss falls is the textbook sign of
# overfitting, and the textbook reflex is dropout or weight decay. But the loss averages over messages,
# and a few confidently wrong ones can dominate it: cross-entropy $-\log \hat p_y$ grows without bound as
# the model grows confident in the wrong class. Incident copies are exactly that: their label (the owner)
# is not in the words, so the better the model reads the words, the more confidently it is wrong on them.
#
# **The levers work by different mechanisms** (notebook 03 takes each apart): dropout trains a random
# sub-network at every step, so no unit can rely on another; weight decay pulls every weight towards zero,
# so only what many examples agree on survives; data augmentation (here, deleting words at random, *word
# dropout*) teaches invariance to changes that do not alter the label; early stopping limits how far
# training moves from the initial weights. All four fight variance, a model too attached to its training
# sample. None can supply a label the words do not contain.
#
# **Experiment.** We kept the MLP's weights after every epoch, so one run can be stopped by several rules:
# lowest validation loss, best validation accuracy, or the last epoch. We split the validation loss into
# incident copies and ordinary messages, and train the same MLP with dropout 0.3, decoupled weight decay
# 0.1 (AdamW) and word dropout 0.2, each kept at its best validation-accuracy epoch.

# %%
levers = {"dropout 0.3": {"dropout": 0.3}, "weight decay 0.1": {"weight_decay": 0.1},
          "word dropout 0.2": {"word_dropout": 0.2}}
regularized = {name: shipping.train_mlp(splits, WIDTH, EPOCHS, LEARNING_RATE, cfg.seed, **settings)
               for name, settings in levers.items()}
ablation = [{"model": f"plain MLP, stopped on {rule}", "epoch": mlp_run.epoch_by(rule),
             "macro-F1": shipping.macro_f1(shipping.predict(mlp_run.at(mlp_run.epoch_by(rule)), splits.x_test),
                                           future_truth, len(capstone.QUEUES))} for rule in shipping.STOP_RULES]
ablation += [{"model": name, "epoch": run.epoch_by("validation accuracy"),
              "macro-F1": shipping.macro_f1(shipping.predict(run.model, splits.x_test), future_truth,
                                            len(capstone.QUEUES))} for name, run in regularized.items()]
tables.show(ablation)

# %%
validation_copies = messages.burst[rows["validation"]] >= 0
losses = shipping.loss_by_group(mlp_run, splits.x_val, splits.y_val, validation_copies)
shipping.stopping_figure(mlp_run, losses, {row["model"].removeprefix("plain MLP, stopped on "): row["macro-F1"]
                                           for row in ablation[:3]});

# %% [markdown]
# The loss curve alone says "overfitting after epoch one or two". Split by kind, it says something else:
# the loss on ordinary messages keeps falling, and the rise comes from incident copies. The regularizers
# move macro-F1 by at most about two hundredths (0.003–0.018 for the largest of the three, across seeds and
# scales). Across seeds 0–4 at quick scale the loss-stopped model was 0.04–0.07 worse in macro-F1 on four
# seeds and 0.008 *better* on one; at full scale it was 0.02–0.03 worse on all five. So we do not claim that
# stopping on accuracy always wins; we claim the mechanism, and only for the strengths we tried.

# %%
loss_epoch, accuracy_epoch = mlp_run.epoch_by("validation loss"), mlp_run.epoch_by("validation accuracy")
claim("validation loss bottoms out at least 3 epochs before validation accuracy peaks",
      accuracy_epoch - loss_epoch, ">=", 3)
claim("between those epochs the loss on incident copies rises by more than 1 nat",
      losses["True"][accuracy_epoch] - losses["True"][loss_epoch], ">", 1.0)
claim("between those epochs the loss on ordinary messages falls",
      losses["False"][accuracy_epoch] - losses["False"][loss_epoch], "<", 0.0)
regularizer_change = max(abs(row["macro-F1"] - ablation[0]["macro-F1"]) for row in ablation[3:])
claim("dropout 0.3, weight decay 0.1 and word dropout 0.2 each move the MLP's macro-F1 by less than 0.03",
      regularizer_change, "<", 0.03);

# %% [markdown]
# ## 6. Calibration and thresholds, for the model that ships
#
# **Plain idea.** A routing service acts on confidence: above a threshold it routes automatically, below it
# asks a person. That only works if "90% confident" means right 90% of the time. Temperature scaling (Guo et
# al. 2017) divides the logits by one number $T$ fitted on validation data by minimising the negative
# log-likelihood, $\hat p = \mathrm{softmax}(z / T)$, which changes confidence but never the predicted class;
# the expected calibration error (ECE) averages $|\text{accuracy} - \text{confidence}|$ over confidence bins
# (notebook 06 takes both apart).
#
# **Calibrate on data that looks like the future.** A random split's validation looks easy, so the
# temperature fitted on it says "sharpen" ($T<1$). We compare both splits' logistic regressions against the
# temperature fitted, for reference only, on the future's own labels: the one the future would have asked
# for.

# %%
from helpers.experiments import nb08_traps_and_checklist_calibration as calibration

split_temperatures = [{"split": kind, "T fitted on its validation": calibration.fit_temperature(
                           run.model.decision_function(run.x[run.rows["validation"]]),
                           messages.given_queue[run.rows["validation"]]),
                       "T fitted on the future (hindsight)": calibration.fit_temperature(
                           run.model.decision_function(run.x[rows["test"]]), future_truth)}
                      for kind, run in (("random", random_run), ("time", time_run))]
tables.show(split_temperatures)
log_gap = [abs(np.log(row["T fitted on its validation"] / row["T fitted on the future (hindsight)"]))
           for row in split_temperatures]
claim("the temperature fitted on the random split's validation is below 1 (it says sharpen)",
      split_temperatures[0]["T fitted on its validation"], "<", 1.0)
claim("the time split's temperature is closer to the future's than the random split's, by more than 0.4 in log T",
      log_gap[0] - log_gap[1], ">", 0.4);

# %% [markdown]
# Across seeds 0–4 the time split's temperature was within 10% of the hindsight one at quick scale
# ($|\log|$ 0.01–0.09) and within 20% at full (0.01–0.18), the random split's off by a factor of 2–3
# (0.77–1.11). What we do **not** claim: that the time split's
# temperature lowers this model's ECE on the future. It did on some seeds and raised it on others (for
# example 0.105 → 0.136), although it was close to the temperature the future asked for. The likelihood and
# the calibration error disagree here, and the next cell shows why.
#
# **One temperature for two populations.** The shipped model's validation set mixes ordinary messages, which
# the words explain, with incident copies, which they do not. We fit the temperature three times: on all
# validation messages (what one would ship), on ordinary messages only, and on incident copies only. Then we
# look at reliability on the future, population by population.

# %%
validation_logits, future_logits = (shipped_model.logits(x[rows[part]]) for part in ("validation", "test"))
validation_labels = audit.cleaned[rows["validation"]]
temperatures = calibration.temperatures_by_population(validation_logits, validation_labels, validation_copies)
named = {"no scaling": 1.0, "fitted on all": temperatures["all messages"],
         "fitted on ordinary": temperatures["ordinary messages"]}
population_rows = calibration.population_table(future_logits, future_truth, future_copies, named)
tables.show([{"T fitted on validation's": name, "T": value} for name, value in temperatures.items()])
tables.show(population_rows)
calibration.reliability_figure(future_logits, future_truth, future_copies, named);

# %% [markdown]
# On incident copies the model is wrong most of the time and still confident, so the likelihood asks for a
# very large temperature there; on ordinary messages it asks for a far smaller one (0.9–1.35 for the MLP;
# 0.5–0.7 for the linear model, which is under-confident there). The single temperature fitted on all of
# validation is a compromise between the two: it flattens the ordinary messages until they sit *above* the
# diagonal (under-confident: right more often than they claim), while the copies stay below it. The claims
# test that mechanism, on the same validation messages and the same future:

# %%
ece_ordinary = {name: population_rows[1][f"ECE at T={value:.2f} ({name})"] for name, value in named.items()}
claim("the shipped model's temperature fitted on incident copies is more than 3 times the one fitted on "
      "ordinary messages", temperatures["incident copies"] / temperatures["ordinary messages"], ">", 3.0)
claim("on the future's ordinary messages, the ordinary-message temperature gives less than half the ECE of the "
      "temperature fitted on all messages", ece_ordinary["fitted on ordinary"] / ece_ordinary["fitted on all"],
      "<", 0.5);

# %% [markdown]
# In production, fit a temperature per population you can tell apart at serving time (here, messages the
# duplicate lookup recognises as part of an incident against the rest), and judge it on data that looks
# like the future.
#
# **Thresholds by segment.** Phone transcripts are noisier, so one threshold for all channels would route
# too many phone messages. Per channel, we pick the lowest confidence threshold whose routed validation
# messages reach 80% accuracy, in two ways: with the **point estimate** of that accuracy, or with its
# **Wilson (1927) lower bound**, which is 95% sure the true rate is above it and sits well below the point
# estimate when few messages back it. Two explanations compete for why such thresholds disappoint later:
# choosing where the noisy estimate first reaches the target selects a lucky spot, or the future has drifted.
# **The control** separates them: choose on a random half of validation and score on the other half, the
# same period, so no drift.

# %%
routing_data = {name: {"confidence": probs.max(axis=1), "correct": probs.argmax(axis=1) == labels,
                       "segment": messages.channel[rows[part]]}
                for name, probs, labels, part in (
                    ("validation", calibration.softmax(validation_logits, temperatures["all messages"]),
                     validation_labels, "validation"),
                    ("future", calibration.softmax(future_logits, temperatures["all messages"]), future_truth,
                     "test"))}
routing = calibration.routing_check(routing_data["validation"], routing_data["future"], capstone.CHANNELS, 0.8,
                                    cfg.seed)
tables.show(routing)
shortfall = {scored: calibration.worst_shortfall(routing, 0.8, "point estimate", scored)
             for scored in ("future", "same period")}
claim("with point-estimate thresholds, some channel's routed accuracy on the future misses 80% by over 3 points",
      shortfall["future"], ">", 0.03);

# %% [markdown]
# **What did not work.** The point-estimate thresholds promised 80% on validation and broke the promise on
# the future in at least one channel on every seed. The same-period control shows both explanations at
# work: chosen on one half of validation, they already missed on the other half on all five seeds at quick
# scale (by 2–24 points, the worst in a channel that routed 9% of its messages) and on three of five at full
# scale (by 1–7 points): selection on a noisy estimate explains part of the miss, more so with fewer
# messages, and the future's drift and different mix of incidents the rest. The Wilson bound came within a
# point of the target in the same period wherever it routed anything, but at a steep price in coverage: on
# half of the runs some channel routed nothing at all (its routed accuracy then shows as undefined: there is nothing to score). On the
# future it still missed in some channel on nine of the ten runs: a bound protects against small samples,
# not against drift. In production the thresholds need re-checking on the most recent labelled
# week.

# %% [markdown]
# ## 7. Shrink and serve
#
# **Plain idea.** Dynamic int8 quantization stores each linear layer's weights in 8 bits with a scale, and
# quantizes the activations on the fly for every batch. Storage shrinks by nearly 4x; compute gets faster
# when there is enough work per call for int8 matrix kernels to pay for the extra quantize and dequantize
# steps. With one message per call there is not, which is why batching matters as much as precision. The
# int8 MLP was a row of the cost table, so the shipping rule already weighed it.

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
#
# So when does quantization *cut p95*, as résumés like to say? When requests queue: a service that batches
# what arrives within a few milliseconds serves each batch faster in int8, so the queue drains faster and the
# tail shrinks (notebook 07 simulates the queue). And on models large enough to be limited by memory
# traffic, such as a language model generating one token at a time, where moving a quarter of the bytes
# wins even at batch 1. For a 0.6 MB MLP answering one message at a time, neither holds.

# %% [markdown]
# ## 8. One mechanism, four symptoms
#
# Four things went wrong in this run that look unrelated: validation loss rose while accuracy climbed, the
# fitted temperature was large, per-channel thresholds broke their promise, and the only large gain came
# from a duplicate lookup, not from a better model. All four have one cause: a quarter of the messages
# carry a label the words do not contain. The table measures each symptom separately on incident copies and
# on ordinary messages (the loss on the MLP, the rest on the shipped model), and the figure shows the
# validation likelihood as a function of the temperature for each population.

# %%
from helpers.experiments import nb08_traps_and_checklist_story as story

future_split = {"incident copies": future_copies, "ordinary messages": ~future_copies}
by_population = {row["population"]: row for row in lookup}
symptoms = story.symptoms_table(
    {"incident copies": losses["True"][accuracy_epoch] - losses["True"][loss_epoch],
     "ordinary messages": losses["False"][accuracy_epoch] - losses["False"][loss_epoch]}, temperatures,
    {name: calibration.routed_accuracy(routing_data["future"], routing, "point estimate", "future", mask)
     for name, mask in future_split.items()},
    {name: by_population[name]["accuracy, model + lookup"] - by_population[name]["accuracy, model"]
     for name in future_split})
tables.show(symptoms)
calibration.nll_curves_figure(validation_logits, validation_labels, validation_copies, temperatures);

# %% [markdown]
# **Monitoring.** The story ends with "next I would monitor drift"; here is what that monitor would have
# shown each week from day 240 on: the share of each message's words that occur in fewer than 0.5% of the
# training messages (incident error codes left out), and the shipped model's accuracy on the labels agents
# recorded (available a few hours late), over all messages and over ordinary ones. Notebook 05 turns the
# same idea into checks for training runs.

# %%
watched = np.concatenate([rows["validation"], rows["test"]])
dictionary = capstone.presence(messages)[:, :len(capstone.WORDS)]
rare = calibration.rare_word_share(dictionary[rows["train"]], dictionary[watched])
recorded_right = shipped_model.predict_proba(x[watched]).argmax(axis=1) == messages.given_queue[watched]
weeks = (messages.day[watched], capstone.TRAIN_END, capstone.DAYS)
weekly = calibration.weekly_monitor(weeks[0], rare, recorded_right, *weeks[1:])
ordinary = messages.burst[watched] < 0
steady = calibration.weekly_monitor(weeks[0][ordinary], rare[ordinary], recorded_right[ordinary], *weeks[1:])
calibration.monitor_figure(weekly, capstone.VALIDATION_END, steady["accuracy"]);

# %% [markdown]
# The share of rare words climbs through the future as the new words spread. Weekly accuracy on all
# messages swings by ten points or more with the week's mix of incidents, so a single bad week says little;
# on ordinary messages alone it is far steadier, and that is the series to alert on. A monitor that watches
# both the inputs and the delayed labels, and triggers a retraining or a threshold check when either moves,
# is the cheapest insurance this model can buy.

# %% [markdown]
# ## 9. The story: your answer to "describe one model you trained"
#
# The numbers above are enough to answer the last checklist item. The template below only fills in what this
# run measured, about the model that shipped; rerun with another seed and the story changes with the data.
# Read it aloud: it should take about ninety seconds. Below it, the follow-up questions an interviewer would
# ask, each answered by one of the controls this run measured.

# %%
best = max(cost, key=lambda row: row["macro-F1"])
data_facts = dict(
    messages=MESSAGES, random_overstatement=random_run.overstatement, time_overstatement=time_run.overstatement,
    calm_overstatement=calm_run.overstatement, random_twins=random_run.twin_rate, flagged=int(audit.flagged.sum()),
    precision=precision["confident learning"], precision_same_budget=precision["least self-confident, same budget"],
    recall_before=recall["as recorded"], recall_after=recall["confident learning's flags relabelled"],
    recall_disagree=recall["every disagreement relabelled"], overwritten=relabel_rows[1]["right labels overwritten"],
    overwritten_disagree=relabel_rows[2]["right labels overwritten"], copies_share=future_copies.mean(),
    loss_epoch=loss_epoch, accuracy_epoch=accuracy_epoch, regularizer_change=regularizer_change,
    pretrained_gain=new_words["+ vectors from the whole year's text"] - new_words["vocabulary only"],
    pretrained_other_gain=other_words["+ vectors from the whole year's text"] - other_words["vocabulary only"],
    pretrained_control_gain=new_words["+ vectors from text before day 240"] - new_words["vocabulary only"])
shipping_facts = dict(
    shipped=shipped, shipped_f1=by_name[shipped]["macro-F1"], shipped_p50_ms=by_name[shipped]["p50 ms"],
    p50_budget_ms=P50_BUDGET_MS, tolerance=TOLERANCE, best_model=best["model"], best_f1=best["macro-F1"],
    ensemble_gain=ensemble["macro-F1"] - mlp["macro-F1"], ensemble_slowdown=ensemble["fastest ms"] / mlp["fastest ms"],
    int8_size_ratio=mlp["size kB"] / int8_row["size kB"],
    int8_speedup_batch=int8_row["messages/s at 256"] / mlp["messages/s at 256"],
    int8_speedup_single=mlp["fastest ms"] / int8_row["fastest ms"])

# %%
facts = story.Facts(
    **data_facts, **shipping_facts, temperature=temperatures["all messages"],
    temperature_ordinary=temperatures["ordinary messages"], temperature_copies=temperatures["incident copies"],
    ece_ordinary=ece_ordinary["fitted on all"], ece_ordinary_own=ece_ordinary["fitted on ordinary"],
    copies_accuracy=by_population["incident copies"]["accuracy, model"],
    ordinary_accuracy=by_population["ordinary messages"]["accuracy, model"],
    lookup_gain=lookup[0]["macro-F1, model + lookup"] - lookup[0]["macro-F1, model"],
    threshold_miss=shortfall["future"], threshold_miss_same_period=shortfall["same period"])
print("Resume bullet:\n" + story.resume_bullet(facts) + "\n\nNinety-second answer:\n" + story.interview_answer(facts))
print("\nFollow-up questions:\n- " + "\n- ".join(story.follow_ups(facts)))

# %% [markdown]
# Compare it with the guide's model bullets ("diagnosed validation drift caused by time-based leakage; rebuilt
# split and recalibrated thresholds by segment"): every clause now carries a number you measured and a
# control you can defend in a follow-up question.

# %% [markdown]
# ## 10. The traps, refuted by this run

# %%
tables.show(story.traps_table(facts))

# %% [markdown]
# ## 11. The checklist: predict, then measure
#
# The guide asks you to answer eight questions without notes. Each is turned into a prediction: write a
# number for each (replace `None`), then run the next cell. Every answer is measured right now by a small
# experiment (a second or less each), or read from this run's cost table, so it holds on your machine, at
# your scale and seed, whatever other notebooks did. Each question touches one point of its item; the
# curriculum goes further on the rest: notebook 03 on dropout's train and evaluation modes and the other
# levers against overfitting, notebook 05 on NaN hunting and the other debugging checks, notebook 06 on
# calibration, and notebook 07 on quantization, batching and caching for transformers.

# %%
predictions = {
    1: None,  # factor by which dL/dw1 changes when w2 doubles
    2: None,  # factor by which Adam's first step grows when the loss is multiplied by 1000
    3: None,  # orders of magnitude between first and last hidden layer's gradient, 20 sigmoid layers
    4: None,  # how much the train-validation gap shrinks from 200 to 2000 training messages
    5: None,  # standard deviation of a 256-dimensional dot product of unit-variance vectors
    6: None,  # initial cross-entropy of an untrained 5-queue classifier
    7: None,  # how many times smaller a transformer layer gets with int8 dynamic quantization
    8: None,  # macro-F1 the five-model ensemble added over one MLP in this run
}

# %%
questions = story.checklist(x[rows["train"]], audit.cleaned[rows["train"]], x[rows["validation"]],
                            audit.cleaned[rows["validation"]], len(capstone.QUEUES), lambda: facts.ensemble_gain)
answers = story.check_predictions(questions, predictions)
tables.show(answers)

# %% [markdown]
# Each measurement of the first seven items is also a claim, so the answers above are evidence, not
# decoration (the eighth was claimed in section 4). For item 7, the explanation is checked too: if exactly
# the modules of type `nn.Linear` (the two feed-forward layers) store one byte per weight instead of four,
# the checkpoint should shrink by the ratio computed from the parameter counts alone.

# %%
measured = [row["measured"] for row in answers]
claim("doubling w2 doubles dL/dw1 (the chain rule)", measured[0], "between", (1.99, 2.01))
claim("scaling the loss by 1000 leaves Adam's first step within 1% of its size", measured[1], "between", (0.99, 1.01))
claim("in a 20-layer sigmoid MLP the first layer's gradient is over 8 orders of magnitude smaller", measured[2], ">", 8)
claim("ten times more training data shrinks logistic regression's train-validation gap", measured[3], ">", 0.0)
claim("a 256-dimensional dot product of unit-variance vectors has a spread near sqrt(256) = 16",
      measured[4], "between", (14.5, 17.5))
claim("an untrained 5-queue classifier starts within 0.05 of ln 5", abs(measured[5] - np.log(5)), "<", 0.05)
claim("int8 dynamic quantization shrinks a transformer layer by less than 3x", measured[6], "<", 3.0)
claim("the shrink is within 2% of the one expected if only the feed-forward weights become int8 (attention's "
      "input and output projections stay float32)", abs(measured[6] / story.transformer_int8_expected() - 1), "<", 0.02)
print(f"slowest question took {max(row['seconds'] for row in answers):.2f} s");

# %% [markdown]
# ## Interview answer
#
# The story in section 9 answers the open question. Here are the short ones, one or two sentences each:
# the mechanism, a number from this run, and the decision rule it leads to.

# %%
print("\n\n".join(story.short_answers(facts)))

# %% [markdown]
# **What did not work, said plainly.** No model clearly wins on quality: the MLP, the trees, nearest
# neighbours and logistic regression trade places across seeds within a few hundredths of macro-F1, so which
# one ships depends on the seed and on the tolerance. Confident learning was not needed for the recall gain
# on the mislabelled segment; its value was precision. Early stopping on validation loss misleads here: it
# stops after an epoch or two because of confidently wrong incident copies, although on the future it cost
# macro-F1 on most seeds and not on all. One temperature cannot calibrate two populations, and the
# temperature closest to the future's did not reliably lower the calibration error. Per-segment thresholds
# from point estimates broke their promise on the future, and the Wilson bound narrowed but did not close
# that gap under drift. And no model could learn an incident's owner from the words: only fresh labels did.

# %% [markdown]
# ## Solutions
#
# <details><summary>Your turn: drop instead of relabel</summary>
#
# `return np.setdiff1d(train_rows, flagged_rows)`. Across seeds 0–4 at both scales, dropping did as well as
# relabelling or a little worse (by up to 9 points of chat-refund recall), never better: removing the wrong
# "billing" labels takes away the evidence that pulled chat refunds towards billing, but relabelling also
# adds the right evidence, more refund examples. Dropping is the safer choice when the model's guesses are
# unreliable, since it never writes a wrong label in.
# </details>
