"""The main job: WSD, cosine and constant schedules with SGD on the toy river valley.

``rivervalley demo`` runs every schedule over many seeds, caches the result and writes one figure
(PNG and PDF): WSD's loss split into its river and hill components, then total, river and hill
loss of every schedule against step (mean and an interquartile band over seeds); then it prints
a summary of the two phases.  Default: 1024 seeds x 4000 steps, well under
a minute on 2 CPU cores; ``--quick``: a few seconds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import xarray as xr
from matplotlib.axes import Axes

from rivervalley import optimizers, results, schedules
from rivervalley.landscapes import toy
from rivervalley.plotting import LABELS, SCHEDULE_COLORS, STYLE, loss_panels, save_figure
from rivervalley.pytree import describe
from rivervalley.runner import sweep


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    steps: int = 4000
    seeds: int = 1024
    peak: float = 0.1
    warmup_steps: int = 100
    decay_fraction: float = 0.2
    record_every: int = 10

    @classmethod
    def quick(cls) -> DemoConfig:
        # an odd record spacing: the runner does not unroll its inner loop (half the compile time)
        return cls(steps=2000, seeds=128, warmup_steps=50, record_every=25)

    def schedules(self) -> dict[str, schedules.Schedule]:
        common = {"warmup_steps": self.warmup_steps}
        return {
            "constant": schedules.constant(self.peak, **common),
            "cosine": schedules.cosine(self.peak, self.steps, **common),
            "wsd": schedules.wsd(self.peak, self.steps, self.decay_fraction, "linear", **common),
        }


def compute(config: DemoConfig, *, progress: bool | None = None) -> xr.Dataset:
    """One sweep of every schedule (a named axis: dim ``schedule``) over the seeds (dim
    ``seed``): the three kinds run in one compiled program."""
    variables = [
        "loss",
        "river_loss",
        "hill_loss",
        "river_coord",
        "lr",
        "diverged",
        "diverged_step",
    ]
    ds = sweep(
        toy(),
        optimizers.sgd(),
        config.schedules(),
        seeds=config.seeds,
        steps=config.steps,
        record_every=config.record_every,
        progress=progress,
    )
    return ds[variables]


def summary(ds: xr.Dataset, config: DemoConfig) -> str:
    """Text table: the two phases of WSD next to cosine and constant (means over seeds)."""
    decay_start = config.steps - round(config.decay_fraction * config.steps)
    rows = [f"{'schedule':<10}{'step':>7}{'loss':>10}{'river':>10}{'hill':>10}{'river s':>10}"]
    for name in config.schedules():
        runs, n_diverged = results.drop_diverged(ds.sel(schedule=name))
        if n_diverged:
            rows.append(f"{name}: {n_diverged} diverged runs excluded")
        for step in (decay_start, config.steps):
            at = runs.sel(step=step).mean("seed")
            rows.append(
                f"{name:<10}{step:>7d}{float(at.loss):>10.4f}{float(at.river_loss):>10.4f}"
                f"{float(at.hill_loss):>10.4f}{float(at.river_coord):>10.3f}"
            )
    return "\n".join(rows)


def plot(ds: xr.Dataset, config: DemoConfig, path: Path) -> Path:
    """The lab's opening figure: WSD's loss split into its river and hill components (the
    story), then total, river and hill loss of every schedule; PNG and PDF."""
    decay_start = config.steps - round(config.decay_fraction * config.steps)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 4, figsize=(17, 4.0), width_ratios=(1.35, 1, 1, 1))
        story_panel(axes[0], results.drop_diverged(ds.sel(schedule="wsd"))[0], decay_start)
        loss_panels(ds, axes=axes[1:])
        for ax in axes[1:]:
            ax.axvline(decay_start, color="gray", lw=0.6, ls=":")
        fig.suptitle(
            f"SGD on the toy river valley, peak rate {config.peak}, {config.seeds} seeds "
            "(mean and interquartile band); WSD decays after the dotted line"
        )
        fig.tight_layout()
    return save_figure(fig, path)[0]


def story_panel(ax: Axes, wsd: xr.Dataset, decay_start: int) -> None:
    """WSD's mean total loss = river loss + hill loss on one axis, the rate on a twin axis."""
    mean = wsd[["loss", "river_loss", "hill_loss", "lr"]].mean("seed")
    step = mean["step"]
    color = SCHEDULE_COLORS["wsd"]
    ax.plot(step, mean.loss, color=color, lw=2.0, label="total loss")
    ax.plot(step, mean.river_loss, color="tab:blue", lw=1.4, ls="--", label="river component")
    ax.plot(step, mean.hill_loss, color="tab:red", lw=1.2, label="hill component")
    ax.axvline(decay_start, color="gray", lw=0.6, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("step (updates)")
    ax.set_ylabel("WSD: loss and its components")
    ax.set_title(
        "stable: river progress hidden by the hills;\ndecay: the hill loss drains", fontsize=9
    )
    rate = ax.twinx()
    rate.plot(step, mean.lr, color="0.6", lw=0.8)
    rate.set_ylabel(LABELS["lr"], color="0.45")
    rate.set_ylim(0.0, 1.05 * float(mean.lr.max()))
    rate.grid(False)
    ax.legend(loc="lower left", fontsize=8)


def run(out: Path, *, quick: bool = False, progress: bool | None = None) -> Path:
    """Compute (or load from cache), plot, print the summary; return the figure's path."""
    config = DemoConfig.quick() if quick else DemoConfig()
    name = "demo_quick" if quick else "demo"
    key = {
        "demo": dataclasses.asdict(config),
        "landscape": describe(toy()),
        "optimizer": describe(optimizers.sgd()),
        "schedules": {k: describe(s) for k, s in config.schedules().items()},
    }
    ds = results.cached(out / f"{name}.nc", key, lambda: compute(config, progress=progress))
    figure = plot(ds, config, out / f"{name}.png")
    print(summary(ds, config))
    return figure
