"""The toy river valley seen from above: contour, river floor and SGD trajectories.

    python experiments/toy_valley.py [--quick] [--out DIR]

Left: the loss ``L(x, y) = log(1 + exp(-x)) + (a/2)(y - b sin(omega x))^2`` of ``landscapes.toy``
with the river floor ``y = c(x)``, and one SGD trajectory (same seed, same noise) under a
constant rate and under WSD: identical until WSD decays, after which WSD settles onto the floor
while the constant rate keeps bouncing.  Right: distance from the river floor and river coordinate
against step.  Runtime: ~10 s (``--quick``: ~5 s).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from rivervalley import optimizers, schedules
from rivervalley.experiment import main_for
from rivervalley.landscapes import toy
from rivervalley.plotting import LABELS, STYLE, save_figure
from rivervalley.runner import sweep


@dataclasses.dataclass(frozen=True)
class Config:
    steps: int = 4000
    peak: float = 0.1
    decay_fraction: float = 0.2
    seed: int = 0
    record_every: int = 4


def config(quick: bool) -> Config:
    return Config(steps=1000, record_every=5) if quick else Config()


def compute(cfg: Config, progress: bool | None) -> xr.Dataset:
    """Both schedules as one named axis (dim ``schedule``): one compiled sweep for both kinds."""
    return sweep(
        toy(),
        optimizers.sgd(),
        {
            "constant": schedules.constant(cfg.peak),
            "wsd": schedules.wsd(cfg.peak, cfg.steps, cfg.decay_fraction),
        },
        seeds=[cfg.seed],
        steps=cfg.steps,
        record_every=cfg.record_every,
        record_params=True,
        progress=progress,
    )


def plot(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    valley = toy()
    ds = ds.sel(seed=cfg.seed)  # one seed: dims (schedule, step[, param])
    x = np.linspace(-2.5, float(ds.params.isel(param=0).max()) + 0.5, 300)
    y = np.linspace(-0.35, 0.35, 200)
    X, Y = np.meshgrid(x, y)
    points = jnp.stack([X.ravel(), Y.ravel()], axis=-1)
    Z = np.asarray(jax.jit(jax.vmap(valley.loss))(points)).reshape(X.shape)  # one compiled call
    decay_start = cfg.steps - round(cfg.decay_fraction * cfg.steps)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(12, 4.6))
        grid = fig.add_gridspec(2, 2, width_ratios=[1.6, 1])
        ax = fig.add_subplot(grid[:, 0])
        top, bottom = fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 1])
        levels = np.quantile(Z, np.linspace(0.0, 0.9, 20))
        ax.contourf(X, Y, Z, levels=levels, cmap="Blues_r", alpha=0.8)
        floor = np.asarray(jax.jit(jax.vmap(valley.river_curve))(jnp.asarray(x))).ravel()
        ax.plot(x, floor, "k--", lw=1, label="river floor $y = c(x)$")
        before = ds.step.values < decay_start
        w = ds.params.sel(schedule="constant").values
        ax.plot(w[before, 0], w[before, 1], color="0.25", lw=0.5, label="both, before the decay")
        for name, color in (("constant", "tab:blue"), ("wsd", "tab:green")):
            run = ds.sel(schedule=name)
            w = run.params.values
            after = run.step.values >= decay_start
            lw = 1.4 if name == "wsd" else 0.7
            ax.plot(w[after, 0], w[after, 1], color=color, lw=lw, label=f"{name}, decay phase")
            top.plot(run.step, run.hill_dist, color=color, lw=lw / 2, label=name)
            bottom.plot(run.step, run.river_coord, color=color, lw=1.0, label=name)
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(y[0], y[-1])
        ax.set_xlabel("river coordinate $x$")
        ax.set_ylabel("hill coordinate $y$")
        ax.set_title(f"toy river valley: SGD at peak rate {cfg.peak}, one seed, same noise")
        ax.legend(loc="upper right", fontsize=8)
        for panel in (top, bottom):
            panel.axvline(decay_start, color="gray", lw=0.8)
        top.set_ylabel(LABELS["hill_dist"])
        top.legend(fontsize=8)
        bottom.set_ylabel(LABELS["river_coord"])
        bottom.set_xlabel("step (updates); WSD decays after the gray line")
        fig.tight_layout()
    return save_figure(fig, out / "toy_valley.png")


main = main_for(__name__, "toy_valley")


if __name__ == "__main__":
    main()
