r"""The river-valley law (``rivervalley.valley_law``): its hill term against SGD's exact expected
hill loss on a noisy quadratic (``theory``, float64), its fit on curves simulated by the lab, and
finite derivatives for ``laws.fit``'s Jacobian.

Simulation (``_simulated``): SGD (``sweep``) on a 4-D river valley with a power-law river
(``f(s) = (1 + softplus(s))^-1``), a bent floor (amplitude 0.15) and three hills of curvatures
4, 1 and 0.25 (relaxation times from ~1 to ~200 updates across the rates used), gradient noise
``sigma = 0.3`` on the hills and none on the river (so the river coordinate is deterministic up
to its coupling to the hills through the bend: river noise would add a Jensen term
``f'' Var(s) / 2`` that grows with ``sum eta^2``, neither a function of intrinsic time nor a
hill), 512 seeds, 2000 updates after a 100-update warmup, under seven schedules.  The law is
fitted on the seed means of ``loss`` for constant, cosine and WSD (linear decay, last 20%) and
predicts WSD with a 1-sqrt decay (last 10%), WSD-S (two budgets), cyclic cosine and a linear
decay.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rivervalley import laws, optimizers, schedules, sweep, theory
from rivervalley import valley_law as vl
from rivervalley.landscapes import river_valley

PARAMS = np.array([0.3, 1.2, 0.5, 0.4, 0.05, 30.0, -0.3])  # L_inf, A, alpha, tau0, B, lambda, p


# --------------------------------------------------------------------- (a) exact hill term


def _loss_recursion(lam, sigma, rates, eta0):
    """The hill loss in loss units, ``h <- (1 - eta lam)^2 h + eta^2 lam sigma^2 / 2`` from the
    stationary ``eta0 sigma^2 / (2 (2 - eta0 lam))``, a plain float64 loop (``(T + 1,)``)."""
    h = eta0 * sigma**2 / (2.0 * (2.0 - eta0 * lam))
    out = [h.sum()]
    for eta in rates:
        h = (1.0 - eta * lam) ** 2 * h + eta**2 * lam * sigma**2 / 2.0
        out.append(h.sum())
    return np.asarray(out)


def _wsd_curve(peak, total, warmup, final, after):
    """WSD (linear decay over the last 20% of ``total``) then ``after`` updates at ``final``, as
    a ``laws.Curve`` of every post-warmup step (the loss column is a placeholder)."""
    schedule = schedules.wsd(peak, total, 0.2, warmup_steps=warmup, final=final)
    rates = np.asarray(schedules.rates(schedule, total + after), np.float64)
    steps = np.arange(1, rates.size - warmup + 1)
    return laws.Curve(rates[warmup:], steps, np.ones(steps.size), float(rates[:warmup].sum()), peak)


def test_hill_term_is_sgd_exact_hill_loss_under_wsd(x64):
    """The law's hill component is SGD's exact expected loss on the hills of its spectrum: equal
    to a plain loop of the recursion in loss units; stationary (``theory.stationary_hill_loss``)
    through the stable phase; ``theory.hill_cliff``'s residual at the decay's end; a geometric
    relaxation to the final rate's stationary loss after it.  Float64, 1e-10 relative."""
    peak, total, warmup, final, after = 0.02, 600, 40, 0.002, 200
    curve = _wsd_curve(peak, total, warmup, final, after)
    lam, sigma = (np.asarray(a) for a in vl.spectrum(jnp.asarray(PARAMS)))
    assert lam.shape == (vl.CURVATURES,) and lam.max() == pytest.approx(PARAMS[5])
    assert lam.min() == pytest.approx(PARAMS[5] / vl.SPAN)
    assert np.sum(sigma**2) == pytest.approx(4.0 * PARAMS[4])  # the small-rate floor is B eta
    assert np.max(peak * lam) < 2.0  # every hill stable at the peak

    river, hill = vl.components(PARAMS, curve)
    np.testing.assert_allclose(hill, _loss_recursion(lam, sigma, curve.rates, peak)[1:], rtol=1e-10)
    np.testing.assert_allclose(laws.predict(vl.VALLEY_LAW, PARAMS, curve), river + hill, rtol=1e-12)
    tau = curve.warmup_sum + np.cumsum(curve.rates)
    np.testing.assert_allclose(river, PARAMS[0] + PARAMS[1] * (tau + PARAMS[3]) ** -PARAMS[2])

    # hill[i] is the loss after i + 1 post-warmup updates; update s (0-based, warmup included)
    # is post-warmup update s - warmup + 1.  Updates s < 0.8 total run at the peak.
    stable = int(0.8 * total) - warmup
    assert np.all(curve.rates[:stable] == peak) and curve.rates[stable + 1] < peak
    stationary = float(np.sum(theory.stationary_hill_loss(peak, lam, sigma)))
    np.testing.assert_allclose(hill[:stable], stationary, rtol=1e-10)
    # the decay (updates s = 0.8 total .. total - 1): theory.hill_cliff starts stationary at the
    # peak and propagates the variance exactly
    end = total - warmup
    cliff = theory.hill_cliff(lam, sigma, peak, curve.rates[stable:end])
    np.testing.assert_allclose(float(cliff.stationary), stationary, rtol=1e-12)
    np.testing.assert_allclose(hill[end - 1], float(cliff.residual), rtol=1e-10)
    # after the decay the rate is constant: h_j - h_j* shrinks by (1 - eta lambda_j)^2 per update
    eta = curve.rates[end]
    assert eta == pytest.approx(final) and np.all(curve.rates[end:] == eta)
    v_end = theory.sgd_quadratic_moments(
        lam,
        sigma,
        0.0,
        2.0 * theory.stationary_hill_loss(peak, lam, sigma) / lam,
        curve.rates[:end],
        final_only=True,
    ).var
    h_end = 0.5 * lam * np.asarray(v_end)
    floor = np.asarray(theory.stationary_hill_loss(eta, lam, sigma))
    n = np.arange(1, after + 1)[:, None]
    closed = np.sum(floor + (1.0 - eta * lam) ** (2 * n) * (h_end - floor), axis=1)
    np.testing.assert_allclose(hill[end:], closed, rtol=1e-10)
    # the slow hills lag: the decay's residual lies between the two floors
    assert floor.sum() < hill[-1] < hill[end - 1] < stationary


# ----------------------------------------------------------------- (b) simulated curves

WARMUP, STEPS, PEAK, EVERY, SEEDS = 100, 2000, 0.1, 10, 512
HILLS = (4.0, 1.0, 0.25)
NOISE = 0.3
TRAIN = ("constant", "cosine", "wsd")
HELD_OUT = ("wsd_sqrt", "wsd_s", "cyclic", "linear")


def _schedules() -> dict[str, schedules.Schedule]:
    warm, half = WARMUP, STEPS // 2
    return {
        "constant": schedules.constant(PEAK, warmup_steps=warm),
        "cosine": schedules.cosine(PEAK, STEPS, warmup_steps=warm),
        "wsd": schedules.wsd(PEAK, STEPS, 0.2, warmup_steps=warm),
        "wsd_sqrt": schedules.wsd(PEAK, STEPS, 0.1, "sqrt", warmup_steps=warm),
        "wsd_s": schedules.wsd_s(PEAK, [half, STEPS], 0.1, warmup_steps=warm),
        "cyclic": schedules.cyclic_cosine(PEAK, [half, STEPS], warmup_steps=warm),
        "linear": schedules.linear(PEAK, STEPS, warmup_steps=warm),
    }


@functools.cache
def _simulated() -> dict[str, dict[str, np.ndarray]]:
    """Per schedule: the full rate table, the seed means of loss / river_loss / hill_loss and
    the standard error of the hill loss's seed mean, at every record (step 0 included)."""
    landscape = river_valley(
        1 + len(HILLS),
        river="power",
        alpha=1.0,
        curvatures=HILLS,
        amplitude=0.15,
        noise_std=[0.0, *[NOISE] * len(HILLS)],
        start=np.zeros(1 + len(HILLS)),
    )
    table = _schedules()
    ds = sweep(landscape, optimizers.sgd(), table, seeds=SEEDS, steps=STEPS, record_every=EVERY)
    assert not ds["diverged"].any()
    runs = ds[["loss", "river_loss", "hill_loss"]].astype(np.float64)
    out = {}
    for name, schedule in table.items():
        run = runs.sel(schedule=name)
        mean = run.mean("seed")
        out[name] = {
            "rates": np.asarray(schedules.rates(schedule, STEPS), np.float64),
            "step": run["step"].to_numpy(),
            "hill_se": (run.hill_loss.std("seed") / np.sqrt(SEEDS)).to_numpy(),
            **{k: mean[k].to_numpy() for k in ("loss", "river_loss", "hill_loss")},
        }
    return out


def _law_curve(sim: dict[str, np.ndarray], name: str) -> tuple[laws.Curve, np.ndarray]:
    """The seed-mean loss after the warmup as a ``laws.Curve``: record ``step = s`` is the state
    after updates ``0..s-1``, i.e. after ``t = s - WARMUP`` post-warmup updates with rates
    ``eta_k = rates[WARMUP - 1 + k]``; also the mask of the records kept."""
    keep = sim["step"] > WARMUP
    rates = sim["rates"]
    curve = laws.Curve(
        rates[WARMUP:],
        sim["step"][keep] - WARMUP,
        sim["loss"][keep],
        float(rates[:WARMUP].sum()),
        PEAK,
        name,
    )
    return curve, keep


def test_fit_on_simulated_curves_predicts_held_out_schedules_and_splits_them():
    """Fitted (``laws.fit`` from ``valley_law.initial_guesses``) on the seed means of the
    training schedules, the law predicts the held-out ones and its components follow the
    simulated ``river_loss`` and ``hill_loss``.  Tolerances, from what limits each comparison:

    * hill: ``|hill_law - hill_sim| <= 5 SE`` at every record of every schedule, ``SE`` the
      standard error of the simulated seed mean (from the spread over seeds).  The law's hills
      are SGD's exact expected hill loss, so up to the bend of the river the only difference is
      Monte Carlo noise; 5 SE over ~1300 records has a chance below 1e-3 under pure noise;
    * river: within 1% relative from 100 updates after the warmup on (the law's
      ``(tau + tau0)^-alpha`` against gradient flow on ``(1 + softplus(s))^-1``, which is a
      power law in ``tau`` only asymptotically); the very first records are allowed 3%
      (``worst_e``);
    * the curve: held-out PredE within 1e-3 of the PredE that Monte Carlo noise alone gives
      (``0.8 SE / L`` averaged: the mean |Gaussian| error of a seed mean of 512 runs);
    * ``B``, the noise floor's slope in the rate, within 5% of the simulated hills'
      ``sum_j sigma^2 / 4`` (``B eta`` is their stationary loss at small ``eta lambda``).
    """
    sims = _simulated()
    curves = {k: _law_curve(sims[k], k) for k in sims}
    fitted = vl.fit([curves[k][0] for k in TRAIN])
    assert fitted.success
    b_true = len(HILLS) * NOISE**2 / 4.0
    assert fitted.params["B"] == pytest.approx(b_true, rel=0.05), fitted
    for name in (*TRAIN, *HELD_OUT):
        curve, keep = curves[name]
        sim = sims[name]
        pred = laws.predict(vl.VALLEY_LAW, fitted.vector, curve)
        river, hill = vl.components(fitted.vector, curve)
        np.testing.assert_allclose(river + hill, pred, rtol=1e-12)
        m = laws.metrics(curve.loss, pred)
        se = sim["hill_se"][keep]
        noise_pred_e = float(np.mean(0.8 * se / curve.loss))
        assert m["pred_e"] < noise_pred_e + 1e-3 and m["worst_e"] < 0.03, (name, m, noise_pred_e)
        z = np.abs(hill - sim["hill_loss"][keep]) / se
        assert z.max() < 5.0, (name, z.max(), int(z.argmax()))
        late = curve.steps >= 100
        rel = np.abs(river - sim["river_loss"][keep])[late] / sim["river_loss"][keep][late]
        assert rel.max() < 0.01, (name, rel.max())


# ----------------------------------------------------------------------- (c) derivatives


@pytest.mark.parametrize(
    "params",
    [
        PARAMS,
        [0.3, 1.2, 0.5, 1e-8, 1e-12, 30.0, -0.3],  # tiny tau0 and B
        [0.3, 1.2, 0.5, 0.4, 0.05, 30.0, 60.0],  # all the noise on the fastest hill
        [0.3, 1.2, 0.5, 0.4, 0.05, 30.0, -60.0],  # ... on the slowest
        [0.3, 1.2, 0.5, 0.4, 0.05, 95.0, 0.0],  # eta lambda = 1.9 at the peak: near the edge
    ],
)
def test_derivatives_are_finite_and_exact(x64, params):
    """The Jacobian ``laws.fit`` uses (forward mode, in the law's unconstrained coordinates, of
    the log prediction) is finite on a WSD curve decaying to 0, including extreme corners of
    the parameters, agrees with reverse mode, and with central differences at the test point."""
    curve = _wsd_curve(0.02, 600, 40, 0.0, 50)
    law = vl.VALLEY_LAW
    z0 = jnp.asarray(law.to_z(params))

    def log_pred(z):
        return jnp.log(law.curve(law.to_params(z), curve))

    fwd = np.asarray(jax.jacfwd(log_pred)(z0))
    assert fwd.shape == (curve.steps.size, len(vl.NAMES)) and np.all(np.isfinite(fwd))
    np.testing.assert_allclose(np.asarray(jax.jacrev(log_pred)(z0)), fwd, rtol=1e-9, atol=1e-14)
    if np.allclose(params, PARAMS):
        h = 1e-6
        cols = [
            (log_pred(z0.at[i].add(h)) - log_pred(z0.at[i].add(-h))) / (2 * h) for i in range(7)
        ]
        np.testing.assert_allclose(np.stack(cols, 1), fwd, rtol=1e-5, atol=1e-9)


# ------------------------------------------------------------- (d) the law as a landscape


def _as_landscape_case(seeds):
    """A 4-hill law (span 100) as a landscape, run by SGD under WSD from a stationary start at
    the peak: the seed mean in the curve's units, its standard error and the law's prediction."""
    law = vl.valley_law(4, 100.0, "valley_4_span_100")
    params = np.array([2.5, 0.6, 0.45, 0.05, 400.0, 800.0, 0.2])  # real-run-like units
    peak, warmup, total = 3e-4, 200, 2200
    with jax.enable_x64(True):
        rates = np.asarray(
            schedules.rates(schedules.wsd(peak, total, 0.3, warmup_steps=warmup), total), np.float64
        )
    toy = vl.as_landscape(
        params, tau=float(rates[:warmup].sum()), eta0=peak, rate_scale=1.0 / peak, law=law
    )
    ds = sweep(
        toy.landscape,
        optimizers.sgd(),
        schedules.tabulated(toy.rate_scale * rates[warmup:]),
        seeds=seeds,
        steps=total - warmup,
        record_every=100,
        horizon="free",
    )
    loss = np.asarray(ds["loss"].values, np.float64)
    mean = toy.to_curve_units(loss.mean(0))
    se = toy.loss_scale * loss.std(0, ddof=1) / np.sqrt(seeds)
    steps = np.asarray(ds["step"].values)
    curve = laws.Curve(
        rates[warmup:], np.maximum(steps, 1), np.ones(steps.size), float(rates[:warmup].sum()), peak
    )
    want = laws.predict(law, params, curve)
    return toy, ds, mean, se, want, steps


def test_as_landscape_simulates_the_law():
    """SGD on ``as_landscape``'s river valley (Monte Carlo, 1024 seeds, float32) has the law's
    expected loss at every record within 4.5 standard errors, through the stable phase and the
    decay (the river term is the flow's, discretised: its error ``O(eta' f'')`` per step is far
    below one SE); the start is stationary: the hills' spread at step 0 is ``start_std``."""
    toy, ds, mean, se, want, steps = _as_landscape_case(1024)
    later = steps >= 1  # the law is evaluated after >= 1 update (step 0 is the start)
    z = np.abs(mean[later] - want[later]) / se[later]
    assert z.max() < 4.5, (z, mean[later] - want[later])
    assert np.median(z) < 1.5
    drop = want[later][0] - want[-1]
    assert drop > 10 * se.max()  # the decay's drop is resolved, so agreement is not vacuous
    start = ds["hill_loss"].sel(step=0).values
    lam = np.asarray(toy.landscape.curvatures)
    expected = 0.5 * float(np.sum(lam * np.asarray(toy.landscape.start_std)[1:] ** 2))
    n = start.size
    assert abs(start.mean() - expected) < 4.5 * start.std(ddof=1) / np.sqrt(n)


def test_as_landscape_refuses_what_it_cannot_map():
    with pytest.raises(ValueError, match="alpha"):
        vl.as_landscape(
            np.array([2.0, 0.6, 1.2, 0.1, 400.0, 800.0, 0.0]), tau=0.3, eta0=3e-4, rate_scale=1e3
        )
    with pytest.raises(ValueError, match="rate_scale"):
        vl.as_landscape(PARAMS, tau=1e-3, eta0=1e-3, rate_scale=1.0)
    with pytest.raises(ValueError, match="start_std"):
        toy = vl.as_landscape(PARAMS, tau=10.0, eta0=1e-3, rate_scale=1e3).landscape
        vl.StationaryValley(
            **{f: getattr(toy, f) for f in toy.__dataclass_fields__ if f != "start_std"},
            start_std=-np.ones(toy.dim),
        ).validate()
