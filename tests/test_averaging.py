"""Iterate averaging (EMA and window) and the schedule-free optimizers: the recorded averages and
their losses against independent NumPy / optax computations, batching, freezing, validation."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rivervalley import optimizers, runner, schedules
from rivervalley.landscapes import toy

STEPS = 30
AVERAGE_VARS = {f"{a}_{v}" for a in optimizers.AVERAGES for v in runner.AVERAGE_RECORDED}


def numpy_averages(points: np.ndarray, decay: float, window: int):
    """EMA ``e_0 = p_0, e_{t+1} = d e_t + (1 - d) p_{t+1}`` and the mean of the last
    ``min(W, t + 1)`` points, in float64 from the recorded iterates ``points`` (step, d)."""
    ema = np.empty_like(points)
    ema[0] = points[0]
    for t in range(1, len(points)):
        ema[t] = decay * ema[t - 1] + (1 - decay) * points[t]
    mean = np.stack([points[max(0, t - window + 1) : t + 1].mean(0) for t in range(len(points))])
    return {"ema": ema, "window": mean}


def evaluate(landscape, points: np.ndarray):
    """Loss and river / hill losses of the landscape at each point of ``points`` (n, d)."""
    w = jnp.asarray(points, jnp.float32)
    parts = jax.vmap(landscape.decompose)(w)
    loss = jax.vmap(landscape.loss)(w)
    return {"loss": loss, "river_loss": parts.river_loss, "hill_loss": parts.hill_loss}


# one landscape, schedule kind, run count and record layout throughout: sweeps of the same
# optimizer family reuse one compiled program (compilation dominates these tests' time)
LANDSCAPE = toy()
SCHEDULE = schedules.constant(0.05, warmup_steps=3)
SEEDS = [4, 5]


def test_averages_match_numpy_batch_and_plain_sweeps():
    """EMA and window of SGD with momentum against NumPy from the recorded iterates, for a batch
    of decays ``[0, 0.8]`` (dim ``ema_decay``): ``d = 0`` is the iterate itself; the batch equals
    single sweeps; the raw trajectory is that of the optimizer without averaging, which records
    no averages."""
    decays, window = [0.0, 0.8], 4
    base = optimizers.sgd(momentum=0.5)
    batch = base.with_averaging(ema_decay=decays, window=window)
    kwargs = {"seeds": SEEDS, "steps": STEPS, "record_params": True, "progress": False}
    ds = runner.sweep(LANDSCAPE, batch, SCHEDULE, **kwargs)
    assert ds.loss.dims == ("ema_decay", "seed", "step")
    np.testing.assert_allclose(ds.ema_decay, decays)
    for (i, decay), j in itertools.product(enumerate(decays), range(len(SEEDS))):
        run = ds.isel(ema_decay=i, seed=j)
        points = run.params.values.astype(np.float64)
        expected = numpy_averages(points, decay, window)
        for name, avg in expected.items():
            np.testing.assert_allclose(run[f"{name}_params"], avg, rtol=1e-5, atol=1e-6)
            for var, value in evaluate(LANDSCAPE, avg).items():
                got = run[f"{name}_{var}"].values
                np.testing.assert_allclose(got, value, rtol=2e-5, atol=1e-7, err_msg=name + var)
    # d = 0: 0 e + 1 p = p exactly (the losses to float32 rounding: XLA may fuse the iterate's
    # loss with the update and evaluate it in another order)
    no_decay = ds.isel(ema_decay=0)
    np.testing.assert_array_equal(no_decay.ema_params, no_decay.params)
    for var in runner.AVERAGE_RECORDED:
        np.testing.assert_allclose(no_decay[f"ema_{var}"], no_decay[var], rtol=1e-5, atol=1e-8)
    assert not np.allclose(ds.ema_loss.isel(ema_decay=0), ds.ema_loss.isel(ema_decay=1))

    alone = runner.sweep(
        LANDSCAPE, base.with_averaging(ema_decay=decays[1], window=window), SCHEDULE, **kwargs
    )
    assert "ema_decay" not in alone.coords  # unbatched: no coordinate
    for var in alone.data_vars:
        got = ds[var].isel(ema_decay=1)
        np.testing.assert_allclose(got, alone[var], rtol=1e-6, atol=1e-9, err_msg=var)

    plain = runner.sweep(LANDSCAPE, base, SCHEDULE, **kwargs)
    averages = {v for v in map(str, alone.data_vars) if v.startswith(optimizers.AVERAGES)}
    assert averages == AVERAGE_VARS | {"ema_params", "window_params"}
    assert set(plain.data_vars) == set(alone.data_vars) - averages
    for var in plain.data_vars:  # the averaging does not touch the raw trajectory
        np.testing.assert_array_equal(plain[var], alone[var], err_msg=var)

    # divergence (same compiled program): the averages read NaN with the raw iterate's records
    # from the diverged step on, and are finite before it
    diverging = runner.sweep(LANDSCAPE, batch, schedules.constant(1.0), **kwargs)
    assert bool(diverging.diverged.all())
    for i, j in itertools.product(range(len(decays)), range(len(SEEDS))):
        run = diverging.isel(ema_decay=i, seed=j)
        at = int(run.diverged_step)
        assert at > 0
        for var in [*AVERAGE_VARS, "loss", "ema_params", "window_params"]:
            before, after = (
                run[var].sel(step=slice(None, at - 1)),
                run[var].sel(step=slice(at, None)),
            )
            assert np.all(np.isfinite(before)) and np.all(np.isnan(after)), var


def numpy_merge(points: np.ndarray, window: int, every: int) -> np.ndarray:
    """Checkpoint merging from the iterates of every step (step, d): at step ``t`` the mean of
    the checkpoints ``p_s``, ``s`` a multiple of ``every``, ``s <= t``, the last ``window``."""
    out = []
    for t in range(len(points)):
        checkpoints = points[: t + 1 : every]
        out.append(checkpoints[-window:].mean(0))
    return np.stack(out)


@pytest.mark.parametrize("every", [1, 3])
def test_checkpoint_merging_matches_numpy_from_every_iterate(every):
    """A window of 4 checkpoints every ``k`` steps, recorded every step, against NumPy from the
    recorded iterates (``k = 1``: the plain window), frozen with a diverging run."""
    opt = optimizers.sgd().with_averaging(window=4, window_every=every)
    kwargs = {"seeds": SEEDS, "steps": STEPS, "record_params": True, "progress": False}
    ds = runner.sweep(LANDSCAPE, opt, SCHEDULE, **kwargs)
    for j in range(len(SEEDS)):
        run = ds.isel(seed=j)
        merged = numpy_merge(run.params.values.astype(np.float64), 4, every)
        np.testing.assert_allclose(run.window_params, merged, rtol=1e-5, atol=1e-6)
        for var, value in evaluate(LANDSCAPE, merged).items():
            got = run[f"window_{var}"].values
            np.testing.assert_allclose(got, value, rtol=2e-5, atol=1e-7, err_msg=var)
    diverging = runner.sweep(LANDSCAPE, opt, schedules.constant(1.0), **kwargs)
    assert bool(diverging.diverged.all())
    for j in range(len(SEEDS)):
        run = diverging.isel(seed=j)
        at = int(run.diverged_step)
        assert at > 0
        before, after = run.window_loss[:at], run.window_loss[at:]
        assert np.all(np.isfinite(before)) and np.all(np.isnan(after))


def test_checkpoint_merging_of_the_recorded_iterates():
    """With ``window_every`` equal to ``record_every`` the merged checkpoints are the records:
    at every record step the window is the mean of the last ``W`` recorded iterates."""
    every, window = 5, 3
    opt = optimizers.sgd(momentum=0.5).with_averaging(window=window, window_every=every)
    ds = runner.sweep(
        LANDSCAPE,
        opt,
        SCHEDULE,
        seeds=SEEDS,
        steps=STEPS,
        record_every=every,
        record_params=True,
        progress=False,
    )
    for j in range(len(SEEDS)):
        run = ds.isel(seed=j)
        merged = numpy_merge(run.params.values.astype(np.float64), window, 1)
        np.testing.assert_allclose(run.window_params, merged, rtol=1e-5, atol=1e-6)


def sf_reference(landscape, tx, seeds, steps):
    """Independent loop: optax's schedule-free transformation, the documented key convention;
    the evaluation points ``x`` and gradient points ``y`` after every update, per seed."""

    @jax.jit
    def step(y, state, noise_key, t):
        g = runner.gradient(landscape, y, jax.random.fold_in(noise_key, t))
        updates, state = tx.update(g, state, y)
        return optax.apply_updates(y, updates), state

    out = []
    for seed in seeds:
        init_key, noise_key = jax.random.split(jax.random.key(seed))
        y = landscape.init(init_key)
        state = tx.init(y)
        xs, ys = [y], [y]
        for t in range(steps):
            y, state = step(y, state, noise_key, t)
            xs.append(optax.contrib.schedule_free_eval_params(state, y))
            ys.append(y)
        out.append((np.stack(xs), np.stack(ys)))
    return out


@pytest.mark.parametrize("family", ["sgd", "adamw"])
def test_schedule_free_matches_optax_loop(family):
    """A batch of two ``b1`` (dim ``b1``) against ``optax.contrib.schedule_free_*`` run in a
    Python loop on the same noise: the recorded iterate is the evaluation point ``x``, ``loss``
    and its split are at ``x``, ``y_loss`` at the gradient point; averaging (on ``x``) against
    NumPy."""
    b1s, wd = [0.8, 0.5], 0.01
    if family == "sgd":
        batch = optimizers.schedule_free_sgd(b1=b1s, weight_decay=wd)
        txs = [optax.contrib.schedule_free_sgd(SCHEDULE, b1=b, weight_decay=wd) for b in b1s]
    else:
        batch = optimizers.schedule_free_adamw(b1=b1s, b2=0.99, weight_decay=wd)
        txs = [
            optax.contrib.schedule_free_adamw(SCHEDULE, b1=b, b2=0.99, weight_decay=wd) for b in b1s
        ]
    batch = batch.with_averaging(ema_decay=0.7, window=3)
    ds = runner.sweep(LANDSCAPE, batch, SCHEDULE, seeds=SEEDS, steps=STEPS, record_params=True)
    assert ds.loss.dims == ("b1", "seed", "step")
    np.testing.assert_allclose(ds.b1, b1s)
    assert ds.optimizer.item() == f"schedule_free_{family}"
    for i, tx in enumerate(txs):
        for j, (xs, ys) in enumerate(sf_reference(LANDSCAPE, tx, SEEDS, STEPS)):
            run = ds.isel(b1=i, seed=j)
            np.testing.assert_allclose(run.params, xs, rtol=1e-5, atol=1e-6)
            for var, value in evaluate(LANDSCAPE, xs).items():  # at x, not at y
                np.testing.assert_allclose(run[var], value, rtol=1e-5, atol=1e-7)
            y_loss = evaluate(LANDSCAPE, ys)["loss"]
            np.testing.assert_allclose(run.y_loss, y_loss, rtol=1e-5, atol=1e-7)
            assert not np.allclose(run.loss[1:], run.y_loss[1:])
            expected = numpy_averages(run.params.values.astype(np.float64), 0.7, 3)
            for name, avg in expected.items():
                np.testing.assert_allclose(run[f"{name}_params"], avg, rtol=1e-5, atol=1e-6)
                got = run[f"{name}_loss"]
                np.testing.assert_allclose(got, evaluate(LANDSCAPE, avg)["loss"], rtol=2e-5)


def test_names():
    assert {"schedule_free_sgd", "schedule_free_adamw"} <= set(optimizers.OPTIMIZERS)
    assert optimizers.by_name("schedule_free_adamw", b2=0.9).name == "schedule_free_adamw"
    assert float(optimizers.by_name("schedule_free_sgd", b1=0.5).hyperparams["b1"]) == 0.5
    with pytest.raises(TypeError, match="exact"):  # exact gradients: sweep(gradient="exact")
        optimizers.by_name("schedule_free_sgd", exact=True)
    assert not optimizers.sgd().averaging and optimizers.sgd().with_averaging(window=2).averaging


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: optimizers.sgd().with_averaging(ema_decay=1.0),
            r"sgd.ema_decay = 1.0: .*\[0, 1\)",
        ),
        (lambda: optimizers.sgd().with_averaging(ema_decay=-0.1), r"ema_decay = -0.1"),
        (lambda: optimizers.sgd().with_averaging(window=0), r"average_window = 0: .*>= 1"),
        (lambda: optimizers.adam().with_averaging(window=2.5), r"average_window = 2.5"),  # type: ignore[arg-type]
        (lambda: optimizers.sgd().with_averaging(), "ema_decay, window or both"),
        (
            lambda: optimizers.sgd().with_averaging(window=2, window_every=0),
            r"window_every = 0: .*>= 1",
        ),
        (
            lambda: optimizers.sgd().with_averaging(ema_decay=0.5, window_every=2),
            "window_every needs a window",
        ),
        (lambda: optimizers.schedule_free_sgd(b1=0.0), r"schedule_free_sgd.b1 = 0.0: .*\(0, 1\]"),
        (lambda: optimizers.schedule_free_adamw(weight_decay=-1), r"weight_decay = -1.0: .*>= 0"),
    ],
)
def test_validation_names_field_and_range(build, match):
    with pytest.raises(ValueError, match=match):
        build()
