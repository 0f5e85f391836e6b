r"""The convex last-iterate bound against simulated SGD, on a convex problem and on the toy valley.

    python experiments/convex_bound.py [--quick] [--out DIR]

The bound (``rivervalley.convex_bound``; Schaipp et al. 2025, Theorem 1 = Defazio et al. 2023,
Theorem 10): for SGD with rates ``gamma s_t`` on a convex problem with ``E||g||^2 <= G^2`` and
``D = ||w_0 - w*||``, ``E L(w_j) - L* <= D^2 A_j(s) / gamma + G^2 B_j(s) gamma``, the iterate
``w_j`` after ``j`` updates using the rates ``r_0 .. r_j``; optimal base rate
``gamma* = (D/G) sqrt(A/B)``, optimal bound ``2 D G sqrt(A B)``.  Schedules (unit peak, no
warmup): constant, WSD (linear cooldown over the last ``decay_fraction``), cosine and linear
decay, each built with ``total_steps = steps + 1`` (the bound reads their ``steps + 1`` rates;
the sweep runs them with ``horizon="free"``), so the run's ``steps`` updates use ``r_0 ..
r_{steps-1}`` and the bound on the final iterate also uses ``r_steps > 0`` (a schedule reaching
0 at the last bounded iterate has an infinite bound; the authors likewise evaluate schedules of
``T + 1`` rates ending at 0 at ``T``).

Two landscapes, one compiled ``sweep`` each (a dict of the four schedules, each over a log grid
of base rates: dims ``schedule x peak``; common seeds):

1. *Convex*: ``landscapes.weighted_l1`` (``L = sum_i c_i |w_i|``, ``c`` log-spaced from 1 down to
   ``l1_flattest`` over ``l1_dim`` coordinates, Gaussian subgradient noise ``l1_noise``, start
   ``w_0 = 1``).  ``D = ||w_0||`` and ``G^2 = ||c||^2 + d sigma^2`` exactly, so the bound must
   hold: the mean suboptimality over seeds (with its standard error) is compared with it at
   every recorded step and base rate (max of simulated / bound, max z-score).
2. *Toy river valley* (``landscapes.toy``, gradient noise ``toy_noise``): not convex (and no
   minimiser: ``L -> 0`` as ``s -> inf``), so the bound guarantees nothing and has no natural
   ``D``, ``G``.  The comparisons that do not depend on them: the ranking of schedules at their
   own optimal base rates (``2 D G sqrt(A B)`` scales all schedules alike) and the *ratios* of
   optimal base rates between schedules (``gamma*`` scales with ``D/G`` alike).  For the
   overlays, ``D`` and ``G`` are *calibrated* on the constant schedule (the one whose simulated
   optimum lies inside the grid): ``D/G`` so that the bound's ``gamma*`` equals the simulated
   optimal rate of the constant schedule, and ``D G`` so that the bound's optimum equals the
   simulated loss there; the other schedules' curves are then predictions.

The simulated optimal base rate is the grid argmin of the mean final loss, refined by a parabola
in ``(log gamma, log loss)`` through its neighbours (flagged when at the edge of the grid).

Figure ``convex_bound.png`` (one row per landscape): mean loss over steps at each schedule's
optimal base rate (bound-optimal grid point on the convex problem, simulated one on the toy)
with the bound's curve overlaid; final loss against the base rate per schedule (2 SE bars) with
the bound's curve, its optimum (star) and the simulated optimum (circle); simulated / bound.
``convex_bound_summary.json``: per landscape the rankings (bound vs simulation, with the paired
standard errors of adjacent differences), optimal base rates (bound, simulated, ratio), whether
the bound holds (convex), the calibrated ``D``, ``G`` (toy).

What the full run finds (256 seeds, 2000 steps, 15 base rates per landscape).  Convex: the
bound holds at all 4860 (schedule, rate, step) points, by far: simulated / bound at most
0.245 +- 0.0004 (linear decay, the smallest rate, step 275), <= 0.21 at the last step.  Ranking
(best to worst) bound: linear < cosine < WSD < constant; simulation: linear ~ cosine (tie,
z 0.3) < WSD (z 5.8) < constant (z 39), so they agree except that the simulation cannot
separate linear from cosine (the bound separates them by 3%).  The bound's optimal base rates
are too small: simulated / bound 1.16 (constant), 1.52 (WSD), 1.93 (cosine), 1.79 (linear);
relative to constant the bound predicts 1 : 1.55 : 2.94 : 3.02, the simulation gives
1 : 2.04 : 4.90 : 4.68.  Toy valley (``sigma = 0.5``; ``D = 1.40``, ``G = 0.172`` calibrated on
the constant schedule): the simulation ranks WSD < cosine < linear < constant, the bound
linear < cosine < WSD < constant, but only constant's gap is significant (WSD vs cosine z 1.5,
cosine vs linear z 2.5); every decaying schedule's simulated optimum is the top of the grid
(0.18, just below the stability limit ~0.19), a limit the bound does not know: it predicts WSD's
optimal rate at 0.093 (simulated >= 0.18).
Runtime: ~70 s on 2 shared, heavily loaded cores (``--quick``: ~40 s there, 15 s of CPU).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from rivervalley import convex_bound, optimizers, schedules
from rivervalley.experiment import main_for, write_summary
from rivervalley.landscapes import toy, weighted_l1
from rivervalley.plotting import SCHEDULE_COLORS, SCHEDULE_NAMES, STYLE, save_figure
from rivervalley.runner import sweep

SCHEDULES = ("constant", "wsd", "cosine", "linear")
LANDSCAPES = ("convex", "toy")
CALIBRATION_SCHEDULE = "constant"


@dataclasses.dataclass(frozen=True)
class Config:
    steps: int = 2000
    record_every: int = 25  # odd to 4: the runner then does not unroll (compiles ~2x faster)
    seeds: int = 256
    decay_fraction: float = 0.2  # WSD cooldown: the last 20% of the steps, linear to 0
    # convex: weighted L1, weights log-spaced 1 .. l1_flattest over l1_dim coordinates
    l1_dim: int = 8
    l1_flattest: float = 0.03
    l1_noise: float = 0.5
    l1_start: float = 1.0
    convex_rates: tuple[float, ...] = tuple(np.geomspace(3e-3, 0.3, 15).round(6).tolist())
    # the toy river valley (a = 10, b = 0.15, omega = 1): rates above ~0.19 diverge
    toy_noise: float = 0.5
    toy_rates: tuple[float, ...] = tuple(np.geomspace(5e-3, 0.18, 15).round(6).tolist())


def config(quick: bool) -> Config:
    if not quick:
        return Config()
    return Config(
        steps=400,
        seeds=32,
        convex_rates=tuple(np.geomspace(5e-3, 0.3, 7).round(6).tolist()),
        toy_rates=tuple(np.geomspace(1e-2, 0.18, 7).round(6).tolist()),
    )


def schedule_set(cfg: Config, peak) -> dict[str, schedules.Schedule]:
    """The schedules in ``SCHEDULES`` order at base rate ``peak`` (a number, or a list: dim
    ``peak``), each planned over ``steps + 1`` rates (module docstring)."""
    total = cfg.steps + 1
    return {
        "constant": schedules.constant(peak),
        "wsd": schedules.wsd(peak, total, cfg.decay_fraction),
        "cosine": schedules.cosine(peak, total),
        "linear": schedules.linear(peak, total),
    }


def shapes(cfg: Config) -> np.ndarray:
    """Unit-peak rates ``s_0 .. s_steps`` (``steps + 1`` of them) of each schedule, in
    ``SCHEDULES`` order: shape ``(4, steps + 1)``."""
    total = cfg.steps + 1
    built = schedule_set(cfg, 1.0)
    return np.stack([np.asarray(schedules.rates(built[k], total), np.float64) for k in SCHEDULES])


def convex_landscape(cfg: Config):
    weights = np.geomspace(1.0, cfg.l1_flattest, cfg.l1_dim)
    return weighted_l1(weights, cfg.l1_noise, cfg.l1_start)


def _simulate(landscape, rates: tuple[float, ...], cfg, progress) -> xr.DataArray:
    """One sweep of every schedule x base rate: per-seed losses ``(schedule, rate, seed,
    step)``, a diverged run NaN at every step.  The schedules plan ``steps + 1`` rates, one more
    than the run takes: ``horizon="free"``."""
    ds = sweep(
        landscape,
        optimizers.sgd(),
        schedule_set(cfg, list(rates)),
        seeds=cfg.seeds,
        steps=cfg.steps,
        record_every=cfg.record_every,
        horizon="free",
        progress=progress,
    )
    loss = ds.loss.where(~ds.diverged).astype(np.float64).transpose("schedule", "peak", ...)
    loss = loss.drop_vars(["peak", "landscape", "optimizer"]).rename(peak="rate")
    return loss.assign_coords(rate=np.arange(len(rates)))


def compute(cfg: Config, progress: bool | None) -> xr.Dataset:
    assert len(cfg.convex_rates) == len(cfg.toy_rates), "one rate axis for both landscapes"
    assert cfg.steps % cfg.record_every == 0
    unit = shapes(cfg)
    convex = convex_landscape(cfg)
    valley = toy(noise_std=cfg.toy_noise)
    loss = xr.concat(
        [
            _simulate(land, rates, cfg, progress)
            for land, rates in ((convex, cfg.convex_rates), (valley, cfg.toy_rates))
        ],
        dim=xr.DataArray(list(LANDSCAPES), dims="landscape", name="landscape"),
    )  # (landscape, schedule, rate, seed, step)
    final = loss.isel(step=-1, drop=True)
    n = final.notnull().sum("seed")  # non-diverged seeds per configuration
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a configuration without a finite run
        mean = loss.mean("seed")
        se = loss.std("seed", ddof=1) / np.sqrt(n)
    steps = loss.step.values
    terms = convex_bound.bound_terms(unit, steps=steps)  # bound on w_j for each recorded j
    return xr.Dataset(
        {
            "mean_loss": mean,
            "se_loss": se,
            "final_loss": final,
            "n_finite": n,
            "bound_A": (("schedule", "step"), terms.A),
            "bound_B": (("schedule", "step"), terms.B),
            "unit_rates": (("schedule", "update"), unit),
            "base_rate": (("landscape", "rate"), np.array([cfg.convex_rates, cfg.toy_rates])),
        },
        coords={"update": np.arange(unit.shape[-1])},
        attrs={
            "D_convex": float(convex.initial_distance()),
            "G_convex": float(convex.gradient_bound()),
            "convex_weights": json.dumps(np.asarray(convex.weights).tolist()),
        },
    )


# ------------------------------------------------------------------------------------------------
# analysis (reads only the dataset)


def _terms_final(ds: xr.Dataset) -> convex_bound.BoundTerms:
    return convex_bound.BoundTerms(ds.bound_A.values[:, -1], ds.bound_B.values[:, -1])


def simulated_optimum(gamma: np.ndarray, final: np.ndarray) -> tuple[float, bool]:
    """Argmin of the mean final loss over the grid, refined by a parabola in
    ``(log gamma, log loss)`` through the argmin and its neighbours; and whether the argmin is
    at the edge of the grid (then the grid value, a bound on the optimum, is returned)."""
    finite = np.where(np.isfinite(final), final, np.inf)
    i = int(np.argmin(finite))
    if i == 0 or i == len(gamma) - 1 or not np.all(np.isfinite(finite[i - 1 : i + 2])):
        return float(gamma[i]), True
    x, y = np.log(gamma[i - 1 : i + 2]), np.log(finite[i - 1 : i + 2])
    a, b, _ = np.polyfit(x, y, 2)
    if a <= 0:
        return float(gamma[i]), False
    return float(np.clip(np.exp(-b / (2 * a)), gamma[i - 1], gamma[i + 1])), False


def calibrate(ds: xr.Dataset, landscape: str) -> tuple[float, float]:
    """``D``, ``G`` for a landscape: exact on the convex one; on the toy, ``D/G`` from the
    calibration schedule's simulated optimal rate and ``D G`` from its simulated optimal loss."""
    if landscape == "convex":
        return float(ds.attrs["D_convex"]), float(ds.attrs["G_convex"])
    k = SCHEDULES.index(CALIBRATION_SCHEDULE)
    terms = _terms_final(ds)
    sel = ds.sel(landscape=landscape)
    gamma = sel.base_rate.values
    final = sel.mean_loss.values[k, :, -1]
    g_sim, _ = simulated_optimum(gamma, final)
    loss_sim = float(np.exp(np.interp(np.log(g_sim), np.log(gamma), np.log(final))))
    ratio = g_sim / float(np.sqrt(terms.A[k] / terms.B[k]))  # D / G
    product = loss_sim / float(2 * np.sqrt(terms.A[k] * terms.B[k]))  # D G
    return float(np.sqrt(ratio * product)), float(np.sqrt(product / ratio))


def _ranking(values: dict[str, float]) -> list[str]:
    """Schedule names from the lowest (best) to the highest value."""
    return sorted(values, key=lambda k: values[k])


def summarize(ds: xr.Dataset) -> dict:
    terms = _terms_final(ds)
    out: dict = {
        "bound": (
            "E L(w_j) - L* <= D^2 A_j / gamma + G^2 B_j gamma, A = 1/(2 S_{0:j}), B = "
            "Q_{0:j}/(2 S_{0:j}) + 1/2 sum_{k<j} s_k Q_{k:j} / (S_{k+1:j} S_{k:j}) over the unit "
            "rates s_0..s_j (Schaipp et al. 2025 Thm 1 = Defazio et al. 2023 Thm 10)"
        ),
        "steps": int(ds.step.values[-1]),
        "seeds": int(ds.sizes["seed"]),
    }
    for land in LANDSCAPES:
        sel = ds.sel(landscape=land)
        D, G = calibrate(ds, land)
        gamma = sel.base_rate.values
        mean = sel.mean_loss.values  # (schedule, rate, step)
        se = sel.se_loss.values
        final = sel.final_loss.values  # (schedule, rate, seed)
        entry: dict = {"D": D, "G": G}
        if land == "toy":
            entry["D_G_choice"] = (
                f"calibrated on the {CALIBRATION_SCHEDULE} schedule: D/G from its simulated "
                "optimal base rate, D*G from its simulated optimal final loss"
            )
        else:
            entry["D_G_choice"] = "exact: D = ||w_0||, G^2 = ||c||^2 + d sigma^2"
        g_bound = convex_bound.optimal_base_rate(terms, D, G)
        opt_bound = convex_bound.optimal_bound(terms, D, G)
        per: dict = {}
        sim_best: dict[str, float] = {}
        best_index: dict[str, int] = {}
        for k, name in enumerate(SCHEDULES):
            g_sim, edge = simulated_optimum(gamma, mean[k, :, -1])
            i = int(np.nanargmin(np.where(np.isfinite(mean[k, :, -1]), mean[k, :, -1], np.inf)))
            best_index[name] = i
            sim_best[name] = float(mean[k, i, -1])
            bound_grid = convex_bound.bound_at(
                convex_bound.BoundTerms(terms.A[k], terms.B[k]), gamma, D, G
            )
            per[name] = {
                "bound_optimal_rate": float(g_bound[k]),
                "bound_optimum": float(opt_bound[k]),
                "bound_optimum_on_grid": float(bound_grid.min()),
                "simulated_optimal_rate": g_sim,
                "simulated_optimum_at_grid_edge": edge,
                "rate_ratio_simulated_over_bound": g_sim / float(g_bound[k]),
                "simulated_best_final_loss": sim_best[name],
                "simulated_best_final_loss_se": float(se[k, i, -1]),
                "diverged_runs": int(sel.sizes["seed"] * len(gamma) - sel.n_finite.values[k].sum()),
            }
        ref = SCHEDULES.index(CALIBRATION_SCHEDULE)
        for k, name in enumerate(SCHEDULES):
            per[name]["bound_rate_relative_to_constant"] = float(g_bound[k] / g_bound[ref])
            per[name]["simulated_rate_relative_to_constant"] = (
                per[name]["simulated_optimal_rate"]
                / per[CALIBRATION_SCHEDULE]["simulated_optimal_rate"]
            )
        bound_rank = _ranking({n: per[n]["bound_optimum"] for n in SCHEDULES})
        sim_rank = _ranking(sim_best)
        # paired standard errors (common seeds) of adjacent differences in the simulated ranking
        gaps = []
        for a, b in itertools.pairwise(sim_rank):
            ka, kb = SCHEDULES.index(a), SCHEDULES.index(b)
            diff = final[kb, best_index[b]] - final[ka, best_index[a]]
            diff = diff[np.isfinite(diff)]
            d_se = float(diff.std(ddof=1) / np.sqrt(diff.size))
            gaps.append(
                {
                    "better": a,
                    "worse": b,
                    "difference": float(diff.mean()),
                    "se": d_se,
                    "z": float(diff.mean() / d_se) if d_se > 0 else float("inf"),
                }
            )
        entry |= {
            "per_schedule": per,
            "ranking_best_to_worst": {"bound": bound_rank, "simulation": sim_rank},
            "rankings_agree": bound_rank == sim_rank,
            "simulated_ranking_gaps": gaps,
        }
        if land == "convex":
            bound = convex_bound.bound_at(
                convex_bound.BoundTerms(
                    sel.bound_A.values[:, None, :], sel.bound_B.values[:, None, :]
                ),
                gamma[None, :, None],
                D,
                G,
            )  # (schedule, rate, step)
            ratio = mean / bound
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(se > 0, (mean - bound) / se, -np.inf)  # se = 0 at step 0
            idx = np.unravel_index(int(np.nanargmax(ratio)), ratio.shape)
            entry["bound_holds"] = {
                "holds": bool(np.all(mean <= bound + 3 * se)),
                "max_simulated_over_bound": float(ratio[idx]),
                "its_se": float(se[idx] / bound[idx]),
                "at": {
                    "schedule": SCHEDULES[idx[0]],
                    "base_rate": float(gamma[idx[1]]),
                    "step": int(sel.step.values[idx[2]]),
                },
                "max_z": float(np.nanmax(z)),
                "final_max_simulated_over_bound": float(np.nanmax(ratio[..., -1])),
                "comparisons": int(ratio.size),
            }
        out[land] = entry
    return out


# ------------------------------------------------------------------------------------------------
# figure


def plot(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(ds)
    steps = ds.step.values
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 3, figsize=(16, 9))
        for row, land in enumerate(LANDSCAPES):
            sel = ds.sel(landscape=land)
            entry = summary[land]
            D, G = entry["D"], entry["G"]
            gamma = sel.base_rate.values
            fine = np.geomspace(gamma.min() / 1.5, gamma.max() * 1.5, 200)
            title = (
                "convex: weighted L1 (bound must hold)"
                if land == "convex"
                else f"toy river valley, $\\sigma$ = {cfg.toy_noise} (no guarantee; D, G fitted)"
            )
            ax_curve, ax_rate, ax_ratio = axes[row]
            for k, name in enumerate(SCHEDULES):
                color, label = SCHEDULE_COLORS[name], SCHEDULE_NAMES[name]
                per = entry["per_schedule"][name]
                terms = convex_bound.BoundTerms(sel.bound_A.values[k], sel.bound_B.values[k])
                # (a) curves over steps at the schedule's optimal grid rate
                target = (
                    per["bound_optimal_rate"] if land == "convex" else per["simulated_optimal_rate"]
                )
                i = int(np.argmin(np.abs(np.log(gamma / target))))
                m = sel.mean_loss.values[k, i]
                s = sel.se_loss.values[k, i]
                ax_curve.plot(
                    steps, m, color=color, lw=1.5, label=f"{label}, $\\gamma$={gamma[i]:.3g}"
                )
                ax_curve.fill_between(steps, m - 2 * s, m + 2 * s, color=color, alpha=0.2, lw=0)
                curve = convex_bound.bound_at(terms, gamma[i], D, G)
                ax_curve.plot(steps[1:], curve[1:], color=color, lw=1.0, ls="--")
                # (b) final loss against the base rate
                final = sel.mean_loss.values[k, :, -1]
                final_se = sel.se_loss.values[k, :, -1]
                ax_rate.errorbar(
                    gamma,
                    final,
                    yerr=2 * final_se,
                    fmt="o-",
                    ms=3,
                    lw=1.0,
                    color=color,
                    label=label,
                )
                last = convex_bound.BoundTerms(terms.A[-1], terms.B[-1])
                ax_rate.plot(fine, convex_bound.bound_at(last, fine, D, G), "--", color=color, lw=1)
                ax_rate.plot(
                    per["bound_optimal_rate"],
                    per["bound_optimum"],
                    "*",
                    ms=12,
                    color=color,
                    mec="k",
                    mew=0.5,
                )
                g_sim = per["simulated_optimal_rate"]
                y_sim = np.exp(np.interp(np.log(g_sim), np.log(gamma), np.log(final)))
                ax_rate.plot(g_sim, y_sim, "o", ms=9, mfc="none", color=color, mew=1.5)
                # (c) simulated / bound at the end
                ratio = final / convex_bound.bound_at(last, gamma, D, G)
                ax_ratio.errorbar(
                    gamma,
                    ratio,
                    yerr=2 * final_se / convex_bound.bound_at(last, gamma, D, G),
                    fmt="o-",
                    ms=3,
                    lw=1.0,
                    color=color,
                    label=label,
                )
            ax_curve.plot([], [], "k--", lw=1.0, label="bound (dashed)")
            ax_curve.set_yscale("log")
            ax_curve.set_xlabel("step (updates)")
            ax_curve.set_ylabel("mean loss $L(w_t) - L^*$ (band: 2 SE)")
            which = "bound-optimal" if land == "convex" else "simulated best"
            ax_curve.set_title(f"{title}\n(a) loss over steps at each schedule's {which} rate")
            ax_curve.legend(fontsize=7)
            ax_rate.plot([], [], "k--", lw=1, label="bound at the last step")
            ax_rate.plot([], [], "k*", ms=10, label="bound optimum")
            ax_rate.plot([], [], "ko", mfc="none", ms=8, label="simulated optimum")
            for ax in (ax_rate, ax_ratio):
                ax.set_xscale("log")
                ax.set_xlabel("base (peak) rate $\\gamma$")
            ax_rate.set_yscale("log")
            ax_rate.set_ylabel(f"final loss at step {int(steps[-1])} (mean $\\pm$ 2 SE)")
            ranks = entry["ranking_best_to_worst"]
            ax_rate.set_title(
                "(b) final loss vs base rate; best to worst:\nbound "
                + " < ".join(SCHEDULE_NAMES[n] for n in ranks["bound"])
                + "\nsimulated "
                + " < ".join(SCHEDULE_NAMES[n] for n in ranks["simulation"]),
                fontsize=8,
            )
            ax_rate.legend(fontsize=7)
            ax_ratio.set_yscale("log")
            ax_ratio.set_ylabel("simulated final loss / bound")
            if land == "convex":
                ax_ratio.axhline(1.0, color="k", lw=1)
                held = entry["bound_holds"]
                ax_ratio.set_title(
                    f"(c) simulated / bound (must be <= 1): max over all steps "
                    f"{held['max_simulated_over_bound']:.3f}",
                    fontsize=9,
                )
            else:
                ax_ratio.axhline(1.0, color="k", lw=1)
                ax_ratio.set_title(
                    f"(c) simulated / calibrated bound (D = {D:.3g}, G = {G:.3g})", fontsize=9
                )
            ax_ratio.legend(fontsize=7)
        fig.suptitle(
            f"convex last-iterate bound (Schaipp et al. 2025) vs SGD, {int(ds.sizes['seed'])} "
            f"seeds, {int(steps[-1])} steps; WSD: linear cooldown over the last "
            f"{cfg.decay_fraction:.0%}",
            fontsize=10,
        )
        fig.tight_layout()
    paths = save_figure(fig, out / "convex_bound.png")
    write_summary(out / "convex_bound_summary.json", summary, echo=False)
    for land in LANDSCAPES:
        e = summary[land]
        ranks = e["ranking_best_to_worst"]
        rates = ", ".join(
            f"{n} {e['per_schedule'][n]['rate_ratio_simulated_over_bound']:.2f}" for n in SCHEDULES
        )
        print(
            f"{land}: ranking bound {ranks['bound']} vs simulation {ranks['simulation']}; "
            f"optimal rate simulated / bound: {rates}"
        )
    if "bound_holds" in summary["convex"]:
        h = summary["convex"]["bound_holds"]
        print(
            f"convex: bound holds {h['holds']}; max simulated / bound "
            f"{h['max_simulated_over_bound']:.4f} +- {h['its_se']:.4f}, max z {h['max_z']:.1f}"
        )
    return paths


main = main_for(__name__, "convex_bound")


if __name__ == "__main__":
    main()
