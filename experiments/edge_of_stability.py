r"""Edge of stability for GD on a river valley that sharpens along the river.

    python experiments/edge_of_stability.py [--quick] [--out DIR]

The landscape is the 2-D toy with hill curvature growing along the river
(``landscapes.toy(curvature_growth=kappa)``)

.. math::

    L(s, y) = \log(1 + e^{-s}) + \tfrac{a}{2} \bigl(1 + \kappa\, \mathrm{softplus}(s)\bigr)
        \bigl(y - b \sin(\omega s)\bigr)^2,

so the top Hessian eigenvalue on the river floor grows roughly like ``a (1 + kappa s)``
downstream.  Plain GD (``sgd`` on the exact gradient) runs at several constant rates ``eta``
(dim ``peak``) and under WSD from each of them (linear decay to 0 over the last
``decay_fraction``; the figures use the one at ``wsd_peak``), all in one compiled sweep: the
schedules are a named axis (dim ``schedule``: ``constant``, ``wsd``).  The landscape is batched
too (dim ``curvature_growth``): every schedule also runs on the same valley with ``kappa = 0``
(constant curvature ``a``, always stable at these rates), the reference for river progress
without the edge of stability.  Every step records the iterate and the sharpness (top Hessian
eigenvalue, by ``d = 2`` Lanczos iterations: exact).

Measured (plot step, ``edge_of_stability_summary.json``): per ``eta``, over the late phase (the
second half of the run), the time-average of ``sharpness * eta / 2`` (1 at the edge of
stability), the mean hill distance ``||w - r(w)||`` of the iterates ``w_t`` and of the midpoints
``(w_t + w_{t+1}) / 2`` and their ratio, and river progress (river loss early vs late in the late
phase, against the ``kappa = 0`` run); for WSD, the same quantities at the start and at the end
of the decay.  Figures: ``edge_of_stability`` (sharpness against ``2/eta``, river coordinate,
losses, hill distances, a zoom on the zig-zag, the late-phase averages) and
``edge_of_stability_wsd`` (the WSD run against the constant run at its peak).
Runtime: ~15 s on 2 cores (``--quick``: ~10 s; compilation and plotting dominate).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from rivervalley import optimizers, pytree, schedules
from rivervalley.experiment import main_for, write_summary
from rivervalley.landscapes import RiverValley, toy
from rivervalley.plotting import LABELS, STYLE, save_figure
from rivervalley.runner import sweep


@dataclasses.dataclass(frozen=True)
class Config:
    hill_curvature: float = 1.0  # a: hill curvature far upstream
    curvature_growth: float = 2.0  # kappa
    amplitude: float = 0.15  # b: the river bends (a straight river started on its floor
    frequency: float = 1.0  # would never excite the unstable hill direction)
    start: float = -2.0  # river coordinate of the start, on the floor
    peaks: tuple[float, ...] = (0.1, 0.16, 0.2, 0.25, 0.32)  # 0.1: 2/eta not reached in time
    wsd_peak: float = 0.2
    decay_fraction: float = 0.25
    steps: int = 6000
    late_fraction: float = 0.5  # the late phase: the last half of the run
    smooth: int = 25  # window (steps) of the moving averages in the figures


def config(quick: bool) -> Config:
    return Config(peaks=(0.2, 0.25), steps=1600) if quick else Config()


def valley(cfg: Config, curvature_growth: float | None = None) -> RiverValley:
    kappa = cfg.curvature_growth if curvature_growth is None else curvature_growth
    s0 = cfg.start
    return toy(
        hill_curvature=cfg.hill_curvature,
        amplitude=cfg.amplitude,
        frequency=cfg.frequency,
        noise_std=0.0,
        start=(s0, cfg.amplitude * np.sin(cfg.frequency * s0)),
        curvature_growth=kappa,
    )


def compute(cfg: Config, progress: bool | None) -> xr.Dataset:
    if not np.isclose(cfg.peaks, cfg.wsd_peak).any():
        raise ValueError(f"wsd_peak: need one of the peaks {cfg.peaks}, got {cfg.wsd_peak}")
    # the sharpening valley and its constant-curvature twin, as one batched landscape
    lands = pytree.stack([valley(cfg), valley(cfg, curvature_growth=0.0)])
    peaks = list(cfg.peaks)
    return sweep(
        lands,
        optimizers.sgd(),
        {
            "constant": schedules.constant(peaks),
            "wsd": schedules.wsd(peaks, cfg.steps, cfg.decay_fraction),
        },
        seeds=1,
        steps=cfg.steps,
        record_every=1,
        gradient="exact",
        record_params=True,
        sharpness=2,  # d Lanczos iterations: exact in 2-D
        progress=progress,
    )


# --- analysis (plot step: reads only the dataset) -----------------------------------------------


def _index(coord: xr.DataArray, value: float) -> int:
    """The position of ``value`` along a float coordinate (stored in float32: compared with
    ``isclose``, not exactly)."""
    (index,) = np.flatnonzero(np.isclose(coord.values, value))
    return int(index)


def pick(ds: xr.Dataset, kind: str, peak: float, kappa: float) -> xr.Dataset:
    """The one run (dims ``step`` and ``param`` left) of this schedule kind, peak rate and
    curvature growth."""
    return ds.sel(schedule=kind).isel(
        peak=_index(ds.peak, peak),
        curvature_growth=_index(ds.curvature_growth, kappa),
        seed=0,
    )


def hill_dist(land: RiverValley, w: np.ndarray) -> np.ndarray:
    """``||w - r(w)|| = ||y - c(s)||`` for points ``w`` of shape ``(..., d)`` (NumPy: the plot
    step stays free of JAX compilations)."""
    b, omega = np.asarray(land.amplitudes), float(land.frequency)
    return np.linalg.norm(w[..., 1:] - b * np.sin(omega * w[..., :1]), axis=-1)


def midpoint_hill_dist(land: RiverValley, params: np.ndarray) -> np.ndarray:
    """Hill distance of the midpoints ``(w_t + w_{t+1}) / 2``, shape ``(steps,)``."""
    return hill_dist(land, 0.5 * (params[1:] + params[:-1]))


def floor_sharpness(land: RiverValley, s: np.ndarray) -> np.ndarray:
    """Top Hessian eigenvalue on the floor of the 2-D softplus valley at river coordinates ``s``,
    in closed form: ``(T + sqrt(T^2 - 4 f'' a g)) / 2``, ``T = f'' + a g (1 + c'^2)``."""
    a, b = float(land.curvatures[0]), float(land.amplitudes[0])
    omega, kappa = float(land.frequency), float(land.curvature_growth)
    f2 = 1.0 / ((1.0 + np.exp(s)) * (1.0 + np.exp(-s)))  # f'' = sigma(s) sigma(-s)
    hill = a * (1.0 + kappa * np.logaddexp(0.0, s))  # a g(s)
    slope = b * omega * np.cos(omega * s)  # c'(s)
    trace = f2 + hill * (1.0 + slope**2)
    return 0.5 * (trace + np.sqrt(trace**2 - 4.0 * f2 * hill))


def edge_position(land: RiverValley, eta: float, s_max: float = 30.0) -> float:
    """River coordinate ``s*`` where the floor sharpness first reaches ``2 / eta``."""
    grid = np.linspace(-5.0, s_max, 35_001)
    above = floor_sharpness(land, grid) >= 2.0 / eta
    return float(grid[np.argmax(above)]) if above.any() else float("nan")


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centered moving average (shrinking at the ends), same length as ``x``."""
    kernel = np.ones(window)
    return np.convolve(x, kernel, "same") / np.convolve(np.ones_like(x), kernel, "same")


def phase_stats(run: xr.Dataset, land: RiverValley, eta: np.ndarray, window: slice) -> dict:
    """Averages over the steps ``window`` (indices into the records, ``steps + 1`` of them)."""
    params = run.params.values
    hill = run.hill_dist.values[:-1][window]  # iterates w_t with a successor w_{t+1}
    mid = midpoint_hill_dist(land, params)[window]
    ratio = run.sharpness.values[:-1][window] * eta[window] / 2.0
    quarter = max(1, len(hill) // 4)
    river = run.river_loss.values[:-1][window]
    return {
        "sharpness_eta_over_2_mean": float(ratio.mean()),
        "sharpness_eta_over_2_std": float(ratio.std()),
        "sharpness_eta_over_2_min": float(ratio.min()),
        "sharpness_eta_over_2_max": float(ratio.max()),
        "hill_dist_iterate_mean": float(hill.mean()),
        "hill_dist_midpoint_mean": float(mid.mean()),
        "midpoint_over_iterate_hill_dist": float(mid.mean() / hill.mean()),
        "river_coord_mean": float(run.river_coord.values[:-1][window].mean()),
        "river_coord_min": float(run.river_coord.values[:-1][window].min()),
        "river_loss_first_quarter": float(river[:quarter].mean()),
        "river_loss_last_quarter": float(river[-quarter:].mean()),
        "loss_mean": float(run.loss.values[:-1][window].mean()),
        "hill_loss_mean": float(run.hill_loss.values[:-1][window].mean()),
    }


def summarize(ds: xr.Dataset, cfg: Config) -> dict:
    land, flat = valley(cfg), valley(cfg, curvature_growth=0.0)
    late = slice(int(cfg.late_fraction * cfg.steps), cfg.steps)
    out: dict = {
        "landscape": {
            "hill_curvature": cfg.hill_curvature,
            "curvature_growth": cfg.curvature_growth,
            "amplitude": cfg.amplitude,
            "frequency": cfg.frequency,
        },
        "late_phase_steps": [late.start, late.stop],
        "constant": {},
    }
    for eta in cfg.peaks:
        run = pick(ds, "constant", eta, cfg.curvature_growth)
        ref = pick(ds, "constant", eta, 0.0)
        lr = run.lr.values
        ratio = run.sharpness.values * eta / 2.0
        reached = np.flatnonzero(ratio >= 0.95)
        entry = {
            "two_over_eta": 2.0 / eta,
            "diverged": bool(run.diverged),
            "first_step_sharpness_eta_over_2_ge_0.95": int(reached[0]) if reached.size else None,
            "edge_position_s_star": edge_position(land, eta),
            **phase_stats(run, land, lr, late),
        }
        flat_stats = phase_stats(ref, flat, ref.lr.values, late)
        entry["kappa0_reference"] = {
            k: flat_stats[k]
            for k in (
                "sharpness_eta_over_2_mean",
                "river_coord_mean",
                "river_loss_first_quarter",
                "river_loss_last_quarter",
            )
        }
        out["constant"][f"{eta:g}"] = entry
    decay_start = cfg.steps - round(cfg.decay_fraction * cfg.steps)
    window = max(50, cfg.steps // 20)
    before = slice(decay_start - window, decay_start)
    end = slice(cfg.steps - window, cfg.steps)
    run = pick(ds, "wsd", cfg.wsd_peak, cfg.curvature_growth)
    const = pick(ds, "constant", cfg.wsd_peak, cfg.curvature_growth)
    flat = pick(ds, "wsd", cfg.wsd_peak, 0.0)
    wsd: dict = {"peak": cfg.wsd_peak, "decay_steps": [decay_start, cfg.steps]}
    for name, sl in (("before_decay", before), ("end_of_decay", end)):
        stats = phase_stats(run, land, run.lr.values, sl)
        stats["two_over_eta_mean"] = float(np.mean(2.0 / run.lr.values[sl]))
        stats["sharpness_mean"] = float(run.sharpness.values[sl].mean())
        wsd[name] = stats
    wsd["final"] = {
        "river_coord": float(run.river_coord[-1]),
        "river_loss": float(run.river_loss[-1]),
        "hill_loss": float(run.hill_loss[-1]),
        "hill_dist": float(run.hill_dist[-1]),
        "sharpness": float(run.sharpness[-1]),
        "constant_rate_river_loss": float(const.river_loss[-1]),
        "constant_rate_loss": float(const.loss[-1]),
        "kappa0_wsd_river_loss": float(flat.river_loss[-1]),
    }
    out["wsd"] = wsd
    return out


# --- figures ------------------------------------------------------------------------------------


def _colors(peaks) -> dict[float, tuple]:
    cmap = plt.get_cmap("viridis")
    return {p: cmap(i / max(1, len(peaks) - 1) * 0.85) for i, p in enumerate(peaks)}


def _zoom(ax, run: xr.Dataset, land: RiverValley, cfg: Config, eta: float) -> None:
    """A window of consecutive iterates late in the run: the zig-zag across the floor."""
    params = run.params.values
    hill = run.hill_dist.values
    late = slice(int(cfg.late_fraction * cfg.steps), cfg.steps - 40)
    t0 = late.start + int(np.argmax(moving_average(hill[late], 40)))  # a large oscillation
    w = params[t0 : t0 + 40]
    mid = 0.5 * (w[1:] + w[:-1])
    s = np.linspace(w[:, 0].min() - 0.02, w[:, 0].max() + 0.02, 200)
    floor = float(land.amplitudes[0]) * np.sin(float(land.frequency) * s)
    ax.plot(s, floor, "k--", lw=1, label="river floor $y = c(s)$")
    ax.plot(w[:, 0], w[:, 1], "-o", color="tab:blue", ms=3, lw=0.5, label="iterates $w_t$")
    ax.plot(mid[:, 0], mid[:, 1], "o", color="tab:red", ms=3, label="midpoints")
    ax.set_xlabel("river coordinate $s$")
    ax.set_ylabel("hill coordinate $y$")
    ax.set_title(f"40 consecutive GD steps, $\\eta$ = {eta:g}, from step {t0}", fontsize=9)
    ax.legend(fontsize=7)


def plot_constant(ds: xr.Dataset, cfg: Config, summary: dict, out: Path) -> list[Path]:
    land = valley(cfg)
    colors = _colors(cfg.peaks)
    late_start = int(cfg.late_fraction * cfg.steps)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.4))
    (sharp, river, loss), (hills, zoom, avg) = axes
    for eta in cfg.peaks:
        run = pick(ds, "constant", eta, cfg.curvature_growth)
        ref = pick(ds, "constant", eta, 0.0)
        c = colors[eta]
        step = run.step.values
        sharp.plot(step, run.sharpness, color=c, lw=0.6, label=f"$\\eta$ = {eta:g}")
        sharp.axhline(2.0 / eta, color=c, ls="--", lw=0.8)
        river.plot(step, run.river_coord, color=c, lw=0.8, label=f"$\\eta$ = {eta:g}")
        river.plot(step, ref.river_coord, color=c, lw=0.8, ls=":")
        s_star = summary["constant"][f"{eta:g}"]["edge_position_s_star"]
        river.axhline(s_star, color=c, ls="--", lw=0.6)
        loss.plot(step, moving_average(run.loss.values, cfg.smooth), color=c, lw=0.6)
        loss.plot(step, run.river_loss, color=c, lw=1.6, label=f"$\\eta$ = {eta:g}")
        mid = midpoint_hill_dist(land, run.params.values)
        hills.plot(step, moving_average(run.hill_dist.values, cfg.smooth), color=c, lw=1.0)
        hills.plot(step[:-1], moving_average(mid, cfg.smooth), color=c, lw=1.0, ls=":")
    sharp.set_ylabel(LABELS["sharpness"])
    sharp.set_title("sharpness (dashed: $2/\\eta$)", fontsize=9)
    sharp.legend(fontsize=7)
    river.set_ylabel(LABELS["river_coord"])
    river.set_title(
        "river coordinate (dotted: same rate, $\\kappa$ = 0; dashed: $s^*$, floor sharpness"
        " = $2/\\eta$)",
        fontsize=8,
    )
    loss.set_yscale("log")
    loss.set_ylabel("loss")
    loss.set_title(
        f"thick: river loss $L(r(w))$; thin: total loss ({cfg.smooth}-step mean)", fontsize=9
    )
    loss.legend(fontsize=7)
    hills.set_yscale("log")
    hills.set_ylabel(LABELS["hill_dist"])
    hills.set_title(
        f"solid: iterates $w_t$; dotted: midpoints $(w_t + w_{{t+1}})/2$ ({cfg.smooth}-step mean)",
        fontsize=8,
    )
    for ax in (sharp, river, loss, hills):
        ax.set_xlabel("step (updates)")
        ax.axvline(late_start, color="gray", lw=0.6, ls=":")
    clean = min(cfg.peaks, key=lambda p: abs(p - cfg.wsd_peak))
    _zoom(zoom, pick(ds, "constant", clean, cfg.curvature_growth), land, cfg, clean)
    etas = np.array(cfg.peaks)
    stats = [summary["constant"][f"{eta:g}"] for eta in cfg.peaks]
    mean = np.array([s["sharpness_eta_over_2_mean"] for s in stats])
    std = np.array([s["sharpness_eta_over_2_std"] for s in stats])
    ratio = np.array([s["midpoint_over_iterate_hill_dist"] for s in stats])
    avg.errorbar(etas, mean, yerr=std, fmt="o-", color="tab:blue", capsize=3, label="mean ± std")
    avg.axhline(1.0, color="k", lw=0.8, ls="--")
    avg.set_xlabel("learning rate $\\eta$")
    avg.set_ylabel("late-phase sharpness $\\times\\, \\eta / 2$", color="tab:blue")
    avg.set_ylim(0.0, max(1.6, float((mean + std).max()) + 0.1))
    twin = avg.twinx()
    twin.plot(etas, ratio, "s--", color="tab:red")
    twin.set_yscale("log")
    twin.set_ylabel("midpoint / iterate hill distance", color="tab:red")
    avg.set_title("late phase (after the dotted line)", fontsize=9)
    fig.suptitle(
        f"GD on the sharpening toy valley $a$ = {cfg.hill_curvature:g}, "
        f"$\\kappa$ = {cfg.curvature_growth:g}, $b$ = {cfg.amplitude:g}: edge of stability"
    )
    fig.tight_layout()
    return save_figure(fig, out / "edge_of_stability.png")


def plot_wsd(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    land = valley(cfg)
    eta = cfg.wsd_peak
    runs = {
        "constant rate": (pick(ds, "constant", eta, cfg.curvature_growth), "tab:blue"),
        "WSD": (pick(ds, "wsd", eta, cfg.curvature_growth), "tab:green"),
        "WSD, $\\kappa$ = 0": (pick(ds, "wsd", eta, 0.0), "0.5"),
    }
    decay_start = cfg.steps - round(cfg.decay_fraction * cfg.steps)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.0))
    sharp, hills, river, loss = axes
    for name, (run, color) in runs.items():
        step = run.step.values
        lw = 0.6 if name == "constant rate" else 1.0
        sharp.plot(step, run.sharpness, color=color, lw=lw, label=name)
        hill = moving_average(run.hill_dist.values, cfg.smooth)
        hills.plot(step, hill, color=color, lw=lw, label=f"{name}: iterates")
        if name != "WSD, $\\kappa$ = 0":
            mid = moving_average(midpoint_hill_dist(land, run.params.values), cfg.smooth)
            hills.plot(step[:-1], mid, color=color, lw=lw, ls=":", label=f"{name}: midpoints")
        river.plot(step, run.river_coord, color=color, lw=1.0, label=name)
        loss.plot(step, moving_average(run.loss.values, cfg.smooth), color=color, lw=0.6)
        loss.plot(step, run.river_loss, color=color, lw=1.6, label=f"{name}: river loss")
    wsd = runs["WSD"][0]
    with np.errstate(divide="ignore"):
        two_over = np.where(wsd.lr.values > 0, 2.0 / wsd.lr.values, np.nan)
    sharp.plot(wsd.step, two_over, color="k", ls="--", lw=0.8, label="$2/\\eta_t$ (WSD)")
    sharp.set_ylim(0.5, 4.0 / eta)
    sharp.set_ylabel(LABELS["sharpness"])
    hills.set_yscale("log")
    hills.set_ylabel(LABELS["hill_dist"] + f" ({cfg.smooth}-step mean)")
    hills.set_ylim(1e-9, None)  # room for the legend below the curves
    river.set_ylabel(LABELS["river_coord"])
    loss.set_yscale("log")
    loss.set_ylabel("loss (thin: total, smoothed)")
    for ax, where in zip(
        axes, ("upper left", "lower right", "lower right", "upper right"), strict=True
    ):
        ax.axvline(decay_start, color="gray", lw=0.8)
        ax.set_xlabel("step (updates); WSD decays after the gray line")
        ax.legend(fontsize=7, loc=where)
    fig.suptitle(f"WSD from the edge of stability: peak $\\eta$ = {eta:g}, linear decay to 0")
    fig.tight_layout()
    return save_figure(fig, out / "edge_of_stability_wsd.png")


def plot(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(ds, cfg)
    with plt.rc_context(STYLE):
        paths = plot_constant(ds, cfg, summary, out) + plot_wsd(ds, cfg, out)
    write_summary(out / "edge_of_stability_summary.json", summary)
    return paths


main = main_for(__name__, "edge_of_stability")


if __name__ == "__main__":
    main()
