r"""``sweep``: many optimisation runs in one compiled ``jit(vmap(scan))`` call.

A *run* is one (landscape, optimizer, schedule, seed).  The single-run program is

.. code-block:: text

    w_0 = landscape.init(k_init)               (k_init, k_noise) = split(key(seed))
    g_t = gradient(landscape, w_t, fold_in(k_noise, t))   (stochastic, or exact: sweep(gradient=))
    w_{t+1} = w_t + optax update(g_t; learning rate schedule(t))

scanned over ``t`` with ``lax.scan``.  ``sweep`` vmaps it over the Cartesian product of the
components' labelled axes (``rivervalley.axes``: a named axis for a dict of components, one dim
per swept field) and the seeds, and returns a Dataset with one dimension per axis
(``rivervalley.records``).  The noise of step ``t`` depends only on (seed, t), so runs with the
same seed share their noise across schedules and optimizers (common random numbers) and results
do not depend on chunking.

Every ``record_every`` updates the runner records the loss, its river/hill decomposition and the
rate (at the optimizer's reported iterate: schedule-free's evaluation point ``x``), the loss of
any iterate averages the optimizer tracks (``optimizers.with_averaging``) and the outputs of a
user's ``save(point, landscape)`` function; memory grows with the number of records, not of
steps.  Long sweeps run in chunks of ``chunk_steps`` with a progress bar.

The compiled core is public: ``start_runs`` (the initial states of a batch of runs) and
``advance_runs`` (record, then advance every run by whole records), both ``jit(vmap(...))`` of
the single-run ``init_run`` / ``advance``.  Compilation happens once per static configuration
(families, decay shapes, dimensions, number of runs, chunk length): new values of any numeric
field reuse it.  Schedules of different kinds in one sweep share one program (``Switch``);
landscapes or optimizers of different structure (e.g. SGD and AdamW, whose states differ) run
as one compiled group each and are joined into one Dataset.

A run *diverges* when an update makes its parameters or loss non-finite, or when its loss at a
record exceeds ``blow_up`` times ``max(1, L(w_0))``: it is frozen at its last finite state, its
records read NaN from then on (so ``skipna`` means skip it) and ``diverged`` / ``diverged_step``
say when.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm import tqdm

from rivervalley import checkpoint as checkpoint_io
from rivervalley import hessian, records
from rivervalley.axes import Layout, layout
from rivervalley.landscapes.base import Landscape
from rivervalley.optimizers import Optimizer, as_optimizer
from rivervalley.pytree import describe, describe_callable, flatten_batch
from rivervalley.records import AVERAGE_RECORDED, RECORDED
from rivervalley.results import code_fingerprint
from rivervalley.schedules import Schedule, Switch
from rivervalley.validation import choice

__all__ = [
    "AVERAGE_RECORDED",
    "BLOW_UP",
    "GRADIENTS",
    "RECORDED",
    "Options",
    "RunState",
    "advance",
    "advance_runs",
    "gradient",
    "init_run",
    "record",
    "start_runs",
    "sweep",
    "trace_count",
    "update",
]

GRADIENTS = ("stochastic", "exact")
HORIZONS = ("match", "free")
BLOW_UP = 1e8  # a record's loss above BLOW_UP * max(1, L(w_0)) counts as divergence
DEFAULT_CHUNK_STEPS = 10_000
UNROLL = 4  # updates per iteration of the compiled inner loop (fewer loop overheads) ...
UNROLL_MAX_PARAMS = 1024  # ... for runs with at most this many parameters (measured, 2 cores:
# 2x faster GD/SGD on the d=64 valley; for the V=64 bigram table, 4096 parameters, no faster
# and 40% longer to compile)
SHARE_LANDSCAPES_ABOVE = 4096  # unbatched landscapes with more numbers are shared, not copied
KEEP_AFTER_DIVERGENCE = ("lr",)  # records that stay defined after a run diverged


class RunState(NamedTuple):
    """State of one run between updates: parameters, optimizer state, noise key, step ``t``,
    ``diverged_at`` (-1 while the run is healthy, else the step at which it diverged) and
    ``blow_up`` (the loss above which a record counts as divergence).  For a schedule-free
    optimizer ``params`` is the gradient point ``y``; the reported point ``x`` is
    ``optimizer.eval_params(opt_state, params)``."""

    params: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array
    diverged_at: jax.Array
    blow_up: jax.Array


class Options(NamedTuple):
    """Static settings of the compiled program.

    ``gradient``: ``"stochastic"`` (``landscape.stochastic_grad``) or ``"exact"``
    (``landscape.grad``: full-batch); ``params``: record the iterates; ``sharpness_iters``: if
    positive, record the top Hessian eigenvalue by that many Lanczos iterations; ``save``: a
    function ``save(point, landscape) -> {name: array}`` whose outputs are recorded too;
    ``split_every``: the river / hill split (``landscape.decompose``) and the sharpness at every
    this many records only (record ``0, k, 2k, ...``), NaN at the others; ``preconditioned``:
    with ``sharpness_iters``, also Adam's preconditioned sharpness (``adam_sharpness``);
    ``hill_directions``: with ``sharpness_iters``, also ``projected_hill`` in that many top
    Hessian eigendirections (``hessian.projected_hill``)."""

    gradient: str = "stochastic"
    params: bool = False
    sharpness_iters: int = 0
    save: Callable[[Any, Any], Mapping[str, Any]] | None = None
    split_every: int = 1
    preconditioned: bool = False
    hill_directions: int = 0


DEFAULT_OPTIONS = Options()


def gradient(landscape: Landscape, w: Any, key: jax.Array, mode: str = "stochastic") -> Any:
    """The gradient a run sees: ``landscape.stochastic_grad(w, key)`` or, for ``mode="exact"``,
    ``landscape.grad(w)``."""
    if mode == "exact":
        return landscape.grad(w)
    return landscape.stochastic_grad(w, key)


def init_run(
    landscape: Landscape, optimizer: Optimizer, schedule: Any, key, blow_up: float = BLOW_UP
) -> RunState:
    """Initial state of one run from its key (``key = jax.random.key(seed)``)."""
    init_key, noise_key = jax.random.split(key)
    params = landscape.init(init_key)
    opt_state = optimizer.transform(schedule).init(params)
    never = jnp.full((), -1, jnp.int32)
    start = landscape.loss(optimizer.eval_params(opt_state, params))
    threshold = blow_up * jnp.maximum(1.0, jnp.abs(start))
    return RunState(params, opt_state, noise_key, jnp.zeros((), jnp.int32), never, threshold)


def _freeze(keep_old: jax.Array, old: Any, new: Any) -> Any:
    return jax.tree_util.tree_map(lambda o, n: jnp.where(keep_old, o, n), old, new)


def update(
    landscape: Landscape,
    optimizer: Optimizer,
    schedule: Any,
    state: RunState,
    mode: str = "stochastic",
) -> RunState:
    """One optimizer step ``w_t -> w_{t+1}`` with rate ``schedule(t)``.

    A run whose new parameters or their loss are not finite is *frozen*: it keeps its last
    finite parameters and optimizer state from then on, and ``diverged_at`` records the step
    (the update that produced the non-finite point)."""
    grad = gradient(landscape, state.params, jax.random.fold_in(state.key, state.step), mode)
    updates, opt_state = optimizer.transform(schedule).update(grad, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    healthy = state.diverged_at < 0
    finite = landscape.is_finite(params)
    keep_old = ~(healthy & finite)
    diverged_at = jnp.where(healthy & ~finite, state.step + 1, state.diverged_at)
    return state._replace(
        params=_freeze(keep_old, state.params, params),
        opt_state=optimizer.freeze_state(keep_old, state.opt_state, opt_state),
        step=state.step + 1,
        diverged_at=diverged_at,
    )


def _when_due(measure: Callable[[Any], Any], point: Any, due: jax.Array | None):
    """``measure(point)``, or, when ``due`` (an unbatched flag) is given and false, the same
    structure filled with NaN (``lax.cond``: the measurement is not computed then)."""
    if due is None:
        return measure(point)
    shapes = jax.eval_shape(measure, point)
    blank = jax.tree_util.tree_map(lambda x: jnp.full(x.shape, jnp.nan, x.dtype), shapes)
    return jax.lax.cond(due, measure, lambda _: blank, point)


def adam_sharpness(
    landscape: Landscape, optimizer: Optimizer, opt_state: Any, point: jax.Array, iters: int
) -> jax.Array:
    r"""Adam's preconditioned sharpness at ``point``: ``lambda_max(diag(s) H)`` with
    ``s = 1 / (sqrt(nu_hat) + eps)``, ``nu_hat = nu / (1 - beta_2^t)`` the bias-corrected second
    moment of the optimizer's (one) ``optax.ScaleByAdamState`` (``hessian.preconditioned_
    sharpness``); Adam at rate ``eta`` with ``beta_1 = 0.9`` is stable on a quadratic while
    this is below ``38 / eta``.  NaN before the first update or for an optimizer without an
    Adam state; ``beta_2`` and ``eps`` are the optimizer's hyperparameters (optax's defaults
    when not given)."""
    found = [
        x
        for x in jax.tree_util.tree_leaves(
            opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState)
        )
        if isinstance(x, optax.ScaleByAdamState)
    ]
    nu = jnp.asarray(found[0].nu) if len(found) == 1 else None
    if nu is None or nu.shape != jnp.shape(point):
        return jnp.full((), jnp.nan, jnp.result_type(point))
    count = jnp.asarray(found[0].count)
    b2 = optimizer.hyperparams.get("b2", 0.999)
    eps = optimizer.hyperparams.get("eps", 1e-8)
    t = jnp.maximum(count, 1).astype(point.dtype)
    nu_hat = nu / (1.0 - jnp.asarray(b2, point.dtype) ** t)
    scale = 1.0 / (jnp.sqrt(nu_hat) + eps)
    value = hessian.preconditioned_sharpness(landscape.loss, point, scale, iters=iters)
    return jnp.where(count > 0, value, jnp.nan)


def record(
    landscape: Landscape,
    schedule: Any,
    state: RunState,
    what: Options = DEFAULT_OPTIONS,
    optimizer: Optimizer | None = None,
    split_due: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """The recorded quantities at the current step (``lr`` is the rate of the next update; none
    without a schedule), the landscape's ``observables``, the optional quantities chosen by
    ``what`` and the outputs of ``what.save``.

    With an ``optimizer``, everything is evaluated at its reported iterate
    ``optimizer.eval_params(opt_state, params)`` (for schedule-free the evaluation point ``x``;
    then ``y_loss`` is the loss at the gradient point ``params``), and for each of its iterate
    averages ``a`` (``optimizer.averages``: ``ema``, ``window``) ``a_loss``, ``a_river_loss``
    and ``a_hill_loss`` are recorded (and ``a_params`` if ``what.params``).  ``split_due``
    (an unbatched boolean, ``what.split_every > 1``): whether this record computes the river /
    hill split and the sharpness (else they read NaN)."""
    point = state.params
    extra = {}
    if optimizer is not None:
        point = optimizer.eval_params(state.opt_state, state.params)
        if optimizer.schedule_free:
            extra["y_loss"] = landscape.loss(state.params)
        for name, average in optimizer.averages(state.opt_state).items():
            average_parts = _when_due(landscape.decompose, average, split_due)
            extra[f"{name}_loss"] = landscape.loss(average)
            extra[f"{name}_river_loss"] = average_parts.river_loss
            extra[f"{name}_hill_loss"] = average_parts.hill_loss
            if what.params:
                extra[f"{name}_params"] = average
    parts = _when_due(landscape.decompose, point, split_due)
    if what.params:
        extra["params"] = point
    if what.sharpness_iters:
        iters = what.sharpness_iters
        sharpness = functools.partial(hessian.sharpness, landscape.loss, iters=iters)
        extra["sharpness"] = _when_due(sharpness, point, split_due)
        if what.hill_directions:
            projected = functools.partial(
                hessian.projected_hill, landscape.loss, k=what.hill_directions, iters=iters
            )
            extra["projected_hill"] = _when_due(projected, point, split_due)
        if what.preconditioned and optimizer is not None:
            extra["preconditioned_sharpness"] = _when_due(
                lambda p: adam_sharpness(landscape, optimizer, state.opt_state, p, iters),
                point,
                split_due,
            )
    extra |= landscape.observables(point)
    if what.save is not None:
        extra |= {k: jnp.asarray(v) for k, v in what.save(point, landscape).items()}
    out = extra | {
        "loss": landscape.loss(point),
        "river_loss": parts.river_loss,
        "hill_loss": parts.hill_loss,
        "river_coord": parts.river_coord,
        "hill_dist": parts.hill_dist,
    }
    if schedule is not None:
        out["lr"] = schedule(state.step)
    return out


def _blank_if_diverged(state: RunState, rec: dict[str, jax.Array]):
    """Mark a run whose recorded loss is not below its blow-up threshold as diverged (at this
    step) and read every state-dependent record of a diverged run as NaN."""
    blown = (state.diverged_at < 0) & ~(rec["loss"] <= state.blow_up)
    diverged_at = jnp.where(blown, state.step, state.diverged_at)
    dead = diverged_at >= 0

    def blank(name, value):
        if name in KEEP_AFTER_DIVERGENCE or not jnp.issubdtype(value.dtype, jnp.floating):
            return value
        return jnp.where(dead, jnp.nan, value)

    return state._replace(diverged_at=diverged_at), {k: blank(k, v) for k, v in rec.items()}


def advance(
    landscape,
    optimizer,
    schedule,
    state: RunState,
    *,
    n_records: int,
    record_every: int,
    what: Options = DEFAULT_OPTIONS,
    first_record: Any = 0,
):
    """Record the state as given, then run ``n_records * record_every`` updates of one run,
    recording after every ``record_every``; returns the final state and ``n_records + 1``
    records.  The record is traced once (the first iteration skips the updates with a
    ``lax.cond`` on an unbatched flag), so a sweep compiles the record and the update once.
    ``first_record``: the number of the record taken first (unbatched; it places the split of
    ``what.split_every`` on the sweep's record grid across chunks)."""

    def one_update(state, _):
        return update(landscape, optimizer, schedule, state, what.gradient), None

    n_params = sum(math.prod(jnp.shape(x)) for x in jax.tree_util.tree_leaves(state.params))

    def updates(state):
        unroll = math.gcd(record_every, UNROLL) if n_params <= UNROLL_MAX_PARAMS else 1
        return jax.lax.scan(one_update, state, None, length=record_every, unroll=unroll)[0]

    def one_record(state, index):
        state = jax.lax.cond(index == 0, lambda s: s, updates, state)
        due = None if what.split_every == 1 else (first_record + index) % what.split_every == 0
        rec = record(landscape, schedule, state, what, optimizer, due)
        return _blank_if_diverged(state, rec)

    return jax.lax.scan(one_record, state, jnp.arange(n_records + 1))


_TRACE_COUNT = 0


def trace_count() -> int:
    """How many times the batched runner has been traced (i.e. compiled) in this process."""
    return _TRACE_COUNT


@functools.partial(jax.jit, static_argnames=("n_records", "record_every", "what", "axes"))
def advance_runs(
    landscape,
    optimizer,
    schedule,
    state,
    *,
    n_records: int,
    record_every: int,
    what: Options = DEFAULT_OPTIONS,
    axes: tuple = (0, 0, 0),
    first_record: Any = 0,
):
    """``advance`` vmapped over a batch of runs (``axes``: the ``vmap`` axis of the landscape,
    optimizer and schedule, 0 for one entry per run or ``None`` for shared) and compiled;
    ``first_record`` (shared by the runs) as in ``advance``."""
    global _TRACE_COUNT
    _TRACE_COUNT += 1
    step = functools.partial(
        advance,
        n_records=n_records,
        record_every=record_every,
        what=what,
        first_record=first_record,
    )
    return jax.vmap(step, in_axes=(*axes, 0))(landscape, optimizer, schedule, state)


@functools.partial(jax.jit, static_argnames=("axes",))
def start_runs(landscape, optimizer, schedule, keys, blow_up=BLOW_UP, *, axes=(0, 0, 0)):
    """The initial states of a batch of runs from their keys (``init_run`` vmapped, compiled); a
    run whose start is not finite is diverged at step 0."""

    def start(landscape, optimizer, schedule, key):
        state = init_run(landscape, optimizer, schedule, key, blow_up)
        bad_start = ~landscape.is_finite(state.params)
        return state._replace(diverged_at=jnp.where(bad_start, 0, state.diverged_at))

    return jax.vmap(start, in_axes=(*axes, 0))(landscape, optimizer, schedule, keys)


def _integer(name: str, value: Any, low: int) -> int:
    """``value`` as a Python int ``>= low`` (any integer type), else a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name}: need an integer >= {low}, got {value!r}")
    return int(value)


def _seed_array(seeds: int | np.integer | Sequence[int]) -> np.ndarray:
    if isinstance(seeds, bool):
        raise ValueError(f"seeds: need a positive count of seeds or a list of ints, got {seeds!r}")
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise ValueError(f"seeds: need a positive count of seeds, got {seeds}")
        return np.arange(int(seeds), dtype=np.int64)
    arr = np.asarray(seeds)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"seeds: need a count or a non-empty list of ints, got {seeds!r}")
    if arr.min() < 0 or arr.max() >= 2**32:
        raise ValueError(f"seeds: each seed must be in [0, 2**32), got {seeds!r}")
    if len(np.unique(arr)) < len(arr):
        raise ValueError(f"seeds: duplicate seeds would repeat the same runs, got {seeds!r}")
    return arr.astype(np.int64)


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


class _Group(NamedTuple):
    """Members of one component that share a tree structure, flattened to one leading axis:
    ``flat`` (``len(positions)`` entries) and ``positions`` (their indices in the layout's
    row-major order of (member, batch entry))."""

    flat: Any
    positions: np.ndarray


def _structure(obj: Any) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(obj)
    return treedef, tuple(np.shape(x)[1:] for x in leaves)


def _concat(objs: Sequence[Any]) -> Any:
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=0), *objs)


def _groups(lay: Layout) -> list[_Group]:
    """The layout's (member, batch entry) pairs, grouped by tree structure."""
    size = math.prod(lay.batch)
    flats = [flatten_batch(m) for m in lay.members]
    by_structure: dict[Any, list[int]] = {}
    for i, flat in enumerate(flats):
        by_structure.setdefault(_structure(flat), []).append(i)
    groups = []
    for members in by_structure.values():
        positions = np.concatenate([np.arange(i * size, (i + 1) * size) for i in members])
        groups.append(_Group(_concat([flats[i] for i in members]), positions))
    return groups


def _switch_schedules(lay: Layout) -> list[_Group]:
    """One group for all schedules: their own stack if they share a structure, else a
    ``Switch`` whose ``index`` picks each entry's member group."""
    groups = _groups(lay)
    if len(groups) == 1:
        return groups
    n = lay.size
    index = np.zeros(n, np.int32)
    members = []
    for g, group in enumerate(groups):
        index[group.positions] = g
        where = np.zeros(n, np.int64)  # an entry of this group for the other groups' positions
        where[group.positions] = np.arange(len(group.positions))
        members.append(jax.tree_util.tree_map(lambda x, w=where: x[w], group.flat))
    return [_Group(Switch(jnp.asarray(index), members), np.arange(n))]


def _check_horizon(lay: Layout, steps: int, horizon: str) -> None:
    if horizon == "free":
        return
    for i, member in enumerate(lay.members):
        if not hasattr(member, "horizon") or member.horizon() is None:
            continue
        ends = np.asarray(member.horizon())
        if np.all(ends == steps):
            continue
        label = "" if lay.names is None else f"[{lay.names[i]!r}]"
        raise ValueError(
            f"schedule{label}: {member.kind}.{member.horizon_field} ends the schedule at step "
            f"{np.unique(ends).tolist()}, but the sweep runs steps={steps}; make them equal, or "
            "pass horizon='free' to run a schedule whose planned end differs from the run's "
            "(after it the rate stays at its final value)"
        )


def _as_component(name: str, value: Any) -> Any:
    """Check one component (or each entry of a named axis) and validate it."""
    if isinstance(value, Mapping):
        return {k: _as_component(f"{name}[{k!r}]", v) for k, v in value.items()}
    if name.startswith("optimizer"):
        value = as_optimizer(value, name)
    elif name.startswith("landscape"):
        if not isinstance(value, Landscape):
            raise TypeError(
                f"{name}: need a landscape (rivervalley.landscapes, rivervalley.lm), got "
                f"{type(value).__name__}"
            )
    elif not isinstance(value, Schedule):
        raise TypeError(
            f"{name}: need a schedule (rivervalley.schedules) or None, got {type(value).__name__}"
        )
    return value


def _rename_clashes(layouts: list[Layout], reserved: set[str]) -> list[Layout]:
    """Prefix a dim or coordinate with its component's name where two components use the same
    name, or where it is reserved (``seed``, ``step``, the components, the variables)."""
    counts: dict[str, int] = {}
    for lay in layouts:
        for name in {*lay.dims, *lay.coords} - {lay.component}:
            counts[name] = counts.get(name, 0) + 1
    out = []
    for lay in layouts:
        names = {*lay.dims, *lay.coords} - {lay.component}
        clash = {n: f"{lay.component}_{n}" for n in names if counts[n] > 1 or n in reserved}
        out.append(lay.renamed(clash))
    return out


def sweep(
    landscape: Any,
    optimizer: Any,
    schedule: Any = None,
    *,
    seeds: int | np.integer | Sequence[int],
    steps: int | np.integer,
    record_every: int | np.integer = 1,
    gradient: str = "stochastic",
    save: Callable[[Any, Any], Mapping[str, Any]] | None = None,
    horizon: str = "match",
    blow_up: float = BLOW_UP,
    chunk_steps: int | np.integer | None = None,
    progress: bool | None = None,
    record_params: bool = False,
    sharpness: int | np.integer = 0,
    split_every: int | np.integer = 1,
    preconditioned_sharpness: bool = False,
    hill_directions: int | np.integer = 0,
    devices: int | Sequence[Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> xr.Dataset:
    """Run every combination of the components' axes and seeds; return a labelled Dataset.

    Parameters
    ----------
    landscape, optimizer, schedule
        Each one object (possibly batched: one dim per swept field, e.g. from
        ``schedules.grid``) or a dict of named objects (a named axis, dim = the component's
        name).  ``optimizer`` may be any ``rivervalley.optimizers`` optimizer, an optax factory
        (``optax.adamw``: called with the schedule as ``learning_rate``) or, with
        ``schedule=None``, a built ``optax.GradientTransformation`` run with its own rate.
        Schedules of different kinds in one dict run in one compiled program.
    seeds
        A count ``n`` (seeds ``0..n-1``) or a list of distinct non-negative ints.
    steps
        Number of updates per run; a multiple of ``record_every``.
    record_every
        Record after every this many updates.  Coordinate ``step = t`` holds the state after ``t``
        updates (``step = 0`` is the start) and ``lr`` the rate of update ``t``.
    gradient
        ``"stochastic"`` (default: ``landscape.stochastic_grad``) or ``"exact"`` (the full
        gradient: ``sgd()`` is then gradient descent).
    save
        ``save(point, landscape) -> {name: array}``, evaluated at every record at the reported
        iterate; each output becomes a variable (scalars: dims ``(..., seed, step)``; vectors get
        ``<name>_dim0``).  Static: define it once (a new function recompiles).
    horizon
        ``"match"`` (default): a schedule with a planned end (``total_steps``, the last budget
        end) must end at ``steps``; ``"free"``: any end (the rate stays at ``final`` after it).
    blow_up
        A record whose loss exceeds ``blow_up * max(1, L(w_0))`` (or is not finite) marks its
        run diverged; ``numpy.inf`` disables the check (non-finite points still diverge).
    chunk_steps
        Updates per compiled call (default ``DEFAULT_CHUNK_STEPS``, rounded to whole records);
        the progress bar and checkpoints advance per chunk.
    progress
        Show a progress bar (``None``: only on a terminal).
    record_params
        Also record the iterates as ``params`` (dim ``param``; flat parameter vectors only).
    sharpness
        If positive, also record ``sharpness``: the top Hessian eigenvalue of the loss at every
        recorded point, by this many Lanczos iterations (``rivervalley.hessian``).
    split_every
        Compute the river / hill split (``landscape.decompose``: ``river_loss``, ``hill_loss``,
        ``river_coord``, ``hill_dist``) at every ``split_every``-th record only (steps ``0,
        k r, 2 k r, ...`` for ``record_every = r``), NaN at the others: for landscapes whose
        split is costly (a relaxation split costs tens of gradients a record), so that the
        loss can be recorded often and the split rarely.  ``sharpness`` follows the same grid.
    preconditioned_sharpness
        With ``sharpness``, also record ``preconditioned_sharpness``: Adam's
        ``lambda_max(diag(1 / (sqrt(nu_hat) + eps)) H)`` (``adam_sharpness``; NaN for an
        optimizer without one Adam state and at step 0), to hold against ``38 / eta``.
    hill_directions
        With ``sharpness``, also record ``projected_hill``: the hill loss in the top
        ``hill_directions`` Hessian eigendirections (``hessian.projected_hill``: the loss drop
        of a Newton step restricted to them), a second hill estimate beside the split's.
    devices
        Shard the runs over these devices (or the first ``n`` local devices) with
        ``jax.sharding``; results are identical to a single-device sweep.
    checkpoint
        A file to which the state and records are written (atomically) after every chunk; if it
        already holds a checkpoint of this exact sweep, the sweep resumes from it.  Default: none,
        or a file in the folder of an enclosing ``checkpoint.directory(...)`` context (which
        ``results.cached``, the demo and every experiment use).

    Returns
    -------
    Dataset with dims ``(*landscape dims, *optimizer dims, *schedule dims, seed, step)``:
    variables ``loss``, ``river_loss``, ``hill_loss``, ``river_coord``, ``hill_dist``, ``lr``
    (with a schedule), the landscape's ``observables``, the iterate averages' losses
    (``ema_loss``, ``window_hill_loss``, ...), schedule-free's ``y_loss``, ``save``'s outputs, and
    ``diverged`` / ``diverged_step`` (-1: never) per run; records of a diverged run read NaN from
    ``diverged_step`` on.  Coordinates: the components' names or kinds, every swept field,
    ``seed``, ``step``; variables carry ``long_name`` / ``units``.
    """
    steps = _integer("steps", steps, 1)
    record_every = _integer("record_every", record_every, 1)
    if record_every > steps or steps % record_every:
        raise ValueError(
            f"record_every: need a divisor of steps={steps} (records at whole multiples), "
            f"got {record_every}"
        )
    if steps >= 2**31 - 1:
        raise ValueError(f"steps: at most {2**31 - 2} updates (int32 step counter), got {steps}")
    sharpness = _integer("sharpness", sharpness, 0)
    split_every = _integer("split_every", split_every, 1)
    choice("sweep", "gradient", gradient, GRADIENTS)
    choice("sweep", "horizon", horizon, HORIZONS)
    if not isinstance(record_params, bool):
        raise ValueError(f"record_params: need True or False, got {record_params!r}")
    if not (isinstance(blow_up, int | float) and blow_up > 0):
        raise ValueError(f"blow_up: need a positive number (numpy.inf: off), got {blow_up!r}")
    if save is not None and not callable(save):
        raise ValueError(f"save: need a function save(point, landscape) -> dict, got {save!r}")
    if chunk_steps is not None:
        chunk_steps = _integer("chunk_steps", chunk_steps, 1)
    if checkpoint is not None and not isinstance(checkpoint, str | os.PathLike):
        raise ValueError(f"checkpoint: need a file path, got {checkpoint!r}")
    if checkpoint is not None and Path(checkpoint).is_dir():
        raise ValueError(f"checkpoint: {checkpoint} is a directory; need a file path")
    seed_values = _seed_array(seeds)
    given = {
        "landscape": _as_component("landscape", landscape),
        "optimizer": _as_component("optimizer", optimizer),
    }
    if schedule is not None:
        given["schedule"] = _as_component("schedule", schedule)
    for name, value in given.items():
        for member in value.values() if isinstance(value, Mapping) else [value]:
            if name == "schedule":
                member.validate(steps)
            else:
                member.validate()
            if name == "optimizer" and (member.fixed != (schedule is None)):
                raise ValueError(
                    f"optimizer {member.name!r}: "
                    + (
                        "a built optax transformation has its own learning rate: pass "
                        "schedule=None, or give a factory (e.g. optax.adamw, or "
                        "optimizers.from_optax(...)) so the schedule sets the rate"
                        if member.fixed
                        else "needs a schedule (its learning rate); only a built optax "
                        "transformation runs without one"
                    )
                )
    layouts = [layout(name, value) for name, value in given.items()]
    if schedule is not None:
        _check_horizon(layouts[-1], steps, horizon)
    reserved = {"seed", "step", *given, *RECORDED, "diverged", "diverged_step"}
    layouts = _rename_clashes(layouts, reserved)
    extra_dims: dict[str, tuple[str, Sequence[str]]] = {}
    for member in layouts[0].members:
        for name, (dim, labels) in member.observable_dims().items():
            if name in extra_dims and extra_dims[name] != (dim, labels):
                raise ValueError(
                    f"landscape: entries label the observable {name!r} differently "
                    f"({extra_dims[name]} vs {(dim, labels)}); sweep them separately and join "
                    "the results with xarray (xr.concat(..., join='outer'))"
                )
            extra_dims[name] = (dim, labels)
    if not isinstance(preconditioned_sharpness, bool):
        raise ValueError(
            f"preconditioned_sharpness: need True or False, got {preconditioned_sharpness!r}"
        )
    hill_directions = _integer("hill_directions", hill_directions, 0)
    options = Options(
        gradient,
        record_params,
        sharpness,
        save,
        split_every,
        preconditioned_sharpness,
        hill_directions,
    )
    group_lists = [_groups(lay) for lay in layouts[:2]]
    if schedule is not None:
        group_lists.append(_switch_schedules(layouts[2]))
    else:
        group_lists.append([_Group(None, np.arange(1))])
    sizes = [lay.size for lay in layouts] + ([] if schedule is not None else [1])
    full: dict[str, np.ndarray] = {}
    diverged_full = np.full((*sizes, len(seed_values)), -1, np.int64)
    config_base = {
        "steps": steps,
        "record_every": record_every,
        "seeds": seed_values.tolist(),
        "gradient": gradient,
        "horizon": horizon,
        "blow_up": blow_up,
        "save": None if save is None else describe_callable(save),
    }
    combos = [(lg, og) for lg in group_lists[0] for og in group_lists[1]]
    (sg,) = group_lists[2]
    for number, (lg, og) in enumerate(combos):
        path = checkpoint
        if checkpoint is not None and len(combos) > 1:
            path = Path(checkpoint).with_suffix(f".group{number}{Path(checkpoint).suffix}")
        data, diverged_at = _run_group(
            lg.flat,
            og.flat,
            sg.flat,
            seed_values,
            lengths_=(len(lg.positions), len(og.positions), len(sg.positions)),
            steps=steps,
            record_every=record_every,
            options=options,
            blow_up=blow_up,
            chunk_steps=chunk_steps,
            progress=progress,
            devices=devices,
            checkpoint=path,
            config=config_base,
        )
        where = np.ix_(lg.positions, og.positions, sg.positions, np.arange(len(seed_values)))
        shape = (len(lg.positions), len(og.positions), len(sg.positions), len(seed_values))
        for name, values in data.items():
            if name not in full:
                full[name] = np.full((*sizes, len(seed_values), *values.shape[1:]), np.nan)
                full[name] = full[name].astype(np.result_type(values.dtype, np.float32))
            full[name][where] = values.reshape((*shape, *values.shape[1:]))
        diverged_full[where] = diverged_at.reshape(shape)
    config = {
        **config_base,
        **{lay.component: _describe_layout(lay) for lay in layouts},
    }
    first_landscape = layouts[0].members[0]
    attrs = {
        "config": records.config_attr(config),
        "decomposition": first_landscape.decomposition_method(),
    }
    return records.to_dataset(
        {k: v.reshape((*sizes[:3], *v.shape[len(sizes) :])) for k, v in full.items()},
        diverged_full.reshape((*sizes[:3], len(seed_values))),
        layouts,
        seed_values,
        np.arange(0, steps + 1, record_every),
        extra_dims=extra_dims,
        attrs=attrs,
        loss_units=first_landscape.loss_units,
    )


def _describe_layout(lay: Layout) -> Any:
    if lay.names is None:
        return describe(lay.members[0])
    return {name: describe(m) for name, m in zip(lay.names, lay.members, strict=True)}


def _describe_flat(obj: Any) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Switch):
        return {
            "switch": np.asarray(obj.index).tolist(),
            "members": [describe(m) for m in obj.members],
        }
    return describe(obj)


def _run_group(
    landscape,
    optimizer,
    schedule,
    seed_values: np.ndarray,
    *,
    lengths_: tuple[int, int, int],
    steps: int,
    record_every: int,
    options: Options,
    blow_up: float,
    chunk_steps: int | None,
    progress: bool | None,
    devices,
    checkpoint,
    config: dict[str, Any],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run the product of flattened components (each with a leading axis of entries; the
    schedule may be ``None``) and seeds in row-major order; return the records, shape
    ``(runs, n_records, ...)``, and each run's ``diverged_at``."""
    comps = {"landscape": landscape, "optimizer": optimizer, "schedule": schedule}
    lengths = dict(zip(comps, lengths_, strict=True))
    sizes = [*lengths.values(), len(seed_values)]
    index = [i.ravel() for i in np.indices(sizes)]
    n_runs = math.prod(sizes)
    sharding = _run_sharding(devices)
    n_padded = n_runs
    if sharding is not None:
        n_dev = sharding.mesh.size
        n_padded = math.ceil(n_runs / n_dev) * n_dev
    padded = [np.concatenate([i, np.full(n_padded - n_runs, i[-1])]) for i in index]

    def gathered(name: str, comp: Any) -> bool:
        """Whether a component is gathered to one entry per run (``vmap`` axis 0) rather than
        shared by all runs (axis ``None``).  Components with several entries are gathered; so
        is a small single landscape, which XLA compiles to faster elementwise code than
        broadcasting shared parameters (measured: 8.5 vs 4.4 M run-steps/s for GD on the d=64
        valley).  A large one (e.g. a language model's corpus) is shared, not copied per run."""
        if comp is None:
            return False
        if lengths[name] > 1:
            return True
        size = sum(np.size(x) for x in jax.tree_util.tree_leaves(comp))
        return name == "landscape" and size <= SHARE_LANDSCAPES_ABOVE

    def per_run(name: str, comp: Any, idx: np.ndarray) -> Any:
        if comp is None:
            return None
        if not gathered(name, comp):
            return jax.tree_util.tree_map(lambda x: x[0], comp)
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

    state = start_runs(*args, keys, blow_up, axes=axes)
    pieces = []
    done = 0
    group_config = {**config, **{name: _describe_flat(c) for name, c in comps.items()}}
    fingerprint = _fingerprint(group_config, chunk, options, n_padded)
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
            state, recs = advance_runs(
                *args,
                state,
                n_records=n,
                record_every=record_every,
                what=options,
                axes=axes,
                first_record=jnp.asarray(done, jnp.int32),
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
    return data, diverged_at


def _join(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate chunks of records along the step axis (once, not once per chunk)."""
    return {k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]}


def _to_host(x: jax.Array) -> np.ndarray:
    """A (possibly sharded) array as a NumPy array on this host; across several processes
    (``jax.distributed``) every host receives all runs."""
    if jax.process_count() > 1:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _fingerprint(config: dict[str, Any], chunk: int, options: Options, n_padded: int) -> str:
    """Everything a checkpoint's contents depend on, as one string."""
    recording = {
        "gradient": options.gradient,
        "params": options.params,
        "sharpness_iters": options.sharpness_iters,
    }
    extra = {"chunk": chunk, "recording": recording, "padded_runs": n_padded}
    text = json.dumps({"config": config, **extra}, sort_keys=True, default=str)
    return hashlib.sha256((text + code_fingerprint()).encode()).hexdigest()
