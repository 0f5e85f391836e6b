"""``rivervalley bench``: the sweep runner against the alternatives, side by side.

For each workload (the softplus river valley of dimension ``d`` with GD, SGD or Adam under a WSD
schedule, ``runs`` runs of ``steps`` updates, recording the loss 10 times) it measures

``sweep``   the lab's ``jit(vmap(scan))`` runner;
``loop``    a Python loop over runs, each calling one jitted single-run ``lax.scan`` (compiled
            once and reused);
``numpy``   the same maths in NumPy, vectorised over runs (``rivervalley.numpy_reference``).

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


@dataclasses.dataclass(frozen=True)
class Workload:
    dim: int
    optimizer: str
    runs: int
    steps: int

    @property
    def name(self) -> str:
        return f"d={self.dim} {self.optimizer} runs={self.runs} steps={self.steps}"


QUICK = [Workload(64, "sgd", 256, 1000), Workload(64, "gd", 256, 1000)]
DEFAULT = [Workload(d, opt, 1024, 1000) for d in (2, 64, 1024) for opt in ("gd", "sgd", "adam")] + [
    Workload(64, "sgd", 16, 1000),
    Workload(64, "sgd", 4096, 1000),
    Workload(64, "sgd", 1024, 10_000),
    Workload(64, "gd", 1024, 100_000),
]
LOOP_RUNS = 32  # runs timed for the per-run loop
NUMPY_STEPS = 1000  # steps timed for NumPy


def _problem(w: Workload):
    from rivervalley import optimizers, schedules
    from rivervalley.landscapes import river_valley

    valley = river_valley(w.dim, spectrum_exponent=1.0, noise_std=0.3)
    return valley, optimizers.by_name(w.optimizer), schedules.wsd(0.05, w.steps, 0.2)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _measure(method: str, w: Workload) -> dict[str, Any]:
    """Runs in a fresh process: time one method on one workload."""
    import jax
    import numpy as np

    from rivervalley import runner
    from rivervalley.numpy_reference import numpy_sweep

    valley, optimizer, schedule = _problem(w)
    record_every = w.steps // 10
    base = _peak_rss_mb()
    out: dict[str, Any] = {"method": method, "workload": dataclasses.asdict(w)}
    if method == "sweep":

        def go():
            return runner.sweep(
                valley,
                optimizer,
                schedule,
                seeds=w.runs,
                steps=w.steps,
                record_every=record_every,
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
        single = jax.jit(functools.partial(runner.advance, n_records=10, record_every=record_every))
        start = jax.jit(runner.init_run)

        def one(seed):
            state = start(valley, optimizer, schedule, jax.random.key(seed))
            return jax.block_until_ready(single(valley, optimizer, schedule, state))

        t0 = time.perf_counter()
        one(0)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for seed in range(n):
            one(seed)
        seconds = time.perf_counter() - t0
        out |= {"seconds": seconds, "compile_s": max(first - seconds / n, 0.0), "runs_timed": n}
        run_steps = n * w.steps
    elif method == "numpy":
        steps = min(w.steps, NUMPY_STEPS)
        lrs = np.asarray(jax.vmap(schedule)(np.arange(steps)))
        t0 = time.perf_counter()
        numpy_sweep(valley, w.optimizer, lrs, runs=w.runs, record_every=max(steps // 10, 1))
        seconds = time.perf_counter() - t0
        out |= {"seconds": seconds, "compile_s": 0.0, "runs_timed": w.runs, "steps_timed": steps}
        run_steps = w.runs * steps
    else:
        raise ValueError(f"method: unknown {method!r}; allowed: sweep, loop, numpy")
    out["run_steps_per_s"] = run_steps / seconds
    out["peak_memory_mb"] = _peak_rss_mb() - base
    return out


def measure(method: str, w: Workload) -> dict[str, Any]:
    """``_measure`` in a fresh (spawned) process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure, (method, w))


def run(workloads: Sequence[Workload], out: Path, methods=("sweep", "loop", "numpy")) -> Path:
    """Measure every method on every workload, print a table, write ``out/bench.json``."""
    rows = []
    header = (
        f"{'workload':<36}{'sweep Mrs/s':>12}{'loop':>9}{'numpy':>9}"
        f"{'x loop':>8}{'x numpy':>8}{'compile s':>10}{'mem MB':>8}"
    )
    print(header)
    for w in workloads:
        res = {m: measure(m, w) for m in methods}
        speed = {m: r["run_steps_per_s"] for m, r in res.items()}
        row = {"workload": dataclasses.asdict(w), "results": res}
        row["ratio"] = {m: speed["sweep"] / speed[m] for m in methods if m != "sweep"}
        rows.append(row)
        print(
            f"{w.name:<36}{speed['sweep'] / 1e6:>12.2f}"
            f"{speed.get('loop', float('nan')) / 1e6:>9.3f}"
            f"{speed.get('numpy', float('nan')) / 1e6:>9.3f}"
            f"{row['ratio'].get('loop', float('nan')):>8.1f}"
            f"{row['ratio'].get('numpy', float('nan')):>8.1f}"
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
    }
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return path
