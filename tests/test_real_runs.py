"""The public runs of Luo et al. (2025) in the lab's laws (``rivervalley.real_runs``) and the
schedule search under a fitted law (``laws.best_schedule`` / ``laws.optimal_schedule``): the
rebuilt per-update rates equal the CSVs' ``lr`` column; the authors' published parameters,
evaluated by the lab's law on the lab's curves, give the authors' published metrics; ``Fit.predict``
on a full rate array equals the law on the fitted curve; the grid search finds a known optimum
and agrees with brute force; the free optimum is monotone, feasible, no worse than the best
family member, and usable as a schedule."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rivervalley import laws, real_runs, schedules, valley_law

SIZES = real_runs.SIZES


@pytest.fixture(scope="module")
def runs():
    return {size: real_runs.load_runs(size) for size in SIZES}


def test_rates_match_the_csv_lr_column(runs):
    for size in SIZES:
        for name, ds in runs[size].items():
            rates = real_runs.run_rates(name)
            assert real_runs.rate_mismatch(ds, rates) < 4e-15, (size, name)
            assert rates.size == ds.attrs["total_steps"]
            assert rates[0] == 0.0 and rates[real_runs.WARMUP - 1] == real_runs.PEAK
            assert np.all(np.diff(rates[: real_runs.WARMUP]) > 0)
    low = real_runs.run_rates("wsdcon_9")
    switch = real_runs.TWO_STAGE_SWITCH
    assert low[switch - 1] == real_runs.PEAK and np.all(low[switch:] == 9e-5)
    wsd = real_runs.run_rates("wsd_20000_24000")
    assert wsd[19999] == real_runs.PEAK
    np.testing.assert_allclose(wsd[22000], real_runs.PEAK * 0.1**0.5, rtol=1e-14)  # geometric
    with pytest.raises(ValueError, match="unknown run"):
        real_runs.run_rates("exotic_1")


def test_law_curve_indexing(runs):
    ds = runs["400M"]["cosine_24000"]
    rates = real_runs.run_rates("cosine_24000")
    s = np.asarray(ds["step"].values)
    w = real_runs.WARMUP
    paper = real_runs.law_curve(ds, rates, w)
    np.testing.assert_array_equal(paper.rates, rates[w:])
    np.testing.assert_array_equal(paper.steps, s + 1 - w)  # the loss at s follows s + 1 updates
    assert paper.warmup_sum == pytest.approx(rates[:w].sum()) and paper.eta0 == rates[w - 1]
    # S1 + S_W at each record is the sum of rates[0..s], as in the authors' code
    s1 = np.cumsum(paper.rates)[paper.steps - 1] + paper.warmup_sum
    np.testing.assert_allclose(s1, np.cumsum(rates)[s], rtol=1e-12)
    code = real_runs.law_curve(ds, rates)  # the default: the whole run in the law
    np.testing.assert_array_equal(code.rates, rates)
    np.testing.assert_array_equal(code.steps, s + 1)
    assert code.warmup_sum == 0.0 and code.eta0 is None


def test_published_parameters_give_the_published_metrics(runs):
    """The authors' fitted parameters (their README), evaluated by the lab's law on the lab's
    rebuilt curves, give their held-out table to its printed digits: the rates, the indexing,
    the law and the metrics are theirs."""
    digits = {"r2": 5e-5, "pred_e": 5e-6, "worst_e": 5e-6, "mae": 5e-6, "rmse": 5e-6}
    for size in SIZES:
        curves = real_runs.law_curves(size, runs[size])
        got = real_runs.score(size, real_runs.published_fit(size), curves).test
        for key, tol in digits.items():
            assert abs(got[key] - real_runs.PUBLISHED[size][key]) <= tol, (size, key, got)


def test_fit_predict_equals_the_fitted_curves(runs):
    """``Fit.predict`` from a full rate array and the step counts equals the law on the curve
    it was fitted on, in both forms (the whole run in the law; the paper's warmup split)."""
    values = real_runs.published_fit("400M").vector
    for in_law, warmup in ((True, 0), (False, real_runs.WARMUP)):
        fit = laws.Fit(
            "multi_power",
            dict(zip(laws.MULTI_POWER.names, values, strict=True)),
            0.0,
            0,
            True,
            warmup_in_law=in_law,
        )
        for name in real_runs.TRAIN:
            ds = runs["400M"][name]
            rates = real_runs.run_rates(name)
            curve = real_runs.law_curve(ds, rates, warmup)
            want = laws.predict(laws.MULTI_POWER, values, curve)
            got = fit.predict(np.asarray(ds["step"].values) + 1, rates, warmup=real_runs.WARMUP)
            np.testing.assert_allclose(got, want, rtol=1e-13)


def _fit_of(law, values, warmup_in_law=True):
    return laws.Fit(
        law.name,
        dict(zip(law.names, values, strict=True)),
        0.0,
        0,
        True,
        warmup_in_law=warmup_in_law,
        model=law,
    )


def test_best_schedule_finds_the_known_optimum():
    """Under a power law in the rate area alone the most area wins: the shortest WSD decay of
    the slowest-falling shape, and the cosine that does not decay."""
    fit = _fit_of(laws.POWER, (2.0, 0.6, 0.5))
    peak, n, w = 1e-2, 1000, 100
    wsd = laws.best_schedule(
        fit, n, "wsd", peak=peak, warmup=w, shapes=("sqrt", "exp", "linear"), fractions=(0.1, 0.3)
    )
    assert wsd.member == {"shape": "linear", "decay_fraction": 0.1}
    assert wsd.losses.shape == (3, 2) and wsd.loss == wsd.losses.min()
    cos = laws.best_schedule(fit, n, "cosine", peak=peak, warmup=w)
    assert cos.member == {"final_fraction": 1.0}
    with pytest.raises(ValueError, match="family"):
        laws.best_schedule(fit, n, "cyclic", peak=peak)


@pytest.mark.parametrize("in_law", [True, False])
def test_best_schedule_agrees_with_brute_force(in_law):
    """Every member built on its own and predicted by ``Fit.predict``: the same losses and the
    same winner as the batched search, under the authors' 400M multi-power law."""
    fit = _fit_of(laws.MULTI_POWER, real_runs.PUBLISHED_PARAMS["400M"], in_law)
    peak, n, w, final = 3e-4, 3000, 300, 3e-5
    fractions, shapes = (0.1, 0.2, 0.4), ("linear", "sqrt", "cosine")
    got = laws.best_schedule(
        fit, n, "wsd", peak=peak, warmup=w, final=final, fractions=fractions, shapes=shapes
    )
    brute = np.empty((len(shapes), len(fractions)))
    with jax.enable_x64(True):
        for i, shape in enumerate(shapes):
            for j, frac in enumerate(fractions):
                s = schedules.wsd(peak, n, frac, shape, warmup_steps=w, final=final)
                brute[i, j] = fit.predict([n], np.asarray(schedules.rates(s, n)), warmup=w)[0]
    np.testing.assert_allclose(got.losses, brute, rtol=1e-12)
    i, j = np.unravel_index(np.argmin(brute), brute.shape)
    assert got.member == {"shape": shapes[i], "decay_fraction": fractions[j]}
    assert got.loss == pytest.approx(brute[i, j], rel=1e-12)


def test_optimal_schedule_under_a_power_law_is_constant():
    fit = _fit_of(laws.POWER, (2.0, 0.6, 0.5))
    peak, n, w = 1e-2, 600, 60
    opt = laws.optimal_schedule(fit, n, peak, w)
    np.testing.assert_allclose(opt.rates[w:], peak, rtol=1e-9)
    with jax.enable_x64(True):
        constant = np.asarray(schedules.rates(schedules.constant(peak, warmup_steps=w), n))
    assert opt.loss == pytest.approx(fit.predict([n], constant, warmup=w)[0], rel=1e-12)


def test_optimal_schedule_under_the_multi_power_law():
    """Monotone, within its bounds, at least as good as every WSD member that is feasible (final
    at the floor), and a schedule optax can use."""
    fit = _fit_of(laws.MULTI_POWER, real_runs.PUBLISHED_PARAMS["400M"])
    peak, n, w = 3e-4, 3000, 300
    floor = 1e-3 * peak
    opt = laws.optimal_schedule(fit, n, peak, w, floor=floor)
    post = opt.rates[w:]
    assert opt.monotone and np.all(np.diff(post) <= 0)
    assert post.min() >= floor * (1 - 1e-12) and post.max() <= peak
    assert post[0] == pytest.approx(peak) and post[-1] < 0.1 * peak  # from the peak, decaying
    wsd = laws.best_schedule(fit, n, "wsd", peak=peak, warmup=w, final=floor)
    assert opt.loss < wsd.loss
    assert opt.loss == pytest.approx(fit.predict([n], opt.rates, warmup=w)[0], rel=1e-12)
    table = np.asarray(schedules.rates(opt.schedule, n))
    np.testing.assert_allclose(table, opt.rates, rtol=1e-6)
    sgd = optax.sgd(learning_rate=opt.schedule)
    params = jnp.ones(3)
    state = sgd.init(params)
    updates, _ = sgd.update(jnp.ones(3), state, params)
    np.testing.assert_allclose(np.asarray(updates), -opt.rates[0], atol=1e-12)


@pytest.mark.slow
def test_multi_power_fit_on_the_25m_runs(runs):
    """The lab's fit of the multi-power law on the 3 training runs (25M; ~1 min on 2 cores):
    it fits them better than the published parameters do (lower Huber objective, the authors'
    objective), ``Fit.predict`` reproduces its own curves, and its held-out mean PredE stays
    within 1.3x the published 0.110% (measured: 0.137%).  It does *not* reproduce the
    published PredE within 10%: the published fit is not converged on its own objective, and
    the converged law over-predicts the loss drop of the 72k-step cosine (see real_runs)."""
    size = "25M"
    curves = real_runs.law_curves(size, runs[size])
    train = [curves[n] for n in real_runs.TRAIN]
    start = time.perf_counter()
    fit = laws.fit(laws.MULTI_POWER, train)
    seconds = time.perf_counter() - start
    ours = real_runs.score(size, fit, curves, seconds)
    published = real_runs.score(size, real_runs.published_fit(size), curves)

    def objective(values):
        r = [np.log(c.loss) - np.log(laws.predict(laws.MULTI_POWER, values, c)) for c in train]
        return float(laws.huber(np.concatenate(r)).sum())

    assert fit.objective == pytest.approx(objective(fit.vector), rel=1e-9)
    assert fit.objective < objective(published.fit.vector)
    assert ours.train["pred_e"] < published.train["pred_e"]
    assert ours.test["pred_e"] < 1.3 * real_runs.PUBLISHED[size]["pred_e"], ours.test
    assert ours.test["r2"] > 0.995
    for name in real_runs.TRAIN:
        ds = runs[size][name]
        got = fit.predict(np.asarray(ds["step"].values) + 1, real_runs.run_rates(name))
        want = laws.predict(laws.MULTI_POWER, fit.vector, curves[name])
        np.testing.assert_allclose(got, want, rtol=1e-13)


def test_laws_by_name_and_their_form():
    assert real_runs.law_of("valley") is real_runs.VALLEY_LAWS["valley"]
    assert real_runs.law_of("multi_power") is laws.MULTI_POWER
    with pytest.raises(ValueError, match="unknown 'nope'"):
        real_runs.law_of("nope")
    # the valley laws start their hills stationary at the peak: always split at the warmup
    assert real_runs.law_warmup("valley") == real_runs.WARMUP
    assert real_runs.law_warmup("valley_1", 0) == real_runs.WARMUP
    assert real_runs.law_warmup("multi_power") == real_runs.LAW_WARMUP
    assert real_runs.law_warmup("momentum", real_runs.WARMUP) == real_runs.WARMUP


@pytest.mark.slow
def test_valley_law_fit_on_the_25m_runs(runs):
    """The river-valley law fitted by ``real_runs.evaluate`` on the 3 training runs (25M): its
    held-out mean PredE beats the lab's converged multi-power fit of the same runs (measured
    0.128 % against 0.137 %; 1.2x the published 0.110 %), its river and hill components add up
    to its prediction, and the hill component is largest where the rate is highest (the
    constant run's last record against the WSD run's, after its decay)."""
    size = "25M"
    got = real_runs.evaluate(size, ("valley",), runs[size])["valley"]
    assert got.test["pred_e"] < 1.25 * real_runs.PUBLISHED[size]["pred_e"], got.test
    assert got.test["r2"] > 0.995
    curves = real_runs.law_curves(size, runs[size], real_runs.WARMUP)
    parts = {}
    for name in ("constant_24000", "wsd_20000_24000"):
        river, hill = valley_law.components(got.fit.vector, curves[name])
        want = laws.predict(got.fit.spec, got.fit.vector, curves[name])
        np.testing.assert_allclose(river + hill, want, rtol=1e-12)
        parts[name] = hill
    assert parts["constant_24000"][-1] > 2 * parts["wsd_20000_24000"][-1]
