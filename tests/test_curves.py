"""rivervalley.curves: loss curves as (step, lr, loss) data, the shipped Multi-Power Law curves,
and sweeps in the same form."""

import hashlib
import json
import re
from importlib import resources

import numpy as np
import pytest
import xarray as xr

import rivervalley
from rivervalley import curves, landscapes, optimizers, schedules

DATA = resources.files("rivervalley").joinpath("data", "multipower_law")
ROW = re.compile(
    r"^\| `(?P<file>\d+M/\w+\.csv)` \| `csv_\d+/\w+\.csv` \| (?P<split>train|test) "
    r"\| (?P<rows>\d+) \| (?P<first>\d+) \| (?P<last>\d+) \| (?P<final>[\d.]+) "
    r"\| `(?P<sha>[0-9a-f]{64})` \|$"
)


def _example(name="example"):
    # awkward floats (shortest reprs of several lengths, extremes) and a step beyond int32
    return curves.from_arrays(
        [0, 1, 7, 128, 2**40],
        [0.0, 0.1 + 0.2, 3e-5 * 1.0000000000000002, 1 / 3, 1e-300],
        [2.302585092994046, 2.0, -0.5, 1e-12, 1.7976931348623157e308],
        name=name,
        source="unit test",
    )


# --- readers and writers ----------------------------------------------------------------------


def test_a_curve_has_the_documented_form():
    curve = _example()
    assert curve["loss"].dims == curve["lr"].dims == ("step",)
    assert curve["step"].dtype == np.int64
    assert curve["lr"].dtype == curve["loss"].dtype == np.float64
    assert curve["loss"].attrs["units"] == "nats"
    assert curve["lr"].attrs["units"] == "dimensionless"
    assert curve["step"].attrs["units"] == "updates"
    assert curve.attrs == {"name": "example", "source": "unit test"}


def test_csv_round_trip(tmp_path):
    curve = _example()
    path = tmp_path / "example.csv"
    curves.write_csv(curve, path)
    xr.testing.assert_identical(curves.read_csv(path, source="unit test"), curve)
    # defaults: the name is the file's stem, the source its path
    back = curves.read_csv(path)
    assert back.attrs == {"name": "example", "source": str(path)}


@pytest.mark.parametrize("layout", ["columns", "records"])
def test_json_round_trip(tmp_path, layout):
    curve = _example()
    path = tmp_path / "example.json"
    curves.write_json(curve, path, layout=layout)
    shape = json.loads(path.read_text())
    assert isinstance(shape, dict if layout == "columns" else list)
    xr.testing.assert_identical(curves.read_json(path, source="unit test"), curve)


def test_csv_any_column_order_crlf_extra_columns_and_json_layouts_agree(tmp_path):
    csv_path = tmp_path / "run.csv"
    csv_path.write_bytes(
        b"\xef\xbb\xbfloss, step ,tokens,lr\r\n2.5,10,1e6,0.001\r\n2.25,20,2e6,5e-4\r\n"
    )
    columns = tmp_path / "columns.json"
    columns.write_text('{"step": [10, 20], "lr": [0.001, 5e-4], "loss": [2.5, 2.25], "x": 1}')
    records = tmp_path / "records.json"
    records.write_text(
        '[{"step": 10, "lr": 0.001, "loss": 2.5}, {"loss": 2.25, "lr": 5e-4, "step": 20}]'
    )
    read = [
        curves.read_csv(csv_path, name="run", source="s"),
        curves.read_json(columns, name="run", source="s"),
        curves.read_json(records, name="run", source="s"),
    ]
    for curve in read:
        xr.testing.assert_identical(curve, read[0])
    np.testing.assert_array_equal(read[0]["step"], [10, 20])
    np.testing.assert_array_equal(read[0]["lr"], [0.001, 5e-4])
    np.testing.assert_array_equal(read[0]["loss"], [2.5, 2.25])


def test_loss_units_can_be_named(tmp_path):
    path = tmp_path / "toy.csv"
    path.write_text("step,lr,loss\n0,0.1,1.0\n")
    assert curves.read_csv(path, loss_units="dimensionless")["loss"].attrs["units"] == (
        "dimensionless"
    )


BAD_CSV = {
    "missing column 'lr'": "step,loss\n0,1.0\n",
    "missing column 'step'": "Step,lr,loss\n0,0.1,1.0\n",
    "not strictly increasing at line 4: step 10 follows step 20": (
        "step,lr,loss\n0,0.1,3\n20,0.1,2\n10,0.1,1\n"
    ),
    "not strictly increasing at line 3: step 5 follows step 5": (
        "step,lr,loss\n5,0.1,3\n5,0.1,2\n"
    ),
    "loss at line 3 is nan": "step,lr,loss\n0,0.1,3\n1,0.1,nan\n",
    "lr at line 2 is inf": "step,lr,loss\n0,inf,3\n",
    "loss at line 2 is not a number: ''": "step,lr,loss\n0,0.1,\n",
    "lr at line 2 is not a number: 'fast'": "step,lr,loss\n0,fast,3\n",
    "step at line 2 is not an integer: 1.5": "step,lr,loss\n1.5,0.1,3\n",
    "step at line 2 is negative": "step,lr,loss\n-1,0.1,3\n",
    "lr at line 3 (step 1) is negative": "step,lr,loss\n0,0.1,3\n1,-0.1,3\n",
    "line 3 has 2 fields, the header 3": "step,lr,loss\n0,0.1,3\n1,0.1\n",
    "column 'loss' appears 2 times": "step,lr,loss,loss\n0,0.1,3,3\n",
    "no records": "step,lr,loss\n",
    "empty file": "\n",
}


@pytest.mark.parametrize("message", list(BAD_CSV))
def test_bad_csv_is_refused_with_a_clear_message(tmp_path, message):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV[message])
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        curves.read_csv(path)
    assert str(path) in str(info.value)


BAD_JSON = {
    "missing key 'loss'": '{"step": [0], "lr": [0.1]}',
    "'lr' must be an array": '{"step": [0], "lr": 0.1, "loss": [1]}',
    "columns of different lengths": '{"step": [0, 1], "lr": [0.1], "loss": [1, 2]}',
    "record 1 has no 'lr'": '[{"step": 0, "lr": 0.1, "loss": 1}, {"step": 1, "loss": 1}]',
    "record 0 is not an object": "[[0, 0.1, 1]]",
    "loss at record 1 is nan": (
        '[{"step": 0, "lr": 0.1, "loss": 1}, {"step": 1, "lr": 0.1, "loss": NaN}]'
    ),
    "lr at index 0 is not a number: None": '{"step": [0], "lr": [null], "loss": [1]}',
    "step at index 0 is not a number: True": '{"step": [true], "lr": [0.1], "loss": [1]}',
    "not strictly increasing at index 1": '{"step": [3, 2], "lr": [0.1, 0.1], "loss": [1, 1]}',
    "need an object of arrays": "3",
    "not valid JSON": "{step: 1}",
}


@pytest.mark.parametrize("message", list(BAD_JSON))
def test_bad_json_is_refused_with_a_clear_message(tmp_path, message):
    path = tmp_path / "bad.json"
    path.write_text(BAD_JSON[message])
    with pytest.raises(ValueError, match=re.escape(message)):
        curves.read_json(path)


def test_writers_refuse_non_finite_records_and_unknown_layouts(tmp_path):
    curve = _example()
    holed = curve.copy(deep=True)
    holed["loss"][1] = np.nan
    with pytest.raises(ValueError, match="loss has non-finite values"):
        curves.write_csv(holed, tmp_path / "x.csv")
    with pytest.raises(ValueError, match="layout"):
        curves.write_json(curve, tmp_path / "x.json", layout="rows")


# --- the shipped Multi-Power Law curves -------------------------------------------------------


def _source_rows():
    text = DATA.joinpath("SOURCE.md").read_text(encoding="utf-8")
    return [m.groupdict() for line in text.splitlines() if (m := ROW.match(line))]


def test_shipped_files_match_the_sha256_in_source_md():
    rows = _source_rows()
    assert len(rows) == 27
    assert sorted(row["file"] for row in rows) == sorted(
        f"{size}/{run}.csv" for size in curves.MPL_SIZES for run in curves.MPL_RUNS
    )
    for row in rows:
        data = DATA.joinpath(*row["file"].split("/")).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha"], row["file"]
    text = DATA.joinpath("SOURCE.md").read_text(encoding="utf-8")
    licence = DATA.joinpath("LICENSE").read_bytes()
    assert hashlib.sha256(licence).hexdigest() in text
    assert licence.startswith(b"MIT License") and b"Copyright (c) 2025 Kairong Luo" in licence
    assert curves.MPL_COMMIT in text and curves.MPL_REPOSITORY in text


def test_source_md_table_describes_the_loaded_curves():
    for row in _source_rows():
        size, run = row["file"][: -len(".csv")].split("/")
        curve = curves.multipower_law_runs(size)[run]
        assert curve.sizes["step"] == int(row["rows"])
        assert int(curve["step"][0]) == int(row["first"])
        assert int(curve["step"][-1]) == int(row["last"])
        assert f"{float(curve['loss'][-1]):.4f}" == row["final"]
        assert curve.attrs["split"] == row["split"]


def test_all_27_runs_load_with_the_authors_split():
    assert len(set(curves.MPL_TRAIN)) == 3 and len(set(curves.MPL_TEST)) == 6
    assert not set(curves.MPL_TRAIN) & set(curves.MPL_TEST)
    assert curves.MPL_TRAIN == ("cosine_24000", "constant_24000", "wsdcon_9")
    for size in curves.MPL_SIZES:
        runs = curves.multipower_law_runs(size)
        assert tuple(runs) == curves.MPL_TRAIN + curves.MPL_TEST
        for run, curve in runs.items():
            assert curve.attrs["name"] == run
            assert curve.attrs["size"] == size
            assert curve.attrs["split"] == ("train" if run in curves.MPL_TRAIN else "test")
            assert curve.attrs["source"].startswith(curves.MPL_REPOSITORY)
            assert curve.attrs["source"].endswith(f"/csv_{size[:-1]}/{run}.csv")
            assert "MIT" in curve.attrs["licence"]
            assert "2503.12811" in curve.attrs["citation"]
            assert curve["loss"].attrs["units"] == "nats"
            assert bool(np.isfinite(curve["loss"]).all())


@pytest.mark.parametrize("size", [25, "25", "25M", "25m", " 25M "])
def test_sizes_are_accepted_in_several_spellings(size):
    assert curves.mpl_size(size) == "25M"


@pytest.mark.parametrize("size", [50, "25B", "", True])
def test_unknown_sizes_are_refused(size):
    with pytest.raises(ValueError, match="not one of the Multi-Power Law sizes"):
        curves.multipower_law_runs(size)


def test_known_facts_of_the_400m_runs():
    runs = curves.multipower_law_runs("400M")
    # the numbers: final losses of the 24000-step runs (at their last record)
    finals = {run: round(float(runs[run]["loss"][-1]), 4) for run in runs}
    assert finals["cosine_24000"] == 2.7396
    assert finals["wsd_20000_24000"] == 2.7222
    assert finals["constant_24000"] == 2.8167
    assert int(runs["cosine_24000"]["step"][-1]) == 23920
    assert int(runs["wsd_20000_24000"]["step"][-1]) == 23936
    assert int(runs["constant_24000"]["step"][-1]) == 23936
    # decaying the rate beats keeping it: WSD < cosine < constant at the end
    assert finals["wsd_20000_24000"] < finals["cosine_24000"] < finals["constant_24000"]


def _schedule(run, step):
    """The schedules the files were written with (module docstring), after the warm-up."""
    t = np.asarray(step, np.float64)
    peak, end = curves.MPL_PEAK_LR, 3e-5
    family, *numbers = run.split("_")
    if family == "constant":
        return np.full_like(t, peak)
    if family == "cosine":
        total, w = int(numbers[0]), curves.MPL_WARMUP_STEPS
        return end + 0.5 * (peak - end) * (1 + np.cos(np.pi * (t - w) / (total - w)))
    if family == "wsdcon":
        return np.where(t < 8000, peak, int(numbers[0]) * 1e-5)
    u = np.clip((t - 20000) / 4000, 0, None)
    if family == "wsd":  # geometric decay
        return peak ** (1 - u) * end**u
    return peak * (1 - u) + end * u  # wsdld: linear decay


@pytest.mark.parametrize("size", ["25M", "100M", "400M"])
def test_measured_facts_of_the_records(size):
    for run, curve in curves.multipower_law_runs(size).items():
        step = curve["step"].values
        assert step[0] in (2160, 2176)  # no warm-up record
        assert step[0] >= curves.MPL_WARMUP_STEPS
        assert float(curve["lr"][0]) == pytest.approx(curves.MPL_PEAK_LR, rel=1e-6)
        assert float(curve["lr"].max()) <= curves.MPL_PEAK_LR
        gaps = np.diff(step)
        assert np.mean(gaps == 128) > 0.98
        assert set(np.unique(gaps)) <= {64, 96, 128, 224}
        # lr at a record with step s is the schedule at index s (not s - 1, not s + 1)
        np.testing.assert_allclose(curve["lr"], _schedule(run, step), rtol=2e-15, atol=0)
        if run.startswith("wsdcon"):
            assert 8000 in step
            assert float(curve["lr"].sel(step=8000)) == int(run.split("_")[1]) * 1e-5
        assert step[-1] < curve.attrs["total_steps"]


def test_as_grid_outer_joins_on_step():
    runs = curves.multipower_law_runs(400)
    grid = curves.as_grid(runs)
    assert grid["loss"].dims == ("curve", "step")
    assert list(grid["curve"].values) == list(runs)
    union = np.unique(np.concatenate([c["step"].values for c in runs.values()]))
    np.testing.assert_array_equal(grid["step"], union)
    for run, curve in runs.items():
        row = grid.sel(curve=run)
        np.testing.assert_array_equal(row["loss"].sel(step=curve["step"]), curve["loss"])
        np.testing.assert_array_equal(row["lr"].sel(step=curve["step"]), curve["lr"])
        absent = ~np.isin(grid["step"].values, curve["step"].values)
        assert bool(np.isnan(row["loss"].values[absent]).all())
    # equal attrs stay attrs, differing scalar attrs label the runs
    assert grid.attrs["size"] == "400M"
    assert list(grid["split"].values) == [runs[r].attrs["split"] for r in runs]
    assert list(grid["total_steps"].values) == [runs[r].attrs["total_steps"] for r in runs]
    assert grid["loss"].attrs["units"] == "nats"


def test_as_grid_on_hand_made_curves_and_its_errors():
    a = curves.from_arrays([0, 2], [0.1, 0.1], [1.0, 0.5], name="a")
    b = curves.from_arrays([1, 2, 3], [0.2, 0.2, 0.2], [3.0, 2.0, 1.0], name="b")
    grid = curves.as_grid({"a": a, "b": b})
    np.testing.assert_array_equal(grid["step"], [0, 1, 2, 3])
    np.testing.assert_array_equal(grid["loss"], [[1.0, np.nan, 0.5, np.nan], [np.nan, 3, 2, 1]])
    assert list(grid["name"].values) == ["a", "b"]
    with pytest.raises(ValueError, match="no curves"):
        curves.as_grid({})
    with pytest.raises(ValueError, match="not a curve"):
        curves.as_grid({"a": a, "g": grid})


# --- simulated curves -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_sweep():
    return rivervalley.sweep(
        landscapes.toy(),
        optimizers.sgd(),
        schedules.wsd(0.05, 40),
        seeds=3,
        steps=40,
        progress=False,
    )


def test_from_sweep_is_the_seed_mean(toy_sweep):
    curve = curves.from_sweep(toy_sweep)
    assert isinstance(curve, xr.Dataset)
    assert curve["loss"].dims == ("step",)
    np.testing.assert_array_equal(curve["step"], toy_sweep["step"])
    for key in ("loss", "river_loss", "hill_loss"):
        np.testing.assert_array_equal(curve[key], toy_sweep[key].mean("seed"))
        assert curve[key].dtype == np.float64
        assert curve[key].attrs == toy_sweep[key].attrs
    np.testing.assert_array_equal(curve["lr"], toy_sweep["lr"].isel(seed=0))
    assert float(curve["lr"][0]) == pytest.approx(0.05) and float(curve["lr"][-1]) == 0.0
    assert curve.attrs["n_seeds"] == 3 and curve.attrs["reduce"] == "mean"
    assert curve.attrs["diverged_seeds"] == 0 and curve.attrs["name"] == "sweep"
    median = curves.from_sweep(toy_sweep, reduce="median")
    assert isinstance(median, xr.Dataset)
    np.testing.assert_array_equal(median["loss"], toy_sweep["loss"].median("seed"))


def test_a_sweep_curve_joins_and_round_trips_like_a_real_one(toy_sweep, tmp_path):
    curve = curves.from_sweep(toy_sweep)
    assert isinstance(curve, xr.Dataset)
    path = tmp_path / "toy.csv"
    curves.write_csv(curve, path)
    back = curves.read_csv(path, loss_units="dimensionless")
    np.testing.assert_array_equal(back["loss"], curve["loss"])
    np.testing.assert_array_equal(back["lr"], curve["lr"])
    grid = curves.as_grid({"toy": curve, "cosine": curves.multipower_law_runs(25)["cosine_24000"]})
    assert grid.sizes == {"curve": 2, "step": 41 + 171}
    assert "units" not in grid["loss"].attrs  # dimensionless vs nats: dropped, not guessed


def test_from_sweep_gives_one_curve_per_grid_point():
    ds = rivervalley.sweep(
        landscapes.toy(),
        optimizers.sgd(),
        schedules.grid(schedules.wsd, {"peak": [0.05, 0.1]}, total_steps=20),
        seeds=2,
        steps=20,
        progress=False,
    )
    out = curves.from_sweep(ds)
    assert isinstance(out, dict)
    assert list(out) == ["0.05", "0.1"]
    for i, (key, curve) in enumerate(out.items()):
        assert curve["loss"].dims == ("step",)
        assert curve.attrs["name"] == key
        np.testing.assert_array_equal(curve["loss"], ds["loss"].isel(peak=i).mean("seed"))
        assert float(curve["lr"][0]) == pytest.approx(float(ds["peak"][i]))
        assert float(curve["peak"]) == float(ds["peak"][i])  # the point stays a coordinate


def test_from_sweep_errors(toy_sweep):
    with pytest.raises(ValueError, match="reduce"):
        curves.from_sweep(toy_sweep, reduce="max")
    with pytest.raises(ValueError, match="no lr"):
        curves.from_sweep(toy_sweep.drop_vars("lr"))
    with pytest.raises(ValueError, match=re.escape("dims (..., seed, step)")):
        curves.from_sweep(toy_sweep.isel(seed=0))
    uneven = toy_sweep.copy(deep=True)
    uneven["lr"][1, 3] = 0.5
    with pytest.raises(ValueError, match="lr differs between seeds"):
        curves.from_sweep(uneven)


def test_from_sweep_marks_diverged_records_nan_and_counts_the_seeds():
    ds = rivervalley.sweep(
        landscapes.toy(),
        optimizers.sgd(),
        schedules.constant(0.5),
        seeds=2,
        steps=20,
        progress=False,
    )
    curve = curves.from_sweep(ds)
    assert isinstance(curve, xr.Dataset)
    assert curve.attrs["diverged_seeds"] == 2
    first = int(ds["diverged_step"].min())
    assert bool(curve["loss"].isel(step=slice(first, None)).isnull().all())
    assert bool(np.isfinite(curve["loss"].isel(step=slice(None, first))).all())
    np.testing.assert_array_equal(curve["lr"], 0.5)  # the rate stays defined
