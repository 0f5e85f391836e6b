r"""Learning-rate schedules as traceable, batchable pytrees.

A schedule maps an update index ``t`` (the rate used for the update from ``w_t`` to ``w_{t+1}``)
to a learning rate.  Every schedule is a frozen dataclass whose numeric fields are array leaves and
whose ``__call__`` is branch-free, so

* it is a valid optax learning-rate schedule (``optax.sgd(learning_rate=wsd(...))``);
* ``jax.vmap`` batches over *any* numeric field, warmup length and budget boundaries included;
* ``stack`` / ``grid`` build one batched schedule from many.

Common fields (same names on every schedule):

``peak``
    the maximal (stable) rate.
``warmup_steps``
    linear warmup from 0: the rate is ``min(body(t), peak * t / warmup_steps)`` for
    ``t < warmup_steps``.  Taking the minimum means a warmup longer than a phase never produces a
    jump above the schedule it ramps into.
``final``
    the rate at the end of a decay (default 0).

Decays interpolate ``final + (peak - final) * g(u)`` where ``u`` in [0, 1] is the fraction of the
decay window elapsed and ``g`` is the decay *shape* (``g(0) = 1``, ``g(1) = 0``):

=========  ==============================================================
``linear``  ``g(u) = 1 - u``
``cosine``  ``g(u) = (1 + cos(pi u)) / 2``
``sqrt``    ``g(u) = 1 - sqrt(u)``  (the "1-sqrt" cooldown)
``exp``     ``g(u) = (exp(-k u) - exp(-k)) / (1 - exp(-k))`` with ``k = EXP_DECAY_RATE``
=========  ==============================================================

A decay window ``[start, end]`` is exactly ``peak`` up to ``start`` and reaches ``final`` exactly
at ``end`` (compared, not computed, so float rounding cannot miss it); a window of length 0 is a
step down at ``end``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from rivervalley import pytree
from rivervalley.pytree import (
    array_field,
    as_float,
    batch_shape,
    pytree_dataclass,
    static_field,
)
from rivervalley.validation import at_least, require, show, within

DECAY_SHAPES = ("linear", "cosine", "sqrt", "exp")
EXP_DECAY_RATE = 5.0  # e-folds over an ``exp`` decay window, before rescaling to end at 0


def decay_shape(u: jax.Array, shape: str) -> jax.Array:
    """Decay shape ``g(u)``: 1 at ``u = 0``, 0 at ``u = 1``, for ``u`` in [0, 1]."""
    if shape == "linear":
        return 1.0 - u
    if shape == "cosine":
        return 0.5 * (1.0 + jnp.cos(jnp.pi * u))
    if shape == "sqrt":
        return 1.0 - jnp.sqrt(u)
    if shape == "exp":
        floor = np.exp(-EXP_DECAY_RATE)
        return (jnp.exp(-EXP_DECAY_RATE * u) - floor) / (1.0 - floor)
    raise ValueError(f"unknown decay shape {shape!r}; allowed: {', '.join(DECAY_SHAPES)}")


def _check_shape(shape: str) -> str:
    if shape not in DECAY_SHAPES:
        allowed = ", ".join(DECAY_SHAPES)
        raise ValueError(f"shape: unknown decay shape {shape!r}; allowed: {allowed}")
    return shape


def window_progress(t: jax.Array, start: jax.Array, end: jax.Array) -> jax.Array:
    """Fraction ``u = (t - start) / (end - start)`` of the window ``[start, end]`` elapsed, with
    exact endpoints: ``u = 1`` for ``t >= end`` (so a zero-length window is a step at ``end``)
    and ``u = 0`` for ``t <= start``, whatever the float rounding of the division."""
    length = end - start
    u = jnp.clip((t - start) / jnp.where(length > 0, length, 1.0), 0.0, 1.0)
    return jnp.where(t >= end, 1.0, jnp.where(t <= start, 0.0, u)).astype(u.dtype)


def decay(t, start, end, peak, final, shape: str) -> jax.Array:
    """``final + (peak - final) g(u)`` over the window ``[start, end]``: exactly ``peak`` up to
    ``start``, exactly ``final`` from ``end`` on, and between the two in between."""
    u = window_progress(t, start, end)
    g = decay_shape(u, shape)
    value = jnp.clip(final + (peak - final) * g, jnp.minimum(peak, final), jnp.maximum(peak, final))
    return jnp.where(u <= 0.0, peak, jnp.where(u >= 1.0, final, value))


def _cycle(t: jax.Array, ends: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Index ``k`` of the budget containing ``t`` (cycle ``k`` is ``(ends[k-1], ends[k]]``),
    with its start and end.  Beyond the last end the last cycle is returned."""
    k = jnp.clip(jnp.searchsorted(ends, t, side="left"), 0, ends.shape[-1] - 1)
    start = jnp.where(k > 0, ends[jnp.maximum(k - 1, 0)], 0.0)
    return k, start, ends[k]


@pytree_dataclass
class Schedule:
    """Base class: a learning rate ``body(t)`` under a linear warmup (see the module docstring)."""

    kind: ClassVar[str] = "schedule"
    horizon_field: ClassVar[str | None] = None  # the field holding the planned end, if any
    peak: jax.Array = array_field()
    warmup_steps: jax.Array = array_field()
    final: jax.Array = array_field()

    def body(self, t: jax.Array) -> jax.Array:
        """The schedule without its warmup."""
        raise NotImplementedError

    def __call__(self, step: Any) -> jax.Array:
        t = jnp.asarray(step, dtype=jnp.result_type(float))
        lr = self.body(t)
        warm = self.warmup_steps
        ramp = self.peak * t / jnp.where(warm > 0, warm, 1.0)
        return jnp.where((warm > 0) & (t < warm), jnp.minimum(lr, ramp), lr)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading batch axes shared by the numeric fields (``()`` for a single schedule)."""
        return batch_shape(self)

    def validate(self, steps: int | None = None) -> Schedule:
        """Check every field (and, given the run length ``steps``, that the schedule fits in
        it); raise ``ValueError`` naming the field, the value and what is allowed."""
        kind = self.kind
        batch_shape(self)
        peak = at_least(kind, "peak", self.peak, 0.0)
        at_least(kind, "final", self.final, 0.0)
        ok = np.asarray(self.final) <= peak
        require(ok, kind, "final", self.final, f"<= peak ({show(self.peak)})")
        warm = at_least(kind, "warmup_steps", self.warmup_steps, 0.0)
        if steps is not None:
            ok = warm <= steps
            require(ok, kind, "warmup_steps", self.warmup_steps, f"<= the run's {steps} steps")
        self._validate_fields(steps)
        return self

    def _validate_fields(self, steps: int | None) -> None:
        """Checks specific to a schedule kind."""

    def horizon(self) -> jax.Array | None:
        """The step at which the schedule's planned decay ends (the field ``horizon_field``:
        ``total_steps``, or the last of the budget ends), or ``None`` for a schedule without one
        (constant, tabulated).  ``sweep`` requires it to equal the run's length unless told
        otherwise (``horizon="free"``)."""
        if self.horizon_field is None:
            return None
        value = jnp.asarray(getattr(self, self.horizon_field))
        return value[..., -1] if self.horizon_field.endswith("_ends") else value

    def _validate_budget(self, total_steps: jax.Array) -> None:
        total = at_least(self.kind, "total_steps", total_steps, 0.0, strict=True)
        ok = np.asarray(self.warmup_steps) <= total
        require(
            ok,
            self.kind,
            "warmup_steps",
            self.warmup_steps,
            f"<= total_steps ({show(total_steps)})",
        )

    def _validate_ends(self, name: str, steps: int | None) -> None:
        value = getattr(self, name)
        ends = at_least(self.kind, name, value, 0.0, strict=True)
        increasing = np.all(np.diff(ends, axis=-1) > 0)
        require(increasing, self.kind, name, value, "strictly increasing budget ends")
        if steps is not None:
            require(ends <= steps, self.kind, name, value, f"<= the run's {steps} steps")


@pytree_dataclass
class Constant(Schedule):
    """``eta(t) = peak`` (after warmup).  ``final`` is unused: a constant schedule never decays."""

    kind: ClassVar[str] = "constant"

    def body(self, t):
        return jnp.broadcast_to(self.peak, jnp.shape(t)).astype(t.dtype)


@pytree_dataclass
class Linear(Schedule):
    """Linear decay from ``peak`` at ``warmup_steps`` to ``final`` at ``total_steps``."""

    kind: ClassVar[str] = "linear"
    horizon_field: ClassVar[str | None] = "total_steps"
    total_steps: jax.Array = array_field()

    def _validate_fields(self, steps):
        self._validate_budget(self.total_steps)

    def body(self, t):
        return decay(t, self.warmup_steps, self.total_steps, self.peak, self.final, "linear")


@pytree_dataclass
class Cosine(Schedule):
    """``final + (peak - final)(1 + cos(pi u))/2``, ``u = (t - warmup)/(total - warmup)``."""

    kind: ClassVar[str] = "cosine"
    horizon_field: ClassVar[str | None] = "total_steps"
    total_steps: jax.Array = array_field()

    def _validate_fields(self, steps):
        self._validate_budget(self.total_steps)

    def body(self, t):
        return decay(t, self.warmup_steps, self.total_steps, self.peak, self.final, "cosine")


@pytree_dataclass
class WSD(Schedule):
    """Warmup-stable-decay: ``peak`` until ``T - D``, then decay to ``final`` exactly at ``T``.

    ``T = total_steps``, ``D = decay_fraction * T`` (the decay is the last fraction of the budget).
    """

    kind: ClassVar[str] = "wsd"
    horizon_field: ClassVar[str | None] = "total_steps"
    total_steps: jax.Array = array_field()
    decay_fraction: jax.Array = array_field()
    shape: str = static_field(default="linear")

    def _validate_fields(self, steps):
        self._validate_budget(self.total_steps)
        within(self.kind, "decay_fraction", self.decay_fraction, 0.0, 1.0)
        _check_shape(self.shape)

    @property
    def decay_steps(self) -> jax.Array:
        return self.decay_fraction * self.total_steps

    @property
    def decay_start(self) -> jax.Array:
        return self.total_steps - self.decay_steps

    def body(self, t):
        return decay(t, self.decay_start, self.total_steps, self.peak, self.final, self.shape)


@pytree_dataclass
class WSDS(Schedule):
    """WSD-S: one main line with a decay before every budget end ``E_k``, then back to the peak.

    Budget ``k`` spans ``(E_{k-1}, E_k]`` (``E_0 = 0``); its decay is the last
    ``decay_fraction`` of that span, ending at ``final`` exactly at ``E_k``; at ``E_k + 1`` the rate
    is back at ``peak`` (from the decayed iterate: no return to a checkpoint).  With
    ``rewarmup_steps > 0`` the return is a linear ramp from ``final`` instead of a jump.  After the
    last budget the rate stays at ``final``.
    """

    kind: ClassVar[str] = "wsd_s"
    horizon_field: ClassVar[str | None] = "decay_ends"
    decay_ends: jax.Array = array_field(ndim=1)
    decay_fraction: jax.Array = array_field()
    rewarmup_steps: jax.Array = array_field()
    shape: str = static_field(default="linear")

    def _validate_fields(self, steps):
        self._validate_ends("decay_ends", steps)
        within(self.kind, "decay_fraction", self.decay_fraction, 0.0, 1.0)
        at_least(self.kind, "rewarmup_steps", self.rewarmup_steps, 0.0)
        _check_shape(self.shape)

    def body(self, t):
        k, start, end = _cycle(t, self.decay_ends)
        length = self.decay_fraction * (end - start)
        lr = decay(t, end - length, end, self.peak, self.final, self.shape)
        r = self.rewarmup_steps
        ramp = self.final + (self.peak - self.final) * (t - start) / jnp.where(r > 0, r, 1.0)
        return jnp.where((k > 0) & (r > 0), jnp.minimum(lr, ramp), lr)


@pytree_dataclass
class CyclicCosine(Schedule):
    """One cosine cycle from ``peak`` to ``final`` per budget ``(E_{k-1}, E_k]``, restarting at
    the peak; the first cycle starts after the warmup.  After the last budget: ``final``."""

    kind: ClassVar[str] = "cyclic_cosine"
    horizon_field: ClassVar[str | None] = "cycle_ends"
    cycle_ends: jax.Array = array_field(ndim=1)

    def _validate_fields(self, steps):
        self._validate_ends("cycle_ends", steps)
        first = np.asarray(self.cycle_ends)[..., 0]
        require(
            np.asarray(self.warmup_steps) <= first,
            self.kind,
            "warmup_steps",
            self.warmup_steps,
            f"<= the first cycle end ({show(first)})",
        )

    def body(self, t):
        k, start, end = _cycle(t, self.cycle_ends)
        start = jnp.where(k == 0, self.warmup_steps, start)
        return decay(t, start, end, self.peak, self.final, "cosine")


@pytree_dataclass
class Tabulated(Schedule):
    """``eta_t = rates[t]`` for ``t < len(rates)``, then ``final``: any sequence of rates as a
    schedule.  Schedules of different kinds tabulated to one length stack into one batch, so a
    single compiled sweep runs them all.  ``peak`` is a label here (the rates are used as
    given); build it with ``tabulated``."""

    kind: ClassVar[str] = "tabulated"
    rates: jax.Array = array_field(ndim=1)

    def _validate_fields(self, steps):
        at_least(self.kind, "rates", self.rates, 0.0)

    def body(self, t):
        n = self.rates.shape[-1]
        index = jnp.clip(t.astype(jnp.int32), 0, n - 1)
        return jnp.where(t < n, self.rates[index], self.final).astype(t.dtype)


def _common(peak, warmup_steps, final) -> dict[str, jax.Array]:
    return {
        "peak": as_float(peak),
        "warmup_steps": as_float(warmup_steps),
        "final": as_float(final),
    }


def constant(peak, *, warmup_steps=0, final=0.0) -> Constant:
    """Constant rate ``peak`` after a linear warmup."""
    return Constant(**_common(peak, warmup_steps, final)).validate()


def linear(peak, total_steps, *, warmup_steps=0, final=0.0) -> Linear:
    """Linear decay to ``final`` at ``total_steps``."""
    return Linear(
        **_common(peak, warmup_steps, final), total_steps=as_float(total_steps)
    ).validate()


def cosine(peak, total_steps, *, warmup_steps=0, final=0.0) -> Cosine:
    """Cosine decay to ``final`` at ``total_steps``."""
    return Cosine(
        **_common(peak, warmup_steps, final), total_steps=as_float(total_steps)
    ).validate()


def wsd(peak, total_steps, decay_fraction=0.2, shape="linear", *, warmup_steps=0, final=0.0) -> WSD:
    """Warmup-stable-decay ending at ``final`` exactly at ``total_steps``."""
    return WSD(
        **_common(peak, warmup_steps, final),
        total_steps=as_float(total_steps),
        decay_fraction=as_float(decay_fraction),
        shape=shape,
    ).validate()


def wsd_s(
    peak,
    decay_ends,
    decay_fraction=0.1,
    shape="linear",
    *,
    warmup_steps=0,
    final=0.0,
    rewarmup_steps=0,
) -> WSDS:
    """WSD-S with budgets ending at ``decay_ends`` (increasing step indices)."""
    return WSDS(
        **_common(peak, warmup_steps, final),
        decay_ends=as_float(np.atleast_1d(decay_ends)),
        decay_fraction=as_float(decay_fraction),
        rewarmup_steps=as_float(rewarmup_steps),
        shape=shape,
    ).validate()


def tabulated(rates, *, final=None, peak=None) -> Tabulated:
    """The schedule ``eta_t = rates[t]`` (then ``final``, default the last rate); ``peak``
    (default the largest rate) labels it, e.g. as the swept coordinate of a batch."""
    table = np.asarray(rates, dtype=float)
    require(table.ndim >= 1 and table.shape[-1] >= 1, "tabulated", "rates", table, "non-empty")
    return Tabulated(
        **_common(
            table.max() if peak is None else peak, 0.0, table[..., -1] if final is None else final
        ),
        rates=as_float(table),
    ).validate()


def cyclic_cosine(peak, cycle_ends, *, warmup_steps=0, final=0.0) -> CyclicCosine:
    """Cyclic cosine with cycles ending at ``cycle_ends`` (increasing step indices)."""
    return CyclicCosine(
        **_common(peak, warmup_steps, final), cycle_ends=as_float(np.atleast_1d(cycle_ends))
    ).validate()


def rates(schedule: Schedule, steps: int) -> jax.Array:
    """The rate table ``[schedule(0), ..., schedule(steps - 1)]`` (``schedule(t)`` is the rate
    of update ``t``) of a schedule, batched or not: shape ``(*schedule.batch_shape, steps)``;
    one compiled ``vmap`` over the steps and every batch axis (compiled once per schedule kind,
    batch shape and ``steps``)."""
    return _rate_table(schedule, int(steps))


@functools.partial(jax.jit, static_argnums=1)
def _rate_table(schedule: Schedule, steps: int) -> jax.Array:
    t = jnp.arange(steps)

    def table(s: Schedule) -> jax.Array:
        return s(t)

    for _ in schedule.batch_shape:
        table = jax.vmap(table)
    return table(schedule)


def stack(schedules: Sequence[Schedule]) -> Schedule:
    """One batched schedule (batch axis 0) from unbatched schedules of the same kind
    (``rivervalley.pytree.stack``).

    Raises ``ValueError`` if the kinds, static fields (e.g. decay shape) or boundary counts differ.
    """
    return pytree.stack(schedules)


def grid(factory: Callable[..., Schedule], sweep: Mapping[str, Sequence[Any]], **fixed) -> Schedule:
    """The Cartesian product of swept field values as one schedule with one batch axis per
    swept field (``rivervalley.pytree.grid``): ``grid(wsd, {"peak": [0.1, 0.2],
    "decay_fraction": [0.1, 0.2, 0.3]}, total_steps=1000)`` has batch shape ``(2, 3)`` and
    ``sweep`` labels its dims ``peak`` and ``decay_fraction``."""
    return pytree.grid(factory, sweep, **fixed)


class Switch:
    """Schedules of different kinds behind one index: ``Switch(index, members)(t) =
    members[index](t)`` (``lax.switch``; under ``vmap`` every member is evaluated and the
    index selects, a few scalar operations per step).  ``sweep`` builds one for a dict of
    schedules of different kinds, so they run in one compiled call; each member holds one
    entry per run (its entry for runs of other members is unused).  A pytree: ``index`` and the
    members' fields are leaves."""

    kind = "switch"

    def __init__(self, index: Any, members: Sequence[Schedule]):
        self.index = index
        self.members = tuple(members)

    def __call__(self, step: Any) -> jax.Array:
        branches = [functools.partial(type(m).__call__, m) for m in self.members]
        return jax.lax.switch(jnp.asarray(self.index, jnp.int32), branches, step)


jax.tree_util.register_pytree_node(
    Switch,
    lambda s: ((s.index, s.members), None),
    lambda _, children: Switch(children[0], children[1]),
)
