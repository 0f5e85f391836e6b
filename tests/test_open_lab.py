"""The open lab: any optax optimizer, named components, a labelled grid (issue 17).

Each sweep is checked against an independent computation: a plain Python loop of the same optax
transformation per run, or separate sweeps per value / per component.
"""

import functools
import re
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from _reference import optax_loop

from rivervalley import lm, optimizers, runner, schedules
from rivervalley.landscapes import river_valley, toy

STEPS = 40
ROOT = Path(__file__).resolve().parents[1]


def clipped_adamw(learning_rate, b1, weight_decay):
    return optax.chain(
        optax.clip_by_global_norm(0.5),
        optax.adamw(learning_rate, b1=b1, weight_decay=weight_decay),
    )


def test_optax_chain_equals_a_python_loop_per_run():
    """clip_by_global_norm + adamw(weight_decay) with swept b1 and weight decay, each run equal
    to a Python loop of the same optax chain on the same noise (float32 rounding: 1e-5)."""
    landscape = toy()
    schedule = schedules.wsd(0.05, STEPS, 0.25, warmup_steps=4)
    opt = optimizers.from_optax(clipped_adamw, b1=[0.8, 0.95], weight_decay=[0.0, 0.3])
    ds = runner.sweep(landscape, opt, schedule, seeds=[2, 5], steps=STEPS, progress=False)
    assert ds.loss.dims == ("b1", "weight_decay", "seed", "step")
    for b1 in (0.8, 0.95):
        for wd in (0.0, 0.3):
            tx = clipped_adamw(schedule, b1=b1, weight_decay=wd)
            for seed in (2, 5):
                expected = optax_loop(landscape, tx, seed, STEPS)
                got = ds.loss.sel(b1=b1, weight_decay=wd, seed=seed)
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_weight_decay_changes_the_runs():
    """The swept hyperparameter is really used: decay 0 and 0.3 give different losses."""
    opt = optimizers.adamw(weight_decay=[0.0, 0.3])
    ds = runner.sweep(toy(), opt, schedules.constant(0.05), seeds=1, steps=STEPS, progress=False)
    final = ds.loss.isel(step=-1, seed=0)
    assert abs(float(final.sel(weight_decay=0.0) - final.sel(weight_decay=0.3))) > 1e-4


def test_swept_b1_equals_separate_sweeps_and_does_not_recompile():
    landscape = river_valley(4)
    schedule = schedules.cosine(0.02, STEPS)
    swept = runner.sweep(
        landscape, optimizers.adam(b1=[0.5, 0.9]), schedule, seeds=2, steps=STEPS, progress=False
    )
    before = runner.trace_count()
    again = runner.sweep(
        landscape, optimizers.adam(b1=[0.6, 0.7]), schedule, seeds=2, steps=STEPS, progress=False
    )
    assert runner.trace_count() == before  # new values of the same shape: no recompilation
    np.testing.assert_allclose(again.b1, [0.6, 0.7])
    for b1 in (0.5, 0.9):
        alone = runner.sweep(
            landscape, optimizers.adam(b1=b1), schedule, seeds=2, steps=STEPS, progress=False
        )
        np.testing.assert_allclose(swept.loss.sel(b1=b1), alone.loss, rtol=1e-6)


def test_mixed_kind_schedule_dict_compiles_once_and_equals_separate_sweeps():
    landscape = toy()
    members = {
        "constant": schedules.grid(schedules.constant, {"peak": [0.02, 0.05]}),
        "cosine": schedules.grid(schedules.cosine, {"peak": [0.02, 0.05]}, total_steps=STEPS),
        "wsd": schedules.grid(schedules.wsd, {"peak": [0.02, 0.05]}, total_steps=STEPS),
        "wsd_s": schedules.grid(
            schedules.wsd_s, {"peak": [0.02, 0.05]}, decay_ends=[STEPS // 2, STEPS]
        ),
    }
    before = runner.trace_count()
    ds = runner.sweep(landscape, optimizers.sgd(), members, seeds=3, steps=STEPS, progress=False)
    assert runner.trace_count() == before + 1  # one compile for four kinds
    assert ds.loss.dims == ("schedule", "peak", "seed", "step")
    assert ds.schedule.values.tolist() == list(members)
    for name, schedule in members.items():
        alone = runner.sweep(landscape, optimizers.sgd(), schedule, seeds=3, steps=STEPS)
        np.testing.assert_allclose(ds.loss.sel(schedule=name), alone.loss, rtol=1e-6)
        np.testing.assert_allclose(ds.lr.sel(schedule=name), alone.lr, rtol=1e-6)


def test_labelled_dims_sel_and_mean():
    ds = runner.sweep(
        toy(),
        {"sgd": optimizers.sgd(), "momentum": optimizers.sgd(momentum=0.5)},
        {
            "wsd": schedules.wsd([0.02, 0.04], STEPS),
            "cosine": schedules.cosine([0.02, 0.04], STEPS),
        },
        seeds=4,
        steps=STEPS,
        record_every=10,
        progress=False,
    )
    assert ds.loss.dims == ("optimizer", "schedule", "peak", "seed", "step")
    assert dict(ds.loss.sizes) == {"optimizer": 2, "schedule": 2, "peak": 2, "seed": 4, "step": 5}
    mean = ds.loss.mean("seed")
    assert mean.dims == ("optimizer", "schedule", "peak", "step")
    picked = ds.loss.sel(optimizer="momentum", schedule="wsd", peak=0.04)
    np.testing.assert_allclose(
        mean.sel(optimizer="momentum", schedule="wsd", peak=0.04), picked.mean("seed"), rtol=1e-6
    )
    assert ds.loss.attrs["long_name"] and ds.lr.attrs["units"]
    # the two optimizer groups (different optimizer states) each equal their own sweep
    alone = runner.sweep(
        toy(),
        optimizers.sgd(momentum=0.5),
        schedules.cosine(0.02, STEPS),
        seeds=4,
        steps=STEPS,
        record_every=10,
        progress=False,
    )
    np.testing.assert_allclose(
        ds.loss.sel(optimizer="momentum", schedule="cosine", peak=0.02), alone.loss, rtol=1e-6
    )


def test_grid_dims_are_named_after_swept_fields():
    grid = schedules.grid(
        schedules.wsd,
        {"peak": [0.01, 0.02, 0.03], "decay_fraction": [0.1, 0.5]},
        total_steps=STEPS,
    )
    ds = runner.sweep(toy(), optimizers.sgd(), grid, seeds=2, steps=STEPS, progress=False)
    assert ds.loss.dims == ("peak", "decay_fraction", "seed", "step")
    single = runner.sweep(
        toy(), optimizers.sgd(), schedules.wsd(0.03, STEPS, 0.5), seeds=2, steps=STEPS
    )
    np.testing.assert_allclose(ds.loss.sel(peak=0.03, decay_fraction=0.5), single.loss, rtol=1e-6)


def test_built_transformation_runs_with_its_own_rate():
    """``optax.sgd(0.05)`` as given (schedule=None) equals the lab's sgd at a constant 0.05."""
    built = runner.sweep(toy(), optax.sgd(0.05), seeds=2, steps=STEPS, progress=False)
    lab = runner.sweep(
        toy(), optimizers.sgd(), schedules.constant(0.05), seeds=2, steps=STEPS, progress=False
    )
    np.testing.assert_allclose(built.loss, lab.loss, rtol=1e-6)
    assert "lr" not in built
    with pytest.raises(ValueError, match="own learning rate"):
        runner.sweep(toy(), optax.sgd(0.05), schedules.constant(0.05), seeds=1, steps=STEPS)
    with pytest.raises(ValueError, match="needs a schedule"):
        runner.sweep(toy(), optimizers.sgd(), seeds=1, steps=STEPS)


@pytest.mark.parametrize(
    "factory",
    [
        optax.lion,
        functools.partial(optax.contrib.prodigy, weight_decay=0.0),
        lambda learning_rate: optax.chain(
            optax.scale_by_rms(), optax.scale_by_learning_rate(learning_rate)
        ),
    ],
    ids=["lion", "prodigy", "user_chain"],
)
def test_other_optax_factories_match_a_optax_loop(factory):
    landscape = toy()
    schedule = schedules.constant(0.01)
    ds = runner.sweep(
        landscape, optimizers.from_optax(factory), schedule, seeds=[1], steps=20, progress=False
    )
    expected = optax_loop(landscape, factory(schedule), 1, 20)
    np.testing.assert_allclose(ds.loss.sel(seed=1), expected, rtol=1e-5, atol=1e-7)


def test_exact_gradient_is_a_property_of_the_run():
    landscape = toy()
    schedule = schedules.constant(0.05)
    exact = runner.sweep(
        landscape, optimizers.sgd(), schedule, seeds=2, steps=STEPS, gradient="exact"
    )
    # gradient descent is deterministic: both seeds follow the same path ...
    np.testing.assert_array_equal(exact.loss.sel(seed=0), exact.loss.sel(seed=1))
    tx = optax.sgd(schedule)
    np.testing.assert_allclose(
        exact.loss.sel(seed=0), optax_loop(landscape, tx, 0, STEPS, "exact"), rtol=1e-5
    )
    noisy = runner.sweep(landscape, optimizers.sgd(), schedule, seeds=2, steps=STEPS)
    assert not np.allclose(noisy.loss.sel(seed=0), noisy.loss.sel(seed=1))  # ... SGD does not


def distance_to_origin(point, landscape):
    return {"norm": jax.numpy.linalg.norm(point), "first": point[0], "twice": 2 * point}


def test_save_function_outputs_are_variables():
    ds = runner.sweep(
        toy(),
        optimizers.sgd(),
        schedules.constant(0.05),
        seeds=2,
        steps=STEPS,
        record_every=5,
        save=distance_to_origin,
        record_params=True,
        progress=False,
    )
    assert ds.norm.dims == ("seed", "step")
    assert ds.twice.dims == ("seed", "step", "twice_dim0")
    np.testing.assert_allclose(ds.norm, np.linalg.norm(ds.params.values, axis=-1), rtol=1e-6)
    np.testing.assert_allclose(ds.twice, 2 * ds.params.values, rtol=1e-6)


def test_horizon_mismatch_is_an_error_unless_opted_in():
    with pytest.raises(ValueError, match=r"wsd\.total_steps.*steps=20.*horizon='free'"):
        runner.sweep(toy(), optimizers.sgd(), schedules.wsd(0.1, 40), seeds=1, steps=20)
    with pytest.raises(ValueError, match=r"schedule\['late'\]: wsd_s\.decay_ends"):
        runner.sweep(
            toy(),
            optimizers.sgd(),
            {"ok": schedules.wsd(0.1, 20), "late": schedules.wsd_s(0.1, [10, 15])},
            seeds=1,
            steps=20,
        )
    free = runner.sweep(
        toy(), optimizers.sgd(), schedules.wsd(0.1, 10), seeds=1, steps=20, horizon="free"
    )
    np.testing.assert_array_equal(free.lr.isel(seed=0, step=slice(10, None)), 0.0)


FORBIDDEN = {
    "reshape of a run axis": re.compile(r"""["']run["']|\brun=|isel\(run"""),
    "relabelling by np.repeat": re.compile(r"np\.repeat\("),
    "tabulating schedules to batch kinds": re.compile(r"tabulated\(\s*schedules\.rates\("),
}


@pytest.mark.parametrize("pattern", list(FORBIDDEN), ids=list(FORBIDDEN))
def test_no_study_rebuilds_the_grid_by_hand(pattern):
    # the studies and the modules that read sweep results (lm.data's np.repeat labels the
    # contexts of a corpus, not runs)
    sources = [
        *ROOT.glob("experiments/*.py"),
        *ROOT.glob("rivervalley/*.py"),
        *ROOT.glob("notebooks/*.ipynb"),
        *ROOT.glob("benchmarks/*.py"),
    ]
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if FORBIDDEN[pattern].search(line)
    ]
    assert not offenders, f"{pattern}: {offenders}"


def test_landscapes_labelling_observables_differently_are_refused_before_compute():
    """Two bigram models whose corpora have different context classes cannot share the
    ``context_class`` dim of one Dataset: refused (not silently relabelled)."""
    key = jax.random.key(0)
    determined = lm.bigram_table(lm.bigram_corpus(key, 8, [(lm.deterministic(), 1.0)]))
    uniform = lm.bigram_table(lm.bigram_corpus(key, 8, [(lm.uniform(4), 1.0)]))
    before = runner.trace_count()
    with pytest.raises(ValueError, match="differently"):
        runner.sweep(
            {"determined": determined, "uniform": uniform},
            optimizers.adam(),
            schedules.constant(0.01),
            seeds=1,
            steps=2,
        )
    assert runner.trace_count() == before
