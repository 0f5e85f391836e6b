"""Tests for ``rivervalley.schedules``.

Every value check compares against a closed form written out here in float64 numpy (never against
the module's own ``decay`` / ``decay_shape`` helpers).  Schedules run in float32 (the default), so
value comparisons use ``rtol=1e-5, atol=1e-6 * peak`` (float32 has ~6e-8 relative resolution;
the phase of a decay is computed from step indices up to ~4000, whose float32 rounding perturbs
``u`` by ~1e-7 relative); checks that the module documents as *exact* (``final`` at a decay end,
``0`` at ``t = 0``) use ``==``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rivervalley import schedules
from rivervalley.schedules import Schedule

SHAPES = ("linear", "cosine", "sqrt", "exp")
KINDS = ("constant", "linear", "cosine", "wsd", "wsd_s", "cyclic_cosine")
EXP_K = 5.0  # documented e-folding count of the ``exp`` decay shape
RTOL = 1e-5
F32 = np.float32


# --------------------------------------------------------------------------------------------
# independent closed forms and evaluation helpers
# --------------------------------------------------------------------------------------------


def g_ref(u: Any, shape: str) -> np.ndarray:
    """Decay shape in float64: 1 at u = 0, 0 at u = 1."""
    u = np.asarray(u, dtype=np.float64)
    if shape == "linear":
        return 1.0 - u
    if shape == "cosine":
        return (1.0 + np.cos(np.pi * u)) / 2.0
    if shape == "sqrt":
        return 1.0 - np.sqrt(u)
    if shape == "exp":
        return (np.exp(-EXP_K * u) - np.exp(-EXP_K)) / (1.0 - np.exp(-EXP_K))
    raise AssertionError(shape)


def window_ref(t: np.ndarray, start: float, end: float, peak: float, final: float, shape: str):
    """``peak`` up to ``start``, the decay on ``[start, end]``, ``final`` from ``end`` on."""
    t = np.asarray(t, dtype=np.float64)
    u = np.clip((t - start) / max(end - start, 1e-300), 0.0, 1.0)
    return np.where(
        t <= start, peak, np.where(t >= end, final, final + (peak - final) * g_ref(u, shape))
    )


# One set of jitted evaluators *per schedule class*, so that a treedef mix-up between classes
# with identical fields (``Linear`` / ``Cosine``; see ``test_treedefs_of_different_kinds_differ``)
# shows up there deterministically rather than as a rare wrong value elsewhere.
_JITTED: dict[tuple[type, str], Callable[..., jax.Array]] = {}


def _jitted(s: Schedule, what: str) -> Callable[..., jax.Array]:
    key = (type(s), what)
    if key not in _JITTED:
        if what == "eval":
            _JITTED[key] = jax.jit(lambda s, t: jax.vmap(s)(t))
        elif what == "body":
            _JITTED[key] = jax.jit(lambda s, t: jax.vmap(s.body)(t))
        elif what == "call":
            _JITTED[key] = jax.jit(lambda s, t: s(t))
        else:  # the batched evaluation of test 6
            _JITTED[key] = jax.jit(lambda s, t: jax.vmap(lambda s1: jax.vmap(s1)(t))(s))
    return _JITTED[key]


def rates(s: Schedule, steps: Any) -> np.ndarray:
    """Rates at many steps in one jitted call, as float64 numpy (values are the float32 ones)."""
    out = _jitted(s, "eval")(s, jnp.asarray(steps, dtype=jnp.float32))
    return np.asarray(out, dtype=np.float64)


def body_rates(s: Schedule, steps: Any) -> np.ndarray:
    out = _jitted(s, "body")(s, jnp.asarray(steps, dtype=jnp.float32))
    return np.asarray(out, dtype=np.float64)


def f32(x: float) -> float:
    """The float32 value a schedule stores for ``x`` (exact comparisons use this)."""
    return float(F32(x))


def close(actual: Any, expected: Any, peak: float, rtol: float = RTOL) -> None:
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-6 * peak)


# --------------------------------------------------------------------------------------------
# 1. closed forms and phase boundaries
# --------------------------------------------------------------------------------------------


def test_constant_values():
    peak, W = 0.3, 10
    s = schedules.constant(peak, warmup_steps=W, final=0.1)  # ``final`` is documented as unused
    t = np.array([0, 2.5, 5, 9, 10, 11, 500, 1e5])
    r = rates(s, t)
    close(r, [0, 0.075, 0.15, 0.27, 0.3, 0.3, 0.3, 0.3], peak)
    assert r[0] == 0.0
    assert np.all(r[4:] == f32(peak))
    assert np.all(rates(schedules.constant(peak), [0, 1, 1e6]) == f32(peak))


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_linear_and_cosine_closed_form(kind):
    peak, final, W, T = 1.0, 0.1, 100, 1000
    factory = schedules.linear if kind == "linear" else schedules.cosine
    s = factory(peak, T, warmup_steps=W, final=final)
    t = np.arange(0.0, 1200.0, 0.5)
    r = rates(s, t)
    u = np.clip((t - W) / (T - W), 0.0, 1.0)
    if kind == "linear":
        decayed = final + (peak - final) * (1.0 - u)
    else:
        decayed = final + (peak - final) * (1.0 + np.cos(np.pi * u)) / 2.0
    expected = np.where(t < W, peak * t / W, decayed)
    close(r, expected, peak)
    # phase boundaries
    at = rates(s, [0, W, (W + T) / 2, T, T + 1, 10 * T])
    assert at[0] == 0.0
    close(at[1], peak, peak)
    close(at[2], (peak + final) / 2, peak)  # both shapes pass through the midpoint at u = 1/2
    assert np.all(at[3:] == f32(final)), at


@pytest.mark.parametrize("shape", SHAPES)
def test_wsd_closed_form(shape):
    peak, final, W, T, frac = 1.0, 0.1, 50, 1000, 0.2
    s = schedules.wsd(peak, T, frac, shape, warmup_steps=W, final=final)
    start = T - frac * T  # 800
    t = np.arange(0.0, 1200.0)
    r = rates(s, t)
    u = np.clip((t - start) / (T - start), 0.0, 1.0)
    expected = np.where(
        t < W,
        peak * t / W,
        np.where(
            t <= start,
            peak,
            np.where(t >= T, final, final + (peak - final) * g_ref(u, shape)),
        ),
    )
    close(r, expected, peak)
    # stable phase: peak on [W, T - fT] (exactness is tested separately below)
    close(r[W : int(start) + 1], peak, peak, rtol=1e-6)
    # decay has started right after the stable phase
    assert r[int(start) + 1] < r[int(start)]
    # interior decay points against the closed form of each shape
    ts = np.array([810.0, 850.0, 900.0, 950.0, 990.0, 999.0])
    close(rates(s, ts), final + (peak - final) * g_ref((ts - start) / (T - start), shape), peak)
    # final exactly at T and beyond
    assert np.all(rates(s, [T, T + 1, T + 0.5, 2 * T, 1e6]) == f32(final))


# Regression: the exp shape's g(0) evaluated to 0.99999994 in float32
# ((1 - f32(e^-5)) / f32(1 - e^-5)), so its stable phase sat 1 ulp below the peak.
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["wsd", "wsd_s"])
def test_stable_phase_is_exactly_peak(kind, shape):
    peak, final = 1.0, 0.1
    if kind == "wsd":
        s = schedules.wsd(peak, 1000, 0.2, shape, warmup_steps=50, final=final)
        stable = np.arange(50.0, 801.0)
    else:
        s = schedules.wsd_s(peak, [1000, 2500], 0.1, shape, warmup_steps=50, final=final)
        stable = np.concatenate([np.arange(50.0, 901.0), np.arange(1001.0, 2351.0)])
    r = rates(s, stable)
    assert np.all(r == f32(peak)), np.unique(r)


# --------------------------------------------------------------------------------------------
# 2. every decay reaches ``final`` exactly at its end
# --------------------------------------------------------------------------------------------

PEAK, FINAL = 1.0, 0.1  # final = 0.1 * peak
ENDS = [1000, 2500, 4000]


def _end_cases() -> list[tuple[str, Schedule, list[float]]]:
    cases: list[tuple[str, Schedule, list[float]]] = []
    for shape in SHAPES:
        s = schedules.wsd(PEAK, 1000, 0.2, shape, warmup_steps=10, final=FINAL)
        cases.append((f"wsd-{shape}", s, [1000.0]))
        s = schedules.wsd_s(PEAK, ENDS, 0.1, shape, warmup_steps=10, final=FINAL)
        cases.append((f"wsd_s-{shape}", s, [float(e) for e in ENDS]))
    cases.append(("cosine", schedules.cosine(PEAK, 1000, warmup_steps=10, final=FINAL), [1000.0]))
    cases.append(("linear", schedules.linear(PEAK, 1000, warmup_steps=10, final=FINAL), [1000.0]))
    s = schedules.cyclic_cosine(PEAK, ENDS, warmup_steps=10, final=FINAL)
    cases.append(("cyclic_cosine", s, [float(e) for e in ENDS]))
    return cases


@pytest.mark.parametrize(("name", "sched", "ends"), _end_cases(), ids=[c[0] for c in _end_cases()])
def test_decay_reaches_final_exactly(name, sched, ends):
    r = rates(sched, ends)
    assert np.all(r == f32(FINAL)), (name, r)
    # one step before the end the decay is still above final (it really ends there)
    assert np.all(rates(sched, np.asarray(ends) - 1) > f32(FINAL))
    # and it stays at final after the last end
    assert np.all(rates(sched, ends[-1] + np.array([0.5, 1, 7, 1000])) == f32(FINAL))


# Regression: u = (t - start) / length with start = end - length rounded to 0.99999994 in float32
# when end - (end - length) != length, so the decay missed ``final`` at its end.
@pytest.mark.parametrize(
    ("sched", "end", "final"),
    [
        (schedules.wsd(1.0, 100, 0.15, final=0.1), 100.0, 0.1),  # was 0.10000005
        (schedules.wsd(1.0, 100, 0.15), 100.0, 0.0),  # was 5.96e-8
        (schedules.wsd_s(1.0, ENDS, 0.15, final=0.1), 2500.0, 0.1),  # was 0.10000005
    ],
    ids=["wsd-final0.1", "wsd-final0", "wsd_s"],
)
def test_decay_reaches_final_exactly_fractional_window(sched, end, final):
    assert float(rates(sched, [end])[0]) == f32(final)


# Regression: final + (peak - final) * 1 rounded above peak for some float32 pairs, e.g.
# peak=0.03, final=0.006 gave 0.030000001 > f32(0.03) = 0.029999999 on the whole stable phase.
@pytest.mark.parametrize(
    "sched",
    [
        schedules.wsd(0.03, 1000, 0.2, final=0.006),
        schedules.cosine(0.03, 1000, final=0.006),
        schedules.wsd_s(0.03, [500, 1000], 0.2, final=0.006),
    ],
    ids=["wsd", "cosine", "wsd_s"],
)
def test_rate_never_exceeds_peak_with_nonzero_final(sched):
    r = rates(sched, np.arange(0.0, 1100.0))
    assert r.max() == float(sched.peak)
    assert r.min() == float(sched.final)


# --------------------------------------------------------------------------------------------
# 3. WSD-S
# --------------------------------------------------------------------------------------------


def wsd_s_ref(t: np.ndarray, peak, final, ends, frac, shape, rewarmup=0.0) -> np.ndarray:
    """Closed form of WSD-S without warmup, budget by budget."""
    t = np.asarray(t, dtype=np.float64)
    out = np.full(t.shape, final)  # after the last end
    prev = 0.0
    for k, end in enumerate(ends):
        in_budget = (t > prev) | ((k == 0) & (t <= prev))
        in_budget &= t <= end
        start = end - frac * (end - prev)
        val = window_ref(t, start, end, peak, final, shape)
        if k > 0 and rewarmup > 0:
            val = np.minimum(val, final + (peak - final) * (t - prev) / rewarmup)
        out = np.where(in_budget, val, out)
        prev = end
    return out


@pytest.mark.parametrize("shape", SHAPES)
def test_wsd_s_decays_and_restarts(shape):
    peak, final, frac = 1.0, 0.1, 0.1
    s = schedules.wsd_s(peak, ENDS, frac, shape, final=final)
    t = np.arange(0.0, 4300.0)
    r = rates(s, t)
    close(r, wsd_s_ref(t, peak, final, ENDS, frac, shape), peak)
    prev = 0
    for k, end in enumerate(ENDS):
        length = frac * (end - prev)
        start = end - length
        # the decay of budget k is the last `frac` of (E_{k-1}, E_k]
        close(rates(s, [prev + 1, start - 1, start]), peak, peak, rtol=1e-6)
        assert rates(s, [start + 1])[0] < rates(s, [start])[0]
        mid = final + (peak - final) * g_ref(0.5, shape)
        close(rates(s, [start + length / 2]), [mid], peak)
        assert rates(s, [end])[0] == f32(final)
        if k < len(ENDS) - 1:
            # straight back to the peak right after the end: no rewarmup by default
            close(rates(s, [end + 1]), [peak], peak, rtol=1e-6)
        prev = end
    # after the last budget: final forever
    assert np.all(r[ENDS[-1] :] == f32(final))


def test_wsd_s_rewarmup_ramp():
    peak, final, frac, R = 1.0, 0.1, 0.1, 100
    s = schedules.wsd_s(peak, ENDS, frac, final=final, rewarmup_steps=R)
    plain = schedules.wsd_s(peak, ENDS, frac, final=final)
    t = np.arange(0.0, 4300.0)
    r = rates(s, t)
    close(r, wsd_s_ref(t, peak, final, ENDS, frac, "linear", rewarmup=R), peak)
    # the first budget has no rewarmup (W = 0): peak from t = 0
    assert np.all(r[0:900] == f32(peak))
    for end in ENDS[:-1]:
        j = np.arange(0, R + 1)
        close(r[end + j], final + (peak - final) * j / R, peak)  # linear from final to peak
        close(rates(s, [end + R / 2]), [final + (peak - final) / 2], peak)
        assert r[end] == f32(final)
    # never above the schedule without rewarmup (the decay), and final after the last end
    assert np.all(r <= rates(plain, t) + 1e-7)
    assert np.all(r[ENDS[-1] :] == f32(final))


def test_wsd_s_rewarmup_longer_than_stable_phase():
    # budget 2 is (1000, 1100] with its decay on [1050, 1100]; a 100-step ramp would reach 0.55 at
    # 1050 and keep rising, but the rate must follow min(ramp, decay)
    peak, final = 1.0, 0.1
    s = schedules.wsd_s(peak, [1000, 1100], 0.5, final=final, rewarmup_steps=100)
    t = np.arange(1000.0, 1101.0)
    ramp = final + (peak - final) * (t - 1000) / 100
    decay = window_ref(t, 1050, 1100, peak, final, "linear")
    close(rates(s, t), np.minimum(ramp, decay), peak)
    assert rates(s, [1100])[0] == f32(final)


# --------------------------------------------------------------------------------------------
# 4. cyclic cosine
# --------------------------------------------------------------------------------------------


def test_cyclic_cosine_cycles_and_restarts():
    peak, final, W = 1.0, 0.1, 100
    s = schedules.cyclic_cosine(peak, ENDS, warmup_steps=W, final=final)
    t = np.arange(0.0, 4300.0)
    r = rates(s, t)
    starts = [W, *ENDS[:-1]]
    expected = np.full(t.shape, final)
    for k, (a, b) in enumerate(zip(starts, ENDS, strict=True)):
        sel = (t <= b) if k == 0 else ((t > a) & (t <= b))
        cyc = final + (peak - final) * (1 + np.cos(np.pi * (t - a) / (b - a))) / 2
        expected = np.where(sel, cyc, expected)
    expected = np.where(t < W, np.minimum(expected, peak * t / W), expected)
    close(r, expected, peak)
    # the first cycle starts after the warmup: peak at W, mid-value halfway to E_1
    close(r[[W, (W + ENDS[0]) // 2]], [peak, (peak + final) / 2], peak)
    for k, end in enumerate(ENDS):
        assert r[end] == f32(final)
        if k + 1 < len(ENDS):
            length = ENDS[k + 1] - end
            restart = final + (peak - final) * (1 + math.cos(math.pi / length)) / 2
            close(r[end + 1], restart, peak)
            assert r[end + 1] > 0.999 * peak
    assert np.all(r[ENDS[-1] :] == f32(final))


# --------------------------------------------------------------------------------------------
# 5. warmup
# --------------------------------------------------------------------------------------------


def make(kind: str, **kw: Any) -> Schedule:
    """One schedule of each kind whose body is flat (= peak) up to step 100 at least."""
    peak = kw.pop("peak", 1.0)
    if kind == "constant":
        return schedules.constant(peak, **kw)
    if kind == "linear":
        return schedules.linear(peak, 1000, **kw)
    if kind == "cosine":
        return schedules.cosine(peak, 1000, **kw)
    if kind == "wsd":
        return schedules.wsd(peak, 1000, 0.2, "cosine", **kw)
    if kind == "wsd_s":
        return schedules.wsd_s(peak, [1000, 2000], 0.2, "sqrt", **kw)
    if kind == "cyclic_cosine":
        return schedules.cyclic_cosine(peak, [1000, 2000], **kw)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_warmup_linear_ramp(kind):
    peak, W = 0.6, 100
    s = make(kind, peak=peak, warmup_steps=W, final=0.06)
    t = np.arange(0.0, W + 1.0)
    r = rates(s, t)
    assert r[0] == 0.0
    close(r[W // 2], peak / 2, peak)
    close(r, peak * t / W, peak)
    close(np.diff(r), np.full(W, peak / W), peak, rtol=1e-4)  # a straight line
    # without warmup the same schedule starts at the peak
    close(rates(make(kind, peak=peak, final=0.06), [0.0]), [peak], peak)


def test_warmup_longer_than_stable_phase_wsd():
    # warmup 900 overlaps the decay [800, 1000]: the rate is min(ramp, body), no jump anywhere
    peak, W, T, frac = 1.0, 900, 1000, 0.2
    s = schedules.wsd(peak, T, frac, warmup_steps=W)
    t = np.arange(0.0, 1100.0)
    r = rates(s, t)
    body = rates(schedules.wsd(peak, T, frac), t)  # the un-warmed schedule
    body_ref = window_ref(t, 800, 1000, peak, 0.0, "linear")
    close(body, body_ref, peak)
    close(r, np.where(t < W, np.minimum(peak * t / W, body_ref), body_ref), peak)
    assert 0.9 * peak < r.max() < 0.91 * peak  # ramp meets the decay at t = 818.18 (0.909 peak)
    assert np.all(r <= body + 1e-7)
    assert np.all(r <= f32(peak))
    assert np.all(np.diff(r) <= peak / W + 1e-6)  # no upward jump beyond the ramp slope
    assert np.all(np.abs(np.diff(r)) <= peak / (frac * T) + 1e-6)  # Lipschitz across t = W


def test_warmup_longer_than_first_budget_wsd_s():
    peak, W = 1.0, 150
    s = schedules.wsd_s(peak, [100, 300], 0.2, warmup_steps=W)
    t = np.arange(0.0, 400.0)
    r = rates(s, t)
    un = rates(schedules.wsd_s(peak, [100, 300], 0.2), t)
    assert np.all(r <= un + 1e-7)
    assert np.all(r[:W] <= peak * t[:W] / W + 1e-7)
    # the decay of budget 1 ([80, 100]) pulls the rate below the ramp; at t = 101 (documented
    # restart) it returns to the ramp, not to the peak; elsewhere no jump beyond the ramp slope
    close(r[[80, 90, 100, 101, 120]], [80 / W, 0.5, 0.0, 101 / W, 120 / W], peak)
    up = np.diff(r[:W])
    assert np.all(np.delete(up, 100) <= peak / W + 1e-6)


# --------------------------------------------------------------------------------------------
# hypothesis property tests over random valid parameters
# --------------------------------------------------------------------------------------------

N_STEPS = 1300
STEPS = np.arange(N_STEPS, dtype=np.float32)


@dataclasses.dataclass
class Case:
    kind: str
    sched: Schedule
    peak: float
    final: float
    warmup: int
    lipschitz: float  # bound on |lr(t+1) - lr(t)| away from documented restarts
    restarts: list[int]  # t with a documented jump from t to t + 1
    rise: float = 0.0  # bound on lr(t+1) - lr(t) of the body (a WSD-S rewarmup ramp)


def per_step(shape: str, length: float) -> float:
    """Bound on |g(u + 1/length) - g(u)| for a decay window of ``length`` steps."""
    if length <= 0:
        return 1.0
    if shape == "sqrt":  # 1 - sqrt(u): sqrt is subadditive, so the increment is <= sqrt(du)
        return min(1.0, math.sqrt(1.0 / length))
    slope = {
        "linear": 1.0,
        "cosine": math.pi / 2,
        "exp": EXP_K / (1.0 - math.exp(-EXP_K)),
    }[shape]
    return min(1.0, slope / length)


@st.composite
def cases(draw: st.DrawFn, kinds: tuple[str, ...] = KINDS) -> Case:
    kind = draw(st.sampled_from(kinds))
    shape = draw(st.sampled_from(SHAPES))
    peak = draw(st.floats(1e-4, 1.0))
    final = peak * draw(st.floats(0.0, 0.5))
    drop = peak - final
    W = draw(st.integers(0, 300))
    warm_slope = peak / W if W > 0 else 0.0
    restarts: list[int] = []
    rise = 0.0
    if kind == "constant":
        s = schedules.constant(peak, warmup_steps=W, final=final)
        L = warm_slope
    elif kind in ("linear", "cosine"):
        T = draw(st.integers(W + 1, 1200))
        factory = schedules.linear if kind == "linear" else schedules.cosine
        s = factory(peak, T, warmup_steps=W, final=final)
        L = max(warm_slope, drop * per_step(kind, T - W))
    elif kind == "wsd":
        # a warmup may overlap the decay, but not outlast the budget (rejected by validation)
        T = draw(st.integers(max(20, W), 1200))
        frac = draw(st.floats(0.01, 1.0))
        s = schedules.wsd(peak, T, frac, shape, warmup_steps=W, final=final)
        L = max(warm_slope, drop * per_step(shape, frac * T))
    elif kind == "wsd_s":
        first = draw(st.integers(10, 400))
        gaps = draw(st.lists(st.integers(10, 400), min_size=2, max_size=2))
        ends = list(np.cumsum([first, *gaps]))
        frac = draw(st.floats(0.01, 1.0))
        R = draw(st.one_of(st.just(0), st.integers(1, 200)))
        s = schedules.wsd_s(peak, ends, frac, shape, warmup_steps=W, final=final, rewarmup_steps=R)
        spans = np.diff([0, *ends])
        L = max(warm_slope, *(drop * per_step(shape, frac * float(d)) for d in spans))
        if R > 0:
            rise = drop / R
            L = max(L, rise)
        else:
            restarts = [int(e) for e in ends[:-1]]
    else:
        first = draw(st.integers(W + 1, W + 400))
        gaps = draw(st.lists(st.integers(1, 400), min_size=2, max_size=2))
        ends = list(np.cumsum([first, *gaps]))
        s = schedules.cyclic_cosine(peak, ends, warmup_steps=W, final=final)
        spans = np.diff([W, *ends])
        L = max(warm_slope, *(drop * per_step("cosine", float(d)) for d in spans))
        restarts = [int(e) for e in ends[:-1]]
    return Case(kind, s, peak, final, W, L, restarts, rise)


@settings(max_examples=30, deadline=None)
@given(case=cases())
def test_property_bounds_and_warmup(case: Case):
    r = rates(case.sched, STEPS)
    body = body_rates(case.sched, STEPS)
    peak32 = float(case.sched.peak)
    ulp = float(np.spacing(F32(peak32)))
    t = STEPS.astype(np.float64)
    assert r.min() >= 0.0
    assert r.max() <= peak32
    # warmup never exceeds the un-warmed body nor the ramp, and is the body once over
    assert np.all(r <= body + ulp)
    W = case.warmup
    if W > 0:
        # the float32 ramp peak * t / W rounds twice (multiply, divide)
        assert np.all(r[:W] <= peak32 * t[:W] / W + 2 * ulp)
        # no upward jump beyond the ramp slope (or the body's own rewarmup slope); a difference
        # of two rounded ramp values is off by up to 4 ulp
        up = np.delete(np.diff(r[: W + 1]), [e for e in case.restarts if e < W])
        assert np.all(up <= max(peak32 / W, case.rise) + 4 * ulp)
    np.testing.assert_array_equal(r[W:], body[W:])
    # after the warmup the rate never drops below final
    assert np.all(r[W:] >= float(case.sched.final))


@settings(max_examples=30, deadline=None)
@given(case=cases())
def test_property_lipschitz_except_restarts(case: Case):
    r = rates(case.sched, STEPS)
    jumps = np.abs(np.diff(r))
    allowed = np.ones(jumps.shape, dtype=bool)
    allowed[[e for e in case.restarts if e < len(jumps)]] = False
    # float32 slack: a few ulps of the peak plus a relative margin for the rounding of the phase u
    tol = 1e-4 * case.lipschitz + 1e-6 * case.peak
    worst = jumps[allowed].max(initial=0.0)
    assert worst <= case.lipschitz + tol, (worst, case.lipschitz, int(np.argmax(jumps * allowed)))


@settings(max_examples=30, deadline=None)
@given(case=cases(kinds=("linear", "cosine", "wsd")))
def test_property_monotone_after_warmup(case: Case):
    r = rates(case.sched, STEPS)
    ulp = float(np.spacing(F32(case.peak)))
    assert np.all(np.diff(r[case.warmup :]) <= ulp)


# --------------------------------------------------------------------------------------------
# 6. vmap over every numeric field, stack and grid
# --------------------------------------------------------------------------------------------

FACTORIES: dict[str, tuple[Callable[..., Schedule], dict[str, Any]]] = {
    "constant": (schedules.constant, {"peak": 0.5, "warmup_steps": 20, "final": 0.05}),
    "linear": (
        schedules.linear,
        {"peak": 0.5, "total_steps": 300, "warmup_steps": 20, "final": 0.05},
    ),
    "cosine": (
        schedules.cosine,
        {"peak": 0.5, "total_steps": 300, "warmup_steps": 20, "final": 0.05},
    ),
    "wsd": (
        schedules.wsd,
        {
            "peak": 0.5,
            "total_steps": 300,
            "decay_fraction": 0.2,
            "shape": "cosine",
            "warmup_steps": 20,
            "final": 0.05,
        },
    ),
    "wsd_s": (
        schedules.wsd_s,
        {
            "peak": 0.5,
            "decay_ends": [100, 200, 300],
            "decay_fraction": 0.2,
            "shape": "sqrt",
            "warmup_steps": 20,
            "final": 0.05,
            "rewarmup_steps": 10,
        },
    ),
    "cyclic_cosine": (
        schedules.cyclic_cosine,
        {"peak": 0.5, "cycle_ends": [100, 200, 300], "warmup_steps": 20, "final": 0.05},
    ),
}
COMMON = ("peak", "warmup_steps", "final")
NUMERIC_FIELDS = {
    "constant": COMMON,
    "linear": (*COMMON, "total_steps"),
    "cosine": (*COMMON, "total_steps"),
    "wsd": (*COMMON, "total_steps", "decay_fraction"),
    "wsd_s": (*COMMON, "decay_ends", "decay_fraction", "rewarmup_steps"),
    "cyclic_cosine": (*COMMON, "cycle_ends"),
}
BOUNDARIES = [[100, 200, 300], [50, 200, 310], [120, 180, 260], [90, 150, 330]]
SWEEP_VALUES: dict[str, list[Any]] = {
    "peak": [0.1, 0.3, 0.5, 1.0],
    "warmup_steps": [0, 7, 20, 55],
    "final": [0.0, 0.01, 0.05, 0.2],
    "total_steps": [150, 240, 300, 333],
    "decay_fraction": [0.0, 0.1, 0.35, 1.0],
    "decay_ends": BOUNDARIES,
    "rewarmup_steps": [0, 5, 10, 40],
    "cycle_ends": BOUNDARIES,
}
VMAP_STEPS = np.arange(0.0, 400.0, 0.5, dtype=np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_numeric_fields_are_exactly_the_swept_ones(kind):
    factory, base = FACTORIES[kind]
    s = factory(**base)
    assert s.kind == kind
    leaves = jax.tree_util.tree_flatten_with_path(s)[0]
    names = [str(getattr(path[0], "name", path)) for path, _ in leaves]
    assert sorted(names) == sorted(NUMERIC_FIELDS[kind])
    assert s.batch_shape == ()


def test_treedefs_of_different_kinds_differ():
    # Regression: with jax.tree_util.register_dataclass (jax 0.10.2) the treedefs of Linear and
    # Cosine compared equal although their hashes differ, so a shared jitted function could
    # (about 1 process in 40) run a cached Linear executable for a Cosine schedule.
    lin = jax.tree_util.tree_structure(schedules.linear(1.0, 100))
    cos = jax.tree_util.tree_structure(schedules.cosine(1.0, 100))
    assert lin != cos
    ev = jax.jit(lambda s, t: jax.vmap(s)(t))  # one jitted function shared by both kinds
    t = jnp.arange(0.0, 100.0)
    assert not np.array_equal(ev(schedules.linear(1.0, 100), t), ev(schedules.cosine(1.0, 100), t))


@pytest.mark.parametrize(
    ("kind", "field"), [(k, f) for k in KINDS for f in NUMERIC_FIELDS[k]], ids=lambda x: str(x)
)
def test_vmap_over_each_numeric_field_matches_loop(kind, field):
    factory, base = FACTORIES[kind]
    singles = [factory(**{**base, field: v}) for v in SWEEP_VALUES[field]]
    batched = schedules.stack(singles)
    assert batched.batch_shape == (4,)
    steps = jnp.asarray(VMAP_STEPS)
    out = np.asarray(jax.vmap(lambda s: jax.vmap(s)(steps))(batched))
    assert out.shape == (4, len(VMAP_STEPS))
    loop = np.stack([rates(s, steps) for s in singles])
    # batched and unbatched programs may round differently by an ulp
    np.testing.assert_allclose(out, loop, rtol=1e-6, atol=1e-7)
    # the swept values really differ in the output (the field is not ignored), except
    # ``final`` of a constant schedule, which is documented as unused
    if not (kind == "constant" and field == "final"):
        assert len({row.tobytes() for row in out}) == 4


def test_grid_row_major_and_values():
    peaks, fracs = [0.1, 0.2], [0.1, 0.3]
    g = schedules.grid(
        schedules.wsd, {"peak": peaks, "decay_fraction": fracs}, total_steps=1000, shape="cosine"
    )
    assert isinstance(g, schedules.WSD)
    assert g.batch_shape == (2, 2)  # one batch axis per swept field, in the order given
    combos = [(p, f) for p in peaks for f in fracs]  # first key slowest
    flat = jax.tree_util.tree_map(lambda x: x.reshape((4, *x.shape[2:])), g)
    np.testing.assert_array_equal(
        np.asarray(flat.peak), np.array([c[0] for c in combos], dtype=F32)
    )
    np.testing.assert_array_equal(
        np.asarray(flat.decay_fraction), np.array([c[1] for c in combos], dtype=F32)
    )
    t = np.arange(0.0, 1100.0, 5.0, dtype=np.float32)
    out = np.asarray(_jitted(flat, "batched")(flat, jnp.asarray(t)))
    for row, (p, f) in zip(out, combos, strict=True):
        single = rates(schedules.wsd(p, 1000, f, "cosine"), t)
        np.testing.assert_allclose(row, single, rtol=1e-6, atol=1e-7)
        close(row, window_ref(t, 1000 - f * 1000, 1000, p, 0.0, "cosine"), p)


# --------------------------------------------------------------------------------------------
# 7. optax
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wsd", "wsd_s"])
def test_usable_as_optax_schedule(kind):
    if kind == "wsd":
        sched = schedules.wsd(0.1, 20, 0.5, warmup_steps=4, final=0.01)
    else:
        sched = schedules.wsd_s(0.1, [8, 20], 0.5, warmup_steps=2, final=0.01)
    a, b = 2.0, 3.0

    def loss(w):
        return 0.5 * a * jnp.sum((w - b) ** 2)

    opt = optax.sgd(learning_rate=sched)
    w = jnp.zeros(1)
    state = opt.init(w)
    w_manual = np.zeros(1)
    for t in range(20):
        grad = jax.grad(loss)(w)
        updates, state = opt.update(grad, state, w)
        w = jnp.asarray(optax.apply_updates(w, updates))
        w_manual = w_manual - float(sched(t)) * a * (w_manual - b)
    np.testing.assert_allclose(np.asarray(w), w_manual, rtol=1e-5)
    assert float(w[0]) != 0.0


# --------------------------------------------------------------------------------------------
# 8. stack / factory validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "group",
    [
        [schedules.linear(1.0, 10), schedules.cosine(1.0, 10)],
        [schedules.wsd(1.0, 10), schedules.wsd_s(1.0, [10])],
        [schedules.wsd(1.0, 10), schedules.wsd(1.0, 10, shape="cosine")],
        [schedules.wsd_s(1.0, [5, 10], shape="exp"), schedules.wsd_s(1.0, [5, 10])],
        [schedules.wsd_s(1.0, [10, 20]), schedules.wsd_s(1.0, [10, 20, 30])],
        [schedules.cyclic_cosine(1.0, [10]), schedules.cyclic_cosine(1.0, [10, 20])],
        [
            schedules.stack([schedules.constant(1.0)] * 2),
            schedules.stack([schedules.constant(1.0)] * 2),
        ],
        [],
    ],
    ids=[
        "kinds",
        "wsd-vs-wsd_s",
        "wsd-shapes",
        "wsd_s-shapes",
        "wsd_s-boundaries",
        "cyclic-boundaries",
        "already-batched",
        "empty",
    ],
)
def test_stack_rejects(group):
    with pytest.raises(ValueError, match="stack"):
        schedules.stack(group)


@pytest.mark.parametrize(
    "build",
    [
        lambda: schedules.wsd(1.0, 100, shape="cos"),
        lambda: schedules.wsd(1.0, 100, shape="Linear"),
        lambda: schedules.wsd_s(1.0, [100], shape="quadratic"),
    ],
)
def test_unknown_shape_names_field(build):
    with pytest.raises(ValueError, match=r"^shape\b"):
        build()


# --------------------------------------------------------------------------------------------
# 9. jit equals eager
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_jit_equals_eager(kind):
    factory, base = FACTORIES[kind]
    s = factory(**base)
    steps = jnp.asarray(VMAP_STEPS)
    eager = np.asarray(jax.vmap(s)(steps))
    jitted = rates(s, steps)
    # XLA may fuse the jitted program differently (1 ulp)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7)
    # scalar calls (ints, as optax passes them) agree too
    for t in (0, 13, 150, 299, 300, 301):
        np.testing.assert_allclose(
            float(s(t)), float(_jitted(s, "call")(s, t)), rtol=1e-6, atol=1e-7
        )
        np.testing.assert_allclose(float(s(t)), jitted[2 * t], rtol=1e-6, atol=1e-7)


def test_tabulated_replays_any_schedule_then_holds_final():
    """A table of another schedule's rates gives exactly those rates, then ``final``; tables of
    schedules of different kinds stack into one batch."""
    steps = 50
    t = jnp.arange(steps + 10)
    kinds = [schedules.wsd(0.3, steps, 0.4, warmup_steps=5), schedules.cosine(0.2, steps)]
    tables = [np.asarray(jax.vmap(s)(jnp.arange(steps))) for s in kinds]
    batch = schedules.stack([schedules.tabulated(r, final=0.01) for r in tables])
    got = np.asarray(jax.vmap(lambda s: jax.vmap(s)(t))(batch))
    np.testing.assert_array_equal(got[:, :steps], np.stack(tables))
    np.testing.assert_array_equal(got[:, steps:], np.float32(0.01))
    assert float(schedules.tabulated([0.1, 0.5, 0.2]).peak) == np.float32(0.5)
    assert float(schedules.tabulated([0.1, 0.5, 0.2])(7)) == np.float32(0.2)
    with pytest.raises(ValueError, match=r"tabulated\.rates"):
        schedules.tabulated([-0.5, 0.1])


def test_rates_tabulates_single_and_batched_schedules():
    """``schedules.rates`` equals calling each member at every step."""
    single = schedules.wsd(0.3, 40, 0.25, warmup_steps=5)
    expected = np.array([float(single(t)) for t in range(41)])
    np.testing.assert_allclose(np.asarray(schedules.rates(single, 41)), expected, rtol=1e-6)
    batch = schedules.grid(schedules.cosine, {"peak": [0.1, 0.2, 0.4]}, total_steps=50)
    table = np.asarray(schedules.rates(batch, 51))
    assert table.shape == (3, 51)
    for i, peak in enumerate([0.1, 0.2, 0.4]):
        member = schedules.cosine(peak, 50)
        exact = [float(member(t)) for t in range(51)]
        np.testing.assert_allclose(table[i], exact, rtol=1e-6, atol=1e-7 * peak)
    assert table[0, -1] == 0.0
