"""The regime map's theory side (``rivervalley.regimes``): the exact final loss, the tuned-peak
search, the FSL boundary and predictions, and the computed winners deep inside each regime."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rivervalley import optimizers, regimes, schedules, theory
from rivervalley.landscapes import noisy_quadratic
from rivervalley.runner import sweep


def test_final_moments_constant_rate_closed_form(x64):
    # constant rate: P = r^T, Q = eta^2 (1 - r^T) / (1 - r) with r = (1 - eta lambda)^2
    dim, beta, a, sigma, eta, steps = 64, 1.7, 2.3, 0.4, 0.5, 250
    lam = regimes.curvatures(dim, beta)
    rates = regimes.tabulate(regimes.KINDS, [0.5, 1.0], steps)[3, 0]  # shapes shared: one compile
    assert np.all(rates == eta)
    p, q = regimes.final_moments(jnp.asarray(lam), jnp.asarray(rates))
    r = (1.0 - eta * lam) ** 2
    np.testing.assert_allclose(np.asarray(p), r**steps, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(np.asarray(q), eta**2 * (1 - r**steps) / (1 - r), rtol=1e-12)
    loss = regimes.final_loss(np.asarray(p), np.asarray(q), lam, regimes.signal(dim, a), sigma)
    direct = 0.5 * np.sum(
        lam * regimes.initial_point(dim, beta, a) ** 2 * r**steps
        + lam * (sigma**2 * lam) * eta**2 * (1 - r**steps) / (1 - r)
    )
    assert loss == pytest.approx(direct, rel=1e-12)
    # long runs: the stationary noise floor eta sigma^2 lambda / (2 (2 - eta lambda)) per direction
    floor = np.sum(theory.stationary_hill_loss(eta, lam, np.sqrt(sigma**2 * lam)))
    p, q = regimes.final_moments(jnp.asarray(lam[:4]), jnp.full(20_000, eta))
    tail = regimes.final_loss(np.asarray(p), np.asarray(q), lam[:4], np.zeros(4), sigma)
    expected = np.sum(theory.stationary_hill_loss(eta, lam[:4], np.sqrt(sigma**2 * lam[:4])))
    assert tail == pytest.approx(expected, rel=1e-10)
    assert floor > 0


def test_final_moments_match_shared_recursion(x64):
    dim, beta, a, sigma, steps = 32, 2.2, 1.8, 0.3, 250
    lam = regimes.curvatures(dim, beta)
    w0 = regimes.initial_point(dim, beta, a)
    std = regimes.noise_std(dim, beta, sigma)
    rates = regimes.tabulate(regimes.KINDS, [0.5, 1.0], steps)[:, 1]  # (kind, T)
    p, q = regimes.final_moments_batch(jnp.asarray(lam[None]), jnp.asarray(rates))
    ours = regimes.final_loss(
        np.asarray(p[0]), np.asarray(q[0]), lam, regimes.signal(dim, a), sigma
    )

    @jax.jit
    @jax.vmap
    def shared(lrs):
        mom = theory.sgd_quadratic_moments(lam, std, w0, 0.0, lrs)
        return theory.expected_quadratic_loss(lam, mom)[-1]

    np.testing.assert_allclose(ours, np.asarray(shared(jnp.asarray(rates))), rtol=1e-12)


def test_tabulated_rates_are_the_schedules():
    rates = regimes.tabulate(regimes.KINDS, [0.5, 1.0], 250, decay_fraction=0.2)
    assert rates.shape == (4, 2, 250)
    wsd = rates[0, 1]
    assert (
        np.all(wsd[:200] == 1.0)
        and wsd[-1] == pytest.approx(1.0 / 50, rel=1e-2)
        and np.all(wsd > 0)
    )
    np.testing.assert_allclose(rates[:, 0], 0.5 * rates[:, 1], rtol=1e-6)
    assert rates[2, 1, 125] == pytest.approx(0.5) and rates[1, 1, 125] == pytest.approx(0.5)
    assert np.all(rates[3] == np.array([[0.5], [1.0]]))


def test_tune_peak_recovers_the_minimum():
    peaks = np.geomspace(1e-3, 1.0, 25)
    x = np.log(peaks)
    # exactly parabolic in (log eta, log loss): exact recovery, off the grid
    x0 = np.array([np.log(0.0123), np.log(0.3)])
    losses = np.exp(2.0 * (x[None] - x0[:, None]) ** 2 - 3.0)
    peak, loss, edge = regimes.tune_peak(peaks, losses)
    np.testing.assert_allclose(peak, np.exp(x0), rtol=1e-10)
    np.testing.assert_allclose(loss, np.exp(-3.0), rtol=1e-10)
    assert not edge.any()
    # convex in log: A / eta + B eta, minimum 2 sqrt(A B) at sqrt(A / B)
    a_, b_ = 0.02, 3.0
    peak, loss, edge = regimes.tune_peak(peaks, a_ / peaks + b_ * peaks)
    assert peak == pytest.approx(math.sqrt(a_ / b_), rel=0.01)
    assert loss == pytest.approx(2 * math.sqrt(a_ * b_), rel=1e-3)
    assert loss <= np.min(a_ / peaks + b_ * peaks)
    # a minimum at the grid's edge is flagged and returned as is
    peak, loss, edge = regimes.tune_peak(peaks, 1.0 / peaks)
    assert edge and peak == peaks[-1] and loss == pytest.approx(1.0)


def test_boundary_and_exponents_hand_values():
    assert regimes.source_exponent(2.0, 3.0) == pytest.approx(1.0)
    assert regimes.boundary_a(1.5) == pytest.approx(1.5)
    # s = 1 - 1/beta on the boundary
    beta = 2.7
    assert regimes.source_exponent(beta, regimes.boundary_a(beta)) == pytest.approx(1 - 1 / beta)
    assert regimes.is_hard(2.0, 1.9) and not regimes.is_hard(2.0, 2.1)
    assert regimes.wsd_boundary_a(1.5) == pytest.approx(1.5)
    assert regimes.wsd_boundary_a(3.0) == pytest.approx(2.5)
    # noise exponents: e = max(1/beta, 1/(p + 1))
    assert regimes.noise_exponent("cosine", 1.5) == pytest.approx(2 / 3)
    assert regimes.noise_exponent("linear", 3.0) == pytest.approx(1 / 2)
    assert regimes.noise_exponent("cosine", 4.0) == pytest.approx(1 / 3)
    assert regimes.noise_exponent("constant", 2.0) == pytest.approx(1.0)
    # r = s / max(1, s + e): signal-limited below the boundary, noise-limited above
    assert regimes.loss_exponent("wsd", 2.0, 1.5) == pytest.approx(0.25)
    s = regimes.source_exponent(2.0, 4.0)
    assert regimes.loss_exponent("wsd", 2.0, 4.0) == pytest.approx(s / (s + 0.5))
    assert regimes.loss_exponent("constant", 2.0, 4.0) == pytest.approx(s / (s + 1.0))
    # linear decay's tail integral in closed form, and the WSD / cosine limit ratio (signal)
    for b in (1.2, 1.5, 1.9):
        closed = 2 ** (2 - 1 / b) / (2 / b - 1)
        assert regimes.tail_integral("linear", b) == pytest.approx(closed, rel=1e-8)
    assert math.isinf(regimes.tail_integral("wsd", 2.5))
    s = regimes.source_exponent(3.0, 1.6)
    assert regimes.predicted_ratio("wsd", "cosine", 3.0, 1.6) == pytest.approx((0.5 / 0.9) ** s)
    assert regimes.predicted_ranking(3.0, 1.6) == [["wsd"], ["cosine", "linear"], ["constant"]]
    assert regimes.predicted_winner(1.5, 3.0) == "cosine"
    assert regimes.predicted_winner(3.4, 4.5) == "cosine"
    assert regimes.predicted_winner(1.1, 3.0) == "linear"


def _tuned_losses(beta, signals, sigma, dim=512, steps=2000):
    peaks = np.geomspace(1e-3, 1.8, 16)
    rates = regimes.tabulate(regimes.KINDS, peaks, steps)
    lam = regimes.curvatures(dim, beta)
    p, q = regimes.final_moments_batch(jnp.asarray(lam[None]), jnp.asarray(rates))
    p, q = np.asarray(p[0]), np.asarray(q[0])  # (kind, peak, d)
    out = {}
    for a in signals:
        loss = regimes.final_loss(p, q, lam, regimes.signal(dim, a), sigma)  # (kind, peak)
        out[a] = regimes.tune_peak(peaks, loss)[1]
    return out


@pytest.mark.parametrize(
    ("beta", "a"),
    [(3.05, 1.4), (2.45, 1.3), (2.85, 4.2), (1.65, 2.8)],
    ids=["hard-steep", "hard-mid", "easy-steep", "easy-flat"],
)
def test_computed_winner_deep_in_each_regime(x64, beta, a):
    """Far (>= 0.7 in a) from both boundaries the exact tuned losses order the schedules as the
    FSL predicts: its winner first (WSD in the hard regime: WSD < cosine, linear < constant;
    cosine in the easy one: cosine < linear < WSD < constant)."""
    distance = min(abs(a - regimes.wsd_boundary_a(beta)), abs(a - beta))
    assert distance >= 0.7
    loss = _tuned_losses(beta, [a], sigma=0.3)[a]
    order = [regimes.KINDS[i] for i in np.argsort(loss)]
    assert order[0] == regimes.predicted_winner(beta, a)
    assert order[-1] == "constant"
    if regimes.predicted_winner(beta, a) == "cosine":
        assert order == ["cosine", "linear", "wsd", "constant"]


def test_monte_carlo_spot_check():
    """Seed mean of SGD's final loss (``runner.sweep`` on the noisy quadratic) against the exact
    value, within 4 standard errors."""
    dim, beta, a, sigma, steps, seeds = 16, 2.0, 1.5, 0.3, 200, 512
    lam = regimes.curvatures(dim, beta)
    w0 = regimes.initial_point(dim, beta, a)
    std = regimes.noise_std(dim, beta, sigma)
    schedule = schedules.wsd(1.2, steps, 0.2)
    ds = sweep(
        noisy_quadratic(lam, std, w0),
        optimizers.sgd(),
        schedule,
        seeds=seeds,
        steps=steps,
        record_every=steps,
    )
    final = np.asarray(ds.loss.isel(step=-1).values, np.float64)  # (seed,)
    rates = regimes.tabulate(["wsd"], [1.2], steps)[0, 0]
    p, q = regimes.final_moments(jnp.asarray(lam), jnp.asarray(rates))
    exact = regimes.final_loss(np.asarray(p), np.asarray(q), lam, regimes.signal(dim, a), sigma)
    se = final.std(ddof=1) / math.sqrt(seeds)
    assert abs(final.mean() - exact) < 4 * se
    assert se < 0.1 * exact  # the check has power: a 40% error would fail
