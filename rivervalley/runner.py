r"""``sweep``: many optimisation runs in one compiled ``jit(vmap(scan))`` call.

A *run* is one (landscape, optimizer, schedule, seed).  The single-run program is

.. code-block:: text

    w_0 = landscape.init(k_init)               (k_init, k_noise) = split(key(seed))
    g_t = optimizer.gradient(landscape, w_t, fold_in(k_noise, t))
    w_{t+1} = w_t + optax update(g_t; learning rate schedule(t))

scanned over ``t`` with ``lax.scan``.  ``sweep`` vmaps it over the Cartesian product of the batch
axes of the landscape, optimizer and schedule (each unbatched or with one batch axis) and the
seeds.  The noise of step ``t`` depends only on (seed, t), so runs with the same seed share their
noise across schedules (common random numbers) and results do not depend on chunking.

Every ``record_every`` updates the runner records the loss, its river/hill decomposition and the
rate; memory grows with the number of records, not of steps.  Long sweeps run in chunks of
``chunk_steps`` with a progress bar.  Compilation happens once per static configuration (families,
decay shape, dimensions, number of runs, chunk length): new values of any numeric field reuse it.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from tqdm.auto import tqdm

from rivervalley import __version__
from rivervalley._pytree import batch_shape, batched_fields, broadcast_batch, describe
from rivervalley.landscapes.base import Landscape
from rivervalley.optimizers import Optimizer
from rivervalley.schedules import Schedule

RECORDED = ("loss", "river_loss", "hill_loss", "river_coord", "hill_dist", "lr")
DEFAULT_CHUNK_STEPS = 10_000


class RunState(NamedTuple):
    """State of one run between updates: parameters, optimizer state, noise key, step ``t``."""

    params: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array


def init_run(landscape: Landscape, optimizer: Optimizer, schedule: Schedule, key) -> RunState:
    """Initial state of one run from its key (``key = jax.random.key(seed)``)."""
    init_key, noise_key = jax.random.split(key)
    params = landscape.init(init_key)
    opt_state = optimizer.transform(schedule).init(params)
    return RunState(params, opt_state, noise_key, jnp.zeros((), jnp.int32))


def update(landscape: Landscape, optimizer: Optimizer, schedule: Schedule, state: RunState):
    """One optimizer step ``w_t -> w_{t+1}`` with rate ``schedule(t)``."""
    grad = optimizer.gradient(landscape, state.params, jax.random.fold_in(state.key, state.step))
    updates, opt_state = optimizer.transform(schedule).update(grad, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return RunState(params, opt_state, state.key, state.step + 1)


def record(
    landscape: Landscape, schedule: Schedule, state: RunState, *, with_params: bool = False
) -> dict[str, jax.Array]:
    """The recorded quantities at the current step (``lr`` is the rate of the next update);
    with ``with_params`` also the parameters themselves (``params``)."""
    parts = landscape.decompose(state.params)
    extra = {"params": state.params} if with_params else {}
    return extra | {
        "loss": landscape.loss(state.params),
        "river_loss": parts.river_loss,
        "hill_loss": parts.hill_loss,
        "river_coord": parts.river_coord,
        "hill_dist": parts.hill_dist,
        "lr": schedule(state.step),
    }


def advance(
    landscape,
    optimizer,
    schedule,
    state: RunState,
    *,
    n_records: int,
    record_every: int,
    with_params: bool = False,
):
    """Run ``n_records * record_every`` updates of one run, recording after every
    ``record_every``; returns the final state and records of shape ``(n_records,)``."""

    def one_record(state, _):
        state = jax.lax.fori_loop(
            0, record_every, lambda _, s: update(landscape, optimizer, schedule, s), state
        )
        return state, record(landscape, schedule, state, with_params=with_params)

    return jax.lax.scan(one_record, state, None, length=n_records)


_TRACE_COUNT = 0


def trace_count() -> int:
    """How many times the batched runner has been traced (i.e. compiled) in this process."""
    return _TRACE_COUNT


@functools.partial(jax.jit, static_argnames=("n_records", "record_every", "with_params"))
def _advance_runs(landscape, optimizer, schedule, state, *, n_records, record_every, with_params):
    global _TRACE_COUNT
    _TRACE_COUNT += 1
    step = functools.partial(
        advance, n_records=n_records, record_every=record_every, with_params=with_params
    )
    return jax.vmap(step)(landscape, optimizer, schedule, state)


@functools.partial(jax.jit, static_argnames=("with_params",))
def _start_runs(landscape, optimizer, schedule, keys, *, with_params):
    state = jax.vmap(init_run)(landscape, optimizer, schedule, keys)
    first = jax.vmap(functools.partial(record, with_params=with_params))(landscape, schedule, state)
    return state, first


def _seed_array(seeds: int | Sequence[int]) -> np.ndarray:
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise ValueError(f"seeds: need a positive count of seeds, got {seeds}")
        return np.arange(int(seeds), dtype=np.int64)
    arr = np.asarray(seeds)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"seeds: need a count or a non-empty list of ints, got {seeds!r}")
    if arr.min() < 0 or arr.max() >= 2**32:
        raise ValueError(f"seeds: each seed must be in [0, 2**32), got {seeds!r}")
    return arr.astype(np.int64)


def _components(landscape, optimizer, schedule) -> dict[str, Any]:
    comps = {"landscape": landscape, "optimizer": optimizer, "schedule": schedule}
    for name, comp in comps.items():
        if len(batch_shape(comp)) > 1:
            raise ValueError(
                f"{name}: at most one batch axis is supported, got batch shape "
                f"{batch_shape(comp)}; flatten it (e.g. schedules.grid builds a flat batch)"
            )
    return comps


def _coordinate_names(comps: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Dataset coordinate name for every swept field; prefixed by the component on a clash."""
    fields = [(c, f) for c, comp in comps.items() for f in batched_fields(comp)]
    counts: dict[str, int] = {}
    for _, f in fields:
        counts[f] = counts.get(f, 0) + 1
    reserved = {"run", "step", "seed", *comps, *RECORDED}
    return {(c, f): f if counts[f] == 1 and f not in reserved else f"{c}_{f}" for c, f in fields}


def sweep(
    landscape: Landscape,
    optimizer: Optimizer,
    schedule: Schedule,
    *,
    seeds: int | Sequence[int],
    steps: int,
    record_every: int = 1,
    chunk_steps: int | None = None,
    progress: bool | None = None,
    record_params: bool = False,
) -> xr.Dataset:
    """Run every combination of the batched components and seeds; return an ``xarray.Dataset``.

    Parameters
    ----------
    landscape, optimizer, schedule
        Each unbatched or with one batch axis (e.g. from ``schedules.grid``).  Runs are the
        Cartesian product landscape x optimizer x schedule x seeds, in that (row-major) order.
    seeds
        A count ``n`` (seeds ``0..n-1``) or a list of non-negative ints.
    steps
        Number of updates per run; a multiple of ``record_every``.
    record_every
        Record after every this many updates.  Coordinate ``step = t`` holds the state after ``t``
        updates (``step = 0`` is the start) and ``lr`` the rate of update ``t``.
    chunk_steps
        Updates per compiled call (default ``DEFAULT_CHUNK_STEPS``, rounded to whole records);
        the progress bar advances per chunk.
    progress
        Show a progress bar (``None``: only on a terminal).
    record_params
        Also record the iterates themselves as ``params`` with dims ``(run, step, param)``
        (flat parameter vectors only; memory grows with the dimension).

    Returns
    -------
    Dataset with dims ``run`` and ``step``; variables ``loss``, ``river_loss``, ``hill_loss``,
    ``river_coord``, ``hill_dist`` and ``lr`` of shape ``(run, step)``; coordinates ``seed``,
    ``landscape``, ``optimizer``, ``schedule`` (kinds) and one per swept field.
    """
    if not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps: need a positive integer number of updates, got {steps!r}")
    if not isinstance(record_every, int | np.integer) or not 1 <= record_every <= steps:
        raise ValueError(
            f"record_every: need an integer in [1, steps={steps}], got {record_every!r}"
        )
    if steps % record_every:
        raise ValueError(f"steps={steps} must be a multiple of record_every={record_every}")
    seed_values = _seed_array(seeds)
    comps = _components(landscape, optimizer, schedule)
    sizes = [(batch_shape(comp) or (1,))[0] for comp in comps.values()] + [len(seed_values)]
    index = [i.ravel() for i in np.indices(sizes)]
    n_runs = math.prod(sizes)

    def per_run(comp, idx):
        batch = batch_shape(comp) or (1,)
        return jax.tree_util.tree_map(lambda x: x[idx], broadcast_batch(comp, batch))

    run_comps = {n: per_run(c, i) for (n, c), i in zip(comps.items(), index, strict=False)}
    keys = jax.vmap(jax.random.key)(jnp.asarray(seed_values[index[-1]], dtype=jnp.uint32))
    args = (run_comps["landscape"], run_comps["optimizer"], run_comps["schedule"])

    n_total = steps // record_every
    chunk = max(1, (chunk_steps or DEFAULT_CHUNK_STEPS) // record_every)
    n_chunks = math.ceil(n_total / chunk)
    chunk = math.ceil(n_total / n_chunks)

    state, first = _start_runs(*args, keys, with_params=record_params)
    pieces = [jax.tree_util.tree_map(lambda x: np.asarray(x)[:, None], first)]
    disable = None if progress is None else not progress
    with tqdm(total=steps, unit="step", disable=disable, desc="sweep") as bar:
        done = 0
        while done < n_total:
            n = min(chunk, n_total - done)
            state, recs = _advance_runs(
                *args, state, n_records=n, record_every=record_every, with_params=record_params
            )
            pieces.append(jax.tree_util.tree_map(np.asarray, recs))
            done += n
            bar.update(n * record_every)

    data = {k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]}
    return _dataset(data, comps, index, seed_values, n_runs, steps, record_every)


def _dataset(data, comps, index, seed_values, n_runs, steps, record_every) -> xr.Dataset:
    coords: dict[str, Any] = {
        "step": np.arange(0, steps + 1, record_every),
        "seed": ("run", seed_values[index[-1]]),
    }
    for name, comp in comps.items():
        kind = getattr(comp, "kind", None) or getattr(comp, "name", type(comp).__name__)
        coords[name] = ("run", np.full(n_runs, kind))
    for (cname, field), coord in _coordinate_names(comps).items():
        comp = comps[cname]
        values = np.asarray(getattr(broadcast_batch(comp, batch_shape(comp)), field))
        values = values[index[list(comps).index(cname)]]
        dims = ("run", *(f"{coord}_dim{i}" for i in range(values.ndim - 1)))
        coords[coord] = (dims, values)
    config = {
        "steps": steps,
        "record_every": record_every,
        "seeds": seed_values.tolist(),
        **{name: describe(comp) for name, comp in comps.items()},
    }
    attrs = {"rivervalley_version": __version__, "config": json.dumps(config, sort_keys=True)}
    variables = {k: (("run", "step", "param")[: v.ndim], v) for k, v in data.items()}
    return xr.Dataset(variables, coords=coords, attrs=attrs)
