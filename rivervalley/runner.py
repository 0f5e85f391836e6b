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
rate (at the optimizer's reported iterate: schedule-free's evaluation point ``x``), and the loss
of any iterate averages the optimizer tracks (``Optimizer.with_averaging``); memory grows with
the number of records, not of steps.  Long sweeps run in chunks of
``chunk_steps`` with a progress bar.  Compilation happens once per static configuration (families,
decay shape, dimensions, number of runs, chunk length): new values of any numeric field reuse it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm import tqdm

from rivervalley import __version__, hessian
from rivervalley import checkpoint as checkpoint_io
from rivervalley.landscapes.base import Landscape
from rivervalley.optimizers import Optimizer
from rivervalley.pytree import batch_shape, batched_fields, broadcast_batch, describe
from rivervalley.results import code_fingerprint
from rivervalley.schedules import Schedule

RECORDED = ("loss", "river_loss", "hill_loss", "river_coord", "hill_dist", "lr")
AVERAGE_RECORDED = ("loss", "river_loss", "hill_loss")  # per iterate average ``a``: ``a_loss``, ...
DEFAULT_CHUNK_STEPS = 10_000
UNROLL = 4  # updates per iteration of the compiled inner loop (fewer loop overheads) ...
UNROLL_MAX_PARAMS = 1024  # ... for runs with at most this many parameters (measured, 2 cores:
# 2x faster GD/SGD on the d=64 valley; for the V=64 bigram table, 4096 parameters, no faster
# and 40% longer to compile)
SHARE_LANDSCAPES_ABOVE = 4096  # unbatched landscapes with more numbers are shared, not copied
MAX_PER_RUN_COORDINATE = 64  # swept fields with more numbers per run are stored once per member


class RunState(NamedTuple):
    """State of one run between updates: parameters, optimizer state, noise key, step ``t``, and
    ``diverged_at``: -1 while the run is finite, else the step at which it stopped being.  For a
    schedule-free optimizer ``params`` is the gradient point ``y``; the reported point ``x`` is
    ``optimizer.eval_params(opt_state, params)``."""

    params: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array
    diverged_at: jax.Array


def init_run(landscape: Landscape, optimizer: Optimizer, schedule: Schedule, key) -> RunState:
    """Initial state of one run from its key (``key = jax.random.key(seed)``)."""
    init_key, noise_key = jax.random.split(key)
    params = landscape.init(init_key)
    opt_state = optimizer.transform(schedule).init(params)
    never = jnp.full((), -1, jnp.int32)
    return RunState(params, opt_state, noise_key, jnp.zeros((), jnp.int32), never)


def _freeze(keep_old: jax.Array, old: Any, new: Any) -> Any:
    return jax.tree_util.tree_map(lambda o, n: jnp.where(keep_old, o, n), old, new)


def update(landscape: Landscape, optimizer: Optimizer, schedule: Schedule, state: RunState):
    """One optimizer step ``w_t -> w_{t+1}`` with rate ``schedule(t)``.

    A run whose new parameters or their loss are not finite is *frozen*: it keeps its last
    finite parameters and optimizer state from then on, and ``diverged_at`` records the step
    (the update that produced the non-finite point)."""
    grad = optimizer.gradient(landscape, state.params, jax.random.fold_in(state.key, state.step))
    updates, opt_state = optimizer.transform(schedule).update(grad, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    healthy = state.diverged_at < 0
    finite = landscape.is_finite(params)
    keep_old = ~(healthy & finite)
    diverged_at = jnp.where(healthy & ~finite, state.step + 1, state.diverged_at)
    return RunState(
        _freeze(keep_old, state.params, params),
        optimizer.freeze_state(keep_old, state.opt_state, opt_state),
        state.key,
        state.step + 1,
        diverged_at,
    )


class Recording(NamedTuple):
    """Optional recorded quantities (static: they change the compiled program).

    ``params``: the iterates themselves; ``sharpness_iters``: if positive, the top Hessian
    eigenvalue of the loss by that many Lanczos iterations (``sharpness``)."""

    params: bool = False
    sharpness_iters: int = 0


DEFAULT_RECORDING = Recording()


def record(
    landscape: Landscape,
    schedule: Schedule,
    state: RunState,
    what: Recording = DEFAULT_RECORDING,
    optimizer: Optimizer | None = None,
) -> dict[str, jax.Array]:
    """The recorded quantities at the current step (``lr`` is the rate of the next update), the
    landscape's ``observables`` and the optional quantities chosen by ``what``.

    With an ``optimizer``, everything is evaluated at its reported iterate
    ``optimizer.eval_params(opt_state, params)`` (for schedule-free the evaluation point ``x``;
    then ``y_loss`` is the loss at the gradient point ``params``), and for each of its iterate
    averages ``a`` (``optimizer.averages``: ``ema``, ``window``) ``a_loss``, ``a_river_loss``
    and ``a_hill_loss`` are recorded (and ``a_params`` if ``what.params``).  Without averaging
    or schedule-free this is the same computation as without an optimizer."""
    point = state.params
    extra = {}
    if optimizer is not None:
        point = optimizer.eval_params(state.opt_state, state.params)
        if optimizer.schedule_free:
            extra["y_loss"] = landscape.loss(state.params)
        for name, average in optimizer.averages(state.opt_state).items():
            average_parts = landscape.decompose(average)
            extra[f"{name}_loss"] = landscape.loss(average)
            extra[f"{name}_river_loss"] = average_parts.river_loss
            extra[f"{name}_hill_loss"] = average_parts.hill_loss
            if what.params:
                extra[f"{name}_params"] = average
    parts = landscape.decompose(point)
    if what.params:
        extra["params"] = point
    if what.sharpness_iters:
        iters = what.sharpness_iters
        extra["sharpness"] = hessian.sharpness(landscape.loss, point, iters=iters)
    extra |= landscape.observables(point)
    return extra | {
        "loss": landscape.loss(point),
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
    what: Recording = DEFAULT_RECORDING,
):
    """Record the state as given, then run ``n_records * record_every`` updates of one run,
    recording after every ``record_every``; returns the final state and ``n_records + 1``
    records.  The record is traced once (the first iteration skips the updates with a
    ``lax.cond`` on an unbatched flag), so a sweep compiles the record and the update once."""

    def one_update(state, _):
        return update(landscape, optimizer, schedule, state), None

    n_params = sum(math.prod(jnp.shape(x)) for x in jax.tree_util.tree_leaves(state.params))

    def updates(state):
        unroll = math.gcd(record_every, UNROLL) if n_params <= UNROLL_MAX_PARAMS else 1
        return jax.lax.scan(one_update, state, None, length=record_every, unroll=unroll)[0]

    def one_record(state, index):
        state = jax.lax.cond(index == 0, lambda s: s, updates, state)
        return state, record(landscape, schedule, state, what, optimizer)

    return jax.lax.scan(one_record, state, jnp.arange(n_records + 1))


_TRACE_COUNT = 0


def trace_count() -> int:
    """How many times the batched runner has been traced (i.e. compiled) in this process."""
    return _TRACE_COUNT


@functools.partial(jax.jit, static_argnames=("n_records", "record_every", "what", "axes"))
def _advance_runs(
    landscape, optimizer, schedule, state, *, n_records, record_every, what, axes=(0, 0, 0)
):
    global _TRACE_COUNT
    _TRACE_COUNT += 1
    step = functools.partial(advance, n_records=n_records, record_every=record_every, what=what)
    return jax.vmap(step, in_axes=(*axes, 0))(landscape, optimizer, schedule, state)


@functools.partial(jax.jit, static_argnames=("axes",))
def _start_runs(landscape, optimizer, schedule, keys, *, axes=(0, 0, 0)):
    def start(landscape, optimizer, schedule, key):
        state = init_run(landscape, optimizer, schedule, key)
        bad_start = ~landscape.is_finite(state.params)
        return state._replace(diverged_at=jnp.where(bad_start, 0, state.diverged_at))

    return jax.vmap(start, in_axes=(*axes, 0))(landscape, optimizer, schedule, keys)


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


def _run_sharding(devices: int | Sequence[Any] | None) -> NamedSharding | None:
    """Sharding of the run axis over ``devices`` (a count of local devices or a list)."""
    if devices is None:
        return None
    if isinstance(devices, int | np.integer):
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices: asked for {devices}, {len(available)} available")
        devices = available[: int(devices)]
    mesh = Mesh(np.asarray(list(devices)), ("runs",))
    return NamedSharding(mesh, PartitionSpec("runs"))


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
    sharpness: int = 0,
    devices: int | Sequence[Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
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
        the progress bar and checkpoints advance per chunk.
    progress
        Show a progress bar (``None``: only on a terminal).
    record_params
        Also record the iterates themselves as ``params`` with dims ``(run, step, param)``
        (flat parameter vectors only; memory grows with the dimension); for a schedule-free
        optimizer the evaluation point ``x``; with iterate averaging also ``ema_params`` and
        ``window_params``.
    sharpness
        If positive, also record ``sharpness``: the top Hessian eigenvalue of the loss at every
        recorded point, by this many Lanczos iterations (``rivervalley.hessian``; ~20 suffice
        for a well-separated top eigenvalue, ``d`` make it exact).
    devices
        Shard the run axis over these devices (or the first ``n`` local devices) with
        ``jax.sharding``; runs are padded to a multiple of the device count.  Results are
        identical to a single-device sweep.
    checkpoint
        A file to which the state and records are written (atomically) after every chunk; if it
        already holds a checkpoint of this exact sweep, the sweep resumes from it.  Default: none,
        or a file in the folder of an enclosing ``checkpoint.directory(...)`` context (which
        ``results.cached``, the demo and every experiment use).

    Returns
    -------
    Dataset with dims ``run`` and ``step``; variables ``loss``, ``river_loss``, ``hill_loss``,
    ``river_coord``, ``hill_dist`` and ``lr`` of shape ``(run, step)``, the landscape's
    ``observables`` (e.g. per-class losses of the language models, with their extra dimension),
    for an optimizer with iterate averaging (``Optimizer.with_averaging``) ``ema_loss``,
    ``ema_river_loss``, ``ema_hill_loss`` and / or ``window_loss``, ``window_river_loss``,
    ``window_hill_loss`` (the landscape at the averaged iterates), for a schedule-free optimizer
    the loss and its decomposition at the evaluation point ``x`` and ``y_loss`` at the gradient
    point ``y``, and per run ``diverged``
    (bool) and ``diverged_step`` (the update after which the run stopped being finite; -1 if
    never).  A diverged run is frozen at its last finite state.  Coordinates: ``seed``,
    ``landscape``, ``optimizer``, ``schedule`` (kinds) and one per swept field, along ``run``;
    a swept field of more than ``MAX_PER_RUN_COORDINATE`` numbers per run (e.g. the rates of
    ``schedules.tabulated``) is stored once per batch member instead, along ``<component>_batch``,
    with ``<component>_index`` giving each run's member.
    """
    if not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps: need a positive integer number of updates, got {steps!r}")
    if not isinstance(record_every, int | np.integer) or not 1 <= record_every <= steps:
        raise ValueError(
            f"record_every: need an integer in [1, steps={steps}], got {record_every!r}"
        )
    if steps % record_every:
        raise ValueError(f"steps={steps} must be a multiple of record_every={record_every}")
    if not isinstance(sharpness, int | np.integer) or sharpness < 0:
        raise ValueError(f"sharpness: need a non-negative number of iterations, got {sharpness!r}")
    seed_values = _seed_array(seeds)
    landscape.validate()
    optimizer.validate()
    schedule.validate(int(steps))
    comps = _components(landscape, optimizer, schedule)
    sizes = [(batch_shape(comp) or (1,))[0] for comp in comps.values()] + [len(seed_values)]
    index = [i.ravel() for i in np.indices(sizes)]
    n_runs = math.prod(sizes)
    sharding = _run_sharding(devices)
    n_padded = n_runs
    if sharding is not None:
        n_dev = sharding.mesh.size
        n_padded = math.ceil(n_runs / n_dev) * n_dev
    padded = [np.concatenate([i, np.full(n_padded - n_runs, i[-1])]) for i in index]

    def gathered(name, comp) -> bool:
        """Whether a component is gathered to one entry per run (``vmap`` axis 0) rather than
        shared by all runs (axis ``None``).  Batched components are gathered; so is a small
        unbatched landscape, which XLA compiles to faster elementwise code than broadcasting
        shared parameters (measured: 8.5 vs 4.4 M run-steps/s for GD on the d=64 valley).  A
        large one (e.g. a language model's corpus) is shared, not copied per run."""
        if batch_shape(comp):
            return True
        size = sum(np.size(x) for x in jax.tree_util.tree_leaves(comp))
        return name == "landscape" and size <= SHARE_LANDSCAPES_ABOVE

    def per_run(name, comp, idx):
        """A component gathered to one entry per run, or itself if shared."""
        if not gathered(name, comp):
            return comp
        comp = broadcast_batch(comp, batch_shape(comp) or (1,))
        per = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[idx], comp)
        return per if sharding is None else jax.device_put(per, sharding)

    args = tuple(per_run(n, c, i) for (n, c), i in zip(comps.items(), padded, strict=False))
    axes = tuple(0 if gathered(n, c) else None for n, c in comps.items())
    keys = jax.vmap(jax.random.key)(jnp.asarray(seed_values[padded[-1]], dtype=jnp.uint32))
    if sharding is not None:
        keys = jax.device_put(keys, sharding)

    n_total = steps // record_every
    chunk = max(1, (chunk_steps or DEFAULT_CHUNK_STEPS) // record_every)
    n_chunks = math.ceil(n_total / chunk)
    chunk = math.ceil(n_total / n_chunks)
    config = _config(comps, seed_values, steps, record_every)

    what = Recording(params=record_params, sharpness_iters=sharpness)
    state = _start_runs(*args, keys, axes=axes)
    pieces = []
    done = 0
    fingerprint = _fingerprint(config, chunk, what, n_padded)
    if checkpoint is None:
        checkpoint = checkpoint_io.default_path(fingerprint)
    if checkpoint is not None:
        resumed = checkpoint_io.load(checkpoint, fingerprint, state)
        if resumed is not None:
            state, saved, done = resumed
            pieces = [saved]
            print(
                f"sweep: resumed from {checkpoint} at step {done * record_every}", file=sys.stderr
            )
            if sharding is not None:
                state = jax.device_put(state, sharding)
    disable = None if progress is None else not progress
    with tqdm(total=steps, initial=done * record_every, unit="step", disable=disable) as bar:
        while done < n_total:
            n = min(chunk, n_total - done)
            state, recs = _advance_runs(
                *args,
                state,
                n_records=n,
                record_every=record_every,
                what=what,
                axes=axes,
            )
            # every chunk starts by recording its initial state: a repeat except in the first
            skip = 1 if done else 0
            pieces.append({k: _to_host(v)[:, skip:] for k, v in recs.items()})
            done += n
            if checkpoint is not None:
                pieces = [_join(pieces)]  # the checkpoint holds every record so far
                checkpoint_io.save(checkpoint, fingerprint, state, pieces[0], done)
            bar.update(n * record_every)

    diverged_at = _to_host(state.diverged_at)[:n_runs].astype(np.int64)
    data = {k: v[:n_runs] for k, v in _join(pieces).items()}
    return _dataset(data, diverged_at, comps, index, seed_values, config, landscape)


def _join(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate chunks of records along the step axis (once, not once per chunk)."""
    return {k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]}


def _to_host(x: jax.Array) -> np.ndarray:
    """A (possibly sharded) array as a NumPy array on this host; across several processes
    (``jax.distributed``) every host receives all runs."""
    if jax.process_count() > 1:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _config(comps, seed_values, steps, record_every) -> dict[str, Any]:
    return {
        "steps": steps,
        "record_every": record_every,
        "seeds": seed_values.tolist(),
        **{name: describe(comp) for name, comp in comps.items()},
    }


def _fingerprint(config, chunk, what: Recording, n_padded) -> str:
    """Everything a checkpoint's contents depend on, as one string."""
    extra = {"chunk": chunk, "recording": what._asdict(), "padded_runs": n_padded}
    text = json.dumps({"config": config, **extra}, sort_keys=True) + code_fingerprint()
    return hashlib.sha256(text.encode()).hexdigest()


def _dataset(data, diverged_at, comps, index, seed_values, config, landscape) -> xr.Dataset:
    n_runs = len(index[-1])
    extra_dims = landscape.observable_dims()
    coords: dict[str, Any] = {
        "step": np.arange(0, config["steps"] + 1, config["record_every"]),
        "seed": ("run", seed_values[index[-1]]),
    }
    for name, comp in comps.items():
        kind = getattr(comp, "kind", None) or getattr(comp, "name", type(comp).__name__)
        coords[name] = ("run", np.full(n_runs, kind))
    for (cname, field), coord in _coordinate_names(comps).items():
        comp = comps[cname]
        values = np.asarray(getattr(broadcast_batch(comp, batch_shape(comp)), field))
        which = index[list(comps).index(cname)]
        inner = tuple(f"{coord}_dim{i}" for i in range(values.ndim - 1))
        if values[0].size <= MAX_PER_RUN_COORDINATE:
            coords[coord] = (("run", *inner), values[which])
        else:  # e.g. tabulated rates: stored once per batch member, not once per run
            coords[f"{cname}_index"] = ("run", which)
            coords[coord] = ((f"{cname}_batch", *inner), values)
    attrs = {
        "rivervalley_version": __version__,
        "config": json.dumps(config, sort_keys=True),
        "decomposition": landscape.decomposition_method(),
    }
    variables: dict[str, Any] = {}
    for k, v in data.items():
        if k in extra_dims:
            dim, labels = extra_dims[k]
            coords[dim] = labels
            variables[k] = (("run", "step", dim), v)
        else:
            variables[k] = (("run", "step", "param")[: v.ndim], v)
    variables["diverged"] = ("run", diverged_at >= 0)
    variables["diverged_step"] = ("run", diverged_at)
    return xr.Dataset(variables, coords=coords, attrs=attrs)
