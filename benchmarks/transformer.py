"""Throughput of the tiny transformer (``rivervalley.lm.transformer``): many runs in one
``sweep`` against the same runs one after another, each a jitted ``lax.scan`` of the same step.

    python benchmarks/transformer.py [--runs 32] [--steps 2000] [--rounds 3] [--quick]

Both methods run R seeds of the default model (Adam, WSD, ``batch_size`` windows of ``context``
tokens per step, the loss of the validation batch recorded every ``record_every`` steps, no
river / hill split) with the runner's keys (``split(key(seed))``; the minibatch of update ``t``
from ``fold_in(k_noise, t)``), so their recorded losses agree (printed: the largest difference).
Both are compiled before timing (warm-up call, not timed); the rounds interleave the methods in
one process and the medians and ranges are printed, never asserted.  Figures: run-steps per
second, tokens per second (runs x steps x batch x context / seconds), the ratio sweep / loop and
the wall time of 32 runs x 2000 steps extrapolated from each.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rivervalley import lm, optimizers, schedules
from rivervalley.runner import sweep


def _setup(args: argparse.Namespace) -> tuple[lm.Transformer, Any]:
    model = lm.transformer(batch_size=args.batch_size, context=args.context, relax_steps=0)
    schedule = schedules.wsd(args.peak, args.steps, 0.2, warmup_steps=args.steps // 20)
    return model, schedule


def run_sweep(model, schedule, args) -> np.ndarray:
    """The lab: every run in one compiled call; the recorded losses ``(runs, records)``."""
    ds = sweep(
        model,
        optimizers.adam(),
        schedule,
        seeds=args.runs,
        steps=args.steps,
        record_every=args.record_every,
        progress=False,
    )
    return np.asarray(ds["loss"].values)


def loop_program(model, schedule, args):
    """One run as a jitted ``lax.scan`` (records of ``record_every`` updates each)."""
    tx = optimizers.adam().transform(schedule)

    @jax.jit
    def one_run(seed):
        init_key, noise_key = jax.random.split(jax.random.key(seed))
        w = model.init(init_key)

        def update(carry, t):
            w, state = carry
            grad = model.stochastic_grad(w, jax.random.fold_in(noise_key, t))
            updates, state = tx.update(grad, state, w)
            return (optax.apply_updates(w, updates), state), None

        def block(carry, r):
            ts = r * args.record_every + jnp.arange(args.record_every)
            carry, _ = jax.lax.scan(update, carry, ts)
            return carry, model.loss(carry[0])

        n = args.steps // args.record_every
        _, losses = jax.lax.scan(block, (w, tx.init(w)), jnp.arange(n))
        return jnp.concatenate([model.loss(w)[None], losses])

    return one_run


def run_loop(one_run, args) -> np.ndarray:
    """The runs one after another with the same compiled program."""
    return np.stack([np.asarray(one_run(seed)) for seed in range(args.runs)])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--record-every", type=int, default=100)
    parser.add_argument("--peak", type=float, default=3e-3)
    parser.add_argument("--quick", action="store_true", help="4 runs x 40 steps, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.steps, args.rounds, args.record_every = 4, 40, 2, 10
    model, schedule = _setup(args)
    one_run = loop_program(model, schedule, args)
    print(
        f"{args.runs} runs x {args.steps} steps, {model.n_params:,} parameters, "
        f"{args.batch_size} x {args.context} tokens a step, Adam, WSD; "
        f"{jax.device_count()} {jax.default_backend()} device(s)"
    )
    print("warm-up (compiles both programs; not timed) ...", flush=True)
    a, b = run_sweep(model, schedule, args), run_loop(one_run, args)
    diff = float(np.max(np.abs(a - b)))
    print(f"correctness: largest |sweep - loop| over the recorded losses = {diff:.2e} nats")
    times: dict[str, list[float]] = {"sweep": [], "loop": []}
    for _ in range(args.rounds):
        for name in ("sweep", "loop"):  # interleaved: load changes hit both
            start = time.perf_counter()
            if name == "sweep":
                run_sweep(model, schedule, args)
            else:
                run_loop(one_run, args)
            times[name].append(time.perf_counter() - start)
    run_steps = args.runs * args.steps
    tokens = run_steps * args.batch_size * args.context
    out: dict[str, Any] = {"max_abs_difference": diff}
    for name, ts in times.items():
        med = float(np.median(ts))
        out[name] = {
            "seconds_median": med,
            "seconds_range": [min(ts), max(ts)],
            "run_steps_per_s": run_steps / med,
            "tokens_per_s": tokens / med,
            "minutes_for_32x2000": 32 * 2000 / (run_steps / med) / 60,
        }
        print(
            f"{name:6s} {med:8.2f} s (range {min(ts):.2f}-{max(ts):.2f}) "
            f"{run_steps / med:9.1f} run-steps/s {tokens / med:10.0f} tokens/s "
            f"-> 32 x 2000 steps in {out[name]['minutes_for_32x2000']:.1f} min"
        )
    ratios = [lo / sw for sw, lo in zip(times["sweep"], times["loop"], strict=True)]
    out["ratio"] = {"median": float(np.median(ratios)), "range": [min(ratios), max(ratios)]}
    print(
        f"sweep / loop speed ratio: x{np.median(ratios):.2f} "
        f"(per round {min(ratios):.2f}-{max(ratios):.2f}, {args.rounds} rounds)"
    )
    return out


if __name__ == "__main__":
    main()
