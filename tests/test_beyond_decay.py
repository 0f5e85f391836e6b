r"""The beyond-decay study (``experiments/beyond_decay.py``): its bookkeeping and its theory.

* The merge averages ``k + 1`` checkpoints spanning exactly WSD's decay window ``[T - fT, T]``.
* First order on a straight river with a constant drift: the uniform merge over the window and
  a linear decay to 0 over it reach the same river coordinate, up to one step's drift.
* The averaged point's hill offset on a bent river is exactly the average hill offset plus the
  chord ``mean c(s_i) - c(s_bar)``, which is ``c''(s_bar) Var(s) / 2`` to leading order.
* ``gain_recovered`` on constructed data (exact ratio, SE 0 for exactly proportional gains).
* A small study on the straight river against the exact noisy-quadratic theory: every method's
  measured hill loss within ``Z_MAX`` standard errors of the exact expectation (this checks the
  study's bookkeeping too: a run block stored under the wrong method, option or batch size would
  miss by many standard errors).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rivervalley import schedules, theory
from rivervalley.experiment import load_script

bd = load_script(Path(__file__).resolve().parents[1] / "experiments" / "beyond_decay.py")
Z_MAX = 4.0


def test_merge_spans_the_decay_window():
    cfg = bd.config(False)
    steps = cfg.valley_steps
    for fraction in cfg.fractions:
        every = bd.merge_every(cfg, steps, fraction)
        weights = np.asarray(
            theory.average_weights(steps, window=cfg.merge_intervals + 1, window_every=every)
        )
        used = np.flatnonzero(weights)
        assert used[0] == steps - round(fraction * steps) and used[-1] == steps
        assert len(used) == cfg.merge_intervals + 1
        np.testing.assert_allclose(weights[used], 1 / (cfg.merge_intervals + 1))
    with pytest.raises(ValueError, match="whole intervals"):
        bd.merge_every(cfg, 1000, 0.013)


def test_merge_and_linear_decay_reach_the_same_river_coordinate_to_first_order():
    """Constant drift ``v`` per unit rate: the constant run is at ``s_t = v sum_{u<t} eta_u``;
    the merge's mean coordinate and the decay branch's final one differ by at most ``v eta``."""
    cfg = bd.config(False)
    steps, peak, warmup = cfg.valley_steps, cfg.valley_peaks[1], cfg.valley_warmup
    constant = np.asarray(schedules.rates(schedules.constant(peak, warmup_steps=warmup), steps))
    s_constant = np.concatenate([[0.0], np.cumsum(constant)])  # v = 1
    for fraction in cfg.fractions:
        wsd = schedules.wsd(peak, steps, fraction, warmup_steps=warmup, final=0.0)
        s_wsd = float(np.sum(np.asarray(schedules.rates(wsd, steps))))
        weights = theory.average_weights(
            steps,
            window=cfg.merge_intervals + 1,
            window_every=bd.merge_every(cfg, steps, fraction),
        )
        s_merge = float(np.dot(np.asarray(weights), s_constant))
        assert abs(s_merge - s_wsd) <= peak
        assert s_merge < s_constant[-1] - 0.4 * fraction * steps * peak  # both lag the constant


def test_averaged_hill_offset_is_noise_average_plus_chord():
    cfg = bd.config(False)
    member = bd.valley(cfg, "curved")
    key_s, key_d = jax.random.split(jax.random.key(0))
    spread = 0.05
    s = 4.0 + spread * jax.random.normal(key_s, (9,))
    delta = 0.02 * jax.random.normal(key_d, (9, 1))
    points = jnp.concatenate([s[:, None], jax.vmap(member.river_curve)(s) + delta], axis=1)
    mean = points.mean(0)
    offset = member.decompose(mean).hill_displacement[1:]
    chord = jax.vmap(member.river_curve)(s).mean(0) - member.river_curve(mean[0])
    np.testing.assert_allclose(offset, delta.mean(0) + chord, rtol=1e-5, atol=1e-7)
    # leading order c''(s_bar) Var(s) / 2, c'' = -b omega^2 sin(omega s): next terms are
    # O(omega^2 Var) relative (the third moment's term vanishes only on average)
    b, omega = bd.VALLEYS["curved"]["amplitude"], bd.VALLEYS["curved"]["frequency"]
    s_bar, var = float(s.mean()), float(s.var())
    leading = -b * omega**2 * np.sin(omega * s_bar) * var / 2
    assert abs(float(chord[0]) - leading) <= 0.15 * abs(leading)


def test_gain_recovered_on_constructed_data():
    rng = np.random.default_rng(0)
    const = 1.0 + rng.random(50)
    wsd = const - (0.2 + rng.random(50))
    method = const - 0.6 * (const - wsd)
    ratio, se = bd.gain_recovered(const, method, wsd)
    assert ratio == pytest.approx(0.6) and se == pytest.approx(0.0, abs=1e-12)
    noisy = method + 0.01 * rng.standard_normal(50)
    ratio, se = bd.gain_recovered(const, noisy, wsd)
    assert abs(ratio - 0.6) < 4 * se and 0 < se < 0.05


@pytest.fixture(scope="module")
def straight_study():
    cfg = dataclasses.replace(
        bd.config(True),
        valleys=("straight",),
        bigram=False,
        fractions=(0.2, 0.4),
        valley_steps=500,
        valley_seeds=256,
    )
    ds = bd.compute(cfg, False)
    return cfg, ds, bd.summarize(ds, cfg)


def test_straight_river_hill_losses_match_the_exact_theory(straight_study):
    cfg, ds, summary = straight_study
    check = summary["straight"]["exact_hill_theory"]
    assert set(check) == {"constant", "wsd", "ema", "merge", "large_batch"}
    for method, row in check.items():
        assert abs(row["z"]) < Z_MAX, (method, row)
    # and the untuned options too: every (method, option) on the evaluation seeds
    predicted = bd.straight_theory(cfg)
    part = ds.sel(landscape="straight")
    ev = part.eval_seed.values == 1
    for i, method in enumerate(bd.METHODS):
        for j, value in enumerate(predicted.get(method, [])):
            hill = part.final_hill_loss.values[i, j][ev]
            se = hill.std(ddof=1) / np.sqrt(hill.size)
            assert abs(hill.mean() - value) < Z_MAX * se, (method, j)
