r"""The WSD-S study (``experiments/wsd_s_study.py``): its accounting, its schedules, and its claims.

* Step accounting against a hand count: WSD spends the last budget plus, per earlier budget, the
  updates its decay branch does off the main line (a linear window ``[E - D, E]`` is still at the
  peak at its first update, so ``D - 1`` of them); WSD-S and cyclic cosine the last budget; one
  cosine per budget the sum of the budgets.
* WSD-S's rates equal a rate sequence built by hand from the reference recipe.
* WSD's decay branches share the main line bit for bit up to their fork (same seeds, same rates:
  the runner's noise is counter-based), so a branch's own compute is only its decay.
* The noisy quadratic, where every method's expected loss is exact
  (``theory.sgd_quadratic_moments``): the theory's ordering of the methods is asserted, and the
  simulation's means and paired differences agree with it within ``Z_MAX`` standard errors.
* The quick study on the river valley: the orderings its paired z-scores support are asserted
  at ``Z_MAX``; the one it does not support (WSD-S <= WSD) is not asserted.

Monte-Carlo tolerances are ``Z_MAX = 4`` standard errors; the runs are deterministic given their
seeds, so the tests do not flake.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import xarray as xr

from rivervalley import optimizers, sweep, theory
from rivervalley.landscapes import noisy_quadratic

Z_MAX = 4.0
PATH = Path(__file__).resolve().parents[1] / "experiments" / "wsd_s_study.py"


def _load():
    name = "experiments.wsd_s_study"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


study = _load()
QUICK = study.config(True)


# --- accounting and schedules (no simulation) --------------------------------------------------


def test_budgets_and_step_accounting_match_a_hand_count():
    # reference 2,000 / 12,500 / 26,250 / 53,750 divided by 25; spans 500, 550, 1100
    assert study.budgets(QUICK) == (500, 1050, 2150)
    assert study.warmup(QUICK) == 80
    assert study.decay_lengths(QUICK) == (50.0, 55.0, 110.0)
    # branch k forks after E_k - D_k + 1 updates (its window's first update is at the peak)
    assert study.fork_steps(QUICK) == (451, 996, 2150)
    spent = study.steps_spent(QUICK)
    assert spent == {
        "wsd": 2150 + 49 + 54,
        "wsd_s": 2150,
        "cyclic_cosine": 2150,
        "cosine": 500 + 1050 + 2150,
    }
    full = study.config(False)
    assert study.budgets(full) == (1000, 2100, 4300) and study.warmup(full) == 160
    assert study.steps_spent(full) == {
        "wsd": 4300 + 99 + 109,
        "wsd_s": 4300,
        "cyclic_cosine": 4300,
        "cosine": 7400,
    }


def test_wsd_s_rates_equal_a_hand_built_sequence():
    peak = 0.1
    final = QUICK.final_fraction * peak
    ends = [500, 1050, 2150]
    decays = [50, 55, 110]
    hand = []
    for t in range(ends[-1]):
        k = next(i for i, e in enumerate(ends) if t <= e)  # budget k spans (E_{k-1}, E_k]
        start = ends[k] - decays[k]  # its decay window [E_k - D_k, E_k]
        if t <= start:
            rate = peak
        elif t >= ends[k]:
            rate = final
        else:
            rate = final + (peak - final) * (1 - (t - start) / decays[k])
        hand.append(min(rate, peak * t / 80) if t < 80 else rate)  # the linear warmup
    rates = study.rate_table(QUICK, peak)
    wsd_s = rates[study.line_names(QUICK).index("wsd_s")]
    np.testing.assert_allclose(wsd_s, hand, rtol=1e-5, atol=1e-8)
    # the jump back to the peak right after each budget end, from the decayed iterate
    for end in ends[:-1]:
        assert wsd_s[end] == np.float32(final) and wsd_s[end + 1] == np.float32(peak)
    # WSD's branch k has WSD-S's k-th decay window, and the main line is at the peak
    for k, (end, d) in enumerate(zip(ends, decays, strict=True)):
        branch = rates[study.line_names(QUICK).index(f"wsd/{k + 1}")]
        window = slice(end - d, end)
        np.testing.assert_allclose(branch[window], wsd_s[window], rtol=1e-5)
        main = rates[study.line_names(QUICK).index("wsd/3")]
        assert np.all(main[80 : end - d + 1] == np.float32(peak))


# --- the noisy quadratic: every method's expected loss is exact --------------------------------

NQ_CURVATURES = np.array([0.01, 5.0])  # river, hill
NQ_NOISE = np.array([0.0, 0.3])  # a deterministic river, a noisy hill
NQ_START = np.array([3.0, 0.0])
NQ_PEAK = 0.1
NQ_SEEDS = 256
ROUNDING = 1e-5  # relative float32 rounding allowed between the recursion and the simulation
NQ_CFG = dataclasses.replace(QUICK, scale=50.0)  # budgets 250, 525, 1075


@functools.cache
def _quadratic() -> tuple[np.ndarray, np.ndarray]:
    """Exact expected loss and simulated per-seed losses at every (method, budget)."""
    rates = study.rate_table(NQ_CFG, NQ_PEAK)
    lines = study.line_names(NQ_CFG)
    ends = study.budgets(NQ_CFG)
    ds = sweep(
        noisy_quadratic(NQ_CURVATURES, NQ_NOISE, NQ_START),
        optimizers.sgd(),
        study.line_schedules(NQ_CFG, NQ_PEAK),  # one named schedule per line: one compile
        seeds=NQ_SEEDS,
        steps=ends[-1],
        record_every=25,
        horizon="free",  # the lines of earlier budgets are read at E_k < E_K
    )
    loss = ds.loss.astype(np.float64)
    exact = np.empty((len(study.METHODS), len(ends)))
    sim = np.empty((len(study.METHODS), len(ends), NQ_SEEDS))
    expected = [  # every line over the whole run (one shape: one compile), read at E_k
        np.asarray(
            theory.expected_quadratic_loss(
                NQ_CURVATURES,
                theory.sgd_quadratic_moments(NQ_CURVATURES, NQ_NOISE, NQ_START, 0.0, row),
            )
        )
        for row in jnp.asarray(rates)
    ]
    for m, method in enumerate(study.METHODS):
        for k, end in enumerate(ends):
            line = study._method_line(method, k + 1)
            exact[m, k] = expected[lines.index(line)][end]
            sim[m, k] = loss.sel(schedule=line, step=end).transpose("seed").values
    assert not bool(ds.diverged.any())
    return exact, sim


def test_quadratic_method_ordering_is_exact_and_simulated_within_se():
    exact, sim = _quadratic()
    i = {m: study.METHODS.index(m) for m in study.METHODS}
    # budget 1: WSD-S and WSD are the same schedule
    np.testing.assert_allclose(exact[i["wsd_s"], 0], exact[i["wsd"], 0], rtol=1e-5)
    # later budgets: WSD-S's earlier decays cost it river progress (less intrinsic time) and the
    # hill forgets its past, so on a quadratic WSD beats WSD-S, by an exact margin
    for k in (1, 2):
        assert exact[i["wsd"], k] < exact[i["wsd_s"], k] * (1 - 1e-3)
    # WSD beats cyclic cosine and the cosine tuned to the budget at this common peak
    for k in range(3):
        assert exact[i["wsd"], k] < exact[i["cyclic_cosine"], k] * (1 - 1e-2)
        assert exact[i["wsd_s"], k] < exact[i["cyclic_cosine"], k] * (1 - 1e-2)
    # the simulation: means and paired differences (common random numbers) within Z_MAX SEs,
    # plus float32 rounding (the river is noiseless, so WSD-S - WSD is nearly deterministic)
    mean = sim.mean(-1)
    se = sim.std(-1, ddof=1) / np.sqrt(NQ_SEEDS)
    assert np.all(np.abs(mean - exact) < Z_MAX * se + ROUNDING * exact), (mean - exact) / se
    for a, b in (("wsd_s", "wsd"), ("wsd", "cyclic_cosine")):
        diff = sim[i[a]] - sim[i[b]]  # (budget, seed)
        d_se = diff.std(-1, ddof=1) / np.sqrt(NQ_SEEDS)
        gap = diff.mean(-1) - (exact[i[a]] - exact[i[b]])
        assert np.all(np.abs(gap) < Z_MAX * d_se + ROUNDING * exact[i[b]]), gap / d_se
    # and the simulation resolves the exact orderings by themselves (paired z beyond Z_MAX)
    diff = sim[i["wsd_s"], 1:] - sim[i["wsd"], 1:]
    # WSD-S and WSD are bitwise the same run up to the first budget, and the hill forgets their
    # differences, so a difference may be the noiseless river's alone: the same for every seed,
    # no spread, z = +-inf
    with np.errstate(divide="ignore"):
        z = diff.mean(-1) / (diff.std(-1, ddof=1) / np.sqrt(NQ_SEEDS))
    assert np.all(z > Z_MAX), z


# --- the river valley: branches share the main line; the quick study's claims ------------------


VALLEY_CFG = dataclasses.replace(QUICK, landscapes=("river_valley",))


@functools.cache
def _valley_sweep() -> xr.Dataset:
    """The quick study's sweep on the river valley: every line and peak (one compile)."""
    return study.run_landscape(VALLEY_CFG, "river_valley", False)


@functools.cache
def _valley_summary() -> dict:
    part = study.landscape_dataset(VALLEY_CFG, "river_valley", _valley_sweep())
    return study.summarize(study.combine(VALLEY_CFG, [part]), VALLEY_CFG)["river_valley"]


def test_wsd_branches_share_the_main_line_bit_for_bit():
    ds = _valley_sweep().sel(peak=QUICK.valley_peaks[1]).transpose("schedule", "seed", "step")
    main = "wsd/3"
    step = ds.step.values
    for k, fork in enumerate(study.fork_steps(QUICK)[:-1]):
        branch = f"wsd/{k + 1}"
        for var in ("loss", "river_coord", "hill_dist"):
            values = ds[var]
            shared = step <= fork
            np.testing.assert_array_equal(
                values.sel(schedule=branch).values[:, shared],
                values.sel(schedule=main).values[:, shared],
            )
        # ... and not after it: the branch decays, the main line does not
        river = ds.river_coord
        last = river.sel(schedule=branch).values[:, -1], river.sel(schedule=main).values[:, -1]
        assert np.all(last[0] != last[1])


def test_quick_study_orderings_on_the_river_valley():
    """Supported by the quick study (paired z-scores over the evaluation seeds, each method at
    its tuned peak): WSD and WSD-S beat cyclic cosine at every budget.  Not supported: WSD-S
    strictly below WSD (the full run finds it *above*, by ~1.5% at z ~ 3, as the exact quadratic
    predicts); asserted instead is only what holds, that WSD-S *matches* WSD within 5%."""
    summary = _valley_summary()
    paired = summary["paired"]
    for key in ("wsd-cyclic_cosine", "wsd_s-cyclic_cosine"):
        z = np.array([row["z"] for row in paired[key]])
        assert np.all(z < -Z_MAX), (key, z)
    wsd = np.array([c["mean"] for c in summary["final"]["loss"]["wsd"]])
    gap = np.array([row["diff"] for row in paired["wsd_s-wsd"]])
    assert np.all(np.abs(gap) < 0.05 * wsd), gap / wsd
    assert summary["orderings"]["wsd<cyclic_cosine"] == [True, True, True]
    assert summary["diverged_runs"] == 0
