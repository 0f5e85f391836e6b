r"""WSD-S vs WSD vs cyclic cosine vs tuned cosine: checkpoints at several budgets of one run.

    python experiments/wsd_s_study.py [--quick] [--out DIR]

The paper's claim (notes, section 5): when checkpoints are wanted at several budgets, WSD-S
matches or beats WSD, which beats cyclic cosine: at each budget, final loss of
WSD-S <= WSD < cyclic cosine, the cost of each method counted in steps.

Budgets: the authors' reference WSD-S configuration (warmup 2,000, budgets ending at 12,500,
26,250 and 53,750 steps, a linear decay over the last 10% of each span ``(E_{k-1}, E_k]`` down to
``0.1 x peak``) scaled down by ``scale`` (full: 12.5, i.e. warmup 160, budgets 1,000, 2,100 and
4,300, decays of 100, 110 and 220 steps; ``--quick``: 25).  Methods, every rate ending a budget
at ``0.1 x peak``:

* **WSD**: one main branch at the peak; for budget ``k`` a decay branch forked from it, with
  the same decay window as WSD-S's decay ``k`` (so the two differ only in what happens after a
  decay: WSD returns to the main branch, WSD-S carries on from the decayed iterate).  A branch
  shares the main branch's rates up to its fork, and the runner's noise is counter-based, so it
  shares the main branch's iterates bit for bit (checked by the tests); its own compute is the
  updates after the fork.  The linear window ``[E - D, E]`` is still at the peak at its first
  update, so a decay of ``D`` steps costs ``D - 1`` updates off the main line.
* **WSD-S** (``schedules.wsd_s``): one line; at each budget decay, then jump back to the peak.
* **Cyclic cosine** (``schedules.cyclic_cosine``): one line; one cosine cycle per budget.
* **Cosine** (``schedules.cosine``), one run per budget, exactly that long.

Steps spent to deliver every budget: WSD ``E_K + sum_{k<K} (E_k - fork_k)``, WSD-S and cyclic
cosine ``E_K``, cosine ``sum_k E_k`` (counted from the rate tables).

The lines are one dict of named schedules (``line_schedules``: ``wsd/1`` ... ``cosine/3``), each
batched over the peaks (dim ``peak``), so every method and peak of one landscape runs in one
``sweep`` and one compiled program (the schedule kinds behind one switch; the lines whose budget
ends before the last run with ``horizon="free"`` and are read at their budget); every run of a
landscape uses the same seeds (common random numbers).

Peak rates are tuned *per method*, not per budget, for the three methods that deliver every
budget from one line (one main line has one peak: WSD's branches inherit it); the cosine baseline
is one run per budget and is tuned *per budget*, which favours it.  The criterion: the mean over
budgets of the log of the mean final loss (excess loss for the bigram toy), over the *tuning*
half of the seeds; every number reported comes from the other half (the *evaluation* seeds), so
the selection does not bias them.

Landscapes:

* **river valley**: the lab's toy ``landscapes.toy`` (softplus river, hill curvature 10, river
  amplitude 0.15, gradient noise ``sigma = 0.3``), SGD;
* **bigram toy**: ``lm.bigram_table`` over ``V`` tokens, half the contexts determined, half
  uniform over ``k`` tokens, minibatches of ``B`` pairs, Adam (as the paper's language models).

Outputs: ``wsd_s_study.png`` and ``.pdf`` (per landscape: mean loss curves of every method at
its tuned peak with budget markers, the final loss against the budget with 2-SE bars, and the
table of paired differences with the steps spent), ``wsd_s_study_summary.json`` (tuned peaks, final
losses with SEs per budget and method, paired differences WSD-S - WSD, WSD - cyclic cosine and
WSD-S - cosine with z-scores, steps spent, and which orderings hold at ``|z| > 3``: a strict
ordering is "supported" only beyond 3 paired standard errors).

What the full run finds (river valley: 512 seeds, 256 of them for evaluation; bigram toy: V = 64,
k = 8, 16 seeds, 8 for evaluation; differences paired over seeds):

* river valley: every method's tuned peak is 0.18, the grid's largest, just below the stability
  limit (``eta a (1 + b^2)`` = 1.84 of 2): river progress pays for the hill noise.  WSD beats
  cyclic cosine at every budget (loss 0.0081 / 0.0045 / 0.0023 vs 0.0118 / 0.0063 / 0.0033,
  z = -13, -9, -7) and so does WSD-S (z = -13, -9, -7); both beat even the cosine tuned to each
  budget, which spends 7,400 steps.  WSD-S vs WSD: the same at the first budget (the same
  rates: bitwise the same runs, z undefined), then WSD-S is *above* WSD by 1.5% and 1.9%
  (z = +2.5, +2.9): "WSD-S <= WSD" is not supported (WSD-S matches WSD within 2%, it does not
  beat it), as the exact noisy quadratic predicts (WSD-S's earlier decays cost river progress);
  WSD spends 4,508 steps, WSD-S 4,300.
* bigram toy (Adam): the ordering is reversed.  WSD (tuned peak 0.04) ends *above* cyclic cosine
  (tuned 0.08) at every budget (excess loss 0.030 / 0.018 / 0.011 vs 0.020 / 0.010 / 0.0054,
  z = +29, +17, +43) and above the tuned cosines; WSD-S matches WSD to 0.5% (above it, z = +340
  and +200 on nearly identical paired runs).  The relaxation split says why: 92% of WSD's final
  excess is hill loss (0.0105 of 0.0113), mostly in the random contexts (0.022 vs 0.0007 for the
  determined ones): a decay over 10% of each span to 0.1 x peak is too short and too shallow to
  remove the random contexts' noise floor, while the cosines spend long stretches at low rates.

Runtime: 2.5-5 min wall on 2 cores shared with other jobs (about 2 min CPU); ``--quick``: ~15 s
CPU, mostly its two compiles.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.ticker import NullFormatter

from rivervalley import lm, optimizers, schedules
from rivervalley.experiment import main_for, write_summary
from rivervalley.landscapes import toy
from rivervalley.plotting import SCHEDULE_COLORS, SCHEDULE_NAMES, STYLE, save_figure
from rivervalley.runner import sweep
from rivervalley.stats import mean_se, paired_difference

METHODS = ("wsd", "wsd_s", "cyclic_cosine", "cosine")
LANDSCAPE_NAMES = {"river_valley": "river valley (toy, SGD)", "bigram": "bigram toy (Adam)"}
# per landscape: the variable that is tuned and compared (the bigram loss has a floor H > 0)
METRIC = {"river_valley": "loss", "bigram": "excess_loss"}
VARIABLES = {  # reported per method and budget; the curves are of the first three
    "river_valley": ("loss", "river_loss", "hill_loss"),
    "bigram": ("loss", "excess_loss", "hill_loss", "excess_determined", "excess_random"),
}
ALL_VARIABLES = (
    "loss",
    "river_loss",
    "hill_loss",
    "excess_loss",
    "excess_determined",
    "excess_random",
)
PAIRS = (
    ("wsd_s", "wsd"),
    ("wsd", "cyclic_cosine"),
    ("wsd_s", "cyclic_cosine"),
    ("wsd_s", "cosine"),
)
Z_SUPPORT = 3.0  # an ordering is "supported" when its paired z-score exceeds this


@dataclasses.dataclass(frozen=True)
class Config:
    scale: float = 12.5  # reference steps per step here
    reference_budgets: tuple[int, ...] = (12_500, 26_250, 53_750)
    reference_warmup: int = 2_000
    decay_fraction: float = 0.1  # of each span (E_{k-1}, E_k]
    final_fraction: float = 0.1  # every decay ends at final_fraction x peak
    landscapes: tuple[str, ...] = ("river_valley", "bigram")
    valley_noise: float = 0.3
    valley_peaks: tuple[float, ...] = (0.04, 0.07, 0.1, 0.13, 0.16, 0.18)  # eta a(1+b^2) < 2
    valley_seeds: int = 512
    valley_record_every: int = 10
    vocab_size: int = 64
    random_support: int = 8
    batch_size: int = 32
    bigram_peaks: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32)  # Adam
    bigram_seeds: int = 16
    bigram_record_every: int = 50
    corpus_seed: int = 0


def config(quick: bool) -> Config:
    if quick:
        return Config(
            scale=25.0,
            valley_peaks=(0.05, 0.1, 0.15),
            valley_seeds=64,
            vocab_size=16,
            random_support=4,
            bigram_peaks=(0.02, 0.05),
            bigram_seeds=4,
            valley_record_every=25,  # odd: no unrolled inner loop, half the compile time
            bigram_record_every=25,
        )
    return Config()


# --- budgets, rate tables and step accounting -------------------------------------------------


def budgets(cfg: Config) -> tuple[int, ...]:
    """Budget ends ``E_k`` (steps), the reference budgets scaled down."""
    ends = tuple(round(b / cfg.scale) for b in cfg.reference_budgets)
    for e, ref in zip(ends, cfg.reference_budgets, strict=True):
        assert math.isclose(e * cfg.scale, ref), f"scale {cfg.scale} does not divide {ref}"
    return ends


def warmup(cfg: Config) -> int:
    return round(cfg.reference_warmup / cfg.scale)


def decay_lengths(cfg: Config) -> tuple[float, ...]:
    """Decay ``k`` spans the last ``decay_fraction`` of ``(E_{k-1}, E_k]`` (WSD-S's convention;
    WSD's branch ``k`` uses the same window)."""
    ends = (0, *budgets(cfg))
    return tuple(cfg.decay_fraction * (b - a) for a, b in itertools.pairwise(ends))


def line_names(cfg: Config) -> tuple[str, ...]:
    """The runs of one peak: WSD branch k (branch K is the main line, then its last decay),
    WSD-S, cyclic cosine, cosine run k."""
    k = range(1, len(cfg.reference_budgets) + 1)
    return (*(f"wsd/{i}" for i in k), "wsd_s", "cyclic_cosine", *(f"cosine/{i}" for i in k))


def line_schedules(cfg: Config, peak: float | Sequence[float]) -> dict[str, schedules.Schedule]:
    """The schedule of every line (``line_names`` order), for one peak or batched over a list
    of peaks (one batch axis: dim ``peak``, with ``final = final_fraction x peak`` along it)."""
    ends, w = budgets(cfg), warmup(cfg)
    peaks = np.asarray(peak, dtype=float)
    final: Any = cfg.final_fraction * peaks  # an array: the constructors batch over it
    out: dict[str, schedules.Schedule] = {}
    for i, (end, d) in enumerate(zip(ends, decay_lengths(cfg), strict=True), start=1):
        out[f"wsd/{i}"] = schedules.wsd(peaks, end, d / end, warmup_steps=w, final=final)
    out["wsd_s"] = schedules.wsd_s(peaks, ends, cfg.decay_fraction, warmup_steps=w, final=final)
    out["cyclic_cosine"] = schedules.cyclic_cosine(peaks, ends, warmup_steps=w, final=final)
    for i, end in enumerate(ends, start=1):
        out[f"cosine/{i}"] = schedules.cosine(peaks, end, warmup_steps=w, final=final)
    return out


@functools.cache
def rate_table(cfg: Config, peak: float) -> np.ndarray:
    """Rates of every line (``line_names`` order) for updates ``0 .. E_K - 1``: shape
    ``(lines, E_K)``, read-only (cached); for the step accounting and the theory."""
    steps = budgets(cfg)[-1]
    lines = line_schedules(cfg, peak).values()
    table = np.stack([np.asarray(schedules.rates(s, steps)) for s in lines])
    table.flags.writeable = False
    return table


def fork_steps(cfg: Config, peak: float = 1.0) -> tuple[int, ...]:
    """For WSD branch k: the number of updates it shares with the main line (branch K), i.e. the
    first update whose rate differs.  The last branch *is* the main line: its fork is ``E_K``."""
    rates = rate_table(cfg, peak)
    main = rates[len(cfg.reference_budgets) - 1]
    forks = []
    for k, end in enumerate(budgets(cfg)):
        differ = np.flatnonzero(rates[k, :end] != main[:end])
        forks.append(int(differ[0]) if differ.size else end)
    return tuple(forks)


def steps_spent(cfg: Config) -> dict[str, int]:
    """Updates each method spends to deliver every budget (see the module docstring)."""
    ends, forks = budgets(cfg), fork_steps(cfg)
    return {
        "wsd": ends[-1] + sum(e - f for e, f in zip(ends[:-1], forks[:-1], strict=True)),
        "wsd_s": ends[-1],
        "cyclic_cosine": ends[-1],
        "cosine": sum(ends),
    }


# --- the landscapes and the sweeps ------------------------------------------------------------


def setup(cfg: Config, name: str):
    """(landscape, optimizer, peaks, seeds, record_every) of a landscape."""
    if name == "river_valley":
        valley = toy(noise_std=cfg.valley_noise)
        return valley, optimizers.sgd(), cfg.valley_peaks, cfg.valley_seeds, cfg.valley_record_every
    if name == "bigram":
        mix = [(lm.deterministic(), 0.5), (lm.uniform(cfg.random_support), 0.5)]
        corpus = lm.bigram_corpus(jax.random.key(cfg.corpus_seed), cfg.vocab_size, mix)
        model = lm.bigram_table(corpus, batch_size=cfg.batch_size)
        return model, optimizers.adam(), cfg.bigram_peaks, cfg.bigram_seeds, cfg.bigram_record_every
    raise ValueError(f"unknown landscape {name!r}; allowed: {', '.join(LANDSCAPE_NAMES)}")


def run_landscape(cfg: Config, name: str, progress: bool | None) -> xr.Dataset:
    """One sweep: every line at every peak on one landscape, every seed; dims ``(schedule, peak,
    seed, step)``, the lines (``line_names``) as coordinate ``schedule``."""
    landscape, optimizer, peaks, seeds, record_every = setup(cfg, name)
    for e in budgets(cfg):
        assert e % record_every == 0, f"budget {e} is not a recorded step"
    ds = sweep(
        landscape,
        optimizer,
        line_schedules(cfg, peaks),
        seeds=seeds,
        steps=budgets(cfg)[-1],
        record_every=record_every,
        horizon="free",  # WSD branches 1.., cosine runs 1..: read at their budget E_k < E_K
        progress=progress,
    )
    # the peaks as configured (float64), so ``ds.sel(peak=p)`` finds a configured ``p``
    np.testing.assert_allclose(ds.peak.values, peaks, rtol=1e-6)
    ds = ds.assign_coords(peak=np.asarray(peaks, float))
    if "class_excess" in ds:  # the bigram toy: determined contexts first, then random ones
        ds["excess_determined"] = ds.class_excess.isel(context_class=0)
        ds["excess_random"] = ds.class_excess.isel(context_class=1)
    return ds


def _method_line(method: str, k: int) -> str:
    """The run whose record at budget ``k`` (1-based) is the method's checkpoint."""
    return f"{method}/{k}" if method in ("wsd", "cosine") else method


def finals(ds: xr.Dataset, cfg: Config) -> dict[str, np.ndarray]:
    """Per variable, the checkpoints: shape ``(peak, method, budget, seed)`` (NaN where the
    landscape does not record the variable, or where the run diverged)."""
    k = range(1, len(budgets(cfg)) + 1)
    line = xr.DataArray(
        [[_method_line(m, i) for i in k] for m in METHODS], dims=("method", "budget")
    )
    at = xr.DataArray([list(budgets(cfg))] * len(METHODS), dims=("method", "budget"))
    shape = (ds.sizes["peak"], len(METHODS), len(k), ds.sizes["seed"])
    out = {}
    for var in ALL_VARIABLES:
        if var not in ds:
            out[var] = np.full(shape, np.nan)
            continue
        checkpoint = ds[var].where(~ds.diverged).sel(schedule=line, step=at)
        out[var] = np.asarray(checkpoint.transpose("peak", "method", "budget", "seed"), np.float64)
    return out


def tune(metric: np.ndarray, tune_mask: np.ndarray) -> np.ndarray:
    """Tuned peak index per (method, budget) from ``metric`` of shape
    ``(peak, method, budget, seed)``: per method for the single-line methods (mean over budgets of
    the log mean loss), per budget for cosine; on the tuning seeds; a peak with a diverged
    tuning run is never chosen."""
    mean = metric[..., tune_mask].mean(-1)  # NaN if any tuning run diverged
    log = np.where(np.isfinite(mean) & (mean > 0), np.log(np.abs(mean) + 1e-300), np.inf)
    choice = np.empty(mean.shape[1:], int)
    for m, method in enumerate(METHODS):
        if method == "cosine":
            choice[m] = np.argmin(log[:, m], axis=0)
        else:
            choice[m] = np.argmin(log[:, m].mean(-1))
    return choice


def landscape_dataset(cfg: Config, name: str, ds: xr.Dataset) -> xr.Dataset:
    """One landscape's part of the result from its sweep (``run_landscape``): every checkpoint
    at every peak, the tuned peaks, and the curves at the tuned peaks."""
    _, _, peaks, seeds, _ = setup(cfg, name)
    per_var = finals(ds, cfg)  # (peak, method, budget, seed)
    tune_mask = np.arange(seeds) < seeds // 2
    choice = tune(per_var[METRIC[name]], tune_mask)
    lines = line_names(cfg)
    # curves of every line at its method's tuned peak (cosine/k at budget k's), evaluation seeds
    curve_peak = []
    for line in lines:
        method, _, k = line.partition("/")
        curve_peak.append(int(choice[METHODS.index(method), int(k) - 1 if k else 0]))
    at_tuned = ds.sel(schedule=list(lines)).isel(peak=xr.DataArray(curve_peak, dims="schedule"))
    curves = {
        f"curve_{var}": (
            ("line", "seed", "step"),
            np.asarray(at_tuned[var].transpose("schedule", "seed", "step"), np.float64),
        )
        for var in VARIABLES[name]
    }
    rates = at_tuned.lr.isel(seed=0).transpose("schedule", "step").values
    others = [d for d in ds.diverged.dims if d != "peak"]
    data = {
        **{
            f"final_{v}": (("peak_index", "method", "budget", "seed"), a)
            for v, a in per_var.items()
        },
        **curves,
        "curve_lr": (("line", "step"), rates),
        "tuned_peak_index": (("method", "budget"), choice),
        "tuned_peak": (("method", "budget"), np.asarray(peaks)[choice]),
        "peak_value": (("peak_index",), np.asarray(peaks, float)),
        "n_diverged": (("peak_index",), ds.diverged.sum(others).transpose("peak").values),
        "eval_seed": (("seed",), (~tune_mask).astype(float)),  # 0: tuning seed, 1: evaluation
    }
    return xr.Dataset(
        data,
        coords={
            "method": list(METHODS),
            "budget": list(budgets(cfg)),
            "seed": np.arange(seeds),
            "line": list(lines),
            "step": ds.step.values,
            "peak_index": np.arange(len(peaks)),
        },
        attrs={"sweep_config": ds.attrs["config"]},
    )


def compute(cfg: Config, progress: bool | None) -> xr.Dataset:
    parts = []
    for name in cfg.landscapes:
        parts.append(landscape_dataset(cfg, name, run_landscape(cfg, name, progress)))
    return combine(cfg, parts)


def combine(cfg: Config, parts: list[xr.Dataset]) -> xr.Dataset:
    """The result: the landscapes' parts (``cfg.landscapes`` order) along ``landscape``, with
    the steps each method spends and WSD's fork steps."""
    parts = [
        p.expand_dims(landscape=[n]).drop_attrs()
        for p, n in zip(parts, cfg.landscapes, strict=True)
    ]
    ds = xr.concat(
        parts, dim="landscape", join="outer", data_vars="all", coords="minimal", compat="override"
    )
    assert isinstance(ds, xr.Dataset)
    ds = ds.assign_coords(landscape=np.array(cfg.landscapes, dtype=str))
    spent = steps_spent(cfg)
    ds["steps_spent"] = ("method", [spent[m] for m in METHODS])
    ds["fork_step"] = ("budget", list(fork_steps(cfg)))
    ds.attrs["config"] = json.dumps(dataclasses.asdict(cfg))
    if "bigram" in cfg.landscapes:
        corpus = setup(cfg, "bigram")[0].corpus
        ds.attrs["entropy_floor"] = float(corpus.entropy_floor())
    return ds


# --- summary and figure -----------------------------------------------------------------------


def _sel(ds: xr.Dataset, name: str) -> xr.Dataset:
    """One landscape's part, without the padding of the outer join."""
    part = ds.sel(landscape=name)
    keep = np.isfinite(part.peak_value.values)
    part = part.isel(peak_index=np.flatnonzero(keep))
    has_seed = np.isfinite(part[f"final_{METRIC[name]}"].values).any(axis=(0, 1, 2))
    part = part.isel(seed=np.flatnonzero(has_seed))
    has_step = np.isfinite(part["curve_loss"].values).any(axis=(0, 1))
    return part.isel(step=np.flatnonzero(has_step))


def tuned_finals(part: xr.Dataset, var: str) -> np.ndarray:
    """Evaluation-seed checkpoints at each method's tuned peak: ``(method, budget, seed)``."""
    arr = part[f"final_{var}"].values  # (peak, method, budget, seed)
    choice = part.tuned_peak_index.values.astype(int)
    ev = part.eval_seed.values == 1
    m, b = np.indices(choice.shape)
    return arr[choice, m, b][..., ev]


def _ordering_z(row: dict) -> float:
    """A paired difference's z-score for the orderings; where ``paired_difference`` reads NaN (no
    spread: every seed's difference is the same), 0 for identical runs (WSD-S and WSD at the
    first budget: the same rates, the same iterates) and +-inf for a constant nonzero shift."""
    if row["se"] > 0:
        return row["z"]
    return math.copysign(math.inf, row["diff"]) if row["diff"] else 0.0


def summarize(ds: xr.Dataset, cfg: Config) -> dict:
    spent = {m: int(s) for m, s in zip(METHODS, ds.steps_spent.values, strict=True)}
    out: dict = {
        "budgets": list(budgets(cfg)),
        "warmup": warmup(cfg),
        "decay_steps": list(decay_lengths(cfg)),
        "wsd_fork_steps": [int(f) for f in ds.fork_step.values],
        "steps_spent": spent,
        "tuning": "per method (one peak for all budgets) for WSD, WSD-S and cyclic cosine; per "
        "budget for cosine; chosen on the tuning half of the seeds, reported on the other half",
    }
    for name in cfg.landscapes:
        part = _sel(ds, name)
        entry: dict = {
            "metric": METRIC[name],
            "n_eval_seeds": int((part.eval_seed.values == 1).sum()),
            "peaks": [float(p) for p in part.peak_value.values],
            "diverged_runs": int(part.n_diverged.sum()),
            "tuned_peak": {
                m: [float(p) for p in part.tuned_peak.sel({"method": m}).values] for m in METHODS
            },
        }
        table: dict = {}
        for var in VARIABLES[name]:
            vals = tuned_finals(part, var)
            table[var] = {
                m: [
                    dict(zip(("mean", "se"), mean_se(vals[i, k]), strict=True))
                    for k in range(vals.shape[1])
                ]
                for i, m in enumerate(METHODS)
            }
        entry["final"] = table
        vals = tuned_finals(part, METRIC[name])
        pairs: dict = {}
        for a, b in PAIRS:
            rows = []
            for k in range(vals.shape[1]):
                rows.append(paired_difference(vals[METHODS.index(a), k], vals[METHODS.index(b), k]))
            pairs[f"{a}-{b}"] = rows
        entry["paired"] = pairs
        zs = {key: [_ordering_z(r) for r in rows] for key, rows in pairs.items()}
        entry["orderings"] = {
            "wsd_s<wsd": [z < -Z_SUPPORT for z in zs["wsd_s-wsd"]],
            "wsd_s>wsd": [z > Z_SUPPORT for z in zs["wsd_s-wsd"]],
            "wsd<cyclic_cosine": [z < -Z_SUPPORT for z in zs["wsd-cyclic_cosine"]],
            "wsd>cyclic_cosine": [z > Z_SUPPORT for z in zs["wsd-cyclic_cosine"]],
            # WSD-S not above WSD at Z_SUPPORT SEs, and WSD below cyclic cosine beyond them
            "claim_consistent:wsd_s<=wsd<cyclic_cosine": [
                bool(z1 < Z_SUPPORT and z2 < -Z_SUPPORT)
                for z1, z2 in zip(zs["wsd_s-wsd"], zs["wsd-cyclic_cosine"], strict=True)
            ],
        }
        out[name] = entry
    return out


def table_lines(summary: dict, cfg: Config) -> list[str]:
    """The printed table: per landscape, every variable's final value per method and budget
    (mean +- SE over the evaluation seeds), the paired differences of the compared variable with
    their z-scores, and the steps each method spent."""
    lines = []
    spent = summary["steps_spent"]
    for name in cfg.landscapes:
        entry = summary[name]
        lines.append(
            f"{LANDSCAPE_NAMES[name]}: mean +- SE over {entry['n_eval_seeds']} evaluation seeds; "
            f"tuned peaks {entry['tuned_peak']}"
        )
        head = f"{'variable':<18}{'method':<15}{'steps':>6}" + "".join(
            f"{'E=' + str(e):>24}" for e in summary["budgets"]
        )
        lines.append(head)
        for var, table in entry["final"].items():
            for m in METHODS:
                cells = "".join(f"{c['mean']:>13.6f} +-{c['se']:<9.6f}" for c in table[m])
                lines.append(f"{var:<18}{SCHEDULE_NAMES[m]:<15}{spent[m]:>6}{cells}")
        for key, rows in entry["paired"].items():
            cells = "".join(f"{r['diff']:>+13.6f} z={r['z']:<+8.1f}" for r in rows)
            lines.append(f"{entry['metric'] + ': ' + key:<39}{cells}")
    return lines


def _label(line: str) -> tuple[str, str]:
    method, _, k = line.partition("/")
    name = SCHEDULE_NAMES[method]
    return method, (
        f"{name} (branch {k})" if method == "wsd" else f"{name} (run {k})"
    ) if k else name


def plot(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(ds, cfg)
    ends = summary["budgets"]
    spent = summary["steps_spent"]
    rows = len(cfg.landscapes)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            rows,
            3,
            figsize=(19, 5.0 * rows),
            squeeze=False,
            gridspec_kw={"width_ratios": [1.5, 1, 1.15]},
        )
        for row, name in enumerate(cfg.landscapes):
            part = _sel(ds, name)
            entry = summary[name]
            metric = METRIC[name]
            ev = part.eval_seed.values == 1
            ax = axes[row, 0]
            main_line = f"wsd/{len(ends)}"  # drawn first and wide, under WSD-S, which shares it
            order = sorted(
                map(str, part.line.values),
                key=lambda x: 0 if x == main_line else (2 if x.startswith("wsd/") else 1),
            )
            for line in order:
                method, label = _label(str(line))
                da = part[f"curve_{metric}"].sel(line=line).isel(seed=np.flatnonzero(ev))
                k = str(line).partition("/")[2]
                if k:  # a branch or a per-budget run: only up to its budget
                    da = da.sel(step=slice(None, ends[int(k) - 1]))
                if method == "wsd" and k and int(k) < len(ends):
                    da = da.sel(step=slice(int(part.fork_step.values[int(k) - 1]) - 1, None))
                if method == "cosine" and k != "1":
                    label = None
                elif method == "cosine":
                    label = f"{SCHEDULE_NAMES['cosine']} (one run per budget)"
                if method == "wsd" and k and k != str(len(ends)):
                    label = None
                elif method == "wsd":
                    label = f"{SCHEDULE_NAMES['wsd']} (main line + decay branches)"
                style = "--" if method == "cosine" else "-"
                color = SCHEDULE_COLORS[method]
                mean = da.mean("seed")
                se = da.std("seed", ddof=1) / np.sqrt(da.sizes["seed"])
                lw, alpha = (3.0, 0.55) if line == main_line else (1.3, 1.0)
                ax.plot(da.step, mean, style, color=color, lw=lw, alpha=alpha, label=label or "_")
                ax.fill_between(da.step, mean - 2 * se, mean + 2 * se, color=color, alpha=0.2, lw=0)
            for e in ends:
                ax.axvline(e, color="gray", lw=0.7, ls=":")
            ax.set_yscale("log")
            ax.set_xlabel("step (updates); dotted: budgets $E_k$")
            ax.set_ylabel(f"{LANDSCAPE_NAMES[name]}\n{metric.replace('_', ' ')} (mean, 2-SE band)")
            ax.set_title("loss curves at each method's tuned peak (evaluation seeds)", fontsize=9)
            ax.legend(fontsize=7, loc="upper right")

            ax = axes[row, 1]
            for i, m in enumerate(METHODS):
                cells = entry["final"][metric][m]
                mean = np.array([c["mean"] for c in cells])
                se = np.array([c["se"] for c in cells])
                x = np.asarray(ends) * (1 + 0.02 * (i - 1.5))
                label = f"{SCHEDULE_NAMES[m]}: {spent[m]} steps in all"
                ax.errorbar(
                    x,
                    mean,
                    yerr=2 * se,
                    fmt="o-",
                    ms=4,
                    color=SCHEDULE_COLORS[m],
                    label=label,
                    capsize=2,
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(ends, [str(e) for e in ends])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("budget $E_k$ (steps)")
            ax.set_ylabel(f"final {metric.replace('_', ' ')} at the budget")
            ax.set_title("checkpoint at each budget (2-SE bars)", fontsize=9)
            ax.legend(fontsize=7)

            ax = axes[row, 2]
            ax.axis("off")
            cell_text = []
            row_labels = []
            for m in METHODS:
                cells = entry["final"][metric][m]
                peaks = entry["tuned_peak"][m]
                peak = f"{peaks[0]:g}" if m != "cosine" else "/".join(f"{p:g}" for p in peaks)
                row_labels.append(f"{SCHEDULE_NAMES[m]} ({peak})")
                cell_text.append(
                    [f"{c['mean']:.4g}\n±{c['se']:.2g}" for c in cells] + [str(spent[m])]
                )
            for key, rows_ in entry["paired"].items():
                a, b = key.split("-")
                row_labels.append(f"{SCHEDULE_NAMES[a]} - {SCHEDULE_NAMES[b]}")
                cell_text.append([f"{r['diff']:+.3g}\nz = {r['z']:+.1f}" for r in rows_] + [""])
            table = ax.table(
                cellText=cell_text,
                rowLabels=row_labels,
                colLabels=[f"$E$ = {e}" for e in ends] + ["steps spent"],
                loc="center",
                cellLoc="center",
            )
            table.auto_set_font_size(False)
            table.set_fontsize(7)
            table.scale(1.0, 2.3)
            ax.set_title(
                f"final {metric.replace('_', ' ')} (tuned peak), paired differences", fontsize=9
            )
        fig.suptitle(
            f"checkpoints at budgets {ends} (warmup {warmup(cfg)}, decays {decay_lengths(cfg)} to "
            f"{cfg.final_fraction} x peak): the reference WSD-S configuration / {cfg.scale:g}",
            fontsize=10,
        )
        fig.tight_layout()
    paths = save_figure(fig, out / "wsd_s_study.png")
    write_summary(out / "wsd_s_study_summary.json", summary, echo=False)
    print("\n".join(table_lines(summary, cfg)))
    return paths


main = main_for(__name__, "wsd_s_study")


if __name__ == "__main__":
    main()
