r"""Loss-curve laws on real language-model runs: fit on three schedules, predict six, split each
curve into a river and a hill component, and choose a cooldown for a new budget.

    python experiments/real_curves.py [--quick] [--out DIR]

Data: the 27 public training curves of Luo et al. (2025), *A Multi-Power Law for Loss Curve
Prediction Across Learning Rate Schedules* (github.com/thu-yao-01-luo/MultiPowerLaw, MIT
licence; shipped in ``rivervalley/data/multipower_law``): 25M, 100M and 400M-parameter language
models, 9 schedules each (cosine and constant over 24k and 72k steps, WSD with a geometric and a
linear 4k-step decay, two-stage schedules), the training loss every 128 steps after a 2160-step
warmup.  Per size, every law is fitted on the authors' training split (``cosine_24000``,
``constant_24000``, ``wsdcon_9``) by the authors' objective (Huber loss of the log residual,
``rivervalley.laws.fit``) and scored on the 6 other runs (``rivervalley.real_runs``):

* ``power``: ``L0 + A S1^(-alpha)``, the loss as a function of the rate area alone;
* ``momentum``: Tissue et al.'s annealing-area law;
* ``multi_power``: Luo et al.'s multi-power law;
* ``valley``: the river-valley law (``rivervalley.valley_law``): a power-law river in intrinsic
  time plus 16 quadratic hills relaxed through the schedule by SGD's exact recursion;
* ``valley_1``: the same with a single hill (one relaxation time).

Outputs: ``real_curves_fits`` (curves, fits, predictions and relative residuals per size),
``real_curves_split`` (each real curve with its fitted river and hill components: the river-valley
picture on real runs), ``real_curves_cooldown`` (the predicted best WSD cooldown fraction per
budget under the multi-power and the river-valley law, and the schedule optimised freely),
``real_curves_toy`` (the landscape behind the fitted valley law simulated by SGD under the real
schedules: ``valley_law.as_landscape``), ``real_curves_table.md`` (R^2 / MAE / PredE / WorstE per
law and size next to the published multi-power numbers) and ``real_curves_summary.json``.

What the full run finds: see the README section "Real loss curves" (the table is this script's
``real_curves_table.md``).  Quick mode: the 400M runs only, the power and the river-valley laws
with fewer fit iterations, one budget, 8 toy seeds: a smoke test of the pipeline, not a result.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from tqdm import tqdm

from rivervalley import laws, optimizers, real_runs, schedules, valley_law
from rivervalley.experiment import main_for, write_summary
from rivervalley.plotting import STYLE, save_figure
from rivervalley.runner import sweep

METRICS = ("r2", "mae", "pred_e", "worst_e", "rmse")
LAW_LABELS = {
    "power": "power law in $S_1$",
    "momentum": "momentum law",
    "multi_power": "multi-power law",
    "valley": "river-valley law (16 hills)",
    "valley_1": "river-valley law (1 hill)",
}
RUN_COLORS: dict[str, str] = {name: f"C{i}" for i, name in enumerate(real_runs.RUNS)}
TOY_RECORD = 16  # the records of the runs lie on a 16-step grid (2160 + 16 k)


@dataclasses.dataclass(frozen=True)
class Config:
    sizes: tuple[str, ...] = real_runs.SIZES
    laws: tuple[str, ...] = ("power", "momentum", "multi_power", "valley", "valley_1")
    max_nfev: int = 100  # least-squares evaluations per initialisation
    budgets: tuple[int, ...] = (16000, 24000, 48000, 72000)  # updates, warmup included
    fractions: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 21))
    shapes: tuple[str, ...] = schedules.DECAY_SHAPES
    planners: tuple[str, ...] = ("multi_power", "valley")  # laws that choose the cooldown
    optimal_budget: int = 24000  # the free (monotone) optimum under each planner; 0: none
    optimal_size: str = "400M"  # ... for this size only (L-BFGS-B over every update's rate)
    toy_runs: tuple[str, ...] = real_runs.RUNS
    toy_seeds: int = 128
    rate_scale: float = 1.0 / real_runs.PEAK  # the toy runs at rates eta / peak (see as_landscape)


def config(quick: bool) -> Config:
    if quick:
        return Config(
            sizes=("400M",),
            laws=("power", "valley"),
            max_nfev=6,
            budgets=(24000,),
            fractions=(0.1, 0.2, 0.4),
            shapes=("linear", "exp"),
            optimal_budget=0,
            toy_runs=("wsd_20000_24000",),
            toy_seeds=8,
        )
    return Config()


def _step_grid(runs: dict[str, xr.Dataset]) -> np.ndarray:
    return np.unique(np.concatenate([ds["step"].values for ds in runs.values()]))


def _on_grid(steps: np.ndarray, ds_steps: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.full(steps.shape, np.nan)
    out[np.searchsorted(steps, ds_steps)] = values
    return out


def simulate_toy(
    fit: laws.Fit, name: str, cfg: Config, progress: bool | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The landscape of a fitted valley law (``valley_law.as_landscape``) run by SGD under the
    real run ``name``'s rates from update ``W + 1`` on, hills stationary at the rate of update
    ``W``: returns the recorded steps ``s`` (the loss after updates ``0..s``), the seed mean and
    its standard error, in the curve's units (nats)."""
    rates = real_runs.run_rates(name)
    first = real_runs.WARMUP + 1  # the first simulated update; the loss at s follows s + 1
    toy = valley_law.as_landscape(
        fit.vector,
        tau=float(rates[:first].sum()),
        eta0=float(rates[first - 1]),
        rate_scale=cfg.rate_scale,
        law=real_runs.law_of(fit.law),
    )
    n = (rates.size - first) // TOY_RECORD * TOY_RECORD
    schedule = schedules.tabulated(toy.rate_scale * rates[first : first + n])
    ds = sweep(
        toy.landscape,
        optimizers.sgd(),
        schedule,
        seeds=cfg.toy_seeds,
        steps=n,
        record_every=TOY_RECORD,
        horizon="free",
        progress=progress,
    )
    loss = np.asarray(ds["loss"].values, np.float64)  # (seed, step)
    mean = toy.to_curve_units(loss.mean(0))
    se = toy.loss_scale * loss.std(0, ddof=1) / np.sqrt(loss.shape[0])
    return np.asarray(ds["step"].values) + first - 1, mean, se


def compute(cfg: Config, progress: bool | None = None) -> xr.Dataset:
    """Fits, predictions, metrics, components, cooldown choices and toy simulations."""
    sizes: list[str] = list(cfg.sizes)
    names: list[str] = list(real_runs.RUNS)
    runs = {size: real_runs.load_runs(size) for size in sizes}
    steps = _step_grid({f"{s}/{n}": runs[s][n] for s in sizes for n in names})
    shape = (len(sizes), len(names), len(steps))
    loss = np.full(shape, np.nan)
    lr = np.full((len(names), len(steps)), np.nan)
    pred = np.full((len(sizes), len(cfg.laws), *shape[1:]), np.nan)
    river, hill = np.full(shape, np.nan), np.full(shape, np.nan)
    toy_mean, toy_se = np.full(shape, np.nan), np.full(shape, np.nan)
    metric = np.full((len(sizes), len(cfg.laws), len(names), len(METRICS)), np.nan)
    fits: dict[str, dict[str, Any]] = {}
    planners = [p for p in cfg.planners if p in cfg.laws]
    cooldown = np.full(
        (len(sizes), len(planners), len(cfg.budgets), len(cfg.shapes), len(cfg.fractions)), np.nan
    )
    opt_len = cfg.optimal_budget
    optimal = np.full((len(sizes), len(planners), max(opt_len, 1)), np.nan)
    optimal_loss = np.full((len(sizes), len(planners)), np.nan)
    bar = tqdm(total=len(sizes), desc="real curves", unit="size", disable=progress is False)
    for i, size in enumerate(sizes):
        evals = real_runs.evaluate(size, cfg.laws, runs[size], max_nfev=cfg.max_nfev)
        fits[size] = {}
        for j, name in enumerate(names):
            ds = runs[size][name]
            loss[i, j] = _on_grid(steps, ds["step"].values, ds["loss"].values)
            lr[j] = np.where(
                np.isnan(lr[j]), _on_grid(steps, ds["step"].values, ds["lr"].values), lr[j]
            )
        for k, law_name in enumerate(cfg.laws):
            ev = evals[law_name]
            fits[size][law_name] = {
                "params": ev.fit.params,
                "objective": ev.fit.objective,
                "seconds": round(ev.seconds, 2),
            }
            curves = real_runs.law_curves(size, runs[size], real_runs.law_warmup(law_name))
            for j, name in enumerate(names):
                yhat = laws.predict(ev.fit.spec, ev.fit.vector, curves[name])
                pred[i, k, j] = _on_grid(steps, runs[size][name]["step"].values, yhat)
                metric[i, k, j] = [ev.per_run[name][m] for m in METRICS]
            if law_name == "valley":
                for j, name in enumerate(names):
                    r, h = valley_law.components(ev.fit.vector, curves[name])
                    at = runs[size][name]["step"].values
                    river[i, j], hill[i, j] = _on_grid(steps, at, r), _on_grid(steps, at, h)
                for name in cfg.toy_runs:
                    j = names.index(name)
                    at, mean, se = simulate_toy(ev.fit, name, cfg, progress=False)
                    keep = np.isin(at, steps)
                    toy_mean[i, j] = _on_grid(steps, at[keep], mean[keep])
                    toy_se[i, j] = _on_grid(steps, at[keep], se[keep])
        for p, planner in enumerate(planners):
            fit = evals[planner].fit
            for b, budget in enumerate(cfg.budgets):
                choice = laws.best_schedule(
                    fit,
                    budget,
                    "wsd",
                    peak=real_runs.PEAK,
                    warmup=real_runs.WARMUP,
                    final=real_runs.FLOOR,
                    fractions=cfg.fractions,
                    shapes=cfg.shapes,
                )
                cooldown[i, p, b] = choice.losses
            if opt_len and size == cfg.optimal_size:
                best = laws.optimal_schedule(
                    fit, opt_len, real_runs.PEAK, real_runs.WARMUP, floor=real_runs.FLOOR
                )
                optimal[i, p] = best.rates
                optimal_loss[i, p] = best.loss
        bar.update()
    bar.close()
    law_dim, planner_dim = list(cfg.laws), planners
    split = ["train" if n in real_runs.TRAIN else "test" for n in names]
    nats = {"units": "nats"}
    ds = xr.Dataset(
        {
            "loss": (("size", "curve", "step"), loss, {"long_name": "training loss", **nats}),
            "lr": (("curve", "step"), lr, {"long_name": "learning rate", "units": "dimensionless"}),
            "pred": (
                ("size", "law", "curve", "step"),
                pred,
                {"long_name": "law's loss (fitted on train)", **nats},
            ),
            "river": (
                ("size", "curve", "step"),
                river,
                {"long_name": "valley law river term", **nats},
            ),
            "hill": (
                ("size", "curve", "step"),
                hill,
                {"long_name": "valley law hill term", **nats},
            ),
            "toy_loss": (
                ("size", "curve", "step"),
                toy_mean,
                {"long_name": "valley landscape, SGD seed mean", **nats},
            ),
            "toy_se": (
                ("size", "curve", "step"),
                toy_se,
                {"long_name": "its standard error", **nats},
            ),
            "score": (("size", "law", "curve", "metric"), metric, {"long_name": "per-run metric"}),
            "cooldown": (
                ("size", "planner", "budget", "shape", "fraction"),
                cooldown,
                {"long_name": "predicted final loss of WSD", **nats},
            ),
            "optimal_rates": (
                ("size", "planner", "update"),
                optimal,
                {"long_name": "optimal monotone schedule", "units": "dimensionless"},
            ),
            "optimal_loss": (
                ("size", "planner"),
                optimal_loss,
                {"long_name": "its predicted final loss", **nats},
            ),
        },
        coords={
            "size": sizes,
            "law": law_dim,
            "curve": names,
            "split": ("curve", split),
            "step": ("step", steps, {"long_name": "step", "units": "updates"}),
            "metric": list(METRICS),
            "planner": planner_dim,
            "budget": ("budget", list(cfg.budgets), {"units": "updates"}),
            "shape": list(cfg.shapes),
            "fraction": list(cfg.fractions),
        },
    )
    ds.attrs["fits"] = json.dumps(fits)
    ds.attrs["published"] = json.dumps(real_runs.PUBLISHED)
    ds.attrs["toy_seeds"] = cfg.toy_seeds
    return ds


def held_out(ds: xr.Dataset) -> xr.DataArray:
    """Each metric averaged over the test runs, as the authors average them: (size, law, metric)."""
    return ds.score.where(ds.split == "test").mean("curve")


def best_cooldowns(ds: xr.Dataset) -> dict[str, Any]:
    """Per size, planner and budget: the best (shape, fraction) and its predicted loss."""
    out: dict[str, Any] = {}
    for size in ds.size.values:
        for planner in ds.planner.values:
            for budget in ds.budget.values:
                grid = ds.cooldown.sel(size=size, planner=planner, budget=budget)
                i, j = np.unravel_index(int(np.nanargmin(grid.values)), grid.shape)
                out.setdefault(str(size), {}).setdefault(str(planner), {})[str(int(budget))] = {
                    "shape": str(ds.shape.values[i]),
                    "fraction": float(ds.fraction.values[j]),
                    "loss": round(float(grid.values[i, j]), 4),
                }
    return out


def toy_agreement(ds: xr.Dataset) -> dict[str, Any]:
    """Per size and simulated run: the toy's PredE against the real curve and the largest
    |toy - valley law| in standard errors (Monte Carlo agreement with the law)."""
    out: dict[str, Any] = {}
    if "valley" not in ds.law.values:
        return out
    for size in ds.size.values:
        for run in ds.curve.values:
            toy = ds.toy_loss.sel(size=size, curve=run).values
            if not np.isfinite(toy).any():
                continue
            real = ds.loss.sel(size=size, curve=run).values
            law = ds.pred.sel(size=size, law="valley", curve=run).values
            se = ds.toy_se.sel(size=size, curve=run).values
            ok = np.isfinite(toy) & np.isfinite(real)
            z = np.abs(toy[ok] - law[ok]) / se[ok]
            out.setdefault(str(size), {})[str(run)] = {
                "split": str(ds.split.sel(curve=run).values),
                "pred_e_toy_vs_real": round(
                    float(np.mean(np.abs(toy[ok] - real[ok]) / real[ok])), 5
                ),
                "pred_e_law_vs_real": round(
                    float(np.mean(np.abs(law[ok] - real[ok]) / real[ok])), 5
                ),
                "max_z_toy_vs_law": round(float(z.max()), 2),
                "median_z_toy_vs_law": round(float(np.median(z)), 2),
            }
    return out


def shape_checks(ds: xr.Dataset) -> dict[str, Any]:
    """Does each law get the qualitative facts right?  Per size and law: the order of the final
    losses of WSD (geometric decay), cosine and constant at 24k steps (real vs predicted), and
    the drop of WSD's loss over its decay (real vs predicted, nats)."""
    out: dict[str, Any] = {}
    trio = ("wsd_20000_24000", "cosine_24000", "constant_24000")
    for size in ds.size.values:
        sel = ds.sel(size=size)

        def last(values):
            return float(values[np.isfinite(values)][-1])

        def drop(values, step=sel.step.values):
            ok = np.isfinite(values)
            before = values[ok & (step <= 20000)][-1]
            return float(before - values[ok][-1])

        real_final = {r: last(sel.loss.sel(curve=r).values) for r in trio}
        row = {
            "real": {
                "order": sorted(trio, key=lambda r: real_final[r]),
                "final": {r: round(v, 4) for r, v in real_final.items()},
                "wsd_drop": round(drop(sel.loss.sel(curve=trio[0]).values), 4),
            }
        }
        for law in ds.law.values:
            fin = {r: last(sel.pred.sel(law=law, curve=r).values) for r in trio}
            row[str(law)] = {
                "order": sorted(trio, key=lambda r, f=fin: f[r]),
                "final": {r: round(v, 4) for r, v in fin.items()},
                "wsd_drop": round(drop(sel.pred.sel(law=law, curve=trio[0]).values), 4),
            }
        out[str(size)] = row
    return out


def hill_summary(ds: xr.Dataset) -> dict[str, Any]:
    """Per size: the valley law's hill component (nats) at the last record of every run (the
    constant runs: the stable phase's level) and its spread in the best WSD cooldowns (the
    largest minus the smallest predicted loss over decay fractions 0.15-0.35, each fraction at
    its best shape, per planner and budget)."""
    out: dict[str, Any] = {}
    for size in ds.size.values:
        hill = ds.hill.sel(size=size)
        last = {
            str(r): round(float(hill.sel(curve=r).dropna("step")[-1]), 4)
            for r in ds.curve.values
            if np.isfinite(hill.sel(curve=r).values).any()
        }
        band = [f for f in ds.fraction.values if 0.15 - 1e-9 <= f <= 0.35 + 1e-9]
        spread = {}
        for planner in ds.planner.values:
            grid = ds.cooldown.sel(size=size, planner=planner, fraction=band).min("shape")
            spread[str(planner)] = round(
                float((grid.max("fraction") - grid.min("fraction")).max()), 4
            )
        out[str(size)] = {"final_hill": last, "cooldown_spread_0.15_0.35": spread}
    return out


def table(ds: xr.Dataset) -> str:
    """Markdown: held-out means (R^2, MAE, PredE, WorstE) per size and law, and the published
    multi-power row."""
    published = json.loads(ds.attrs["published"])
    quick = len(ds.size) < len(real_runs.SIZES)
    lines = []
    if quick:
        lines.append("*Quick mode: a smoke test (few fit iterations), not a result.*\n")
    lines += [
        "| size | law | R2 | MAE | PredE % | WorstE % |",
        "|---|---|---|---|---|---|",
    ]
    means = held_out(ds)
    for size in ds.size.values:
        for law in ds.law.values:
            m = means.sel(size=size, law=law)
            lines.append(
                f"| {size} | {LAW_LABELS[str(law)]} | {float(m.sel(metric='r2')):.4f} | "
                f"{float(m.sel(metric='mae')):.5f} | {100 * float(m.sel(metric='pred_e')):.3f} | "
                f"{100 * float(m.sel(metric='worst_e')):.3f} |"
            )
        p = published[str(size)]
        lines.append(
            f"| {size} | multi-power law, published | {p['r2']:.4f} | {p['mae']:.5f} | "
            f"{100 * p['pred_e']:.3f} | {100 * p['worst_e']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def summarize(ds: xr.Dataset) -> dict[str, Any]:
    means = held_out(ds)
    return {
        "held_out": {
            str(size): {
                str(law): {
                    str(k): round(float(means.sel(size=size, law=law, metric=k)), 6)
                    for k in METRICS
                }
                for law in ds.law.values
            }
            for size in ds.size.values
        },
        "published_multi_power": json.loads(ds.attrs["published"]),
        "fits": json.loads(ds.attrs["fits"]),
        "best_cooldown": best_cooldowns(ds),
        "optimal_monotone_loss": {
            str(size): {
                str(p): round(float(ds.optimal_loss.sel(size=size, planner=p)), 4)
                for p in ds.planner.values
            }
            for size in ds.size.values
            if np.isfinite(ds.optimal_loss.sel(size=size).values).all()
        },
        "toy": toy_agreement(ds),
        "hill": hill_summary(ds),
        "shape_checks": shape_checks(ds),
        "toy_seeds": int(ds.attrs["toy_seeds"]),
    }


def _finish(fig, ds: xr.Dataset) -> None:
    """Lay out ``fig``; in quick mode, with a banner saying it is a smoke test."""
    if len(ds.size) < len(real_runs.SIZES):
        fig.suptitle("QUICK MODE: smoke test, not a result", color="tab:red", fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
    else:
        fig.tight_layout()


def plot_fits(ds: xr.Dataset, out: Path) -> list[Path]:
    laws_shown = [law for law in ("multi_power", "valley") if law in ds.law.values]
    sizes = list(ds.size.values)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            len(sizes),
            1 + len(laws_shown),
            figsize=(5.2 * (1 + len(laws_shown)), 3.8 * len(sizes)),
            squeeze=False,
        )
        for i, size in enumerate(sizes):
            sel = ds.sel(size=size)
            ax = axes[i, 0]
            for run in ds.curve.values:
                y = sel.loss.sel(curve=run)
                ok = np.isfinite(y.values)
                test = str(sel.split.sel(curve=run).values) == "test"
                ax.plot(
                    ds.step.values[ok],
                    y.values[ok],
                    color=RUN_COLORS[str(run)],
                    lw=1.4,
                    alpha=0.6,
                    label=f"{run}{'' if test else ' (train)'}",
                )
                for law, style in zip(laws_shown, ("--", ":"), strict=False):
                    ax.plot(
                        ds.step.values[ok],
                        sel.pred.sel(law=law, curve=run).values[ok],
                        "k" + style,
                        lw=0.7,
                    )
            for law, style in zip(laws_shown, ("--", ":"), strict=False):
                ax.plot([], [], "k" + style, lw=0.7, label=LAW_LABELS[law])
            ax.set_xlabel("step (updates)")
            ax.set_ylabel("training loss (nats)")
            ax.set_title(f"{size}: real curves and the laws fitted on the 3 training runs")
            ax.set_ylim(
                float(np.nanmin(sel.loss.values)) - 0.05,
                float(np.nanquantile(sel.loss.values, 0.98)),
            )
            if i == 0:
                ax.legend(fontsize=6.5, ncol=2, loc="upper right")
            for k, law in enumerate(laws_shown):
                ax = axes[i, 1 + k]
                for run in ds.curve.values:
                    y = sel.loss.sel(curve=run).values
                    ok = np.isfinite(y)
                    rel = 100 * (sel.pred.sel(law=law, curve=run).values[ok] - y[ok]) / y[ok]
                    test = str(sel.split.sel(curve=run).values) == "test"
                    ax.plot(
                        ds.step.values[ok],
                        rel,
                        color=RUN_COLORS[str(run)],
                        lw=1.0,
                        ls="-" if test else ":",
                    )
                ax.axhline(0.0, color="k", lw=0.6)
                pe = 100 * float(held_out(ds).sel(size=size, law=law, metric="pred_e"))
                ax.set_title(f"{size}: {LAW_LABELS[law]} (held-out PredE {pe:.3f} %)")
                ax.set_xlabel("step (updates)")
                ax.set_ylabel("relative residual (pred - real) / real (%)")
                ax.set_ylim(-1.5, 1.5)
        _finish(fig, ds)
        return save_figure(fig, out / "real_curves_fits.png")


def plot_split(ds: xr.Dataset, out: Path) -> list[Path]:
    sizes = list(ds.size.values)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(sizes), 2, figsize=(11, 3.8 * len(sizes)), squeeze=False)
        for i, size in enumerate(sizes):
            sel = ds.sel(size=size)
            for run in ds.curve.values:
                c = RUN_COLORS[str(run)]
                y = sel.loss.sel(curve=run).values
                ok = np.isfinite(y)
                x = ds.step.values[ok]
                axes[i, 0].plot(x, y[ok], color=c, lw=1.3, label=str(run))
                axes[i, 0].plot(x, sel.river.sel(curve=run).values[ok], color=c, lw=1.0, ls="--")
                axes[i, 1].plot(x, sel.hill.sel(curve=run).values[ok], color=c, lw=1.2)
            axes[i, 0].plot([], [], "k--", lw=1.0, label="river component (fitted)")
            axes[i, 0].set_title(f"{size}: real loss (solid) and its river component (dashed)")
            axes[i, 0].set_ylabel("loss (nats)")
            axes[i, 0].set_ylim(
                float(np.nanmin(sel.river.values)) - 0.03,
                float(np.nanquantile(sel.loss.values, 0.9)),
            )
            axes[i, 1].set_title(f"{size}: hill component = fitted loss - river component")
            axes[i, 1].set_ylabel("hill loss (nats)")
            axes[i, 1].set_yscale("log")
            for ax in axes[i]:
                ax.set_xlabel("step (updates)")
            if i == 0:
                axes[i, 0].legend(fontsize=6.5, ncol=2)
        _finish(fig, ds)
        return save_figure(fig, out / "real_curves_split.png")


def plot_cooldown(ds: xr.Dataset, out: Path) -> list[Path]:
    best = best_cooldowns(ds)
    sizes = list(ds.size.values)
    markers = {"multi_power": "o", "valley": "s"}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
        ax = axes[0]
        for i, size in enumerate(sizes):
            for planner in ds.planner.values:
                rows = best[str(size)][str(planner)]
                budgets = [int(b) for b in rows]
                fracs = [rows[b]["fraction"] for b in rows]
                ax.plot(
                    budgets,
                    fracs,
                    marker=markers.get(str(planner), "^"),
                    color=f"C{i}",
                    ls="-" if planner == "valley" else "--",
                    label=f"{size}, {LAW_LABELS[str(planner)]}",
                )
        ax.set_xlabel("budget (updates, warmup 2160 included)")
        ax.set_ylabel("best WSD decay fraction")
        ax.set_title("predicted best cooldown fraction per budget")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=6.5)
        size = sizes[-1]
        budget = 24000 if 24000 in ds.budget.values else int(ds.budget.values[0])
        ax = axes[1]
        for planner in ds.planner.values:
            for shape in ds.shape.values:
                y = ds.cooldown.sel(size=size, planner=planner, budget=budget, shape=shape)
                ax.plot(
                    ds.fraction.values,
                    y.values,
                    marker=".",
                    ls="-" if planner == "valley" else "--",
                    label=f"{shape}, {planner}",
                )
        ax.set_xlabel("WSD decay fraction")
        ax.set_ylabel("predicted final loss (nats)")
        ax.set_title(f"{size}, {budget} updates: WSD decay shape x fraction")
        ax.legend(fontsize=6.5, ncol=2)
        ax = axes[2]
        if np.isfinite(ds.optimal_rates.values).any():
            for planner in ds.planner.values:
                r = ds.optimal_rates.sel(size=size, planner=planner).values
                loss = float(ds.optimal_loss.sel(size=size, planner=planner))
                ax.plot(
                    np.arange(r.size),
                    r,
                    ls="-" if planner == "valley" else "--",
                    label=f"{LAW_LABELS[str(planner)]}: {loss:.4f} nats",
                )
            ax.set_title(f"{size}: monotone schedule optimised under each law")
        else:
            ax.set_title("optimised schedule: not computed (quick mode)")
        ax.set_xlabel("update")
        ax.set_ylabel("learning rate")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        _finish(fig, ds)
        return save_figure(fig, out / "real_curves_cooldown.png")


def plot_toy(ds: xr.Dataset, out: Path) -> list[Path]:
    sizes = list(ds.size.values)
    toy_runs = [r for r in ds.curve.values if np.isfinite(ds.toy_loss.sel(curve=r).values).any()]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4.4), squeeze=False)
        for i, size in enumerate(sizes):
            ax = axes[0, i]
            sel = ds.sel(size=size)
            for run in toy_runs:
                c = RUN_COLORS[str(run)]
                y = sel.loss.sel(curve=run).values
                toy = sel.toy_loss.sel(curve=run).values
                ok = np.isfinite(y) & np.isfinite(toy)
                x = ds.step.values[ok]
                ax.plot(x, y[ok], color=c, lw=2.2, alpha=0.35)
                ax.plot(x, toy[ok], color=c, lw=0.9, label=str(run))
            ax.plot([], [], color="grey", lw=2.2, alpha=0.35, label="real run")
            ax.plot(
                [],
                [],
                color="grey",
                lw=0.9,
                label=f"toy valley, SGD ({int(ds.attrs['toy_seeds'])} seeds)",
            )
            ax.set_xlabel("step (updates)")
            ax.set_ylabel("loss (nats)")
            ax.set_title(f"{size}: the fitted river valley simulated")
            ax.set_ylim(
                float(np.nanmin(sel.loss.values)) - 0.05,
                float(np.nanquantile(sel.loss.values, 0.98)),
            )
            ax.legend(fontsize=6.5, ncol=2)
        _finish(fig, ds)
        return save_figure(fig, out / "real_curves_toy.png")


def plot(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    del cfg
    out.mkdir(parents=True, exist_ok=True)
    figures = plot_fits(ds, out) + plot_split(ds, out) + plot_cooldown(ds, out) + plot_toy(ds, out)
    text = table(ds)
    (out / "real_curves_table.md").write_text(text)
    print(text)
    write_summary(out / "real_curves_summary.json", summarize(ds), echo=False)
    return figures


main = main_for(__name__, "real_curves")


if __name__ == "__main__":
    main()
