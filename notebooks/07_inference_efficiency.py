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
# # 07 · Inference efficiency: quantization, distillation, pruning, batching and KV caching, measured
#
# A model is trained once but served millions of times, so for many deep-learning roles the cost of
# *inference* (latency, memory, money per request) matters as much as accuracy. Interviewers probe
# whether you know the levers, what each one costs, and whether you have measured them rather than
# repeating slogans like "just use a GPU".
#
# This notebook pulls every lever from the guide's table on small models, measures speed, size and
# accuracy in this very run, and checks each statement with a claim that can fail. The second half
# serves a small transformer decoder: the KV cache, prefill against decode, continuous batching and
# speculative decoding.
#
# **Interview questions answered here**
# 1. How would you reduce latency for a transformer model?
# 2. What is quantization? (per-channel scales, int4 against int8, activation outliers, PTQ against QAT)
# 3. Distillation vs pruning?
# 4. How do you batch requests without hurting user experience?
# 5. What is KV caching in autoregressive models? (and what it costs, and when it goes stale)
#
# **How to read the timings.** Absolute times depend on the machine and on whatever else runs on it.
# Timings run on one CPU thread. The variants being compared are called in interleaved rounds (a few
# calls of one, then of the next, and so on, many times), each call is timed by the CPU time of the
# thread (a busy machine takes turns away from the process but does not add to its CPU time), and each
# variant keeps its *fastest* call. Claims are only ever made about *ratios* measured in the same run,
# with thresholds that held on a machine shared with many other busy processes. Speed-ups of int8 and sparse
# kernels depend on the CPU's vector instructions: every timing cell prints what it ran on.

# %%
from helpers import setup

cfg = setup("07_inference_efficiency")

# %%
import numpy as np
import torch
from IPython.display import Markdown, display
from matplotlib.ticker import FuncFormatter, ScalarFormatter

from helpers.claims import claim
from helpers.config import pick
from helpers.data import digits
from helpers.experiments import nb07_inference_efficiency as nb07
from helpers.experiments import nb07_inference_efficiency_decoding as nb07_decoding
from helpers.models import count_parameters, mlp, serialized_size
from helpers.plotting import figure
from helpers.scratch import decode_costs, decoder, distillation, pruning, quantization, serving, speculative
from helpers.source import show_source
from helpers.tables import show
from helpers.timing import machine_note, time_fastest_calls
from helpers.train import fit, predict_logits
from helpers.widgets import Choice, Slider, explore

# %% [markdown]
# All sizes of the notebook live in the next cell: `quick` (tests) and `full` (self-study) differ
# only here.

# %%
TEACHER_WIDTH, TEACHER_EPOCHS = pick(quick=256, full=512), pick(quick=30, full=50)
STUDENT_WIDTH, STUDENT_EPOCHS, TEMPERATURE = 32, pick(quick=60, full=120), 20.0
FINETUNE_EPOCHS = 10
SPARSITIES = pick(quick=[0.5, 0.8, 0.9, 0.95], full=[0.5, 0.7, 0.8, 0.9, 0.95])
SERVING_SHAPE = dict(in_features=784, hidden=1024, out_features=10)
BATCH_SIZES = pick(quick=[1, 4, 16, 64, 256], full=[1, 2, 4, 8, 16, 32, 64, 128, 256])
TIMING_ROUNDS = pick(quick=6, full=12)
LOADS = pick(quick=[0.25, 0.9, 1.5, 2.5], full=[0.1, 0.25, 0.5, 0.75, 0.9, 1.2, 1.5, 2.0, 2.5, 3.0])
N_REQUESTS = pick(quick=2000, full=10000)
DECODER = dict(vocab=64, d_model=128, n_heads=4, n_layers=4, max_len=320)
DECODE_LENGTHS = pick(quick=[16, 64, 256], full=[16, 32, 64, 128, 192, 256])
DECODE_BATCHES, PROMPT_LENGTH, CONTEXT = pick(quick=[1, 4, 16], full=[1, 2, 4, 8, 16, 32]), 32, 64
LARGE_DECODER = dict(vocab=64, d_model=768, n_heads=12, n_layers=pick(quick=4, full=6), max_len=96)
TARGET = dict(vocab=32, d_model=64, n_heads=4, n_layers=3, max_len=160)
DRAFT = dict(vocab=32, d_model=32, n_heads=2, n_layers=1, max_len=160)
LANGUAGE_STEPS, N_SPECULATED, LOOKAHEAD = pick(quick=60, full=150), 48, 3
GENERATION_LOADS, OUTPUT_LENGTHS = pick(quick=[1.0, 2.0, 4.0], full=[0.5, 1.0, 2.0, 3.0, 4.0, 6.0]), (8, 64)

# %% [markdown]
# ## The models
#
# Each question is asked of a model that can answer it honestly:
#
# * **A trained classifier that is far bigger than its task** (the *teacher*): an MLP with two wide
#   hidden layers on scikit-learn's 8x8 digits.
# * **A compact classifier** with one hidden layer of 32 units, trained on the same labels. It reaches
#   nearly the teacher's accuracy with a small fraction of its weights, so the teacher is
#   oversized for this task. A compression lever that looks free on the teacher may only be spending
#   that spare capacity; asking the same question of the compact model, which has little to spare,
#   is the control. The compact model is also the "student trained alone" of the distillation section.
# * **A serving-size MLP** with shapes 784-1024-1024-10 (1.9 M weights). *Speed* depends on shapes,
#   not on the values of the weights, so timings use this model, big enough for the matrix products
#   (not Python overhead) to dominate.

# %%
data = digits(seed=cfg.seed)
teacher = mlp(data.n_features, data.n_classes, width=TEACHER_WIDTH, depth=2)
fit(teacher, data, epochs=TEACHER_EPOCHS, lr=1e-3, seed=cfg.seed)
compact = mlp(data.n_features, data.n_classes, width=STUDENT_WIDTH, depth=1).to(cfg.device)
distillation.train_student(compact, data.x_train, data.y_train, epochs=STUDENT_EPOCHS, seed=cfg.seed)
models = {"teacher": teacher.eval(), "compact": compact}
accuracy = {name: nb07.accuracy(model, data.x_test, data.y_test) for name, model in models.items()}
show([{"model": name, "weights": count_parameters(model), "test accuracy": accuracy[name]}
      for name, model in models.items()])

# %% [markdown]
# Timings run on the CPU (PyTorch's built-in int8 kernels exist only there) and on **one thread**: with
# several threads every parallel kernel waits for its slowest thread, so a busy neighbour process stalls
# them all and distorts ratios; one thread, timed by its own CPU time, measures the computation, not the
# scheduler.

# %%
TIMING_DEVICE = torch.device("cpu")
torch.set_num_threads(1)
serving_model = nb07.serving_mlp(**SERVING_SHAPE, seed=cfg.seed)
print(f"serving MLP: {count_parameters(serving_model):,} parameters;", machine_note(TIMING_DEVICE))

# %% [markdown]
# ## 1. Quantization: fewer bits per number
#
# **Idea.** Store each weight in 8 bits instead of 32 and multiply integers instead of floats: a 4x
# smaller model, less memory traffic, and integer units that do more per cycle. The price is rounding
# error.
#
# **Mechanism.** *Symmetric* quantization maps a float $w$ to an integer code with one scale $s$:
#
# $$s = \frac{\max |w|}{q_{\max}}, \qquad q = \operatorname{clip}\big(\operatorname{round}(w / s), -q_{\max},
# q_{\max}\big), \qquad \hat w = s\,q, \qquad |w - \hat w| \le \tfrac{s}{2},$$
#
# with $q_{\max} = 2^{b-1} - 1$ for $b$ bits (127 for int8, 7 for int4). *Per-tensor* uses one $s$ for a
# whole weight matrix; *per-channel* one $s_i$ per output row, so a row of small weights gets a fine grid
# instead of the coarse grid of the largest row. An int8 layer also quantizes each input row $x_b$ on the
# fly (*dynamic* activation quantization, scale $s^x_b$), multiplies the codes with **int32
# accumulation**, and rescales once:
#
# $$y_{bi} \approx s^x_b\, s^w_i \sum_j q^x_{bj}\, q^w_{ij} + \text{bias}_i .$$

# %%
show_source(quantization.quantize_symmetric, quantization.Int8Linear)

# %% [markdown]
# `torch._int_mm` multiplies int8 matrices into int32; `int8_matmul` pads the shapes where CUDA's
# kernel requires it, so the same layer runs on CPU and GPU.
#
# ### Per-tensor vs per-channel, from 8 bits down to 2
# We round each classifier's weights to $b$ bits with either granularity (*weight-only*: the model
# still computes in float, which isolates the cost of rounding) and measure how far the weights move
# (root-mean-square error relative to the weights' own RMS) and the test accuracy.

# %%
BITS = list(range(2, 9))
rounding = {name: nb07.rounding_sweep(model, data.x_test, data.y_test, BITS) for name, model in models.items()}
for name, sweep in rounding.items():
    for granularity, row in sweep.items():
        broken = [b for b, a in zip(BITS, row["accuracy"]) if a < accuracy[name] - 0.05]
        print(f"{name:8s} {granularity:12s} loses more than 0.05 accuracy at: {broken or 'no width tried'} bits")

# %%
fig, (ax_err, ax_acc) = figure("Rounding the weights", "bits per weight", "relative RMS weight error", ncols=2)
for (name, sweep), color in zip(rounding.items(), ("#0072B2", "#D55E00")):
    for granularity, style in (("per_tensor", "s--"), ("per_channel", "o-")):
        label = f"{name}, {granularity.replace('_', '-')}"
        ax_err.plot(BITS, sweep[granularity]["error"], style, color=color, label=label)
        ax_acc.plot(BITS, sweep[granularity]["accuracy"], style, color=color, label=label)
ax_err.set_yscale("log", base=2)
ax_acc.set_ylabel("test accuracy (fraction)")
ax_acc.set_ylim(0, 1.02)
ax_acc.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8);

# %% [markdown]
# Every bit removed roughly doubles the error (a straight line of slope one on the base-2 axis), and
# per-channel scales sit below per-tensor at every width. Accuracy hardly moves until the last few bits:
# the printed lines above say where each model first loses more than 0.05 of accuracy. Be clear about what
# this does *not* test: 8x8 digits is an easy task, and even the compact model loses little at 4 bits, so
# "8 bits costs nothing" here is a floor, not a guarantee. Large language models are where low-bit
# rounding bites (int4 there needs group-wise scales and calibration, below), and the only test that
# counts is your model on your data.
#
# Three claims. Per-channel scales cut the teacher's 8-bit weight mean-squared error by a clear factor
# (1.6x to 4.6x across seeds 0-4 at both scales; modest because the teacher's rows have similar ranges,
# while layers with uneven rows gain far more). Going from 8 to 4 bits multiplies the RMS weight error by
# about $127 / 7 \approx 18$, the ratio of the grid steps $\max|w| / q_{\max}$ (measured 17.9 to 18.6;
# we check it lies between 14 and 23). And rounding to 8 bits per channel costs neither model more than
# 0.01 of test accuracy, including the compact one with no spare capacity (measured 0 to 0.003).

# %%
mse = {g: nb07.weight_error(teacher, 8, g) ** 2 for g in quantization.GRANULARITIES}
claim("per-channel int8 scales give the teacher a lower weight MSE than per-tensor (ratio per-tensor / "
      "per-channel)", mse["per_tensor"] / mse["per_channel"], ">", 1.3)
int4_over_int8 = {name: s["per_channel"]["error"][BITS.index(4)] / s["per_channel"]["error"][BITS.index(8)]
                  for name, s in rounding.items()}
claim("4-bit weights have about 127/7 times the RMS error of 8-bit weights (ratio, compact model, per-channel)",
      int4_over_int8["compact"], "between", (14, 23))
claim("8-bit per-channel rounding costs the compact model less than 0.01 test accuracy",
      accuracy["compact"] - rounding["compact"]["per_channel"]["accuracy"][-1], "<", 0.01);

# %% [markdown]
# ### int4 against int8, weight-only
# Large language models are often served with **4-bit weights and 16-bit activations** (GPTQ, Frantar et
# al. 2023; AWQ, Lin et al. 2024). Generating a token reads every weight once, so at small batch the
# time is set by *bytes of weights read*, and int4 reads half the bytes of int8. Its error, as measured
# above, is about 18 times larger, which is why int4 schemes use *group-wise* scales (one scale per 64-128
# weights within a row, finer than per-channel) and calibrate the rounding on sample data. Here is the
# cost of each width on the two classifiers:

# %%
show([{"model": name, "bits": bits, "relative RMS weight error": sweep["per_channel"]["error"][BITS.index(bits)],
       "test accuracy change": sweep["per_channel"]["accuracy"][BITS.index(bits)] - accuracy[name]}
      for name, sweep in rounding.items() for bits in (8, 4)])

# %% [markdown]
# ### Activation outliers: why LLM.int8() and SmoothQuant exist
# Weights are easy to quantize; activations are harder. Dettmers et al. (2022) found that transformers
# beyond a few billion parameters develop a handful of activation *channels* whose values are tens of
# times larger than the rest, in every token. Per-token int8 quantization sizes each row's grid for its
# largest value, so one outlier channel makes the step coarse for all the ordinary channels.
# Per-channel activation scales would fix it but cannot be pulled out of the sum $\sum_j x_j w_{ij}$;
# **LLM.int8()** instead keeps the outlier channels in 16-bit, and **SmoothQuant** (Xiao et al. 2023)
# divides each activation channel by $s_j = \max|x_j|^{\alpha} / \max|W_{:j}|^{1-\alpha}$ and multiplies
# the matching weight column by $s_j$: the product is unchanged, but the outliers move into the
# weights, where per-channel scales absorb them.
#
# We plant the effect: Gaussian activations (256 tokens, 64 channels) with 2 channels scaled 50x, through
# an int8 layer (per-token activations, per-channel weights), and compare the output with float32.

# %%
show_source(quantization.smooth_scales)
outliers = nb07.outlier_errors(seed=cfg.seed)
show([{"activations": name, **{f"relative error, {k}": v for k, v in errors.items()}}
      for name, errors in outliers.items()])

# %% [markdown]
# The outliers themselves are rounded well (they set the grid); the damage is to the other 62 channels,
# whose values now fall between a handful of grid points, and to everything downstream that reads them.
# The layer's relative output error grows less, because the output is dominated by the outlier channels.
# After smoothing, both errors fall, and the product the layer approximates is unchanged.
#
# Claims: the two outlier channels multiply the rounding error of the ordinary channels by more than
# 10 (against the same activations without outliers; measured 23 to 25), and SmoothQuant's rescaling
# cuts it by more than 3 (measured 6.5 to 7.8). This toy plants the outliers; the real ones appear only
# in large trained models.

# %%
ordinary = {name: errors["ordinary channels"] for name, errors in outliers.items()}
claim("two outlier activation channels multiply the int8 rounding error of the other channels (ratio)",
      ordinary["outliers"] / ordinary["no outliers"], ">", 10)
claim("SmoothQuant's rescaling cuts that error (outliers / smoothed)",
      ordinary["outliers"] / ordinary["outliers, smoothed"], ">", 3);

# %% [markdown]
# ### Size and speed of int8: our layer and PyTorch's, per tensor and per channel
# The library route, `torch.ao.quantization.quantize_dynamic`, does the same job with fused, vectorised
# kernels (fbgemm/oneDNN). Its default configuration uses **per-tensor** weight scales; per-channel
# needs `per_channel_dynamic_qconfig`, so we time both. On PyTorch 2.13 the namespace warns that it is
# deprecated in favour of the separate torchao library; the eager API still works and is still the
# fastest eager int8 path on these CPUs, so the wrapper silences exactly those warnings inside the call.

# %%
show_source(quantization.library_quantize_dynamic)

# %%
teacher_int8 = nb07.int8_versions(teacher)
int8_accuracy = {name: nb07.accuracy(model, data.x_test, data.y_test) for name, model in teacher_int8.items()}
serving_int8 = nb07.int8_versions(serving_model)
sizes = {name: serialized_size(model) for name, model in serving_int8.items()}
int8_times = nb07.time_versions(serving_int8, (1, 256), SERVING_SHAPE["in_features"], TIMING_ROUNDS, cfg.seed)
print(machine_note(TIMING_DEVICE), "|", nb07.int8_instructions())
show([{"version": name, "teacher test accuracy": int8_accuracy[name], "size (MiB)": sizes[name] / 2**20,
       "speed-up at batch 1": int8_times[1]["float32"] / int8_times[1][name],
       "speed-up at batch 256": int8_times[256]["float32"] / int8_times[256][name]} for name in serving_int8])

# %% [markdown]
# The size falls by almost exactly 4x (8 bits instead of 32, plus a few float scales and the biases).
# Speed is subtler. At batch 256 the matrix products dominate and the library's int8 wins clearly,
# per tensor or per channel alike (per-channel scales cost nothing at run time: they are applied once per
# output). At batch 1 our from-scratch layer gains little or even loses: quantizing the activations, the
# int32 product and the rescaling are separate small operations whose fixed costs outweigh the
# arithmetic saved on a single row, which is what fused kernels avoid. The library's int8 speed-up
# depends strongly on the CPU's int8 dot-product instructions (VNNI, AMX), so the ranges below are facts
# about the machines we used (AMD EPYC, AVX-512, VNNI), not constants; the line above the table names this
# run's CPU and its int8 instructions.
#
# Claims: the per-channel library model is over 3.5x smaller than float32 (3.91x); per-channel int8
# costs the teacher less than 0.01 test accuracy, library and from-scratch (measured -0.003 to 0.006); at
# batch 256 the per-channel library model is faster than float32 in the same run (3.9x to 4.3x across
# seeds 0-4 at both scales on an AMD EPYC with AVX512; the threshold 1.3 is far below what any of our
# machines measured); and our unfused layer's speed-up at batch 256 is well above its speed-up at batch
# 1 (ratio 2.6 to 3.8).

# %%
claim("library int8 (per channel) is smaller than float32 (size ratio)",
      sizes["float32"] / sizes["int8, library, per channel"], ">", 3.5)
for name in ("int8, library, per channel", "int8, from scratch"):
    claim(f"{name} costs the teacher less than 0.01 test accuracy", int8_accuracy["float32"] - int8_accuracy[name],
          "<", 0.01)
speedup = {b: {name: t["float32"] / t[name] for name, t in [(n, int8_times[b]) for n in serving_int8]}
           for b in (1, 256)}
claim("library int8 (per channel) is faster than float32 at batch 256 (speed-up)",
      speedup[256]["int8, library, per channel"], ">", 1.3)
claim("from-scratch int8 gains far more at batch 256 than at batch 1 (speed-up at 256 / speed-up at 1)",
      speedup[256]["int8, from scratch"] / speedup[1]["int8, from scratch"], ">", 1.4);

# %% [markdown]
# ### Before int8: half precision
# The first precision lever is not int8 but **16-bit floats**: fp16 or bf16 (bf16 keeps float32's exponent
# range, so it rarely overflows) halve memory and bandwidth with almost no accuracy risk and run on every
# modern accelerator's tensor cores; it is the default for serving on GPUs. **fp8** (E4M3/E5M2, on recent
# GPUs) halves it again with per-tensor scales, much like int8. Integer quantization comes after.
#
# **Dynamic or static activation scales?** Our int8 layer computes each activation row's scale on the fly
# (*dynamic*): no calibration, but a max-reduction per call. *Static* quantization fixes activation scales
# ahead of time from a few hundred **calibration** inputs, saving that work and allowing fully integer
# pipelines, at the risk of clipping inputs unlike the calibration set.
#
# ### Post-training quantization or quantization-aware training?
# Everything above is **post-training quantization (PTQ)**: take trained weights, pick scales (from the
# weights, and for static activation scales from a few hundred calibration inputs), round. It costs
# minutes and no labels, and at 8 bits it is usually enough. **Quantization-aware training (QAT)**
# inserts the rounding into the forward pass during (re)training, with the *straight-through estimator*
# (gradients pass through the rounding as if it were the identity), so the weights learn to sit where
# rounding hurts least. It costs a training run and the training pipeline; it pays at 4 bits and below,
# or when PTQ's accuracy loss is too large. Decision rule: PTQ first, measure, QAT only if the loss
# matters.
#
# **Practical consequence.** Post-training int8 with per-channel weight scales is the first lever to
# pull: no retraining, 4x less memory, and a real speed-up wherever a fused int8 kernel exists (large
# batches on this CPU; int8/fp8 tensor cores on GPUs). Check accuracy on your own data and speed on your
# own hardware and batch size: a quantized model is not automatically faster.
#
# ### Explorer: bits and granularity
# Move the bit width and the granularity: the histogram shows every weight's rounding error, the table
# the compact model's test accuracy.

# %%
explore(lambda bits, granularity: nb07.quantization_explorer(compact, data.x_test, data.y_test, bits, granularity),
        bits=Slider(2, 8, 1, 4), granularity=Choice(list(quantization.GRANULARITIES), "per_tensor"))

# %% [markdown]
# ## 2. Distillation: a small student taught by soft targets
#
# **Idea** (Hinton, Vinyals and Dean, 2015). A big *teacher* knows more than its arg-max: its full
# output distribution says that this "7" looks a bit like a "1" and not at all like a "6". Train a small
# *student* to match those probabilities and it learns this similarity structure ("dark knowledge"),
# which one-hot labels never show it.
#
# **Mechanism.** Soften both models' softmax with a temperature $T > 1$ and match them with the KL
# divergence, mixed with the ordinary loss on the hard labels:
#
# $$\mathcal{L} = \alpha\, T^2\, \mathrm{KL}\!\left(\operatorname{softmax}(z_t / T)\,\middle\|\,
# \operatorname{softmax}(z_s / T)\right) + (1 - \alpha)\, \mathrm{CE}(z_s, y).$$
#
# Why $T^2$: the gradient of the soft term with respect to the student logits is
# $\frac{1}{T}(p_s^T - p_t^T)$, and for large $T$ the probability differences themselves shrink like
# $1/T$, so the gradient scales like $1/T^2$. Multiplying by $T^2$ keeps the soft term's weight
# comparable to the hard term's whatever temperature you pick.

# %%
show_source(distillation.distillation_loss)

# %% [markdown]
# What the soft targets look like: the teacher's output for one test "8" at $T = 1$, $4$ and $20$.
# At $T = 1$ nearly all the mass is on one class and the others sit orders of magnitude below, too small
# to move a loss. Raising $T$ lifts them into view; at $T = 20$ the distribution is nearly flat, but the
# teacher's *ranking* of the wrong classes (which digits this one resembles) is what the student learns.

# %%
example = int((data.y_test == 8).nonzero()[0])
teacher_test_logits = predict_logits(teacher, data.x_test).cpu()
fig, ax = figure("Teacher's output for one test '8'", "class", "probability (log scale)")
for t in (1.0, 4.0, TEMPERATURE):
    ax.plot(range(10), torch.softmax(teacher_test_logits[example] / t, -1), "o-", label=f"T = {t:g}")
ax.set_yscale("log")
ax.set_xticks(range(10))
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0));

# %% [markdown]
# ### Students trained alone vs distilled
# The student has the compact model's shape (one hidden layer of 32 units); the compact model *is* the
# student trained alone on hard labels. A second copy learns from the teacher's soft targets
# ($T = 20$, $\alpha = 0.9$).

# %%
teacher_train_logits = predict_logits(teacher, data.x_train)
student = mlp(data.n_features, data.n_classes, width=STUDENT_WIDTH, depth=1).to(cfg.device)
distillation.train_student(student, data.x_train, data.y_train, teacher_train_logits, TEMPERATURE, 0.9,
                           epochs=STUDENT_EPOCHS, seed=cfg.seed)
accuracy["distilled"] = nb07.accuracy(student, data.x_test, data.y_test)
print(f"weights: teacher {count_parameters(teacher):,}, student {count_parameters(student):,} | test accuracy: "
      f"teacher {accuracy['teacher']:.3f}, student alone {accuracy['compact']:.3f}, "
      f"distilled {accuracy['distilled']:.3f}")

# %% [markdown]
# On a data set this easy, with about a thousand training images, a student trained alone already gets
# most of the way, and across seeds the distilled student was sometimes better and sometimes worse
# (across seeds 0-4 at both scales: trained alone 0.961-0.981, distilled 0.961-0.981, the difference
# between them from -0.012 to +0.012, a few test images either way). So we claim
# nothing about which wins overall: that needs larger data, a bigger capacity gap and tuning of $T$ and
# $\alpha$. The experiment that shows distillation's mechanism unambiguously is the next one.
#
# ### Dark knowledge: learning a class the student never sees
# Hinton et al. removed every "3" from the transfer set; the distilled student still recognised most
# test 3s, learnt purely from how much "3-ness" the teacher saw in other digits. We repeat it: the
# students are trained on the training set *without any 3*; the distilled one uses only the teacher's
# soft targets ($\alpha = 1$). The obvious other reading is that *any* probability mass on class 3 would
# do, since it at least tells the student the class exists. The control is a third student trained on the
# teacher's soft targets with the class-3 column **flattened**: every image gets the same probability of
# "3" (the teacher's average), the other classes keep their ratios. Same mass on class 3, no information
# about *which* images look like a 3.

# %%
HELD_OUT = 3
keep = data.y_train != HELD_OUT
soft_targets = {"distilled": teacher_train_logits[keep],
                "distilled, 3 column flattened": nb07.flatten_class(teacher_train_logits[keep], TEMPERATURE, HELD_OUT)}
blind = {name: mlp(data.n_features, data.n_classes, width=STUDENT_WIDTH, depth=1).to(cfg.device)
         for name in ("hard labels", *soft_targets)}
distillation.train_student(blind["hard labels"], data.x_train[keep], data.y_train[keep], epochs=STUDENT_EPOCHS,
                           seed=cfg.seed)
for name, logits in soft_targets.items():
    distillation.train_student(blind[name], data.x_train[keep], data.y_train[keep], logits, TEMPERATURE, 1.0,
                               epochs=STUDENT_EPOCHS, seed=cfg.seed)
recall = {name: [nb07.class_recall(model, data.x_test, data.y_test, c) for c in range(10)]
          for name, model in blind.items()}
print("recall on test 3s:", {name: round(values[HELD_OUT], 2) for name, values in recall.items()})

# %%
fig, ax = figure("Students trained without a single '3'", "class", "recall on test set (fraction)")
for i, (name, values) in enumerate(recall.items()):
    ax.bar(np.arange(10) + (i - 1) * 0.28, values, 0.28, label=name)
ax.axvspan(HELD_OUT - 0.5, HELD_OUT + 0.5, color="grey", alpha=0.15, label="class never seen")
ax.set_xticks(range(10))
ax.set_ylim(0, 1.05)
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0));

# %% [markdown]
# The hard-label student can never output a class it has only seen as a negative; the distilled student
# recovers a large share of the 3s from soft targets alone. The flattened control, with just as much mass
# on "3", recovers almost none: what transfers is the teacher's *per-image* judgement of how 3-like each
# digit is, not the mere presence of the class. Claims: the hard-label student recalls at most 5% of test
# 3s (measured 0 at every seed); the distilled one at least 40% (measured 0.76 to 0.97 across seeds 0-4 at
# both scales); and the distilled student recalls at least 0.3 more of them than the flattened control
# (measured 0.76 to 0.97: the flattened control recalled no 3 at any seed). Hinton et al. also shifted the bias of the missing class to recover still more;
# we leave that as a variation.

# %%
claim("hard-label student trained without 3s recalls almost no test 3s", recall["hard labels"][HELD_OUT], "<=", 0.05)
claim("distilled student trained without 3s recalls many test 3s (dark knowledge)",
      recall["distilled"][HELD_OUT], ">=", 0.4)
claim("the teacher's per-image class-3 probabilities, not the mass on class 3, carry it (distilled - flattened "
      "recall)", recall["distilled"][HELD_OUT] - recall["distilled, 3 column flattened"][HELD_OUT], ">=", 0.3);

# %% [markdown]
# **Practical consequence.** Distillation buys a *smaller architecture* (fewer layers, narrower, so faster
# on any hardware) at the cost of a second training run and a dependence on the teacher: the student
# inherits the teacher's mistakes and biases along with its knowledge. For language models the common form
# is **sequence-level distillation** (Kim and Rush, 2016): the teacher *generates* outputs and the student
# is trained on them as ordinary targets, which needs no access to the teacher's logits.
#
# ## 3. Pruning: removing weights, and when it speeds anything up
#
# **Idea.** Many trained weights are close to zero; set the smallest ones to exactly zero and the
# network barely notices, especially after a little fine-tuning lets the others compensate.
#
# **Mechanism.** *Global magnitude pruning* ranks all weights of all layers together by $|w|$ and zeros the
# smallest fraction $s$ (the sparsity). `torch.nn.utils.prune` stores a 0/1 mask beside each weight, so
# fine-tuning cannot revive a pruned weight. We ask the question of both classifiers, with the same
# sparsities and the same fine-tuning budget (10 epochs).

# %%
show_source(pruning.global_magnitude_prune)
pruning_curves = {name: nb07.pruning_sweep(model, data, SPARSITIES, FINETUNE_EPOCHS, lr=1e-3, seed=cfg.seed)
                  for name, model in models.items()}

# %%
fig, ax = figure("Global magnitude pruning", "sparsity (fraction of weights zeroed)", "test accuracy change")
for (name, curves), color in zip(pruning_curves.items(), ("#0072B2", "#D55E00")):
    for key, style in (("no fine-tuning", "s--"), ("fine-tuned", "o-")):
        ax.plot(SPARSITIES, np.array(curves[key]) - accuracy[name], style, color=color, label=f"{name}, {key}")
ax.axhline(0, color="black", lw=1)
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8);

# %% [markdown]
# The oversized teacher gives up 90% of its weights for almost nothing once fine-tuned; the compact model,
# pruned to the same sparsity, loses a large share of its accuracy even after the same fine-tuning. The
# difference is spare capacity: 10% of the teacher's weights is still several times what the task needs,
# 10% of the compact model's is not. "Pruning is free" is a statement about over-parameterized models.
#
# Claims, at 90% sparsity: the fine-tuned teacher is within 0.02 of dense (measured -0.011 to 0.011
# across seeds 0-4 at both scales; one test image is 0.003 of accuracy here), and the compact model's
# drop after the same pruning and fine-tuning exceeds the teacher's by more than 0.05 (measured 0.19 to
# 0.38).

# %%
at90 = SPARSITIES.index(0.9)
pruning_drop = {name: accuracy[name] - curves["fine-tuned"][at90] for name, curves in pruning_curves.items()}
claim("90% pruned + fine-tuned teacher is within 0.02 of dense (accuracy drop)", pruning_drop["teacher"], "<", 0.02)
claim("the same pruning costs the compact model more than the oversized teacher (difference of drops)",
      pruning_drop["compact"] - pruning_drop["teacher"], ">", 0.05);

# %% [markdown]
# ### Does 90% sparsity make it 10x faster?
# No, not by itself. Zeros stored in a dense matrix are still multiplied. We time four versions of the
# serving MLP at batch 256:
#
# * **dense**: the original;
# * **masked dense**: 90% of weights zeroed, still stored densely (what `torch.nn.utils.prune` gives you);
# * **torch.sparse (CSR)**: the same zeros dropped from storage, multiplied by a sparse kernel;
# * **structured**: whole hidden neurons removed (the smallest incoming-weight norms), so each layer is
#   a genuinely smaller dense matrix, with as many neurons kept as leave the same 10% of the weights.

# %%
show_source(pruning.prune_neurons)

# %%
pruned_serving = nb07.pruned_versions(serving_model, density=0.1)
x256 = torch.randn(256, SERVING_SHAPE["in_features"])
with torch.no_grad():
    prune_times = time_fastest_calls({n: (lambda m=m: m(x256)) for n, m in pruned_serving.items()}, TIMING_ROUNDS)
prune_speedup = {name: prune_times["dense"] / t for name, t in prune_times.items()}
print(machine_note(TIMING_DEVICE), f"| masked model: {pruning.weight_sparsity(pruned_serving['masked dense']):.1%} "
      "of weights are zero | structured layers:",
      [tuple(m.weight.shape) for m in pruning.linear_layers(pruned_serving["structured"])])

# %%
fig, ax = figure("90% of weights removed: speed-up at batch 256", "version", "speed-up over dense (x)")
pruned_names = [name for name in prune_speedup if name != "dense"]
ax.bar([name.replace(" ", "\n") for name in pruned_names], [prune_speedup[name] for name in pruned_names],
       color=["#0072B2", "#D55E00", "#009E73"])
ax.axhline(10, color="black", ls=":", label="ideal for 10% of the weights")
ax.axhline(1, color="black", lw=1, label="dense (reference)")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0));

# %% [markdown]
# The masked dense network does the same work as the dense one. The sparse kernel skips the zeros but
# pays for irregular memory access and index bookkeeping, so it recovers only part of the ideal 10x (on
# GPUs, unstructured sparsity at this level is usually *slower* than dense). Structured pruning gives a
# plain smaller matrix that every kernel runs fast. That is the guide's "sparse speedups depend on
# hardware": only structured sparsity, or patterns the hardware supports (such as NVIDIA's 2:4), turn
# zeros into time.
#
# Claims (ratios in this run; the ranges are from seeds 0-4 at both scales on the CPU named above):
# masked dense gets nowhere near the ideal 10x (below 2; measured 0.97 to 1.03); the sparse kernel
# achieves less than half the ideal (1.8x to 1.9x); structured pruning with the same weight budget is more
# than 2.5x faster than dense (9.2x to 9.9x).

# %%
claim("masked dense (90% zeros) gets nowhere near the ideal 10x (speed-up over dense)", prune_speedup["masked dense"],
      "<", 2.0)
claim("torch.sparse at 90% sparsity gets less than half the ideal 10x speed-up", prune_speedup["torch.sparse"],
      "<", 5.0)
claim("structured pruning (same 10% of weights) is much faster than dense (speed-up)", prune_speedup["structured"],
      ">", 2.5);

# %% [markdown]
# Structured pruning is a coarser cut, so it needs fine-tuning too. On the teacher, at the same 10%
# weight budget:

# %%
teacher_structured = pruning.prune_neurons(teacher, pruning.matched_keep_fraction(teacher, 0.1))
accuracy_structured = {"before fine-tuning": nb07.accuracy(teacher_structured, data.x_test, data.y_test)}
fit(teacher_structured, data, epochs=FINETUNE_EPOCHS, lr=1e-3, seed=cfg.seed)
accuracy_structured["after fine-tuning"] = nb07.accuracy(teacher_structured, data.x_test, data.y_test)
print(f"layers {[tuple(m.weight.shape) for m in pruning.linear_layers(teacher_structured)]}: test accuracy "
      f"{accuracy_structured['before fine-tuning']:.3f} before and {accuracy_structured['after fine-tuning']:.3f} "
      f"after fine-tuning (dense {accuracy['teacher']:.3f})")

# %% [markdown]
# **Practical consequence.** Unstructured pruning shrinks a *compressed* checkpoint but not latency on
# ordinary hardware. If you need speed, prune structure (neurons, heads, layers) and fine-tune, or
# distill into a smaller dense model: the same end, reached by training instead of cutting. And ask
# first how much spare capacity the model has.
#
# ## 4. Batching requests: throughput against latency
#
# **Idea.** One forward pass over 64 requests costs far less than 64 passes over one: the weights are
# read from memory once and the arithmetic units stay busy. So batching raises the *capacity* of a
# server (requests per second it can sustain). But a request that waits for others to fill a batch is
# answered later.
#
# **Measurement.** Time one forward pass of the serving MLP at each batch size.

# %%
batch_seconds = nb07.batch_table(serving_model, BATCH_SIZES, SERVING_SHAPE["in_features"], TIMING_ROUNDS, cfg.seed)
throughput = {b: b / t for b, t in batch_seconds.items()}
print(machine_note(TIMING_DEVICE))
show([{"batch": b, "ms per batch": t * 1e3, "µs per request": t / b * 1e6, "requests/s": throughput[b]}
      for b, t in batch_seconds.items()])

# %%
fig, (ax_lat, ax_thr) = figure("One forward pass of the serving MLP", "batch size (log scale)",
                               "time per batch (ms, log scale)", ncols=2)
ax_lat.loglog(BATCH_SIZES, [batch_seconds[b] * 1e3 for b in BATCH_SIZES], "o-", base=2, label="measured")
ax_lat.loglog(BATCH_SIZES, [batch_seconds[1] * b * 1e3 for b in BATCH_SIZES], ":", color="black", base=2,
              label="slope 1: no gain from batching")
ax_thr.semilogx(BATCH_SIZES, [throughput[b] for b in BATCH_SIZES], "o-", color="#D55E00", base=2)
ax_thr.set_ylabel("throughput (requests/s)")
ax_thr.set_ylim(0, None)
for axis in (ax_lat.xaxis, ax_lat.yaxis, ax_thr.xaxis):
    axis.set_major_formatter(ScalarFormatter())
ax_lat.legend(loc="upper left", fontsize=8);

# %% [markdown]
# On log-log axes a cost proportional to the batch is a line of slope one (dotted). The measured curve
# starts flatter, so each extra request in a batch is cheap and throughput climbs, then bends to slope
# one once the arithmetic units are saturated, and throughput flattens. The server's sustainable
# **capacity gain** is the best throughput over the throughput at batch 1. The claim: it exceeds 1.5x
# (measured 4.0x to 6.0x across seeds 0-4 at both scales; on a GPU it is far larger, because one request
# uses a tiny part of the chip).

# %%
best_batch = max(throughput, key=throughput.get)
capacity_gain = throughput[best_batch] / throughput[1]
claim("batching raises the capacity a server can sustain (best throughput / throughput at batch 1)",
      capacity_gain, ">", 1.5);

# %% [markdown]
# ### A simulated request stream: three servers
# Requests arrive at random (a Poisson process). Three servers, each with one worker:
#
# * **one at a time**: serve requests in arrival order, one forward pass each;
# * **batching, no wait**: when the worker frees up, take every request that is waiting (up to
#   the batch size with the best throughput above: larger batches would only take longer) as one batch;
# * **batching with a wait**: like the previous one, but a batch closes only when it is full or the oldest
#   request has waited `max_wait` (here two single-request service times).
#
# Rather than sleeping, the simulator computes each batch's finishing time from the latencies *measured
# above* (interpolated between batch sizes), so thousands of requests take milliseconds and the result
# is exact for this latency table. The arrival rate is given as the *load*: load 1 means requests arrive
# exactly as fast as the one-at-a-time server can serve them. Two different ratios describe a server:
#
# * **load / peak capacity**: the arrival rate over the most the server could ever sustain (its throughput
#   at its best batch size). When it reaches 1 the server is **unstable**: its queue grows without bound
#   and its latency percentiles only grow with the length of the simulated stream, so we mark such rows
#   instead of quoting them. Below 1 it does *not* mean spare room: a batching server that forms small
#   batches runs below its peak throughput.
# * **busy fraction**: the share of time the worker is actually computing. This is what a capacity planner
#   watches (it says how many workers a stream needs); near 1 there is no headroom left.
#
# Besides the percentiles we count a bounded measure, the share of requests answered within a latency
# target fixed before the experiment: three single-request service times here (a product sets its own).

# %%
show_source(serving.simulate_serving)

# %%
max_wait = 2 * batch_seconds[1]
serving_rows = nb07.serving_sweep(batch_seconds, LOADS, best_batch, max_wait, N_REQUESTS, seed=cfg.seed)
target = nb07.TARGET_SERVICE_TIMES * batch_seconds[1]
print(f"one request alone: {batch_seconds[1] * 1e3:.3f} ms; latency target {target * 1e3:.2f} ms; "
      f"wait {max_wait * 1e3:.3f} ms; batching capacity {capacity_gain:.2f}x one at a time")
show([{key: value for key, value in row.items() if key != "stable"}
      | {"p50 (ms)": row["p50 (ms)"] if row["stable"] else "unstable",
         "p95 (ms)": row["p95 (ms)"] if row["stable"] else "unstable"} for row in serving_rows])

# %%
fig, (ax_p, ax_s) = figure("Serving a Poisson stream", "load (arrival rate / one-at-a-time capacity)",
                           "p95 latency (ms, log scale)", ncols=2)
for name, style in zip(nb07.SERVERS, ("s--", "o-", "^:")):
    rows = [r for r in serving_rows if r["server"] == name]
    stable = [r for r in rows if r["stable"]]
    ax_p.plot([r["load"] for r in stable], [r["p95 (ms)"] for r in stable], style, label=name)
    ax_s.plot([r["load"] for r in rows], [r["within target"] for r in rows], style, label=name)
for ax in (ax_p, ax_s):
    ax.axvspan(1, max(LOADS), color="grey", alpha=0.12, label="one at a time unstable")
ax_p.set_yscale("log", base=2)
ax_p.yaxis.set_major_formatter(ScalarFormatter())
ax_s.set_ylabel("share of requests within the target")
ax_s.set_ylim(0, 1.02)
ax_s.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8);

# %% [markdown]
# Read the light-load rows first, as arithmetic rather than as a finding. At load 0.25 the typical
# request finds the worker idle and nobody queued, so batching **without a wait** serves it alone, exactly
# like the one-at-a-time server: the two medians are equal by construction. With a wait, that lone
# request sits out the full `max_wait` first, so its median is $1 + \text{max\_wait} / \text{service time}
# = 3$ times one-at-a-time, again by construction. The latency cost that dynamic batching is known for is
# the cost of **the wait**, not of batching.
#
# Under heavy load the picture changes: above load 1 the one-at-a-time server is unstable, while both
# batching servers absorb the same stream by forming larger batches exactly when traffic is heavy, up to
# their capacity gain. What does the wait buy there? Fuller batches (the mean batch column), so fewer
# forward passes per request and a worker that is busy a smaller share of the time: capacity freed for
# other work, or fewer machines for the same stream. What does it cost? Latency: fewer requests meet the
# target. The wait pays only where an extra item in a batch is nearly free and passes are what cost money.
#
# Claims, at load 1.5 (one-at-a-time is unstable there): the wait lowers the worker's busy fraction
# (no wait over with wait, measured 1.1 to 1.4 across seeds 0-4 at both scales) and it lowers the share of
# requests answered within the target (measured drop 0.2 to 0.5).

# %%
row = {(r["load"], r["server"]): r for r in serving_rows}
heavy = {name: row[(1.5, name)] for name in ("batching, no wait", "batching with a wait")}
claim("at load 1.5, waiting to fill batches lowers the worker's busy fraction (no wait / with wait)",
      heavy["batching, no wait"]["busy fraction"] / heavy["batching with a wait"]["busy fraction"], ">", 1.05)
claim("at load 1.5, waiting to fill batches lowers the share of requests within the target (no wait - with wait)",
      heavy["batching, no wait"]["within target"] - heavy["batching with a wait"]["within target"], ">", 0.05);

# %% [markdown]
# ### Choosing the wait from a latency target
# The wait is a dial between two costs. We sweep it at load 1.5 from zero to four single-request service
# times: each pair of points is one simulated stream, with the worker's busy fraction (machines you pay for)
# and the share of requests that meet the target (users you keep).

# %%
waits = np.linspace(0, 4, 9)
wait_costs = nb07.wait_sweep(batch_seconds, 1.5, best_batch, waits * batch_seconds[1], N_REQUESTS, seed=cfg.seed)
fig, ax = figure("The wait at load 1.5: busy time against latency",
                 "max_wait (single-request service times)", "fraction")
ax.plot(waits, wait_costs["busy fraction"], "o-", label="worker busy fraction (cost in machines)")
ax.plot(waits, wait_costs["within target"], "s--", label="share of requests within the target")
ax.set_ylim(0, 1.02)
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8);

# %% [markdown]
# Busy time falls steadily as the wait grows, but the share of requests within the target collapses once
# the wait passes about one service time: the wait is added to almost every request, and a three-service-time
# target has no room for two of them. A product reads this curve from its target: the wait must fit inside
# the target minus the service time of the batch it forms, with room left for queueing.
#
# **Practical consequence.** Batch what is already waiting; add a wait only if fuller batches save real
# money and the latency budget has room. Cap the batch, let its size follow traffic, watch p95/p99 against
# the target rather than the mean (the tail is where queues show first), and plan capacity from the busy
# fraction: near 1 there is no headroom, whatever the peak capacity says.
#
# ### Explorer: load, largest batch, longest wait
# The lines are the cumulative share of requests answered within each latency (further left is
# better); the dotted line is the latency target.

# %%
explore(lambda load, max_batch, max_wait_ms: nb07.serving_explorer(batch_seconds, load, max_batch, max_wait_ms,
                                                                   2000, cfg.seed),
        load=Slider(0.1, 4.0, 0.1, 1.5, label="load (× one-at-a-time capacity)"),
        max_batch=Slider(1, 256, 1, best_batch), max_wait_ms=Slider(0.0, 2.0, 0.05, 0.0))

# %% [markdown]
# ## 5. Serving a transformer decoder: the KV cache and what follows from it
#
# **Idea.** A decoder-only transformer writes one token at a time, and each new token attends to every
# earlier one. Without a cache, step $t$ re-runs the whole prefix of $t$ tokens through every layer,
# recomputing keys and values that have not changed. A **KV cache** stores each layer's keys and values
# and computes them only for the newest token.
#
# **Counting.** To generate $n$ positions, causal attention needs, per layer and head, these
# query-key scores:
#
# $$\text{without cache: } \sum_{t=1}^{n} \frac{t(t+1)}{2} = \frac{n(n+1)(n+2)}{6}, \qquad
# \text{with cache: } \sum_{t=1}^{n} t = \frac{n(n+1)}{2},$$
#
# a ratio of $(n+2)/3$: 22 at $n = 64$, 86 at $n = 256$. But attention is not where most of the waste is:
# without a cache every step also re-runs the query/key/value, output and MLP projections on all $t$
# tokens, about $2 \times \text{parameters} \times t$ FLOPs per step instead of $2 \times
# \text{parameters}$. The price of the cache is memory: $2 \times \text{layers} \times
# \text{KV heads} \times \text{head\_dim} \times n \times \text{bytes}$ per sequence.
#
# Our decoder (`helpers.scratch.decoder`) writes attention out by hand, with an optional cache and
# grouped-query attention (several query heads sharing one key/value head):

# %%
show_source(decoder.CausalSelfAttention)

# %% [markdown]
# ### A tiny language model to serve
# Speed depends only on shapes, but exactness and speculative decoding are more telling on a model that
# has learnt something. We train a 3-layer decoder (the *target*) on a toy language: words of 2-5 tokens
# from a fixed lexicon, strung together at random, so inside a word the next token is certain and at a
# word boundary it is a guess. A 1-layer, narrower *draft* model learns the same language; it will serve
# in speculative decoding.

# %%
sequences = nb07_decoding.word_language(2000, 25, language=cfg.seed, seed=cfg.seed)
target, draft = decoder.tiny_decoder(seed=cfg.seed, **TARGET), decoder.tiny_decoder(seed=cfg.seed + 1, **DRAFT)
target_losses = nb07_decoding.train_language_model(target, sequences, LANGUAGE_STEPS, seed=cfg.seed)
draft_losses = nb07_decoding.train_language_model(draft, sequences, LANGUAGE_STEPS, seed=cfg.seed)
print(f"weights: target {count_parameters(target):,}, draft {count_parameters(draft):,} | final training loss "
      f"(nats per token): target {np.mean(target_losses[-10:]):.2f}, draft {np.mean(draft_losses[-10:]):.2f}")

# %% [markdown]
# ### Same tokens, with and without the cache
# The target generates greedily from held-out prompts, both ways. Caching is an exact rewrite of the
# computation, so the tokens must be identical and the logits equal up to floating-point rounding (the
# summation order differs).

# %%
prompts = nb07_decoding.word_language(4, 8, language=cfg.seed, seed=cfg.seed + 100)
with_cache = decoder.generate(target, prompts, N_SPECULATED, use_cache=True)
without_cache = decoder.generate(target, prompts, N_SPECULATED, use_cache=False)
logit_gap = (with_cache.logits - without_cache.logits).abs().max().item()
print(f"prompt {prompts[0].tolist()} -> {with_cache.tokens[0, 8:24].tolist()} | max logit difference {logit_gap:.1e}")
claim("cached and uncached greedy decoding produce identical tokens",
      torch.equal(with_cache.tokens, without_cache.tokens), "==", True)
claim("cached and uncached logits agree to floating-point rounding (max abs difference)", logit_gap, "<", 1e-4);

# %% [markdown]
# ### Counting scores, and where the FLOPs and bytes go
# Each attention layer keeps a tally of the scores causal attention needs, computed inside `forward` from
# the shapes it sees. Generating 64 positions from a single token both ways and comparing the tallies with
# the formulas is a **bookkeeping check** (that the cached and uncached paths run the steps we think they
# run), not an independent measurement: the 22x is $(64 + 2) / 3$ by the formula. The independent test
# follows: we break one decoding step into projection, attention and output-head FLOPs and into bytes,
# and check the FLOP formulas against PyTorch's own FLOP counter (`torch.utils.flop_counter`), which counts
# every matrix product that actually runs.

# %%
show_source(decode_costs.forward_flops)
counts = {}
for name, use_cache in (("cached", True), ("uncached", False)):
    target.reset_counts()
    decoder.generate(target, prompts[:1, :1], 64, use_cache=use_cache)
    counts[name] = target.scores_needed()
print(f"n = 64: measured {counts}, formulas {decode_costs.generation_score_counts(64)}")
claim("bookkeeping check: the layers' score tallies equal n(n+1)/2 and n(n+1)(n+2)/6 at n = 64",
      counts == decode_costs.generation_score_counts(64), "==", True);

# %%
timing_decoder = decoder.tiny_decoder(seed=cfg.seed, **DECODER)
cost_rows = nb07_decoding.step_cost_rows(timing_decoder, (64, 256))
show(cost_rows)
matched = nb07_decoding.flops_match_counter(timing_decoder, (64, 256))
claim("the FLOP formulas equal PyTorch's FLOP counter for cached and uncached steps", matched, "==", True);

# %% [markdown]
# Without a cache, the projections dominate: at $n = 256$ they are most of the FLOPs of the step,
# and attention's quadratic term is second. (The attention column counts every score our kernel computes,
# masked ones included, which is what the FLOP counter sees; a causal kernel such as FlashAttention skips
# about half of them when it runs the whole prefix. Without a cache, the keys-and-values column is what the
# step computes and writes, not what it reads.) With a cache, a step does one token's projections, a
# $t$-long row of attention, and reads every weight once: a few million FLOPs for a few megabytes read,
# about half a FLOP per byte. That ratio, the **arithmetic intensity**, decides what limits a step.
#
# ### Time per token against context length
# For each context length $n$ we time the step that produces the next token of the 4-layer timing
# decoder (random weights: speed depends on shapes only): without a cache a forward pass over all $n$
# tokens, with a cache one token against $n - 1$ cached positions.

# %%
decode_times = nb07_decoding.step_times(timing_decoder, DECODE_LENGTHS, TIMING_ROUNDS, seed=cfg.seed)
cache_speedup = [u / c for u, c in zip(decode_times["no cache"], decode_times["KV cache"])]
print(machine_note(TIMING_DEVICE))
show([{"context": n, "ms, no cache": u * 1e3, "ms, KV cache": c * 1e3, "speed-up": s}
      for n, u, c, s in zip(DECODE_LENGTHS, decode_times["no cache"], decode_times["KV cache"], cache_speedup)])

# %%
fig, (ax_t, ax_m) = figure("Decoding with and without a KV cache", "context length (tokens)", "time per token (ms)",
                           ncols=2)
for name, style in (("no cache", "o-"), ("KV cache", "s-")):
    ax_t.plot(DECODE_LENGTHS, [t * 1e3 for t in decode_times[name]], style, label=name)
lengths = np.geomspace(16, 8192, 10).astype(int)
for label, (layers, kv_heads) in {"7B-like, 32 KV heads (MHA)": (32, 32), "same, 8 KV heads (GQA)": (32, 8)}.items():
    ax_m.loglog(lengths, [decoder.kv_cache_bytes(layers, kv_heads, 128, n, 2) / 2**30 for n in lengths], label=label)
ax_m.set_xlabel("context length (tokens, log scale)")
ax_m.set_ylabel("KV cache per sequence (GiB, fp16)")
ax_m.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
ax_m.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
ax_t.legend(loc="upper left")
ax_m.legend(loc="upper left", fontsize=8);

# %% [markdown]
# Without a cache the cost of a token grows with the context; with a cache it stays nearly flat at these
# lengths. The right panel is the bill: the cache grows linearly with context and, for a 7B-class model
# with 32 key/value heads in fp16, reaches 2 GiB per 4,096-token sequence, which is why serving systems
# page it (vLLM's PagedAttention, Kwon et al. 2023), quantize it (8-bit keys and values halve it against
# fp16), evict old positions (a *sliding window* keeps only the last few thousand tokens, as in Mistral
# 7B), or share key/value heads (grouped-query attention, below). The claim: at $n = 256$ the cached step
# is more than 2x faster (measured 9.6x to 12x across seeds 0-4 at both scales; the FLOP ratio is far
# larger, but per-step overheads of a tiny model dilute it).

# %%
claim("KV cache makes the next token faster at n = 256 (uncached / cached time)",
      cache_speedup[DECODE_LENGTHS.index(256)], ">", 2.0);

# %% [markdown]
# ### Prefill against decode, and the roofline
# Serving a request has two phases. **Prefill** runs the whole prompt through the model in one pass: many
# tokens share each weight read, so it has high arithmetic intensity and keeps the arithmetic units
# busy. **Decode** then produces one token per pass: every weight is read to do one multiply-add per
# sequence in the batch. The **roofline** model (Williams et al. 2009) bounds the FLOP rate a kernel can
# reach by $\min(\text{peak FLOP/s},\ \text{bandwidth} \times \text{intensity})$: below the *ridge point*
# (peak / bandwidth) a kernel waits for memory, above it for arithmetic. We measure both roofs of this
# machine on one thread (a 512x512 matrix product, and reading a buffer the size of the decoder's
# weights), and time decode steps of $b$ sequences at once (64 cached positions each) and prefills of $b$
# prompts of 32 tokens.

# %%
tables = nb07_decoding.batch_step_tables(timing_decoder, DECODE_BATCHES, CONTEXT, PROMPT_LENGTH, TIMING_ROUNDS,
                                         seed=cfg.seed)
roofs = nb07_decoding.machine_roofs(decode_costs.forward_bytes(timing_decoder, 1)["weights"], TIMING_ROUNDS)
points = {f"{kind}, batch {b}": (decode_costs.arithmetic_intensity(timing_decoder, new, cached, b),
                                 sum(decode_costs.forward_flops(timing_decoder, new, cached, b).values()) / seconds)
          for kind, new, cached in (("decode", 1, CONTEXT), ("prefill", PROMPT_LENGTH, 0))
          for b, seconds in tables[kind].items()}
ridge = roofs["FLOP/s"] / roofs["memory bytes/s"]
print(machine_note(TIMING_DEVICE), f"| peak {roofs['FLOP/s'] / 1e9:.0f} GFLOP/s; reads at "
      f"{roofs['cache bytes/s'] / 1e9:.0f} GB/s from cache and {roofs['memory bytes/s'] / 1e9:.0f} GB/s from main "
      f"memory: ridge point {ridge:.1f} FLOP/byte")
show([{"pass": name, "FLOP per byte": i, "GFLOP/s achieved": f / 1e9, "share of peak": f / roofs["FLOP/s"]}
      for name, (i, f) in points.items()])

# %% [markdown]
# The tiny decoder's weights (a few MB) fit in the CPU's caches, so it cannot show the regime of an LLM,
# whose weights stream from main memory at every step. For that we build a **larger decoder** with the
# same code (width 768, 12 heads, 4 layers at quick scale and 6 at full: 108 or 162 MiB of float32
# weights, far more than any cache of this CPU) and time its decode steps for 1 and 16 sequences.
# Its *achieved bandwidth* is the bytes a step must read (weights and cache) over the step's time.

# %%
large = decoder.tiny_decoder(seed=cfg.seed, **LARGE_DECODER)
large_steps = nb07_decoding.batch_step_tables(large, (1, 16), CONTEXT, None, 3, seed=cfg.seed)["decode"]
step_bytes = {name: sum(decode_costs.forward_bytes(model, 1, CONTEXT).values())
              for name, model in (("tiny", timing_decoder), ("large", large))}
bandwidth = {"tiny": step_bytes["tiny"] / tables["decode"][1], "large": step_bytes["large"] / large_steps[1]}
for b, seconds in large_steps.items():
    points[f"large decode, batch {b}"] = (decode_costs.arithmetic_intensity(large, 1, CONTEXT, b),
                                          sum(decode_costs.forward_flops(large, 1, CONTEXT, b).values()) / seconds)
show([{"decoder": name, "MiB read per step": step_bytes[name] / 2**20, "batch-1 step (ms)": 1e3 * one[1],
       "GB/s achieved": bandwidth[name] / 1e9, "share of the roof it faces": bandwidth[name] / roofs[roof],
       "16 sequences / 1 (time)": one[16] / one[1]}
      for name, one, roof in (("tiny", tables["decode"], "cache bytes/s"), ("large", large_steps, "memory bytes/s"))])

# %%
fig, ax = figure("Roofline of this CPU (one thread)", "arithmetic intensity (FLOP per byte, log scale)",
                 "FLOP/s (log scale)", figsize=(7.6, 4.0))
intensity = np.geomspace(0.1, 1000, 200)
for source, style in (("memory", "-"), ("cache", "--")):
    ax.loglog(intensity, np.minimum(roofs["FLOP/s"], roofs[f"{source} bytes/s"] * intensity), style, color="black",
              label=f"roofline, weights in {'main memory' if source == 'memory' else 'cache'}")
for kind, marker in (("decode", "o"), ("prefill", "s")):
    kind_points = [p for name, p in points.items() if name.startswith(kind)]
    ax.loglog(*zip(*kind_points), marker + "-", label=f"tiny {kind}, batch {min(DECODE_BATCHES)} to {max(DECODE_BATCHES)}")
ax.loglog(*zip(*[p for name, p in points.items() if name.startswith("large")]), "D-", color="#CC79A7",
          label="large decode, batch 1 and 16")
ax.axvline(ridge, color="grey", ls=":", label="ridge point (main memory)")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8);

# %% [markdown]
# Decode of one sequence in float32 does about half a FLOP per byte of weights read (one multiply-add, 2
# FLOPs, per 4-byte weight) *by arithmetic*, whatever the machine; every CPU and GPU has a ridge point far
# to the right of that, so where the weights come from memory, decode is bound by bandwidth. The two
# decoders show the two regimes a decode step can be in:
#
# * **The large decoder is memory-bound.** Its weights stream from main memory at every step, and a
#   single-sequence step reads them at a large share of the measured memory roof: the step's time *is*
#   the time to read the weights. Batching 16 sequences reuses each weight read for 16 tokens, so the
#   step costs only a few times one step, and the points move up and to the right along the roof.
# * **The tiny decoder is overhead-bound.** Its few MB of weights sit in the caches, whose roof is far
#   higher, and it reaches a small share of it: each step pays a fixed cost per operation (Python and
#   kernel dispatch) that has nothing to do with bytes. Batching still helps, because the fixed cost is
#   shared by all sequences of the batch, but for a different reason. The fix for this regime is fewer,
#   larger operations: operator fusion, `torch.compile`, and on GPUs CUDA graphs (one launch for a whole
#   step); FlashAttention (Dao et al. 2022) fuses attention so its scores never go to memory.
#
# Prefill, with 32 tokens per sequence, sits much further right. This is why LLM serving treats the phases
# differently (time to first token is set by prefill, time per output token by decode) and batches the
# decode steps of many requests.
#
# Claims: the large decoder's single-sequence step reads its bytes at more than 20% of the measured
# main-memory bandwidth (measured 38% to 55%); the tiny decoder's step reaches less than half of its
# cache roof (measured 3.5% to 4.6%: another limit binds); for the large decoder, a decode step for 16
# sequences costs less than 8 steps for one (measured 2.4 to 2.6); and prefill processes a prompt token
# more than 4x cheaper than decode produces one (tiny decoder; measured 14x to 19x).

# %%
claim("a decode step of a decoder larger than the caches reads at a large share of main-memory bandwidth "
      "(achieved / measured roof)", bandwidth["large"] / roofs["memory bytes/s"], ">", 0.2)
claim("a decode step of the tiny decoder is not bound by cache bandwidth (achieved / cache roof)",
      bandwidth["tiny"] / roofs["cache bytes/s"], "<", 0.5)
claim("a memory-bound decode step for 16 sequences costs far less than 16 steps for one (time ratio)",
      large_steps[16] / large_steps[1], "<", 8)
claim("prefill processes a prompt token far cheaper than decode produces one (decode / prefill per token)",
      tables["decode"][1] / (tables["prefill"][1] / PROMPT_LENGTH), ">", 4);

# %% [markdown]
# ### Continuous batching: time to first token and time per output token
# Generation requests differ in length. **Static batching** takes a batch, prefills it, and decodes until
# its *longest* sequence is done; finished sequences keep their slots and new requests wait for the whole
# batch. **Continuous (iteration-level) batching** (Yu et al. 2022, Orca; used by vLLM and TGI) admits
# waiting requests before every decoding step and releases a sequence the moment it finishes. We
# simulate both with the step and prefill times just measured (up to 16 sequences at once, prompts of 32
# tokens, 8 to 64 output tokens each; the step times were measured at 64 cached positions, and the
# previous figure showed that a cached step hardly depends on the context at these lengths) and report
# the two numbers users feel: **time to first token (TTFT)**, queueing plus prefill, and **time per
# output token (TPOT)** after the first.

# %%
show_source(serving.simulate_generation)

# %%
generation_rows = nb07_decoding.generation_sweep(tables["decode"], tables["prefill"], GENERATION_LOADS,
                                                 OUTPUT_LENGTHS, N_REQUESTS // 4, 16, seed=cfg.seed)
show(generation_rows)

# %% [markdown]
# The load is the arrival rate over what a server generating one request at a time could sustain. At every
# load continuous batching answers first tokens at least as soon, and far sooner as the load grows: a
# newcomer waits for the next decoding step, not for the longest sequence of a batch. Its time per output
# token stays close to static batching's: the prefills of newcomers interrupt everyone else's decoding
# (production systems bound that with *chunked prefill*), while static batches carry finished sequences as
# dead weight. Claims, at twice the one-at-a-time load (where both policies keep up): continuous batching
# cuts the median time to first token by more than 2x (measured 15x to 20x across seeds 0-4 at both
# scales), and keeps the median time per output token within 1.5x of static batching (measured 0.97 to
# 1.04).

# %%
by_policy = {r["policy"]: r for r in generation_rows if r["load"] == 2.0}
claim("continuous batching cuts median time to first token at twice the one-at-a-time load (static / continuous)",
      by_policy["static"]["TTFT p50 (ms)"] / by_policy["continuous"]["TTFT p50 (ms)"], ">", 2)
claim("continuous batching keeps median time per output token close to static batching (continuous / static)",
      by_policy["continuous"]["TPOT p50 (ms)"] / by_policy["static"]["TPOT p50 (ms)"], "<", 1.5);

# %% [markdown]
# ### Speculative decoding: a draft guesses, the target checks in one pass
# A decode step is bound by reading the weights (in an LLM) or by per-operation overhead (here), so
# checking several tokens in one pass costs about as much as producing one. **Speculative decoding**
# (Leviathan et al. 2023; Chen et al. 2023) lets a small draft model propose `LOOKAHEAD` tokens; the
# target scores all of them in one pass, keeps the longest run that matches its own greedy choice, and
# adds its own next token. Every token kept is the target's choice, so the output is *exactly* the
# target's greedy decoding; only the number of sequential target passes falls. Rejected guesses are cut
# from both caches.

# %%
show_source(speculative.speculative_generate)

# %%
untrained_draft = decoder.tiny_decoder(seed=cfg.seed + 2, **DRAFT)
speculation = {name: nb07_decoding.speculation_run(target, model, prompts, N_SPECULATED, LOOKAHEAD)
               for name, model in (("trained draft", draft), ("untrained draft", untrained_draft))}
spec_times = nb07_decoding.speculation_times(target, draft, prompts[:1], N_SPECULATED, LOOKAHEAD, 3)
draft_cost = spec_times["draft alone"] / spec_times["target alone"]
verify = nb07_decoding.verify_cost(target, 32, LOOKAHEAD, TIMING_ROUNDS, seed=cfg.seed)
show([{"draft": name, **numbers} for name, numbers in speculation.items()])
predicted = speculation["trained draft"]["tokens per pass"] / (LOOKAHEAD * draft_cost + verify)
print(machine_note(TIMING_DEVICE), f"| draft step c = {draft_cost:.2f} of a target step; checking "
      f"{LOOKAHEAD + 1} tokens v = {verify:.2f} steps; speed-up {predicted:.2f}x by the cost model, "
      f"{spec_times['target alone'] / spec_times['speculative']:.2f}x measured (fastest of 3 whole generations)")

# %% [markdown]
# **The cost model.** A round of $k$ guesses costs $k$ draft steps, each a fraction $c$ of a target step,
# plus one target pass over $k + 1$ tokens, costing $v$ target steps; it yields $\tau$ tokens (the
# "tokens per pass" column). The speed-up over plain greedy decoding is
#
# $$\text{speed-up} = \frac{\tau}{k\,c + v}.$$
#
# Two different "acceptance rates" are in use. The textbook formula $\tau = (1 - a^{k+1}) / (1 - a)$
# takes $a$ as the probability that a guess is accepted *given that the guesses before it were*, assumed
# the same at every position. The table's "acceptance" is the share of all proposed guesses that were
# kept. They agree only if acceptances were independent; here they are not (inside a word every guess is
# right, at a word boundary the first is usually wrong and the rest are thrown away with it), so the formula
# fed with the table's acceptance underestimates $\tau$. The honest input is $\tau$ measured directly.
#
# **Why speculation needs a memory-bound target.** The whole gain rests on $v \approx 1$: checking $k + 1$
# tokens must cost about one step. That holds when a step's time is the time to read the weights (an LLM at
# small batch: the weights are read once for all $k + 1$ tokens) and $c$ is a few percent (a draft 10-50x
# smaller); then LLMs see 2-3x. Our tiny target is overhead-bound: checking four tokens costs measurably more
# than one step, and the draft costs a large fraction of a target step, so the cost model itself predicts
# no gain, and the measured times (which also pay for our loop's bookkeeping) are slower still. What holds at this size is the mechanism. Claims:
# speculative decoding returns exactly the target's greedy tokens; the trained draft's guesses are accepted
# far more often than those of an untrained draft of the same shape (the control: acceptance comes from the
# draft having learnt the same language; difference 0.28 to 0.45 across seeds 0-4 at both scales); and each
# target pass yields more than 1.5 tokens (1.9 to 2.3).

# %%
claim("speculative decoding returns exactly the target's greedy tokens", speculation["trained draft"]["identical"],
      "==", True)
claim("a trained draft is accepted far more often than an untrained one (difference in acceptance rate)",
      speculation["trained draft"]["acceptance"] - speculation["untrained draft"]["acceptance"], ">", 0.2)
claim("speculative decoding yields several tokens per target pass", speculation["trained draft"]["tokens per pass"],
      ">", 1.5);

# %% [markdown]
# ### Grouped-query attention: a smaller cache
# Multi-head attention caches keys and values for every head. **Multi-query attention** (Shazeer 2019)
# shares one key/value head among all query heads; **grouped-query attention** (Ainslie et al. 2023)
# shares each among a group. The cache shrinks by the ratio of query heads to key/value heads, at a small
# cost in quality that models recover in training (the 70B Llama 2 uses 8 key/value heads for 64 query
# heads). We build the timing decoder with 4, 2 and 1 key/value heads, fill each cache with 256 tokens,
# and check the formula against the bytes actually held, and that each still decodes identically with and
# without its cache.

# %%
gqa_rows, gqa_formula_holds = [], True
for kv_heads in (4, 2, 1):
    model = decoder.tiny_decoder(seed=cfg.seed, **{**DECODER, "n_kv_heads": kv_heads})
    _, cache = model(nb07_decoding.random_tokens(model, 1, 256))
    held = decoder.cache_nbytes(cache)
    gqa_formula_holds &= held == decoder.kv_cache_bytes(model.n_layers, kv_heads, model.head_dim, 256, 4)
    same = torch.equal(decoder.generate(model, prompts[:1], 16).tokens,
                       decoder.generate(model, prompts[:1], 16, use_cache=False).tokens)
    gqa_rows.append({"KV heads": kv_heads, "cache at 256 tokens (KiB)": held / 1024, "cached = uncached": same})
show(gqa_rows)
claim("the cache formula with KV heads equals the bytes held by MHA, GQA and MQA caches", gqa_formula_holds,
      "==", True);

# %% [markdown]
# ### When the cache goes stale
# A cache is valid only for the exact prefix that produced it: the key and value at position $i$ depend
# on every token up to $i$. Serving systems reuse caches across requests that share a prefix (a system
# prompt, a chat history: *prefix caching*), so they must invalidate from the first token that differs.
# We take a 24-token sequence, change the token at position 12, and compare the next-token logits with a
# full recomputation: reusing the cache cut just before the edit, or reusing the stale cache.

# %%
sentence = nb07_decoding.word_language(1, 24, language=cfg.seed, seed=cfg.seed + 200)
edit = nb07_decoding.invalidation_check(target, sentence, 12)
print({name: f"{gap:.1e}" for name, gap in edit.items()})
claim("a cache cut before the edited token gives the recomputed logits (max abs difference)",
      edit["truncated cache"], "<", 1e-4)
claim("a stale cache gives different logits (max abs difference)", edit["stale cache"], ">", 1e-2);

# %% [markdown]
# ### Explorer: time per token up to a chosen length
# Timing takes a second or two, so this explorer waits for the Run button.

# %%
explore(lambda length, progress=None: nb07_decoding.decoding_explorer(timing_decoder, length, progress),
        run_button=True, length=Slider(20, 300, 4, 128))

# %% [markdown]
# ## 6. Retrieval: out of scope here
# The guide's last lever, retrieval, trades model size for an index: a smaller model answers from
# passages fetched at query time instead of from facts stored in its weights (Lewis et al. 2020,
# RAG). Its costs are the index's quality and freshness, the retrieval latency added to every request,
# and a longer prompt, so more prefill. Measuring it honestly needs a corpus, an embedding model and
# questions whose answers change, which this offline notebook does not have, so it is not measured here.
#
# ## 7. The levers table, filled with this run's measurements

# %%
lib = "int8, library, per channel"
show(nb07.levers_rows(
    quantization=(sizes["float32"] / sizes[lib], speedup[1][lib], speedup[256][lib], int8_accuracy[lib]
                  - int8_accuracy["float32"]),
    distillation=(count_parameters(teacher) / count_parameters(student), accuracy["distilled"] - accuracy["teacher"],
                  recall["distilled"][HELD_OUT]),
    pruning=(pruning_drop["teacher"], pruning_drop["compact"], prune_speedup["masked dense"],
             prune_speedup["torch.sparse"], prune_speedup["structured"]),
    batching=(capacity_gain, heavy["batching, no wait"]["busy fraction"], heavy["batching with a wait"]["busy fraction"]),
    caching=(cache_speedup[-1], DECODE_LENGTHS[-1], decoder.kv_cache_bytes(32, 32, 128, 4096, 2) / 2**30)))


# %% [markdown]
# ## Your turn
#
# **1. Quantize a weight matrix.** Write `my_quantize_int8(w)` that returns `(q, scale)`: `q` an int8
# tensor of the same shape as `w`, `scale` a positive tensor (one scale for the whole matrix, or one per
# row of shape `(rows, 1)`), such that `q * scale` is within `scale / 2` of `w` everywhere. The checker
# tries it on a matrix whose rows have very different ranges.

# %%
def my_quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    raise NotImplementedError("compute a scale, round w / scale, clamp to [-127, 127], cast to int8")


nb07.check_quantize_exercise(my_quantize_int8);


# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# def my_quantize_int8(w):
#     scale = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127   # per row (channel)
#     q = torch.round(w / scale).clamp(-127, 127).to(torch.int8)
#     return q, scale
# ```
# Casting with `.to(torch.int8)` without rounding truncates and doubles the worst error to a full step:
# the checker catches that.
# </details>
#
# **2. KV-cache memory.** Write `my_kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len,
# bytes_per_value, batch)`. The checker asks about a 7B-like model (32 layers, 32 key/value heads of
# dimension 128, 4,096 tokens in fp16, batch 1), a tiny one, and a 70B-like one with grouped-query
# attention (80 layers, 8 key/value heads, 8,192 tokens, batch 16). Estimate the first in GiB before
# running it.

# %%
def my_kv_cache_bytes(n_layers: int, n_kv_heads: int, head_dim: int, seq_len: int, bytes_per_value: int,
                      batch: int) -> int:
    raise NotImplementedError("keys and values, for every layer, KV head, dimension, position and sequence")


nb07_decoding.check_kv_cache_exercise(my_kv_cache_bytes);

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# def my_kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, bytes_per_value, batch):
#     return 2 * n_layers * n_kv_heads * head_dim * seq_len * bytes_per_value * batch
# ```
# For the 7B-like model that is 2 GiB per sequence: a batch of 16 such sequences needs 32 GiB of cache,
# more than the fp16 weights themselves (about 13 GiB). With 8 key/value heads instead of 32 it would be
# four times smaller.
# </details>
#
# ## Interview answer
# The model answers, with this run's numbers:

# %%
display(Markdown(f"""
**"How would you reduce latency / cost for a transformer?"** First find where the time goes: prefill or
decode, batch size, memory or arithmetic. Then pull the levers that match:

* **Cache keys and values.** Same tokens as recomputation, {cache_speedup[-1]:.1f}x faster per token at
  {DECODE_LENGTHS[-1]} tokens here; without a cache every step re-runs the projections on the whole prefix.
  The bill is memory: {decoder.kv_cache_bytes(32, 32, 128, 4096, 2) / 2**30:.0f} GiB per 4k-token sequence for a
  7B-class model in fp16, four times less with 8 shared key/value heads (GQA).
* **Batch decode steps, continuously.** Decode of a model larger than the caches is bound by reading its
  weights (the {step_bytes["large"] / 2**20:.0f} MiB decoder: {bandwidth["large"] / roofs["memory bytes/s"]:.0%} of memory
  bandwidth), so 16 sequences per step gave {16 * large_steps[1] / large_steps[16]:.1f}x the tokens per second of one
  (a tiny model is overhead-bound instead: fuse, `torch.compile`). Continuous batching cut the median time to
  first token {by_policy["static"]["TTFT p50 (ms)"] / by_policy["continuous"]["TTFT p50 (ms)"]:.1f}x against static.
* **Quantize.** Post-training int8 with per-channel scales: {sizes["float32"] / sizes[lib]:.1f}x smaller, accuracy
  change {int8_accuracy[lib] - int8_accuracy["float32"]:+.3f}, {speedup[256][lib]:.1f}x faster at batch 256 on this CPU
  (its int8 instructions decide that number). int4 weights halve the bytes again at 18x the rounding error.
* **Speculative decoding** when a cheap draft agrees with the model: exactly the same tokens,
  {speculation["trained draft"]["tokens per pass"]:.1f} tokens per target pass here.
* **Distill or prune structure** for a smaller dense model; unstructured sparsity rarely speeds up.
"""))

# %%
display(Markdown(f"""
**"Distillation vs pruning?"** Pruning cuts an existing network: cheap, but only *structured* cuts speed up
ordinary hardware (90% unstructured sparsity: {prune_speedup["masked dense"]:.1f}x dense speed; the same budget
in whole neurons: {prune_speedup["structured"]:.1f}x), and it is free only while the model has spare capacity (90%
pruning cost the oversized teacher {pruning_drop["teacher"]:+.3f} but the compact model {pruning_drop["compact"]:+.3f}).
Distillation trains a new, smaller dense network: a second training run that inherits the teacher's biases,
fast everywhere; here a student without a single "3" recognised {recall["distilled"][HELD_OUT]:.0%} of test 3s
from soft targets alone.

**"How do you batch without hurting user experience?"** Batch what is already waiting: a request that
arrives alone is served alone, as fast as without batching; a fixed wait is what adds latency, by exactly the
wait. Batching raised the sustainable capacity {capacity_gain:.1f}x here, so at 1.5x the one-at-a-time capacity,
where one-at-a-time serving is unstable, it kept up. A wait buys fuller batches (the worker was busy
{heavy["batching with a wait"]["busy fraction"]:.0%} of the time instead of {heavy["batching, no wait"]["busy fraction"]:.0%}) and
costs latency ({heavy["batching with a wait"]["within target"]:.0%} of requests within the target instead of
{heavy["batching, no wait"]["within target"]:.0%}); size it from the latency target. Track p95/p99 against the
target, plan from the busy fraction. For generation, batch at the level of decoding steps (continuous batching).
"""))

# %% [markdown]
# ## Traps
#
# * **"Just use a GPU."** The levers above cut cost on any device; on this CPU the KV cache alone and
#   batching alone each multiplied throughput (sections 4 and 5).
# * **"Quantization makes it faster."** Only with a fast int8 kernel and enough work per call: our
#   unfused int8 layer was slower than float32 at batch 1, and the library's speed-up depends on the
#   CPU's int8 instructions.
# * **"Quantization wrecks accuracy."** At 8 bits neither classifier moved by 0.01 (on an easy task).
#   The danger is in activations with outlier channels, which is what LLM.int8() and SmoothQuant handle,
#   and below 8 bits.
# * **"90% sparsity means 10x faster."** The masked network ran at dense speed and the sparse kernel got
#   a fraction of 10x; only structured pruning delivered. **"Pruning is free"** only on a model with
#   spare capacity.
# * **"Batching adds latency."** Waiting does; batching what is queued does not. Above the peak
#   capacity no policy helps: the queue grows without bound.
# * **"Load below capacity means headroom."** Arrival rate over peak capacity was well below 1 while the
#   worker was busy almost all the time: small batches run below peak throughput. Watch the busy fraction.
# * **"The KV cache is free."** It trades memory for compute, grows with context and batch, and is
#   valid only for the exact prefix that built it.
# * **"Speculative decoding changes the output."** Greedy speculative decoding returns the target's
#   tokens exactly; only the number of target passes changes.
# * **"Distillation always beats training the student alone."** Not at this scale: across seeds it
#   went both ways; what it reliably transfers is the teacher's similarity structure.
