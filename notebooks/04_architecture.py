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
# # 04 · Architecture: attention, CNNs vs transformers, residual connections, normalization
#
# Architecture questions test whether you can reason about *inductive bias* and *cost*: what a design
# assumes about the data, what it makes cheap, and what it makes expensive. An interviewer who asks "why
# did attention win?" wants a mechanism, not "because GPT". This notebook writes attention from scratch,
# counts and times what it costs, and then puts each claim of the standard answers to an experiment small
# enough to run on a laptop CPU: a recall task where recurrence fails and attention does not, convolutions
# against transformers on scrambled and scarce data, deep networks with and without residual connections,
# and BatchNorm against LayerNorm at tiny and ordinary batch sizes.
#
# **Interview questions answered here**
# 1. *Why did attention become dominant for sequence modelling?* And what does it cost?
# 2. *CNNs vs transformers?* When would you choose which?
# 3. *What are residual connections?* Why do very deep networks need them?
# 4. *LayerNorm vs BatchNorm?* Why do transformers use LayerNorm?
#
# Data: synthetic sequences for attention and recall; MNIST-1D (Greydanus 2020), 10 classes of length-40
# signals, for the CNN, transformer and depth experiments.

# %%
from helpers import setup

cfg = setup("04_architecture")

# %%
from IPython.display import Markdown, display

from helpers import data
from helpers.claims import claim
from helpers.config import pick
from helpers.experiments import nb04_architecture_attention as cost
from helpers.experiments import nb04_architecture_bias as bias
from helpers.experiments import nb04_architecture_depth as depth
from helpers.experiments import nb04_architecture_norms as norms
from helpers.experiments import nb04_architecture_recall as recall
from helpers.scratch import attention, normalization
from helpers.source import show_source
from helpers.tables import show
from helpers.timing import machine_note
from helpers.widgets import Choice, Slider, explore

# %% [markdown]
# All sizes live in the next cell. `DL_SCALE=quick` (tests) trains fewer steps and times shorter sequences;
# `full` (the default) runs the same code bigger. Every claim below was checked for seeds 0–4 at both scales.

# %%
LENGTHS = pick(quick=[256, 512, 1024, 2048], full=[256, 512, 1024, 2048, 4096])  # timed sequence lengths
COUNT_LENGTHS = (32, 128)                     # dependency depth at a short and a long sequence
ROUNDS = pick(quick=2, full=4)                # interleaved timing rounds; the fastest is kept
RECALL_STEPS = pick(quick=100, full=200)      # training steps for associative recall
CHECKPOINTS = pick(quick=5, full=10)          # held-out / training-set evaluations per training run
MORE_STEPS = 4                                # the GRU's extra budget, in multiples of RECALL_STEPS
PAIRS = 8                                     # key-value pairs in the hard recall task
DISTANCE, DISTANCE_STEPS = 64, 60             # blank tokens between pair and query; steps
BIAS_STEPS = pick(quick=200, full=1000)       # CNN / transformer / MLP training steps on MNIST-1D
SMALL, LARGE = 400, 3200                      # training-set sizes
DEPTHS = pick(quick=[8, 32], full=[8, 16, 32])          # hidden blocks; the first and last are compared
DEPTH_STEPS, DEPTH_LR = pick(quick=80, full=300), 2e-3
DEPTH_MORE_STEPS = 4                          # the deepest plain network's extra budget (under-training control)
NORM_STEPS = pick(quick={2: 1000, 128: 200}, full={2: 2000, 8: 800, 32: 400, 128: 300})  # steps per batch size

# %% [markdown]
# ## 1. Attention from scratch, and what it costs
#
# **Idea.** A sequence model must let each token use information from other tokens. Attention does it in
# one step: every position builds its new representation as a *weighted average* of all positions'
# values, and it chooses the weights itself by comparing what it is looking for (its *query*) with what
# each position offers (its *key*).
#
# **Mechanism.** With queries $Q$, keys $K$ (both $T\times d$) and values $V$,
#
# $$\mathrm{Attention}(Q,K,V)=\mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt d}+M\right)V .$$
#
# The $T\times T$ matrix $QK^\top$ holds one score per (query, key) pair. Dividing by $\sqrt d$ keeps the
# scores' variance near 1 whatever the width (a dot product of two random $d$-dimensional vectors has
# variance $d$), so the softmax does not saturate at initialisation: unscaled, at $d = 64$ the scores would
# have a standard deviation of 8, and the largest of a few dozen such scores would take almost all the weight,
# leaving the softmax's gradient near zero for every other key. The mask $M$ is $0$ where a query may
# look and $-\infty$ where it may not: a *causal* mask hides the future, so a language model cannot read
# the token it must predict. Multi-head attention runs $h$ such maps side by side in $d/h$-dimensional
# subspaces, so different heads can attend to different things at the same cost (Vaswani et al. 2017); in
# trained BERT models, Clark et al. (2019) found individual heads that follow syntactic relations such as a
# verb's direct object, and others that attend broadly.
#
# Here is the whole computation, written to be read (it takes the arguments of PyTorch's
# `scaled_dot_product_attention` and returns the same result):

# %%
show_source(attention.attention_weights, attention.scaled_dot_product_attention)

# %% [markdown]
# Multi-head self-attention adds three projections (made by one linear layer, as in nanoGPT), splits
# the width into heads, and mixes the heads' outputs with a fourth projection:

# %%
show_source(attention.MultiHeadSelfAttention)

# %% [markdown]
# **Check against PyTorch.** Same inputs, same weights: the largest differences should be float32
# rounding. And causality should be *exact*: replacing every token in the second half of a sequence must
# leave the first half's outputs bit-for-bit unchanged.

# %%
agreement = cost.agreement_with_torch(seed=cfg.seed)
leak = cost.future_leak(seed=cfg.seed)
claim("attention written out matches PyTorch's fused kernel with a causal mask (largest difference)",
      agreement["attention vs fused kernel (causal)"], "<", 1e-5)
claim("multi-head attention matches nn.MultiheadAttention given the same weights (largest difference)",
      agreement["multi-head vs nn.MultiheadAttention"], "<", 1e-5)
claim("with a causal mask, replacing later tokens changes earlier outputs by exactly zero", leak, "==", 0.0)

# %% [markdown]
# ### Parallel training, measured as dependency depth
#
# The usual claim is that attention "trains in parallel" while a recurrent network does not. On one CPU
# thread both run one operation at a time, so a stopwatch cannot show the difference. (This section runs
# on the CPU even when a GPU is present: on one thread, time is proportional to work.) What parallel
# hardware can exploit is the *dependency depth*, or critical path: the longest chain of operations each of
# which needs the previous one's result. An operation recorder sees every tensor operation a layer dispatches
# and gives each result a depth one more than its deepest input. Attention processes all $T$ positions in each
# of its matrix products, so its depth should not depend on $T$. A GRU must compute
# $h_t = \mathrm{GRU}(h_{t-1}, x_t)$ one token after another, because each step needs the previous hidden
# state: its depth should grow in proportion to $T$. Depth, unlike a count of operations, does not depend on
# how the layer is written: attention looped over queries would dispatch $T$ times as many operations at the
# same depth, and a fused GPU kernel for the GRU (cuDNN) is one call that still runs its $T$ steps in order.

# %%
layers = cost.make_layers(width=64, device="cpu", seed=cfg.seed)
counts = cost.dependency_depths(layers, COUNT_LENGTHS)
show(counts)

# %%
short, long = counts
claim("the attention layer's dependency depth is the same at a short and a long sequence",
      long["attention depth"] - short["attention depth"], "==", 0)
claim("the GRU's dependency depth grows in proportion to the length (depth ratio over length ratio)",
      (long["GRU depth"] / short["GRU depth"]) / (long["length"] / short["length"]), ">", 0.9)

# %% [markdown]
# ### The price: quadratic memory and time
#
# The score matrix has $T^2$ entries per head. Written out, it is the largest tensor the computation
# allocates; PyTorch's fused kernel (the FlashAttention idea, Dao et al. 2022) walks over the keys in
# tiles and keeps only a running maximum and sum per query, so it never stores the $T\times T$ matrix.
# We record the largest allocation of each at several lengths (exact, no timing noise) and time the forward
# pass in interleaved rounds, keeping each one's fastest round so a busy machine disturbs the result as little
# as possible. The GRU is timed as a whole layer (its gates and projections included), against bare attention
# $\mathrm{softmax}(QK^\top/\sqrt d)V$ without the $Q$, $K$, $V$ projections: the comparison is about how each
# grows with $T$, not about which is cheaper at a given length.

# %%
largest = cost.allocations(layers, LENGTHS)
seconds = cost.timings(layers, LENGTHS, rounds=ROUNDS)
print(machine_note("cpu"))
fig = cost.plot_cost(LENGTHS, seconds, largest)

# %%
slopes = {name: cost.slope(LENGTHS, values) for name, values in seconds.items()}
memory_slopes = {name: cost.slope(LENGTHS, values) for name, values in largest.items()}
flop_ratio = cost.attention_flops(2 * LENGTHS[0]) / cost.attention_flops(LENGTHS[0])
show(cost.summary(LENGTHS, seconds, largest))
print(f"check of the FLOP counter: doubling T multiplies attention's counted FLOPs by {flop_ratio:g} (4T²d)")

# %% [markdown]
# **Claim check.** The allocation slopes are exact: $2$ for the written-out scores ($T^2$ values of 4
# bytes) and $1$ for the fused kernel (its largest new tensor is the $T\times d$ output; its working tiles
# have a fixed size). Time is noisier, so
# its thresholds are loose. Across seeds 0–4, timed on a busy shared machine (quick | full), the time slope
# of attention written out measured 2.1–3.0 | 2.3–3.1, of the fused kernel 1.8–2.3 | 2.0–2.6, and of the GRU
# 0.87–1.03 | 0.95–1.07. Slopes above 2 are real too: a 256 × 256 score matrix fits in the CPU's cache, a
# 2048 × 2048 one (16 MiB) does not. The two agreement checks measured at most $5\times10^{-7}$ and
# $9\times10^{-8}$.

# %%
claim("the largest allocation of attention written out grows as the square of the length (log-log slope)",
      memory_slopes["attention written out"], "between", (1.99, 2.01))
claim("the fused kernel's largest allocation grows linearly with the length (log-log slope)",
      memory_slopes["fused attention (PyTorch)"], "between", (0.99, 1.01))
claim("the time of attention written out grows faster than linearly (log-log slope)",
      slopes["attention written out"], ">", 1.5)
claim("the fused kernel saves memory, not arithmetic: its time also grows faster than linearly (slope)",
      slopes["fused attention (PyTorch)"], ">", 1.4)
claim("the GRU's time grows about linearly with the length (log-log slope)", slopes["GRU"], "<", 1.3)

# %% [markdown]
# **Practical consequence.** On this machine, attention written out was faster than the GRU layer only up
# to the length printed below; beyond that its quadratic cost takes over. The fused kernel does the same
# arithmetic with less memory traffic; where it crosses the GRU (if it does within the lengths timed) is
# printed too, and it varies from run to run on a busy machine. In a whole transformer layer the $Q$, $K$,
# $V$ and output projections and the MLP cost about $24Td^2$ FLOPs against attention's $4T^2d$, so the
# quadratic term dominates only when $T > 6d$ (beyond about 4,600 tokens at $d = 768$). For
# long contexts the options are: fused kernels (memory), sparse or local attention and chunking
# (arithmetic), retrieval (do not put everything in the context), and at inference a KV cache (notebook 07)
# so each new token costs $O(T)$ instead of recomputing $O(T^2)$.

# %%
for name in ("attention written out", "fused attention (PyTorch)"):
    print(cost.crossover_sentence(LENGTHS, seconds, name))

# %% [markdown]
# **Explorer: how much memory do attention weights take?** A training step keeps each layer's attention
# weights for the backward pass. Move the context length, layers, heads and bytes per value (2 for
# bfloat16, 4 for float32) and compare with an 80 GB accelerator. The numbers are arithmetic, so the
# explorer answers instantly.

# %%
explore(cost.memory_explorer, log2_length=Slider(6, 17, 1, 12), layers=Slider(1, 96, 1, 12),
        heads=Slider(1, 96, 1, 12), bytes_per_value=Choice([("2 (bfloat16)", 2), ("4 (float32)", 4)], 2))

# %% [markdown]
# ## 2. Why attention dominates: associative recall
#
# **Idea.** The guide's first reason is that "each token can condition on other tokens directly". A task
# makes that concrete: a sequence holds $k$ key–value pairs, then a query key; the answer is the value
# stored with that key (chance is 1 in 8). Each pair arrives as **one token**, the sum of its key's and its
# value's embeddings, and the query is a last token holding only a key. So the binding of key to value is
# done before the model sees anything, and the model must only look the key up. Attention does that in one
# step: the query's dot product with every token finds the match, and the weighted average reads out its
# value. A recurrent network sees the pairs one at a time and must store all of them in its hidden state
# *before* it knows which will be asked for. Recall of this kind is what Arora et al. (2023) found separates
# attention from its cheaper rivals. (When keys and values are separate tokens, a model must first bind each
# value to the key before it: that takes two attention layers, the "induction head" circuit of Olsson et
# al. 2022. Our one-token design is the easier, one-layer version.)
#
# Both models are tiny (width 32, a few thousand parameters), trained with Adam on fresh random sequences
# at every step, and tested on 1000 held-out sequences. The controls are chosen to expose the other
# readings of a GRU failure:
#
# - *It cannot learn the format:* with one pair both models should be perfect.
# - *It learned something, just not enough:* a rule that ignores the keys and answers the most frequent of
#   the eight values scores well above chance (0.345 here, against 0.125), because values repeat. A model
#   that only counts values gets that far without binding a single key; a model that recalls must beat it.
# - *Its learning rate is wrong:* at eight pairs the GRU trains at two learning rates (in trials, higher
#   rates of 0.03 and 0.05 did worse, 0.24–0.30).
# - *It is under-trained:* the run at the higher rate continues for four times the steps.
# - *It is too small:* a GRU four times as wide (about 13 times the parameters) trains as well.

# %%
recall_runs = recall.recall_suite(PAIRS, RECALL_STEPS, MORE_STEPS, seed=cfg.seed, device=cfg.device,
                                  checkpoints=CHECKPOINTS)
show(recall.gap_table(recall_runs, list(recall_runs)))

# %%
hard = {name: run for name, run in recall_runs.items() if f"{PAIRS} pairs" in name}
key_blind = recall.key_blind_accuracy(PAIRS)
fig = recall.plot_runs(hard, f"Associative recall with {PAIRS} pairs: held-out accuracy", key_blind=key_blind)

# %%
fig = recall.plot_weights(recall_runs[f"attention, {PAIRS} pairs"], device=cfg.device)

# %% [markdown]
# **Claim check.** With one pair both models are perfect. With eight pairs, attention recalls the value
# and puts most of the query's weight on the matching pair (uniform weight would be $1/9 = 0.11$); every
# GRU ends at the key-blind rule's accuracy, whatever the learning rate, steps or width: it learns which
# values are frequent in a sequence, and nothing about which key holds which. Across seeds 0–4 (quick | full):
# attention 0.99–1.0 | 1.0; the GRU at the same budget 0.30–0.34 | 0.33–0.35, with four times the steps
# 0.31–0.34 | 0.33–0.38, four times as wide 0.31–0.33 | 0.32–0.33; the query's weight on the matching pair
# 0.89–0.95 | 0.93–0.98. No GRU run at quick scale scored above the key-blind rule (0.345); at full scale the
# best was 0.031 above it (four times the steps), against attention's 0.65.

# %%
longer = recall_runs[f"GRU, {PAIRS} pairs, lr 0.01, {MORE_STEPS}x steps"]
wide = recall_runs[f"GRU, {PAIRS} pairs, width 128"]
gru_same_budget = max(recall_runs[f"GRU, {PAIRS} pairs, lr 0.003"].final(), longer.at(RECALL_STEPS))
match_weight = recall.weight_on_match(recall_runs[f"attention, {PAIRS} pairs"], device=cfg.device)
claim("with one pair, both attention and the GRU learn the task (the worse of the two)",
      min(recall_runs["attention, 1 pair"].final(), recall_runs["GRU, 1 pair"].final()), ">=", 0.95)
claim("with eight pairs, one attention layer recalls the value (held-out accuracy)",
      recall_runs[f"attention, {PAIRS} pairs"].final(), ">=", 0.95)
claim("with eight pairs and the same steps, the GRU does no better than a key-blind rule (better of two learning "
      "rates, accuracy above the rule)", gru_same_budget - key_blind, "<", 0.05)
claim("with four times the steps, neither does the GRU (accuracy above the key-blind rule)",
      longer.final() - key_blind, "<", 0.05)
claim("nor does a GRU four times as wide (accuracy above the key-blind rule)", wide.final() - key_blind, "<", 0.05)
claim("the query puts most of its attention on the pair holding its key (mean weight)", match_weight, ">", 0.5)

# %% [markdown]
# ### A trap: "RNNs can't do long-range dependencies"
#
# The tempting explanation of that failure is distance. Test it directly: one pair, then 64
# blank tokens, then the query. The GRU now has to *carry* one value across many steps, which is exactly
# what its update gate is for ($h_t = (1-z_t)\,h_{t-1} + z_t\,\tilde h_t$ with $z_t \approx 0$ copies the
# state forward). Trained at two learning rates for the same 60 steps:

# %%
distance_runs = {f"GRU, lr {lr:g}": recall.train("GRU", 1, DISTANCE_STEPS, lr, seed=cfg.seed, distance=DISTANCE,
                                                  checkpoints=CHECKPOINTS // 2, device=cfg.device)
                 for lr in (5e-2, 5e-3)}
fig = recall.plot_runs(distance_runs, f"One pair, then {DISTANCE} blank tokens: the GRU carries the value")

# %%
claim("at a suitable learning rate, the GRU carries one value across many blank tokens (held-out accuracy)",
      distance_runs["GRU, lr 0.05"].final(), ">=", 0.9)
claim("at a ten times smaller learning rate and the same budget it lags far behind (accuracy gap)",
      distance_runs["GRU, lr 0.05"].final() - distance_runs["GRU, lr 0.005"].final(), ">", 0.5)

# %% [markdown]
# Across seeds 0–4 the GRU at the higher rate reached 1.0 every time, and the ten times smaller rate lagged
# by 0.74–0.89. So a gated recurrent network *can* span 64 steps; a naive learning-rate choice makes it look as if it
# cannot. What it cannot do cheaply is hold many items and look one up by content, and it cannot
# parallelise training over time. Those two, not "distance", are why attention took over. (State-space
# models such as Mamba, Gu & Dao 2023, bring back recurrence with parallel training, and recall and copying
# are exactly where models with a fixed-size state have been measured to trail attention: Arora et al. 2024,
# Jelassi et al. 2024.)
#
# **Explorer: how many pairs can each model hold?** Set the number of pairs and the training steps and
# press Run (attention and the GRU at two learning rates, a few seconds).

# %%
explore(recall.recall_explorer, run_button=True, pairs=Slider(1, 32, 1, 8), steps=Slider(50, 300, 50, 200))

# %% [markdown]
# ## 3. CNNs vs transformers: inductive bias
#
# **Idea.** An architecture is a prior. A convolution applies the same small filter at every position:
# it assumes that nearby inputs belong together (locality) and that a pattern means the same wherever it
# appears (translation equivariance). Followed by pooling over positions, equivariance becomes *invariance*:
# the pooled features, and so the class, do not change when the pattern moves. Self-attention compares every
# position with every other and, without positional information, does not even know the order (permutation
# equivariance); positions must be added and every spatial relation learned from data. An MLP has no notion
# of position at all.
#
# **Mechanism, checked exactly.** For a circular convolution $C$ and a shift $S$, $C(Sx) = S\,C(x)$; for
# attention $A$ without positions and any permutation $P$, $A(Px) = P\,A(x)$; adding positional embeddings
# breaks that symmetry, which is why transformers need them. (Learned absolute embeddings, as here and in ViT,
# are one choice; modern language models mostly use relative schemes instead: RoPE, Su et al. 2021, rotates
# queries and keys by an angle proportional to their position so that their dot product depends only on the
# offset; ALiBi, Press et al. 2022, subtracts a penalty growing with distance from each score. Both are meant
# to extend to longer sequences than were seen in training.)

# %%
symmetry = {"circular convolution vs shift": bias.shift_commutes_with_circular_convolution(seed=cfg.seed),
            "attention without positions vs permutation": bias.permutation_commutes_with_attention(False, cfg.seed),
            "attention with positional embeddings vs permutation": bias.permutation_commutes_with_attention(
                True, cfg.seed)}
show([{"check": name, "largest difference": value} for name, value in symmetry.items()])

# %%
claim("a circular convolution commutes with shifts exactly", symmetry["circular convolution vs shift"], "==", 0.0)
claim("attention without positions commutes with permutations (float32 rounding)",
      symmetry["attention without positions vs permutation"], "<", 1e-5)
claim("positional embeddings break the permutation symmetry (largest difference)",
      symmetry["attention with positional embeddings vs permutation"], ">", 0.05)

# %% [markdown]
# **Experiment.** Models of similar size on MNIST-1D: a CNN (three convolutions, global average pooling,
# about 11k parameters), a one-block patch transformer (patches of 4 neighbouring samples, learned positions,
# about 14k) and an MLP (two hidden layers of 128, about 23k). Each trains for the same
# number of Adam steps at any data size (200 at quick scale, 1000 at full), at the better of two learning
# rates for its architecture in trials (0.01 for the CNN and the MLP, 0.003 for the transformer). Two
# questions:
#
# - *Does the CNN's advantage come from the order of the inputs?* Scramble the 40 positions with one fixed
#   permutation (train and test alike). The information is all still there, so a model without a notion of
#   position should not care. The MLP is the control: it must do as well on scrambled inputs. The patch
#   transformer is not such a model: cutting the signal into patches of neighbouring samples is itself a
#   locality prior, so scrambling should hurt it too.
# - *Does the CNN beat the transformer when data is scarce?* Both on 400 examples.
# - *What is the prior worth in data?* Compare the CNN on 400 examples with the MLP on 3200.

# %%
jobs = [(model, SMALL, scramble) for model in bias.ARCHITECTURES for scramble in (False, True)]
jobs += [("MLP", LARGE, False)] + pick(quick=[], full=[("CNN", LARGE, False), ("transformer", LARGE, False)])
bias_runs = bias.run_grid(jobs, BIAS_STEPS, seed=cfg.seed, device=cfg.device)
fig = bias.plot_grid(bias_runs)

# %%
acc = {key: run.test_acc for key, run in bias_runs.items()}
cnn_drop = acc[("CNN", SMALL, False)] - acc[("CNN", SMALL, True)]
mlp_change = acc[("MLP", SMALL, False)] - acc[("MLP", SMALL, True)]
transformer_drop = acc[("transformer", SMALL, False)] - acc[("transformer", SMALL, True)]
cnn_over_transformer = acc[("CNN", SMALL, False)] - acc[("transformer", SMALL, False)]
show([{"model": name, "parameters": sum(p.numel() for p in bias.build(name).parameters()),
       "FLOPs per example": bias.flops_per_example(name)} for name in bias.ARCHITECTURES])

# %% [markdown]
# **Claim check.** Scrambling costs the CNN a large share of its accuracy and the MLP nothing beyond
# noise, so the CNN's advantage comes from its assumption about neighbouring samples, not from the data
# being easier in order. And that assumption is worth more than eight times the data: the CNN on 400
# examples beats the MLP on 3200. The patch transformer sits in between: it trails the CNN on 400 examples,
# and scrambling hurts it too, because a patch of four neighbouring samples is only meaningful if neighbours
# belong together. A "transformer" here is therefore not prior-free: its tokenizer carries the locality
# assumption, as ViT's image patches do. Across seeds 0–4 (quick | full): the CNN lost 0.23–0.30 | 0.30–0.41,
# the transformer 0.10–0.18 | 0.16–0.26, the MLP changed by at most 0.017 | 0.014; the CNN led the transformer on
# 400 examples by 0.09–0.18 | 0.13–0.19, and the CNN on 400 examples led the MLP on 3200 by 0.11–0.19 | 0.11–0.17.

# %%
claim("scrambling the input positions costs the CNN accuracy (drop)", cnn_drop, ">", 0.15)
claim("scrambling the input positions does not matter to the MLP (absolute change)", abs(mlp_change), "<", 0.05)
claim("scrambling costs the patch transformer accuracy too: patches assume locality (drop)", transformer_drop, ">", 0.05)
claim("on 400 examples the CNN beats the patch transformer (accuracy difference)", cnn_over_transformer, ">", 0.05)
claim("a CNN trained on 400 examples beats an MLP trained on 3200 (accuracy difference)",
      acc[("CNN", SMALL, False)] - acc[("MLP", LARGE, False)], ">", 0.05)

# %% [markdown]
# **What this does not show: the transformer crossover.** At full scale the CNN and the transformer are also
# trained on 3200 examples, and the transformer still trails (seeds 0–4: 0.79–0.82 against 0.91–0.93); with
# eight times the data it does only a little better than the CNN did with 400. Nothing here hints at a crossover, and none should be expected at this scale:
# Dosovitskiy et al. (2021) found that a ViT pre-trained on ImageNet alone (1.3M images) trails ResNets
# (BiT) of similar cost, roughly matches them when pre-trained on ImageNet-21k (14M images) and pulls ahead
# with JFT-300M (300M images). DeiT (Touvron et al. 2021) closed much of the gap at ImageNet scale with heavy
# augmentation and distillation from a CNN, and ConvNeXt (Liu et al. 2022) showed that a modernised CNN
# matches transformers again. FLOPs per example (table above) depend on the configuration, not the family:
# compare the models you would actually deploy.
#
# **Practical consequence.** Choose by data, latency and deployment, not by fashion: with little data or a
# tight latency budget on local signals, a CNN's prior is worth a lot; with large data or pre-trained
# weights, or when inputs are not grid-like (text, sets, multimodal tokens), a transformer's flexibility
# wins. Hybrids (convolutional stems, local attention) are common in practice.
#
# ## 4. Residual connections and the degradation problem
#
# **Idea.** Adding layers to a plain network can make it fit its own *training* set worse: He et al. (2016)
# called it degradation. It is not overfitting (training error rises) and not simply vanishing gradients
# (normalization keeps the forward signal healthy); the deep plain network is hard to optimise. A residual
# block learns a *change* to its input instead of a replacement:
#
# $$h_{l+1} = h_l + f(h_l), \qquad
# \frac{\partial h_L}{\partial h_l} = I + \frac{\partial}{\partial h_l}\sum_{k=l}^{L-1} f(h_k).$$
#
# The identity term gives every layer a direct path to the loss, and a block that should do nothing only
# has to keep $f$ near zero. We compare plain stacks (LayerNorm → Linear → ReLU) with residual ones (the same
# block added to its input: pre-norm placement, as in transformers), both trained for the same number of steps
# (80 at quick scale, 300 at full) on MNIST-1D, reading the *training* loss. The obvious other reading of a
# deep plain network's failure is that it is merely slower to train, so the deepest plain network trains four
# times as long, with a checkpoint at the common budget.

# %%
split = data.mnist1d(seed=cfg.seed, device=cfg.device)
depth_runs = depth.run_depths(DEPTHS, split, DEPTH_STEPS, seed=cfg.seed, lr=DEPTH_LR, more_steps=DEPTH_MORE_STEPS,
                              checkpoints=CHECKPOINTS)
fig = depth.plot_depths(depth_runs)

# %%
shallow, deep = DEPTHS[0], DEPTHS[-1]
ratios = {f"{'residual' if residual else 'plain'}, depth {deep}": depth.gradient_ratio(deep, residual, split,
                                                                                         seed=cfg.seed)
          for residual in (False, True)}
show([{"network": f"{'residual' if r else 'plain'}, depth {d}", f"training loss after {DEPTH_STEPS} steps":
       run.at(DEPTH_STEPS), "steps trained": run.steps[-1], "final training loss": run.final()}
      for (d, r), run in depth_runs.items()])
show([{"network": name, "gradient norm, first / last hidden layer, at init": value} for name, value in ratios.items()])

# %% [markdown]
# **Claim check.** Going from depth 8 to 32, the plain network's training loss rises a lot while the
# residual network's does not (that is the control: depth itself is not the problem), and four times the
# steps do not rescue the deep plain network (the control for under-training). At depth 32 the plain network
# barely trains at all: its loss stays near chance. The milder case He et al. described, a plain network
# that trains but fits worse than a shallower one, is depth 16 at full scale (in the table above). At
# initialisation the plain stack's gradients are very uneven across layers (the first hidden layer's
# gradient is hundreds of times the last's), the residual stack's are within a small factor. Read that as a
# symptom, not the mechanism: Adam divides each parameter's step by its own gradient scale, so uneven
# gradient norms alone would not stop training; what the ratio shows is how badly the deep plain stack's
# layers are coupled, so that a step in one changes what all later layers see. Across seeds 0–4 (quick | full): the
# plain network's training loss rose by 0.69–0.84 | 1.42–1.59, the residual network's changed by −0.16 to
# +0.004 | −0.03 to +0.05; with four times the steps the deep plain network still ended 1.00–1.17 | 1.85–1.98 above
# the deep residual one; the gradient ratio at initialisation was 319–624 (plain) and 3.7–4.8 (residual).

# %%
plain_rise = depth_runs[(deep, False)].at(DEPTH_STEPS) - depth_runs[(shallow, False)].final()
residual_rise = depth_runs[(deep, True)].final() - depth_runs[(shallow, True)].final()
longer_gap = depth_runs[(deep, False)].final() - depth_runs[(deep, True)].final()
claim("the deeper plain network fits its training set worse (training-loss rise from the shallow one)",
      plain_rise, ">", 0.5)
claim("the deeper residual network does not (training-loss rise from the shallow one)", residual_rise, "<", 0.3)
claim("with four times the steps the deep plain network still fits worse than the deep residual one (loss gap)",
      longer_gap, ">", 0.5)
claim("at initialisation the deep plain network's gradients are very uneven across layers (first/last)",
      ratios[f"plain, depth {deep}"], ">", 30)
claim("the deep residual network's gradients stay within a small factor across layers (first/last)",
      ratios[f"residual, depth {deep}"], "<", 10)

# %% [markdown]
# **Why the normalization matters too.** Our residual block is deliberately minimal and not the standard
# one: $h + \mathrm{ReLU}(W\,\mathrm{LN}(h))$, one linear layer whose output passes through a ReLU, so every
# update it adds is non-negative, with no second linear layer after the ReLU (as in ResNet's blocks and
# transformer MLPs, which can add updates of either sign) and no final normalization before the classifier.
# That is why the deep residual stack starts with a large loss (the curve starting above the axis): 32
# non-negative updates pile up into large logits. Take the LayerNorm out as well and each block adds
# $\mathrm{ReLU}(Wh)$, which grows with $h$ itself: with PyTorch's default initialisation the stream's scale
# grows by 10–30% per block, which compounds exponentially with depth. Pre-norm blocks normalise what enters
# $f$, so every block adds a change of bounded size. Standard deviation of the last hidden layer at
# initialisation, 64 blocks:

# %%
growth = depth.residual_stream_growth(depth=64, seed=cfg.seed)
show([{"residual stack, 64 blocks": "without normalization" if norm == "none" else "pre-norm (LayerNorm)",
       "std of the last hidden layer at init": value} for norm, value in growth.items()])

# %%
claim("without normalization the residual stream's scale explodes over 64 blocks (std ratio vs LayerNorm)",
      growth["none"] / growth["layer"], ">", 1000)

# %% [markdown]
# Normalization is not the only cure. Initialising each residual branch so that it starts at zero makes the
# whole network the identity at initialisation, and depth then costs nothing at the start: Goyal et al.
# (2017) zero-initialise the last BatchNorm scale of each ResNet block; Fixup (Zhang et al. 2019) and
# SkipInit (De & Smith 2020) train deep residual networks with no normalization at all by zero-initialising
# or down-scaling each branch. Veit et al. (2016) offer another reading of why residual networks train:
# unrolled, they behave like an ensemble of many paths of different lengths, and most of the gradient flows
# through the short ones.
#
# **Practical consequence.** Residual connections are what make depth cheap to try: the network can
# start close to a shallower one and use extra blocks only where they help. In transformers every
# attention and MLP sub-layer sits on the residual stream (`x = x + f(norm(x))`), and pre-norm placement
# keeps training stable without the learning-rate warm-up that post-norm transformers needed
# (Xiong et al. 2020).
#
# **Explorer: depth × normalization.** Pick a depth and a normalization; Run trains a plain and a residual
# network and reports their training loss and gradient ratio. Try depth 64 with no normalization.

# %%
explore(depth.depth_explorer, run_button=True, depth=Slider(2, 64, 2, 32),
        norm=Choice([("LayerNorm", "layer"), ("BatchNorm", "batch"), ("none", "none")], "layer"),
        steps=Slider(50, 300, 50, 150))

# %% [markdown]
# ## 5. LayerNorm vs BatchNorm
#
# **Idea.** Both standardise activations to zero mean and unit variance and then let the network rescale
# them with learned parameters. They differ in *which numbers* they average over. BatchNorm (Ioffe &
# Szegedy 2015) averages each feature over the examples in the mini-batch; LayerNorm (Ba et al. 2016)
# averages each example over its own features:
#
# $$\text{BatchNorm: } \hat x_{ij} = \frac{x_{ij} - \mu_j}{\sqrt{\sigma_j^2 + \epsilon}},\quad
# \mu_j = \frac1B\sum_{i=1}^{B} x_{ij}
# \qquad\qquad
# \text{LayerNorm: } \hat x_{ij} = \frac{x_{ij} - \mu_i}{\sqrt{\sigma_i^2 + \epsilon}},\quad
# \mu_i = \frac1F\sum_{j=1}^{F} x_{ij}$$
#
# for example $i$ of a batch of $B$ and feature $j$ of $F$ (the variances likewise).
#
# So a BatchNorm output depends on the other examples in the batch, and at inference BatchNorm switches to
# running averages collected during training. Here is BatchNorm written out; writing LayerNorm is your
# exercise below.

# %%
show_source(normalization.batch_norm)

# %% [markdown]
# **Exact checks.** Replace the other seven examples of a batch and look at example 0's output.

# %%
effects = {"LayerNorm": norms.companion_effect("layer", seed=cfg.seed),
           "BatchNorm, training mode": norms.companion_effect("batch", training=True, seed=cfg.seed),
           "BatchNorm, eval mode": norms.companion_effect("batch", training=False, seed=cfg.seed)}
two = norms.batch_of_two(seed=cfg.seed)
refusal = norms.batch_of_one_error()
show([{"layer": name, "largest change of example 0": value} for name, value in effects.items()])
print(f"BatchNorm, batch of one, training mode: {refusal!r}")
show([{"BatchNorm on a batch of two (float64)": name, "value": value} for name, value in two.items()])

# %%
claim("a LayerNorm output does not depend on the other examples in the batch", effects["LayerNorm"], "==", 0.0)
claim("a BatchNorm output in training mode does (largest change)", effects["BatchNorm, training mode"], ">", 0.1)
claim("a BatchNorm output in eval mode does not", effects["BatchNorm, eval mode"], "==", 0.0)
claim("BatchNorm refuses a batch of one example in training mode", bool(refusal), "==", True)
claim("on a batch of two, BatchNorm outputs are negatives of each other (largest |y0 + y1|)",
      two["largest |y0 + y1|"], "<", 1e-12)
claim("on a batch of two, BatchNorm outputs are plus or minus one (median |y|)", two["median |y|"], ">", 0.99)

# %% [markdown]
# The batch of two shows the problem plainly: whatever the inputs, each feature comes out as $+1$ for the
# larger of the two examples and $-1$ for the smaller. The layer passes on one bit per feature, and which
# bit depends on the random partner. **Training at batch sizes 2 and 128.** The same three-block MLP with
# BatchNorm, LayerNorm or no normalization; test accuracy in eval mode. For BatchNorm we also ask what
# happens if it is (wrongly) left in training mode at inference, so that each test batch is normalised by
# its own statistics: how many predictions change, and what that does to accuracy, on test batches drawn
# at random (i.i.d.) and on test batches sorted by class (mostly one class per batch, as when requests
# arrive in correlated bursts).

# %%
norm_runs = norms.run_batches(NORM_STEPS, split, seed=cfg.seed)
fig = norms.plot_batches(norm_runs, "BatchNorm needs batches; LayerNorm does not")

# %%
def or_dash(value):
    return "—" if value is None else value


show([{"normalization": norms.LABEL[n], "batch size": b, "steps": run.steps, "test accuracy": run.test_acc,
       "same prediction in train mode": or_dash(run.train_eval_agreement),
       "train-mode accuracy, i.i.d. batches": or_dash(run.train_mode_acc),
       "train-mode accuracy, class-sorted batches": or_dash(run.sorted_train_mode_acc)}
      for (n, b), run in norm_runs.items()])

# %% [markdown]
# **Claim check.** At batch size 2 LayerNorm beats BatchNorm, and BatchNorm is even worse than no
# normalization; in training mode BatchNorm changes most predictions at batch 2. At batch 128 it still
# changes about one prediction in ten, but on i.i.d. test batches those changes cancel out: accuracy barely
# moves (a test batch of 128 drawn at random has statistics close to the running averages). The harm shows when
# the batch is not a fair sample: on class-sorted test batches, normalising each batch by its own mean
# removes exactly the signal that tells the classes apart, and accuracy falls far. (And a single request,
# a batch of one, raises an error in training mode.) At batch 128 BatchNorm was ahead of LayerNorm by a few points (0.036–0.053 at quick scale, −0.002
# to 0.030 at full; too thin to claim). Across seeds 0–4 (quick | full): LayerNorm led BatchNorm at batch 2
# by 0.07–0.11 | 0.12–0.20, no normalization led it by 0.07–0.11 | 0.11–0.16; left in training mode,
# BatchNorm kept 0.34–0.41 | 0.29–0.35 of its predictions at batch 2 and 0.875–0.895 | 0.87–0.90 at 128; at
# 128 its accuracy moved by at most 0.021 | 0.017 on i.i.d. test batches and fell by 0.22–0.24 | 0.22–0.26 on
# class-sorted ones.

# %%
tiny, usual = min(NORM_STEPS), max(NORM_STEPS)
test_acc = {key: run.test_acc for key, run in norm_runs.items()}
claim("at batch size 2, LayerNorm beats BatchNorm (test accuracy difference)",
      test_acc[("layer", tiny)] - test_acc[("batch", tiny)], ">", 0.04)
claim("at batch size 2, BatchNorm is worse than no normalization (test accuracy difference)",
      test_acc[("none", tiny)] - test_acc[("batch", tiny)], ">", 0.0)
claim("BatchNorm left in training mode changes most predictions at batch size 2 (agreement with eval mode)",
      norm_runs[("batch", tiny)].train_eval_agreement, "<", 0.5)
usual_bn = norm_runs[("batch", usual)]
claim("at batch size 128, training-mode predictions still depend on the test batch (agreement with eval mode)",
      usual_bn.train_eval_agreement, "<", 0.97)
claim("on i.i.d. test batches of 128 that costs little accuracy (absolute change from eval mode)",
      abs(usual_bn.test_acc - usual_bn.train_mode_acc), "<", 0.05)
claim("on class-sorted test batches of 128 it costs a lot (eval-mode minus training-mode accuracy)",
      usual_bn.test_acc - usual_bn.sorted_train_mode_acc, ">", 0.1)

# %% [markdown]
# **Practical consequence.** BatchNorm is a good default for CNNs trained with reasonably large, i.i.d.
# batches; it also regularises a little through its batch noise. It breaks when batches are small (detection
# and segmentation with large images; Wu & He 2018 measured ResNet-50's ImageNet error rising from 23.6% at
# 32 images per GPU to 34.7% at 2), when examples in a batch are not independent, or when sequence lengths
# and padding vary, and it needs eval mode at inference. LayerNorm has no batch dependence and no running
# statistics: the same computation in training and inference, for any batch size and sequence length,
# which is why transformers use it (and RMSNorm, its cheaper variant without the mean).
#
# Three follow-ups interviewers ask. *In a CNN*, BatchNorm keeps one mean and variance per channel, taken
# over the batch and all spatial positions $(B, H, W)$, so a batch of 2 large images still gives many
# numbers per statistic; when that is not enough, *GroupNorm* (Wu & He 2018, the method behind the numbers
# above) normalises each example over groups of channels and is independent of the batch, like LayerNorm.
# *Across GPUs*, each device sees only its slice of the batch; SyncBatchNorm computes the statistics over
# all devices at the cost of a communication step. *When fine-tuning* with small batches, the usual choice
# is to freeze BatchNorm: keep the pre-trained running statistics (eval mode for those layers) and, often,
# their scale and shift.
#
# **Explorer: batch size.** Run trains the three networks at one batch size. Try 2, 4, 16 and 256.

# %%
explore(norms.batch_explorer, run_button=True, batch_size=Slider(2, 256, 1, 8), steps=Slider(100, 1000, 100, 400))

# %% [markdown]
# ## Your turn
#
# **1. Write a causal mask.** Return a boolean $(T, T)$ tensor that is True where query $i$ may attend to key
# $j$. The checker uses it in the attention above and compares with PyTorch's `is_causal=True`.

# %%
def my_causal_mask(T):
    raise NotImplementedError  # your code: a (T, T) boolean tensor


cost.check_causal_mask(my_causal_mask);

# %% [markdown]
# **2. Write LayerNorm.** Normalise each example over its last dimension (mean and biased variance,
# $\epsilon = 10^{-5}$ inside the square root), then scale by `weight` and shift by `bias`. Compare with the
# BatchNorm above: which axis changes, and what disappears?

# %%
def my_layer_norm(x, weight, bias):
    raise NotImplementedError  # your code


norms.check_layer_norm(my_layer_norm);

# %% [markdown]
# ## Interview answers
# Generated from this run's numbers; each is about a minute spoken.

# %%
att_depth, gru_growth = long["attention depth"], long["GRU depth"] / short["GRU depth"]
display(Markdown(f"""**"Why did attention become dominant for sequence modelling?"** Each token reads from every other
token in one step, by content: a query is compared with all keys and the matching values are averaged. In a recall
task with {PAIRS} key–value pairs, one attention layer scored {recall_runs[f"attention, {PAIRS} pairs"].final():.2f}
while a GRU reached {gru_same_budget:.2f}: no better than a rule that ignores the keys and answers the most frequent
value ({key_blind:.2f}), and no better with four times the steps ({longer.final():.2f}) or width ({wide.final():.2f}).
Its problem is squeezing every pair into one state, not
distance: it carried one value across {DISTANCE} blank tokens ({distance_runs["GRU, lr 0.05"].final():.2f}) once its
learning rate was right. Training parallelises over positions: the attention layer's longest chain of dependent
operations was {att_depth} at both {short["length"]} and {long["length"]} tokens, while the GRU's grew {gru_growth:.1f}-fold,
because every step waits for the previous hidden state. The price is quadratic: the score matrix grew with slope
{memory_slopes["attention written out"]:.2f} in memory and {slopes["attention written out"]:.1f} in time here. Rule:
use fused kernels for memory, and for long contexts sparse or local attention, chunking, retrieval or caching."""))

# %%
display(Markdown(f"""**"CNNs vs transformers?"** A convolution assumes locality and translation equivariance; attention
assumes neither and learns relations from data. Scrambling the input order cost our CNN
{cnn_drop:.2f} accuracy and the MLP {abs(mlp_change):.3f}, and the CNN on {SMALL} examples beat an MLP on {LARGE}
by {acc[("CNN", SMALL, False)] - acc[("MLP", LARGE, False)]:.2f}: the prior is worth more than eight times the data.
On {SMALL} examples it also beat a patch transformer of similar size by {cnn_over_transformer:.2f}, and scrambling
cost that transformer {transformer_drop:.2f}: its patches are a locality prior too.
Transformers overtake CNNs only with far more data or pre-training (ViT needed 14M–300M images). Rule: little data,
tight latency, grid-like signals: CNN; large data, pre-trained weights, or non-grid tokens: transformer, and compare
FLOPs of the actual configurations."""))

# %%
plain_deep, residual_deep = depth_runs[(deep, False)].at(DEPTH_STEPS), depth_runs[(deep, True)].final()
display(Markdown(f"""**"What are residual connections?"** A block computes $h + f(h)$, so it learns a change, and the
identity path gives every layer a direct route to the loss. Without it, depth hurt training itself: our plain
network's training loss went from {depth_runs[(shallow, False)].final():.2f} at depth {shallow} to
{plain_deep:.2f} at depth {deep} (chance is 2.30), while the residual one went from
{depth_runs[(shallow, True)].final():.2f} to {residual_deep:.2f}; four times the steps left the deep plain one at
{depth_runs[(deep, False)].final():.2f}, so it is not just slow. At initialisation the plain stack's first layer got a
gradient {ratios[f"plain, depth {deep}"]:.0f} times the last layer's (a symptom of badly coupled layers), the residual stack's
{ratios[f"residual, depth {deep}"]:.1f} times. Rule: any network deeper than a handful of layers, and every
transformer sub-layer, sits on a residual stream, normalised before each block (pre-norm)."""))

# %%
bn_tiny, ln_tiny = test_acc[("batch", tiny)], test_acc[("layer", tiny)]
display(Markdown(f"""**"LayerNorm vs BatchNorm?"** BatchNorm standardises each feature over the batch, so an example's
output depends on its batch companions and inference needs running averages; LayerNorm standardises each example over
its own features. At batch size {tiny}, BatchNorm reached {bn_tiny:.2f} test accuracy, LayerNorm {ln_tiny:.2f} and no
normalization {test_acc[("none", tiny)]:.2f}. Left in training mode at inference, a BatchNorm network's
predictions depend on the other requests in the batch: at batch {usual} it changed
{1 - usual_bn.train_eval_agreement:.0%} of them, which cost little on random batches
({usual_bn.train_mode_acc:.2f} against {usual_bn.test_acc:.2f}) but a lot on batches sorted by class
({usual_bn.sorted_train_mode_acc:.2f}), and a batch of one raises an error. Rule: BatchNorm for CNNs with large i.i.d.
batches (and remember `model.eval()`); LayerNorm (or RMSNorm) for transformers, small or variable batches, and
sequences."""))

# %% [markdown]
# ## Traps
#
# - **"RNNs can't handle long-range dependencies."** Section 2: at a suitable learning rate the GRU carried a
#   value across 64 blank tokens perfectly; at a ten times smaller one it looked hopeless. Its real limits are
#   sequential computation and a fixed-size state that must hold every item it might be asked about.
# - **"FlashAttention makes attention linear."** Section 1: the fused kernel's memory grew linearly, but its
#   time still grew faster than linearly. It removes the $T\times T$ matrix from memory, not the $T^2$ work.
# - **"CNNs are obsolete."** Section 3: with 400 examples the CNN beat an MLP trained on eight times as much data,
#   and at full scale it beat the patch transformer at both data sizes; transformers win with scale and
#   pre-training, which a project may not have.
# - **"Deeper is better."** Section 4: without residual connections, going from 8 to 32 blocks made the network fit
#   its own training set *worse*, and four times the steps did not help. Depth helps only when optimisation can
#   use it.
# - **"BatchNorm and LayerNorm are interchangeable."** Section 5: they normalise over different axes; at batch size 2
#   BatchNorm did worse than no normalization at all, while LayerNorm is unaffected by the batch by construction.
# - **"Leaving train mode on at inference is harmless."** Section 5: BatchNorm in training mode normalises each
#   test batch by its own statistics, so a prediction depends on the other requests in the batch. On random
#   batches of 128 that happened to cost little accuracy; on class-sorted batches it cost a lot, at batch 2 it
#   changed most predictions, and a single request raises an error. Call `model.eval()` (it switches dropout
#   off too).
