"""Bad input gets a clear error before any compute: the message names the field and the value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rivervalley import optimizers, runner, schedules
from rivervalley.landscapes import NoisyQuadratic, noisy_quadratic, river_valley, toy

NAN, INF = float("nan"), float("inf")

BAD = [
    # (what, call, substrings the message must contain)
    ("negative peak", lambda: schedules.wsd(-0.1, 100), ["wsd.peak", "-0.1", ">= 0"]),
    ("nan peak", lambda: schedules.cosine(NAN, 100), ["cosine.peak", "nan", "finite"]),
    ("inf peak", lambda: schedules.constant(INF), ["constant.peak", "inf", "finite"]),
    ("negative final", lambda: schedules.linear(0.1, 100, final=-1), ["linear.final", "-1"]),
    ("final above peak", lambda: schedules.wsd(0.1, 100, final=0.2), ["wsd.final", "peak"]),
    ("zero steps", lambda: schedules.wsd(0.1, 0), ["wsd.total_steps", "0", "> 0"]),
    ("negative steps", lambda: schedules.cosine(0.1, -5), ["cosine.total_steps", "-5"]),
    ("fraction > 1", lambda: schedules.wsd(0.1, 100, 1.5), ["wsd.decay_fraction", "1.5"]),
    ("fraction < 0", lambda: schedules.wsd_s(0.1, [50], -0.1), ["wsd_s.decay_fraction"]),
    ("negative warmup", lambda: schedules.wsd(0.1, 100, warmup_steps=-1), ["warmup_steps"]),
    (
        "warmup longer than budget",
        lambda: schedules.cosine(0.1, 100, warmup_steps=200),
        ["cosine.warmup_steps", "200", "total_steps"],
    ),
    (
        "ends out of order",
        lambda: schedules.wsd_s(0.1, [100, 50]),
        ["wsd_s.decay_ends", "increasing"],
    ),
    ("repeated ends", lambda: schedules.cyclic_cosine(0.1, [50, 50]), ["cyclic_cosine.cycle_ends"]),
    ("nonpositive end", lambda: schedules.wsd_s(0.1, [0, 50]), ["wsd_s.decay_ends", "> 0"]),
    ("unknown shape", lambda: schedules.wsd(0.1, 100, shape="step"), ["shape", "step"]),
    (
        "unknown optimizer",
        lambda: optimizers.by_name("rmsprop"),
        ["optimizer.name", "rmsprop", "adamw", "lion"],
    ),
    ("nesterov without momentum", lambda: optimizers.sgd(nesterov=True), ["nesterov", "momentum"]),
    ("momentum 1", lambda: optimizers.sgd(momentum=1.0), ["sgd.momentum", "[0, 1)"]),
    ("bad beta", lambda: optimizers.adam(b2=1.5), ["adam.b2", "1.5"]),
    ("eps 0", lambda: optimizers.adam(eps=0.0), ["adam.eps", "> 0"]),
    ("zero curvature", lambda: noisy_quadratic([1.0, 0.0], 1.0, 1.0), ["curvatures", "0."]),
    ("negative hill", lambda: river_valley(4, curvatures=[1, -1, 1]), ["river_valley.curvatures"]),
    ("negative noise", lambda: toy(noise_std=-0.1), ["noise_std", "-0.1"]),
    ("nan start", lambda: toy(start=(NAN, 0.0)), ["start", "nan", "finite"]),
    ("dim 1", lambda: river_valley(1), ["dim", "1", ">= 2"]),
    ("unknown river", lambda: river_valley(3, river="flat"), ["river", "flat", "softplus"]),
]


@pytest.mark.parametrize(("what", "call", "needles"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_rejected_with_a_clear_message(what, call, needles):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{what}: {needle!r} missing from {message!r}"


def sweep_args(**overrides):
    args = {
        "landscape": toy(),
        "optimizer": optimizers.sgd(),
        "schedule": schedules.constant(0.1),
        "seeds": 1,
        "steps": 10,
        "progress": False,
    }
    return args | overrides


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        ({"schedule": schedules.constant(0.1, warmup_steps=20)}, ["warmup_steps", "10 steps"]),
        ({"schedule": schedules.wsd_s(0.1, [5, 20])}, ["decay_ends", "10 steps"]),
        ({"schedule": schedules.cyclic_cosine(0.1, [5, 11])}, ["cycle_ends", "10 steps"]),
        ({"steps": -3}, ["steps", "-3"]),
        ({"seeds": 0}, ["seeds", "0"]),
        ({"schedule": schedules.wsd(0.1, 1000)}, ["wsd.total_steps", "steps=10", "horizon"]),
        ({"schedule": schedules.cosine(0.1, 5)}, ["cosine.total_steps", "steps=10", "horizon"]),
        ({"optimizer": 0.1}, ["optimizer", "float"]),
        ({"schedule": optimizers.sgd()}, ["schedule", "Optimizer"]),
    ],
)
def test_sweep_rejects_runs_that_do_not_fit(overrides, needles):
    before = runner.trace_count()
    with pytest.raises((ValueError, TypeError)) as info:
        runner.sweep(**sweep_args(**overrides))
    assert all(n in str(info.value) for n in needles), str(info.value)
    assert runner.trace_count() == before  # rejected before any compilation


def test_directly_constructed_bad_objects_are_caught_by_sweep():
    bad = NoisyQuadratic(jnp.array([1.0, -2.0]), jnp.ones(2), jnp.ones(2))
    with pytest.raises(ValueError, match=r"noisy_quadratic\.curvatures"):
        runner.sweep(**sweep_args(landscape=bad))
    mismatched = NoisyQuadratic(jnp.array([1.0, 2.0]), jnp.ones(3), jnp.ones(2))
    with pytest.raises(ValueError, match="noise_std"):
        runner.sweep(**sweep_args(landscape=mismatched))


def test_mismatched_batch_shapes_within_a_component():
    s = schedules.wsd(0.1, 100)
    broken = jax.tree_util.tree_map(lambda x: x, s)
    object.__setattr__(broken, "peak", jnp.array([0.1, 0.2, 0.3]))
    object.__setattr__(broken, "decay_fraction", jnp.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="incompatible batch shapes"):
        runner.sweep(**sweep_args(schedule=broken))


@settings(max_examples=40, deadline=None)
@given(
    peak=st.floats(allow_nan=True, allow_infinity=True),
    fraction=st.floats(allow_nan=True, allow_infinity=True),
    total=st.integers(-1000, 1000),
)
def test_wsd_accepts_exactly_the_valid_inputs(peak, fraction, total):
    with np.errstate(over="ignore"):  # the library stores float32: judge the stored values
        peak32, fraction32 = np.float32(peak), np.float32(fraction)
    valid = np.isfinite(peak32) and peak32 >= 0 and 0 <= fraction32 <= 1 and total > 0
    if valid:
        s = schedules.wsd(peak, total, fraction)
        assert float(s(0)) == pytest.approx(float(np.float32(peak)))
    else:
        with pytest.raises(ValueError, match=r"wsd\.(peak|decay_fraction|total_steps|final)"):
            schedules.wsd(peak, total, fraction)
