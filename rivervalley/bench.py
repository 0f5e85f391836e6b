"""``rivervalley bench``: the sweep runner against the alternatives, side by side.

For each workload (``runs`` runs of ``steps`` updates with GD, SGD or Adam under a WSD schedule,
recording 10 times; GD is ``optimizers.sgd()`` on the exact gradient, ``gradient="exact"``) on
one of two landscapes,

``valley``  the softplus river valley of dimension ``d`` (``dim``), peak rate 0.05;
``bigram``  the bigram language-model toy: a logit table (``rivervalley.lm.bigram_table``,
            minibatches of 32 pairs) on a corpus of ``V = dim`` tokens, half of the contexts
            deterministic and half uniform over 8 tokens; peak rate 20 (GD, SGD) or 0.05 (Adam),

it measures

``sweep``   the lab's ``jit(vmap(scan))`` runner;
``loop``    a Python loop over runs, each calling one jitted single-run ``lax.scan``
            (``runner.advance``, the very function the sweep vmaps; compiled once and reused);
``numpy``   the same maths in NumPy, vectorised over runs (``rivervalley.numpy_reference``;
            the valley only: there is no NumPy version of the language model, shown as ``-``),

and prints run-steps per second, the sweep's speed-up over each alternative, its compile time and
the peak memory each method added.  Every measurement runs in a fresh process (so peak memory
and compilation are its own).  Baselines far slower than the sweep are timed on a slice of the
workload (fewer runs for ``loop``, fewer steps for ``numpy``: their cost is linear in those) and
the slice is reported.  Results are written as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import platform
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LANDSCAPES = ("valley", "bigram")
METHODS = ("sweep", "loop", "numpy")


@dataclasses.dataclass(frozen=True)
class Workload:
    """``runs`` runs of ``steps`` updates of ``optimizer`` on ``landscape``: ``"valley"`` (the
    river valley of dimension ``dim``) or ``"bigram"`` (the bigram toy with ``V = dim``)."""

    dim: int
    optimizer: str
    runs: int
    steps: int
    landscape: str = "valley"

    def __post_init__(self):
        if self.landscape not in LANDSCAPES:
            raise ValueError(f"landscape: unknown {self.landscape!r}; allowed: {LANDSCAPES}")

    @property
    def name(self) -> str:
        size = f"V={self.dim}" if self.landscape == "bigram" else f"d={self.dim}"
        prefix = "bigram " if self.landscape == "bigram" else ""
        return f"{prefix}{size} {self.optimizer} runs={self.runs} steps={self.steps}"

    @property
    def gradient(self) -> str:
        """The gradient the runs see: ``"exact"`` for GD, else ``"stochastic"``."""
        return "exact" if self.optimizer == "gd" else "stochastic"

    def supports(self, method: str) -> bool:
        """Whether ``method`` applies (NumPy exists for the valley only)."""
        return method != "numpy" or self.landscape == "valley"


QUICK = [
    Workload(64, "sgd", 256, 1000),
    Workload(64, "gd", 256, 1000),
    Workload(64, "sgd", 64, 500, landscape="bigram"),
]
DEFAULT = [Workload(d, opt, 1024, 1000) for d in (2, 64, 1024) for opt in ("gd", "sgd", "adam")] + [
    Workload(64, "sgd", 16, 1000),
    Workload(64, "sgd", 4096, 1000),
    Workload(64, "sgd", 1024, 10_000),
    Workload(64, "gd", 1024, 100_000),
    Workload(64, "sgd", 256, 1000, landscape="bigram"),
    Workload(64, "adam", 256, 1000, landscape="bigram"),
    Workload(64, "sgd", 1024, 1000, landscape="bigram"),
]
OPTIMIZER_NAMES = {"gd": "sgd"}  # GD is SGD on the exact gradient (``Workload.gradient``)
LOOP_RUNS = 32  # runs timed for the per-run loop
NUMPY_STEPS = 1000  # steps timed for NumPy
BIGRAM_PEAK = {"gd": 20.0, "sgd": 20.0, "adam": 0.05}  # peak rates for the logit table


def _problem(w: Workload):
    import jax

    from rivervalley import lm, optimizers, schedules
    from rivervalley.landscapes import river_valley

    optimizer = optimizers.by_name(OPTIMIZER_NAMES.get(w.optimizer, w.optimizer))
    if w.landscape == "bigram":
        mix = [(lm.deterministic(), 0.5), (lm.uniform(8), 0.5)]
        model = lm.bigram_table(lm.bigram_corpus(jax.random.key(0), w.dim, mix), batch_size=32)
        return model, optimizer, schedules.wsd(BIGRAM_PEAK[w.optimizer], w.steps, 0.2)
    valley = river_valley(w.dim, spectrum_exponent=1.0, noise_std=0.3)
    return valley, optimizer, schedules.wsd(0.05, w.steps, 0.2)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _measure(method: str, w: Workload) -> dict[str, Any]:
    """Runs in a fresh process: time one method on one workload."""
    import jax
    import numpy as np

    from rivervalley import runner
    from rivervalley.landscapes import RiverValley
    from rivervalley.numpy_reference import numpy_sweep

    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; allowed: {', '.join(METHODS)}")
    if not w.supports(method):
        raise ValueError(f"method: {method!r} does not apply to the {w.landscape} landscape")
    landscape, optimizer, schedule = _problem(w)
    record_every = w.steps // 10
    base = _peak_rss_mb()
    out: dict[str, Any] = {"method": method, "workload": dataclasses.asdict(w)}
    if method == "sweep":

        def go():
            return runner.sweep(
                landscape,
                optimizer,
                schedule,
                seeds=w.runs,
                steps=w.steps,
                record_every=record_every,
                gradient=w.gradient,
                progress=False,
            )

        t0 = time.perf_counter()
        go()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        go()
        seconds = time.perf_counter() - t0
        out |= {"seconds": seconds, "compile_s": max(first - seconds, 0.0), "runs_timed": w.runs}
        run_steps = w.runs * w.steps
    elif method == "loop":
        import functools

        n = min(w.runs, LOOP_RUNS)
        # the single-run scan the sweep vmaps, recording what it records by default
        advance = functools.partial(
            runner.advance,
            n_records=10,
            record_every=record_every,
            what=runner.Options(gradient=w.gradient),
        )
        single = jax.jit(advance)
        start = jax.jit(runner.init_run)

        def one(seed):
            state = start(landscape, optimizer, schedule, jax.random.key(seed))
            return jax.block_until_ready(single(landscape, optimizer, schedule, state))

        t0 = time.perf_counter()
        one(0)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for seed in range(n):
            one(seed)
        seconds = time.perf_counter() - t0
        out |= {"seconds": seconds, "compile_s": max(first - seconds / n, 0.0), "runs_timed": n}
        run_steps = n * w.steps
    else:  # numpy, on the valley
        assert isinstance(landscape, RiverValley)
        steps = min(w.steps, NUMPY_STEPS)
        lrs = np.asarray(jax.vmap(schedule)(np.arange(steps)))
        t0 = time.perf_counter()
        numpy_sweep(landscape, w.optimizer, lrs, runs=w.runs, record_every=max(steps // 10, 1))
        seconds = time.perf_counter() - t0
        out |= {"seconds": seconds, "compile_s": 0.0, "runs_timed": w.runs, "steps_timed": steps}
        run_steps = w.runs * steps
    out["run_steps_per_s"] = run_steps / seconds
    out["peak_memory_mb"] = _peak_rss_mb() - base
    return out


def measure(method: str, w: Workload) -> dict[str, Any]:
    """``_measure`` in a fresh (spawned) process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure, (method, w))


def _cell(value: float | None, width: int, spec: str) -> str:
    """A table cell: ``value`` formatted, or ``-`` where it does not apply."""
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def run(workloads: Sequence[Workload], out: Path, methods: Sequence[str] = METHODS) -> Path:
    """Measure every method on every workload, print a table, write ``out/bench.json``.

    Methods that do not apply to a workload (NumPy on the bigram toy) are skipped: ``-`` in the
    table, listed under ``not_applicable`` in the file, with no result and no ratio."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or "sweep" not in methods:
        raise ValueError(f"methods: need 'sweep' and any of {METHODS}, got {tuple(methods)}")
    rows = []
    header = (
        f"{'workload':<40}{'sweep Mrs/s':>12}{'loop':>9}{'numpy':>9}"
        f"{'x loop':>8}{'x numpy':>8}{'compile s':>10}{'mem MB':>8}"
    )
    print(header)
    for w in workloads:
        applicable = [m for m in methods if w.supports(m)]
        res = {m: measure(m, w) for m in applicable}
        speed = {m: r["run_steps_per_s"] for m, r in res.items()}
        ratio = {m: speed["sweep"] / speed[m] for m in applicable if m != "sweep"}
        row = {
            "workload": dataclasses.asdict(w),
            "name": w.name,
            "results": res,
            "ratio": ratio,
            "not_applicable": [m for m in methods if m not in applicable],
        }
        rows.append(row)
        mrs = {m: v / 1e6 for m, v in speed.items()}
        print(
            f"{w.name:<40}{_cell(mrs['sweep'], 12, '.2f')}"
            f"{_cell(mrs.get('loop'), 9, '.3f')}{_cell(mrs.get('numpy'), 9, '.3f')}"
            f"{_cell(ratio.get('loop'), 8, '.1f')}{_cell(ratio.get('numpy'), 8, '.1f')}"
            f"{res['sweep']['compile_s']:>10.2f}{res['sweep']['peak_memory_mb']:>8.0f}",
            flush=True,
        )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench.json"
    import jax

    meta = {
        "machine": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": multiprocessing.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "loop_runs_timed": LOOP_RUNS,
        "numpy_steps_timed": NUMPY_STEPS,
        "bigram_peak_rates": BIGRAM_PEAK,
    }
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return path
