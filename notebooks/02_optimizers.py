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
# Every network in this curriculum is trained by an optimizer, and most training failures that are not
# data bugs are optimizer failures: a rate that is too high, a schedule that never lets the loss settle,
# weight decay that silently does something different from what you think. Interviewers probe this because
# the answers separate people who have *tuned* models from people who have read about them.
#
# This notebook builds the four classic optimizers from scratch, checks them step for step against
# `torch.optim`, and then measures the claims people repeat about them: why momentum helps in ravines,
# what Adam's per-coordinate scaling buys, why AdamW exists, and what schedules and warmup do.
#
# **Interview questions answered here**
# 1. Explain SGD, momentum, RMSProp, Adam and AdamW. (sections 1–2)
# 2. "Adam vs SGD with momentum?" (section 3)
# 3. "What is weight decay, and why AdamW?" (section 4)
# 4. "How do learning-rate schedules help?" — including warmup, a range test and divergence (section 5)

# %%
from helpers import setup

cfg = setup("02_optimizers")

# %%
import inspect
import math

import numpy as np
import torch
from IPython.display import Code, Markdown, display

from helpers import optim
from helpers.claims import claim
from helpers.config import pick
from helpers.data import mnist1d
from helpers.plotting import figure, heatmap, layer_bars, learning_curves
from helpers.widgets import Choice, Slider, Toggle, explore

# %% [markdown]
# All sizes of this notebook live in the next cell: `DL_SCALE=quick` (tests) uses small sweeps and few
# epochs, `full` (the default) uses finer sweeps and longer training. Every claim below holds at both.

# %%
RACE_EPOCHS = pick(quick=8, full=30)
RACE_LRS = {"adam": pick(quick=[3e-3, 1e-2, 3e-2], full=[1e-3, 3e-3, 1e-2, 3e-2, 1e-1]),
            "momentum": pick(quick=[0.03, 0.1, 0.3], full=[0.01, 0.03, 0.1, 0.3, 1.0])}
CNN_LRS = {"adam": pick(quick=[1e-2, 3e-2], full=[3e-3, 1e-2, 3e-2, 1e-1]),
           "momentum": pick(quick=[0.1, 0.3], full=[0.03, 0.1, 0.3, 1.0])}
GRID_LRS = pick(quick=[1e-3, 1e-2, 1e-1], full=[3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1])
GRID_WDS = pick(quick=[1e-4, 1e-2, 1.0], full=[1e-4, 1e-3, 1e-2, 1e-1, 1.0])
GRID_EPOCHS = pick(quick=4, full=12)
SCHEDULE_EPOCHS = pick(quick=15, full=30)
SCHEDULE_LR = 0.3                      # SGD + momentum 0.9: a high peak rate, where schedules matter
DIVERGE_STEPS = pick(quick=150, full=300)
data = mnist1d(seed=cfg.seed)
data

# %% [markdown]
# ## 1. The optimizers from scratch, matching `torch.optim`
#
# **Idea.** Every optimizer here does the same thing: look at the gradient, decide on a step, move the
# weights. They differ in how much *memory* they keep (a velocity, a running average of squared gradients)
# and in how they *scale* the step.
#
# **Update rules** (gradient $g_t$, weights $w$, learning rate $\eta$):
#
# | optimizer | update |
# |---|---|
# | SGD | $w \leftarrow w - \eta\, g_t$ |
# | momentum (heavy ball) | $v_t = \mu v_{t-1} + g_t,\quad w \leftarrow w - \eta\, v_t$ |
# | Nesterov | $v_t = \mu v_{t-1} + g_t,\quad w \leftarrow w - \eta\,(g_t + \mu v_t)$ |
# | RMSprop | $s_t = \alpha s_{t-1} + (1-\alpha) g_t^2,\quad w \leftarrow w - \eta\, g_t / (\sqrt{s_t} + \epsilon)$ |
# | Adam | $m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\ v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\ w \leftarrow w - \eta\,\hat m_t / (\sqrt{\hat v_t} + \epsilon)$ with $\hat m_t = m_t/(1-\beta_1^t)$, $\hat v_t = v_t/(1-\beta_2^t)$ |
# | AdamW | $w \leftarrow w(1 - \eta\lambda) - \eta\,\hat m_t / (\sqrt{\hat v_t} + \epsilon)$ |
#
# Weight decay $\lambda$ enters SGD, RMSprop and Adam as an L2 term *added to the gradient*,
# $g_t \leftarrow g_t + \lambda w$ (that is what `torch.optim` does); only AdamW applies it directly to the
# weights. Adam is from Kingma & Ba (2015), RMSprop from Hinton's 2012 lecture notes, AdamW from
# Loshchilov & Hutter (2019), Nesterov momentum in this form from Sutskever et al. (2013).
#
# Each optimizer in `helpers.optim` writes only its `update` rule; a small base class loops over the
# parameters and hands each one its gradient. Here is Adam's (AdamW is the same class with `decoupled = True`):

# %%
display(Code(inspect.getsource(optim.Adam.update), language="python"))

# %% [markdown]
# And SGD with momentum, dampening and Nesterov:

# %%
display(Code(inspect.getsource(optim.SGD.update), language="python"))

# %% [markdown]
# **Experiment.** Train the same small float64 network with ours and with `torch.optim`, 100 steps each,
# over ten settings that exercise every option (momentum, dampening, Nesterov, centred RMSprop, AMSGrad,
# non-default betas, weight decay), and record the largest difference in any weight.

# %%
match = optim.match_table(steps=100, seed=cfg.seed)
display(Markdown("| optimizer | settings | max abs difference after 100 steps |\n|---|---|---|\n" + "\n".join(
    f"| {r['optimizer']} | {r['settings']} | {r['max |difference|']:.1e} |" for r in match)))

# %% [markdown]
# **Claim.** Every from-scratch optimizer matches `torch.optim` to 1e-6 after 100 steps. In float64 the
# differences we see are round-off, around 1e-15 to 1e-10, so the threshold can only fail if an update rule
# is wrong (a misplaced bias correction or $\epsilon$ shows up at 1e-3 or larger).

# %%
worst_match = max(r["max |difference|"] for r in match)
claim("from-scratch SGD/RMSprop/Adam/AdamW match torch.optim over 100 steps (float64)", worst_match, "<", 1e-6);

# %% [markdown]
# **Consequence.** The optimizers are a dozen lines each. Knowing them at this level lets you answer
# follow-ups such as "what does bias correction do at step 1?" or "where does weight decay go in Adam?"
# without hand-waving; the sections below use these classes for every experiment.

# %% [markdown]
# ## 2. Geometry: ravines, momentum and Adam's per-coordinate scale
#
# **Idea.** On a loss surface that is steep in one direction and flat in another (a *ravine*), the
# largest stable step is set by the steep direction, so progress along the flat one crawls. The ratio of
# the largest to the smallest curvature is the condition number $\kappa$.
#
# **Mechanism.** On $f(w) = \tfrac12 w^\top A w$ with eigenvalues in $[\mu, L]$, $\kappa = L/\mu$, the best
# fixed step for gradient descent, $\eta = 2/(L+\mu)$, shrinks the error by a factor $(\kappa-1)/(\kappa+1)$
# per step; heavy-ball momentum with its best $\eta$ and $\beta$ shrinks it by $(\sqrt\kappa-1)/(\sqrt\kappa+1)$
# (Polyak 1964; see Goh, *Why Momentum Really Works*, Distill 2017). For large $\kappa$ that means about
# $\kappa$ versus $\sqrt\kappa$ iterations per digit of accuracy.
#
# First, the paths themselves on a quadratic with $\kappa = 20$ and on Rosenbrock's banana valley:

# %%
best20 = optim.optimal_settings(20.0)
bowl = optim.quadratic(20.0)
quad_runs = {
    "gd, optimal step": optim.trajectory(bowl, optim.STARTS["quadratic"], "gd", best20["gd_lr"], 40),
    "momentum, optimal": optim.trajectory(bowl, optim.STARTS["quadratic"], "momentum", best20["momentum_lr"], 40,
                                          momentum=best20["momentum_beta"]),
    "adam, lr 0.1": optim.trajectory(bowl, optim.STARTS["quadratic"], "adam", 0.1, 40),
}
fig = optim.plot_trajectories("quadratic", quad_runs, kappa=20.0, title="Paths on a quadratic with kappa = 20")

# %% [markdown]
# Gradient descent at its best step zig-zags across the steep direction and crawls along the flat one.
# Momentum at *its* best setting takes a larger step, overshoots wildly in the steep direction for the first
# few steps, and then shrinks the error at a far faster rate in both directions: the loss panel, not the
# first few zig-zags, is the fair comparison. Adam divides each coordinate by its own gradient scale, so it
# heads almost diagonally towards the minimum, then circles because a fixed step of about $\eta$ per
# coordinate is too big to settle.

# %%
banana = {name: optim.trajectory(optim.rosenbrock, optim.STARTS["rosenbrock"], name, lr, 600, momentum=mu)
          for name, lr, mu in [("gd", 1e-3, 0.0), ("momentum", 1e-3, 0.9), ("adam", 0.05, 0.9)]}
fig = optim.plot_trajectories("rosenbrock", banana, title="Paths on Rosenbrock's valley (600 steps)")

# %% [markdown]
# **Experiment.** Count iterations to a relative error $\|w_t-w^*\|/\|w_0-w^*\| < 10^{-6}$ on
# $A = \mathrm{diag}(1, \kappa)$ for $\kappa$ = 10, 100 and 1000, each method at its optimal settings. The
# table also shows the iterations the rates predict, $\ln 10^{-6} / \ln(\text{rate})$.

# %%
table = optim.convergence_table((10, 100, 1000))
display(Markdown("| κ | GD iterations | momentum iterations | speed-up | √κ | GD predicted | momentum predicted |\n"
                 "|---|---|---|---|---|---|---|\n" + "\n".join(
    f"| {r['kappa']} | {r['gd_iters']} | {r['momentum_iters']} | {r['speed-up']:.1f}x | {r['sqrt_kappa']:.1f} | "
    f"{r['gd_predicted']:.0f} | {r['momentum_predicted']:.0f} |" for r in table)))

# %%
fig = optim.plot_error_curves(100.0, steps=table[1]["gd_iters"])

# %% [markdown]
# Gradient descent follows its predicted rate exactly; momentum takes a little longer than its rate
# predicts (at the optimal $\beta$ the two eigenvalues of its iteration coincide, which adds a factor
# growing like $t$), but it is still an order of magnitude faster at $\kappa = 100$.
#
# **Claim.** Momentum's speed-up grows with the condition number: it exceeds $0.5\sqrt\kappa$ for
# $\kappa \ge 100$. This is deterministic (no randomness in the quadratic), so there is no seed spread;
# the threshold is the theory's $\sqrt\kappa$ with the constant halved, and it fails if momentum's
# advantage were only a constant factor.

# %%
for row in table[1:]:
    claim(f"momentum needs > 0.5 sqrt(kappa) times fewer iterations than GD at kappa = {row['kappa']}",
          row["speed-up"] / row["sqrt_kappa"], ">", 0.5)

# %% [markdown]
# ### Adam's first step
#
# **Idea.** At step 1 the bias-corrected moments are $\hat m_1 = g_1$ and $\hat v_1 = g_1^2$, so Adam moves
# every coordinate by $\eta\, g_1/(|g_1| + \epsilon) \approx \eta\,\mathrm{sign}(g_1)$: the size of the gradient
# does not matter at all. SGD moves each coordinate in proportion to its gradient.

# %%
steps = optim.first_step_sizes(grad_scales=(1e-3, 1e-1, 1e1, 1e3), lr=1e-2)
fig = layer_bars({"SGD": steps["sgd"], "Adam": steps["adam"]}, "Size of the first step, lr = 0.01",
                 "|change in weight| (parameter units, log)", xlabel="gradient of the coordinate (no units)",
                 reference=1e-2)
fig.axes[0].set_xticks([1, 2, 3, 4], ["1e-3", "1e-1", "1e1", "1e3"]);

# %% [markdown]
# **Claim.** Adam's first step moves every coordinate by the learning rate to within 1%, across gradients
# spanning six orders of magnitude (deterministic: the only deviation is $\epsilon/|g|$, at most 1e-5 here),
# while SGD's first steps span the same six orders.

# %%
claim("Adam's first step moves each coordinate by lr (ratio of largest to smallest step)",
      float(steps["adam"].max() / steps["adam"].min()), "<", 1.01)
claim("SGD's first step sizes span the gradients' range (largest / smallest)",
      float(steps["sgd"].max() / steps["sgd"].min()), ">", 1e5);

# %% [markdown]
# **Consequence.** Adam's early steps are full-size in *every* direction, including directions whose
# gradient is pure noise, and the second-moment estimate $v$ rests on very few samples. That is the usual
# argument for **warmup** with Adam: ramp $\eta$ up while $v$ becomes a reliable estimate (Liu et al. 2020,
# RAdam). Momentum's advantage is geometric: it grows like $\sqrt\kappa$, so it matters most on badly
# conditioned problems.
#
# ### Explorer: paths on the quadratic and on Rosenbrock
#
# Choose an optimizer, its learning rate, momentum (β₁ for Adam) and β₂ (α for RMSprop), and the condition
# number; gradient descent with the same rate is drawn for comparison. Try: GD at a rate just above
# $2/\kappa$ (it diverges); momentum 0.99 (it overshoots and spirals); Adam on Rosenbrock.

# %%
explore(optim.explore_trajectory,
        optimizer=Choice(list(optim.OPTIMIZER_NAMES), value="momentum"),
        surface=Choice(list(optim.SURFACES)),
        lr=Slider(1e-4, 1.0, 0.1, 0.05, log=True),
        momentum=Slider(0.0, 0.99, 0.01, 0.9),
        beta2=Slider(0.9, 0.999, 0.001, 0.999),
        kappa=Slider(1, 200, 1, 20),
        steps=Slider(10, 300, 10, 100),
        compare_gd=Toggle(True))

# %% [markdown]
# ## 3. Adam vs SGD with momentum on real data
#
# **Idea.** Toy surfaces only go so far. Here both optimizers train the same models on MNIST-1D
# (Greydanus 2020: 10 classes of length-40 signals, hard enough that models differ): a two-hidden-layer
# MLP and a small 1-D CNN. A fair comparison tunes each optimizer's learning rate, so every run below is
# part of a small sweep, and each optimizer is then represented by its best rate (by final validation
# accuracy). SGD uses momentum 0.9; Adam uses its defaults. Nothing is retrained: the curves come from the
# sweep's own runs. Watch for a best rate at the *edge* of its grid (flagged below): then the sweep has not
# bracketed the optimum, and a wider grid could move the comparison. The quick grids are deliberately tiny;
# the full-scale grids span 30x to 100x.

# %%
sweeps = {f"mlp {name}": optim.lr_sweep("mlp", data, name, lrs, RACE_EPOCHS, seed=cfg.seed)
          for name, lrs in RACE_LRS.items()}
sweeps |= {f"cnn {name}": optim.lr_sweep("cnn", data, name, lrs, RACE_EPOCHS, seed=cfg.seed)
           for name, lrs in CNN_LRS.items()}
fig = optim.plot_sweeps(sweeps)
for name, sweep in sweeps.items():
    finals = [h.val_acc[-1] for h in sweep.values()]
    at_edge = len(sweep) > 1 and optim.best_lr(sweep) in (min(sweep), max(sweep))
    print(f"{name:14s} final validation accuracy from {min(finals):.3f} to {max(finals):.3f} across its rates"
          + ("  <- best rate at the edge of the grid" if at_edge else ""))

# %%
best = {name: sweep[optim.best_lr(sweep)] for name, sweep in sweeps.items()}
race = {}
for kind in ("mlp", "cnn"):
    adam, sgd = best[f"{kind} adam"], best[f"{kind} momentum"]
    target = 0.9 * min(adam.val_acc[-1], sgd.val_acc[-1])
    race[kind] = {"target": target, "adam": adam, "sgd": sgd, "auc_gap": np.mean(adam.val_acc) - np.mean(sgd.val_acc),
                  "adam_to_target": optim.time_to_target(adam, target), "sgd_to_target": optim.time_to_target(sgd, target)}
    fig = optim.plot_race({f"Adam, lr {optim.best_lr(sweeps[f'{kind} adam']):g}": adam,
                           f"SGD+momentum, lr {optim.best_lr(sweeps[f'{kind} momentum']):g}": sgd},
                          target, str(cfg.device), title=f"{kind.upper()}: Adam vs SGD with momentum on MNIST-1D")

# %% [markdown]
# The target is 90% of the lower of the two final validation accuracies, so both runs reach it. Wall time
# is measured on this machine's device (printed in the title) and includes the per-epoch evaluation; our
# optimizers are readable per-parameter Python loops, so Adam's extra arithmetic shows up more than it would
# with `torch.optim`'s fused kernels, and other processes on the machine add noise. Read the epoch axes for
# the optimizers themselves, the time axis for this machine.

# %%
rows = [f"| {kind} | {r['target']:.3f} | {r['adam_to_target'][0]:.0f} ({r['adam_to_target'][1]:.1f} s) | "
        f"{r['sgd_to_target'][0]:.0f} ({r['sgd_to_target'][1]:.1f} s) | {r['adam'].val_acc[-1]:.3f} | "
        f"{r['sgd'].val_acc[-1]:.3f} | {r['auc_gap']:+.3f} |" for kind, r in race.items()]
display(Markdown("| model | target accuracy | Adam: epochs (s) to target | SGD+momentum: epochs (s) | Adam final | "
                 "SGD+momentum final | mean accuracy over epochs, Adam minus SGD |\n|---|---|---|---|---|---|---|\n"
                 + "\n".join(rows)))

# %% [markdown]
# **What holds across seeds, and what does not.** We ran this comparison for seeds 0–4 at both scales.
# On the **CNN**, *speed* is consistent: Adam's validation curve rises faster, so its accuracy averaged over
# the epochs (the area under the curve) was higher than SGD's in every run. *Which ends higher* depends on
# the budget: with the quick scale's 8 epochs Adam ended ahead, but with 30 epochs (full scale) SGD with
# momentum caught up and often ended level or ahead, the pattern Wilson et al. (2017) describe. On the
# **MLP** the two stayed close throughout and even the sign of the speed gap changed from seed to seed at
# full scale. So we claim the CNN's speed gap only, and neither final ranking. Wall time per epoch depends
# on the machine's load and is not claimed.
#
# **Claim.** On the CNN, Adam's mean validation accuracy over the epochs exceeds SGD+momentum's. Across seeds
# 0–4 the gap measured 0.08–0.20 at quick scale and 0.037–0.084 at full scale, so a threshold of zero
# leaves room at both.

# %%
claim("CNN: Adam's validation accuracy averaged over the epochs beats SGD+momentum's (Adam minus SGD)",
      float(race["cnn"]["auc_gap"]), ">", 0.0);

# %% [markdown]
# **Consequence.** With a small budget and little tuning, Adam is the safer default: its best rate is
# easier to find and it gets to a good model sooner. That does not make it better at the end of a long,
# well-tuned run: Wilson et al. (2017) found adaptive methods generalising worse than SGD on several
# image and language benchmarks, and Loshchilov & Hutter (2019) showed much of that gap closes when
# weight decay is decoupled (AdamW) and a schedule is used. On our MLP the two were tied.
#
# ## 4. L2 regularisation vs decoupled weight decay (why AdamW)
#
# **Idea.** "Weight decay" means shrinking every weight a little each step. With plain SGD, adding
# $\tfrac{\lambda}{2}\|w\|^2$ to the loss does exactly that: the extra gradient $\lambda w$ gives
# $w \leftarrow (1-\eta\lambda)w - \eta g$. Inside Adam the extra gradient is divided by $\sqrt{\hat v}$ like
# any other gradient, so the decay a weight feels depends on its own gradient history: weights with large
# or noisy gradients are barely decayed, others are decayed a lot. AdamW moves the decay out of the
# gradient: $w \leftarrow (1-\eta\lambda)w - \eta\,\hat m/(\sqrt{\hat v}+\epsilon)$.
#
# **A deterministic demonstration.** Set the data gradient to exactly zero and let only the decay act for
# 100 steps ($\eta = 10^{-3}$, $\lambda = 0.1$) on weights of size 0.01, 1 and 100.

# %%
shrink = optim.decay_demo(magnitudes=(0.01, 1.0, 100.0), lr=1e-3, weight_decay=0.1, steps=100)
fig = layer_bars(shrink, "Shrinkage after 100 steps with zero data gradient", "weight shrunk by (%, log)",
                 xlabel="initial weight (parameter units)")
fig.axes[0].set_xticks([1, 2, 3], ["0.01", "1", "100"])
display(Markdown("| magnitude | Adam + L2 | AdamW |\n|---|---|---|\n" + "\n".join(
    f"| {m:g} | {a:.3g}% | {b:.3g}% |" for m, a, b in zip((0.01, 1, 100), shrink["Adam + L2"], shrink["AdamW"]))))

# %% [markdown]
# **Claims** (deterministic, no seed dependence). AdamW shrinks every weight by the same fraction,
# $1-(1-\eta\lambda)^{100}$, so the spread between the three is zero up to round-off. Adam + L2 turns the decay
# gradient $\lambda w$ into a step of about $\eta$ per step whatever $w$'s size: a small weight is wiped out
# while a large one barely moves; the ratio is about 1000, far above the threshold of 100.

# %%
claim("AdamW shrinks all weights by the same fraction (relative spread of the shrinkage)",
      float(np.ptp(shrink["AdamW"]) / shrink["AdamW"].mean()), "<", 1e-6)
claim("Adam + L2 shrinks the 0.01 weight far more than the 100 weight (ratio of % shrinkage)",
      float(shrink["Adam + L2"][0] / shrink["Adam + L2"][2]), ">", 100);

# %% [markdown]
# **The learning-rate × weight-decay grid.** Loshchilov & Hutter (2019) plotted final accuracy over a grid
# of learning rates and weight decays and found the good region for Adam + L2 to be a narrow diagonal
# (the best decay depends on the rate), and for AdamW to be broader and closer to axis-aligned, so the two
# can be tuned more independently. Here is the same grid for an MLP on MNIST-1D (coarse at quick scale).

# %%
grids = {name: optim.decay_grid(data, name, GRID_LRS, GRID_WDS, GRID_EPOCHS, seed=cfg.seed) for name in ("adam", "adamw")}
fig, axes = figure("Validation accuracy over learning rate x weight decay (MLP, MNIST-1D)", "learning rate",
                   "weight decay", ncols=2, figsize=(11, 4.2))
for ax, (name, grid) in zip(axes, grids.items()):
    heatmap(grid, GRID_LRS, GRID_WDS, {"adam": "Adam + L2", "adamw": "AdamW"}[name], "learning rate",
            "weight decay", "validation accuracy (fraction)", ax=ax, vmin=0.1, vmax=float(max(g.max() for g in grids.values())))

# %%
summary = {name: optim.grid_summary(grid) for name, grid in grids.items()}
best_lr_per_wd = {name: [GRID_LRS[j] for j in grid.argmax(axis=1)] for name, grid in grids.items()}
display(Markdown("| | best accuracy | cells within 0.02 of best | accuracy at the largest decay (best lr) | best lr for each decay |\n"
                 "|---|---|---|---|---|\n" + "\n".join(
    f"| {name} | {summary[name]['best']:.3f} | {summary[name]['good cells']} of {grids[name].size} | "
    f"{grids[name][-1].max():.3f} | {best_lr_per_wd[name]} |" for name in grids)))

# %% [markdown]
# **What the grid shows, honestly.** At small decays the two are nearly identical (the decay barely acts in
# a short run). The difference is at large decay: with L2 inside Adam, $\lambda = 1$ drives the network to
# chance at every learning rate, because the normalised decay gradient dominates every weight whose data
# gradient is smaller; AdamW at the same nominal $\lambda$ still trains, since its decay is a gentle
# $\eta\lambda$ per step. Whether AdamW's good region is also more *axis-aligned* needs a finer grid and
# longer runs than fit here (PyTorch's AdamW multiplies the decay by $\eta$, which itself couples the two);
# read the full-scale grid, and do not over-read a 3×3 one.
#
# **Claims.** Across seeds 0–4 at both scales, Adam + L2 at the largest decay stayed at chance (0.100–0.107
# at its best rate; threshold 0.2) while AdamW's best accuracy at that decay was 0 to 0.05 below its overall
# best at quick scale and 0.04 to 0.08 below it at full scale (threshold 0.1 below).

# %%
claim("Adam + L2 with weight decay 1 is near chance at every learning rate (best accuracy in that row)",
      float(grids["adam"][-1].max()), "<=", 0.2)
claim("AdamW with weight decay 1 stays within 0.1 of its best accuracy (best row accuracy minus best)",
      float(grids["adamw"][-1].max() - grids["adamw"].max()), ">=", -0.1);

# %% [markdown]
# **Consequence.** With Adam, use AdamW (decoupled decay) and tune $\lambda$ on its own scale: typical values
# are 0.01–0.1, far larger than the 1e-4 that works as an L2 coefficient. Exclude biases and normalisation
# gains from decay. If you must use `torch.optim.Adam(weight_decay=...)`, know that it is L2, not decay.
#
# ## 5. Learning-rate schedules, warmup, the range test and divergence
#
# **Idea.** A constant rate is a compromise: large enough to make progress early, but then too large to
# settle, because with mini-batch noise the weights keep bouncing around the minimum with an amplitude that
# grows with $\eta$. Decaying the rate late in training lets the loss settle; warming it up at the start
# avoids the large, poorly informed first steps. Four common shapes, all built with
# `torch.optim.lr_scheduler` and stepped once per mini-batch:

# %%
steps_per_epoch = math.ceil(len(data.y_train) / 128)
total_steps = SCHEDULE_EPOCHS * steps_per_epoch
names = ("constant", "step", "cosine", "warmup_cosine")
fig, ax = figure("Learning-rate schedules", "step (mini-batch)", "learning rate (multiple of the peak rate)")
for name in names:
    ax.plot(optim.schedule_curve(name, total_steps, 1.0), label=name)
ax.legend();

# %% [markdown]
# **Experiment.** Train the MLP with SGD + momentum at a high peak rate (0.3) under each schedule.

# %%
scheduled = {name: optim.train("mlp", data, "momentum", SCHEDULE_LR, SCHEDULE_EPOCHS, schedule=name, seed=cfg.seed)[0]
             for name in names}
fig = learning_curves(scheduled, title=f"SGD + momentum, peak lr {SCHEDULE_LR}, by schedule")

# %%
display(Markdown("| schedule | final train loss | final validation accuracy |\n|---|---|---|\n" + "\n".join(
    f"| {name} | {h.train_loss[-1]:.3f} | {h.val_acc[-1]:.3f} |" for name, h in scheduled.items())))

# %% [markdown]
# **Claim.** Cosine decay ends with a lower training loss than a constant rate with the same peak. Across
# seeds 0–4 the ratio cosine/constant measured 0.56–0.75 at quick scale (15 epochs) and 0.08–0.15 at full
# scale (30 epochs, where the constant rate keeps bouncing); the threshold 0.97 leaves room. The effect on
# validation accuracy is smaller and its size varies between seeds, so it is not claimed.

# %%
claim("cosine decay ends with lower training loss than a constant rate (ratio cosine / constant)",
      scheduled["cosine"].train_loss[-1] / scheduled["constant"].train_loss[-1], "<", 0.97);

# %% [markdown]
# ### The learning-rate range test
#
# **Idea** (Smith 2017). Instead of a full sweep, run one short training in which the rate grows
# exponentially every mini-batch, from 1e-5 to 10, and watch the (smoothed) loss: it is flat while the rate
# is too small, falls fastest in the useful range, then turns up as training becomes unstable. A common rule
# of thumb takes a rate about ten times below the loss minimum.

# %%
range_test = optim.lr_range_test("mlp", data, optimizer="momentum", seed=cfg.seed)
fig = optim.plot_range_test(range_test, "Learning-rate range test, SGD + momentum (MLP, MNIST-1D)")
print(f"range test: loss minimum at lr {range_test['lr_at_min']:.2g}, suggestion {range_test['suggested']:.2g}; "
      f"the full sweep of section 3 picked {optim.best_lr(sweeps['mlp momentum']):g} for the same model and optimizer")

# %% [markdown]
# ### Divergence, and two ways back
#
# **Experiment.** Adam at $\eta = 1$ (a thousand times its default), then the same rate with a linear
# warmup over the first 40% of steps, then a thirty times lower rate. We record the training loss at every
# mini-batch.

# %%
too_high = 1.0
divergence = {
    f"lr {too_high:g}": optim.loss_per_step("mlp", data, "adam", too_high, DIVERGE_STEPS, seed=cfg.seed),
    f"lr {too_high:g} with warmup": optim.loss_per_step("mlp", data, "adam", too_high, DIVERGE_STEPS,
                                                         schedule="warmup", warmup_fraction=0.4, seed=cfg.seed),
    f"lr {too_high / 30:.2g}": optim.loss_per_step("mlp", data, "adam", too_high / 30, DIVERGE_STEPS, seed=cfg.seed),
}
fig = optim.plot_losses(divergence, "Adam: too high a rate, warmup, and a lower rate")

# %% [markdown]
# **Claims.** At $\eta = 1$ the loss grows by more than 10x within a few steps (across seeds 0–4 at both
# scales the peak was 1100–2100 times the initial loss). With warmup the same rate never rose above 1.1–1.7
# times the initial loss (threshold 2). A 30x lower rate trains: its last losses were 0.39–0.55 of the
# initial $\ln 10 \approx 2.3$ (threshold 0.7).
#
# Note what warmup does *not* do here: the warmed-up run stays stable but ends near chance, because
# $\eta = 1$ is still far too large once the ramp is over. Warmup removes the early blow-up; only a lower
# rate fixes a rate that is simply too high.

# %%
runs = list(divergence.values())
claim("Adam at lr 1: the loss grows by more than 10x (max loss / first loss)", optim.blow_up(runs[0]), ">", 10)
claim("the same rate with warmup: no blow-up (max loss / first loss)", optim.blow_up(runs[1]), "<", 2)
claim("a 30x lower rate trains (mean loss of the last 10 steps / first loss)",
      float(np.mean(runs[2][-10:]) / runs[2][0]), "<", 0.7);

# %% [markdown]
# **Consequence.** If the loss explodes, lower the rate first; add warmup when the explosion is in the
# first few hundred steps (typical for Adam on transformers). If the loss falls too slowly, run a range
# test rather than guessing. If validation stalls while training loss keeps oscillating, decay the rate.
#
# ### Explorer: train MNIST-1D with your own settings
#
# Pick an optimizer, rate, weight decay, schedule and model, then press Run (a few seconds per run).

# %%
explore(optim.explore_training, run_button=True,
        optimizer=Choice(["adamw", "adam", "momentum", "nesterov", "rmsprop", "gd"]),
        lr=Slider(1e-4, 1.0, 0.1, 3e-3, log=True),
        weight_decay=Slider(1e-5, 1.0, 0.1, 1e-2, log=True),
        schedule=Choice(list(optim.SCHEDULES), value="warmup_cosine"),
        model=Choice(list(optim.MODELS)),
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


optim.check_nesterov(nesterov_update);


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
# **2. RMSprop's update.** Same idea: one step of `torch.optim.RMSprop(lr=lr, alpha=alpha, eps=eps)`.

# %%
def rmsprop_update(w, grad, square_avg, lr, alpha, eps):
    raise NotImplementedError("update the running mean of squared gradients, then step")


optim.check_rmsprop(rmsprop_update);

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
# **3. Read the range test.** Look at the range-test plot above and set `my_lr` to the rate you would
# train with. The checker accepts a rate between 1/100 and 1/2 of the loss minimum.

# %%
my_lr = None

optim.check_lr_pick(my_lr, range_test);

# %% [markdown]
# <details><summary>Solution</summary>
#
# Take about a tenth of the rate at the minimum of the smoothed loss, for example
# `my_lr = range_test["lr_at_min"] / 10` (the helper's own suggestion, `range_test["suggested"]`).
# </details>
#
# ## Interview answer
#
# The numbers in this answer come from the run you just executed:

# %%
mlp_r, cnn_r = race["mlp"], race["cnn"]
display(Markdown(f"""**"Adam vs SGD with momentum?"** Both use momentum; Adam also divides each coordinate's
step by a running RMS of its gradient, so its first step moved every weight by the learning rate (to within
{100 * (steps['adam'].max() / steps['adam'].min() - 1):.2g}%) whatever the gradient's scale. That makes it forgiving
of badly scaled problems and quick to tune. Momentum's own gain is geometric: at condition number 1000 it needed
{table[2]['momentum_iters']} iterations where tuned gradient descent needed {table[2]['gd_iters']}. On MNIST-1D,
each at its best rate, Adam took the CNN to the target in {cnn_r['adam_to_target'][0]:.0f} epochs against
{cnn_r['sgd_to_target'][0]:.0f} (mean accuracy over the epochs {cnn_r['auc_gap']:+.3f}); final accuracies were
{cnn_r['adam'].val_acc[-1]:.3f} vs {cnn_r['sgd'].val_acc[-1]:.3f} (CNN) and {mlp_r['adam'].val_acc[-1]:.3f} vs
{mlp_r['sgd'].val_acc[-1]:.3f} (MLP), and with 30 epochs SGD caught up across seeds. So: Adam(W) for fast
iteration and transformers; SGD with momentum and a schedule when I can tune it and care about the last point of
generalisation (Wilson et al. 2017), knowing AdamW with a schedule closes much of that gap."""))

# %%
display(Markdown(f"""**"What is weight decay, and why AdamW?"** Decay shrinks weights towards zero each step.
With SGD that equals an L2 penalty; inside Adam the L2 gradient is rescaled per coordinate, so with a zero data
gradient a weight of 0.01 shrank by {shrink['Adam + L2'][0]:.3g}% and a weight of 100 by
{shrink['Adam + L2'][2]:.2g}%, while AdamW shrank both by {shrink['AdamW'][0]:.3g}%. In the learning-rate x
weight-decay grid, Adam + L2 at decay 1 sat at chance ({grids['adam'][-1].max():.3f}) while AdamW reached
{grids['adamw'][-1].max():.3f}. AdamW makes the decay mean what it says, so it can be tuned on its own."""))

# %%
display(Markdown(f"""**"How do learning-rate schedules help?"** Cosine decay ended with training loss
{scheduled['cosine'].train_loss[-1]:.3f} against {scheduled['constant'].train_loss[-1]:.3f} for a constant rate
with the same peak. Adam at lr 1 blew the loss up {optim.blow_up(runs[0]):.3g}x; warmup kept it within
{optim.blow_up(runs[1]):.2g}x but only a lower rate actually trained. A one-run range test suggested
{range_test['suggested']:.2g} for SGD with momentum; the full sweep picked
{optim.best_lr(sweeps['mlp momentum']):g}."""))

# %% [markdown]
# ## Traps
#
# - **"Adam is always better than SGD."** What Adam reliably bought in section 3 was speed: a faster-rising
#   validation curve. Given 30 epochs (full scale), SGD with momentum at its own best rate caught up and
#   often ended level or ahead across seeds 0–4; Wilson et al. (2017) report the same on larger benchmarks.
# - **"Weight decay and L2 regularisation are the same thing."** Only for plain SGD. In Adam the 0.01 and
#   the 100 weight were decayed by wildly different fractions (section 4); AdamW decays both by the same one.
# - **"Adam doesn't need a tuned learning rate."** The sweep of section 3 prints how far Adam's final
#   accuracy moved across its rates, and at lr 1 it blew up (section 5).
# - **"Momentum just makes training a constant factor faster."** Its advantage over tuned gradient descent
#   grew with the condition number, roughly like √κ, in the iteration table of section 2.
# - **"If the loss diverges, switch optimizer."** The same optimizer trained fine at a 30x lower rate
#   (section 5); warmup alone removed the blow-up but did not rescue a rate that was simply too high.
