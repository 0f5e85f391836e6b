r"""River progress against intrinsic time: does (S)GD follow the gradient flow of the river loss?

    python experiments/intrinsic_time.py [--quick] [--out DIR]

Claim under test (paper notes, section 3, claim 1): the river coordinate reached by (S)GD depends
on the schedule only through the accumulated rate ``tau_t = eta_0 + ... + eta_{t-1}`` and equals
the gradient flow of the river loss run for that time.  The reference is computed independently
of the simulator by ``rivervalley.flow``: the *floor flow* ``ds/dtau = -f'(s) / (1 + |c'(s)|^2)``
(gradient flow restricted to the valley floor) and, for comparison, the *straight flow*
``ds/dtau = -f'(s)`` that ignores the river's bends.

Setup: 2-D river valleys ``L = log(1 + e^{-s}) + (a/2)(y - b sin(omega s))^2`` (``toy`` with
``a = 10``), started on the floor at ``s = -2``.  Schedules: constant, WSD (linear decay over the
last 20%), linear decay and cosine, each at several peak rates, every run given the *same
intrinsic-time budget* ``tau_budget``: its budget ``T`` steps is chosen so that
``sum_{t<T} eta_t ~ tau_budget`` (a constant rate runs ``tau_budget / peak`` steps, a linear or
cosine decay twice as many), after which its rate is 0 (the constant rate is a WSD without
decay).  The schedules are a dict of the library's own (dim ``schedule``), each stacked over the
peak rates (dim ``peak``), run for the longest budget (``horizon="free"``).  Two sweeps: GD
(``gradient="exact"``, one run per case) on a grid of valleys, bend amplitude ``b`` x frequency
``omega`` (the study reports the amplitudes at ``omega = 1`` and the frequencies at ``b = 0.3``),
and SGD (isotropic gradient noise ``sigma = 0.3`` on both coordinates) on a few amplitudes, 64
seeds.  ``tau`` at a record is computed from the rates of the updates before it (float64).

Figures: ``intrinsic_time_collapse`` (river coordinate against step and against ``tau`` with
the flows; GD's deviation from the floor flow against ``tau``; SGD's seed mean and spread),
``intrinsic_time_deviation`` (max over the run of ``|s_GD - s_flow|`` against the peak rate, the
bend amplitude and the frequency; SGD's per-seed and seed-mean deviation against the peak rate).
``intrinsic_time_summary.json`` holds every measured deviation and the fitted log-log slopes.
Runtime: ~30 s of CPU on 2 cores, 1.1 GB of memory (``--quick``: ~12 s).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.ticker import LogFormatter

from rivervalley import flow, optimizers, pytree, schedules
from rivervalley.experiment import main_for, write_summary
from rivervalley.landscapes import RiverValley, toy
from rivervalley.plotting import LABELS, SCHEDULE_COLORS, SCHEDULE_NAMES, STYLE, save_figure
from rivervalley.runner import sweep


@dataclasses.dataclass(frozen=True)
class Config:
    tau_budget: float = 20.0
    peaks: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08)
    kinds: tuple[str, ...] = ("constant", "wsd", "linear", "cosine")
    decay_fraction: float = 0.2  # WSD
    hill_curvature: float = 10.0  # a: rates up to 2 / (a (1 + b^2 omega^2)) are stable
    start: float = -2.0
    amplitudes: tuple[float, ...] = (0.0, 0.15, 0.3, 0.45, 0.6)  # GD, at omega = 1
    frequencies: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)  # GD, at b = reference_amplitude
    reference_amplitude: float = 0.3  # the valley of the trajectory panels
    sgd_amplitudes: tuple[float, ...] = (0.0, 0.3, 0.6)
    noise_std: float = 0.3
    seeds: int = 64
    record_every: int = 9  # odd: the runner's inner loop is then not unrolled (faster compile)


def config(quick: bool) -> Config:
    if quick:
        return Config(
            tau_budget=10.0,
            peaks=(0.02, 0.04, 0.08),
            amplitudes=(0.0, 0.3, 0.6),
            frequencies=(1.0, 2.0),
            sgd_amplitudes=(0.0, 0.3),
            seeds=4,
            record_every=5,
        )
    return Config()


def budget_steps(cfg: Config, kind: str, peak: float) -> int:
    """Steps ``T`` whose rates add up to ``tau_budget`` (up to rounding ``T`` to an integer):
    ``sum_{t<T} eta_t`` is ``peak T`` (constant), ``peak (T + 1) / 2`` (linear and cosine decay to
    0) and ``peak ((1 - d/2) T + 1/2)`` (WSD decaying linearly over the last fraction ``d``)."""
    units = cfg.tau_budget / peak
    if kind == "constant":
        return round(units)
    if kind in ("linear", "cosine"):
        return round(2 * units - 1)
    if kind == "wsd":
        return round((units - 0.5) / (1 - 0.5 * cfg.decay_fraction))
    raise ValueError(f"kind: unknown schedule {kind!r}")


def library_schedule(cfg: Config, kind: str, peak: float) -> schedules.Schedule:
    """The library's schedule of ``kind`` at ``peak`` that spends ``tau_budget`` and is 0 after
    its budget (``constant``: a WSD without decay, the constant rate for ``T`` steps)."""
    total = budget_steps(cfg, kind, peak)
    if kind == "constant":
        return schedules.wsd(peak, total, 0.0)
    if kind == "wsd":
        return schedules.wsd(peak, total, cfg.decay_fraction)
    if kind == "linear":
        return schedules.linear(peak, total)
    if kind == "cosine":
        return schedules.cosine(peak, total)
    raise ValueError(f"kind: unknown schedule {kind!r}")


def schedule_set(cfg: Config) -> dict[str, schedules.Schedule]:
    """Every kind (a dict: dim ``schedule``), each stacked over the peak rates (dim ``peak``,
    with its budget ``total_steps``)."""
    return {k: schedules.stack([library_schedule(cfg, k, p) for p in cfg.peaks]) for k in cfg.kinds}


def valley(cfg: Config, amplitude: float, frequency: float, noise_std: float) -> RiverValley:
    """``toy`` with the given bend and noise, started on the floor at ``s = start``."""
    y0 = amplitude * math.sin(frequency * cfg.start)
    return toy(
        hill_curvature=cfg.hill_curvature,
        amplitude=amplitude,
        frequency=frequency,
        noise_std=noise_std,
        start=(cfg.start, y0),
    )


def gd_grid(cfg: Config) -> dict[str, list[float]]:
    """The bends of GD's landscapes: every amplitude (with the reference and SGD's, so the flows
    serve every run) x every frequency (with 1)."""
    amplitudes = {*cfg.amplitudes, cfg.reference_amplitude, *cfg.sgd_amplitudes}
    return {"amplitude": sorted(amplitudes), "frequency": sorted({*cfg.frequencies, 1.0})}


def gd_landscapes(cfg: Config) -> list[tuple[float, float]]:
    """``(amplitude, frequency)`` of the GD runs the study reports: the amplitudes at
    ``omega = 1`` and the frequencies at the reference amplitude."""
    gd = [(b, 1.0) for b in cfg.amplitudes]
    b = cfg.reference_amplitude
    return gd + [(b, w) for w in cfg.frequencies if (b, w) not in gd]


def _labelled(ds: xr.Dataset, coords: dict[str, list[float]]) -> xr.Dataset:
    """``ds`` with the dims of its swept fields (the landscape's, then the schedules' ``peak``)
    named as in ``coords``, whose exact (float64) values become their coordinates (a field
    swept over a single value does not vary, so the sweep names that dim by its position)."""
    kept = ("schedule", "seed", "step")
    dims = [d for d in ds.river_coord.dims if d not in kept]
    names = {d: n for d, n in zip(dims, coords, strict=True) if d != n}
    ds = ds.drop_vars([c for c in ds.coords if c not in kept])
    return ds.rename_dims(names).assign_coords(coords)


@functools.partial(jax.jit, static_argnames="substeps")
def _flows(valleys: RiverValley, tau: jax.Array, peaks: jax.Array, substeps: int):
    """Both flows and the Euler bound for every landscape (batch axes first) at every schedule's
    recorded ``tau`` (``tau``: ``(schedule, peak, step)``)."""

    def one(v, tau, peak):
        floor = flow.floor_flow(v, tau, substeps=substeps)
        straight = flow.straight_flow(v, tau, substeps=substeps)
        return floor, straight, flow.euler_bound(v, v.start[0], straight, peak)

    fn = jax.vmap(jax.vmap(one, (None, 0, 0)), (None, 0, 0))
    for _ in valleys.batch_shape:
        fn = jax.vmap(fn, (0, None, None))
    return fn(valleys, tau, peaks)


def compute(cfg: Config, progress: bool | None) -> xr.Dataset:
    """Two sweeps over every schedule (dims ``schedule``, ``peak``): GD (exact gradient, one
    run per landscape: dims ``amplitude``, ``frequency``) and SGD (dims ``sgd_amplitude``,
    ``seed``), and the flows once per (landscape, schedule).

    Dataset: ``gd_river_coord`` and ``sgd_river_coord`` (with ``step``), their ``*_diverged``,
    per schedule ``tau`` and ``budget_steps``, per GD landscape and schedule ``flow_floor``,
    ``flow_straight`` and ``euler_bound``."""
    scheds = schedule_set(cfg)
    totals = [[budget_steps(cfg, k, p) for p in cfg.peaks] for k in cfg.kinds]
    steps = math.ceil(np.max(totals) / cfg.record_every) * cfg.record_every
    grid = gd_grid(cfg)
    common = {
        "steps": steps,
        "record_every": cfg.record_every,
        "horizon": "free",  # every budget ends before the run: the rate is 0 after it
        "progress": progress,
    }
    gd_valleys = pytree.grid(valley, grid, cfg=cfg, noise_std=0.0)
    gd_ds = sweep(gd_valleys, optimizers.sgd(), scheds, seeds=1, gradient="exact", **common)
    sgd_grid = {"amplitude": list(cfg.sgd_amplitudes)}
    sgd_valleys = pytree.grid(valley, sgd_grid, cfg=cfg, frequency=1.0, noise_std=cfg.noise_std)
    sgd_ds = sweep(sgd_valleys, optimizers.sgd(), scheds, seeds=cfg.seeds, **common)
    peaks = {"peak": list(cfg.peaks)}
    gd_ds = _labelled(gd_ds, grid | peaks).isel(seed=0, drop=True)
    sgd_ds = _labelled(sgd_ds, sgd_grid | peaks).rename(amplitude="sgd_amplitude")
    rates = xr.DataArray(
        np.stack([np.asarray(schedules.rates(s, steps)) for s in scheds.values()]),
        dims=("schedule", "peak", "t"),
        coords={"schedule": list(scheds), "peak": list(cfg.peaks)},
    )
    rec = gd_ds.step.values
    # the runs' rates are the table's (to float32 rounding: the runner evaluates the schedules
    # in its own compiled code)
    table = rates.isel(t=rec[:-1]).rename(t="step").assign_coords(step=rec[:-1])
    for lr in (gd_ds.lr, sgd_ds.lr):
        assert float(abs(lr - table).max()) < 1e-6 * max(cfg.peaks)
    tau = xr.DataArray(  # at each record: the rates before it, summed in float64
        flow.intrinsic_time(rates.values)[..., rec], dims=("schedule", "peak", "step")
    )
    substeps = max(1, math.ceil(float(tau.diff("step").max()) / 0.05))  # RK4 h <= 0.05
    peak = rates.peak.broadcast_like(tau.isel(step=0))
    dims = ("amplitude", "frequency", "schedule", "peak", "step")
    flows = _flows(gd_valleys, jnp.asarray(tau), jnp.asarray(peak), substeps)
    floor, straight, bound = (np.asarray(f) for f in flows)
    return xr.Dataset(
        {
            "gd_river_coord": gd_ds.river_coord,
            "gd_diverged": gd_ds.diverged,
            "sgd_river_coord": sgd_ds.river_coord,
            "sgd_diverged": sgd_ds.diverged,
            "tau": tau,
            "budget_steps": (("schedule", "peak"), totals),
            "flow_floor": (dims, floor),
            "flow_straight": (dims, straight),
            "euler_bound": (dims, bound),
        },
        attrs={
            "rivervalley_version": gd_ds.attrs["rivervalley_version"],
            "sweep_config": json.dumps(
                {"gd": json.loads(gd_ds.attrs["config"]), "sgd": json.loads(sgd_ds.attrs["config"])}
            ),
            "decomposition": gd_ds.attrs["decomposition"],
            "flow_substeps": substeps,
        },
    )


# --- analysis ---------------------------------------------------------------------------------


def runs_view(ds: xr.Dataset, method: str) -> xr.Dataset:
    """The runs of ``method`` (``gd``: dims ``amplitude, frequency, schedule, peak``; ``sgd``:
    ``amplitude, schedule, peak, seed`` at ``frequency = 1``) with their landscape's flows and
    ``tau``, and per run: ``max_floor`` / ``max_straight`` (max over records of
    ``|s - s_flow|``), ``end_floor`` / ``end_straight`` (signed ``s - s_flow`` at the last
    record, when every budget is spent), ``s_end`` and ``tau_end``."""
    runs = xr.Dataset({"river_coord": ds[f"{method}_river_coord"], "tau": ds.tau})
    flows = ds[["flow_floor", "flow_straight", "euler_bound"]]
    if method == "sgd":
        runs = runs.rename(sgd_amplitude="amplitude")
        flows = flows.sel(frequency=1.0)
    out = runs.merge(flows, join="left")
    d_floor = out.river_coord - out.flow_floor
    d_straight = out.river_coord - out.flow_straight
    out["max_floor"] = abs(d_floor).max("step")
    out["max_straight"] = abs(d_straight).max("step")
    out["end_floor"] = d_floor.isel(step=-1)
    out["end_straight"] = d_straight.isel(step=-1)
    out["s_end"] = out.river_coord.isel(step=-1)
    out["tau_end"] = out.tau.isel(step=-1)
    return out


def scalars(runs: xr.Dataset) -> xr.Dataset:
    """The per-run quantities of ``runs_view`` without the trajectories."""
    return runs.drop_dims("step")


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def euler_bounds(ds: xr.Dataset) -> dict[float, float]:
    """``flow.euler_bound`` at the end of the budget on the straight river (``b = 0``), by peak:
    ``(eta / 2)(v(s_0) - v(s_end))`` with ``v = -f'`` (``compute`` stores it per case)."""
    end = ds.euler_bound.sel(amplitude=0.0, frequency=1.0).isel(step=-1).max("schedule")
    return {float(p): float(b) for p, b in zip(end.peak.values, end.values, strict=True)}


def sgd_stats(end: np.ndarray) -> dict[str, float]:
    """Per-seed scatter and seed-mean bias of the signed end deviations of one case."""
    n = end.size
    return {
        "seeds": n,
        "rms_end_dev": float(np.sqrt(np.mean(end**2))),
        "mean_abs_end_dev": float(np.abs(end).mean()),
        "seed_mean_end_dev": float(end.mean()),
        "seed_mean_end_dev_se": float(end.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
    }


def summarize(ds: xr.Dataset, cfg: Config) -> dict:
    gd = scalars(runs_view(ds, "gd"))
    sgd_traj = runs_view(ds, "sgd")
    sgd = scalars(sgd_traj)
    reported = gd_landscapes(cfg)
    fields = {
        "max_dev_floor": "max_floor",
        "end_dev_floor": "end_floor",
        "max_dev_straight": "max_straight",
        "end_dev_straight": "end_straight",
        "tau_end": "tau_end",
        "s_end": "s_end",
    }
    rows = [
        {"amplitude": b, "frequency": w, "kind": k, "peak": p}
        | {key: float(r[name]) for key, name in fields.items()}
        for b, w in reported
        for k in cfg.kinds
        for p in cfg.peaks
        for r in [gd.sel(amplitude=b, frequency=w, schedule=k, peak=p)]
    ]
    out: dict = {
        "setup": {
            "tau_budget": cfg.tau_budget,
            "hill_curvature": cfg.hill_curvature,
            "start": cfg.start,
            "peaks": list(cfg.peaks),
            "kinds": list(cfg.kinds),
            "sgd_noise_std": cfg.noise_std,
            "sgd_seeds": cfg.seeds,
            "deviation": "s_sim(tau) - s_flow(tau): max of |.| over the records of a run, or "
            "signed at the end of the budget; flow = floor flow ds/dtau = -f'(s)/(1+|c'(s)|^2) "
            "(RK4), or the straight flow ds/dtau = -f'(s)",
        },
        "diverged_runs": int(ds.gd_diverged.sum() + ds.sgd_diverged.sum()),
        "euler_bound_straight_river": {f"peak={p:g}": b for p, b in euler_bounds(ds).items()},
    }
    fits: dict = {}
    for b, w in sorted(set(reported)):
        per_kind = {}
        for k in cfg.kinds:
            r = gd.sel(amplitude=b, frequency=w, schedule=k)
            by_peak = r.sortby("peak")
            per_kind[k] = {
                "max_dev_floor_by_peak": [float(x) for x in by_peak.max_floor.values],
                "loglog_slope_vs_peak": loglog_slope(r.peak, r.max_floor),
                "max_dev_floor_over_peak": [
                    float(x) for x in (by_peak.max_floor / by_peak.peak).values
                ],
            }
        fits[f"b={b:g},omega={w:g}"] = per_kind
    out["gd_deviation_vs_peak"] = fits
    out["gd_runs"] = rows
    curv: dict = {"amplitude (omega=1)": {}, f"frequency (b={cfg.reference_amplitude:g})": {}}
    for p in cfg.peaks:
        for label, field, values, fixed in (
            ("amplitude (omega=1)", "amplitude", cfg.amplitudes, {"frequency": 1.0}),
            (
                f"frequency (b={cfg.reference_amplitude:g})",
                "frequency",
                cfg.frequencies,
                {"amplitude": cfg.reference_amplitude},
            ),
        ):
            entry = {}
            for v in values:
                r = gd.sel({field: v, **fixed, "peak": p})
                entry[f"{field}={v:g}"] = {
                    "max_dev_floor_worst_kind": float(r.max_floor.max()),
                    "max_dev_straight_worst_kind": float(r.max_straight.max()),
                }
            curv[label][f"peak={p:g}"] = entry
    out["gd_deviation_vs_curvature"] = curv
    collapse = {}
    for b, w in sorted(set(reported)):
        for p in cfg.peaks:
            r = gd.sel(amplitude=b, frequency=w, peak=p)
            collapse[f"b={b:g},omega={w:g},peak={p:g}"] = {
                "s_end_spread_over_kinds": float(r.s_end.max() - r.s_end.min()),
                "tau_end_spread_over_kinds": float(r.tau_end.max() - r.tau_end.min()),
                "end_dev_floor_by_kind": {
                    str(k): float(r.end_floor.sel(schedule=k)) for k in r.schedule.values
                },
            }
    out["gd_collapse_at_equal_tau"] = collapse
    sgd_out: dict = {}
    for b in cfg.sgd_amplitudes:
        for k in cfg.kinds:
            for p in cfg.peaks:
                at = {"amplitude": b, "schedule": k, "peak": p}
                tr = sgd_traj.sel(at)
                mean_dev = (tr.river_coord - tr.flow_floor).mean("seed")
                stats = sgd_stats(sgd.end_floor.sel(at).values)
                stats["max_over_tau_abs_seed_mean_dev"] = float(abs(mean_dev).max())
                stats["gd_end_dev_floor_same_case"] = (
                    float(gd.end_floor.sel(at | {"frequency": 1.0}))
                    if b in cfg.amplitudes
                    else float("nan")
                )
                sgd_out[f"b={b:g},{k},peak={p:g}"] = stats
    out["sgd"] = sgd_out
    out["sgd_rms_slope_vs_peak"] = {
        f"b={b:g},{k}": loglog_slope(
            cfg.peaks, [sgd_out[f"b={b:g},{k},peak={p:g}"]["rms_end_dev"] for p in cfg.peaks]
        )
        for b in cfg.sgd_amplitudes
        for k in cfg.kinds
    }
    return out


# --- figures ------------------------------------------------------------------------------------

PEAK_STYLES = ("-", "--", "-.", ":", (0, (1, 3)))
B_MARKERS = ("o", "s", "^", "v", "D")


def _peak_styles(cfg: Config) -> dict[float, object]:
    return {p: PEAK_STYLES[i % len(PEAK_STYLES)] for i, p in enumerate(cfg.peaks)}


def _peak_colors(cfg: Config) -> dict[float, tuple]:
    cmap = plt.get_cmap("viridis")
    n = len(cfg.peaks)
    return {p: cmap(0.85 * i / max(n - 1, 1)) for i, p in enumerate(cfg.peaks)}


class _PlainLogFormatter(LogFormatter):
    """``LogFormatter``'s choice of which ticks to label, written as plain numbers (``0.02``):
    mathtext labels (``2 x 10^-2``) are slow to lay out."""

    def __call__(self, x, pos=None):
        return f"{x:g}" if super().__call__(x, pos) else ""


def _log(ax, axis: str = "y") -> None:
    """Log scale with plain-number tick labels."""
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(_PlainLogFormatter())
    target.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.5)))


def plot_collapse(gd_runs: xr.Dataset, sgd_runs: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    b = cfg.reference_amplitude
    gd = gd_runs.sel(amplitude=b, frequency=1.0)
    styles, colors = _peak_styles(cfg), _peak_colors(cfg)
    with plt.rc_context(STYLE):
        fig, ((a_step, a_tau), (a_dev, a_sgd)) = plt.subplots(2, 2, figsize=(12, 8.4))
        for kind in cfg.kinds:
            for p in cfg.peaks:
                r = gd.sel(schedule=kind, peak=p)
                style = {"color": SCHEDULE_COLORS[kind], "ls": styles[p], "lw": 1.1}
                a_step.plot(r.step[1:], r.river_coord[1:], **style)
                a_tau.plot(r.tau, r.river_coord, **style)
                a_dev.plot(r.tau[1:], abs(r.river_coord - r.flow_floor)[1:], **style)
        ref = gd.isel(gd.tau_end.argmax(...))
        a_tau.plot(
            ref.tau,
            ref.flow_floor,
            color="k",
            lw=1.0,
            ls=(0, (4, 3)),
            label="floor flow $ds/d\\tau = -f'(s)/(1+|c'(s)|^2)$ (RK4)",
        )
        a_tau.plot(
            ref.tau,
            ref.flow_straight,
            color="0.45",
            lw=1.0,
            ls=":",
            label="straight flow $ds/d\\tau = -f'(s)$ (RK4)",
        )
        for kind in cfg.kinds:
            a_step.plot([], [], color=SCHEDULE_COLORS[kind], label=SCHEDULE_NAMES[kind])
        for p in cfg.peaks:
            a_step.plot([], [], color="0.4", ls=styles[p], label=f"peak $\\eta$ = {p:g}")
        _log(a_step, "x")
        a_step.set_xlabel("step $t$ (updates, log scale)")
        a_step.set_ylabel(LABELS["river_coord"])
        a_step.set_title(f"GD, bend b = {b:g}, $\\omega$ = 1: against step the curves differ")
        a_step.legend(fontsize=7, ncol=2)
        a_tau.set_xlabel("intrinsic time $\\tau_t = \\sum_{k<t} \\eta_k$ (rate x steps)")
        a_tau.set_ylabel(LABELS["river_coord"])
        worst = float(gd.max_floor.max())
        a_tau.set_title(f"against $\\tau$ they collapse onto the floor flow (max gap {worst:.3f})")
        a_tau.legend(fontsize=8, loc="lower right")
        _log(a_dev)
        a_dev.set_xlabel("intrinsic time $\\tau$ (rate x steps)")
        a_dev.set_ylabel("$|s_{GD}(\\tau) - s_{floor}(\\tau)|$ (units of $s$)")
        a_dev.set_title("GD's gap to the floor flow (colour: schedule, line: peak)")
        for p in cfg.peaks:
            for kind, ls in (("constant", "-"), ("cosine", "--")):
                if kind not in cfg.kinds or b not in cfg.sgd_amplitudes:
                    continue
                r = sgd_runs.sel(amplitude=b, peak=p, schedule=kind)
                dev = r.river_coord - r.flow_floor
                a_sgd.plot(
                    r.tau,
                    dev.mean("seed"),
                    color=colors[p],
                    ls=ls,
                    lw=1.4,
                    label=f"{SCHEDULE_NAMES[kind]}, peak {p:g}",
                )
                if kind == "constant" and p in (min(cfg.peaks), max(cfg.peaks)):
                    lo, hi = dev.quantile(0.25, "seed"), dev.quantile(0.75, "seed")
                    a_sgd.fill_between(r.tau, lo, hi, color=colors[p], alpha=0.15, lw=0)
        a_sgd.axhline(0.0, color="k", lw=0.8)
        a_sgd.set_xlabel("intrinsic time $\\tau$ (rate x steps)")
        a_sgd.set_ylabel("SGD $s(\\tau) - s_{floor}(\\tau)$ (units of $s$)")
        seeds = sgd_runs.sizes["seed"]
        a_sgd.set_title(f"SGD ($\\sigma$ = {cfg.noise_std:g}, b = {b:g}): mean of {seeds} seeds")
        a_sgd.fill_between([], [], [], color="0.6", alpha=0.3, label="quartiles (constant)")
        a_sgd.legend(fontsize=7, ncol=2)
        fig.tight_layout()
    return save_figure(fig, out / "intrinsic_time_collapse.png")


def plot_deviation(ds: xr.Dataset, gd: xr.Dataset, sgd: xr.Dataset, cfg: Config, out: Path):
    gd, sgd = scalars(gd), scalars(sgd)
    colors = _peak_colors(cfg)
    peaks = np.asarray(cfg.peaks)
    b_ref = cfg.reference_amplitude
    shown = sorted({0.0, b_ref, max(cfg.amplitudes)})
    markers = dict(zip(shown, B_MARKERS, strict=False))
    lines = {0.0: "-", b_ref: "--", max(cfg.amplitudes): ":"}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 3, figsize=(16, 8.6))
        (a_peak, a_amp, a_freq), (a_end, a_sgd, a_sgd_b) = axes
        # GD against the peak rate
        for b in shown:
            for kind in cfg.kinds:
                r = gd.sel(amplitude=b, frequency=1.0, schedule=kind).sortby("peak")
                for ax, gap in ((a_peak, r.max_floor), (a_end, r.end_floor)):
                    ax.plot(
                        r.peak.values,
                        gap.values,
                        color=SCHEDULE_COLORS[kind],
                        marker=markers[b],
                        ls=lines[b],
                        lw=1,
                        ms=4,
                    )
        bounds = euler_bounds(ds)
        a_peak.plot(
            peaks,
            [bounds[p] for p in cfg.peaks],
            color="k",
            lw=1.5,
            label="Euler bound $\\frac{\\eta}{2}(v(s_0) - v(s_{end}))$, b = 0",
        )
        for ax in (a_peak, a_end):
            for kind in cfg.kinds:
                ax.plot([], [], color=SCHEDULE_COLORS[kind], label=SCHEDULE_NAMES[kind])
            for b in shown:
                ax.plot(
                    [], [], color="0.4", marker=markers[b], ls=lines[b], label=f"bend b = {b:g}"
                )
            _log(ax, "x")
            ax.set_xlabel("peak learning rate $\\eta$")
            ax.legend(fontsize=7, ncol=2)
        _log(a_peak)
        a_peak.set_ylabel("GD max$_\\tau |s_{GD} - s_{floor}|$ (units of $s$)")
        a_peak.set_title(f"GD: deviation vs peak rate (every run: $\\tau$ = {cfg.tau_budget:g})")
        a_end.axhline(0.0, color="k", lw=0.8)
        a_end.set_ylabel("GD $s_{GD} - s_{floor}$ at the end of the budget (units of $s$)")
        a_end.set_title("GD: where each schedule ends, relative to the flow (same $\\tau$)")
        # GD against curvature
        for ax, field, values, fixed in (
            (a_amp, "amplitude", cfg.amplitudes, {"frequency": 1.0}),
            (a_freq, "frequency", cfg.frequencies, {"amplitude": b_ref}),
        ):
            for p in cfg.peaks:
                y = [float(gd.sel({field: v, **fixed, "peak": p}).max_floor.max()) for v in values]
                ax.plot(values, y, marker="o", color=colors[p], label=f"floor flow, peak {p:g}")
            p0 = min(cfg.peaks)
            y = [float(gd.sel({field: v, **fixed, "peak": p0}).max_straight.max()) for v in values]
            ax.plot(values, y, marker="x", color="0.3", ls=":", label=f"straight flow, peak {p0:g}")
            _log(ax)
            ax.set_ylabel("GD max$_\\tau |s_{GD} - s_{flow}|$, worst schedule (units of $s$)")
            ax.legend(fontsize=7)
        a_amp.set_xlabel("bend amplitude $b$ of $c(s) = b \\sin(\\omega s)$ ($\\omega$ = 1)")
        a_amp.set_title("GD: deviation vs river curvature (amplitude)")
        a_freq.set_xlabel(
            f"bend frequency $\\omega$ of $c(s) = b \\sin(\\omega s)$ (b = {b_ref:g})"
        )
        a_freq.set_title("GD: deviation vs river curvature (frequency)")
        # SGD against the peak rate (b = b_ref) and against the amplitude
        se_all = []
        for kind in cfg.kinds:
            stats = [
                sgd_stats(sgd.end_floor.sel(amplitude=b_ref, schedule=kind, peak=p).values)
                for p in cfg.peaks
            ]
            color = SCHEDULE_COLORS[kind]
            a_sgd.plot(peaks, [s["rms_end_dev"] for s in stats], color=color, marker="o", ms=4)
            a_sgd.plot(
                peaks,
                [abs(s["seed_mean_end_dev"]) for s in stats],
                color=color,
                marker="o",
                mfc="none",
                ls="--",
                lw=0.8,
                ms=5,
            )
            se_all.append([s["seed_mean_end_dev_se"] for s in stats])
        a_sgd.plot(
            peaks,
            2 * np.mean(se_all, axis=0),
            color="0.5",
            ls=":",
            lw=1.5,
            label="2 standard errors of the seed mean",
        )
        rms_top = sgd_stats(sgd.end_floor.sel(amplitude=b_ref, peak=cfg.peaks[-1]).values.ravel())
        a_sgd.plot(
            peaks,
            rms_top["rms_end_dev"] * np.sqrt(peaks / peaks[-1]),
            color="k",
            lw=0.8,
            ls=(0, (6, 3)),
            label="slope 1/2",
        )
        a_sgd.plot([], [], color="0.4", marker="o", label="rms over seeds of $s - s_{floor}$")
        a_sgd.plot(
            [],
            [],
            color="0.4",
            marker="o",
            mfc="none",
            ls="--",
            label="|seed mean of $s - s_{floor}$|",
        )
        for kind in cfg.kinds:
            a_sgd.plot([], [], color=SCHEDULE_COLORS[kind], label=SCHEDULE_NAMES[kind])
        _log(a_sgd, "x")
        _log(a_sgd)
        a_sgd.set_xlabel("peak learning rate $\\eta$")
        a_sgd.set_ylabel("SGD deviation at the end of the budget (units of $s$)")
        a_sgd.set_title(f"SGD ($\\sigma$ = {cfg.noise_std:g}, b = {b_ref:g}): deviation vs peak")
        a_sgd.legend(fontsize=7, ncol=2)
        amps = np.asarray(cfg.sgd_amplitudes)
        for p in cfg.peaks:
            stats = [sgd_stats(sgd.end_floor.sel(amplitude=b, peak=p).values.ravel()) for b in amps]
            a_sgd_b.plot(
                amps,
                [s["rms_end_dev"] for s in stats],
                color=colors[p],
                marker="o",
                label=f"rms over seeds, peak {p:g}",
            )
            a_sgd_b.plot(
                amps,
                [abs(s["seed_mean_end_dev"]) for s in stats],
                color=colors[p],
                marker="o",
                mfc="none",
                ls="--",
                lw=0.8,
            )
        a_sgd_b.plot(
            [],
            [],
            color="0.4",
            marker="o",
            mfc="none",
            ls="--",
            label="|seed mean| (all schedules pooled)",
        )
        _log(a_sgd_b)
        a_sgd_b.set_xlabel("bend amplitude $b$ ($\\omega$ = 1)")
        a_sgd_b.set_ylabel("SGD deviation at the end of the budget (units of $s$)")
        a_sgd_b.set_title("SGD: deviation vs river curvature (all schedules pooled)")
        a_sgd_b.legend(fontsize=7)
        fig.tight_layout()
    return save_figure(fig, out / "intrinsic_time_deviation.png")


def plot(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    gd, sgd = runs_view(ds, "gd"), runs_view(ds, "sgd")
    figures = plot_collapse(gd, sgd, cfg, out) + plot_deviation(ds, gd, sgd, cfg, out)
    summary = write_summary(out / "intrinsic_time_summary.json", summarize(ds, cfg), echo=False)
    print(f"summary written to {summary.resolve()}")
    return figures


main = main_for(__name__, "intrinsic_time")


if __name__ == "__main__":
    main()
