r"""The gradient flow of the river loss (``rivervalley.flow``) and (S)GD against it.

The RK4 solver is checked against the closed forms of the softplus river (straight and on the
curved floor) and for its order of convergence; the closed forms against Lambert W and against
their differential equations.  Then GD (``sweep``) on river valleys against the flow, with
tolerances derived, not fitted:

* On a straight river GD is explicit Euler for ``ds/dtau = v(s) = -f'(s)``, so it runs ahead of
  the flow by at most ``(eta_max / 2)(v(s_0) - v(s))`` to leading order (``flow.euler_bound``),
  and the gap is first order in the rate: halving every rate halves it.
* On a curved river GD follows the floor flow ``ds/dtau = -f'(s) / (1 + |c'(s)|^2)`` up to that
  Euler term plus a rate-independent residual of order ``1/lambda`` (the hills lag behind the bend:
  slow-manifold correction), measured here with a tiny rate and shown to halve when the hill
  curvature doubles, while the straight flow is off by far more.
* Schedules that spend the same intrinsic time ``tau`` end at the same river coordinate within
  the sum of their two bounds, although against the step count their curves differ widely.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from scipy.special import lambertw

from rivervalley import flow, optimizers, pytree, schedules, sweep
from rivervalley.landscapes import RiverValley, toy

S0 = -2.0
TAU = 10.0  # intrinsic-time budget of every GD run below


def valley(b: float = 0.0, omega: float = 1.0, hill: float = 10.0, **kw) -> RiverValley:
    """The 2-D toy valley with bend ``b sin(omega s)``, noise-free, started on the floor."""
    return toy(
        hill_curvature=hill,
        amplitude=b,
        frequency=omega,
        noise_std=0.0,
        start=(S0, b * np.sin(omega * S0)),
        **kw,
    )


def f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# --- the solver and the closed forms -------------------------------------------------------------


@pytest.mark.parametrize("geometry", ["straight", "floor"])
def test_rk4_matches_closed_form(geometry):
    # strong bends (|c'|^2 up to 1): the floor flow is far from the straight one
    v = valley(0.5, 2.0)
    tau = np.concatenate([np.linspace(0.0, 1.0, 11), np.linspace(1.5, 60.0, 118)])
    exact = flow.softplus_closed_form(v, tau, geometry=geometry)
    rk = f64(flow.river_flow(v, tau, geometry=geometry, substeps=8))  # h <= 0.0625
    # RK4's own error at h = 0.0625 is ~1e-9 here (see the order test); what remains is float32
    # rounding of s ~ 4 (ulp 4.8e-7), kept from accumulating over ~1000 steps by Kahan summation
    np.testing.assert_allclose(rk, exact, rtol=0, atol=2e-6)
    other = "floor" if geometry == "straight" else "straight"
    assert np.abs(flow.softplus_closed_form(v, tau, geometry=other) - exact).max() > 0.3


def test_rk4_from_another_start_and_with_many_small_steps():
    v = valley()
    rates = np.full(5000, 0.01)
    tau = flow.intrinsic_time(rates)
    np.testing.assert_allclose(tau[[0, 1, -1]], [0.0, 0.01, 50.0], rtol=1e-12)
    exact = flow.softplus_closed_form(v, tau)
    np.testing.assert_allclose(f64(flow.straight_flow(v, tau, substeps=1)), exact, atol=2e-6)
    late = flow.softplus_closed_form(v, tau, s0=1.5)
    np.testing.assert_allclose(f64(flow.straight_flow(v, tau, s0=1.5)), late, atol=2e-6)


def _rk4_errors(v: RiverValley, geometry: str, dt: float, t_end: float = 20.0) -> np.ndarray:
    """Max error of RK4 with steps ``h = dt / n``, ``n = 1, 2, 4``, on the grid ``0, dt, ..``,
    against the closed form (softplus) or, for the power river, against RK4 with ``2 n`` steps."""
    tau = np.arange(0.0, t_end + 1e-9, dt)

    def solve(n: int) -> np.ndarray:
        return f64(flow.river_flow(v, tau, geometry=geometry, substeps=n))

    if v.river == "softplus":
        exact = flow.softplus_closed_form(v, tau, geometry=geometry)
        return np.array([np.abs(solve(n) - exact).max() for n in (1, 2, 4)])
    return np.array([np.abs(solve(n) - solve(2 * n)).max() for n in (1, 2, 4)])


@pytest.mark.parametrize(
    ("river", "geometry", "dt"),
    [
        ("softplus", "straight", 1.0),
        ("softplus", "floor", 0.25),  # bends at omega = 2 need smaller steps
        ("power", "straight", 1.0),
        ("power", "floor", 0.25),
    ],
)
def test_rk4_is_fourth_order(x64, river, geometry, dt):
    v = valley(0.5, 2.0, river=river)
    errors = _rk4_errors(v, geometry, dt)
    ratios = errors[:-1] / errors[1:]
    # O(h^4): halving h divides the error by 2^4 = 16 (within its higher-order corrections)
    assert np.all((ratios > 12.0) & (ratios < 21.0)), f"errors {errors}, ratios {ratios}"
    assert errors[-1] > 1e-12  # still above float64 rounding: the ratios mean something


def test_closed_form_against_lambert_w(x64):
    # s + e^s = C  <=>  e^s = W(e^C)  <=>  s = C - W(e^C)
    v = valley()
    tau = np.array([0.0, 0.3, 1.0, 5.0, 20.0, 100.0, 400.0])
    c = tau + S0 + np.exp(S0)
    expected = c - np.real(lambertw(np.exp(c)))
    np.testing.assert_allclose(flow.softplus_closed_form(v, tau), expected, rtol=1e-13, atol=1e-13)
    # far beyond exp's range (e^C overflows for C > 709) Newton still solves it
    s = flow.softplus_closed_form(v, [1e4])[0]
    assert s + np.exp(s) == pytest.approx(1e4 + S0 + np.exp(S0), rel=1e-14)


@pytest.mark.parametrize(("b", "omega"), [(0.0, 1.0), (0.3, 1.0), (0.5, 2.0), (0.8, 3.0)])
def test_floor_closed_form_solves_its_ode(x64, b, omega):
    v = valley(b, omega)
    tau = np.linspace(0.5, 30.0, 40)
    eps = 1e-5
    s = flow.softplus_closed_form(v, tau, geometry="floor")
    ds = (
        flow.softplus_closed_form(v, tau + eps, geometry="floor")
        - flow.softplus_closed_form(v, tau - eps, geometry="floor")
    ) / (2 * eps)
    rhs = 1.0 / (1.0 + np.exp(s)) / (1.0 + b**2 * omega**2 * np.cos(omega * s) ** 2)
    np.testing.assert_allclose(ds, rhs, rtol=1e-6)  # central difference: O(eps^2) + rounding
    np.testing.assert_allclose(
        f64(jax.vmap(lambda x: flow.floor_velocity(v, x))(s)), rhs, rtol=1e-12
    )
    assert flow.softplus_closed_form(v, [0.0], geometry="floor")[0] == pytest.approx(S0, abs=1e-14)


def test_vmap_over_peaks_and_landscapes():
    peaks = np.array([0.01, 0.02, 0.04, 0.08])
    taus = flow.intrinsic_time(peaks[:, None] * np.ones(250))  # (4, 251)
    v = valley(0.3, 2.0)
    batched = jax.jit(jax.vmap(flow.floor_flow, in_axes=(None, 0)))(v, taus)
    for i in range(peaks.size):
        np.testing.assert_allclose(batched[i], flow.floor_flow(v, taus[i]), rtol=0, atol=1e-6)
    # a batch of landscapes (RiverValley is a pytree), each with its own time grid
    valleys = [valley(b, w) for b, w in [(0.0, 1.0), (0.3, 1.0), (0.3, 2.0), (0.6, 3.0)]]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *valleys)
    both = jax.jit(jax.vmap(flow.floor_flow))(stacked, taus)
    for i, vi in enumerate(valleys):
        exact = flow.softplus_closed_form(vi, taus[i], geometry="floor")
        np.testing.assert_allclose(f64(both[i]), exact, rtol=0, atol=2e-6)


def test_invalid_arguments():
    v = valley()
    with pytest.raises(ValueError, match="geometry"):
        flow.river_flow(v, [1.0], geometry="curved")
    with pytest.raises(ValueError, match="substeps"):
        flow.rk4(lambda s: -s, 1.0, [1.0], substeps=0)
    with pytest.raises(ValueError, match="tau"):
        flow.softplus_closed_form(v, [-1.0])
    with pytest.raises(ValueError, match="softplus"):
        flow.softplus_closed_form(valley(river="power"), [1.0])


# --- GD on river valleys against the flow ------------------------------------------------------

# Every schedule spends TAU of intrinsic time (a WSD schedule with decay fraction 0 is a constant
# rate for T steps, with decay fraction 1 it is exactly schedules.linear):
#   constant eta for T steps:           tau = eta T
#   linear decay from eta to 0 over T:  tau = eta (T + 1) / 2
#   WSD, linear decay over the last 20%: tau = eta (0.9 T + 0.5)
WSD_PEAK = TAU / 900.5
CASES = {  # name: (peak, total steps, decay fraction)
    "const_0.04": (0.04, 250, 0.0),
    "const_0.02": (0.02, 500, 0.0),
    "const_0.01": (0.01, 1000, 0.0),
    "const_0.0025": (0.0025, 4000, 0.0),
    "linear_0.02": (0.02, 999, 1.0),
    "wsd": (WSD_PEAK, 1000, 0.2),
}
STEPS = 4000
LANDSCAPES = {  # name: (b, omega, hill curvature); stable: eta a (1 + b^2 omega^2) < 2 for all
    "straight": (0.0, 1.0, 10.0),
    "curved": (0.3, 2.0, 10.0),
    "curved_stiff": (0.3, 2.0, 20.0),
}


@jax.jit
def _rates(sched: schedules.Schedule) -> jax.Array:
    """Rates of a batched schedule at ``t = 0..STEPS-1``, shape ``(batch, STEPS)``."""
    return jax.vmap(lambda s: s(jnp.arange(STEPS)))(sched)


def _schedule_batch() -> schedules.Schedule:
    return schedules.stack([schedules.wsd(p, t, d) for p, t, d in CASES.values()])


@jax.jit
def _flows(v: RiverValley, tau: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Both flows of every landscape (a batch) at every schedule's times (one compilation),
    shape ``(landscape, schedule, step)``."""

    def both(v, tau):
        return flow.floor_flow(v, tau), flow.straight_flow(v, tau)

    return jax.vmap(jax.vmap(both, (None, 0)), (0, None))(v, tau)


@functools.cache
def _gd_runs() -> xr.Dataset:
    """GD on every landscape under every schedule (one compiled sweep: dims ``landscape``,
    ``schedule``), with ``tau`` and both flows at every step."""
    lands = {name: valley(*args) for name, args in LANDSCAPES.items()}
    cases = {name: schedules.wsd(p, t, d) for name, (p, t, d) in CASES.items()}
    ds = sweep(
        lands, optimizers.sgd(), cases, seeds=[0], steps=STEPS, gradient="exact", horizon="free"
    )
    ds = ds.isel(seed=0)
    tau = flow.intrinsic_time(_rates(_schedule_batch()))
    ds["tau"] = xr.DataArray(tau, dims=("schedule", "step"), coords={"schedule": list(CASES)})
    floor, straight = _flows(pytree.stack(list(lands.values())), jnp.asarray(tau))
    ds["flow_floor"] = (("landscape", "schedule", "step"), f64(floor))
    ds["flow_straight"] = (("landscape", "schedule", "step"), f64(straight))
    return ds


def _run(land: str, case: str) -> xr.Dataset:
    return _gd_runs().sel(landscape=land, schedule=case)


def _gap(land: str, case: str, geometry: str = "floor") -> np.ndarray:
    r = _run(land, case)
    return f64(r.river_coord) - f64(r[f"flow_{geometry}"])


def _bound(land: str, case: str) -> float:
    """``flow.euler_bound`` at the end of the run (the largest it gets: ``v`` decreases)."""
    r = _run(land, case)
    peak = CASES[case][0]
    return float(flow.euler_bound(valley(*LANDSCAPES[land]), S0, r.flow_straight[-1], peak))


ROUNDING = 2e-5  # float32 GD over <= 4000 steps against float64 references (observed < 1e-5)


def test_the_schedules_are_what_they_claim():
    sched = _schedule_batch()
    rates = np.asarray(_rates(sched))
    names = list(CASES)
    t = np.arange(STEPS)
    for i, (_, total, _) in enumerate(CASES.values()):
        assert rates[i].sum() == pytest.approx(TAU, rel=1e-5), names[i]
        assert np.all(rates[i][t >= total] == 0.0)
    linear = np.asarray(jax.jit(lambda s: s(jnp.arange(STEPS)))(schedules.linear(0.02, 999)))
    np.testing.assert_array_equal(rates[names.index("linear_0.02")], linear)
    np.testing.assert_array_equal(rates[names.index("const_0.02")][:500], np.float32(0.02))
    ds = _gd_runs()
    assert not ds.diverged.values.any()
    np.testing.assert_allclose(ds.tau.values[:, -1], TAU, rtol=1e-5)
    # the record at step t holds the rate of update t, so tau_t is the sum of the records before
    # it (the runner evaluates the schedule in its own compiled code: equal to ~1 float32 ulp)
    recorded = np.cumsum(f64(ds.lr.transpose("landscape", "schedule", "step")), axis=-1)
    tau = np.broadcast_to(ds.tau.transpose("schedule", "step").values, recorded.shape)
    np.testing.assert_allclose(recorded[..., :-1], tau[..., 1:], rtol=1e-6)
    assert np.abs(recorded[..., :-1] - tau[..., :-1]).max() > 0.01  # not including it


@pytest.mark.parametrize("case", ["const_0.04", "const_0.02", "const_0.01", "linear_0.02", "wsd"])
def test_gd_on_a_straight_river_stays_within_the_euler_bound(case):
    gap = _gap("straight", case)
    bound = _bound("straight", case)
    # GD is ahead of the flow (v decreases along the path) by at most the bound
    assert gap.min() >= -ROUNDING
    assert gap.max() <= bound + ROUNDING, f"max gap {gap.max():.2e} > bound {bound:.2e}"
    # ... and the bound is not vacuous: the gap is a sizeable fraction of it
    assert gap.max() >= 0.2 * bound


def test_gd_gap_is_first_order_in_the_rate():
    gaps = [np.abs(_gap("straight", c)).max() for c in ("const_0.04", "const_0.02", "const_0.01")]
    ratios = np.array(gaps[:-1]) / np.array(gaps[1:])
    # halving the rate halves the gap: the O(eta^2) correction is small at these rates
    # (observed 2.00 and 2.00; second-order terms or float32 rounding would show as a drift)
    assert np.all((ratios > 1.8) & (ratios < 2.2)), f"gaps {gaps}, ratios {ratios}"
    assert np.abs(_gap("straight", "const_0.0025")).max() < 0.3 * gaps[-1]


def test_gd_on_a_curved_river_follows_the_floor_flow():
    residual = {}
    for land in ("curved", "curved_stiff"):
        floor = np.abs(_gap(land, "const_0.0025")).max()
        straight = np.abs(_gap(land, "const_0.0025", "straight")).max()
        # the bends slow the river: the straight flow misses by ~0.3, the floor flow by ~1e-2
        assert straight > 0.2
        assert floor < 0.1 * straight, f"{land}: floor {floor:.3e} vs straight {straight:.3e}"
        residual[land] = floor
    # with a tiny rate what is left is the hills' lag behind the bend, O(1/lambda): doubling the
    # hill curvature halves it (the Euler part, ~0.1 eta = 2.5e-4, blurs the ratio a little)
    ratio = residual["curved"] / residual["curved_stiff"]
    assert 1.6 < ratio < 2.5, f"residuals {residual}"


@pytest.mark.parametrize("land", list(LANDSCAPES))
def test_schedules_with_equal_tau_reach_the_same_river_coordinate(land):
    const, lin, wsd = _run(land, "const_0.02"), _run(land, "linear_0.02"), _run(land, "wsd")
    # against the step count the curves differ widely (the constant run is done at step 500)...
    assert abs(float(const.river_coord[500]) - float(lin.river_coord[500])) > 0.25
    # ... but spending the same tau they end at the same s: each is within (Euler bound +
    # rate-independent residual) of the flow at its own tau, and the taus agree to rounding
    residual = np.abs(_gap(land, "const_0.0025")).max() if land != "straight" else 0.0
    ends = {}
    for name, run in (("const_0.02", const), ("linear_0.02", lin), ("wsd", wsd)):
        ends[name] = float(run.river_coord[-1])
        tol = _bound(land, name) + residual + ROUNDING
        assert abs(_gap(land, name)[-1]) <= tol
    taus = [float(r.tau[-1]) for r in (const, lin, wsd)]
    assert max(taus) - min(taus) < 1e-4
    pairs = [("const_0.02", "linear_0.02"), ("const_0.02", "wsd"), ("linear_0.02", "wsd")]
    for a, b in pairs:
        tol = _bound(land, a) + _bound(land, b) + 2 * residual + 2 * ROUNDING
        assert abs(ends[a] - ends[b]) <= tol, f"{a} vs {b}: {ends[a]} vs {ends[b]}"
