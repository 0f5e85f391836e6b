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
cosine decay twice as many), after which its rate is 0.  All runs are one ``sweep`` (one
compilation): the schedules are tabulated (``schedules.tabulated``: the rates of the library's own
``schedules.constant/wsd/linear/cosine``, checked equal) and GD is SGD on a landscape with zero
gradient noise (exactly GD: the noise term is ``0 * xi``).  GD runs on valleys of several bend
amplitudes ``b`` (at ``omega = 1``) and frequencies ``omega`` (at ``b = 0.3``); SGD (isotropic
gradient noise ``sigma = 0.3`` on both coordinates) on a few amplitudes, 64 seeds.
``tau`` at a record is computed from the rates of the updates before it (float64).

Figures: ``intrinsic_time_collapse`` (river coordinate against step and against ``tau`` with
the flows; GD's deviation from the floor flow against ``tau``; SGD's seed mean and spread),
``intrinsic_time_deviation`` (max over the run of ``|s_GD - s_flow|`` against the peak rate, the
bend amplitude and the frequency; SGD's per-seed and seed-mean deviation against the peak rate).
``intrinsic_time_summary.json`` holds every measured deviation and the fitted log-log slopes.
Runtime: ~30 s of CPU on 2 cores, 1.1 GB of memory (``--quick``: ~12 s).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.ticker import LogFormatter

from rivervalley import flow, optimizers, schedules
from rivervalley.experiment import main_for, write_summary
from rivervalley.landscapes import RiverValley, toy
from rivervalley.plotting import LABELS, SCHEDULE_COLORS, SCHEDULE_NAMES, STYLE, save_figure
from rivervalley.pytree import stack
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
    total = budget_steps(cfg, kind, peak)
    if kind == "constant":
        return schedules.constant(peak)
    if kind == "wsd":
        return schedules.wsd(peak, total, cfg.decay_fraction)
    if kind == "linear":
        return schedules.linear(peak, total)
    if kind == "cosine":
        return schedules.cosine(peak, total)
    raise ValueError(f"kind: unknown schedule {kind!r}")


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


def landscape_table(cfg: Config) -> list[tuple[str, float, float]]:
    """``(method, amplitude, frequency)`` of every landscape in the sweep."""
    gd = [(b, 1.0) for b in cfg.amplitudes]
    b = cfg.reference_amplitude
    gd += [(b, w) for w in cfg.frequencies if (b, w) not in gd]
    return [("gd", b, w) for b, w in gd] + [("sgd", b, 1.0) for b in cfg.sgd_amplitudes]


def rate_table(cfg: Config, cases: list[tuple[str, float]], steps: int) -> np.ndarray:
    """Rates of every case's library schedule at ``t = 0..steps-1``, 0 after its budget."""
    t = jnp.arange(steps)
    rates_of = jax.jit(jax.vmap(lambda s: jax.vmap(s)(t)))  # one compilation per kind
    by_kind = {
        k: np.asarray(rates_of(schedules.stack([library_schedule(cfg, k, p) for p in cfg.peaks])))
        for k in cfg.kinds
    }
    table = np.stack([by_kind[k][cfg.peaks.index(p)] for k, p in cases]).astype(np.float32)
    for row, (kind, peak) in zip(table, cases, strict=True):
        row[budget_steps(cfg, kind, peak) :] = 0.0  # the run's budget is over
    return table


def compute(cfg: Config, progress: bool | None) -> xr.Dataset:
    """One sweep of every (landscape, schedule, seed); the flows once per (landscape, schedule).

    Dataset: ``river_coord`` (run, step) for the GD runs (first seed; checked identical across
    seeds) and every SGD run, with coordinates ``method``, ``amplitude``, ``frequency``,
    ``kind``, ``peak``, ``seed`` and ``run_case`` (its index along ``case``); per case ``tau``,
    ``flow_floor``, ``flow_straight`` and ``euler_bound`` (case, step)."""
    lands = landscape_table(cfg)
    cases = [(k, p) for k in cfg.kinds for p in cfg.peaks]
    totals = [budget_steps(cfg, k, p) for k, p in cases]
    steps = math.ceil(max(totals) / cfg.record_every) * cfg.record_every
    table = rate_table(cfg, cases, steps)
    sched = stack(
        [schedules.tabulated(r, final=0.0, peak=p) for (_, p), r in zip(cases, table, strict=True)]
    ).validate(steps)
    t = jnp.arange(steps)
    np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(lambda s: s(t)))(sched)), table)
    sigma = {"gd": 0.0, "sgd": cfg.noise_std}
    land = stack([valley(cfg, b, w, sigma[m]) for m, b, w in lands])
    ds = sweep(
        land,
        optimizers.sgd(),
        sched,
        seeds=cfg.seeds,
        steps=steps,
        record_every=cfg.record_every,
        progress=progress,
    )
    # runs: landscape x schedule x seed, row-major (the optimizer is unbatched)
    n_l, n_s = len(lands), len(cases)
    li, si, ki = (a.ravel() for a in np.indices((n_l, n_s, cfg.seeds)))
    np.testing.assert_allclose(ds.peak.values, [cases[i][1] for i in si], rtol=1e-6)
    np.testing.assert_allclose(ds.frequency.values, [lands[i][2] for i in li], rtol=1e-6)
    coord = ds.river_coord.values.reshape(n_l, n_s, cfg.seeds, -1)
    gd_rows = [i for i, (m, _, _) in enumerate(lands) if m == "gd"]
    first = np.broadcast_to(coord[gd_rows][:, :, :1], coord[gd_rows].shape)
    assert np.array_equal(coord[gd_rows], first), "noise-free runs must not depend on the seed"
    rec = np.arange(0, steps + 1, cfg.record_every)
    lr = ds.lr.values.reshape(n_l, n_s, cfg.seeds, -1)
    np.testing.assert_array_equal(
        lr[..., :-1], np.broadcast_to(table[None, :, None, rec[:-1]], lr[..., :-1].shape)
    )
    tau_sched = flow.intrinsic_time(table)[:, rec]  # (schedule, record): rates before the record

    # the flows, once per case = (landscape, schedule), at the recorded tau
    case_l, case_s = (a.ravel() for a in np.indices((n_l, n_s)))
    valleys = jax.tree_util.tree_map(lambda x: x[case_l], land)
    tau = tau_sched[case_s]
    substeps = max(1, math.ceil(float(np.max(np.diff(tau, axis=1))) / 0.05))  # RK4 h <= 0.05

    @jax.jit
    @jax.vmap
    def flows(v, tau, peak):
        floor = flow.floor_flow(v, tau, substeps=substeps)
        straight = flow.straight_flow(v, tau, substeps=substeps)
        return floor, straight, flow.euler_bound(v, v.start[0], straight, peak)

    peaks = jnp.asarray([cases[i][1] for i in case_s])
    floor, straight, bound = (np.asarray(f) for f in flows(valleys, jnp.asarray(tau), peaks))

    keep = np.flatnonzero((np.array([lands[i][0] for i in li]) == "sgd") | (ki == 0))
    case_of_run = (li * n_s + si)[keep]
    return xr.Dataset(
        {
            "river_coord": (("run", "step"), ds.river_coord.values[keep]),
            "diverged": ("run", ds.diverged.values[keep]),
            "tau": (("case", "step"), tau),
            "flow_floor": (("case", "step"), floor),
            "flow_straight": (("case", "step"), straight),
            "euler_bound": (("case", "step"), bound),
        },
        coords={
            "step": rec,
            "case": np.arange(n_l * n_s),
            "run_case": ("run", case_of_run),
            "method": ("run", np.array([lands[i][0] for i in li[keep]])),
            "amplitude": ("run", np.array([lands[i][1] for i in li[keep]])),
            "frequency": ("run", np.array([lands[i][2] for i in li[keep]])),
            "kind": ("run", np.array([cases[i][0] for i in si[keep]])),
            "peak": ("run", np.array([cases[i][1] for i in si[keep]])),
            "seed": ("run", ki[keep]),
            "budget_steps": ("case", np.array([totals[i] for i in case_s])),
        },
        attrs={
            "rivervalley_version": ds.attrs["rivervalley_version"],
            "sweep_config": ds.attrs["config"],
            "decomposition": ds.attrs["decomposition"],
            "flow_substeps": substeps,
        },
    )


# --- analysis ---------------------------------------------------------------------------------


def runs_view(ds: xr.Dataset) -> xr.Dataset:
    """Every run with its case's ``tau``, flows and bound gathered along ``run``, and per run:
    ``max_floor`` / ``max_straight`` (max over records of ``|s - s_flow|``), ``end_floor`` /
    ``end_straight`` (signed ``s - s_flow`` at the last record, when every budget is spent),
    ``s_end`` and ``tau_end``."""
    idx = ds.run_case.values
    out = ds[["river_coord", "diverged"]].copy()
    for name in ("tau", "flow_floor", "flow_straight", "euler_bound"):
        out[name] = (("run", "step"), ds[name].values[idx])
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
    """The per-run quantities of ``runs_view`` without the trajectories (fast to select from)."""
    return runs.drop_dims("step")


def select(ds: xr.Dataset, **where) -> xr.Dataset:
    """The runs whose coordinates equal the given values (floats compared to 1e-9)."""
    mask = np.ones(ds.sizes["run"], bool)
    for coord, value in where.items():
        values = ds[coord].values
        if isinstance(value, float):
            mask &= np.isclose(values.astype(float), value, rtol=0, atol=1e-9)
        else:
            mask &= values == value
    return ds.isel(run=np.flatnonzero(mask))


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def euler_bounds(runs: xr.Dataset) -> dict[float, float]:  # needs the trajectories
    """``flow.euler_bound`` at the end of the budget on the straight river (``b = 0``), by peak:
    ``(eta / 2)(v(s_0) - v(s_end))`` with ``v = -f'`` (``compute`` stores it per case)."""
    straight = select(runs, method="gd", amplitude=0.0)
    end = straight.euler_bound.isel(step=-1)
    return {float(p): float(end[straight.peak.values == p].max()) for p in np.unique(straight.peak)}


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
    runs = runs_view(ds)
    gd = select(scalars(runs), method="gd")
    landscapes = sorted(
        {(float(b), float(w)) for b, w in zip(gd.amplitude, gd.frequency, strict=True)}
    )
    fields = {
        "amplitude": "amplitude",
        "frequency": "frequency",
        "kind": "kind",
        "peak": "peak",
        "max_dev_floor": "max_floor",
        "end_dev_floor": "end_floor",
        "max_dev_straight": "max_straight",
        "end_dev_straight": "end_straight",
        "tau_end": "tau_end",
        "s_end": "s_end",
    }
    columns = {key: gd[name].values.tolist() for key, name in fields.items()}
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
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
        "diverged_runs": int(ds.diverged.values.sum()),
        "euler_bound_straight_river": {f"peak={p:g}": b for p, b in euler_bounds(runs).items()},
    }
    fits: dict = {}
    for b, w in landscapes:
        here = select(gd, amplitude=b, frequency=w)
        per_kind = {}
        for k in cfg.kinds:
            r = select(here, kind=k)
            order = np.argsort(r.peak.values)
            per_kind[k] = {
                "max_dev_floor_by_peak": [float(x) for x in r.max_floor.values[order]],
                "loglog_slope_vs_peak": loglog_slope(r.peak, r.max_floor),
                "max_dev_floor_over_peak": [float(x) for x in (r.max_floor / r.peak).values[order]],
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
                r = select(gd, **{field: v}, **fixed, peak=p)
                entry[f"{field}={v:g}"] = {
                    "max_dev_floor_worst_kind": float(r.max_floor.max()),
                    "max_dev_straight_worst_kind": float(r.max_straight.max()),
                }
            curv[label][f"peak={p:g}"] = entry
    out["gd_deviation_vs_curvature"] = curv
    collapse = {}
    for b, w in landscapes:
        for p in cfg.peaks:
            r = select(gd, amplitude=b, frequency=w, peak=p)
            collapse[f"b={b:g},omega={w:g},peak={p:g}"] = {
                "s_end_spread_over_kinds": float(r.s_end.max() - r.s_end.min()),
                "tau_end_spread_over_kinds": float(r.tau_end.max() - r.tau_end.min()),
                "end_dev_floor_by_kind": {
                    str(k): float(x) for k, x in zip(r.kind.values, r.end_floor.values, strict=True)
                },
            }
    out["gd_collapse_at_equal_tau"] = collapse
    sgd = select(scalars(runs), method="sgd")
    sgd_traj = select(runs, method="sgd")
    sgd_out: dict = {}
    for b in cfg.sgd_amplitudes:
        for k in cfg.kinds:
            for p in cfg.peaks:
                r = select(sgd, amplitude=b, kind=k, peak=p)
                tr = select(sgd_traj, amplitude=b, kind=k, peak=p)
                mean_dev = (tr.river_coord - tr.flow_floor).mean("run")
                stats = sgd_stats(r.end_floor.values)
                stats["max_over_tau_abs_seed_mean_dev"] = float(abs(mean_dev).max())
                stats["gd_end_dev_floor_same_case"] = (
                    float(
                        select(gd, amplitude=b, frequency=1.0, kind=k, peak=p).end_floor.values[0]
                    )
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


def plot_collapse(runs: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    b = cfg.reference_amplitude
    gd = select(runs, method="gd", amplitude=b, frequency=1.0)
    sgd = select(runs, method="sgd", amplitude=b)
    styles, colors = _peak_styles(cfg), _peak_colors(cfg)
    with plt.rc_context(STYLE):
        fig, ((a_step, a_tau), (a_dev, a_sgd)) = plt.subplots(2, 2, figsize=(12, 8.4))
        for i in range(gd.sizes["run"]):
            r = gd.isel(run=i)
            kind, p = str(r.kind.values), float(r.peak)
            style = {"color": SCHEDULE_COLORS[kind], "ls": styles[p], "lw": 1.1}
            a_step.plot(r.step[1:], r.river_coord[1:], **style)
            a_tau.plot(r.tau, r.river_coord, **style)
            a_dev.plot(r.tau[1:], abs(r.river_coord - r.flow_floor)[1:], **style)
        ref = gd.isel(run=int(np.argmax(gd.tau_end.values)))
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
                r = select(sgd, peak=p, kind=kind)
                if not r.sizes["run"]:
                    continue
                dev = r.river_coord - r.flow_floor
                tau = r.tau.isel(run=0)
                a_sgd.plot(
                    tau,
                    dev.mean("run"),
                    color=colors[p],
                    ls=ls,
                    lw=1.4,
                    label=f"{SCHEDULE_NAMES[kind]}, peak {p:g}",
                )
                if kind == "constant" and p in (min(cfg.peaks), max(cfg.peaks)):
                    lo, hi = dev.quantile(0.25, "run"), dev.quantile(0.75, "run")
                    a_sgd.fill_between(tau, lo, hi, color=colors[p], alpha=0.15, lw=0)
        a_sgd.axhline(0.0, color="k", lw=0.8)
        a_sgd.set_xlabel("intrinsic time $\\tau$ (rate x steps)")
        a_sgd.set_ylabel("SGD $s(\\tau) - s_{floor}(\\tau)$ (units of $s$)")
        seeds = int(np.unique(sgd.seed).size)
        a_sgd.set_title(f"SGD ($\\sigma$ = {cfg.noise_std:g}, b = {b:g}): mean of {seeds} seeds")
        a_sgd.fill_between([], [], [], color="0.6", alpha=0.3, label="quartiles (constant)")
        a_sgd.legend(fontsize=7, ncol=2)
        fig.tight_layout()
    return save_figure(fig, out / "intrinsic_time_collapse.png")


def plot_deviation(runs: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    per_run = scalars(runs)
    gd, sgd = select(per_run, method="gd"), select(per_run, method="sgd")
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
                r = select(gd, amplitude=b, frequency=1.0, kind=kind)
                order = np.argsort(r.peak.values)
                for ax, gap in ((a_peak, r.max_floor), (a_end, r.end_floor)):
                    ax.plot(
                        r.peak.values[order],
                        gap.values[order],
                        color=SCHEDULE_COLORS[kind],
                        marker=markers[b],
                        ls=lines[b],
                        lw=1,
                        ms=4,
                    )
        bounds = euler_bounds(runs)
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
                y = [
                    float(select(gd, **{field: v}, **fixed, peak=p).max_floor.max()) for v in values
                ]
                ax.plot(values, y, marker="o", color=colors[p], label=f"floor flow, peak {p:g}")
            p0 = min(cfg.peaks)
            y = [
                float(select(gd, **{field: v}, **fixed, peak=p0).max_straight.max()) for v in values
            ]
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
                sgd_stats(select(sgd, amplitude=b_ref, kind=kind, peak=p).end_floor.values)
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
        rms_top = sgd_stats(select(sgd, amplitude=b_ref, peak=cfg.peaks[-1]).end_floor.values)
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
            stats = [sgd_stats(select(sgd, amplitude=b, peak=p).end_floor.values) for b in amps]
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
    runs = runs_view(ds)
    figures = plot_collapse(runs, cfg, out) + plot_deviation(runs, cfg, out)
    summary = write_summary(out / "intrinsic_time_summary.json", summarize(ds, cfg), echo=False)
    print(f"summary written to {summary.resolve()}")
    return figures


main = main_for(__name__, "intrinsic_time")


if __name__ == "__main__":
    main()
