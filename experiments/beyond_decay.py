r"""Beyond decay: does averaging, merging, schedule-free or a larger batch do what the decay does?

    python experiments/beyond_decay.py [--quick] [--out DIR]

The river-valley picture says a decay helps by removing the hill oscillation while keeping the
river progress made at the high rate; anything else that removes the oscillation should help as
much.  Methods, all for the same number of steps ``T`` after the same warmup:

* **constant**: the peak rate throughout (the reference: no decay);
* **WSD**: a linear decay to 0 over the last fraction ``f`` of the run;
* **EMA**: the exponential moving average of the constant-rate iterates
  (``Optimizer.with_averaging(ema_decay=d)``);
* **merge**: checkpoint merging (WSM): the mean of ``k + 1`` checkpoints of the constant-rate run
  saved every ``f T / k`` steps over its last fraction ``f`` (``with_averaging(window=k + 1,
  window_every=f T / k)``, ``k = 4``), i.e. over exactly the window in which WSD's decay branch
  runs from the same point: equal compute, no extra step;
* **schedule-free**: ``schedule_free_sgd`` / ``schedule_free_adamw`` at a constant rate after the
  warmup, evaluated at its averaged point ``x``;
* **larger batch**: the constant rate with an ``M = 4`` times larger minibatch (gradient-noise
  variance ``/ M``): the same steps, ``M`` times the gradient evaluations.

Every method is tuned: the peak rate (a grid shared by all but schedule-free, which has its own)
jointly with its knob (``f``, ``d``, or none), chosen on half of the seeds (the *tuning* seeds)
by the mean final loss (the bigram toy: excess loss over its entropy floor); every reported
number comes from the other half (*evaluation* seeds).  All methods use the same seeds and the
runner's noise is counter-based, so differences between methods are paired (common random
numbers); EMA, merge and constant at one rate are the same trajectory.  The table reports the
final loss, river loss and hill loss (the landscape's decomposition, at the averaged point for
EMA, merge and schedule-free), the paired difference to WSD with its z-score, and the *gain
recovered* ``(L_constant - L_method) / (L_constant - L_WSD)`` (1: as good as the tuned decay;
both constant and WSD at their tuned rates).

Landscapes: the river-valley family (``landscapes.toy``, SGD, gradient noise ``sigma = 0.3``,
hill curvature 10), three members that differ only in how the river bends,
``c(s) = b sin(omega s)``: *straight* (``b = 0``), *toy* (the lab's toy, ``b = 0.15``,
``omega = 1``) and *curved* (``b = 0.3``, ``omega = 3``); and the bigram toy
(``lm.bigram_table``, ``V = 64``, half the contexts determined, half uniform over 8 tokens,
minibatches of 32, Adam).

Theory checked here (``rivervalley.theory``):

* *Straight river*: the hill coordinate is an exact 1-D noisy quadratic and every average is
  linear in the iterates, so the expected hill loss of constant, WSD, EMA, merge and the larger
  batch is exact (``theory.averaged_sgd_quadratic_moments``) and compared with the measured one
  in standard errors.  To first order on a straight river with a constant drift, the uniform
  average over ``[T - fT, T]`` and a linear decay to 0 over the same window reach the same river
  coordinate ``s_{T - fT} + v f T / 2``.
* *Curved river*: the average of points on a bent river lies inside the bend, off the river.
  For the valley's vertical split the averaged point's hill offset is exactly
  ``sum_i w_i delta_i + [sum_i w_i c(s_i) - c(s_bar)]`` (``delta_i`` the iterates' hill
  offsets): the noise average plus a *chord* term ``~ c''(s_bar) Var_w(s) / 2`` set by how far
  the averaged iterates spread along the river (drift and diffusion).  The predicted merge hill
  loss ``lambda / 2 (E[chord^2] + Var(noise average))`` uses the chord of the recorded
  checkpoints and the straight river's exact noise term; a decay branch has no chord term (its
  iterate relaxes onto the river where it is).

Outputs: ``beyond_decay.png`` / ``.pdf`` (per landscape: mean loss over the second half of the
run for every method at its tuned setting; the final loss split into river and hill loss with
2-SE bars and the share of WSD's gain each method recovers), ``beyond_decay_table.md`` (the
table), ``beyond_decay_summary.json`` (the table's numbers, tuned settings, theory checks).

What the full run finds (valleys: 256 seeds, 128 for evaluation; bigram: 16 seeds, 8; ``gain``
is the share of WSD's improvement over the tuned constant rate each method recovers, tuned vs
tuned):

* Straight river and the lab's toy (whose bend is too gentle to matter: chord term 6e-6):
  EMA recovers all of it (104 +- 2 % / 95 +- 5 %, at WSD's rate 0.19); schedule-free even more
  (125 +- 5 % at rate 0.96, the top of its grid, where plain SGD would diverge / 105 +- 6 %); the
  4x batch 70 +- 4 %; merging 5 checkpoints 57 +- 3 %.  Every measured hill loss (constant, WSD,
  EMA, merge, batch) is within 1.0 SE of the exact theory.  Merging is limited by its checkpoint
  count, not by river lag: checkpoints further apart than the hill's relaxation time ``1 /
  (eta a)`` are independent, so 5 of them leave the noise floor / 5 (0.0009, as measured); the
  exact theory needs ~65 to reach WSD's hill loss.
* Curved river: the decay wins outright; EMA 55 +- 5 %, 4x batch 43 +- 5 %, schedule-free
  20 +- 9 %, merge 16 +- 7 %.  As the river-valley picture predicts, averaging loses river
  progress here (river loss above WSD's: EMA +0.0034, z 7; merge +0.0036, z 7) and its average
  lies off the river: the merged point's hill loss, 0.0033 +- 0.0005, is predicted at 0.0027
  (chord 0.0018 + noise 0.0009).  WSD's best run decays from 0.19 over 80 % of the run, a rate
  at which the constant-rate trajectory that EMA and merging average ends at loss ~4.  Above
  the curved river's stability limit (rates 0.15, 0.19) the runs are chaotic: a float32
  rounding difference in the rate (the schedule evaluated in the compiled loop rather than
  from a precomputed table, as before the open-lab sweep) changes each seed's result, so
  WSD's tuned final loss here moved from 0.00195 +- 0.00038 to 0.00157 +- 0.00030 (about one
  SE) and the gains above with it (they were 57, 45, 21 and 17 %); every stable setting is
  unchanged to float rounding.
* Bigram toy (Adam): EMA beats the tuned WSD (136 +- 2 %, z -22: its hill loss is half of
  WSD's, whose best decay fraction is the grid's largest, 80 %); schedule-free (98 +- 1 %) and
  merging (97 +- 2 %) match WSD; the 4x batch recovers 85 +- 2 %.

Not supported / open: these are single toy configurations (one noise level, one horizon); the
tuned WSD decay (80 %) sits at its grid edge on the curved valley and the bigram, as does
schedule-free's rate (0.96) on the straight river, so those methods may do better still; with
8 evaluation seeds the bigram's SEs come from few runs.

Runtime (2 cores): full ~8 min; ``--quick`` ~20 s.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

from rivervalley import lm, optimizers, results, schedules, theory
from rivervalley.experiment import main_for, write_summary
from rivervalley.landscapes import Landscape, RiverValley, toy
from rivervalley.plotting import STYLE, save_figure
from rivervalley.runner import sweep
from rivervalley.stats import mean_se, paired_difference

METHODS = ("constant", "wsd", "ema", "merge", "schedule_free", "large_batch")
METHOD_NAMES = {
    "constant": "constant",
    "wsd": "WSD (tuned decay)",
    "ema": "EMA",
    "merge": "checkpoint merge",
    "schedule_free": "schedule-free",
    "large_batch": "larger batch",
}
METHOD_COLORS = {
    "constant": "tab:blue",
    "wsd": "tab:green",
    "ema": "tab:purple",
    "merge": "tab:orange",
    "schedule_free": "tab:red",
    "large_batch": "tab:gray",
}
VALLEYS = {  # river bend c(s) = b sin(omega s): amplitude b, frequency omega
    "straight": {"amplitude": 0.0, "frequency": 1.0},
    "toy": {"amplitude": 0.15, "frequency": 1.0},
    "curved": {"amplitude": 0.3, "frequency": 3.0},
}
LANDSCAPE_NAMES = {
    "straight": "straight river (SGD)",
    "toy": "toy river valley (SGD)",
    "curved": "curved river (SGD)",
    "bigram": "bigram toy (Adam)",
}
VARIABLES = ("loss", "river_loss", "hill_loss", "excess_loss")
Z_SUPPORT = 3.0


@dataclasses.dataclass(frozen=True)
class Config:
    valleys: tuple[str, ...] = ("straight", "toy", "curved")
    bigram: bool = True
    fractions: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8)  # WSD decay / merge, of T
    merge_intervals: int = 4  # k: k + 1 checkpoints every f T / k steps
    ema_decays: tuple[float, ...] = (0.8, 0.9, 0.97, 0.99, 0.997, 0.999, 0.9997)
    batch_factor: int = 4
    # the river valleys
    valley_steps: int = 4000
    valley_warmup: int = 100
    # SGD is stable below 2 / (a (1 + b^2 omega^2)): 0.2 (straight), 0.11 (curved); a diverged
    # tuning run rules its setting out
    valley_peaks: tuple[float, ...] = (0.05, 0.1, 0.15, 0.19)
    valley_schedule_free_peaks: tuple[float, ...] = (0.04, 0.08, 0.16, 0.24, 0.32, 0.48, 0.64, 0.96)
    valley_noise: float = 0.3
    valley_seeds: int = 256
    valley_record_every: int = 25
    # the bigram toy
    bigram_steps: int = 4000
    bigram_warmup: int = 100
    bigram_peaks: tuple[float, ...] = (0.02, 0.04, 0.08, 0.16, 0.32)
    bigram_schedule_free_peaks: tuple[float, ...] = (0.02, 0.04, 0.08, 0.16, 0.32)
    vocab_size: int = 64
    random_support: int = 8
    batch_size: int = 32
    bigram_seeds: int = 16
    bigram_record_every: int = 50
    corpus_seed: int = 0


def config(quick: bool) -> Config:
    if quick:
        return Config(
            valleys=("straight", "curved"),
            fractions=(0.2,),
            ema_decays=(0.98, 0.995),
            valley_steps=1000,
            valley_warmup=50,
            valley_peaks=(0.08,),
            valley_schedule_free_peaks=(0.08,),
            valley_seeds=64,
            valley_record_every=25,  # odd: no unrolled inner loop, half the compile time
            bigram_steps=400,
            bigram_warmup=20,
            bigram_peaks=(0.04,),
            bigram_schedule_free_peaks=(0.04,),
            vocab_size=16,
            random_support=4,
            bigram_seeds=4,
            bigram_record_every=25,
        )
    return Config()


# --- setup -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Setup:
    """What one group of landscapes runs with: ``landscape`` (the members by name: a named axis
    of one sweep), ``landscapes`` (the same, each batched over the batch sizes ``B`` and
    ``batch_factor x B``: dim ``batch_size``), the optimizer and its schedule-free counterpart,
    steps, warmup, the peak rates of the plain optimizer and of schedule-free, seeds, record
    spacing and (language models) the entropy floor ``H``."""

    names: tuple[str, ...]
    landscape: dict[str, Landscape]
    landscapes: dict[str, Landscape]
    optimizer: optimizers.Optimizer
    schedule_free: optimizers.Optimizer
    steps: int
    warmup: int
    peaks: tuple[float, ...]
    schedule_free_peaks: tuple[float, ...]
    seeds: int
    record_every: int
    entropy: float | None = None


def valley(cfg: Config, name: str, batch_size: ArrayLike = 1.0) -> RiverValley:
    bend = VALLEYS[name]
    return toy(
        noise_std=cfg.valley_noise,
        batch_size=batch_size,
        amplitude=bend["amplitude"],
        frequency=bend["frequency"],
    )


def valley_setup(cfg: Config) -> Setup:
    """The valley members as one named axis (one structure: one compiled program for all)."""
    sizes = np.array([1.0, cfg.batch_factor])
    return Setup(
        names=cfg.valleys,
        landscape={n: valley(cfg, n) for n in cfg.valleys},
        landscapes={n: valley(cfg, n, sizes) for n in cfg.valleys},
        optimizer=optimizers.sgd(),
        schedule_free=optimizers.schedule_free_sgd(),
        steps=cfg.valley_steps,
        warmup=cfg.valley_warmup,
        peaks=cfg.valley_peaks,
        schedule_free_peaks=cfg.valley_schedule_free_peaks,
        seeds=cfg.valley_seeds,
        record_every=cfg.valley_record_every,
    )


def bigram_setup(cfg: Config) -> Setup:
    mix = [(lm.deterministic(), 0.5), (lm.uniform(cfg.random_support), 0.5)]
    corpus = lm.bigram_corpus(jax.random.key(cfg.corpus_seed), cfg.vocab_size, mix)
    return Setup(
        names=("bigram",),
        landscape={"bigram": lm.bigram_table(corpus, batch_size=cfg.batch_size)},
        landscapes={
            "bigram": lm.bigram_table(
                corpus, batch_size=np.array([cfg.batch_size, cfg.batch_size * cfg.batch_factor])
            )
        },
        optimizer=optimizers.adam(),
        schedule_free=optimizers.schedule_free_adamw(),
        steps=cfg.bigram_steps,
        warmup=cfg.bigram_warmup,
        peaks=cfg.bigram_peaks,
        schedule_free_peaks=cfg.bigram_schedule_free_peaks,
        seeds=cfg.bigram_seeds,
        record_every=cfg.bigram_record_every,
        entropy=float(corpus.entropy_floor()),
    )


def merge_every(cfg: Config, steps: int, fraction: float) -> int:
    """Checkpoint spacing ``f T / k`` of the merge over the last fraction ``f`` (an integer)."""
    every = fraction * steps / cfg.merge_intervals
    if every != round(every) or every < 1:
        raise ValueError(
            f"merge window {fraction} x {steps} steps is not {cfg.merge_intervals} whole intervals"
        )
    return round(every)


def options(cfg: Config, su: Setup) -> dict[str, list[tuple[float, float]]]:
    """Every method's settings ``(peak rate, knob)``, peak-major: the knob is the decay fraction
    (WSD), the EMA decay, the merge window fraction, the batch factor, or NaN."""
    nan = float("nan")
    return {
        "constant": [(p, nan) for p in su.peaks],
        "wsd": [(p, f) for p in su.peaks for f in cfg.fractions],
        "ema": [(p, d) for p in su.peaks for d in cfg.ema_decays],
        "merge": [(p, f) for p in su.peaks for f in cfg.fractions],
        "schedule_free": [(p, nan) for p in su.schedule_free_peaks],
        "large_batch": [(p, float(cfg.batch_factor)) for p in su.peaks],
    }


# --- the sweeps --------------------------------------------------------------------------------


def _named(ds: xr.Dataset, component: str, dim: str, values) -> xr.Dataset:
    """``ds`` with the batch axis of a component swept over ``values`` as dim ``dim``: a swept
    field names its dim only where its values differ, so a single value leaves the axis
    unnamed (``<component>_axis0``)."""
    if dim not in ds.dims:
        ds = ds.rename({f"{component}_axis0": dim}).assign_coords({dim: list(values)})
    return ds


def run_group(cfg: Config, su: Setup, progress: bool | None) -> dict[str, np.ndarray]:
    """Every method at every setting: per variable ``final_<var>`` ``(landscape, method,
    option, seed)`` (the last record) and ``curve_<var>`` ``(landscape, method, option, step)``
    (the mean over the evaluation seeds, the second half), ``lr`` ``(method, option, step)``,
    and for the chord prediction the constant runs' river coordinates ``river_coord``
    ``(landscape, peak, seed, step)``; NaN where a method has fewer settings, and over every
    step of a diverged run.

    Compiled programs: one sweep for the constant rates and every WSD decay (a named axis of
    schedules, dims ``(schedule, peak)``) at batch sizes ``B`` and ``M B``; one for the EMA
    decays and the first merge window on the constant rates; one per further merge window (a
    named axis of optimizers); one for schedule-free."""
    n_land = len(su.names)
    opts = options(cfg, su)
    n_opt = max(len(v) for v in opts.values())
    n_steps = su.steps // su.record_every + 1
    evaluation = np.arange(su.seeds) >= su.seeds // 2
    out = {}
    for var in VARIABLES:
        out[f"final_{var}"] = np.full((n_land, len(METHODS), n_opt, su.seeds), np.nan)
        out[f"curve_{var}"] = np.full((n_land, len(METHODS), n_opt, n_steps), np.nan)
    out["lr"] = np.full((len(METHODS), n_opt, n_steps), np.nan)
    kwargs = {
        "seeds": su.seeds,
        "steps": su.steps,
        "record_every": su.record_every,
        "progress": progress,
    }
    peaks = np.array(su.peaks)

    def run(landscape, optimizer, schedule, rates=peaks) -> xr.Dataset:
        """A sweep over the peak ``rates`` (dim ``peak``), every diverged run's records NaN at
        every step."""
        ds = sweep(landscape, optimizer, schedule, **kwargs)
        return _named(results.drop_diverged(ds)[0], "schedule", "peak", rates)

    def values(da: xr.DataArray) -> np.ndarray:
        return np.asarray(da.transpose("landscape", "seed", "step").values, np.float64)

    def put(method: str, j: int, runs: xr.Dataset, prefix: str) -> None:
        """Store ``runs`` (dims ``(landscape, seed, step)``) as setting ``j`` of ``method``; an
        average's excess loss is its loss minus the entropy floor."""
        m = METHODS.index(method)
        for var in VARIABLES:
            name = f"{prefix}{var}"
            if name in runs:
                v = values(runs[name])
            elif var == "excess_loss" and su.entropy is not None:
                v = values(runs[f"{prefix}loss"]) - su.entropy
            else:
                continue
            out[f"final_{var}"][:, m, j] = v[..., -1]
            out[f"curve_{var}"][:, m, j] = v[:, evaluation].mean(1)
        out["lr"][m, j] = values(runs.lr)[0, 0]

    # the constant rates and every WSD decay, at batch sizes B and M B: one compiled program
    warmup = su.warmup
    lines = {"constant": schedules.constant(peaks, warmup_steps=warmup)} | {
        f"wsd_{f:g}": schedules.wsd(peaks, su.steps, f, warmup_steps=warmup, final=0.0)
        for f in cfg.fractions
    }
    ds = run(su.landscapes, su.optimizer, lines)
    ds = _named(ds, "landscape", "batch_size", [1.0, float(cfg.batch_factor)])
    small, large = ds.isel(batch_size=0), ds.isel(batch_size=1)
    n_frac = len(cfg.fractions)
    for i in range(len(peaks)):
        put("constant", i, small.sel(schedule="constant").isel(peak=i), "")
        put("large_batch", i, large.sel(schedule="constant").isel(peak=i), "")
        for k, f in enumerate(cfg.fractions):
            put("wsd", i * n_frac + k, small.sel(schedule=f"wsd_{f:g}").isel(peak=i), "")
    # EMA and merges of the constant-rate runs: EMA with the first merge window, then one
    # optimizer per further window (the stride is static: one compiled program each)
    constant = schedules.constant(peaks, warmup_steps=warmup)
    window = cfg.merge_intervals + 1
    first, *rest = cfg.fractions
    merges = {
        f"merge_{f:g}": su.optimizer.with_averaging(
            window=window, window_every=merge_every(cfg, su.steps, f)
        )
        for f in rest
    }
    with_ema = su.optimizer.with_averaging(
        ema_decay=np.array(cfg.ema_decays),
        window=window,
        window_every=merge_every(cfg, su.steps, first),
    )
    ds = _named(run(su.landscape, with_ema, constant), "optimizer", "ema_decay", cfg.ema_decays)
    n_ema = len(cfg.ema_decays)
    for i in range(len(peaks)):
        put("merge", i * n_frac, ds.isel(ema_decay=0, peak=i), "window_")
        for e in range(n_ema):
            put("ema", i * n_ema + e, ds.isel(ema_decay=e, peak=i), "ema_")
    river = ds.river_coord.isel(ema_decay=0).transpose("landscape", "peak", "seed", "step")
    out["river_coord"] = np.asarray(river.values, np.float64)
    if merges:
        ds = run(su.landscape, merges, constant)
        for i in range(len(peaks)):
            for k, f in enumerate(rest, start=1):
                runs = ds.sel(optimizer=f"merge_{f:g}").isel(peak=i)
                put("merge", i * n_frac + k, runs, "window_")
    # schedule-free, one batch of rates
    rates = np.array(su.schedule_free_peaks)
    ds = run(su.landscape, su.schedule_free, schedules.constant(rates, warmup_steps=warmup), rates)
    for j in range(len(rates)):
        put("schedule_free", j, ds.isel(peak=j), "")
    return out


def tune(final: np.ndarray, tuning: np.ndarray) -> np.ndarray:
    """Per (landscape, method) the setting with the least mean final metric over the tuning
    seeds (a setting with a diverged tuning run is never chosen); ``final``: ``(land, method,
    option, seed)``."""
    mean = final[..., tuning].mean(-1)
    return np.argmin(np.where(np.isfinite(mean), mean, np.inf), axis=-1)


def group_dataset(cfg: Config, su: Setup, runs: dict[str, np.ndarray]) -> xr.Dataset:
    """Finals of every (method, setting, seed), the tuned settings and the mean curves (over the
    evaluation seeds) at the tuned settings."""
    metric = "excess_loss" if su.entropy is not None else "loss"
    tuning = np.arange(su.seeds) < su.seeds // 2
    choice = tune(runs[f"final_{metric}"], tuning)
    land, meth = np.indices(choice.shape)
    data = {}
    for var in VARIABLES:
        data[f"final_{var}"] = (("landscape", "method", "option", "seed"), runs[f"final_{var}"])
        data[f"curve_{var}"] = (
            ("landscape", "method", "step"),
            runs[f"curve_{var}"][land, meth, choice],
        )
    data["curve_lr"] = (("landscape", "method", "step"), runs["lr"][meth, choice])
    opts = options(cfg, su)
    n_opt = runs["final_loss"].shape[2]
    peak, knob = np.full((len(METHODS), n_opt), np.nan), np.full((len(METHODS), n_opt), np.nan)
    for i, m in enumerate(METHODS):
        peak[i, : len(opts[m])] = [p for p, _ in opts[m]]
        knob[i, : len(opts[m])] = [k for _, k in opts[m]]
    data["option_peak"] = (("method", "option"), peak)
    data["option_knob"] = (("method", "option"), knob)
    data["tuned_option"] = (("landscape", "method"), choice)
    data["eval_seed"] = (("seed",), (~tuning).astype(float))
    coords = {
        "landscape": list(su.names),
        "method": list(METHODS),
        "option": np.arange(n_opt),
        "seed": np.arange(su.seeds),
        "step": np.arange(0, su.steps + 1, su.record_every),
    }
    ds = xr.Dataset(data, coords=coords)
    if su.entropy is None:
        ds = ds.assign(chord_hill=chord_prediction(cfg, su, runs["river_coord"], choice))
    return ds


def chord_prediction(cfg: Config, su: Setup, river: np.ndarray, choice: np.ndarray):
    """The merge's chord term per valley and seed at its tuned setting: ``lambda(s_bar) / 2
    |sum_i c(s_i) / n - c(s_bar)|^2`` over the checkpoints' recorded river coordinates
    ``s_i`` (``river``: ``(landscape, peak, seed, step)``; the checkpoints are records when
    their spacing is a multiple of ``record_every``, else NaN)."""
    out = np.full((len(su.names), su.seeds), np.nan)
    settings = options(cfg, su)["merge"]
    for li, name in enumerate(su.names):
        peak, fraction = settings[int(choice[li, METHODS.index("merge")])]
        every = merge_every(cfg, su.steps, fraction)
        if every % su.record_every:
            continue
        step = every // su.record_every
        s = river[li, su.peaks.index(peak), :, ::-step][:, : cfg.merge_intervals + 1]
        member = valley(cfg, name)
        curve = np.asarray(jax.vmap(jax.vmap(member.river_curve))(jnp.asarray(s)))
        s_bar = s.mean(-1)
        at_bar = np.asarray(jax.vmap(member.river_curve)(jnp.asarray(s_bar)))
        chord = curve.mean(-2) - at_bar  # (seed, hills)
        lam = np.asarray(jax.vmap(member.hill_curvatures)(jnp.asarray(s_bar)))
        out[li] = 0.5 * np.sum(lam * chord**2, axis=-1)
    return ("landscape", "seed"), out


def straight_hill_loss(
    cfg: Config, schedule: schedules.Schedule, weights=None, batch_size: float = 1.0
) -> float:
    """Exact expected hill loss on the straight river after ``valley_steps`` updates at the
    point ``sum_t w_t p_t`` (``weights``; default the last iterate): the hill coordinate is a
    1-D noisy quadratic (curvature ``a``, noise ``sigma / sqrt(B)``, starting at 0 on the river)
    and every average is linear in the iterates."""
    member = valley(cfg, "straight")
    lam = np.asarray(member.curvatures)
    sigma = np.asarray(member.noise_std)[1:]
    steps = cfg.valley_steps
    if weights is None:
        weights = np.eye(steps + 1)[-1]
    zero = np.zeros_like(lam)
    rates = schedules.rates(schedule, steps)
    moments = theory.averaged_sgd_quadratic_moments(
        lam, sigma, zero, zero, rates, weights, batch_size=batch_size
    )
    return float(theory.expected_quadratic_loss(lam, moments))


def straight_theory(cfg: Config) -> dict[str, list[float]]:
    """``straight_hill_loss`` for every setting of every method but schedule-free."""
    su = valley_setup(cfg)
    steps = su.steps

    def loss(schedule, weights=None, batch_size=1.0):
        return straight_hill_loss(cfg, schedule, weights, batch_size)

    def constant(peak):
        return schedules.constant(peak, warmup_steps=su.warmup)

    def merge(fraction):
        every = merge_every(cfg, steps, fraction)
        return theory.average_weights(steps, window=cfg.merge_intervals + 1, window_every=every)

    opts = options(cfg, su)
    wsd = [schedules.wsd(p, steps, f, warmup_steps=su.warmup, final=0.0) for p, f in opts["wsd"]]
    return {
        "constant": [loss(constant(p)) for p, _ in opts["constant"]],
        "wsd": [loss(s) for s in wsd],
        "ema": [
            loss(constant(p), theory.average_weights(steps, ema_decay=d)) for p, d in opts["ema"]
        ],
        "merge": [loss(constant(p), merge(f)) for p, f in opts["merge"]],
        "large_batch": [loss(constant(p), batch_size=b) for p, b in opts["large_batch"]],
    }


MERGE_COUNTS = (2, 3, 5, 9, 17, 33, 65)


def merge_count_theory(cfg: Config, peak: float, fraction: float) -> dict[str, list[float]]:
    """Exact expected hill loss on the straight river of merging ``n`` checkpoints evenly spread
    over the last ``fraction`` of the constant-rate run (spacing ``round(f T / (n - 1))``), for
    the ``n`` of ``MERGE_COUNTS`` that fit; with spacings beyond the hill's relaxation time
    ``1 / (eta a)`` the checkpoints are nearly independent and the hill loss is about the noise
    floor over ``n``."""
    steps = cfg.valley_steps
    constant = schedules.constant(peak, warmup_steps=cfg.valley_warmup)
    counts, hills = [], []
    for n in MERGE_COUNTS:
        every = round(fraction * steps / (n - 1))
        if every < 1:
            break
        weights = theory.average_weights(steps, window=n, window_every=every)
        counts.append(n)
        hills.append(straight_hill_loss(cfg, constant, weights))
    return {"checkpoints": counts, "hill_loss": hills}


def compute(cfg: Config, progress: bool | None) -> xr.Dataset:
    parts = []
    if cfg.valleys:
        su = valley_setup(cfg)
        parts.append(group_dataset(cfg, su, run_group(cfg, su, progress)))
    if cfg.bigram:
        su = bigram_setup(cfg)
        part = group_dataset(cfg, su, run_group(cfg, su, progress))
        parts.append(part.assign_attrs(entropy_floor=su.entropy))
    ds = xr.concat(
        parts, dim="landscape", join="outer", data_vars="all", coords="minimal", compat="override"
    )
    assert isinstance(ds, xr.Dataset)
    ds.attrs = {k: v for p in parts for k, v in p.attrs.items()}
    if "straight" in cfg.valleys:
        ds.attrs["straight_theory_hill_loss"] = json.dumps(straight_theory(cfg))
    ds.attrs["config"] = json.dumps(dataclasses.asdict(cfg))
    return ds


# --- summary, table and figure -----------------------------------------------------------------


def _part(ds: xr.Dataset, name: str) -> xr.Dataset:
    """One landscape, without the padding of the outer join (seeds, steps, options)."""
    part = ds.sel(landscape=name)
    has_seed = np.isfinite(part.final_loss.values).any(axis=(0, 1))
    part = part.isel(seed=np.flatnonzero(has_seed))
    has_step = np.isfinite(part.curve_loss.values).any(axis=0)
    return part.isel(step=np.flatnonzero(has_step))


def tuned_finals(part: xr.Dataset, var: str, choice: np.ndarray | None = None) -> np.ndarray:
    """Evaluation-seed finals at each method's tuned setting (or at ``choice``, one setting per
    method): ``(method, seed)``."""
    arr = part[f"final_{var}"].values  # (method, option, seed)
    if choice is None:
        choice = part.tuned_option.values.astype(int)
    ev = part.eval_seed.values == 1
    return arr[np.arange(len(METHODS)), choice][:, ev]


def same_peak_choice(part: xr.Dataset, metric: str) -> tuple[float, np.ndarray]:
    """WSD's tuned peak rate and each method's setting at that rate with the best knob on the
    tuning seeds (-1 where no setting at that rate stayed finite; schedule-free keeps its own
    tuned rate): every method from the same high-rate trajectory, so the comparison isolates
    how each one removes the oscillation from what it can do with another rate."""
    final = part[f"final_{metric}"].values  # (method, option, seed)
    peaks = part.option_peak.values
    choice = part.tuned_option.values.astype(int).copy()
    peak = float(peaks[METHODS.index("wsd"), choice[METHODS.index("wsd")]])
    tuning = part.eval_seed.values == 0
    for i, m in enumerate(METHODS):
        if m == "schedule_free":
            continue
        mean = final[i][:, tuning].mean(-1)
        mean = np.where(np.isclose(peaks[i], peak) & np.isfinite(mean), mean, np.inf)
        choice[i] = int(np.argmin(mean)) if np.isfinite(mean).any() else -1
    return peak, choice


def gain_recovered(const: np.ndarray, method: np.ndarray, wsd: np.ndarray) -> tuple[float, float]:
    """``R = mean(L_c - L_m) / mean(L_c - L_wsd)`` over paired seeds, with its delta-method SE
    ``std(a_i - R b_i) / (sqrt(n) |mean b|)``."""
    a, b = const - method, const - wsd
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2 or b.mean() == 0:
        return float("nan"), float("nan")
    r = a.mean() / b.mean()
    return float(r), float((a - r * b).std(ddof=1) / np.sqrt(a.size) / abs(b.mean()))


def summarize(ds: xr.Dataset, cfg: Config) -> dict:
    out: dict = {
        "tuning": "each method's knob chosen on the tuning half of the seeds by the mean final "
        "loss (bigram: excess loss); everything below is over the other half",
        "z_support": Z_SUPPORT,
    }
    theory_hill = json.loads(ds.attrs.get("straight_theory_hill_loss", "{}"))
    for name in ds.landscape.values:
        name = str(name)
        part = _part(ds, name)
        metric = "excess_loss" if name == "bigram" else "loss"
        variables = (
            ("loss", "excess_loss", "river_loss", "hill_loss")
            if name == "bigram"
            else (
                "loss",
                "river_loss",
                "hill_loss",
            )
        )
        choice = part.tuned_option.values.astype(int)
        peak, knob = part.option_peak.values, part.option_knob.values
        entry: dict = {
            "metric": metric,
            "n_eval_seeds": int((part.eval_seed.values == 1).sum()),
            "tuned": {
                m: {"peak": float(peak[i, choice[i]]), "knob": float(knob[i, choice[i]])}
                for i, m in enumerate(METHODS)
            },
            "settings_tried": {m: int(np.isfinite(peak[i]).sum()) for i, m in enumerate(METHODS)},
        }
        finals = {v: tuned_finals(part, v) for v in variables}
        entry["final"] = {
            v: {
                m: dict(zip(("mean", "se"), mean_se(finals[v][i]), strict=True))
                for i, m in enumerate(METHODS)
            }
            for v in variables
        }
        wsd = METHODS.index("wsd")
        const = METHODS.index("constant")
        vs_wsd: dict = {}
        for v in (metric, "river_loss", "hill_loss"):
            vs_wsd[v] = {}
            for i, m in enumerate(METHODS):
                vs_wsd[v][m] = paired_difference(finals[v][i], finals[v][wsd])
        entry["minus_wsd"] = vs_wsd
        entry["gain_recovered"] = {
            m: dict(
                zip(
                    ("ratio", "se"),
                    gain_recovered(finals[metric][const], finals[metric][i], finals[metric][wsd]),
                    strict=True,
                )
            )
            for i, m in enumerate(METHODS)
        }
        peak_wsd, common = same_peak_choice(part, metric)
        at_peak = tuned_finals(part, metric, np.maximum(common, 0))
        at_peak[common < 0] = np.nan
        entry["at_wsd_rate"] = {
            "peak": peak_wsd,
            "knob": {m: float(knob[i, common[i]]) for i, m in enumerate(METHODS)},
            "final": {
                m: dict(zip(("mean", "se"), mean_se(at_peak[i]), strict=True))
                for i, m in enumerate(METHODS)
            },
            "minus_wsd": {
                m: paired_difference(at_peak[i], at_peak[wsd]) for i, m in enumerate(METHODS)
            },
        }
        entry["matches_wsd"] = {  # not distinguishable from WSD at Z_SUPPORT SEs, or better
            m: bool(vs_wsd[metric][m]["z"] < Z_SUPPORT) for m in METHODS if m != "wsd"
        }
        if name == "straight" and theory_hill:
            merge = entry["tuned"]["merge"]
            entry["merge_checkpoint_count_theory"] = merge_count_theory(
                cfg, merge["peak"], merge["knob"]
            )
            check = {}
            for i, m in enumerate(METHODS):
                if m not in theory_hill:
                    continue
                predicted = theory_hill[m][choice[i]]
                mean, se = mean_se(finals["hill_loss"][i])
                check[m] = {
                    "predicted": predicted,
                    "measured": mean,
                    "se": se,
                    "z": (mean - predicted) / se,
                }
            entry["exact_hill_theory"] = check
        if "chord_hill" in part and np.isfinite(part.chord_hill.values).any():
            chord = part.chord_hill.values[part.eval_seed.values == 1]
            i = METHODS.index("merge")
            noise = theory_hill.get("merge", [np.nan] * len(cfg.fractions))[choice[i]]
            chord_mean, chord_se = mean_se(chord)
            hill, hill_se = mean_se(finals["hill_loss"][i])
            entry["merge_chord"] = {
                "chord_hill": chord_mean,
                "chord_hill_se": chord_se,
                "straight_noise_hill": noise,
                "predicted_hill": chord_mean + noise,
                "measured_hill": hill,
                "measured_hill_se": hill_se,
            }
        out[name] = entry
    return out


def table_lines(summary: dict) -> list[str]:
    """The table as Markdown: per landscape, every method at its tuned setting."""
    knob = {
        "constant": "",
        "wsd": ", decay over the last {:.1%}",
        "ema": ", d = {:.4g}",
        "merge": ", over the last {:.1%}",
        "schedule_free": "",
        "large_batch": ", x{:.0f} batch",
    }
    lines = []
    for name, entry in summary.items():
        if not isinstance(entry, dict) or "final" not in entry:
            continue
        metric = entry["metric"]
        lines += [
            f"### {LANDSCAPE_NAMES.get(name, name)}",
            "",
            f"Mean +- SE over {entry['n_eval_seeds']} evaluation seeds; "
            f"{metric} compared (paired differences to WSD with z-scores).",
            "",
            f"| method | setting | {metric} | river loss | hill loss | {metric} - WSD (z) "
            f"| gain recovered | at WSD's rate {entry['at_wsd_rate']['peak']:.3g}: - WSD (z) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m in METHODS:
            tuned = entry["tuned"][m]
            setting = f"rate {tuned['peak']:.3g}" + knob[m].format(tuned["knob"])
            cells = [METHOD_NAMES[m], setting]
            for v in (metric, "river_loss", "hill_loss"):
                c = entry["final"][v][m]
                cells.append(f"{c['mean']:.5f} +- {c['se']:.5f}")
            d = entry["minus_wsd"][metric][m]
            cells.append("0" if m == "wsd" else f"{d['diff']:+.5f} ({d['z']:+.1f})")
            g = entry["gain_recovered"][m]
            cells.append(f"{g['ratio']:.0%} +- {g['se']:.0%}")
            d = entry["at_wsd_rate"]["minus_wsd"][m]
            cells.append("0" if m == "wsd" else f"{d['diff']:+.5f} ({d['z']:+.1f})")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def plot(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(ds, cfg)
    write_summary(out / "beyond_decay_summary.json", summary, echo=False)
    table = table_lines(summary)
    (out / "beyond_decay_table.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    names = [str(n) for n in ds.landscape.values]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(names), 2, figsize=(12, 3.4 * len(names)), squeeze=False)
        for row, name in zip(axes, names, strict=True):
            part = _part(ds, name)
            metric = summary[name]["metric"]
            ax = row[0]
            steps = part.step.values
            late = steps >= steps[-1] / 2  # the second half, where decays and averages act
            for i, m in enumerate(METHODS):
                curve = part[f"curve_{metric}"].values[i]
                ax.plot(steps[late], curve[late], color=METHOD_COLORS[m], label=METHOD_NAMES[m])
            ax.set_yscale("log")
            shown = part[f"curve_{metric}"].values[:, late]
            shown = shown[np.isfinite(shown) & (shown > 0)]
            if shown.size:
                ax.set_ylim(shown.min() * 0.8, min(shown.max(), 4 * shown.min()) * 1.25)
            ax.set_xlabel("step (second half of the run)")
            unit = "excess loss $L - H$ (nats)" if metric == "excess_loss" else "loss $L(w)$"
            ax.set_ylabel(f"mean {unit}")
            ax.set_title(f"{LANDSCAPE_NAMES.get(name, name)}: tuned methods")
            if name == names[0]:
                ax.legend(fontsize=8, ncol=2)
            ax = row[1]
            x = np.arange(len(METHODS))
            river = [summary[name]["final"]["river_loss"][m]["mean"] for m in METHODS]
            hill = [summary[name]["final"]["hill_loss"][m]["mean"] for m in METHODS]
            total = [summary[name]["final"][metric][m] for m in METHODS]
            if metric == "excess_loss":  # the river loss includes the entropy floor H
                floor = float(ds.attrs["entropy_floor"])
                river = [r - floor for r in river]
            ax.bar(
                x,
                river,
                color="tab:cyan",
                label="river loss" + (" - H" if metric == "excess_loss" else ""),
            )
            ax.bar(x, hill, bottom=river, color="tab:brown", label="hill loss")
            ax.errorbar(
                x,
                [t["mean"] for t in total],
                yerr=[2 * t["se"] for t in total],
                fmt="none",
                color="k",
                capsize=3,
                label="2 SE of the total",
            )
            for xi, m in zip(x, METHODS, strict=True):
                gain = summary[name]["gain_recovered"][m]["ratio"]
                if m not in ("constant", "wsd") and np.isfinite(gain):
                    top = total[xi]["mean"] + 2 * total[xi]["se"]
                    ax.annotate(f"{gain:.0%}", (xi, top), ha="center", va="bottom", fontsize=7)
            ax.set_xticks(x, [METHOD_NAMES[m] for m in METHODS], rotation=20, fontsize=8)
            ax.set_ylabel(f"final {unit}")
            ax.set_title("final loss = river + hill (labels: % of WSD's gain)")
            if name == names[0]:
                ax.legend(fontsize=8)
        fig.tight_layout()
        return save_figure(fig, out / "beyond_decay.png")


main = main_for(__name__, "beyond_decay")

if __name__ == "__main__":
    main()
