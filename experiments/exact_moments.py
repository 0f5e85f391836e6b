r"""Exact moments against Monte Carlo: SGD and heavy-ball SGD on a noisy quadratic.

    python experiments/exact_moments.py [--quick] [--out DIR]

On the noisy quadratic ``L(w) = 1/2 sum_i lambda_i w_i^2`` with Gaussian gradient noise
``sigma_i xi`` every iterate is Gaussian, with mean and variance given exactly, for any schedule,
by linear recursions (``rivervalley.theory``): per coordinate ``m' = (1 - eta lambda) m``,
``v' = (1 - eta lambda)^2 v + eta^2 sigma^2`` for SGD, and for heavy ball (optax:
``m <- beta m + g; w <- w - eta m``) the state ``x = (w, m)`` obeys ``x' = A_t x + b_t xi`` with
``A_t = [[1 - eta lambda, -eta beta], [lambda, beta]]``, ``b_t = (-eta sigma, sigma)``, so
``mu' = A mu`` and ``C' = A C A^T + b b^T`` (``theory.heavy_ball_quadratic_moments``).  The
expected loss is ``1/2 sum_i lambda_i (m_i^2 + v_i)``.

``sweep`` runs ``seeds`` Monte-Carlo runs of SGD (``beta = 0``) and SGD with momentum ``beta``
under WSD, cosine and WSD-S in *one* compiled program: the optimizer is heavy ball swept over
``beta in {0, beta}`` (dim ``momentum``; with ``beta = 0``, ``m = 0 m + g = g`` bit for bit,
i.e. plain SGD) and the schedules are a dict (dim ``schedule``; the recorded rates are checked
equal to the ones the recursions use).  The dataset keeps per-step Monte-Carlo statistics (mean,
variance, quantiles of the loss and of every coordinate) over dims ``(momentum, schedule,
step[, param])`` next to the exact moments.

Figures: ``exact_moments_loss`` (MC mean loss and its 5-95% sample quantiles, exact ``E L``),
``exact_moments_iterates`` (river and top-hill coordinates: MC mean and 2.5-97.5% sample
quantiles against the exact mean +- 2 sd).  ``exact_moments_summary.json``: the z-scores
``(MC mean - exact) / SE`` (exact ``SE = sqrt(Var / n)``) of the loss and of each coordinate's
mean, of each coordinate's
variance (``(s^2 / v - 1) / sqrt(2 / (n - 1))``, Gaussian iterates), their maxima, and the
largest ``|z|`` expected among that many independent comparisons.  A run whose loss stops being
finite is dropped with its seed from every configuration (these recursions are stable, so only a
non-finite noise draw does that; the summary lists the seeds).
Runtime: ~25 s on 2 cores (``--quick``: ~10 s).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from rivervalley import optimizers, schedules, theory
from rivervalley.experiment import main_for, write_summary
from rivervalley.landscapes import noisy_quadratic
from rivervalley.plotting import SCHEDULE_COLORS, SCHEDULE_NAMES, STYLE, save_figure
from rivervalley.runner import sweep

SCHEDULES = ("wsd", "cosine", "wsd_s")
OPTIMIZERS = ("sgd", "momentum")
LOSS_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
ITERATE_QUANTILES = (0.025, 0.975)


@dataclasses.dataclass(frozen=True)
class Config:
    curvatures: tuple[float, ...] = (2.0, 0.2, 0.02)  # the last (flattest) is the river
    noise_std: tuple[float, ...] = (0.5, 0.5, 0.05)  # a quiet river: its mean stays visible
    start: tuple[float, ...] = (1.0, -1.0, 3.0)
    peak: float = 0.2  # eta lambda <= 0.4 for SGD; heavy ball needs eta lambda < 2 (1 + beta)
    momentum: float = 0.9
    steps: int = 1000
    warmup_steps: int = 50
    decay_fraction: float = 0.2
    wsds_budgets: int = 3
    seeds: int = 4096
    record_every: int = 5


def config(quick: bool) -> Config:
    if quick:
        return Config(steps=300, warmup_steps=15, seeds=1024, record_every=3)
    return Config()


def schedule_set(cfg: Config) -> dict[str, schedules.Schedule]:
    span = cfg.steps // cfg.wsds_budgets
    ends = [span * (i + 1) for i in range(cfg.wsds_budgets - 1)] + [cfg.steps]
    warm = cfg.warmup_steps
    return {
        "wsd": schedules.wsd(cfg.peak, cfg.steps, cfg.decay_fraction, warmup_steps=warm),
        "cosine": schedules.cosine(cfg.peak, cfg.steps, warmup_steps=warm),
        "wsd_s": schedules.wsd_s(cfg.peak, ends, cfg.decay_fraction, warmup_steps=warm),
    }


def rate_table(cfg: Config) -> xr.DataArray:
    """Rates of every schedule at steps ``0 .. steps`` (the last one is only recorded, never
    used by an update), dims ``(schedule, t)``."""
    table = {k: np.asarray(schedules.rates(s, cfg.steps + 1)) for k, s in schedule_set(cfg).items()}
    return xr.DataArray(
        np.stack(list(table.values())), dims=("schedule", "t"), coords={"schedule": list(table)}
    )


def exact(cfg: Config, rates: xr.DataArray) -> xr.Dataset:
    """Exact moments at the recorded steps for every (momentum, schedule), via one ``vmap`` of
    ``theory.heavy_ball_quadratic_moments`` over momenta and schedules."""
    betas = jnp.asarray([0.0, cfg.momentum])

    def one(beta, lrs):
        mom = theory.heavy_ball_quadratic_moments(
            cfg.curvatures, cfg.noise_std, cfg.start, 0.0, lrs, beta
        )
        loss = theory.expected_quadratic_loss(cfg.curvatures, mom)
        loss_var = theory.quadratic_loss_variance(cfg.curvatures, mom)
        return mom.mean, mom.var, loss, loss_var

    by_schedule = jax.vmap(one, in_axes=(None, 0))
    both = jax.jit(jax.vmap(by_schedule, in_axes=(0, None)))
    mean, var, loss, loss_var = both(betas, jnp.asarray(rates.values[:, : cfg.steps]))
    rec = slice(None, None, cfg.record_every)
    dims = ("momentum", "schedule", "step", "param")
    return xr.Dataset(
        {
            "exact_w_mean": (dims, np.asarray(mean)[:, :, rec]),
            "exact_w_var": (dims, np.asarray(var)[:, :, rec]),
            "exact_loss": (dims[:3], np.asarray(loss)[:, :, rec]),
            "exact_loss_var": (dims[:3], np.asarray(loss_var)[:, :, rec]),
        }
    )


def compute(cfg: Config, progress: bool | None) -> xr.Dataset:
    ds = sweep(
        noisy_quadratic(cfg.curvatures, cfg.noise_std, cfg.start),
        optimizers.sgd(momentum=[0.0, cfg.momentum]),  # dim momentum; 0: plain SGD, bit for bit
        schedule_set(cfg),  # dim schedule: three kinds in one compiled program
        seeds=cfg.seeds,
        steps=cfg.steps,
        record_every=cfg.record_every,
        record_params=True,
        progress=progress,
    )
    table = rate_table(cfg)
    recorded = ds.lr.isel(momentum=0, seed=0, drop=True).transpose("schedule", "step")
    # the recursions' rates are the runs' (to float32 rounding: the runner evaluates the
    # schedules in its own compiled code)
    expected = table.values[:, :: cfg.record_every]
    np.testing.assert_allclose(recorded.values, expected, rtol=0, atol=1e-6 * cfg.peak)
    # A run is flagged diverged when its loss stops being finite.  These linear recursions are
    # stable, so that only happens when the noise generator itself returns +-inf (see
    # ``dropped_seeds``); such a seed is dropped from every configuration, keeping the common
    # random numbers aligned.
    bad = ds.diverged.any(("momentum", "schedule"))
    runs = ds[["loss", "params"]].isel(seed=np.flatnonzero(~bad.values)).astype(np.float64)
    loss, w = runs.loss, runs.params
    data = {
        "mc_loss_mean": loss.mean("seed"),
        "mc_loss_std": loss.std("seed", ddof=1),
        "mc_loss_q": loss.quantile(LOSS_QUANTILES, "seed").rename(quantile="loss_quantile"),
        "mc_w_mean": w.mean("seed"),
        "mc_w_var": w.var("seed", ddof=1),
        "mc_w_q": w.quantile(ITERATE_QUANTILES, "seed").rename(quantile="iterate_quantile"),
        "lr": recorded,
    }
    moments = exact(cfg, table).assign_coords(momentum=ds.momentum, step=ds.step)
    out = xr.Dataset(data).merge(moments).drop_vars(["landscape", "optimizer"])
    out.attrs = {
        "n_seeds": runs.sizes["seed"],
        "dropped_seeds": json.dumps(ds.seed.values[bad.values].tolist()),
        "sweep_config": ds.attrs["config"],
    }
    return out.assign_coords(param=np.arange(len(cfg.curvatures)))


def z_scores(ds: xr.Dataset) -> dict[str, xr.DataArray]:
    """z-scores per (momentum, schedule, step[, param]), step 0 (deterministic) excluded.

    Means use the *exact* standard error ``sqrt(Var / n)`` (``Var`` from the recursion; for the
    loss ``theory.quadratic_loss_variance``): the sample SE of a skewed quantity such as the loss
    (a sum of chi-squares) is correlated with the sample mean, which fattens the tails of a
    Student-type z.  Variances: ``(s^2 / v - 1) / sqrt(2 / (n - 1))`` (Gaussian iterates)."""
    n = int(ds.attrs["n_seeds"])
    later = ds.isel(step=slice(1, None))
    return {
        "loss_mean": (later.mc_loss_mean - later.exact_loss) / np.sqrt(later.exact_loss_var / n),
        "w_mean": (later.mc_w_mean - later.exact_w_mean) / np.sqrt(later.exact_w_var / n),
        "w_var": (later.mc_w_var / later.exact_w_var - 1.0) / np.sqrt(2.0 / (n - 1)),
    }


def expected_max_abs_z(count: int) -> float:
    """Median of the largest ``|z|`` among ``count`` independent standard normals (a reference:
    the real comparisons are correlated along a trajectory, so the maximum is typically below)."""
    p = 1.0 - 0.5 ** (1.0 / count)
    return statistics.NormalDist().inv_cdf(1.0 - p / 2.0)


def summarize(ds: xr.Dataset, cfg: Config) -> dict:
    z = z_scores(ds)
    out: dict = {
        "n_seeds": int(ds.attrs["n_seeds"]),
        "dropped_seeds": json.loads(ds.attrs["dropped_seeds"]),
        "configs": {},
    }
    for i, opt in enumerate(OPTIMIZERS):
        for j, sched in enumerate(SCHEDULES):
            at = {"momentum": i, "schedule": j}
            entry = {f"max_abs_z_{k}": float(abs(v[at]).max()) for k, v in z.items()}
            entry["final_loss_exact"] = float(ds.exact_loss[at][-1])
            entry["final_loss_mc"] = float(ds.mc_loss_mean[at][-1])
            out["configs"][f"{opt}/{sched}"] = entry
    count = sum(v.size for v in z.values())
    out["max_abs_z"] = {k: float(abs(v).max()) for k, v in z.items()}
    out["max_abs_z_all"] = max(out["max_abs_z"].values())
    out["comparisons"] = count
    out["expected_max_abs_z_if_independent"] = expected_max_abs_z(count)
    return out


def plot(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    z = z_scores(ds)
    titles = {"sgd": "SGD", "momentum": f"heavy ball, $\\beta$ = {cfg.momentum}"}
    river, hill = int(np.argmin(cfg.curvatures)), int(np.argmax(cfg.curvatures))
    step = ds.step.values
    header = (
        f"noisy quadratic, $\\lambda$ = {list(cfg.curvatures)}, $\\sigma$ = "
        f"{list(cfg.noise_std)}, peak rate {cfg.peak}; {ds.attrs['n_seeds']} Monte-Carlo runs "
        "per curve"
    )
    paths = []
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 3, figsize=(13, 6.6), sharex=True, squeeze=False)
        for i, opt in enumerate(OPTIMIZERS):
            for j, sched in enumerate(SCHEDULES):
                ax, at = axes[i, j], {"momentum": i, "schedule": j}
                color = SCHEDULE_COLORS[sched]
                q = ds.mc_loss_q[at].values
                ax.fill_between(step, q[0], q[-1], color=color, alpha=0.18, lw=0, label="MC 5-95%")
                ax.fill_between(step, q[1], q[-2], color=color, alpha=0.3, lw=0, label="MC 25-75%")
                ax.plot(step, ds.mc_loss_mean[at], color=color, lw=1.6, label="MC mean")
                ax.plot(step, ds.exact_loss[at], "k--", lw=1.0, label="exact $E\\,L_t$")
                ax.set_yscale("log")
                zmax = float(abs(z["loss_mean"][at]).max())
                ax.set_title(
                    f"{titles[opt]}, {SCHEDULE_NAMES[sched]}: max |z| = {zmax:.2f}", fontsize=9
                )
                if j == 0:
                    ax.set_ylabel("loss $L(w_t)$")
                if i == 1:
                    ax.set_xlabel("step (updates)")
                ax.legend(fontsize=7, loc="lower left")
        fig.suptitle("mean loss: Monte Carlo vs the exact recursion\n" + header, fontsize=10)
        fig.tight_layout()
        paths.extend(save_figure(fig, out / "exact_moments_loss.png"))

        fig, axes = plt.subplots(2, 3, figsize=(13, 6.6), sharex=True, squeeze=False)
        for i, opt in enumerate(OPTIMIZERS):
            for j, sched in enumerate(SCHEDULES):
                ax, at = axes[i, j], {"momentum": i, "schedule": j}
                for k, color, name in ((river, "tab:blue", "river"), (hill, "tab:red", "hill")):
                    lam = cfg.curvatures[k]
                    q = ds.mc_w_q[at].sel(param=k).values
                    ax.fill_between(step, q[0], q[1], color=color, alpha=0.2, lw=0)
                    ax.plot(
                        step,
                        ds.mc_w_mean[at].sel(param=k),
                        color=color,
                        lw=1.4,
                        label=f"{name} $w_{k}$ ($\\lambda$={lam}): MC mean, 2.5-97.5%",
                    )
                    mean = ds.exact_w_mean[at].sel(param=k).values
                    sd = np.sqrt(ds.exact_w_var[at].sel(param=k).values)
                    ax.plot(step, mean, "k--", lw=0.9)
                    ax.plot(step, mean + 2 * sd, "k:", lw=0.9)
                    ax.plot(step, mean - 2 * sd, "k:", lw=0.9)
                ax.plot([], [], "k--", lw=0.9, label="exact mean")
                ax.plot([], [], "k:", lw=0.9, label="exact mean $\\pm$ 2 sd")
                zm = float(abs(z["w_mean"][at]).max())
                zv = float(abs(z["w_var"][at]).max())
                ax.set_title(
                    f"{titles[opt]}, {SCHEDULE_NAMES[sched]}: max |z| mean {zm:.2f}, var {zv:.2f}",
                    fontsize=9,
                )
                if j == 0:
                    ax.set_ylabel("coordinate $w_{t,i}$")
                if i == 1:
                    ax.set_xlabel("step (updates)")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
        fig.suptitle("iterates: Monte Carlo vs the exact mean and variance\n" + header, fontsize=10)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        paths.extend(save_figure(fig, out / "exact_moments_iterates.png"))

    summary = summarize(ds, cfg)
    write_summary(out / "exact_moments_summary.json", summary, echo=False)
    print(
        f"max |z| (MC vs exact) over {summary['comparisons']} comparisons: "
        + ", ".join(f"{k} {v:.2f}" for k, v in summary["max_abs_z"].items())
        + f" (independent-comparison reference {summary['expected_max_abs_z_if_independent']:.2f})"
    )
    return paths


main = main_for(__name__, "exact_moments")


if __name__ == "__main__":
    main()
