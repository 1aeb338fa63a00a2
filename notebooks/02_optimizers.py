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
# # 02 · Optimizers: SGD, momentum, RMSprop, Adam, AdamW and learning-rate schedules
#
# Every network in this curriculum is trained by an optimizer, and most training failures that are not data
# bugs are optimizer failures: a rate that is too high, a schedule that never lets the loss settle, weight
# decay that silently does something other than you think. Interviewers probe this because the answers
# separate people who have *tuned* models from people who have read about them.
#
# This notebook builds the classic optimizers from scratch, checks them step for step against `torch.optim`,
# and then measures the claims people repeat about them, each next to the control that could explain it away.
#
# **Interview questions answered here**
# 1. Explain SGD, momentum, RMSprop, Adam and AdamW. What does each keep in memory? (sections 1–2)
# 2. "Adam vs SGD with momentum?" How should the rate change with the batch size? Why do language models use
#    Adam? (section 3)
# 3. "What is weight decay, and why AdamW?" What does weight decay do to a layer followed by a norm? (section 4)
# 4. "How do learning-rate schedules help?" Warmup, decay, the range test, dead networks and clipping.
#    (section 5)

# %%
from helpers import setup

cfg = setup("02_optimizers")

# %%
import functools
import math

import numpy as np
from IPython.display import Markdown, display

from helpers.claims import claim
from helpers.config import pick
from helpers.data import mnist1d
from helpers.experiments import nb02_optimizers_geometry as geometry
from helpers.experiments import nb02_optimizers_mechanics as mechanics
from helpers.experiments import nb02_optimizers_stability as stability
from helpers.experiments import nb02_optimizers_training as training
from helpers.scratch import optimizers
from helpers.source import show_source
from helpers.tables import show
from helpers.train import evaluate
from helpers.widgets import Choice, Slider, Toggle, explore

# %% [markdown]
# All sizes live in the next cell: `DL_SCALE=quick` trains for fewer epochs on smaller grids, `full` (the
# default) trains longer on wider grids. Every claim below held for seeds 0–4 at both scales.

# %%
EPOCHS = pick(quick=8, full=20)
MLP_LRS = {"adam": pick(quick=[3e-3, 1e-2, 3e-2], full=[1e-3, 3e-3, 1e-2, 3e-2, 0.1]),
           "momentum": pick(quick=[0.03, 0.1, 0.3], full=[0.01, 0.03, 0.1, 0.3])}
CNN_LRS = {"adam": [1e-2, 3e-2, 0.1], "momentum": pick(quick=[0.1, 0.3], full=[0.03, 0.1, 0.3])}
GRID_LRS = pick(quick=[3e-3, 1e-2, 3e-2], full=[1e-3, 3e-3, 1e-2, 3e-2])
GRID_WDS = pick(quick=[1e-4, 1e-2, 0.1], full=[1e-4, 1e-3, 1e-2, 0.1, 1.0])
GRID_EPOCHS = pick(quick=4, full=10)
STEPS = pick(quick=200, full=300)           # mini-batches in the step-by-step experiments of section 5
PATH_STEPS = pick(quick=400, full=600)      # steps on Rosenbrock's valley
HIGH_RATE = 0.1                             # Adam on the CNN: the rate at which warmup decides the outcome
GOOD_RATE = 0.03                            # Adam on the CNN: a rate from the sweep's good range (warmup's control)
BASE_RATE = 0.03                            # SGD + momentum on the MLP: the base of the momentum and batch runs
data = mnist1d(seed=cfg.seed)
data

# %% [markdown]
# ## 1. The optimizers from scratch, matching `torch.optim`
#
# **Idea.** Every optimizer looks at the gradient, decides on a step and moves the weights. They differ in
# what they *remember* (a velocity, a running average of squared gradients) and in how they *scale* the step.
#
# With gradient $g_t$, weights $w$ and learning rate $\eta$:
#
# - **SGD:** $w \leftarrow w - \eta\, g_t$. Step downhill, in proportion to the slope.
# - **Momentum (heavy ball):** $v_t = \mu v_{t-1} + g_t,\ w \leftarrow w - \eta\, v_t$. A running sum of gradients:
#   components that flip sign from step to step cancel, components that persist add up to an effective rate
#   $\eta/(1-\mu)$, ten times $\eta$ at $\mu = 0.9$.
# - **Nesterov:** $v_t = \mu v_{t-1} + g_t,\ w \leftarrow w - \eta\,(g_t + \mu v_t)$. The same, but it steps along
#   where the velocity is about to take it.
# - **RMSprop:** $s_t = \alpha s_{t-1} + (1-\alpha) g_t^2,\ w \leftarrow w - \eta\, g_t / (\sqrt{s_t} + \epsilon)$. Each
#   coordinate is divided by its own typical gradient size. Its ancestor Adagrad (Duchi et al. 2011) divides by
#   the square root of the *sum* of all past squared gradients, so its steps only shrink and training stalls;
#   RMSprop's running average forgets old gradients.
# - **Adam:** $m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\ v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2$,
#   $w \leftarrow w - \eta\,\hat m_t / (\sqrt{\hat v_t} + \epsilon)$ with $\hat m_t = m_t/(1-\beta_1^t)$,
#   $\hat v_t = v_t/(1-\beta_2^t)$. Momentum divided by RMSprop's scale; the hats undo the zero start.
# - **AdamW:** $w \leftarrow w(1 - \eta\lambda) - \eta\,\hat m_t / (\sqrt{\hat v_t} + \epsilon)$. Adam, with weight
#   decay applied to the weights instead of through the gradient.
#
# Adam is from Kingma & Ba (2015), RMSprop from Hinton's 2012 lecture notes, AdamW from Loshchilov & Hutter
# (2019), this form of Nesterov momentum from Sutskever et al. (2013). Weight decay $\lambda$ enters SGD,
# RMSprop and Adam as an L2 term added to the gradient, $g_t \leftarrow g_t + \lambda w$ (that is what
# `torch.optim` does); only AdamW shrinks the weights directly.
#
# The code below is the whole of SGD: a small base class loops over the weights, and each optimizer writes
# only its update rule.

# %%
show_source(optimizers.ScratchOptimizer, optimizers.SGD)

# %% [markdown]
# `state` is what SGD remembers about one weight tensor: its velocity, created at the first step as a copy of
# the gradient (that is `torch.optim`'s convention). Nesterov steps along $g + \mu v$, the heavy ball along
# $v$. Adam and AdamW are one class; the only difference is where the decay goes:

# %%
show_source(optimizers.Adam, optimizers.AdamW)

# %% [markdown]
# RMSprop lives in the same file; write it yourself in "Your turn" before reading it.
#
# **Experiment.** Train the same small float64 network with ours and with `torch.optim` for 30 steps, over ten
# settings that exercise every option (momentum, dampening, Nesterov, centred RMSprop, AMSGrad, non-default
# betas, weight decay), and record the largest difference in any weight.

# %%
match = mechanics.match_table(steps=30, seed=cfg.seed)
show(match)

# %% [markdown]
# **Claim.** Every from-scratch optimizer matches `torch.optim` to 1e-10. The differences are float64
# round-off, around 1e-16; a misplaced bias correction or $\epsilon$ shows up at 1e-4 or more.

# %%
worst_match = float(np.max([row["largest difference after 30 steps"] for row in match]))   # NaN stays NaN
claim("from-scratch SGD, RMSprop, Adam and AdamW match torch.optim over 30 steps in float64 (largest difference)",
      worst_match, "<", 1e-10);

# %% [markdown]
# ### What an optimizer costs in memory
#
# The state is not free. Momentum keeps one tensor per weight tensor, RMSprop one, Adam two ($m$ and $v$).
# Here are the bytes each keeps after one step on this notebook's CNN, as a multiple of the parameters' bytes:

# %%
memory = mechanics.state_memory(training.build_model("cnn", data, cfg.seed))
show(memory)

# %% [markdown]
# **Claim.** `torch.optim.Adam` keeps two extra copies of the parameters (the extra 0.2% is a step counter per
# tensor). With gradients that makes four copies in float32; mixed-precision training adds a float32 master copy
# of float16 weights, and the ZeRO paper (Rajbhandari et al. 2020) counts 16 bytes per parameter in all: a
# 7-billion-parameter model needs about 112 GB before a single activation is stored. That is why memory-lean
# optimizers (SGD with momentum, Adafactor, 8-bit Adam) and sharding the optimizer state exist.

# %%
adam_row = next(row for row in memory if row["optimizer"] == "adam")
claim("torch.optim.Adam keeps two extra copies of the parameters (state bytes / parameter bytes)",
      adam_row["torch.optim state / parameters"], "between", (1.99, 2.01));

# %% [markdown]
# ## 2. Geometry: ravines, momentum and Adam's per-coordinate scale
#
# **Idea.** On a loss surface that is steep in one direction and flat in another (a *ravine*), the largest
# stable step is set by the steep direction, so progress along the flat one crawls. The ratio of the largest
# to the smallest curvature is the condition number $\kappa$.
#
# **Mechanism.** On $f(w) = \tfrac12 w^\top A w$ with eigenvalues in $[\mu, L]$ and $\kappa = L/\mu$, the best
# fixed step of gradient descent, $\eta = 2/(L+\mu)$, shrinks the error by $(\kappa-1)/(\kappa+1)$ per step;
# heavy-ball momentum at its best $\eta$ and $\beta$ shrinks it by $(\sqrt\kappa-1)/(\sqrt\kappa+1)$ (Polyak 1964;
# Goh, *Why Momentum Really Works*, Distill 2017). For large $\kappa$ that is about $\kappa$ versus $\sqrt\kappa$
# iterations per digit of accuracy. In words: along the flat direction momentum's velocity builds up to
# $1/(1-\beta)$ times the step (ten times at the common $\beta = 0.9$; at the optimal $\beta$ for $\kappa = 20$ used
# below, 0.40, only 1.7 times), while across the ravine the back-and-forth gradients cancel.
#
# First the paths, on a quadratic with $\kappa = 20$: gradient descent and momentum at their optimal settings,
# Adam at the best of four rates.

# %%
best20 = geometry.optimal_settings(20.0)
bowl, start = geometry.quadratic(20.0), geometry.STARTS["quadratic"]
adam_lr, adam_run = geometry.tuned_run(bowl, start, "adam", [0.01, 0.03, 0.1, 0.3], 40)
quad_runs = {
    f"Adam, tuned lr {adam_lr:g}": adam_run,
    f"momentum, optimal lr {best20['momentum_lr']:.3f}, β {best20['momentum_beta']:.2f}":
        geometry.trajectory(bowl, start, "momentum", best20["momentum_lr"], 40, momentum=best20["momentum_beta"]),
    f"SGD, optimal lr {best20['gd_lr']:.3f}": geometry.trajectory(bowl, start, "sgd", best20["gd_lr"], 40),
}
fig = geometry.plot_trajectories("quadratic", quad_runs, kappa=20.0, title="Paths on a quadratic, κ = 20 (40 steps)")

# %% [markdown]
# Gradient descent (thin line, on top) zig-zags across the steep direction and crawls along the flat one.
# Momentum overshoots in the steep direction for the first few steps and then shrinks the error far faster
# in both: read the loss panel, not the first zig-zags. Adam divides each coordinate by its own gradient
# scale, so it heads almost diagonally to the minimum, then circles, because a step of about $\eta$ per
# coordinate is too large to settle. Rosenbrock's curved valley is harder; each optimizer gets the best of a
# small grid of rates:

# %%
valley, start = geometry.rosenbrock, geometry.STARTS["rosenbrock"]
grids = {"adam": [0.03, 0.1, 0.3, 1.0], "momentum": [5e-4, 1e-3, 2e-3, 4e-3], "sgd": [1e-3, 2e-3, 3e-3, 4e-3]}
banana = {}
for name, lrs in grids.items():
    lr, run = geometry.tuned_run(valley, start, name, lrs, PATH_STEPS)
    banana[f"{name}, tuned lr {lr:g}"] = run
fig = geometry.plot_trajectories("rosenbrock", banana, title=f"Rosenbrock's valley, rates tuned ({PATH_STEPS} steps)")
for name, (path, losses) in banana.items():
    wall = 100 * (path[:, 1] - path[:, 0] ** 2) ** 2                 # the valley-wall term of the loss
    print(f"{name:26s} final loss {losses[-1]:.2g}; wall term below 1 from step {int(np.argmax(wall < 1))}, "
          f"loss below 1 from step {int(np.argmax(np.append(losses, 0) < 1))}")

# %% [markdown]
# All three fall into the valley within a few steps: the wall term $100(y-x^2)^2$ of the loss drops below 1
# within the first ten steps (printed above), because the walls are steep and the gradient points down them.
# The difference is the walk along the curved floor, which takes the total loss below 1 after about a dozen
# steps for momentum and after 70 to 100 for Adam and gradient descent: tuned gradient descent ends short of the minimum at (1, 1),
# its loss two or more orders of magnitude above the others' (printed above), because the rate that keeps it
# stable across the narrow valley is tiny along it; momentum accumulates speed along the floor and gets there;
# Adam takes steps of about $\eta$ per coordinate and gets there too, with a rate a hundred times larger than
# gradient descent's.
#
# **Experiment.** Count iterations to a relative error $\|w_t-w^*\|/\|w_0-w^*\| < 10^{-6}$ on
# $A = \mathrm{diag}(1, \kappa)$ for $\kappa$ = 10, 100 and 1000, each method at its optimal settings, beside
# the iterations the rates predict, $\ln 10^{-6} / \ln(\text{rate})$.

# %%
table = geometry.convergence_table((10, 100, 1000))
show(table)
fig = geometry.plot_error_curves(100.0, steps=table[1]["GD iterations"])

# %% [markdown]
# Gradient descent follows its predicted rate exactly (its measured line covers the dotted prediction).
# Momentum takes somewhat longer than its rate predicts, because at the optimal $\beta$ the two eigenvalues of
# its iteration coincide and add a factor that grows like $t$, but it is still several times faster at
# $\kappa = 100$ and the gap widens with $\kappa$.
#
# **Claim.** Momentum's speed-up over gradient descent *grows* with the condition number: from $\kappa = 100$
# to $\kappa = 1000$ it grows by more than 2 (theory: $\sqrt{10} \approx 3.2$). A constant speed-up, however
# large, would give 1. The quadratic has no randomness, so this holds for every seed.

# %%
speed_up = {row["κ"]: row["speed-up"] for row in table}
claim("momentum's speed-up over gradient descent grows with the condition number (speed-up at 1000 / at 100)",
      speed_up[1000] / speed_up[100], ">", 2.0);

# %% [markdown]
# ### Adam's first step, and what $\epsilon$ does
#
# **Idea.** At step 1 the bias-corrected moments are $\hat m_1 = g_1$ and $\hat v_1 = g_1^2$, so Adam moves every
# coordinate by $\eta\, g_1/(|g_1| + \epsilon) \approx \eta\,\mathrm{sign}(g_1)$: the size of the gradient does not
# matter. $\epsilon$ sets where that stops: for $|g| \ll \epsilon$ the step is $\eta\, g/\epsilon$, plain SGD with
# rate $\eta/\epsilon$. So $\epsilon$ is more than numerical safety: it is a knob between sign-like steps and
# SGD-like steps. Keras' documentation notes that a good $\epsilon$ for Inception on ImageNet was 1.0 or 0.1,
# far from its default 1e-7, and RoBERTa (Liu et al. 2019) raised it to 1e-6 for stability.

# %%
scales = [1e-5, 1e-3, 1e-1, 1e1, 1e3]
first_steps = mechanics.first_step_sizes(scales, lr=1e-2, eps_values=(1e-8, 1e-3))
fig = mechanics.plot_first_steps(scales, first_steps, lr=1e-2)

# %% [markdown]
# **Claim.** With the default $\epsilon$, Adam's first step moves every coordinate by the learning rate to within
# 1%, across gradients spanning eight orders of magnitude (without bias correction it would be
# $\eta(1-\beta_1)/\sqrt{1-\beta_2} \approx 3.2\eta$). With $\epsilon = 10^{-3}$ the two smallest gradients get
# SGD-like steps instead (the third line).

# %%
adam_steps = first_steps["Adam, eps 1e-08"]
claim("Adam's first step moves each coordinate by the learning rate (largest / smallest step)",
      float(adam_steps.max() / adam_steps.min()), "<", 1.01);

# %% [markdown]
# ### Adam after the first step: a signal-to-noise ratio
#
# **Idea.** After a few steps $\hat m$ averages the recent gradients (noise cancels) while $\sqrt{\hat v}$ measures
# their typical size (noise included). Their ratio is therefore close to the gradient's *signal-to-noise ratio*:
# where gradients agree from step to step Adam takes full steps, where they mostly disagree it barely moves.
# For a gradient $1 + \sigma\,\xi_t$ with fresh noise $\xi_t$ each step, the prediction is
# $1/\sqrt{1+\sigma^2}$. SGD's net progress is the mean gradient, 1, whatever the noise.
#
# **Experiment.** 400 steps on 500 copies of a weight for each noise level, measuring the net distance travelled
# per step in units of the learning rate.

# %%
sigmas = [0.1, 0.3, 1.0, 3.0, 10.0]
average = mechanics.average_step_under_noise(sigmas, seed=cfg.seed)
fig = mechanics.plot_average_step(sigmas, average)

# %% [markdown]
# **Claims.** Adam's average progress follows $1/\sqrt{1+\sigma^2}$ to within 0.03 at every noise level, while
# SGD's stays at the mean gradient (between 0.85 and 1.15 of its noiseless value at $\sigma = 10$).

# %%
snr = average["signal-to-noise 1/sqrt(1+sigma^2)"]
claim("Adam's average progress per step follows the gradient's signal-to-noise ratio (largest absolute gap)",
      float(np.max(np.abs(average["Adam"] - snr))), "<", 0.03)
claim("SGD's average progress does not shrink with noise (at the largest noise / at the smallest)",
      float(average["SGD"][-1] / average["SGD"][0]), "between", (0.85, 1.15));

# %% [markdown]
# **Consequence.** Adam's first steps are full-size in *every* direction, including directions whose gradient
# is pure noise, and its $\hat v$ then rests on very few samples: that is the usual argument for **warmup** with
# Adam (Liu et al. 2020). Later, Adam slows down exactly where the gradient is noisy. $\beta_2$ sets how long
# $\hat v$ remembers: about $1/(1-\beta_2)$ steps, a thousand at the default 0.999. Large language models use 0.95–0.98:
# when a gradient suddenly grows, a long memory keeps $\hat v$ small and the step $\hat m/\sqrt{\hat v}$ becomes huge,
# one known source of loss spikes. Momentum's own advantage
# is geometric: it grows like $\sqrt\kappa$, so it matters most on badly conditioned problems.
#
# ### Explorer: paths on the quadratic and on Rosenbrock
#
# Choose an optimizer, its rate, momentum ($\beta_1$ for Adam) and $\beta_2$ ($\alpha$ for RMSprop), and the
# condition number; plain SGD at the same rate is drawn for comparison. Controls that do not apply to the
# choice are greyed out. Try: SGD at a rate just above $2/\kappa$ (it diverges); momentum 0.99 (it spirals);
# Adam on Rosenbrock.

# %%
explore(geometry.explore_trajectory,
        optimizer=Choice(list(geometry.PATH_OPTIMIZERS), value="momentum"),
        surface=Choice(list(geometry.SURFACES)),
        lr=Slider(1e-4, 1.0, 0.1, 0.05, log=True),
        momentum=Slider(0.0, 0.99, 0.01, 0.9, enabled_if=geometry.uses_momentum),
        beta2=Slider(0.9, 0.999, 0.001, 0.999, enabled_if=geometry.uses_beta2),
        kappa=Slider(1, 200, 1, 20, enabled_if=geometry.uses_kappa),
        steps=Slider(10, 300, 10, 100, label="steps"),
        compare_sgd=Toggle(True, label="also draw plain SGD at the same rate"))

# %% [markdown]
# ## 3. Adam vs SGD with momentum on real data
#
# **Idea.** Both optimizers train the same models on MNIST-1D (Greydanus 2020: 10 classes of length-40 signals,
# hard enough that models differ): a two-hidden-layer MLP and a small 1-D CNN. A fair comparison tunes each
# optimizer's rate, so every run below belongs to a small sweep, and each optimizer is represented by its best
# rate (final validation accuracy). SGD uses momentum 0.9, Adam its defaults. A best rate at the *edge* of its
# grid is flagged: there the sweep has not bracketed the optimum.

# %%
sweeps = {f"{kind} {name}": training.lr_sweep(kind, data, name, lrs, EPOCHS, seed=cfg.seed)
          for kind, grid in (("mlp", MLP_LRS), ("cnn", CNN_LRS)) for name, lrs in grid.items()}
fig = training.plot_sweeps(sweeps)
for name, sweep in sweeps.items():
    finals = [history.val_acc[-1] for history in sweep.values()]
    print(f"{name:13s} best lr {training.best_lr(sweep):<6g} final accuracy {min(finals):.3f} to {max(finals):.3f}"
          + ("   <- best rate at the edge of the grid" if training.at_edge(sweep) else ""))

# %%
best = {name: sweep[training.best_lr(sweep)] for name, sweep in sweeps.items()}
best_rates = {name: training.best_lr(sweep) for name, sweep in sweeps.items()}
EARLY = EPOCHS // 4
races = {kind: training.race(best[f"{kind} adam"], best[f"{kind} momentum"], EARLY) for kind in ("cnn", "mlp")}
for kind in races:
    fig = training.plot_runs({f"Adam, lr {best_rates[f'{kind} adam']:g}": best[f"{kind} adam"],
                              f"SGD + momentum, lr {best_rates[f'{kind} momentum']:g}": best[f"{kind} momentum"]},
                             f"{kind.upper()} on MNIST-1D: each optimizer at its best rate")
show([{"model": kind, f"Adam at epoch {EARLY}": r["adam early"], f"SGD + momentum at epoch {EARLY}": r["sgd early"],
       "Adam final": r["adam final"], "SGD + momentum final": r["sgd final"],
       "mean accuracy over epochs, Adam minus SGD": r["mean gap"]} for kind, r in races.items()])

# %% [markdown]
# **What holds across seeds, and what does not.** On the **CNN** Adam's validation curve rises faster in every
# run we made (seeds 0–4, both scales): its accuracy averaged over the epochs was 0.08–0.20 higher at quick
# scale and 0.06–0.12 higher at full scale. *Which ends higher* depends on the budget: in 8 epochs Adam ended
# ahead in every seed; in 20 the tuned SGD with momentum caught up and in some seeds finished level or ahead,
# the pattern Wilson et al. (2017) describe on larger benchmarks. On the **MLP** the two stayed close and the
# sign of the gap changed between seeds. So we claim the CNN's speed gap, and neither final ranking.

# %%
claim("CNN: Adam's validation accuracy averaged over the epochs beats SGD + momentum's (Adam minus SGD)",
      races["cnn"]["mean gap"], ">", 0.0);

# %% [markdown]
# ### Momentum in noisy training: mostly a rescaled learning rate
#
# The $\sqrt\kappa$ speed-up of section 2 is a property of *exact* gradients. With mini-batch noise the
# picture changes: over many steps the velocity is roughly the average gradient times $1/(1-\mu)$, so momentum
# 0.9 at rate $\eta$ should behave much like plain SGD at $10\eta$. Smith et al. (2018) put it in one formula:
# the noise scale of SGD is about $\eta N / (B(1-\mu))$ for $N$ examples and batch size $B$, and runs with the
# same noise scale train alike. Here is that test on the MLP: momentum 0.9 at $\eta$ against plain SGD at $3\eta$,
# $10\eta$ and $30\eta$. If momentum were simply "faster", any large enough rate would match it; if it is a
# ten-times rate, $10\eta$ should match it better than both its neighbours.

# %%
momentum_run = sweeps["mlp momentum"][BASE_RATE]
plain = {factor: training.train_on_mnist1d("mlp", data, "sgd", factor * BASE_RATE, EPOCHS, seed=cfg.seed)
         for factor in (3, 10, 30)}
fig = training.plot_runs({f"momentum 0.9, lr {BASE_RATE:g}": momentum_run}
                         | {f"plain SGD, lr {factor * BASE_RATE:g} ({factor}x)": run for factor, run in plain.items()},
                         "MLP: momentum against plain SGD at three, ten and thirty times the rate")
rate_gaps = {factor: training.curve_gap(momentum_run, run) for factor, run in plain.items()}
print("mean |difference in validation accuracy| from the momentum run:",
      ", ".join(f"{factor}x rate {gap:.3f}" for factor, gap in rate_gaps.items()))

# %% [markdown]
# **Claim.** Momentum 0.9 at rate $\eta$ tracks plain SGD at $10\eta$ more closely than at $3\eta$ or $30\eta$: the
# ratio of the gap at $10\eta$ to the smaller of the other two is below 1 (measured 0.34–0.79 at quick scale, 0.28–0.45 at full).
# So in stochastic training "add momentum" is largely "multiply the rate by $1/(1-\mu)$"; its geometric advantage
# shows in deterministic or large-batch training, and it still smooths the path.

# %%
claim("momentum 0.9 at rate lr tracks plain SGD at 10 lr more closely than at 3 lr or 30 lr (gap ratio)",
      rate_gaps[10] / min(rate_gaps[3], rate_gaps[30]), "<", 1.0);

# %% [markdown]
# ### Batch size and the learning rate
#
# **Idea.** One SGD step on a batch $k$ times larger averages $k$ times more examples, so it has about the same
# expected direction and $1/k$ of the noise; to cover the same ground per epoch, it needs a $k$ times larger
# rate. That is the *linear scaling rule* (Goyal et al. 2017), who trained ImageNet with batch 8192 by scaling
# the rate and warming it up over the first epochs; it breaks down once the rate nears the stability limit.
# For Adam a square-root rule is the usual starting point (Malladi et al. 2022).
#
# **Experiment.** The MLP with SGD + momentum at batch 128 and rate $\eta$ (from the sweep), then at batch 512
# with $\eta$ and with $4\eta$, and, as a control, batch 128 with $4\eta$ (does $4\eta$ simply train faster?).

# %%
batch_runs = {f"batch 128, lr {BASE_RATE:g}": momentum_run}
for batch, rate in ((512, 4 * BASE_RATE), (512, BASE_RATE), (128, 4 * BASE_RATE)):
    batch_runs[f"batch {batch}, lr {rate:g}"] = training.train_on_mnist1d("mlp", data, "momentum", rate, EPOCHS,
                                                                          batch_size=batch, seed=cfg.seed)
fig = training.plot_runs(batch_runs, "MLP: batch size and learning rate (SGD + momentum)")
gaps = {name: training.curve_gap(momentum_run, run, "train_loss") for name, run in list(batch_runs.items())[1:]}
show([{"run": name, "mean |difference in training loss| from batch 128": gap} for name, gap in gaps.items()])

# %% [markdown]
# **Claim.** At batch 512 the four-times rate reproduces the batch-128 training curve far more closely than
# either control: the unscaled rate at batch 512 (too slow) and the four-times rate at batch 128 (too fast).
# The ratio of gaps is below 0.5 (measured 0.27–0.35 at quick scale, 0.18–0.22 at full).

# %%
scaled_gap = gaps[f"batch 512, lr {4 * BASE_RATE:g}"]
control_gaps = [gaps[f"batch 512, lr {BASE_RATE:g}"], gaps[f"batch 128, lr {4 * BASE_RATE:g}"]]
claim("at 4x the batch, 4x the rate tracks the original curve more closely than either control (gap ratio)",
      scaled_gap / min(control_gaps), "<", 0.5);

# %% [markdown]
# **And for Adam?** The same test with Adam at batch 128 and $\eta = 0.01$ (from the sweep), against batch 512 at
# $2\eta$ (the square-root rule) and $4\eta$ (the linear rule):

# %%
adam_base = sweeps["mlp adam"][0.01]
adam_gaps = {factor: training.curve_gap(adam_base, training.train_on_mnist1d(
    "mlp", data, "adam", factor * 0.01, EPOCHS, batch_size=512, seed=cfg.seed), "train_loss") for factor in (1, 2, 4)}
show([{"batch 512, Adam at": f"{factor}x the rate", "mean |difference in training loss| from batch 128": gap}
      for factor, gap in adam_gaps.items()])

# %% [markdown]
# Neither rule reproduces Adam's batch-128 curve here: every gap is several times the SGD rule's. Across seeds
# 0–4 the $2\eta$ gap was 0.82–1.07 times the $4\eta$ gap at quick scale (a tie) and 0.61–1.05 times at full scale
# (a slight edge for the square-root rule). Adam's step is already normalized by the gradient's size, so the rate
# does not trade against the noise one for one; the square-root rule is a place to start a sweep, not a law, and
# it is not claimed here.

# %% [markdown]
# ### Why language models are trained with Adam: rare tokens
#
# Transformers are trained with Adam-family optimizers almost without exception, and SGD does poorly on them.
# One measured reason (Kunstner et al. 2024) is the *heavy tail* of language: word frequencies follow Zipf's
# law, so most rows of an embedding table receive a gradient only in the rare batches that contain their
# token, and the frequent tokens set the curvature, hence the largest stable SGD rate. Adam's per-coordinate
# scale gives every row steps of about $\eta$ whenever its token appears. (Other reasons: gradients of
# attention models are heavy-tailed (Zhang et al. 2020), and the curvature differs block by block.)
#
# **Experiment.** Fit one weight per token (a one-dimensional embedding) so that each 8-token example's sum
# matches a target, with 500 tokens drawn by Zipf's law, and, as the control, drawn uniformly. Each optimizer
# gets the best of three rates.

# %%
token_lrs = {"momentum": [0.1, 0.3, 1.0], "adam": [0.03, 0.1, 0.3]}
tokens = {zipf: mechanics.rare_token_comparison(token_lrs, seed=cfg.seed, vocabulary=500, steps=200, zipf=zipf)
          for zipf in (True, False)}
show([{"tokens": "Zipf" if zipf else "uniform", "optimizer": name, "best lr": run["lr"],
       "final loss": run["final loss"], "error, 10 most frequent": run["frequent error"],
       "error, rarer half": run["rare error"]} for zipf, runs in tokens.items() for name, run in runs.items()])
loss_ratio = {zipf: runs["momentum"]["final loss"] / runs["adam"]["final loss"] for zipf, runs in tokens.items()}

# %% [markdown]
# **Claims.** With Zipf-distributed tokens tuned SGD + momentum ends with a loss more than three times Adam's
# (6–11 times across seeds 0–4); with equally frequent tokens it does not (ratio below 1.5; measured 0.6–0.8,
# so SGD was in fact better). The advantage comes from the frequency imbalance, not from Adam being better at
# this problem.

# %%
claim("with Zipf-distributed tokens Adam reaches a far lower loss than tuned SGD + momentum (loss ratio SGD / Adam)",
      loss_ratio[True], ">", 3.0)
claim("with equally frequent tokens Adam has no such advantage (loss ratio SGD / Adam)", loss_ratio[False], "<", 1.5);

# %% [markdown]
# **Consequence.** With a small budget and little tuning, Adam is the safer default: its best rate is easy to
# find and it reaches a good model sooner, and on heavy-tailed data (language) it is the standard
# choice. SGD with momentum and a schedule can match or beat it at the end of a long, well-tuned run in vision
# (Wilson et al. 2017), and Loshchilov & Hutter (2019) closed much of that gap with decoupled weight decay and
# a schedule. When you change the batch size, change the rate with it.
#
# ## 4. L2 regularisation vs decoupled weight decay (why AdamW)
#
# **Idea.** "Weight decay" means shrinking every weight a little each step. With plain SGD, adding
# $\tfrac{\lambda}{2}\|w\|^2$ to the loss does exactly that: the extra gradient $\lambda w$ gives
# $w \leftarrow (1-\eta\lambda)w - \eta g$. Inside Adam the extra gradient is divided by $\sqrt{\hat v}$ like any
# other gradient, so the decay a weight feels depends on its gradient *history*: weights with large or noisy
# gradients are barely decayed, weights with small gradients are decayed hard. AdamW moves the decay out of
# the gradient: $w \leftarrow (1-\eta\lambda)w - \eta\,\hat m/(\sqrt{\hat v}+\epsilon)$, the same fraction for every
# weight (Loshchilov & Hutter 2019).
#
# **Two exact demonstrations** ($\eta = 10^{-3}$, $\lambda = 0.1$). Left: the data gradient is exactly zero for 100
# steps, weights of size 0.01, 1 and 100. Right: weights start at 1 and the data gradient is pure noise of size
# $\sigma$ (mean zero, so any systematic shrinkage is the decay's) for 1000 steps.

# %%
magnitudes, noise_levels = (0.01, 1.0, 100.0), (1e-3, 0.1, 10.0)
at_zero = mechanics.shrinkage_at_zero_gradient(magnitudes, lr=1e-3, weight_decay=0.1, steps=100)
under_noise = mechanics.shrinkage_under_noise(noise_levels, lr=1e-3, weight_decay=0.1, steps=1000, seed=cfg.seed)
fig = mechanics.plot_shrinkage(magnitudes, at_zero, noise_levels, under_noise)
show([{"setting": f"weight {m:g}, zero gradient", **{k: f"{v[i]:.3g}%" for k, v in at_zero.items()}}
      for i, m in enumerate(magnitudes)]
     + [{"setting": f"weight 1, noise σ {s:g}", **{k: f"{v[i]:.3g}%" for k, v in under_noise.items()}}
        for i, s in enumerate(noise_levels)])

# %% [markdown]
# **Claims.** AdamW shrinks every weight by the same fraction, $1-(1-\eta\lambda)^{t}$, whatever its size and
# whatever its gradients: the spread is round-off with a zero gradient and under 20% of the mean with noise.
# Adam + L2 turns the decay into a step of about $\eta$ whatever the weight's size, so the small weight is wiped
# out while the large one barely moves (ratio above 100); and with noisy gradients the decay nearly vanishes:
# the weight with noise 1e-3 shrank more than ten times as much as the one with noise 10. *That* is the
# mechanism of the AdamW paper: the effective decay of Adam + L2 depends on the gradient history.

# %%
claim("AdamW shrinks weights of every size by the same fraction (relative spread, zero gradient)",
      float(np.ptp(at_zero["AdamW"]) / at_zero["AdamW"].mean()), "<", 1e-6)
claim("Adam + L2 shrinks the 0.01 weight far more than the 100 weight (ratio of % shrinkage)",
      float(at_zero["Adam + L2"][0] / at_zero["Adam + L2"][2]), ">", 100)
claim("Adam + L2 decays a weight with quiet gradients far more than one with noisy gradients (ratio)",
      float(under_noise["Adam + L2"][0] / under_noise["Adam + L2"][-1]), ">", 10)
claim("AdamW's decay does not depend on the gradient noise (relative spread of % shrinkage)",
      float(np.ptp(under_noise["AdamW"]) / under_noise["AdamW"].mean()), "<", 0.2);

# %% [markdown]
# ### The learning-rate × weight-decay grid
#
# Loshchilov & Hutter (2019) plotted final accuracy over a grid of rates and decays. Here is the same grid for
# the MLP on MNIST-1D; weight decay skips biases, as recommended (decaying a bias only shifts a unit).

# %%
grids = {name: training.decay_grid(data, name, GRID_LRS, GRID_WDS, GRID_EPOCHS, seed=cfg.seed)
         for name in ("adam", "adamw")}
fig = training.plot_grids(grids, GRID_LRS, GRID_WDS)
at_01 = GRID_WDS.index(0.1)
show([{"optimizer": name, "best accuracy": grid.max(), "best at decay 0.1": grid[at_01].max(),
       "best lr for each decay (small to large)": ", ".join(training.best_rates_by_decay(grid, GRID_LRS))}
      for name, grid in grids.items()])

# %% [markdown]
# **What the grid shows, honestly.** At their best settings the two tie: on this small problem AdamW is not
# the better optimizer. What differs is what the same number $\lambda$ means. Passed to AdamW, $\lambda = 0.1$ (a
# common setting for transformers) is a gentle decay; passed to `torch.optim.Adam` it becomes an L2 term that
# Adam's normalization turns into a strong, gradient-dependent decay, and accuracy falls at every rate. That is
# a statement about scales, not superiority: Adam + L2 simply wants a smaller coefficient.
#
# The paper's second finding, that Adam + L2's best rate moves as $\lambda$ changes while AdamW's stays put, is
# **not shown here**. Where every rate of a row sits at chance (the row is marked "dead") there is no best rate
# to read, and in the other rows the best rates differ by less than one run's seed-to-seed noise; showing the
# shift would take several seeds per cell. (PyTorch's AdamW also multiplies the decay by $\eta$, so rate and
# decay are not fully independent there either.)
#
# **Claims.** At $\lambda = 0.1$ Adam + L2's best accuracy falls more than 0.1 below its overall best (measured
# 0.15–0.23 below at quick scale, 0.22–0.28 at full), and AdamW's best at the same $\lambda$ ends more than 0.05 above Adam + L2's (measured
# 0.16–0.24 at quick scale, 0.19–0.29 at full): the same number is a far stronger decay inside Adam. At their best settings the two are
# within 0.05 of each other (AdamW minus Adam + L2: −0.013 to +0.033).

# %%
claim("passed the same decay 0.1, AdamW ends well above Adam + L2 (best accuracy in that row, difference)",
      float(grids["adamw"][at_01].max() - grids["adam"][at_01].max()), ">", 0.05)
claim("Adam + L2 with decay 0.1 loses more than 0.1 accuracy (best in that row minus best overall)",
      float(grids["adam"][at_01].max() - grids["adam"].max()), "<", -0.1)
claim("at their best settings AdamW and Adam + L2 tie (AdamW best minus Adam + L2 best)",
      float(grids["adamw"].max() - grids["adam"].max()), "between", (-0.05, 0.05));

# %% [markdown]
# ### Weight decay on a layer followed by normalization: an effective learning rate
#
# **Idea.** If a weight matrix $W$ feeds a normalization layer (BatchNorm, LayerNorm), the loss does not depend on
# $W$'s scale: $L(cW) = L(W)$. Then the gradient is perpendicular to $W$ and shrinks like $1/\|W\|$, so a step
# turns $W$'s direction by about $\eta\|\nabla L\|/\|W\| \propto \eta/\|W\|^2$. Without decay every step adds a
# perpendicular component and $\|W\|$ only grows, so the effective rate $\eta/\|W\|^2$ decays by itself. Weight
# decay keeps $\|W\|$ small: here it cannot make the function simpler (the function ignores the scale); it
# keeps the effective learning rate up (van Laarhoven 2017; Zhang et al. 2019).
#
# **Experiment.** A linear layer without bias, then LayerNorm without gain, ReLU and a linear head; SGD with
# momentum 0.9 at $\eta = 0.1$, decaying only the normalized weight, with $\lambda = 0$ and $\lambda = 0.01$. First the
# invariance itself:

# %%
probe = training.scale_invariant_model(data, seed=cfg.seed)
print({name: f"{value:.6f}" for name, value in training.scale_invariance(probe, data, factor=10.0).items()})
normalized = {f"weight decay {wd:g}": training.decay_before_normalization(data, wd, lr=0.1, epochs=EPOCHS,
                                                                           seed=cfg.seed) for wd in (0.0, 0.01)}
fig = training.plot_normalized_runs(normalized)
turn_ratio = normalized["weight decay 0.01"]["turns"][-1] / normalized["weight decay 0"]["turns"][-1]

# %% [markdown]
# Multiplying $W$ by 10 left the loss unchanged and divided the gradient by 10. **Claim.** In the last epoch
# the decayed weight still turned more than 1.5 times as far as the undecayed one (1.8–2.0 times at quick
# scale, 2.8–3.5 at full), because its norm stayed small. So with normalization layers, weight decay and the
# learning rate are entangled: changing $\lambda$ changes the effective rate, and a "regularization" sweep may
# really be a learning-rate sweep.

# %%
claim("weight decay keeps a normalized weight turning faster (degrees in the last epoch, decay / no decay)",
      float(turn_ratio), ">", 1.5);

# %% [markdown]
# **Consequence.** With Adam, use AdamW and tune $\lambda$ on its own scale: typical values are 0.01–0.1, far
# larger than the 1e-4 that works as an L2 coefficient. Exclude biases and normalization gains from decay. If
# you must use `torch.optim.Adam(weight_decay=...)`, know that it is L2, not decay. In networks with
# normalization layers, treat $\lambda$ and $\eta$ as one knob pair.
#
# ## 5. Learning-rate schedules, warmup, dead networks and clipping
#
# **Idea.** A constant rate is a compromise: large enough to make progress early, then too large to settle,
# because mini-batch noise keeps the weights bouncing around the minimum with an amplitude that grows with
# $\eta$. Decaying the rate late lets the loss settle; warming it up at the start avoids large, poorly
# informed first steps. The common shapes, as multiples of the peak rate: linear and cosine decay; warmup then
# cosine; one-cycle (Smith & Topin 2019: a long warmup, then annealing); warmup-stable-decay (WSD, used for
# recent language models because training can be stopped or extended before the final decay).

# %%
total_steps = EPOCHS * math.ceil(len(data.y_train) / 128)
fig = training.plot_schedules(total_steps, ("constant", "step", "cosine", "linear"), "Schedules without warmup")
fig = training.plot_schedules(total_steps, ("warmup", "warmup_cosine", "one_cycle", "wsd"), "Schedules with warmup")

# %% [markdown]
# **Experiment: warmup that rescues a rate.** Adam at $\eta = 0.1$ on the CNN, about three times its best rate, with a
# constant rate (the run from the sweep), 10% linear warmup, cosine decay, warmup + cosine, and WSD.

# %%
schedules = {"constant": sweeps["cnn adam"][HIGH_RATE]}
schedules |= {name: training.train_on_mnist1d("cnn", data, "adam", HIGH_RATE, EPOCHS, schedule=name, seed=cfg.seed)
              for name in ("warmup", "cosine", "warmup_cosine", "wsd")}
fig = training.plot_runs(schedules, f"CNN, Adam at peak lr {HIGH_RATE:g}, by schedule",
                         ("train_loss", "val_loss", "val_acc"), reference=math.log(10), dashed=("wsd",))
show([{"schedule": name, "final validation accuracy": h.val_acc[-1], "final training loss": h.train_loss[-1],
       "lowest validation loss": min(h.val_loss), "at epoch": h.epoch[int(np.argmin(h.val_loss))]}
      for name, h in schedules.items()])

# %% [markdown]
# **Claims.** Warmup rescues the rate: it adds more than 0.05 to the final validation accuracy, both without
# decay (constant vs warmup) and with it (cosine vs warmup + cosine). Across seeds 0–4 the gains were 0.12–0.65
# at quick scale and 0.14–0.78 at full: in some seeds the runs without warmup died outright (accuracy 0.10,
# loss ln 10), in others they limped. And once warmup is in place, decaying the rate ends with a lower training
# loss than holding it (warmup + cosine / warmup below 0.9).
#
# Lower *training* loss is not a better model: at full scale the validation loss of warmup + cosine stops
# improving a few epochs before the end while its training loss keeps falling, the start of overfitting (the
# subject of notebook 03). WSD ended within 0.05 of warmup + cosine at quick scale and 0.035–0.07 below it at
# full scale: on this problem cosine's longer time at low rates paid off.

# %%
claim("warmup rescues a high Adam rate without decay (final accuracy, warmup minus constant)",
      schedules["warmup"].val_acc[-1] - schedules["constant"].val_acc[-1], ">", 0.05)
claim("warmup rescues a high Adam rate with cosine decay (final accuracy, warmup + cosine minus cosine)",
      schedules["warmup_cosine"].val_acc[-1] - schedules["cosine"].val_acc[-1], ">", 0.05)
claim("with warmup, cosine decay ends with a lower training loss than a constant peak (ratio)",
      schedules["warmup_cosine"].train_loss[-1] / schedules["warmup"].train_loss[-1], "<", 0.9);

# %% [markdown]
# **Control: warmup at a good rate.** If warmup were simply better, it would help at any rate. The same 10% warmup
# at $\eta = 0.03$, a rate from the sweep's good range, against the constant-rate run from the sweep:

# %%
warmup_gain = {HIGH_RATE: schedules["warmup"].val_acc[-1] - schedules["constant"].val_acc[-1],
               GOOD_RATE: training.train_on_mnist1d("cnn", data, "adam", GOOD_RATE, EPOCHS, schedule="warmup",
                                                    seed=cfg.seed).val_acc[-1] - sweeps["cnn adam"][GOOD_RATE].val_acc[-1]}
show([{"peak lr": rate, "final accuracy, warmup minus constant": gain} for rate, gain in warmup_gain.items()])

# %% [markdown]
# **Claim.** Warmup's gain at the high rate exceeds its gain at the good rate by more than 0.05. At the good rate
# it changed the final accuracy by −0.04 to +0.03 across seeds 0–4 at both scales, within one run's noise: warmup rescues rates that are too
# high for the first steps; it is not a free improvement.

# %%
claim("warmup helps at the high rate far more than at a good rate (gain at the high rate minus gain at the good)",
      warmup_gain[HIGH_RATE] - warmup_gain[GOOD_RATE], ">", 0.05);

# %% [markdown]
# ### A loss stuck at ln 10: a dead network
#
# A 10-class classifier that outputs the same logits for every input has loss $\ln 10 \approx 2.30$, and a loss
# that sits exactly there after a blow-up usually means the network died. Recall Adam's first step: it moves
# *every* weight by about $\eta$. At $\eta = 1$ that is ten times the weights' initial size, the next layer's
# inputs become huge, its ReLUs are pushed negative for every input, and a unit that is zero for every input
# passes no gradient, so nothing can revive it. Adam on the MLP for a few hundred mini-batches at $\eta = 1$, at
# a rate from the sweep's good range, at a ten-times smaller one, and SGD + momentum at its good rate; the table
# also counts the dead units of the untrained network.

# %%
untrained = stability.dead_unit_fractions(training.build_model("mlp", data, cfg.seed), data.x_val)
dead = {}
for label, name, rate in (("Adam, lr 1", "adam", 1.0), ("Adam, lr 0.01", "adam", 0.01),
                          ("Adam, lr 0.001", "adam", 1e-3), ("SGD + momentum, lr 0.1", "momentum", 0.1)):
    model = training.build_model("mlp", data, cfg.seed)
    dead[label] = stability.train_steps(model, data, name, rate, STEPS, seed=cfg.seed)
    dead[label]["dead units per layer"] = stability.dead_unit_fractions(model, data.x_val)
    dead[label]["validation loss"] = evaluate(model, data.x_val, data.y_val)[0]
fig = stability.plot_losses({label: run["losses"] for label, run in dead.items()},
                            "MLP: a rate that kills the network, and working rates", reference=math.log(10))
show([{"run": "untrained", "mean loss, last 20 steps": "no training", "dead units, hidden layer 1": untrained[0],
       "dead units, hidden layer 2": untrained[1]}]
     + [{"run": label, "mean loss, last 20 steps": float(np.mean(run["losses"][-20:])),
         "dead units, hidden layer 1": run["dead units per layer"][0],
         "dead units, hidden layer 2": run["dead units per layer"][1]} for label, run in dead.items()])

# %% [markdown]
# **Claims.** At $\eta = 1$ the loss first grows more than tenfold, then settles within 0.1 of $\ln 10$ with at
# least 90% of the second hidden layer dead (all of it in most seeds, 63 of 64 units in one). The control at
# $\eta = 0.01$ trains (its last losses are below 70% of $\ln 10$), so the optimizer is fine: the rate killed the
# network. Even Adam's working rate kills some units: at $\eta = 0.01$ more of the second layer died than under
# SGD + momentum at its good rate (difference above 0.03; measured 0.09–0.17), while the untrained network and
# Adam at $\eta = 0.001$ had almost none. Adam's early steps are large, whatever the gradient.

# %%
killed, working = dead["Adam, lr 1"], dead["Adam, lr 0.01"]
claim("Adam at lr 1: the loss first grows more than tenfold (max loss / first loss)",
      stability.loss_growth(killed["losses"]), ">", 10)
claim("Adam at lr 1: the loss then sits at ln 10 (|mean of the last 20 losses - ln 10|)",
      abs(float(np.mean(killed["losses"][-20:])) - math.log(10)), "<", 0.1)
claim("Adam at lr 1: almost every unit of the second hidden layer is dead (fraction dead)",
      killed["dead units per layer"][1], ">=", 0.9)
claim("Adam at lr 0.01 trains (mean of the last 20 losses / ln 10)",
      float(np.mean(working["losses"][-20:])) / math.log(10), "<", 0.7)
claim("Adam at lr 0.01 kills more second-layer units than SGD + momentum at lr 0.1 (difference in fraction dead)",
      working["dead units per layer"][1] - dead["SGD + momentum, lr 0.1"]["dead units per layer"][1], ">", 0.03);

# %% [markdown]
# ### Clipping: a fix for rare, huge gradients
#
# **Idea.** Gradient clipping rescales the whole gradient to a maximum norm $c$ whenever it is longer
# (Pascanu et al. 2013): no single step can move the weights by more than $\eta c$, and steps with ordinary
# gradients are untouched. The obvious alternative is a lower rate, which also tames the huge steps but slows
# every other step too: that is the control here.
#
# **Experiment.** Corrupt 0.3% of the training inputs by a factor of 100 (a sensor reporting in the wrong
# unit), then train the MLP with SGD + momentum at $\eta = 0.1$ (a good rate on clean data), with and without
# clipping at norm 1, and at rates three and ten times lower without clipping. Each run is scored on the clean
# validation set. A second control asks what clipping costs when nothing is wrong: the clean-data run at
# $\eta = 0.1$ from the previous cell, with and without clipping.

# %%
corrupted = stability.corrupt_inputs(data, fraction=0.003, scale=100.0, seed=cfg.seed)
clipping = {}
for label, rate, clip in (("lr 0.1", 0.1, None), ("lr 0.1, clipped at norm 1", 0.1, 1.0),
                          ("lr 0.033", 0.1 / 3, None), ("lr 0.01", 0.01, None)):
    model = training.build_model("mlp", data, cfg.seed)
    clipping[label] = stability.train_steps(model, corrupted, "momentum", rate, STEPS, clip_norm=clip, seed=cfg.seed)
    clipping[label]["validation loss"] = evaluate(model, data.x_val, data.y_val)[0]
model = training.build_model("mlp", data, cfg.seed)
clean = {"clean, lr 0.1": dead["SGD + momentum, lr 0.1"],
         "clean, lr 0.1, clipped at norm 1": stability.train_steps(model, data, "momentum", 0.1, STEPS, clip_norm=1.0,
                                                                   seed=cfg.seed)}
clean["clean, lr 0.1, clipped at norm 1"]["validation loss"] = evaluate(model, data.x_val, data.y_val)[0]
fig = stability.plot_losses({label: run["losses"] for label, run in clipping.items()}, window=10,
                            title="SGD + momentum on data with 0.3% corrupted inputs", reference=math.log(10))
show([{"run": label, "validation loss": run["validation loss"], "share of steps clipped": run["clipped fraction"]}
      for label, run in (clipping | clean).items()])

# %% [markdown]
# **Claims.** Without clipping the good rate fails on the corrupted data (validation loss more than 1.3 times
# the clipped run's; 1.5–1.86 across seeds 0–4 and both scales). Clipping at that rate ends with a lower
# validation loss than the better of the two lower rates (ratio below 0.9; measured 0.735–0.85). And on clean data
# clipping costs nothing: the clipped run's validation loss is within 5% of the unclipped one's (measured
# 0.97–1.02). Note the share of steps clipped: norm 1 sits near this network's typical gradient norm, so
# clipping acts on a similar share of steps with clean and with corrupted data; the share alone says nothing
# about the bad batches. In practice: clip at a norm a little above the typical gradient norm (log it), and
# treat frequent clipping as a sign that the rate is too high.

# %%
best_lower = min(clipping["lr 0.033"]["validation loss"], clipping["lr 0.01"]["validation loss"])
clipped = clipping["lr 0.1, clipped at norm 1"]
claim("without clipping the good rate fails on corrupted data (validation loss, unclipped / clipped)",
      clipping["lr 0.1"]["validation loss"] / clipped["validation loss"], ">", 1.3)
claim("clipping beats lowering the rate (validation loss, clipped / better of the lower rates)",
      clipped["validation loss"] / best_lower, "<", 0.9)
claim("on clean data clipping costs nothing (validation loss, clipped / unclipped)",
      clean["clean, lr 0.1, clipped at norm 1"]["validation loss"] / clean["clean, lr 0.1"]["validation loss"],
      "between", (0.95, 1.05));

# %% [markdown]
# ### The learning-rate range test
#
# **Idea** (Smith 2017). Instead of a full sweep, run one short training in which the rate grows exponentially
# every mini-batch, from 1e-5 to 10, and watch the smoothed loss: flat while the rate is too small, falling
# fastest in the useful range, turning up as training becomes unstable. A rule of thumb takes a rate about ten
# times below the loss minimum. The sweep of section 3 (final accuracies, right axis) is drawn beside it.

# %%
range_test = stability.lr_range_test(training.build_model("mlp", data, cfg.seed), data, "momentum", seed=cfg.seed)
sweep_accuracy = {lr: history.val_acc[-1] for lr, history in sweeps["mlp momentum"].items()}
fig = stability.plot_range_test(range_test, sweep_accuracy, "Range test (one run) and sweep: SGD + momentum, MLP")
inside = range_test["suggested"] <= best_rates["mlp momentum"] <= range_test["lr_at_min"]
print(f"range test: loss minimum at lr {range_test['lr_at_min']:.2g}, suggestion {range_test['suggested']:.2g}; "
      f"the sweep's best rate {best_rates['mlp momentum']:g} lies {'between' if inside else 'outside'} the two")

# %% [markdown]
# **Reading the two together.** The range test costs 100 mini-batches instead of a sweep's several full runs,
# and it marks the right region: the useful rates lie between its suggestion and its loss minimum (the line
# above says where this run's sweep put its best rate). It does not pick *the* best rate: one noisy run cannot,
# and the sweep's accuracies over the middle of that region differ by a few hundredths, about the
# seed-to-seed spread. The "tenth of the minimum" rule is a safe start on a plateau, not an optimum; in
# short training a rate nearer the minimum often did better. Use the test to place a small sweep, not to
# replace one.
#
# **Consequence: the decision rules.** If the loss explodes or sticks at $\ln C$ early, lower the rate, add
# warmup, or clip (in that order of suspicion). A cheap check while training: the size of each step relative to
# the weights, $\|\Delta W\| / \|W\|$ per layer, which Karpathy's rule of thumb puts near $10^{-3}$; far above
# means the rate is too high for that layer, far below means it barely learns. If it falls too slowly, run a range test. If validation stalls
# while the training loss still bounces, decay the rate; if validation rises while training falls, regularize
# (notebook 03).
#
# ### Explorer: train MNIST-1D with your own settings
#
# Pick an optimizer, rate, weight decay, schedule and model, then press Run (a few seconds per run; the bar
# shows the mini-batches done). Try Adam at 0.1 on the CNN with and without warmup.

# %%
explore(functools.partial(training.explore_training, data=data, seed=cfg.seed), run_button=True,
        optimizer=Choice(["adamw", "adam", "momentum", "nesterov", "rmsprop", "sgd"]),
        lr=Slider(1e-4, 1.0, 0.1, 3e-3, log=True),
        weight_decay=Slider(1e-5, 1.0, 0.1, 1e-2, log=True),
        schedule=Choice([(name.replace("_", " "), name) for name in training.SCHEDULES], value="warmup_cosine"),
        model=Choice([("MLP", "mlp"), ("1-D CNN", "cnn")], label="model"),
        epochs=Slider(2, 40, 1, 10))


# %% [markdown]
# ## Your turn
#
# **1. Nesterov momentum in three lines.** Fill in `nesterov_update` so that it performs one step of
# `torch.optim.SGD(nesterov=True, momentum=momentum, lr=lr)` on a weight tensor `w` with gradient `grad` and
# velocity `velocity` (zero at the start), and returns the new `(w, velocity)`. The checker runs 20 steps
# against PyTorch.

# %%
def nesterov_update(w, grad, velocity, lr, momentum):
    raise NotImplementedError("update the velocity, then step")


mechanics.check_nesterov(nesterov_update);


# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# def nesterov_update(w, grad, velocity, lr, momentum):
#     velocity = momentum * velocity + grad
#     return w - lr * (grad + momentum * velocity), velocity
# ```
# Nesterov steps along the *look-ahead* direction $g + \mu v$; plain heavy-ball momentum steps along $v$.
# </details>
#
# **2. RMSprop's update.** One step of `torch.optim.RMSprop(lr=lr, alpha=alpha, eps=eps)`; compare with
# `optimizers.RMSprop.update` afterwards.

# %%
def rmsprop_update(w, grad, square_avg, lr, alpha, eps):
    raise NotImplementedError("update the running mean of squared gradients, then step")


mechanics.check_rmsprop(rmsprop_update);

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# def rmsprop_update(w, grad, square_avg, lr, alpha, eps):
#     square_avg = alpha * square_avg + (1 - alpha) * grad ** 2
#     return w - lr * grad / (square_avg.sqrt() + eps), square_avg
# ```
# </details>
#
# **3. Read the range test.** Look at the range-test plot and set `my_lr` to the rate you would train with.
# The checker accepts a rate between 1/100 and 1/2 of the loss minimum.

# %%
my_lr = None

stability.check_lr_pick(my_lr, range_test);

# %% [markdown]
# <details><summary>Solution</summary>
#
# About a tenth of the rate at the minimum of the smoothed loss, for example
# `my_lr = range_test["lr_at_min"] / 10` (the test's own suggestion, `range_test["suggested"]`).
# </details>
#
# ## Interview answers
#
# Each answer is one mechanism, one number from the run you just executed, and one decision rule; the
# backing numbers are in the sections above.

# %%
cnn, noisy = races["cnn"], under_noise["Adam + L2"]
later = "caught up by the end" if cnn["sgd final"] >= cnn["adam final"] - 0.02 else "was still behind at the end"
display(Markdown(f"""**"Adam vs SGD with momentum?"** Adam divides each coordinate's momentum by that coordinate's own
gradient RMS, so it moves fast and is easy to tune: on the CNN it reached {cnn['adam early']:.2f} validation accuracy
after {EARLY} epochs against {cnn['sgd early']:.2f} for tuned SGD + momentum, which {later}
({cnn['adam final']:.2f} vs {cnn['sgd final']:.2f}). *Rule:* AdamW for fast iteration and for
transformers; SGD + momentum with a schedule when I can afford to tune it.

**"What is weight decay, and why AdamW?"** Inside Adam an L2 term is divided by the gradient RMS, so its strength
depends on the gradient history: a weight with quiet gradients shrank {noisy[0]:.0f}% and one with noisy gradients
{noisy[-1]:.1g}%, while AdamW shrank both by about {under_noise['AdamW'].mean():.1f}%. *Rule:* AdamW with λ around
0.01–0.1, no decay on biases and norm gains."""))

# %%
display(Markdown(f"""**"How do learning-rate schedules help?"** Warmup avoids huge, uninformed first steps; decay lets the loss settle.
Adam at {HIGH_RATE:g} on the CNN ended at {schedules['cosine'].val_acc[-1]:.2f} with cosine alone and
{schedules['warmup_cosine'].val_acc[-1]:.2f} with warmup + cosine. *Rule:* diverges → lower the rate, warm up or clip;
falls too slowly → range test; validation stalls → decay or regularize.

**"How should the rate change with the batch size?"** A k-times batch averages away noise, so SGD can take
k-times steps: at 4x the batch, 4x the rate tracked the original curve {min(control_gaps) / scaled_gap:.1f} times
more closely than either control. *Rule:* scale linearly with warmup for SGD; for Adam start a sweep at the square-root rule."""))

# %% [markdown]
#
# %%
copies = {row["optimizer"]: row["torch.optim state / parameters"] for row in memory}
display(Markdown(f"""**"What does each optimizer keep in memory?"** Each keeps running statistics of the gradient:
SGD none, momentum a velocity, RMSprop a mean of squared gradients, Adam both. Measured on the CNN: {copies['sgd']:.0f},
{copies['momentum']:.0f}, {copies['rmsprop']:.0f} and {copies['adam']:.1f} extra copies of the parameters. *Rule:*
with gradients and mixed precision budget about 16 bytes per parameter for Adam; if that does not fit, shard the
optimizer state or use a leaner optimizer (SGD + momentum, Adafactor, 8-bit Adam).

**"Why are language models trained with Adam?"** Token frequencies follow Zipf's law, so most embedding rows see a
gradient only rarely, and SGD's rate is capped by the frequent ones; Adam gives every row steps of about η. On the
Zipf toy tuned SGD + momentum ended with {loss_ratio[True]:.0f} times Adam's loss, on uniform tokens
{loss_ratio[False]:.1f} times. *Rule:* AdamW for transformers and heavy-tailed data, with warmup; β₂ of 0.95 rather
than 0.999 if loss spikes appear in long runs."""))

# %% [markdown]
# ## Traps
#
# - **"Adam is always better than SGD."** What Adam reliably bought in section 3 was speed; given 20 epochs,
#   tuned SGD with momentum caught up with it on the CNN in some seeds (Wilson et al. 2017 report SGD ending
#   ahead on larger benchmarks).
# - **"Weight decay and L2 regularisation are the same thing."** Only for plain SGD. Inside Adam the L2 decay of
#   a weight depended on its gradient noise by a factor of more than ten (section 4); AdamW's did not.
# - **"Adam doesn't need a tuned learning rate."** Adam's final accuracy moved by tenths across its sweep, and
#   at $\eta = 1$ it killed the network within a few steps (section 5).
# - **"Momentum makes training a constant factor faster."** On exact gradients its advantage grew with the
#   condition number (section 2); with mini-batch noise it behaved like a ten-times rate (section 3).
# - **"If the loss diverges, switch optimizer."** The same optimizer trained at a lower rate, or with warmup,
#   or with clipping (section 5). And a loss stuck at exactly $\ln C$ is not slow training: it is a dead network.
