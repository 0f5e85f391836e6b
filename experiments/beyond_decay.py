r"""Beyond decay: does averaging, merging, schedule-free or a larger batch do what the decay does?

    python experiments/beyond_decay.py [--quick] [--out DIR]

The river-valley picture says a decay helps by removing the hill oscillation while keeping the
river progress made at the high rate; anything else that removes the oscillation should help as
much.  Methods, all at the same number of steps ``T`` and the same warmup, from the same high
(peak) rate ``eta`` unless stated:

* **constant**: the rate stays at ``eta`` (the reference: no decay);
* **WSD**: a linear decay to 0 over the last fraction ``f`` of the run, ``f`` tuned;
* **EMA**: the exponential moving average of the constant-rate iterates
  (``Optimizer.with_averaging(ema_decay=d)``), ``d`` tuned;
* **merge**: checkpoint merging (WSM): the mean of ``k + 1`` checkpoints of the constant-rate run
  saved every ``f T / k`` steps over its last fraction ``f`` (``with_averaging(window=k + 1,
  window_every=f T / k)``), i.e. over exactly the window in which WSD's decay branch runs from
  the same point: equal compute, no extra step; ``f`` tuned;
* **schedule-free**: ``schedule_free_sgd`` / ``schedule_free_adamw`` at a constant rate after
  the same warmup, evaluated at its averaged point ``x``; the rate tuned over multiples of
  ``eta``;
* **batch xM**: the constant rate with an ``M`` times larger minibatch (gradient-noise variance
  ``/M``): the same steps, ``M`` times the gradient evaluations.

Each tuned knob is chosen on half of the seeds (the *tuning* seeds) by the mean final loss (the
bigram toy: excess loss over its entropy floor), and every reported number comes from the other
half (*evaluation* seeds).  All methods of a landscape use the same seeds and the runner's noise is
counter-based, so the differences between methods are paired (common random numbers); EMA, merge
and constant are even the same trajectory.  The table reports the final loss, river loss and hill
loss (the landscape's decomposition, at the averaged point for EMA, merge and schedule-free), the
paired difference to WSD with its z-score, and the *gain recovered*: ``(L_constant - L_method) /
(L_constant - L_WSD)`` (1: as good as the tuned decay).

Landscapes: the river-valley family (``landscapes.toy``, SGD, gradient noise ``sigma``), three
members that differ only in how the river bends, ``c(s) = b sin(omega s)``: *straight* (``b = 0``),
*toy* (the lab's toy, ``b = 0.15, omega = 1``) and *curved* (``b = 0.3, omega = 3``); and the bigram
toy (``lm.bigram_table``, half the contexts determined, half uniform over ``k`` tokens, Adam).

Theory checked here (see ``rivervalley.theory``):

* *Straight river*: the hill coordinate is an exact 1-D noisy quadratic, and every average is
  linear in the iterates, so the expected hill loss of constant, WSD, EMA, merge and the larger
  batch is exact (``theory.averaged_sgd_quadratic_moments``); the measured hill losses are compared
  with it in standard errors.  To first order on a straight river with a constant drift, the
  uniform average over the window ``[T - fT, T]`` and a linear decay to 0 over the same window
  reach the same river coordinate ``s_{T - fT} + v f T / 2``.
* *Curved river*: the average of points on a bent river lies inside the bend, off the river.  For
  the valley's vertical split the averaged point's hill offset is exactly
  ``sum_i w_i y_i - c(s_bar) = sum_i w_i delta_i + [sum_i w_i c(s_i) - c(s_bar)]`` (``delta_i``
  the iterates' hill offsets): the noise average plus a *chord* term
  ``~ c''(s_bar) Var_w(s) / 2`` set by how far the averaged iterates spread along the river
  (drift and diffusion).  The predicted merge hill loss
  ``lambda/2 (E[chord^2] + Var(noise average))`` uses the chord of the recorded checkpoints and the
  straight river's exact noise term; the decay branch has no chord term (its iterate relaxes onto
  the river where it is).

Outputs: ``beyond_decay.png`` / ``.pdf`` (per landscape: mean loss against step for every method at
its tuned setting, and the final loss split into river and hill loss with 2-SE bars),
``beyond_decay_table.md`` (the table), ``beyond_decay_summary.json`` (everything in the table, the
tuned settings, the theory checks).

Runtime (2 cores): full ~3 min; ``--quick`` ~15 s.
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

from rivervalley import lm, optimizers, schedules, theory
from rivervalley.experiment import main_for, write_summary
from rivervalley.landscapes import Landscape, RiverValley, toy
from rivervalley.plotting import STYLE, save_figure
from rivervalley.runner import sweep

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
AVERAGED = {"ema": "ema", "merge": "window"}  # method -> recorded average prefix
Z_SUPPORT = 3.0


@dataclasses.dataclass(frozen=True)
class Config:
    valleys: tuple[str, ...] = ("straight", "toy", "curved")
    bigram: bool = True
    fractions: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)  # WSD decay / merge window, of T
    merge_intervals: int = 8  # k: k + 1 checkpoints every f T / k steps
    ema_decays: tuple[float, ...] = (0.9, 0.97, 0.99, 0.997, 0.999)
    schedule_free_factors: tuple[float, ...] = (0.5, 1.0, 1.5)  # x the peak
    batch_factor: int = 4
    # the river valleys
    valley_steps: int = 4000
    valley_warmup: int = 100
    valley_peak: float = 0.08  # below 2 / (a (1 + b^2 omega^2)) = 0.11 of the curved member
    valley_noise: float = 0.3
    valley_seeds: int = 256
    valley_record_every: int = 25
    # the bigram toy
    bigram_steps: int = 4000
    bigram_warmup: int = 100
    bigram_peak: float = 0.04
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
            merge_intervals=4,
            ema_decays=(0.98, 0.995),
            schedule_free_factors=(1.0,),
            valley_steps=1000,
            valley_warmup=50,
            valley_seeds=64,
            valley_record_every=25,  # odd: no unrolled inner loop, half the compile time
            bigram_steps=400,
            bigram_warmup=20,
            vocab_size=16,
            random_support=4,
            bigram_seeds=4,
            bigram_record_every=25,
        )
    return Config()


# --- setup -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Setup:
    """What one group of landscapes runs with: ``landscape`` (batched over ``names`` for the
    valleys), ``landscapes`` (the same at batch size ``B`` and then at ``batch_factor x B``, one
    batch), the optimizer and its schedule-free counterpart, steps, warmup, peak, seeds, record
    spacing and (language models) the entropy floor ``H``."""

    names: tuple[str, ...]
    landscape: Landscape
    landscapes: Landscape
    optimizer: optimizers.Optimizer
    schedule_free: optimizers.Optimizer
    steps: int
    warmup: int
    peak: float
    seeds: int
    record_every: int
    entropy: float | None = None


def _stack(items):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *items)


def valley(cfg: Config, name: str, batch_size: float = 1.0) -> RiverValley:
    bend = VALLEYS[name]
    return toy(
        noise_std=cfg.valley_noise,
        batch_size=batch_size,
        amplitude=bend["amplitude"],
        frequency=bend["frequency"],
    )


def valley_setup(cfg: Config) -> Setup:
    """The valley members as one batched landscape (one compiled program for all)."""
    return Setup(
        names=cfg.valleys,
        landscape=_stack([valley(cfg, n) for n in cfg.valleys]),
        landscapes=_stack([valley(cfg, n, b) for b in (1, cfg.batch_factor) for n in cfg.valleys]),
        optimizer=optimizers.sgd(),
        schedule_free=optimizers.schedule_free_sgd(),
        steps=cfg.valley_steps,
        warmup=cfg.valley_warmup,
        peak=cfg.valley_peak,
        seeds=cfg.valley_seeds,
        record_every=cfg.valley_record_every,
    )


def bigram_setup(cfg: Config) -> Setup:
    mix = [(lm.deterministic(), 0.5), (lm.uniform(cfg.random_support), 0.5)]
    corpus = lm.bigram_corpus(jax.random.key(cfg.corpus_seed), cfg.vocab_size, mix)
    return Setup(
        names=("bigram",),
        landscape=lm.bigram_table(corpus, batch_size=cfg.batch_size),
        landscapes=lm.bigram_table(
            corpus, batch_size=np.array([cfg.batch_size, cfg.batch_size * cfg.batch_factor])
        ),
        optimizer=optimizers.adam(),
        schedule_free=optimizers.schedule_free_adamw(),
        steps=cfg.bigram_steps,
        warmup=cfg.bigram_warmup,
        peak=cfg.bigram_peak,
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


def options(cfg: Config, su: Setup) -> dict[str, list[float]]:
    """The tuned knob's values per method (one value for the untuned ones)."""
    return {
        "constant": [su.peak],
        "wsd": list(cfg.fractions),
        "ema": list(cfg.ema_decays),
        "merge": list(cfg.fractions),
        "schedule_free": [f * su.peak for f in cfg.schedule_free_factors],
        "large_batch": [float(cfg.batch_factor)],
    }


# --- the sweeps --------------------------------------------------------------------------------


def _grid(ds: xr.Dataset, var: str, n_land: int, n_opt: int, n_sched: int) -> np.ndarray:
    """A variable as ``(landscape, optimizer, schedule, seed, step)`` (the runner's run order)."""
    v = np.asarray(ds[var].values, np.float64)
    v = np.where(ds.diverged.values[:, None], np.nan, v)
    return v.reshape(n_land, n_opt, n_sched, -1, v.shape[-1])


def run_group(cfg: Config, su: Setup, progress: bool | None) -> dict[str, np.ndarray]:
    """Every method's recorded curves: per variable an array ``(landscape, method, option,
    seed, step)`` (NaN where a method has fewer options), ``lr`` ``(method, option, step)`` and,
    for the chord prediction, the constant run's river coordinates ``(landscape, seed, step)``.

    Compiled programs: one sweep runs the constant rate and every WSD decay (one rate table)
    with the EMA batch and the first merge window at batch sizes ``B`` and ``M B``; one sweep per
    further merge window; one for schedule-free."""
    n_land = len(su.names)
    opts = options(cfg, su)
    n_opt = max(len(v) for v in opts.values())
    n_steps = su.steps // su.record_every + 1
    out = {v: np.full((n_land, len(METHODS), n_opt, su.seeds, n_steps), np.nan) for v in VARIABLES}
    out["lr"] = np.full((len(METHODS), n_opt, n_steps), np.nan)
    kwargs = {
        "seeds": su.seeds,
        "steps": su.steps,
        "record_every": su.record_every,
        "progress": progress,
    }

    def put(method, j, ds, prefix, shape, index):
        """Store run block ``index`` of ``ds`` (runs as ``shape + (seed,)``) as method option
        ``j``; an average's excess loss is its loss minus the entropy floor."""
        for var in VARIABLES:
            name = f"{prefix}{var}"
            if name in ds:
                values = _grid(ds, name, *shape)[index]
            elif var == "excess_loss" and su.entropy is not None:
                values = _grid(ds, f"{prefix}loss", *shape)[index] - su.entropy
            else:
                continue
            out[var][:, METHODS.index(method), j] = values
        out["lr"][METHODS.index(method), j] = _grid(ds, "lr", *shape)[index][0, 0]

    # the constant rate and every WSD decay, x EMA decays and the first merge, x batch sizes
    constant = schedules.constant(su.peak, warmup_steps=su.warmup)
    lines = [constant] + [
        schedules.wsd(su.peak, su.steps, f, warmup_steps=su.warmup, final=0.0)
        for f in cfg.fractions
    ]
    table = schedules.tabulated(np.stack([schedules.rates(s, su.steps) for s in lines]))
    averaging = su.optimizer.with_averaging(
        ema_decay=np.array(cfg.ema_decays),
        window=cfg.merge_intervals + 1,
        window_every=merge_every(cfg, su.steps, cfg.fractions[0]),
    )
    ds = sweep(su.landscapes, averaging, table, **kwargs)
    shape = (2 * n_land, len(cfg.ema_decays), len(lines))
    small = slice(0, n_land)  # the landscapes at batch size B, then at M B
    put("constant", 0, ds, "", shape, np.s_[small, 0, 0])
    put("merge", 0, ds, "window_", shape, np.s_[small, 0, 0])
    put("large_batch", 0, ds, "", shape, np.s_[n_land:, 0, 0])
    for j in range(len(cfg.fractions)):
        put("wsd", j, ds, "", shape, np.s_[small, 0, 1 + j])
    for i in range(len(cfg.ema_decays)):
        put("ema", i, ds, "ema_", shape, np.s_[small, i, 0])
    out["river_coord"] = _grid(ds, "river_coord", *shape)[small, 0, 0]
    # the further merge windows, on the constant rate
    for j, fraction in enumerate(cfg.fractions[1:], start=1):
        every = merge_every(cfg, su.steps, fraction)
        opt = su.optimizer.with_averaging(window=cfg.merge_intervals + 1, window_every=every)
        ds = sweep(su.landscape, opt, constant, **kwargs)
        put("merge", j, ds, "window_", (n_land, 1, 1), np.s_[:, 0, 0])
    # schedule-free, one batch of rates
    rates = np.array(opts["schedule_free"])
    sf = schedules.constant(rates, warmup_steps=su.warmup)
    ds = sweep(su.landscape, su.schedule_free, sf, **kwargs)
    for j in range(len(rates)):
        put("schedule_free", j, ds, "", (n_land, 1, len(rates)), np.s_[:, 0, j])
    return out


def tune(final: np.ndarray, tuning: np.ndarray) -> np.ndarray:
    """Per (landscape, method) the option with the least mean final metric over the tuning seeds
    (a setting with a diverged tuning run is never chosen); ``final``: ``(land, method, option,
    seed)``."""
    mean = final[..., tuning].mean(-1)
    return np.argmin(np.where(np.isfinite(mean), mean, np.inf), axis=-1)


def group_dataset(cfg: Config, su: Setup, curves: dict[str, np.ndarray]) -> xr.Dataset:
    """Finals of every (method, option, seed), tuned options and the tuned mean curves (over the
    evaluation seeds)."""
    metric = "excess_loss" if su.names == ("bigram",) else "loss"
    tuning = np.arange(su.seeds) < su.seeds // 2
    choice = tune(curves[metric][..., -1], tuning)
    land, meth = np.indices(choice.shape)
    data = {}
    for var in VARIABLES:
        data[f"final_{var}"] = (
            ("landscape", "method", "option", "seed"),
            curves[var][..., -1],
        )
        tuned = curves[var][land, meth, choice][..., ~tuning, :]  # (land, method, seed, step)
        data[f"curve_{var}"] = (("landscape", "method", "step"), tuned.mean(-2))
    first = choice[0]
    data["curve_lr"] = (("method", "step"), curves["lr"][np.arange(len(METHODS)), first])
    opts = options(cfg, su)
    n_opt = curves["loss"].shape[2]
    values = np.full((len(METHODS), n_opt), np.nan)
    for i, m in enumerate(METHODS):
        values[i, : len(opts[m])] = opts[m]
    data["option_value"] = (("method", "option"), values)
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
    if "river_coord" in curves and su.names != ("bigram",):
        ds = ds.assign(chord_hill=chord_prediction(cfg, su, curves["river_coord"], choice))
    return ds


def chord_prediction(cfg: Config, su: Setup, river: np.ndarray, choice: np.ndarray):
    """The merge's chord term per valley and seed at its tuned window: ``lambda(s_bar) / 2
    (sum_i c(s_i) / n - c(s_bar))^2`` over the checkpoints' recorded river coordinates
    ``s_i`` (the checkpoints are records: their spacing is a multiple of ``record_every``)."""
    out = np.full((len(su.names), su.seeds), np.nan)
    for li, name in enumerate(su.names):
        fraction = cfg.fractions[int(choice[li, METHODS.index("merge")])]
        every = merge_every(cfg, su.steps, fraction)
        if every % su.record_every:
            continue
        step = every // su.record_every
        s = river[li, :, ::-step][:, : cfg.merge_intervals + 1]  # (seed, checkpoint)
        member = valley(cfg, name)
        curve = np.asarray(jax.vmap(jax.vmap(member.river_curve))(jnp.asarray(s)))
        s_bar = s.mean(-1)
        at_bar = np.asarray(jax.vmap(member.river_curve)(jnp.asarray(s_bar)))
        chord = curve.mean(-2) - at_bar  # (seed, hills)
        lam = np.asarray(jax.vmap(member.hill_curvatures)(jnp.asarray(s_bar)))
        out[li] = 0.5 * np.sum(lam * chord**2, axis=-1)
    return ("landscape", "seed"), out


def straight_theory(cfg: Config) -> dict[str, list[float]]:
    """Exact expected hill loss on the straight river per method and option: the hill coordinate
    is a 1-D noisy quadratic (curvature ``a``, noise ``sigma``, starting at 0 on the river)."""
    member = valley(cfg, "straight")
    lam = np.asarray(member.curvatures)
    sigma = np.asarray(member.noise_std)[1:]
    su = valley_setup(cfg)
    steps = su.steps
    zero = np.zeros_like(lam)

    def loss(rates, weights=None, batch_size=1.0):
        if weights is None:
            weights = np.eye(steps + 1)[-1]
        moments = theory.averaged_sgd_quadratic_moments(
            lam, sigma, zero, zero, rates, weights, batch_size=batch_size
        )
        return float(theory.expected_quadratic_loss(lam, moments))

    constant = np.asarray(
        schedules.rates(schedules.constant(su.peak, warmup_steps=su.warmup), steps)
    )
    out: dict[str, list[float]] = {"constant": [loss(constant)]}
    out["wsd"] = [
        loss(
            np.asarray(
                schedules.rates(schedules.wsd(su.peak, steps, f, warmup_steps=su.warmup), steps)
            )
        )
        for f in cfg.fractions
    ]
    out["ema"] = [
        loss(constant, np.asarray(theory.average_weights(steps, ema_decay=d)))
        for d in cfg.ema_decays
    ]
    out["merge"] = [
        loss(
            constant,
            np.asarray(
                theory.average_weights(
                    steps,
                    window=cfg.merge_intervals + 1,
                    window_every=merge_every(cfg, steps, f),
                )
            ),
        )
        for f in cfg.fractions
    ]
    out["large_batch"] = [loss(constant, batch_size=float(cfg.batch_factor))]
    return out


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


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))


def tuned_finals(part: xr.Dataset, var: str) -> np.ndarray:
    """Evaluation-seed finals at each method's tuned option: ``(method, seed)``."""
    arr = part[f"final_{var}"].values  # (method, option, seed)
    choice = part.tuned_option.values.astype(int)
    ev = part.eval_seed.values == 1
    return arr[np.arange(len(METHODS)), choice][:, ev]


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
        values = part.option_value.values
        entry: dict = {
            "metric": metric,
            "n_eval_seeds": int((part.eval_seed.values == 1).sum()),
            "tuned": {m: float(values[i, choice[i]]) for i, m in enumerate(METHODS)},
            "options": {
                m: [float(v) for v in values[i] if np.isfinite(v)] for i, m in enumerate(METHODS)
            },
        }
        finals = {v: tuned_finals(part, v) for v in variables}
        entry["final"] = {
            v: {
                m: dict(zip(("mean", "se"), _mean_se(finals[v][i]), strict=True))
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
                mean, se = _mean_se(finals[v][i] - finals[v][wsd])
                z = mean / se if se > 0 else float("nan")
                vs_wsd[v][m] = {"diff": mean, "se": se, "z": z}
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
        entry["matches_wsd"] = {  # not distinguishable from WSD at Z_SUPPORT SEs, or better
            m: bool(vs_wsd[metric][m]["z"] < Z_SUPPORT) for m in METHODS if m != "wsd"
        }
        if name == "straight" and theory_hill:
            check = {}
            for i, m in enumerate(METHODS):
                if m not in theory_hill:
                    continue
                predicted = theory_hill[m][choice[i]]
                mean, se = _mean_se(finals["hill_loss"][i])
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
            chord_mean, chord_se = _mean_se(chord)
            hill, hill_se = _mean_se(finals["hill_loss"][i])
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
    setting = {
        "constant": "rate {:.3g}",
        "wsd": "decay over last {:.0%}",
        "ema": "d = {:.4g}",
        "merge": "last {:.0%}",
        "schedule_free": "rate {:.3g}",
        "large_batch": "x{:.0f} batch",
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
            "| gain recovered |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in METHODS:
            cells = [METHOD_NAMES[m], setting[m].format(entry["tuned"][m])]
            for v in (metric, "river_loss", "hill_loss"):
                c = entry["final"][v][m]
                cells.append(f"{c['mean']:.5f} +- {c['se']:.5f}")
            d = entry["minus_wsd"][metric][m]
            cells.append("0" if m == "wsd" else f"{d['diff']:+.5f} ({d['z']:+.1f})")
            g = entry["gain_recovered"][m]
            cells.append(f"{g['ratio']:.0%} +- {g['se']:.0%}")
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
            for i, m in enumerate(METHODS):
                curve = part[f"curve_{metric}"].values[i]
                ax.plot(steps, curve, color=METHOD_COLORS[m], label=METHOD_NAMES[m], lw=1.3)
            ax.set_yscale("log")
            start = len(steps) // 4
            finite = np.concatenate([part[f"curve_{metric}"].values[:, start:].ravel()])
            finite = finite[np.isfinite(finite) & (finite > 0)]
            if finite.size:
                ax.set_ylim(finite.min() * 0.8, finite.max() * 1.25)
            ax.set_xlabel("step")
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
            ax.set_xticks(x, [METHOD_NAMES[m] for m in METHODS], rotation=20, fontsize=8)
            ax.set_ylabel(f"final {unit}")
            ax.set_title("final loss split into river and hill")
            ax.legend(fontsize=8)
        fig.tight_layout()
        return save_figure(fig, out / "beyond_decay.png")


main = main_for(__name__, "beyond_decay")

if __name__ == "__main__":
    main()
