r"""Optimizers for ``sweep``: any optax transformation, with sweepable hyperparameters.

An ``Optimizer`` is a pytree holding a *factory* ``f(learning_rate, **hyperparams) ->
optax.GradientTransformation`` (static: part of the compiled program) and the hyperparameters
to pass it (array leaves: ``sweep`` batches over them with ``vmap``, one compile for all
values; a new value of the same shape reuses the compiled program).  ``sweep`` calls the
factory inside the vmapped run with the run's schedule as ``learning_rate`` and the run's
hyperparameters as traced scalars.  Any optax optimizer, chain or ``optax.contrib``
transformation whose hyperparameters enter as numbers (not Python branches) works::

    def clipped_adamw(learning_rate, b1, weight_decay):
        return optax.chain(
            optax.clip_by_global_norm(1.0),
            optax.adamw(learning_rate, b1=b1, weight_decay=weight_decay),
        )
    opt = optimizers.from_optax(clipped_adamw, b1=[0.9, 0.95], weight_decay=[0.0, 0.1])
    ds = rv.sweep(valley, opt, schedules.wsd(0.01, 4000), seeds=64, steps=4000)
    ds.loss.sel(b1=0.95, weight_decay=0.1).mean("seed")

A list given for a hyperparameter spans its own batch axis (dims ``b1`` and ``weight_decay``
above: a 2 x 2 grid).  The factory is static and compared by identity: define it once (a
module-level function, or one ``functools.partial``), not anew per sweep.  An already built
``optax.GradientTransformation`` (``optax.sgd(0.1)``) runs as it is, with its own learning
rate, in a sweep without a schedule (``schedule=None``).

Whether a run sees the exact or a stochastic gradient is a property of the run
(``sweep(..., gradient="exact")`` is full-batch gradient descent for ``sgd()``), not of the
optimizer.

The lab's named optimizers are thin constructors over ``from_optax``:

=======================  ======================================================  =============
name                      update (``g``: gradient, ``eta_t``: schedule)            swept
=======================  ======================================================  =============
``sgd``                   ``w <- w - eta_t g`` or, with heavy-ball momentum        ``momentum``
                          ``m <- beta m + g; w <- w - eta_t m`` (optax.sgd)
``adam``                  optax's Adam, bias-corrected, ``w <- w - eta_t u``      ``b1, b2, eps``
``adamw``                 optax's AdamW: Adam plus ``- eta_t lambda w``            and
                                                                                  ``weight_decay``
``lion``                  optax's Lion: ``w <- w - eta_t (sign(c) + lambda w)``    ``b1, b2,
                                                                                  weight_decay``
``schedule_free_sgd``     schedule-free SGD (Defazio et al. 2024), below           ``b1, ...``
``schedule_free_adamw``   schedule-free AdamW, below                               as above
=======================  ======================================================  =============

**Schedule-free** optimizers keep three sequences: the gradient point ``y`` (the ``params`` that
``sweep`` steps and checks for divergence), the base iterate ``z`` and the evaluation point
``x``, a weighted running average of the ``z``:

.. code-block:: text

    y_t     = (1 - b1) z_t + b1 x_t
    z_{t+1} = z_t - eta_t g(y_t)                       (AdamW: eta_t times the RMS-scaled step,
                                                        plus decoupled weight decay)
    x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},  c_{t+1} = omega_{t+1} / sum_{s<=t+1} omega_s,
    omega_{t+1} = (max_{s<=t+1} eta_s)^weight_lr_power

(optax's weights read the schedule one step ahead of the base step: ``eta_s`` here is
``schedule(s)`` at optax's count ``s = t + 1``, while the step ``z_{t+1}`` uses
``schedule(t)``; for a warmup-then-constant rate this shifts the weights by one step during the
warmup only).  ``x`` is what schedule-free reports, so ``sweep`` records ``loss`` and its
decomposition at ``x = eval_params(...)`` and the gradient point's loss as ``y_loss``.
Schedule-free is meant to run *without* a decay: use ``schedules.constant(peak,
warmup_steps=...)`` (warmup, then constant); the averaging in ``x`` replaces the decay.

**Iterate averaging** (``with_averaging``) adds, on top of any family, an exponential
moving average and/or a uniform window average of the reported iterate ``p_t`` (the params, or
``x_t`` for schedule-free); ``sweep`` records their losses next to the raw iterate's (see
``Optimizer.averages``).  A window with a stride ``window_every = k > 1`` averages checkpoints
saved every ``k`` steps: *checkpoint merging* (WSM, "Decay-Free Learning Rate Schedule via
Checkpoint Merging"; with ``k`` = the sweep's ``record_every`` the merged checkpoints are exactly
the recorded iterates).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rivervalley.pytree import as_float, batch_shape, mapping_field, pytree_dataclass, static_field
from rivervalley.validation import at_least, choice, finite, require, within

SCHEDULE_FREE = ("schedule_free_sgd", "schedule_free_adamw")
OPTIMIZERS = ("sgd", "adam", "adamw", "lion", *SCHEDULE_FREE)
AVERAGES = ("ema", "window")  # names of the iterate averages, prefixes of their recorded losses
AVERAGING_FIELDS = ("ema_decay",)  # hyperparameters consumed by the averaging, not the factory

Factory = Callable[
    ..., Any
]  # factory(learning_rate, **hyperparams) -> optax.GradientTransformation
EvalParams = Callable[[Any, Any], Any]


class AveragingState(NamedTuple):
    """State of ``Optimizer.with_averaging`` after ``t`` updates: the wrapped optimizer's state
    ``inner``; ``ema`` (the EMA ``e_t`` of the reported iterate, or ``None`` when not tracked);
    for the window (else ``None``) ``latest`` (the newest reported iterate ``p_t``) and
    ``window``, a ring buffer holding per parameter leaf ``W`` checkpoints along a new leading
    axis: with stride ``k`` (``window_every``; 1: every iterate) slot ``(s / k) mod W`` holds the
    checkpoint ``p_s`` for the last ``W`` multiples ``s`` of ``k`` below ``t`` (a checkpoint
    ``p_t`` is written there only by the next update, and its slot is read from ``latest``);
    ``count = t + 1``, the number of iterates so far."""

    inner: Any
    ema: Any
    latest: Any
    window: Any
    count: jax.Array


@pytree_dataclass
class Optimizer:
    """An optax optimizer for ``sweep``: build it with ``from_optax`` (any factory), a lab
    constructor (``sgd``, ``adam``, ``adamw``, ``lion``, ``schedule_free_sgd``,
    ``schedule_free_adamw``), ``fixed`` (a built transformation), then optionally
    ``with_averaging``.

    Static: ``name`` (the label stored with results), ``factory`` (``factory(learning_rate,
    **hyperparams)``, or a built ``optax.GradientTransformation`` when ``fixed``),
    ``eval_params`` (``(inner_state, params) -> reported point``, e.g. schedule-free's ``x``;
    ``None``: the params), ``checks`` (the ranges the hyperparameters must lie in), the
    averaging switches ``track_ema``, ``average_window`` (``W``; 0: none) and ``window_every``
    (``k``).  Array leaves: ``hyperparams`` (sweepable; ``ema_decay`` belongs to averaging)."""

    name: str = static_field()
    factory: Any = static_field()
    hyperparams: dict[str, jax.Array] = mapping_field(default_factory=dict)
    fixed: bool = static_field(default=False)
    eval_params_fn: EvalParams | None = static_field(default=None)
    checks: tuple[tuple[str, str], ...] = static_field(default=())
    track_ema: bool = static_field(default=False)
    average_window: int = static_field(default=0)
    window_every: int = static_field(default=1)

    @property
    def schedule_free(self) -> bool:
        """Whether the reported point differs from the params (schedule-free's ``x``)."""
        return self.eval_params_fn is not None

    @property
    def averaging(self) -> bool:
        """Whether any iterate average is tracked (static: it changes the compiled program)."""
        return self.track_ema or self.average_window > 0

    def validate(self) -> Optimizer:
        """Check the hyperparameters: every one finite, each within its range in ``checks``
        (a rule of ``RANGES``: ``unit`` [0, 1), ``unit_open_closed`` (0, 1], ``positive``,
        ``non_negative``), ``ema_decay`` in [0, 1),
        the window ``W`` an integer >= 0 and its stride ``k`` an integer >= 1."""
        batch_shape(self)
        if not self.fixed and not callable(self.factory):
            raise ValueError(
                f"optimizer {self.name!r}: factory must be callable as "
                f"factory(learning_rate, **hyperparams), got {self.factory!r}"
            )
        for key, value in self.hyperparams.items():
            finite(self.name, key, value)
        for key, rule in self.checks:
            if key in self.hyperparams:
                RANGES[rule](self.name, key, self.hyperparams[key])
        if self.track_ema:
            ok = within(self.name, "ema_decay", self.hyperparams["ema_decay"], 0.0, 1.0) < 1.0
            require(ok, self.name, "ema_decay", self.hyperparams["ema_decay"], "in [0, 1)")
        window = self.average_window
        ok = isinstance(window, int) and not isinstance(window, bool) and window >= 0
        require(ok, self.name, "average_window", window, "an integer >= 0 (0: no window)")
        every = self.window_every
        ok = isinstance(every, int) and not isinstance(every, bool) and every >= 1
        require(ok, self.name, "window_every", every, "an integer >= 1")
        return self

    def with_averaging(
        self,
        ema_decay: float | None = None,
        window: int | None = None,
        *,
        window_every: int = 1,
    ) -> Optimizer:
        """This optimizer wrapped by iterate averaging (``with_averaging``)."""
        return with_averaging(self, ema_decay, window, window_every=window_every)

    def base(self, learning_rate: Any) -> optax.GradientTransformation:
        """The optax transformation without averaging: ``factory(learning_rate,
        **hyperparams)`` (a ``fixed`` one as it was built, ``learning_rate`` ignored)."""
        if self.fixed:
            return self.factory
        hyper = {k: v for k, v in self.hyperparams.items() if k not in AVERAGING_FIELDS}
        return self.factory(learning_rate, **hyper)

    def transform(self, learning_rate: Any) -> optax.GradientTransformation:
        """The optax transformation with ``learning_rate`` (a float or a schedule); wrapped by
        the averaging of ``with_averaging`` when that is on (its state: ``AveragingState``)."""
        base = self.base(learning_rate)
        if not self.averaging:
            return base
        return _averaging(self, base)

    def report_inner(self, inner_state: Any, params: Any) -> Any:
        """The reported point from the wrapped optimizer's own state and the params."""
        if self.eval_params_fn is None:
            return params
        return self.eval_params_fn(inner_state, params)

    def eval_params(self, opt_state: Any, params: Any) -> Any:
        """The reported iterate: ``params`` itself, or for schedule-free the evaluation point
        ``x = (y - (1 - b1) z) / b1`` (``optax.contrib.schedule_free_eval_params``)."""
        inner = opt_state.inner if self.averaging else opt_state
        return self.report_inner(inner, params)

    def averages(self, opt_state: Any) -> dict[str, Any]:
        """The tracked iterate averages, by name (``ema``, ``window``; empty without averaging):
        the EMA ``e_t`` and the window mean ``(1 / n) sum_{j=0}^{n-1} p_{c - j k}`` over the
        newest checkpoint ``c = k floor(t / k)`` and the ``n - 1`` before it, ``n = min(W,
        floor(t / k) + 1)`` (stride ``k = window_every``; ``k = 1``: the last ``n`` iterates),
        each a point of the parameter space."""
        if not self.averaging:
            return {}
        out = {}
        if self.track_ema:
            out["ema"] = opt_state.ema
        if self.average_window:
            w, k = self.average_window, self.window_every
            t = opt_state.count - 1
            n = jnp.minimum(t // k + 1, w)
            valid = jnp.arange(w) < n
            newest = (t // k) % w
            is_checkpoint = t % k == 0  # the newest checkpoint is ``latest``, not yet written

            def mean(buf, latest):
                if k == 1:
                    buf = buf.at[newest].set(latest)
                else:
                    buf = buf.at[newest].set(jnp.where(is_checkpoint, latest, buf[newest]))
                mask = valid.reshape((w,) + (1,) * (buf.ndim - 1))
                return jnp.sum(jnp.where(mask, buf, 0), axis=0) / n.astype(buf.dtype)

            out["window"] = jax.tree_util.tree_map(mean, opt_state.window, opt_state.latest)
        return out

    def freeze_state(self, keep_old: jax.Array, old: Any, new: Any) -> Any:
        """``old`` where ``keep_old`` (a diverged run keeps its last finite state), else ``new``.

        Elementwise over the state, except the window ring buffer, which is always the new one:
        an update only writes the old ``latest`` (a finite, already accepted iterate) into its
        own slot, if it is a checkpoint, which the window mean reads from ``latest`` anyway, so
        the new buffer with the old ``latest`` and ``count`` is the old window.  Selecting over
        the whole buffer instead would copy ``W`` parameter vectors per update (measured: 5x
        slower at ``W = 200``)."""

        def where(o, n):
            return jnp.where(keep_old, o, n)

        if not self.average_window:
            return jax.tree_util.tree_map(where, old, new)
        rest = jax.tree_util.tree_map(where, old._replace(window=None), new._replace(window=None))
        return rest._replace(window=new.window)


def _unit(owner: str, field: str, value: Any) -> None:
    ok = within(owner, field, value, 0.0, 1.0) < 1.0
    require(ok, owner, field, value, "in [0, 1)")


def _unit_open_closed(owner: str, field: str, value: Any) -> None:
    ok = within(owner, field, value, 0.0, 1.0) > 0.0
    require(ok, owner, field, value, "in (0, 1]")


RANGES: dict[str, Callable[[str, str, Any], Any]] = {
    "unit": _unit,  # [0, 1): momenta, betas
    "unit_open_closed": _unit_open_closed,  # (0, 1]: schedule-free's interpolation b1
    "positive": functools.partial(at_least, low=0.0, strict=True),  # eps
    "non_negative": functools.partial(at_least, low=0.0),  # weight decay, powers
}


def _grid_hyperparams(hyperparams: dict[str, Any], grid: bool) -> dict[str, jax.Array]:
    """Hyperparameters as float arrays; with ``grid``, the i-th list-valued one (1-d) on its own
    batch axis i, so several lists span their Cartesian product."""
    values = {k: np.asarray(v, dtype=float) for k, v in hyperparams.items()}
    swept = [k for k, v in values.items() if v.ndim == 1] if grid else []
    for i, key in enumerate(swept):
        shape = [1] * len(swept)
        shape[i] = values[key].shape[0]
        values[key] = values[key].reshape(shape)
    return {k: as_float(v) for k, v in values.items()}


def from_optax(
    factory: Factory,
    *,
    name: str | None = None,
    eval_params: EvalParams | None = None,
    grid: bool = True,
    checks: tuple[tuple[str, str], ...] = (),
    **hyperparams: Any,
) -> Optimizer:
    """An optimizer from any optax factory ``factory(learning_rate, **hyperparams)``.

    ``hyperparams`` are numbers or arrays (sweepable: batched by ``vmap``, one compile for all
    values); with ``grid`` each list-valued one spans its own batch axis (their Cartesian
    product), without it they broadcast together (zipped).  ``name`` labels results (default:
    the factory's ``__name__``); ``eval_params(opt_state, params)`` gives the point to report
    when it is not the params (``optax.contrib.schedule_free_eval_params``); ``checks`` pairs
    hyperparameter names with a range of ``RANGES``.  Fixed non-numeric settings belong in the
    factory (``functools.partial(optax.sgd, nesterov=True)``)."""
    if isinstance(factory, optax.GradientTransformation):
        raise TypeError(
            "from_optax: give a factory such as optax.adamw (called with the schedule as its "
            "learning_rate), not a built transformation; run a built one with fixed(...)"
        )
    if not callable(factory):
        raise TypeError(f"from_optax: factory must be callable, got {factory!r}")
    label = name or getattr(factory, "__name__", None) or type(factory).__name__
    return Optimizer(
        name=str(label),
        factory=factory,
        hyperparams=_grid_hyperparams(hyperparams, grid),
        eval_params_fn=eval_params,
        checks=tuple(checks),
    ).validate()


def fixed(transformation: optax.GradientTransformation, *, name: str = "optax") -> Optimizer:
    """A built optax transformation run as it is, its learning rate included (``optax.sgd(0.1)``,
    or one with an optax schedule inside): for ``sweep(..., schedule=None)``."""
    if not isinstance(transformation, optax.GradientTransformation):
        raise TypeError(f"fixed: need an optax.GradientTransformation, got {transformation!r}")
    return Optimizer(name=name, factory=transformation, fixed=True).validate()


def as_optimizer(value: Any, component: str = "optimizer") -> Optimizer:
    """``value`` as an ``Optimizer``: itself, a built ``optax.GradientTransformation`` (``fixed``)
    or an optax factory without hyperparameters (``from_optax``)."""
    if isinstance(value, Optimizer):
        return value
    if isinstance(value, optax.GradientTransformation):
        return fixed(value)
    if callable(value) and not hasattr(value, "loss"):
        return from_optax(value)
    raise TypeError(
        f"{component}: need an optimizer (rivervalley.optimizers, an optax factory such as "
        f"optax.adamw, or a built optax.GradientTransformation), got {type(value).__name__}"
    )


def with_averaging(
    optimizer: Any,
    ema_decay: float | None = None,
    window: int | None = None,
    *,
    window_every: int = 1,
) -> Optimizer:
    """Any optimizer, also tracking averages of its reported iterate ``p_t`` (the params;
    for schedule-free the evaluation point ``x_t``), both warm-started at ``p_0``:

    - ``ema_decay = d`` (in [0, 1); a hyperparameter, sweepable: a list spans a dim
      ``ema_decay``): the exponential moving average ``e_0 = p_0``,
      ``e_{t+1} = d e_t + (1 - d) p_{t+1}`` (``d = 0``: the iterate);
    - ``window = W`` (an integer >= 1; static): the uniform mean of the last ``min(W, t + 1)``
      iterates ``p_{t-W+1}, ..., p_t`` (fewer at the start: all so far), kept exactly as a ring
      buffer of the last ``W`` iterates (``W`` parameter copies per run, one slot written per
      update; the mean is summed only when recorded), not as a running sum, whose
      add-new / subtract-oldest updates would drift in floating point;
    - ``window_every = k`` (an integer >= 1; static; only with ``window``): the window holds
      checkpoints saved every ``k`` steps, and its mean at step ``t`` is that of the last
      ``min(W, floor(t / k) + 1)`` checkpoints ``p_s``, ``s`` a multiple of ``k``, ``s <= t``:
      *checkpoint merging* of the last ``W`` checkpoints.  With ``k`` equal to the sweep's
      ``record_every`` the checkpoints are the recorded iterates.

    ``sweep`` then records ``ema_loss``, ``ema_river_loss``, ``ema_hill_loss`` and
    ``window_loss``, ``window_river_loss``, ``window_hill_loss``.  The averages live in the
    optimizer state, so a diverged run's are frozen with its parameters."""
    opt = as_optimizer(optimizer)
    if ema_decay is None and window is None:
        raise ValueError(f"{opt.name}.with_averaging: give ema_decay, window or both")
    if window is not None:
        ok = isinstance(window, int | np.integer) and not isinstance(window, bool) and window >= 1
        require(ok, opt.name, "average_window", window, "an integer >= 1")
    elif window_every != 1:
        raise ValueError(f"{opt.name}.with_averaging: window_every needs a window")
    hyper = dict(opt.hyperparams)
    if ema_decay is not None:
        hyper |= _grid_hyperparams({"ema_decay": ema_decay}, grid=False)
    return dataclasses.replace(
        opt,  # type: ignore[arg-type]
        hyperparams=hyper,
        track_ema=ema_decay is not None,
        average_window=0 if window is None else int(window),
        window_every=int(window_every),
    ).validate()


def _averaging(opt: Optimizer, base: optax.GradientTransformation) -> optax.GradientTransformation:
    """``base`` with the averages of ``with_averaging`` in its state (see ``AveragingState``).

    ``update(g, state, y_t)`` computes ``base``'s update ``u_t``, the new params
    ``y_{t+1} = y_t + u_t`` (exactly as ``optax.apply_updates``) and their reported point
    ``p_{t+1} = opt.eval_params(new state, y_{t+1})``, then ``e_{t+1} = d e_t + (1 - d) p_{t+1}``;
    it writes ``latest = p_t`` into slot ``(t / k) mod W`` of the window if ``t`` is a multiple
    of the stride ``k`` and keeps ``p_{t+1}`` as the new ``latest`` (at most one slot written per
    update, in place)."""
    d = opt.hyperparams.get("ema_decay", 0.0)
    w, k = opt.average_window, opt.window_every
    reported = opt.report_inner

    def init(params):
        inner = base.init(params)
        point = reported(inner, params)
        ema = point if opt.track_ema else None
        latest, window = None, None
        if w:
            latest = point
            window = jax.tree_util.tree_map(
                lambda p: jnp.zeros((w, *jnp.shape(p)), jnp.result_type(p)), point
            )
        return AveragingState(inner, ema, latest, window, jnp.ones((), jnp.int32))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("with_averaging: update needs the params")
        updates, inner = base.update(updates, state.inner, params)
        new_params = optax.apply_updates(params, updates)
        point = reported(inner, new_params)
        ema = state.ema
        if opt.track_ema:
            ema = jax.tree_util.tree_map(lambda e, p: d * e + (1 - d) * p, ema, point)
        latest, window = state.latest, state.window
        if w:
            t = state.count - 1  # the step of ``latest``
            slot = (t // k) % w
            if k == 1:
                window = jax.tree_util.tree_map(lambda b, p: b.at[slot].set(p), window, latest)
            else:
                keep = t % k != 0  # not a checkpoint: rewrite the slot's own value

                def write(b, p):
                    return b.at[slot].set(jnp.where(keep, b[slot], p))

                window = jax.tree_util.tree_map(write, window, latest)
            latest = point
        return updates, AveragingState(inner, ema, latest, window, state.count + 1)

    return optax.GradientTransformation(init, update)


def _sgd(learning_rate, momentum=None, *, nesterov=False):
    return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)


def _nesterov_sgd(learning_rate, momentum):
    return optax.sgd(learning_rate, momentum=momentum, nesterov=True)


def sgd(momentum: Any = None, *, nesterov: bool = False) -> Optimizer:
    """SGD (``optax.sgd``), with optional heavy-ball momentum ``m <- beta m + g`` (or Nesterov's,
    which needs a momentum); ``momentum`` is sweepable."""
    if momentum is None:
        if nesterov:
            raise ValueError("sgd: nesterov=True needs a momentum (e.g. sgd(0.9, nesterov=True))")
        return from_optax(_sgd, name="sgd")
    factory = _nesterov_sgd if nesterov else _sgd
    return from_optax(factory, name="sgd", checks=(("momentum", "unit"),), momentum=momentum)


ADAM_CHECKS = (("b1", "unit"), ("b2", "unit"), ("eps", "positive"))


def adam(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8) -> Optimizer:
    """Adam (``optax.adam``), bias-corrected; ``b1``, ``b2``, ``eps`` sweepable."""
    return from_optax(optax.adam, name="adam", checks=ADAM_CHECKS, b1=b1, b2=b2, eps=eps)


def adamw(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, weight_decay: Any = 1e-4) -> Optimizer:
    """AdamW (``optax.adamw``): Adam plus decoupled weight decay ``- eta_t lambda w``."""
    checks = (*ADAM_CHECKS, ("weight_decay", "non_negative"))
    return from_optax(
        optax.adamw, name="adamw", checks=checks, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay
    )


def lion(b1: Any = 0.9, b2: Any = 0.99, weight_decay: Any = 1e-3) -> Optimizer:
    """Lion (``optax.lion``): ``w <- w - eta_t (sign(b1 m + (1 - b1) g) + lambda w)``."""
    checks = (("b1", "unit"), ("b2", "unit"), ("weight_decay", "non_negative"))
    return from_optax(
        optax.lion, name="lion", checks=checks, b1=b1, b2=b2, weight_decay=weight_decay
    )


SCHEDULE_FREE_CHECKS = (
    ("b1", "unit_open_closed"),
    ("b2", "unit"),
    ("eps", "positive"),
    ("weight_decay", "non_negative"),
    ("weight_lr_power", "non_negative"),
)


def schedule_free_sgd(
    b1: Any = 0.9, weight_decay: Any = 0.0, weight_lr_power: Any = 2.0
) -> Optimizer:
    """Schedule-free SGD (``optax.contrib.schedule_free_sgd``, Defazio et al. 2024) with the
    lab's schedule as its rate.

    ``z_{t+1} = z_t - eta_t (g(y_t) + weight_decay y_t)``, ``y`` and ``x`` as in the module
    docstring; ``b1`` in (0, 1] (``b1 = 1``: gradients at the averaged point ``x``).  Run it with
    warmup then a constant rate (``schedules.constant(peak, warmup_steps=...)``): the averaging
    in ``x`` replaces a decay.  ``sweep`` records ``loss`` (and river / hill) at ``x`` and
    ``y_loss`` at the gradient point ``y``."""
    return from_optax(
        optax.contrib.schedule_free_sgd,
        name="schedule_free_sgd",
        eval_params=optax.contrib.schedule_free_eval_params,
        checks=SCHEDULE_FREE_CHECKS,
        b1=b1,
        weight_decay=weight_decay,
        weight_lr_power=weight_lr_power,
    )


def schedule_free_adamw(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    weight_lr_power: Any = 2.0,
) -> Optimizer:
    """Schedule-free AdamW (``optax.contrib.schedule_free_adamw``) with the lab's schedule as
    its rate.

    ``v_{t+1} = b2 v_t + (1 - b2) g^2`` (bias-corrected to ``v_hat``),
    ``z_{t+1} = z_t - eta_t (g / (sqrt(v_hat) + eps) + weight_decay y_t)``; ``y`` and ``x`` as
    in the module docstring, ``b1`` in (0, 1].  Run it with warmup then a constant rate; ``sweep``
    records ``loss`` at ``x`` and ``y_loss`` at ``y``."""
    return from_optax(
        optax.contrib.schedule_free_adamw,
        name="schedule_free_adamw",
        eval_params=optax.contrib.schedule_free_eval_params,
        checks=SCHEDULE_FREE_CHECKS,
        b1=b1,
        b2=b2,
        eps=eps,
        weight_decay=weight_decay,
        weight_lr_power=weight_lr_power,
    )


FACTORIES: dict[str, Callable[..., Optimizer]] = {
    "sgd": sgd,
    "adam": adam,
    "adamw": adamw,
    "lion": lion,
    "schedule_free_sgd": schedule_free_sgd,
    "schedule_free_adamw": schedule_free_adamw,
}


def by_name(name: str, **kwargs: Any) -> Optimizer:
    """Look up one of the lab's optimizer constructors by name (one of ``OPTIMIZERS``)."""
    choice("optimizer", "name", name, tuple(FACTORIES))
    return FACTORIES[name](**kwargs)
