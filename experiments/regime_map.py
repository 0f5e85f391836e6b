r"""Which schedule wins where: a regime map over power-law exponents, against the FSL theory.

    python experiments/regime_map.py [--quick] [--out DIR]

Problem (``rivervalley.regimes``): the noisy quadratic with curvatures ``lambda_i = i^{-beta}``,
signal ``lambda_i w_{0,i}^2 = i^{-a}`` (the initial error's per-direction loss contribution) and
label noise (gradient-noise covariance ``sigma^2 H``), ``i = 1..d``.  For every exponent pair
``(beta, a)`` and schedule (WSD with a linear cooldown over the last 20%, cosine, linear decay,
constant; no warmup, decays to 0) the *exact* expected final loss of SGD is computed (no Monte
Carlo): the mean/variance recursion of ``theory.sgd_quadratic_moments``, run by
``regimes.final_moments`` keeping only the last step, ``vmap``-ped over
``beta x schedule x peak`` in one compiled call per (horizon, dimension); the recursion does not
depend on ``a`` or ``sigma``, so the whole map costs one recursion per
(``beta``, schedule, peak).  Each schedule's peak is tuned over a log grid up to 0.9 x the
stability limit ``2 / lambda_max = 2`` (parabolic refinement in log-log, ``regimes.tune_peak``).
Per grid point: the winner, the margin (runner-up / best tuned loss) and the WSD / cosine ratio.

Theory (Li et al., *Functional Scaling Laws in Kernel Regression*, NeurIPS 2025, arXiv
2509.19189; ``rivervalley.regimes``): source exponent ``s = (a - 1)/beta``, capacity ``beta``;
hard tasks ``s < 1 - 1/beta`` ``<=> a < beta`` (WSD-like beats pure decay).  The same functional,
worked out for these four schedules (``regimes`` docstring), predicts: WSD wins for
``a < min(beta, 1 + beta/2)`` (a linear cooldown's last steps leave ``T^{-1/2}`` noise, which
matters for ``beta > 2``); beyond, cosine (or, for ``beta`` near 1, linear) wins; constant never.
These are ``T -> infinity`` statements; the map is at finite horizons (two of them, to see the
trend) and three noise levels ``sigma`` (finite-``T`` crossovers move with ``sigma``; the
asymptotic prediction does not).

Checks: the map recomputed at dimension ``2d`` (winners should not move away from the
boundaries); the fast recursion against ``theory.sgd_quadratic_moments`` +
``theory.expected_quadratic_loss``; a Monte-Carlo spot check (``runner.sweep`` on
``landscapes.noisy_quadratic``, WSD and cosine at their tuned peaks, one ``(beta, a)``) against
the exact value (z-scores).

Figure ``regime_map.png``: winner maps over ``(a, beta)`` per noise level with the predicted
boundaries (paper: ``a = beta``; this functional with a linear cooldown: ``a = min(beta,
1 + beta/2)``) and the points where the computed winner differs from the predicted one; the
margin; the WSD / cosine ratio map; that ratio along slices against its predicted limit.
``regime_map_summary.json``: agreement fractions (all points, and away from the predicted
boundaries), winners per predicted region, margins near / far from the boundary, the
d-doubling check, the Monte-Carlo z-scores, tuned peaks at the grid edge.

What the full run finds (d = 2048, 12 x 20 exponent pairs, 28 peaks up to 1.8): constant never
wins (as predicted); WSD wins the low-``a`` wedge and cosine most of the rest, as predicted, but
the computed boundary sits on either side of the predicted one depending on the noise level: at
``T = 4000`` the winner agrees with the prediction at 77% / 78% / 52% of the points for
``sigma = 0.1 / 0.3 / 1`` (70% / 72% / 39% at ``T = 1000``: agreement grows with the horizon at
every noise level).  The disagreements are (i) a band at small ``beta`` and large ``a`` where
linear decay beats cosine (predicted: cosine by a few %; the band shrinks with ``T``: 58 -> 44
points at ``sigma = 0.3``), (ii) at ``sigma = 0.1`` WSD still winning between the two predicted
lines (25 points), at ``sigma = 1`` cosine winning inside the predicted WSD wedge (45 points).
In the WSD region the median WSD / cosine ratio is 0.83 / 0.90 / 1.18 (``sigma = 0.1 / 0.3 /
1``) against the predicted limit ``(0.5 / 0.9)^s``, median 0.86.  The long-horizon scan at
``beta = 3.05`` (T up to 64000) shows every WSD / cosine ratio drifting the predicted way, e.g.
at ``a = 2.8`` (between the paper's line and the linear-cooldown line) 1.36 -> 1.75 at
``sigma = 0.3`` and 0.81 -> 0.89 at ``sigma = 0.1`` (WSD still ahead there at T = 64000).
Doubling d to 4096 changes 2 winners (``sigma = 0.1``, within 0.75 of a boundary, margins
< 0.6%), none far from the boundaries.  Monte Carlo (256 seeds): ``|z| < 1``.
Runtime: ~1.5 min of CPU (about 5 min wall on the shared 2-core machine; ``--quick``: ~10 s of
CPU).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm

from rivervalley import optimizers, regimes, theory
from rivervalley.experiment import main_for, write_summary
from rivervalley.landscapes import noisy_quadratic
from rivervalley.plotting import SCHEDULE_COLORS, SCHEDULE_NAMES, STYLE, save_figure
from rivervalley.runner import sweep

KINDS = regimes.KINDS


def _grid(start: float, stop: float, step: float) -> tuple[float, ...]:
    return tuple(float(x) for x in np.round(np.arange(start, stop + step / 2, step), 3))


@dataclasses.dataclass(frozen=True)
class Config:
    betas: tuple[float, ...] = _grid(1.25, 3.45, 0.2)  # avoids beta = 2, 3 (log corrections)
    signals: tuple[float, ...] = _grid(1.2, 5.0, 0.2)  # a
    noise_levels: tuple[float, ...] = (0.1, 0.3, 1.0)
    main_noise: float = 0.3
    horizons: tuple[int, ...] = (1000, 4000)  # the last is the main one (and the 2d check)
    dim: int = 2048
    peak_min: float = 1e-3
    peak_max: float = 1.8  # 0.9 x the stability limit 2 / lambda_1
    n_peaks: int = 28
    decay_fraction: float = 0.2
    near: float = 0.3  # |a - boundary| <= near: "near the boundary"
    far: float = 0.8  # |a - boundary| >= far: "far from the boundary"
    mc_beta: float = 2.05
    mc_signal: float = 1.6
    mc_dim: int = 256
    mc_steps: int = 1000
    mc_seeds: int = 256
    # long-horizon scan on one slice (few modes are resolved at large beta, so d can be small)
    scan_beta: float = 3.05
    scan_signals: tuple[float, ...] = (2.0, 2.8, 3.6)  # below both lines, between, beyond
    scan_horizons: tuple[int, ...] = (1000, 4000, 16000, 64000)
    scan_dim: int = 512


def config(quick: bool) -> Config:
    if quick:
        return Config(
            betas=(1.25, 1.85, 2.45, 3.05),
            signals=(1.4, 2.2, 3.0, 3.8, 4.6),
            horizons=(100, 400),
            dim=128,
            n_peaks=12,
            mc_dim=32,
            mc_steps=200,
            mc_seeds=64,
            scan_horizons=(100, 400),
            scan_dim=64,
        )
    return Config()


def peak_grid(cfg: Config) -> np.ndarray:
    return np.geomspace(cfg.peak_min, cfg.peak_max, cfg.n_peaks)


def loss_grid(cfg: Config, horizons: tuple[int, ...], dim: int) -> np.ndarray:
    """Exact final losses, shape ``(noise, horizon, beta, a, kind, peak)``, float64, in one
    compiled recursion over (beta, horizon, kind, peak); then ``a`` and ``sigma`` by linear
    algebra.  Shorter horizons are padded with *leading* zero rates (an update at rate 0 is the
    identity), so every horizon shares one scan length."""
    peaks = peak_grid(cfg)
    longest = max(horizons)
    rates = np.stack(
        [
            np.pad(
                regimes.tabulate(KINDS, peaks, steps, cfg.decay_fraction),
                ((0, 0), (0, 0), (longest - steps, 0)),
            )
            for steps in horizons
        ]
    )  # (horizon, kind, peak, T)
    lam = np.stack([regimes.curvatures(dim, b) for b in cfg.betas])  # (beta, d)
    with jax.enable_x64(True):
        p, q = regimes.final_moments_batch(
            jnp.asarray(lam, jnp.float64), jnp.asarray(rates, jnp.float64)
        )
        p, q = np.asarray(p), np.asarray(q)  # (beta, horizon, kind, peak, d)
    sig = np.stack([regimes.signal(dim, a) for a in cfg.signals])  # (a, d)
    signal_part = 0.5 * np.einsum("bhkpd,ad->hbakp", p, sig)
    noise_part = 0.5 * np.einsum("bhkpd,bd->hbkp", q, lam**2)[:, :, None]  # a: broadcast
    var = np.asarray(cfg.noise_levels)[:, None, None, None, None, None] ** 2
    return signal_part[None] + var * noise_part[None]  # (noise, horizon, beta, a, kind, peak)


def monte_carlo(cfg: Config, progress: bool | None) -> dict[str, np.ndarray]:
    """WSD and cosine at their tuned peaks at ``(mc_beta, mc_signal, main_noise)`` on a
    ``mc_dim``-dimensional problem: the seed mean of the final loss against the exact value,
    by the fast recursion and by ``theory.sgd_quadratic_moments`` (their agreement is checked)."""
    d, steps, beta, a = cfg.mc_dim, cfg.mc_steps, cfg.mc_beta, cfg.mc_signal
    peaks = peak_grid(cfg)
    kinds = ("wsd", "cosine")
    rates = regimes.tabulate(kinds, peaks, steps, cfg.decay_fraction)  # (kind, peak, T)
    lam = regimes.curvatures(d, beta)
    sig = regimes.signal(d, a)
    with jax.enable_x64(True):
        p, q = regimes.final_moments_batch(jnp.asarray(lam[None]), jnp.asarray(rates))
    losses = regimes.final_loss(np.asarray(p[0]), np.asarray(q[0]), lam, sig, cfg.main_noise)
    best = np.argmin(losses, axis=1)  # the best grid peak (no refinement: exact rates)
    tuned = peaks[best]
    fast = losses[np.arange(len(kinds)), best]
    table = rates[np.arange(len(kinds)), best]  # the library's schedules' own rates
    w0 = regimes.initial_point(d, beta, a)
    std = regimes.noise_std(d, beta, cfg.main_noise)
    with jax.enable_x64(True):
        shared = np.asarray(
            _shared_final_loss(
                jnp.asarray(lam), jnp.asarray(std), jnp.asarray(w0), jnp.asarray(table)
            )
        )
    ds = sweep(
        noisy_quadratic(lam, std, w0),
        optimizers.sgd(),
        {
            k: regimes.make_schedule(k, tuned[i], steps, cfg.decay_fraction)
            for i, k in enumerate(kinds)
        },
        seeds=cfg.mc_seeds,
        steps=steps,
        record_every=steps,
        progress=progress,
    )
    final = ds.loss.isel(step=-1).astype(np.float64).transpose("schedule", "seed")
    return {
        "mc_kind": np.asarray(kinds),
        "mc_peak": tuned,
        "mc_mean": final.mean("seed").values,
        "mc_se": final.std("seed", ddof=1).values / np.sqrt(cfg.mc_seeds),
        "mc_exact": np.asarray(fast),
        "mc_exact_theory": np.asarray(shared),
    }


@jax.jit
def _shared_final_loss(lam, std, w0, table):
    """Final expected loss by ``theory.sgd_quadratic_moments`` + ``expected_quadratic_loss``
    (the whole trajectory; small problems only), one row of rates per schedule."""

    def one(lrs):
        mom = theory.sgd_quadratic_moments(lam, std, w0, 0.0, lrs)
        return theory.expected_quadratic_loss(lam, mom)[-1]

    return jax.vmap(one)(table)


def horizon_scan(cfg: Config) -> np.ndarray:
    """Exact final losses at ``scan_beta`` for every ``scan_signals`` and horizon, shape
    ``(noise, scan_horizon, scan_a, kind, peak)``: does the finite-``T`` winner drift towards
    the asymptotic prediction?  One compiled recursion per horizon."""
    scan = dataclasses.replace(cfg, betas=(cfg.scan_beta,), signals=cfg.scan_signals)
    return np.stack([loss_grid(scan, (t,), cfg.scan_dim)[:, 0, 0] for t in cfg.scan_horizons], 1)


def compute(cfg: Config, progress: bool | None) -> xr.Dataset:
    main = cfg.horizons[-1]
    losses = loss_grid(cfg, cfg.horizons, cfg.dim)
    doubled = loss_grid(cfg, (main,), 2 * cfg.dim)[:, 0]
    scan = horizon_scan(cfg)
    mc = monte_carlo(cfg, progress)
    dims = ("noise", "horizon", "beta", "a", "kind", "peak")
    return xr.Dataset(
        {
            "loss": (dims, losses),
            "loss_2d": (tuple(d for d in dims if d != "horizon"), doubled),
            "scan_loss": (("noise", "scan_horizon", "scan_a", "kind", "peak"), scan),
            "mc_peak": ("mc_kind", mc["mc_peak"]),
            "mc_mean": ("mc_kind", mc["mc_mean"]),
            "mc_se": ("mc_kind", mc["mc_se"]),
            "mc_exact": ("mc_kind", mc["mc_exact"]),
            "mc_exact_theory": ("mc_kind", mc["mc_exact_theory"]),
        },
        coords={
            "noise": list(cfg.noise_levels),
            "horizon": list(cfg.horizons),
            "beta": list(cfg.betas),
            "a": list(cfg.signals),
            "kind": list(KINDS),
            "peak": peak_grid(cfg),
            "mc_kind": [str(k) for k in mc["mc_kind"]],
            "scan_horizon": list(cfg.scan_horizons),
            "scan_a": list(cfg.scan_signals),
        },
        attrs={
            "dim": cfg.dim,
            "dim_check": 2 * cfg.dim,
            "main_horizon": main,
            "scan_beta": cfg.scan_beta,
            "scan_dim": cfg.scan_dim,
        },
    )


# --- analysis (reads the dataset only) --------------------------------------------------------


def tuned(loss: xr.DataArray) -> dict[str, np.ndarray]:
    """Tuned peak and loss per kind (last two dims ``kind, peak``), the winner index, the margin
    (runner-up / best) and whether the tuned peak sits at the grid edge."""
    peak, best, edge = regimes.tune_peak(loss["peak"].values, loss.values)
    order = np.sort(best, axis=-1)
    return {
        "peak": peak,
        "loss": best,
        "edge": edge,
        "winner": np.argmin(best, axis=-1),
        "margin": order[..., 1] / order[..., 0],
    }


def predictions(ds: xr.Dataset, decay_fraction: float) -> dict[str, np.ndarray]:
    betas, signals = ds.beta.values, ds.a.values
    winner = np.array(
        [
            [KINDS.index(regimes.predicted_winner(b, a, KINDS, decay_fraction)) for a in signals]
            for b in betas
        ]
    )
    ratio = np.array(
        [
            [regimes.predicted_ratio("wsd", "cosine", b, a, decay_fraction) for a in signals]
            for b in betas
        ]
    )
    boundary = regimes.wsd_boundary_a(betas)[:, None]
    distance = np.minimum(
        np.abs(signals[None, :] - boundary), np.abs(signals[None, :] - betas[:, None])
    )
    return {"winner": winner, "ratio_wsd_cosine": ratio, "distance": distance}


def summarize(ds: xr.Dataset, cfg: Config) -> dict:
    pred = predictions(ds, cfg.decay_fraction)
    near = pred["distance"] <= cfg.near
    far = pred["distance"] >= cfg.far
    out: dict = {
        "model": {
            "curvatures": "lambda_i = i^-beta, i = 1..d",
            "signal": "lambda_i w0_i^2 = i^-a (initial per-direction loss contribution x 2)",
            "noise": "additive, covariance sigma^2 H (label noise)",
            "source_exponent": "s = (a - 1) / beta",
            "paper_boundary": "s = 1 - 1/beta  <=>  a = beta (hard: a < beta)",
            "predicted_wsd_boundary": "a = min(beta, 1 + beta/2) (WSD with a linear cooldown)",
            "dim": int(ds.attrs["dim"]),
            "peak_grid": [float(ds.peak.min()), float(ds.peak.max()), int(ds.sizes["peak"])],
        },
        "predicted_winner_counts": {
            KINDS[k]: int((pred["winner"] == k).sum()) for k in range(len(KINDS))
        },
        "grid_points": int(pred["winner"].size),
        "near_points": int(near.sum()),
        "far_points": int(far.sum()),
    }
    per: dict = {}
    for sigma in ds.noise.values:
        for steps in ds.horizon.values:
            t = tuned(ds.loss.sel(noise=sigma, horizon=steps))
            agree = t["winner"] == pred["winner"]
            entry = {
                "agreement": float(agree.mean()),
                "agreement_far": float(agree[far].mean()) if far.any() else None,
                "agreement_near": float(agree[near].mean()) if near.any() else None,
                "winner_counts": {k: int((t["winner"] == i).sum()) for i, k in enumerate(KINDS)},
                "winners_by_predicted_region": {
                    KINDS[p]: {
                        KINDS[i]: int(((pred["winner"] == p) & (t["winner"] == i)).sum())
                        for i in range(len(KINDS))
                        if ((pred["winner"] == p) & (t["winner"] == i)).any()
                    }
                    for p in np.unique(pred["winner"])
                },
                "margin_median_near": float(np.median(t["margin"][near])) if near.any() else None,
                "margin_median_far": float(np.median(t["margin"][far])) if far.any() else None,
                "margin_min_far": float(np.min(t["margin"][far])) if far.any() else None,
                # at the top: the stability cap binds (expected where signal-limited)
                "tuned_peak_at_cap": {
                    k: int((t["edge"][..., i] & (t["peak"][..., i] >= ds.peak.values[-1])).sum())
                    for i, k in enumerate(KINDS)
                },
                "tuned_peak_at_lower_grid_edge": {
                    k: int((t["edge"][..., i] & (t["peak"][..., i] <= ds.peak.values[0])).sum())
                    for i, k in enumerate(KINDS)
                },
            }
            wsd, cos = t["loss"][..., KINDS.index("wsd")], t["loss"][..., KINDS.index("cosine")]
            limited = np.isfinite(pred["ratio_wsd_cosine"]) & (pred["ratio_wsd_cosine"] > 0)
            sig_lim = limited & (pred["winner"] == KINDS.index("wsd"))
            if sig_lim.any():
                entry["wsd_over_cosine_in_wsd_region"] = {
                    "measured_median": float(np.median((wsd / cos)[sig_lim])),
                    "predicted_limit_median": float(np.median(pred["ratio_wsd_cosine"][sig_lim])),
                }
            # disagreements: how many modes the tuned winner has resolved, (c eta* T)^(1/beta)
            bad = ~agree
            if bad.any():
                k = t["winner"]
                c = np.array([regimes.intrinsic_fraction(x, cfg.decay_fraction) for x in KINDS])
                eta = np.take_along_axis(t["peak"], k[..., None], -1)[..., 0]
                modes = (c[k] * eta * steps) ** (1.0 / ds.beta.values[:, None])
                entry["disagreements"] = {
                    "count": int(bad.sum()),
                    "median_distance_to_boundary": float(np.median(pred["distance"][bad])),
                    "median_resolved_modes": float(np.median(modes[bad])),
                    "median_resolved_modes_where_agree": float(np.median(modes[agree])),
                    "pairs_computed_vs_predicted": _pairs(t["winner"][bad], pred["winner"][bad]),
                }
            per[f"sigma={sigma:g},T={int(steps)}"] = entry
    out["maps"] = per
    main = int(ds.attrs["main_horizon"])
    dcheck: dict = {}
    for sigma in ds.noise.values:
        t1 = tuned(ds.loss.sel(noise=sigma, horizon=main))
        t2 = tuned(ds.loss_2d.sel(noise=sigma))
        changed = t1["winner"] != t2["winner"]
        dcheck[f"sigma={sigma:g}"] = {
            "winners_changed": int(changed.sum()),
            "winners_changed_far": int((changed & far).sum()),
            "max_distance_to_boundary_of_a_change": float(pred["distance"][changed].max())
            if changed.any()
            else None,
            "max_margin_of_a_change": float(t1["margin"][changed].max()) if changed.any() else None,
            # includes the schedule-independent unlearned tail sum_{i>d} i^-a / 2 (large at a ~ 1)
            "max_relative_change_of_tuned_loss": float(np.abs(t2["loss"] / t1["loss"] - 1).max()),
            "max_relative_change_of_wsd_over_cosine": float(
                np.abs(
                    (t2["loss"][..., 0] / t2["loss"][..., 1])
                    / (t1["loss"][..., 0] / t1["loss"][..., 1])
                    - 1
                ).max()
            ),
            "max_relative_change_of_wsd_over_cosine_beta_ge_1.65": float(
                np.abs(
                    (t2["loss"][..., 0] / t2["loss"][..., 1])
                    / (t1["loss"][..., 0] / t1["loss"][..., 1])
                    - 1
                )[ds.beta.values >= 1.65].max()
            ),
        }
    out["dimension_doubling"] = {
        "dims": [int(ds.attrs["dim"]), int(ds.attrs["dim_check"])],
        **dcheck,
    }
    scan: dict = {"beta": float(ds.attrs["scan_beta"]), "dim": int(ds.attrs["scan_dim"])}
    for sigma in ds.noise.values:
        t = tuned(ds.scan_loss.sel(noise=sigma))  # (horizon, a, kind)
        scan[f"sigma={sigma:g}"] = {
            f"a={a:g}": {
                "predicted_winner": regimes.predicted_winner(scan["beta"], a),
                "winner_per_horizon": {
                    str(int(h)): KINDS[t["winner"][i, j]]
                    for i, h in enumerate(ds.scan_horizon.values)
                },
                "wsd_over_cosine_per_horizon": {
                    str(int(h)): float(t["loss"][i, j, 0] / t["loss"][i, j, 1])
                    for i, h in enumerate(ds.scan_horizon.values)
                },
                "predicted_limit_wsd_over_cosine": regimes.predicted_ratio(
                    "wsd", "cosine", scan["beta"], a
                ),
                "predicted_exponents": {
                    k: float(regimes.loss_exponent(k, scan["beta"], a)) for k in KINDS
                },
            }
            for j, a in enumerate(ds.scan_a.values)
        }
    out["horizon_scan"] = scan
    z = (ds.mc_mean - ds.mc_exact) / ds.mc_se
    out["monte_carlo"] = {
        "beta": cfg.mc_beta,
        "a": cfg.mc_signal,
        "sigma": cfg.main_noise,
        "dim": cfg.mc_dim,
        "steps": cfg.mc_steps,
        "seeds": cfg.mc_seeds,
        **{
            str(k): {
                "peak": float(ds.mc_peak.sel(mc_kind=k)),
                "mc_mean": float(ds.mc_mean.sel(mc_kind=k)),
                "mc_se": float(ds.mc_se.sel(mc_kind=k)),
                "exact": float(ds.mc_exact.sel(mc_kind=k)),
                "z": float(z.sel(mc_kind=k)),
                "fast_vs_theory_rel_diff": float(
                    abs(ds.mc_exact.sel(mc_kind=k) / ds.mc_exact_theory.sel(mc_kind=k) - 1)
                ),
            }
            for k in ds.mc_kind.values
        },
    }
    return out


def _pairs(computed: np.ndarray, predicted: np.ndarray) -> dict[str, int]:
    out: dict[str, int] = {}
    for c, p in zip(computed.ravel(), predicted.ravel(), strict=True):
        key = f"{KINDS[c]} (predicted {KINDS[p]})"
        out[key] = out.get(key, 0) + 1
    return out


# --- figure -----------------------------------------------------------------------------------


def _boundaries(ax, betas: np.ndarray) -> None:
    b = np.linspace(betas.min() - 0.1, betas.max() + 0.1, 200)
    ax.plot(b, b, "k--", lw=1.2, label="paper: $a = \\beta$ ($s = 1 - 1/\\beta$)")
    ax.plot(
        regimes.wsd_boundary_a(b),
        b,
        "k-",
        lw=1.6,
        label="FSL, linear cooldown: $a = \\min(\\beta, 1 + \\beta/2)$",
    )


def plot(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(ds, cfg)
    pred = predictions(ds, cfg.decay_fraction)
    betas, signals = ds.beta.values, ds.a.values
    main = int(ds.attrs["main_horizon"])
    cmap = ListedColormap([SCHEDULE_COLORS[k] for k in KINDS])
    norm = BoundaryNorm(np.arange(len(KINDS) + 1) - 0.5, len(KINDS))
    extent_a = (signals.min() - 0.1, signals.max() + 0.1)
    extent_b = (betas.min() - 0.1, betas.max() + 0.1)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 4, figsize=(22, 10.5))
        axes[0, 3].axis("off")
        for ax, sigma, letter in zip(axes[0, :3], ds.noise.values, "abc", strict=False):
            t = tuned(ds.loss.sel(noise=sigma, horizon=main))
            ax.pcolormesh(signals, betas, t["winner"], cmap=cmap, norm=norm, shading="nearest")
            bad = t["winner"] != pred["winner"]
            bb, aa = np.nonzero(bad)
            ax.plot(signals[aa], betas[bb], "x", color="k", ms=5, label="winner $\\neq$ predicted")
            _boundaries(ax, betas)
            entry = summary["maps"][f"sigma={sigma:g},T={main}"]
            ax.set_title(
                f"({letter}) winner, $\\sigma$ = {sigma:g}, T = {main}: agrees with the FSL "
                f"prediction at "
                f"{entry['agreement']:.0%}\n(far from the boundaries: "
                f"{entry['agreement_far']:.0%})"
            )
            ax.set_xlim(*extent_a)
            ax.set_ylim(*extent_b)
            ax.set_xlabel("signal exponent $a$ ($\\lambda_i w_{0,i}^2 = i^{-a}$)")
            ax.set_ylabel("capacity exponent $\\beta$ ($\\lambda_i = i^{-\\beta}$)")
        handles = [plt.Rectangle((0, 0), 1, 1, color=SCHEDULE_COLORS[k]) for k in KINDS]
        extra, names = axes[0, 0].get_legend_handles_labels()
        axes[0, 3].legend(
            handles + extra,
            [SCHEDULE_NAMES[k] for k in KINDS] + names,
            loc="center left",
            fontsize=9,
            title="winner (tuned peak each)",
        )

        sel = ds.loss.sel(noise=cfg.main_noise, horizon=main)
        t = tuned(sel)
        ax = axes[1, 0]
        mesh = ax.pcolormesh(
            signals,
            betas,
            t["margin"] - 1.0,
            cmap="magma",
            norm=LogNorm(1e-3, max(1e-2, float(t["margin"].max() - 1))),
            shading="nearest",
        )
        fig.colorbar(mesh, ax=ax, label="margin: runner-up / best $- 1$")
        _boundaries(ax, betas)
        ax.set_title(f"(d) margin of the winner, $\\sigma$ = {cfg.main_noise:g}, T = {main}")
        ax.set_xlabel("signal exponent $a$")
        ax.set_ylabel("capacity exponent $\\beta$")

        ax = axes[1, 1]
        ratio = t["loss"][..., KINDS.index("wsd")] / t["loss"][..., KINDS.index("cosine")]
        span = float(np.abs(np.log10(ratio)).max())
        mesh = ax.pcolormesh(
            signals, betas, np.log10(ratio), cmap="PiYG_r", vmin=-span, vmax=span, shading="nearest"
        )
        fig.colorbar(mesh, ax=ax, label="$\\log_{10}$ (tuned WSD loss / tuned cosine loss)")
        ax.contour(signals, betas, np.log10(ratio), levels=[0.0], colors="b", linewidths=1.2)
        ax.plot([], [], "b-", label="measured WSD = cosine")
        _boundaries(ax, betas)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title(f"(e) WSD / cosine (green: WSD better), $\\sigma$ = {cfg.main_noise:g}")
        ax.set_xlabel("signal exponent $a$")
        ax.set_ylabel("capacity exponent $\\beta$")

        ax = axes[1, 2]
        picks = np.unique(np.linspace(0, len(betas) - 1, 3).round().astype(int))
        colors = plt.get_cmap("viridis")(np.linspace(0, 0.85, len(picks)))
        for c, ib in zip(colors, picks, strict=True):
            for steps, ls in zip(ds.horizon.values, (":", "-", "--"), strict=False):
                tt = tuned(ds.loss.sel(noise=cfg.main_noise, horizon=steps))
                r = tt["loss"][ib, :, 0] / tt["loss"][ib, :, 1]
                ax.plot(signals, r, ls, color=c, label=f"$\\beta$ = {betas[ib]:g}, T = {steps}")
            lim = pred["ratio_wsd_cosine"][ib]
            ok = np.isfinite(lim) & (lim > 0)
            ax.plot(signals[ok], lim[ok], "o", ms=3, color=c)
            ax.axvline(regimes.wsd_boundary_a(betas[ib]), color=c, lw=0.6)
        ax.plot([], [], "ko", ms=3, label="FSL limit (equal exponents)")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("signal exponent $a$ (vertical lines: predicted WSD boundary)")
        ax.set_ylabel("tuned WSD loss / tuned cosine loss")
        ax.set_title(f"(f) WSD / cosine along slices, $\\sigma$ = {cfg.main_noise:g}")
        ax.legend(fontsize=6, ncol=2)
        ax = axes[1, 3]
        hs = ds.scan_horizon.values
        beta_s = float(ds.attrs["scan_beta"])
        for sigma, ls in zip(ds.noise.values, (":", "-", "--"), strict=False):
            t = tuned(ds.scan_loss.sel(noise=sigma))
            for j, a in enumerate(ds.scan_a.values):
                color = plt.get_cmap("plasma")(0.8 * j / max(1, ds.sizes["scan_a"] - 1))
                label = f"a = {a:g} ({regimes.predicted_winner(beta_s, a)} predicted)"
                ax.plot(
                    hs,
                    t["loss"][:, j, 0] / t["loss"][:, j, 1],
                    ls,
                    marker="o",
                    ms=3,
                    color=color,
                    label=label if sigma == cfg.main_noise else None,
                )
        for sigma, ls in zip(ds.noise.values, (":", "-", "--"), strict=False):
            ax.plot([], [], ls, color="k", label=f"$\\sigma$ = {sigma:g}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("horizon T (steps)")
        ax.set_ylabel("tuned WSD loss / tuned cosine loss")
        ax.set_title(
            f"(g) drift with the horizon, $\\beta$ = {beta_s:g}, d = {int(ds.attrs['scan_dim'])}"
            f"\n(boundaries: paper a = {beta_s:g}, linear cooldown a = "
            f"{float(regimes.wsd_boundary_a(beta_s)):g})"
        )
        ax.legend(fontsize=7)
        for ax in axes.ravel():
            ax.title.set_fontsize(9)
        fig.suptitle(
            f"which schedule wins (each at its tuned peak) on the power-law noisy quadratic, "
            f"d = {int(ds.attrs['dim'])}; exact expected final loss of SGD",
            fontsize=10,
        )
        fig.tight_layout()
    paths = save_figure(fig, out / "regime_map.png")
    write_summary(out / "regime_map_summary.json", summary, echo=False)
    for key, entry in summary["maps"].items():
        print(
            f"{key}: agreement {entry['agreement']:.1%} (far {entry['agreement_far']}, near "
            f"{entry['agreement_near']}), winners {entry['winner_counts']}"
        )
    print("dimension doubling:", summary["dimension_doubling"])
    print("monte carlo:", summary["monte_carlo"])
    return paths


main = main_for(__name__, "regime_map")


if __name__ == "__main__":
    main()
