"""Where the time of one SGD and one GD run-step of the sweep goes, on the river valley.

    python benchmarks/profile.py [--dim 64] [--runs 1024] [--steps 1000] [--repeats 5]

The workload is ``rivervalley bench``'s (``rivervalley.bench._problem``): the softplus river
valley of dimension ``--dim`` (spectrum exponent 1, noise std 0.3), WSD at peak rate 0.05,
``--runs`` runs of ``--steps`` updates.  Every variant below is one ``jax.jit(jax.vmap(...))`` of a
``lax.scan`` over the same steps (unrolled like the runner's inner loop, ``runner.UNROLL``), with
the landscape gathered to one copy per run as ``sweep`` does for a small landscape, and the
schedule passed as an argument (not a compile-time constant), as in the sweep.  Each is called
once to compile; then all are timed in ``--repeats`` rounds (one call of each per round,
``jax.block_until_ready``), so that load from other jobs on a shared machine falls on all of them
alike; the best time counts, the median is shown too.  The ladder, from the full sweep down to its
parts:

``sweep``             ``rivervalley.runner.sweep`` itself, loss recorded 10 times (as the bench);
``runner scan``       the program the sweep compiles (``runner.advance_runs``, i.e.
                      ``jit(vmap(runner.advance))``) called directly: without the sweep's Python,
                      host transfer and ``xarray`` packaging (it reuses the sweep's compilation);
``check w only``      the same with a divergence check of the parameters only (a landscape whose
                      ``is_finite`` is ``isfinite(sum(w))``), not of the loss;
``- div. check``      the same with the per-update divergence check removed (``is_finite`` is
                      constant ``True``: no loss evaluation per update);
``optax loop``        the optimizer's optax transformation on ``runner.gradient`` (stochastic
                      for SGD, exact for GD): no check, no records, no freezing;
``bare loop``         ``w <- w - lr_t (grad(w) + noise_std xi_t)`` (SGD; GD without the noise), with
                      ``xi_t = rivervalley.noise.normal(fold_in(key, t), (d,))``: no optax, no
                      checks, no records.  Like the runner, the step counter ``t`` is per run, so
                      the schedule is evaluated for every run;
``shared t``          the bare loop with ``t`` shared by all runs (the scanned index): the schedule
                      is evaluated once per step, not once per run-step;
``threefry`` /        the bare SGD loop with ``jax.random.normal`` noise, or with Rademacher signs
``rademacher``        (32 signs per 32-bit word of ``rivervalley.noise.uniform_bits``: d/32 words
                      per step; the same two moments as the Gaussian, not its distribution);
``noise: ...``        only generate the step's noise and add it to an accumulator: the lab's normal
                      (``fold_in`` + hash + ``erf_inv``), its ``fold_in`` alone, its hashed
                      uniforms without ``erf_inv``, ``jax.random.normal`` (threefry), Rademacher;
``gradient``          only ``w <- w - 1e-3 grad(w)`` (a constant rate, so no schedule);
``schedule``          only ``acc <- acc + schedule(t)`` with a per-run ``t``;
``loop floor``        ``w <- 0.999 w``: the cost of the compiled loop itself;
``numpy``             ``rivervalley.numpy_reference.numpy_sweep`` (the NumPy version of the bench).

For each it prints millions of run-steps per second (best and median), nanoseconds per run-step
(best), the time as a
fraction of the full sweep's (``t/sweep``), and XLA's float-operation count of one run-step
(``cost_analysis`` of the vmapped step body, divided by the runs; XLA counts integer and
comparison operations too) with the implied GFLOP/s.  For scale it also measures the GFLOP/s of
a float32 matrix product (the machine's practical compute ceiling under XLA) and prints a hand
count of the gradient's float operations.  Results go to ``outputs/bench/profile.json``.  At the
defaults the whole script takes about two minutes on two CPU cores.  The final iterates of the
runner without checks, the optax loop and the bare loop are compared with the runner's (they are
the same computation, so they agree to float rounding).  XLA spreads a program over both cores,
NumPy uses one; on a loaded machine the JAX rows lose more than the NumPy ones (the load average
is printed and saved).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rivervalley import noise, runner
from rivervalley.bench import Workload, _problem
from rivervalley.landscapes.valley import RiverValley
from rivervalley.numpy_reference import numpy_sweep
from rivervalley.pytree import pytree_dataclass

N_RECORDS = 10  # records of the sweep, as in ``rivervalley bench``
SWEEP_AXES = (0, None, None)  # vmap axes of (landscape, optimizer, schedule) in the sweep
OUT = Path(__file__).resolve().parents[1] / "outputs" / "bench"

# body(valley, schedule, key, x, t) -> x: one update of one run (key: the run's noise key, t: the
# step).  The schedule is an argument, as in the sweep (a closed-over one would be constant-folded).
Body = Callable[[Any, Any, jax.Array, Any, jax.Array], Any]


@pytree_dataclass
class UncheckedValley(RiverValley):
    """The river valley with the divergence check switched off (``is_finite`` is ``True``)."""

    def is_finite(self, w: Any) -> jax.Array:
        del w
        return jnp.asarray(True)


@pytree_dataclass
class ParamsCheckedValley(RiverValley):
    """The river valley checking only that the parameters are finite (not the loss)."""

    def is_finite(self, w: Any) -> jax.Array:
        return jnp.isfinite(jnp.sum(w))


@dataclasses.dataclass
class Row:
    """One variant: its timings (``seconds``: the best; ``times``: every timed call, in rounds),
    compile time (first call minus best) and XLA's operation counts per run-step."""

    optimizer: str
    name: str
    go: Callable[[], Any] = dataclasses.field(repr=False)
    first_call_s: float
    run_steps: int
    flops_per_run_step: float | None = None
    transcendentals_per_run_step: float | None = None
    times: list[float] = dataclasses.field(default_factory=list)
    fraction_of_sweep: float = math.nan

    @property
    def seconds(self) -> float:
        return min(self.times)

    @property
    def compile_s(self) -> float:
        return max(self.first_call_s - self.seconds, 0.0)

    def as_dict(self) -> dict[str, Any]:
        names = [f.name for f in dataclasses.fields(self) if f.name != "go"]
        return {n: getattr(self, n) for n in names} | {
            "seconds": self.seconds,
            "median_seconds": float(np.median(self.times)),
            "compile_s": self.compile_s,
            "run_steps_per_s": self.mrs * 1e6,
            "ns_per_run_step": self.ns,
            "gflops": self.gflops,
        }

    @property
    def mrs(self) -> float:
        return self.run_steps / self.seconds / 1e6

    @property
    def ns(self) -> float:
        return self.seconds / self.run_steps * 1e9

    @property
    def gflops(self) -> float | None:
        if self.flops_per_run_step is None:
            return None
        return self.flops_per_run_step * self.run_steps / self.seconds / 1e9


def timed(go: Callable[[], Any]) -> float:
    """Seconds of one call of ``go``, waiting for its results."""
    t0 = time.perf_counter()
    jax.block_until_ready(go())
    return time.perf_counter() - t0


def cost(fn: Callable[..., Any], *args: Any, runs: int) -> tuple[float | None, float | None]:
    """XLA's (flops, transcendentals) of ``jit(fn)(*args)`` per run, if it reports them."""
    try:
        analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    except Exception:  # cost analysis is optional, backend-dependent
        return None, None
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        return None, None
    return analysis["flops"] / runs, analysis.get("transcendentals", 0.0) / runs


def per_run(tree: Any, runs: int) -> Any:
    """One copy of every leaf per run (a leading axis of length ``runs``)."""
    return jax.tree_util.tree_map(
        lambda x: jnp.array(jnp.broadcast_to(x, (runs, *jnp.shape(x)))), tree
    )


def rademacher(key: jax.Array, d: int) -> jax.Array:
    """``d`` random signs +-1 (float32) from ``ceil(d / 32)`` hashed 32-bit words."""
    words = noise.uniform_bits(key, -(-d // 32))
    bits = (words[:, None] >> jnp.arange(32, dtype=jnp.uint32)) & np.uint32(1)
    return (1.0 - 2.0 * bits.astype(jnp.float32)).reshape(-1)[:d]


class Profiler:
    """Builds and times the variants on one valley / schedule / number of runs and steps."""

    def __init__(self, dim: int, runs: int, steps: int, repeats: int):
        self.dim, self.runs, self.steps, self.repeats = dim, runs, steps, repeats
        self.record_every = steps // N_RECORDS
        valley, _, schedule = _problem(Workload(dim, "sgd", runs, steps))
        assert isinstance(valley, RiverValley)
        self.valley, self.schedule = valley, schedule
        self.valleys = per_run(valley, runs)
        fields = {f.name: getattr(valley, f.name) for f in dataclasses.fields(valley)}
        self.checks = {
            "loss": self.valleys,
            "params": per_run(ParamsCheckedValley(**fields), runs),
            "none": per_run(UncheckedValley(**fields), runs),
        }
        # the runner's noise keys: (k_init, k_noise) = split(key(seed)), seeds 0..runs-1
        self.keys = jax.vmap(jax.random.key)(jnp.arange(runs, dtype=jnp.uint32))
        self.noise_keys = jax.vmap(lambda k: jax.random.split(k)[1])(self.keys)
        self.w0 = per_run(valley.start, runs)
        self.rows: list[Row] = []
        self.finals: dict[str, Any] = {}

    def add(self, optimizer: str, name: str, go: Callable[[], Any], step_cost=None) -> None:
        """Register a variant: call it once (compiling it) and count its operations."""
        first = timed(go)
        flops, trans = step_cost() if step_cost is not None else (None, None)
        self.rows.append(Row(optimizer, name, go, first, self.runs * self.steps, flops, trans))

    def measure(self) -> None:
        """Time every variant ``repeats`` times, in rounds over all of them (so that load from
        other jobs on a shared machine falls on all variants alike); the best time counts."""
        for i in range(self.repeats):
            t0 = time.perf_counter()
            for row in self.rows:
                row.times.append(timed(row.go))
            print(f"round {i + 1}/{self.repeats}: {time.perf_counter() - t0:.1f} s", flush=True)
        for row in self.rows:
            sweep = next(r for r in self.rows if r.optimizer == row.optimizer and r.name == "sweep")
            row.fraction_of_sweep = row.seconds / sweep.seconds

    # -- the runner ---------------------------------------------------------------------------

    def workload(self, optimizer: str) -> Workload:
        """The bench workload of ``optimizer`` (``"gd"``: SGD on the exact gradient)."""
        return Workload(self.dim, optimizer, self.runs, self.steps)

    def optimizer(self, optimizer: str) -> tuple[Any, str]:
        """The workload's optimizer and its gradient mode (``Workload.gradient``)."""
        w = self.workload(optimizer)
        return _problem(w)[1], w.gradient

    def sweep(self, optimizer: str) -> None:
        opt, mode = self.optimizer(optimizer)

        def go():
            return runner.sweep(
                self.valley,
                opt,
                self.schedule,
                seeds=self.runs,
                steps=self.steps,
                record_every=self.record_every,
                gradient=mode,
                progress=False,
            )

        self.add(optimizer, "sweep", go, lambda: self.update_cost(opt, self.valleys, mode))

    def update_cost(self, opt, valleys, mode: str) -> tuple[float | None, float | None]:
        """XLA's operation counts of one ``runner.update`` (gradient ``mode``) per run."""

        def update(valley, opt, schedule, state):
            return runner.update(valley, opt, schedule, state, mode)

        update = jax.vmap(update, in_axes=(0, None, None, 0))
        return cost(update, valleys, opt, self.schedule, self.start(opt), runs=self.runs)

    def start(self, opt) -> runner.RunState:
        """The sweep's initial states (``runner.start_runs``, landscape gathered per run)."""
        return runner.start_runs(self.valleys, opt, self.schedule, self.keys, axes=SWEEP_AXES)

    def runner_scan(self, optimizer: str, check: str = "loss") -> None:
        """The very program the sweep compiles (``runner.advance_runs``), called directly, with
        the divergence check of the landscape (``loss``), of the parameters only, or ``none``."""
        opt, mode = self.optimizer(optimizer)
        valleys = self.checks[check]
        state = self.start(opt)

        def go():
            return runner.advance_runs(
                valleys,
                opt,
                self.schedule,
                state,
                n_records=N_RECORDS,
                record_every=self.record_every,
                what=runner.Options(gradient=mode),
                axes=SWEEP_AXES,
            )

        name = {"loss": "runner scan", "params": "runner scan, check w only"}.get(
            check, "runner scan - div. check"
        )
        self.add(optimizer, name, go, lambda: self.update_cost(opt, valleys, mode))
        self.finals[f"{optimizer} {name}"] = go()[0].params

    # -- hand-written scans -------------------------------------------------------------------

    def scan(self, optimizer: str, name: str, body: Body, x0: Any, *, shared_t: bool = False):
        """Time ``jit(vmap(scan(body)))`` from the per-run start ``x0`` (leading axis: runs).

        ``t`` is carried per run (as the runner's step counter) unless ``shared_t``: then it is
        the scanned index, the same for every run."""
        steps = self.steps

        def one_run(valley, schedule, key, x, t0):
            def step(carry, t_shared):
                x, t = carry
                x = body(valley, schedule, key, x, t_shared if shared_t else t)
                return (x, t + 1), None

            ts = jnp.arange(steps, dtype=jnp.int32)
            return jax.lax.scan(step, (x, t0), ts, unroll=runner.UNROLL)[0][0]

        in_axes = (0, None, 0, 0, 0)
        fn = jax.jit(jax.vmap(one_run, in_axes=in_axes))
        t0 = jnp.zeros(self.runs, jnp.int32)
        args = (self.valleys, self.schedule, self.noise_keys, x0, t0)

        def step_cost():
            return cost(jax.vmap(body, in_axes=in_axes), *args, runs=self.runs)

        self.add(optimizer, name, lambda: fn(*args), step_cost)
        self.finals[f"{optimizer} {name}"] = jax.tree_util.tree_leaves(fn(*args))[0]  # w

    def bare(
        self, optimizer: str, xi: Callable[[jax.Array, int], jax.Array] | None, name: str, **kw
    ):
        def body(v, schedule, key, w, t):
            g = v.grad(w)
            if xi is not None:
                g = g + v.noise_std * xi(jax.random.fold_in(key, t), w.shape[-1])
            return w - schedule(t) * g

        self.scan(optimizer, name, body, self.w0, **kw)

    def optax_loop(self, optimizer: str) -> None:
        opt, mode = self.optimizer(optimizer)

        def body(v, schedule, key, x, t):
            w, state = x
            g = runner.gradient(v, w, jax.random.fold_in(key, t), mode)
            updates, state = opt.transform(schedule).update(g, state, w)
            return optax.apply_updates(w, updates), state

        x0 = (self.w0, jax.vmap(opt.transform(self.schedule).init)(self.w0))
        self.scan(optimizer, "optax loop", body, x0)

    def numpy(self, optimizer: str) -> None:
        lrs = np.asarray(jax.vmap(self.schedule)(np.arange(self.steps)))

        def go():
            return numpy_sweep(
                self.valley, optimizer, lrs, runs=self.runs, record_every=self.record_every
            )

        self.add(optimizer, "numpy", go)


def format_row(r: Row) -> str:
    flops = "-" if r.flops_per_run_step is None else f"{r.flops_per_run_step:.0f}"
    gflops = "-" if r.gflops is None else f"{r.gflops:.2f}"
    median = r.run_steps / float(np.median(r.times)) / 1e6
    return (
        f"{r.optimizer:<4} {r.name:<31}{r.mrs:>8.4g}{median:>8.4g}{r.ns:>7.0f}"
        f"{r.fraction_of_sweep:>8.3f}{flops:>8}{gflops:>8}{r.compile_s:>7.1f}"
    )


HEADER = (
    f"{'opt':<4} {'variant':<31}{'Mrs/s':>8}{'median':>8}{'ns/rs':>7}{'t/sweep':>8}"
    f"{'flop/rs':>8}{'GFLOP/s':>8}{'comp.s':>7}"
)


def matmul_gflops(repeats: int, n: int = 2048) -> float:
    """GFLOP/s of an ``n x n`` float32 matrix product under XLA: the practical compute ceiling."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    f = jax.jit(lambda x: x @ x)
    timed(lambda: f(a))
    seconds = min(timed(lambda: f(a)) for _ in range(repeats))
    return 2 * n**3 / seconds / 1e9


def grad_flops_by_hand(d: int) -> int:
    """Float operations of the valley's gradient, counted from ``RiverValley.loss`` by hand.

    Per hill coordinate: ``b sin(omega s)`` (1), ``dy = y - c`` (1), ``lam dy`` (1, the y
    gradient), ``b (lam dy)`` and its sum (2) for the s gradient: 5 (d - 1).  Scalars: ``omega
    s``, ``sin``, ``cos``, ``sigmoid`` (exp, add, divide), the products of the s gradient: ~10."""
    return 5 * (d - 1) + 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--runs", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of each variant")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of profile.json")
    args = parser.parse_args(argv)
    if args.steps % N_RECORDS:
        parser.error(f"--steps must be a multiple of {N_RECORDS} (the sweep records 10 times)")
    t_start = time.perf_counter()
    p = Profiler(args.dim, args.runs, args.steps, args.repeats)
    d = args.dim
    print(
        f"river valley d={d}, {args.runs} runs x {args.steps} steps, best of {args.repeats}; "
        f"jax {jax.__version__} on {jax.default_backend()}, {multiprocessing.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    ceiling = matmul_gflops(args.repeats)
    grad_flops, grad_trans = cost(jax.vmap(lambda v, w: v.grad(w)), p.valleys, p.w0, runs=args.runs)
    print(
        f"gradient: ~{grad_flops_by_hand(d)} flops by hand, XLA counts {grad_flops:.0f} flops "
        f"+ {grad_trans:.0f} transcendentals per run-step; "
        f"a {2048}^2 float32 matmul runs at {ceiling:.1f} GFLOP/s"
        if grad_flops is not None and grad_trans is not None
        else f"gradient: ~{grad_flops_by_hand(d)} flops by hand; matmul {ceiling:.1f} GFLOP/s"
    )
    print(f"compiling the variants, then timing them in {args.repeats} rounds ...", flush=True)

    def acc_of(xi: Callable[[jax.Array, int], jax.Array]) -> Body:
        return lambda v, sch, key, acc, t: acc + xi(jax.random.fold_in(key, t), d)

    def lab_normal(k: jax.Array, n: int) -> jax.Array:
        return noise.normal(k, (n,))

    def threefry(k: jax.Array, n: int) -> jax.Array:
        return jax.random.normal(k, (n,))

    def hashed_uniform(k: jax.Array, n: int) -> jax.Array:
        return noise.uniform(k, (n,))

    def fold_in_only(v, sch, key, acc, t):
        return acc ^ jax.random.key_data(jax.random.fold_in(key, t))

    zeros = jnp.zeros((args.runs, d), jnp.float32)
    # SGD, from the full sweep down to its parts
    p.sweep("sgd")
    p.runner_scan("sgd")
    p.runner_scan("sgd", "params")
    p.runner_scan("sgd", "none")
    p.optax_loop("sgd")
    p.bare("sgd", lab_normal, "bare loop")
    p.bare("sgd", lab_normal, "bare loop, shared t", shared_t=True)
    p.bare("sgd", threefry, "bare loop, threefry")
    p.bare("sgd", rademacher, "bare loop, rademacher")
    p.bare("sgd", rademacher, "bare, rademacher, shared t", shared_t=True)
    p.scan("sgd", "noise: lab normal", acc_of(lab_normal), zeros)
    p.scan("sgd", "noise: fold_in only", fold_in_only, jnp.zeros((args.runs, 2), jnp.uint32))
    p.scan("sgd", "noise: hash uniform, no erfinv", acc_of(hashed_uniform), zeros)
    p.scan("sgd", "noise: threefry normal", acc_of(threefry), zeros)
    p.scan("sgd", "noise: rademacher", acc_of(rademacher), zeros)
    p.scan("sgd", "gradient", lambda v, sch, key, w, t: w - 1e-3 * v.grad(w), p.w0)
    p.scan("sgd", "schedule", lambda v, sch, key, acc, t: acc + sch(t), jnp.zeros(args.runs))
    p.scan("sgd", "loop floor", lambda v, sch, key, w, t: 0.999 * w, p.w0)
    p.numpy("sgd")
    # GD
    p.sweep("gd")
    p.runner_scan("gd")
    p.runner_scan("gd", "params")
    p.runner_scan("gd", "none")
    p.optax_loop("gd")
    p.bare("gd", None, "bare loop")
    p.bare("gd", None, "bare loop, shared t", shared_t=True)
    p.numpy("gd")
    p.measure()
    print(HEADER)
    for i, row in enumerate(p.rows):
        if i and row.optimizer != p.rows[i - 1].optimizer:
            print()
        print(format_row(row))

    # the bare loops compute the runner's maths: same final iterates up to float rounding
    agree = {}
    for opt in ("sgd", "gd"):
        ref = p.finals[f"{opt} runner scan"]
        for name in ("runner scan - div. check", "optax loop", "bare loop"):
            diff = float(jnp.max(jnp.abs(p.finals[f"{opt} {name}"] - ref)))
            agree[f"{opt} {name}"] = diff
    print("max |w_T - runner's w_T|: " + ", ".join(f"{k} {v:.1e}" for k, v in agree.items()))

    by = {(r.optimizer, r.name): r for r in p.rows}
    for opt in ("sgd", "gd"):
        sweep, numpy_ = by[(opt, "sweep")], by[(opt, "numpy")]
        bare = by[(opt, "bare loop")]
        print(
            f"{opt}: sweep / numpy {sweep.mrs / numpy_.mrs:.2f}x, bare loop / numpy "
            f"{bare.mrs / numpy_.mrs:.2f}x, bare loop / sweep {bare.mrs / sweep.mrs:.2f}x"
        )
    elapsed = time.perf_counter() - t_start
    print(f"total {elapsed:.0f} s, load average now {os.getloadavg()[0]:.1f}")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "profile.json"
    meta = {
        "machine": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": multiprocessing.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "dim": d,
        "runs": args.runs,
        "steps": args.steps,
        "repeats": args.repeats,
        "unroll": runner.UNROLL,
        "matmul_gflops": ceiling,
        "grad_flops_by_hand": grad_flops_by_hand(d),
        "grad_flops_xla": grad_flops,
        "grad_transcendentals_xla": grad_trans,
        "final_iterate_max_abs_diff": agree,
        "seconds_total": elapsed,
        "load_average_1_5_15_min": os.getloadavg(),
    }
    rows = [r.as_dict() for r in p.rows]
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
