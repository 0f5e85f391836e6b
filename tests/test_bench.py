"""The benchmark harness measures what it says (speeds are reported, never asserted)."""

import json

import jax
import numpy as np
import pytest

from rivervalley import bench, optimizers, runner, schedules
from rivervalley.landscapes import river_valley
from rivervalley.numpy_reference import numpy_sweep


def test_numpy_reference_matches_the_runner_for_gd():
    valley = river_valley(16, spectrum_exponent=1.0)
    schedule = schedules.wsd(0.05, 200, 0.2)
    lrs = np.asarray(jax.vmap(schedule)(np.arange(200)))
    ref = numpy_sweep(valley, "gd", lrs, runs=3, record_every=20)
    ds = runner.sweep(
        valley,
        optimizers.sgd(),
        schedule,
        seeds=3,
        steps=200,
        record_every=20,
        gradient="exact",
        progress=False,
    )
    # the same float32 maths, evaluated in a different order: ~10 ulp
    np.testing.assert_allclose(ds.loss.transpose("seed", "step").values, ref, rtol=2e-6)


def test_measurements_and_results_file(tmp_path, monkeypatch):
    tiny = bench.Workload(dim=8, optimizer="sgd", runs=8, steps=100)
    monkeypatch.setattr(bench, "measure", bench._measure)  # in-process: no spawn in tests
    monkeypatch.setattr(bench, "LOOP_RUNS", 2)
    path = bench.run([tiny], tmp_path)
    rows = json.loads(path.read_text())["rows"]
    assert len(rows) == 1
    res = rows[0]["results"]
    assert set(res) == {"sweep", "loop", "numpy"}
    assert res["loop"]["runs_timed"] == 2 and res["sweep"]["runs_timed"] == 8
    for r in res.values():
        assert r["run_steps_per_s"] > 0 and r["seconds"] > 0
    expected = res["sweep"]["run_steps_per_s"] / res["numpy"]["run_steps_per_s"]
    assert rows[0]["ratio"]["numpy"] == expected


def test_bigram_workload_runs_sweep_and_loop_only(tmp_path, monkeypatch):
    tiny = bench.Workload(dim=8, optimizer="sgd", runs=4, steps=50, landscape="bigram")
    assert tiny.name == "bigram V=8 sgd runs=4 steps=50"
    assert not tiny.supports("numpy")
    monkeypatch.setattr(bench, "measure", bench._measure)  # in-process: no spawn in tests
    monkeypatch.setattr(bench, "LOOP_RUNS", 2)
    path = bench.run([tiny], tmp_path)
    row = json.loads(path.read_text())["rows"][0]
    assert row["workload"]["landscape"] == "bigram" and row["name"] == tiny.name
    res = row["results"]
    assert set(res) == {"sweep", "loop"} and row["not_applicable"] == ["numpy"]
    assert set(row["ratio"]) == {"loop"}
    assert res["loop"]["runs_timed"] == 2 and res["sweep"]["runs_timed"] == 4
    for r in res.values():
        assert r["run_steps_per_s"] > 0 and r["seconds"] > 0
    assert row["ratio"]["loop"] == res["sweep"]["run_steps_per_s"] / res["loop"]["run_steps_per_s"]
    with pytest.raises(ValueError, match="does not apply"):
        bench._measure("numpy", tiny)
    with pytest.raises(ValueError, match="landscape"):
        bench.Workload(dim=8, optimizer="sgd", runs=4, steps=50, landscape="nope")


def test_gd_workload_is_sgd_on_the_exact_gradient():
    gd = bench.Workload(dim=8, optimizer="gd", runs=2, steps=20)
    _, optimizer, _ = bench._problem(gd)
    assert gd.gradient == "exact" and optimizer.name == "sgd"
    assert bench.Workload(dim=8, optimizer="sgd", runs=2, steps=20).gradient == "stochastic"
    res = bench._measure("loop", gd)
    assert res["runs_timed"] == 2 and res["run_steps_per_s"] > 0
