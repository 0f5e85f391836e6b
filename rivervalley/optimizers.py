r"""Named optax optimizers whose learning rate comes from a schedule.

An ``Optimizer`` is a pytree: its numeric hyperparameters (momentum, Adam's betas and epsilon,
weight decay, the EMA decay of iterate averaging) are array leaves, so ``sweep`` can batch over
them like over schedule fields; its family, the gradient oracle it uses and whether it averages
iterates are static.

=======================  ==================================================  ===================
name                      update (``g``: gradient, ``eta_t``: schedule)        gradient
=======================  ==================================================  ===================
``gd``                    ``w <- w - eta_t g``                                exact ``grad(w)``
``sgd``                   ``w <- w - eta_t g`` or, with heavy-ball momentum    ``stochastic_grad``
                          ``m <- beta m + g; w <- w - eta_t m``
``adam``                  optax's Adam, bias-corrected, ``w <- w - eta_t u``  ``stochastic_grad``
``schedule_free_sgd``     schedule-free SGD (Defazio et al. 2024), below       ``stochastic_grad``
                                                                              (``exact=True``:
                                                                              ``grad``)
``schedule_free_adamw``   schedule-free AdamW, below                           as above
=======================  ==================================================  ===================

The update rules are optax's own (``optax.sgd``, ``optax.adam``,
``optax.contrib.schedule_free_sgd``, ``optax.contrib.schedule_free_adamw``) with the schedule
passed as their ``learning_rate``.

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

**Iterate averaging** (``Optimizer.with_averaging``) adds, on top of any family, an exponential
moving average and/or a uniform window average of the reported iterate ``p_t`` (the params, or
``x_t`` for schedule-free); ``sweep`` records their losses next to the raw iterate's (see
``Optimizer.averages``).  A window with a stride ``window_every = k > 1`` averages checkpoints
saved every ``k`` steps: *checkpoint merging* (WSM, "Decay-Free Learning Rate Schedule via
Checkpoint Merging"; with ``k`` = the sweep's ``record_every`` the merged checkpoints are exactly
the recorded iterates).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rivervalley.landscapes.base import Landscape
from rivervalley.pytree import array_field, as_float, batch_shape, pytree_dataclass, static_field
from rivervalley.validation import at_least, choice, require, within

SCHEDULE_FREE = ("schedule_free_sgd", "schedule_free_adamw")
OPTIMIZERS = ("gd", "sgd", "adam", *SCHEDULE_FREE)
AVERAGES = ("ema", "window")  # names of the iterate averages, prefixes of their recorded losses


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
    """An optimizer family with its hyperparameters; build it with ``gd``, ``sgd``, ``adam``,
    ``schedule_free_sgd`` or ``schedule_free_adamw``, optionally followed by
    ``.with_averaging(...)``.

    Array fields (sweepable): ``momentum`` (heavy ball), ``b1`` (Adam's first-moment decay, or
    schedule-free's interpolation ``b1``), ``b2``, ``eps``, ``weight_decay`` and
    ``weight_lr_power`` (schedule-free), ``ema_decay`` (the EMA's ``d``).  Static:
    ``name``, ``stochastic``, ``use_momentum``, ``nesterov``, ``track_ema``,
    ``average_window`` (``W``; 0: no window average) and ``window_every`` (its stride ``k``)."""

    name: str = static_field()
    stochastic: bool = static_field()
    use_momentum: bool = static_field(default=False)
    nesterov: bool = static_field(default=False)
    track_ema: bool = static_field(default=False)
    average_window: int = static_field(default=0)
    window_every: int = static_field(default=1)
    momentum: jax.Array = array_field(default=0.0)
    b1: jax.Array = array_field(default=0.9)
    b2: jax.Array = array_field(default=0.999)
    eps: jax.Array = array_field(default=1e-8)
    weight_decay: jax.Array = array_field(default=0.0)
    weight_lr_power: jax.Array = array_field(default=2.0)
    ema_decay: jax.Array = array_field(default=0.0)

    @property
    def schedule_free(self) -> bool:
        """Whether this is a schedule-free family (reported point ``x`` differs from params)."""
        return self.name in SCHEDULE_FREE

    @property
    def averaging(self) -> bool:
        """Whether any iterate average is tracked (static: it changes the compiled program)."""
        return self.track_ema or self.average_window > 0

    def validate(self) -> Optimizer:
        """Check the family name and hyperparameters: momentum and betas in [0, 1) (schedule-free
        ``b1`` in (0, 1]), eps > 0, weight decay and ``weight_lr_power`` >= 0, ``ema_decay`` in
        [0, 1), ``average_window`` an integer >= 0 (>= 1 once set by ``with_averaging``),
        ``window_every`` an integer >= 1."""
        choice("optimizer", "name", self.name, OPTIMIZERS)
        batch_shape(self)
        fields = ("momentum", "b2", "ema_decay") + (() if self.schedule_free else ("b1",))
        for field in fields:
            value = getattr(self, field)
            ok = within(self.name, field, value, 0.0, 1.0) < 1.0
            require(ok, self.name, field, value, "in [0, 1)")
        if self.schedule_free:
            ok = within(self.name, "b1", self.b1, 0.0, 1.0) > 0.0
            require(ok, self.name, "b1", self.b1, "in (0, 1]")
        at_least(self.name, "eps", self.eps, 0.0, strict=True)
        at_least(self.name, "weight_decay", self.weight_decay, 0.0)
        at_least(self.name, "weight_lr_power", self.weight_lr_power, 0.0)
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
        """This optimizer, also tracking averages of its reported iterate ``p_t`` (the params;
        for schedule-free the evaluation point ``x_t``), both warm-started at ``p_0``:

        - ``ema_decay = d`` (in [0, 1); an array leaf, sweepable): the exponential moving
          average ``e_0 = p_0``, ``e_{t+1} = d e_t + (1 - d) p_{t+1}`` (``d = 0``: the iterate);
        - ``window = W`` (an integer >= 1; static): the uniform mean of the last
          ``min(W, t + 1)`` iterates ``p_{t-W+1}, ..., p_t`` (fewer at the start: all so far).
          Kept exactly as a ring buffer of the last ``W`` iterates (``W`` parameter copies per
          run, one slot written per update; the mean is summed only when recorded), not as a
          running sum, whose add-new / subtract-oldest updates would drift in floating point
          and would need the buffer anyway to know the oldest iterate;
        - ``window_every = k`` (an integer >= 1; static; only with ``window``): the window holds
          checkpoints saved every ``k`` steps instead of every iterate, and its mean at step
          ``t`` is that of the last ``min(W, floor(t / k) + 1)`` checkpoints ``p_s``, ``s`` a
          multiple of ``k``, ``s <= t``: *checkpoint merging* of the last ``W`` checkpoints.
          With ``k`` equal to the sweep's ``record_every`` the checkpoints are the recorded
          iterates, and the recorded ``window_*`` at a record step ``t`` is the merge of the
          records at ``t, t - k, ..., t - (W - 1) k``.

        ``sweep`` then records ``ema_loss``, ``ema_river_loss``, ``ema_hill_loss`` and
        ``window_loss``, ``window_river_loss``, ``window_hill_loss``: the landscape's loss and
        decomposition at the averages.  The averages live in the optimizer state, so a diverged
        run's are frozen with its parameters.  Without averaging the optimizer (and the compiled
        program) is unchanged."""
        if ema_decay is None and window is None:
            raise ValueError(f"{self.name}.with_averaging: give ema_decay, window or both")
        if window is not None:
            ok = isinstance(window, int) and not isinstance(window, bool) and window >= 1
            require(ok, self.name, "average_window", window, "an integer >= 1")
        elif window_every != 1:
            raise ValueError(f"{self.name}.with_averaging: window_every needs a window")
        return dataclasses.replace(
            self,  # type: ignore[arg-type]
            track_ema=ema_decay is not None,
            average_window=0 if window is None else int(window),
            window_every=window_every,
            ema_decay=as_float(0.0 if ema_decay is None else ema_decay),
        ).validate()

    def _base(self, learning_rate: Any) -> optax.GradientTransformation:
        if self.name in ("gd", "sgd"):
            momentum = self.momentum if self.use_momentum else None
            return optax.sgd(learning_rate, momentum=momentum, nesterov=self.nesterov)
        if self.name == "adam":
            return optax.adam(learning_rate, b1=self.b1, b2=self.b2, eps=self.eps)
        if self.name == "schedule_free_sgd":
            return optax.contrib.schedule_free_sgd(
                learning_rate,
                b1=self.b1,
                weight_decay=self.weight_decay,
                weight_lr_power=self.weight_lr_power,
            )
        if self.name == "schedule_free_adamw":
            return optax.contrib.schedule_free_adamw(
                learning_rate,
                b1=self.b1,
                b2=self.b2,
                eps=self.eps,
                weight_decay=self.weight_decay,
                weight_lr_power=self.weight_lr_power,
            )
        raise ValueError(f"optimizer: unknown name {self.name!r}; allowed: {OPTIMIZERS}")

    def transform(self, learning_rate: Any) -> optax.GradientTransformation:
        """The optax transformation with ``learning_rate`` (a float or a schedule); wrapped by
        the averaging of ``with_averaging`` when that is on (its state: ``AveragingState``)."""
        base = self._base(learning_rate)
        if not self.averaging:
            return base
        return _averaging(self, base)

    def _inner_state(self, opt_state: Any) -> Any:
        return opt_state.inner if self.averaging else opt_state

    def eval_params(self, opt_state: Any, params: Any) -> Any:
        """The reported iterate: ``params`` itself, or for schedule-free the evaluation point
        ``x = (y - (1 - b1) z) / b1`` (``optax.contrib.schedule_free_eval_params``)."""
        if not self.schedule_free:
            return params
        inner = self._inner_state(opt_state)
        return optax.contrib.schedule_free_eval_params(inner, params)

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

    def gradient(self, landscape: Landscape, w: Any, key: jax.Array) -> Any:
        """The gradient this optimizer sees: exact for GD, stochastic otherwise."""
        if self.stochastic:
            return landscape.stochastic_grad(w, key)
        return landscape.grad(w)


def _averaging(opt: Optimizer, base: optax.GradientTransformation) -> optax.GradientTransformation:
    """``base`` with the averages of ``with_averaging`` in its state (see ``AveragingState``).

    ``update(g, state, y_t)`` computes ``base``'s update ``u_t``, the new params
    ``y_{t+1} = y_t + u_t`` (exactly as ``optax.apply_updates``) and their reported point
    ``p_{t+1} = opt.eval_params(new state, y_{t+1})``, then ``e_{t+1} = d e_t + (1 - d) p_{t+1}``;
    it writes ``latest = p_t`` into slot ``(t / k) mod W`` of the window if ``t`` is a multiple
    of the stride ``k`` and keeps ``p_{t+1}`` as the new ``latest`` (at most one slot written per
    update, in place)."""
    d = opt.ema_decay
    w, k = opt.average_window, opt.window_every

    def reported(inner, params):
        if not opt.schedule_free:
            return params
        return optax.contrib.schedule_free_eval_params(inner, params)

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


def gd() -> Optimizer:
    """Full-batch gradient descent (exact gradients)."""
    return Optimizer(name="gd", stochastic=False).validate()


def sgd(momentum: float | None = None, *, nesterov: bool = False) -> Optimizer:
    """SGD on stochastic gradients, with optional heavy-ball (or Nesterov) momentum."""
    return Optimizer(
        name="sgd",
        stochastic=True,
        use_momentum=momentum is not None,
        nesterov=nesterov,
        momentum=as_float(0.0 if momentum is None else momentum),
    ).validate()


def adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam on stochastic gradients."""
    return Optimizer(
        name="adam", stochastic=True, b1=as_float(b1), b2=as_float(b2), eps=as_float(eps)
    ).validate()


def schedule_free_sgd(
    b1: float = 0.9,
    weight_decay: float = 0.0,
    weight_lr_power: float = 2.0,
    *,
    exact: bool = False,
) -> Optimizer:
    """Schedule-free SGD (``optax.contrib.schedule_free_sgd``, Defazio et al. 2024) on
    stochastic gradients (``exact=True``: exact ones), with the lab's schedule as its rate.

    ``z_{t+1} = z_t - eta_t (g(y_t) + weight_decay y_t)``, ``y`` and ``x`` as in the module
    docstring; ``b1`` in (0, 1] (``b1 = 1``: gradients at the averaged point ``x``).  Run it with
    warmup then a constant rate (``schedules.constant(peak, warmup_steps=...)``): the averaging
    in ``x`` replaces a decay.  ``sweep`` records ``loss`` (and river / hill) at ``x`` and
    ``y_loss`` at the gradient point ``y``."""
    return Optimizer(
        name="schedule_free_sgd",
        stochastic=not exact,
        b1=as_float(b1),
        weight_decay=as_float(weight_decay),
        weight_lr_power=as_float(weight_lr_power),
    ).validate()


def schedule_free_adamw(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_lr_power: float = 2.0,
    *,
    exact: bool = False,
) -> Optimizer:
    """Schedule-free AdamW (``optax.contrib.schedule_free_adamw``) on stochastic gradients
    (``exact=True``: exact ones), with the lab's schedule as its rate.

    ``v_{t+1} = b2 v_t + (1 - b2) g^2`` (bias-corrected to ``v_hat``),
    ``z_{t+1} = z_t - eta_t (g / (sqrt(v_hat) + eps) + weight_decay y_t)``; ``y`` and ``x`` as
    in the module docstring, ``b1`` in (0, 1].  Run it with warmup then a constant rate; ``sweep``
    records ``loss`` at ``x`` and ``y_loss`` at ``y``."""
    return Optimizer(
        name="schedule_free_adamw",
        stochastic=not exact,
        b1=as_float(b1),
        b2=as_float(b2),
        eps=as_float(eps),
        weight_decay=as_float(weight_decay),
        weight_lr_power=as_float(weight_lr_power),
    ).validate()


def by_name(name: str, **kwargs: Any) -> Optimizer:
    """Look up an optimizer factory by name (one of ``OPTIMIZERS``)."""
    factories = {
        "gd": gd,
        "sgd": sgd,
        "adam": adam,
        "schedule_free_sgd": schedule_free_sgd,
        "schedule_free_adamw": schedule_free_adamw,
    }
    choice("optimizer", "name", name, OPTIMIZERS)
    return factories[name](**kwargs)
