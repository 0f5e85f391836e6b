r"""Real and simulated loss curves as data: ``(step, lr, loss)`` records in a labelled Dataset.

A *curve* is an ``xarray.Dataset`` with one dim ``step`` (int64 coordinate, units "updates")
and the float64 variables

- ``lr``: the learning rate at that step (dimensionless),
- ``loss``: the loss at that step (nats for a language model's cross-entropy, the default of the
  readers; a simulated curve keeps its landscape's units),

with attrs ``name`` and ``source``.  ``read_csv`` and ``read_json`` load any curve given as
``(step, lr, loss)``; ``multipower_law_runs`` loads the 27 public curves shipped with the
package; ``from_sweep`` turns a ``rivervalley.sweep`` into the same form; ``as_grid`` joins
curves of different lengths into dims ``(curve, step)``.

The Multi-Power Law curves
--------------------------
Luo et al. 2025, "A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules"
(arXiv:2503.12811), published the training-loss curves of three language models (25M, 100M and
400M parameters) under nine schedules each at https://github.com/thu-yao-01-luo/MultiPowerLaw
(MIT licence, Copyright (c) 2025 Kairong Luo).  They ship here byte for byte as package data,
``rivervalley/data/multipower_law/{25M,100M,400M}/NAME.csv``, with the licence text and a
``SOURCE.md`` (commit, citation, SHA-256 of every file).  The authors fit their law to
``MPL_TRAIN`` and hold out ``MPL_TEST`` (the repository's ``src/config.py``).

Measured in the files (all 27):

- header ``step,lr,loss``, CRLF line endings, no missing or non-finite value, integer steps
  strictly increasing, losses to at most four decimals (23 of the 27 curves are not monotone:
  they carry noise);
- one record every 128 steps.  The first record is at step 2160 (the cosine runs, except 400M
  ``cosine_72000``) or 2176 (all others).  Off the 128-step grid: every ``wsdcon_X`` run has a
  record at step 8000 (the switch; 64 steps after 7936, then 8128, ...), and the 25M and 100M
  ``wsd``/``wsdld`` runs jump from 19840 (25M) or 19968 (100M) to 20064;
- no warm-up: the repository's schedules warm up linearly from 0 to the peak over 2160 steps and
  the first record is at or after step 2160, with ``lr`` at the peak;
- peak rate 3e-4 at every size; ``cosine_T`` ends at 3e-5, ``wsd_20000_24000`` decays
  geometrically and ``wsdld_20000_24000`` linearly from 3e-4 at step 20000 to 3e-5 at 24000,
  ``wsdcon_X`` runs at 3e-4 up to step 8000 and at X * 1e-5 from step 8000 on (16000 steps);
- last records: the 24000-step runs end at step 23920 (cosine), 23936 (constant; 400M ``wsd``
  and ``wsdld``) or 23904 (25M and 100M ``wsd``/``wsdld``); the 72000-step runs at 71920
  (cosine, 25M and 100M) or 71936; ``wsdcon_X`` at 15936 (100M, 400M) but 14144 at 25M (95
  records instead of 109).  No file has a record at step 24000, so "the final loss" of a
  24000-step run is the loss at its last record: at 400M 2.7396 (``cosine_24000``, step 23920),
  2.7222 (``wsd_20000_24000``, 23936) and 2.8167 (``constant_24000``, 23936);
- ``lr`` at a record with step ``s`` equals the repository's schedule formula (its
  ``src/lr_schedules.py``) at the 0-based index ``s``, to 1.3e-15 relative (at ``s - 1`` or
  ``s + 1`` it is off by up to 6e-4 of the peak rate, and at ``s - 1`` by 40-90 % of it at a
  ``wsdcon_X`` switch): the record at step 8000 already carries the second-stage rate.  That
  is the indexing of the lab's own convention (``sweep``: the loss at ``step = t`` is the state
  after ``t`` updates and ``lr`` the rate of the next update), but whether the recorded loss
  was measured before or after the update with rate ``lr`` cannot be read off the files.  At
  100M and 400M the three ``wsdcon_X`` runs have the same loss at step 8000 (3.2150 and
  3.0059): none of them shows its new rate yet; at 25M they differ (3.5144 at 7936 in all
  three; 3.5162, 3.5159 and 3.5182 at 8000 for X = 3, 9, 18).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np
import xarray as xr

COLUMNS = ("step", "lr", "loss")

STEP_ATTRS = {"long_name": "step", "units": "updates"}
LR_ATTRS = {"long_name": "learning rate eta_t", "units": "dimensionless"}
LOSS_LONG_NAME = "training loss"

MPL_SIZES = ("25M", "100M", "400M")
MPL_TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
MPL_TEST = (
    "constant_72000",
    "cosine_72000",
    "wsd_20000_24000",
    "wsdld_20000_24000",
    "wsdcon_3",
    "wsdcon_18",
)
MPL_RUNS = MPL_TRAIN + MPL_TEST
MPL_REPOSITORY = "https://github.com/thu-yao-01-luo/MultiPowerLaw"
MPL_COMMIT = "8da9f1902602f3391b971a811e3cc51604541769"
MPL_LICENCE = "MIT, Copyright (c) 2025 Kairong Luo (rivervalley/data/multipower_law/LICENSE)"
MPL_CITATION = (
    "Luo, Wen, Hu, Sun, Liu, Sun, Lyu, Chen 2025: A Multi-Power Law for Loss Curve Prediction "
    "Across Learning Rate Schedules, arXiv:2503.12811"
)
MPL_PEAK_LR = 3e-4
MPL_WARMUP_STEPS = 2160

_DATA = ("data", "multipower_law")
_REDUCERS = ("mean", "median")
_SWEEP_VARIABLES = ("loss", "river_loss", "hill_loss")


# --- building and checking one curve ---------------------------------------------------------


def from_arrays(
    step: Any,
    lr: Any,
    loss: Any,
    *,
    name: str,
    source: str = "",
    loss_units: str = "nats",
) -> xr.Dataset:
    """A curve from three equally long 1-D sequences: steps (integers, strictly increasing,
    non-negative), learning rates (finite, non-negative) and losses (finite, in
    ``loss_units``).  Returns a Dataset with dims ``("step",)``; raises ``ValueError`` naming
    the first bad value."""
    return _curve(
        {"step": list(np.ravel(step)), "lr": list(np.ravel(lr)), "loss": list(np.ravel(loss))},
        name=name,
        source=source,
        loss_units=loss_units,
        where=f"curve {name!r}",
        row=lambda i: f"index {i}",
    )


def _curve(
    columns: Mapping[str, Sequence[Any]],
    *,
    name: str,
    source: str,
    loss_units: str,
    where: str,
    row: Callable[[int], str],
) -> xr.Dataset:
    """Check the columns ``step``, ``lr``, ``loss`` (equal lengths) and build the curve;
    ``row(i)`` names record ``i`` in error messages."""
    lengths = {key: len(columns[key]) for key in COLUMNS}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{where}: columns of different lengths {lengths}")
    if lengths["step"] == 0:
        raise ValueError(f"{where}: no records")
    values = {key: _numbers(where, key, columns[key], row) for key in COLUMNS}
    step = values["step"]
    for i, value in enumerate(step):
        if value != math.floor(value):
            raise ValueError(f"{where}: step at {row(i)} is not an integer: {value!r}")
        if value < 0:
            raise ValueError(f"{where}: step at {row(i)} is negative: {value!r}")
    for i in range(1, len(step)):
        if step[i] <= step[i - 1]:
            raise ValueError(
                f"{where}: steps not strictly increasing at {row(i)}: step {int(step[i])} "
                f"follows step {int(step[i - 1])}"
            )
    for i, value in enumerate(values["lr"]):
        if value < 0:
            raise ValueError(
                f"{where}: lr at {row(i)} (step {int(step[i])}) is negative: {value!r}"
            )
    return xr.Dataset(
        {
            "lr": ("step", np.asarray(values["lr"], np.float64), dict(LR_ATTRS)),
            "loss": (
                "step",
                np.asarray(values["loss"], np.float64),
                {"long_name": LOSS_LONG_NAME, "units": loss_units},
            ),
        },
        coords={"step": ("step", np.asarray(step, np.int64), dict(STEP_ATTRS))},
        attrs={"name": name, "source": source},
    )


def _numbers(where: str, key: str, raw: Sequence[Any], row: Callable[[int], str]) -> list[float]:
    """The finite numbers of one column (numbers or numeric strings; bools are refused)."""
    out = []
    for i, value in enumerate(raw):
        number = None
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(
            value, bool | np.bool_
        ):
            number = float(value)
        if number is None:
            raise ValueError(f"{where}: {key} at {row(i)} is not a number: {value!r}")
        if not math.isfinite(number):
            raise ValueError(f"{where}: {key} at {row(i)} is {number!r} (need a finite number)")
        out.append(number)
    return out


# --- files -----------------------------------------------------------------------------------


def read_csv(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    source: str | None = None,
    loss_units: str = "nats",
) -> xr.Dataset:
    """Load a curve from a CSV file with a header row naming the columns ``step``, ``lr`` and
    ``loss`` (any order; other columns are ignored; comma-separated, LF or CRLF lines).

    Returns a Dataset with dims ``("step",)``: coordinate ``step`` (int64, updates), variables
    ``lr`` (float64, dimensionless) and ``loss`` (float64, ``loss_units``: nats by default),
    attrs ``name`` (default: the file's stem) and ``source`` (default: the path).  Raises
    ``ValueError`` naming the file and the line for a missing column, a value that is not a
    finite number (NaN, inf, empty), a non-integer or negative step, steps that are not
    strictly increasing or a negative rate.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        text = f.read()
    stem = os.path.splitext(os.path.basename(path))[0]
    return _parse_csv(
        text,
        name=stem if name is None else name,
        source=path if source is None else source,
        loss_units=loss_units,
        where=path,
    )


def _parse_csv(text: str, *, name: str, source: str, loss_units: str, where: str) -> xr.Dataset:
    rows = [
        (number, fields)
        for number, fields in enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
        if any(field.strip() for field in fields)
    ]
    if not rows:
        raise ValueError(f"{where}: empty file (need a header row step,lr,loss)")
    header = [field.strip() for field in rows[0][1]]
    for key in COLUMNS:
        if key not in header:
            raise ValueError(
                f"{where}: missing column {key!r} (header: {', '.join(header)}; "
                f"need {', '.join(COLUMNS)})"
            )
        if header.count(key) > 1:
            raise ValueError(f"{where}: column {key!r} appears {header.count(key)} times")
    records = rows[1:]
    for number, fields in records:
        if len(fields) != len(header):
            raise ValueError(
                f"{where}: line {number} has {len(fields)} fields, the header {len(header)}"
            )
    columns = {key: [fields[header.index(key)] for _, fields in records] for key in COLUMNS}
    return _curve(
        columns,
        name=name,
        source=source,
        loss_units=loss_units,
        where=where,
        row=lambda i: f"line {records[i][0]}",
    )


def read_json(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    source: str | None = None,
    loss_units: str = "nats",
) -> xr.Dataset:
    """Load a curve from a JSON file in one of two layouts:

    - columns: an object of three equally long arrays,
      ``{"step": [0, 10, ...], "lr": [0.1, 0.1, ...], "loss": [2.3, 2.1, ...]}``
      (other keys are ignored);
    - records: an array of objects, ``[{"step": 0, "lr": 0.1, "loss": 2.3}, ...]``.

    Values are JSON numbers (numeric strings are accepted too).  Returns the same Dataset as
    ``read_csv`` (dims ``("step",)``; ``lr`` dimensionless, ``loss`` in ``loss_units``; attrs
    ``name``, default the file's stem, and ``source``, default the path) and raises
    ``ValueError`` for the same faults, naming the key or record.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
    stem = os.path.splitext(os.path.basename(path))[0]
    name = stem if name is None else name
    source = path if source is None else source
    if isinstance(data, Mapping):
        for key in COLUMNS:
            if key not in data:
                raise ValueError(
                    f"{path}: missing key {key!r} (keys: {', '.join(map(str, data))}; need "
                    f"{', '.join(COLUMNS)}, each an array)"
                )
            if not isinstance(data[key], list):
                raise ValueError(
                    f"{path}: {key!r} must be an array, got {type(data[key]).__name__}"
                )
        return _curve(
            {key: data[key] for key in COLUMNS},
            name=name,
            source=source,
            loss_units=loss_units,
            where=path,
            row=lambda i: f"index {i}",
        )
    if isinstance(data, list):
        for i, record in enumerate(data):
            if not isinstance(record, Mapping):
                raise ValueError(f"{path}: record {i} is not an object: {record!r}")
            for key in COLUMNS:
                if key not in record:
                    raise ValueError(f"{path}: record {i} has no {key!r}: {record!r}")
        return _curve(
            {key: [record[key] for record in data] for key in COLUMNS},
            name=name,
            source=source,
            loss_units=loss_units,
            where=path,
            row=lambda i: f"record {i}",
        )
    raise ValueError(
        f"{path}: need an object of arrays step/lr/loss or an array of records, "
        f"got {type(data).__name__}"
    )


def write_csv(curve: xr.Dataset, path: str | os.PathLike) -> None:
    """Write a curve's ``step``, ``lr`` and ``loss`` (dims ``("step",)``) as CSV with a header
    row; floats as their shortest exact decimal, so ``read_csv`` reads back the same values."""
    step, lr, loss = _columns(curve)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("step,lr,loss\n")
        for s, r, v in zip(step, lr, loss, strict=True):
            f.write(f"{s},{r!r},{v!r}\n")


def write_json(curve: xr.Dataset, path: str | os.PathLike, *, layout: str = "columns") -> None:
    """Write a curve's ``step``, ``lr`` and ``loss`` as JSON in ``read_json``'s ``"columns"``
    (default) or ``"records"`` layout."""
    step, lr, loss = _columns(curve)
    if layout == "columns":
        data: Any = {"step": step, "lr": lr, "loss": loss}
    elif layout == "records":
        data = [{"step": s, "lr": r, "loss": v} for s, r, v in zip(step, lr, loss, strict=True)]
    else:
        raise ValueError(f"layout: need 'columns' or 'records', got {layout!r}")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, allow_nan=False)
        f.write("\n")


def _columns(curve: xr.Dataset) -> tuple[list[int], list[float], list[float]]:
    for key in ("lr", "loss"):
        if key not in curve.data_vars or curve[key].dims != ("step",):
            raise ValueError(f"curve: need a variable {key!r} with dims ('step',)")
    lr = [float(r) for r in curve["lr"].values]
    loss = [float(v) for v in curve["loss"].values]
    for key, values in (("lr", lr), ("loss", loss)):
        if not all(math.isfinite(v) for v in values):
            raise ValueError(
                f"curve: {key} has non-finite values (a diverged record?), which the readers "
                "refuse; drop them first, e.g. curve.dropna('step')"
            )
    return [int(s) for s in curve["step"].values], lr, loss


# --- the shipped Multi-Power Law curves -----------------------------------------------------


def mpl_size(size: str | int) -> str:
    """``"25M"``, ``"100M"`` or ``"400M"`` from any of those, their lower case or 25/100/400."""
    text = str(size).strip().upper()
    text = text if text.endswith("M") else f"{text}M"
    if isinstance(size, bool) or text not in MPL_SIZES:
        raise ValueError(
            f"size: {size!r} is not one of the Multi-Power Law sizes {', '.join(MPL_SIZES)} "
            "(or 25, 100, 400)"
        )
    return text


def _schedule_info(run: str) -> dict[str, Any]:
    """The schedule family and length of a Multi-Power Law run, from its name."""
    family = run.split("_")[0]
    total = 16000 if family == "wsdcon" else int(run.split("_")[-1])
    return {"schedule": family, "total_steps": total}


def multipower_law_runs(size: str | int) -> dict[str, xr.Dataset]:
    """The nine Multi-Power Law curves of one model size (``MPL_SIZES``, or 25/100/400), keyed by
    run name in the order ``MPL_TRAIN + MPL_TEST``.

    Each is a curve (dims ``("step",)``: ``lr`` dimensionless, ``loss`` the training loss in
    nats; see the module docstring for what the records are) with attrs ``name`` (the run),
    ``size``, ``schedule`` (family: constant, cosine, wsd, wsdld or wsdcon), ``split`` (train or
    test, as the authors fit), ``total_steps`` (the run's planned length), ``peak_lr``,
    ``warmup_steps`` (not recorded), ``source`` (the file's URL at the pinned commit),
    ``licence`` and ``citation``.
    """
    size = mpl_size(size)
    root = resources.files("rivervalley").joinpath(*_DATA, size)
    runs = {}
    for run in MPL_RUNS:
        text = root.joinpath(f"{run}.csv").read_bytes().decode("utf-8-sig")
        url = f"{MPL_REPOSITORY}/blob/{MPL_COMMIT}/loss_curve_repo/csv_{size[:-1]}/{run}.csv"
        curve = _parse_csv(
            text, name=run, source=url, loss_units="nats", where=f"{size}/{run}.csv (package)"
        )
        curve.attrs = {
            "name": run,
            "size": size,
            **_schedule_info(run),
            "split": "train" if run in MPL_TRAIN else "test",
            "peak_lr": MPL_PEAK_LR,
            "warmup_steps": MPL_WARMUP_STEPS,
            "source": url,
            "licence": MPL_LICENCE,
            "citation": MPL_CITATION,
        }
        runs[run] = curve
    return runs


# --- several curves --------------------------------------------------------------------------


def as_grid(runs: Mapping[str, xr.Dataset]) -> xr.Dataset:
    """Join curves (each with dims ``("step",)``) into one Dataset with dims ``("curve", "step")``.

    ``curve`` is labelled by the mapping's keys (in order); ``step`` is the sorted union of all
    curves' steps, and a curve without a record at a step (or without a variable) reads NaN
    there.  Attrs equal in every curve stay attrs; scalar attrs that differ (``name``,
    ``schedule``, ``split``, ``total_steps``, ...) become coordinates along ``curve``.
    """
    if not runs:
        raise ValueError("as_grid: no curves")
    names = [str(key) for key in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"as_grid: run names collide as strings: {names}")
    curves = list(runs.values())
    for key, curve in zip(names, curves, strict=True):
        if not isinstance(curve, xr.Dataset) or set(curve.dims) != {"step"}:
            dims = tuple(curve.dims) if isinstance(curve, xr.Dataset) else type(curve).__name__
            raise ValueError(f"as_grid: run {key!r} is not a curve with dims ('step',): {dims}")
    common, varying = _common_and_varying([dict(curve.attrs) for curve in curves])
    scalar_coords = [
        {c: curve[c].values.item() for c in curve.coords if curve[c].ndim == 0} for curve in curves
    ]
    coord_common, coord_varying = _common_and_varying(scalar_coords)
    variables = list(dict.fromkeys(v for curve in curves for v in curve.data_vars))
    steps = np.unique(np.concatenate([curve["step"].values for curve in curves]))
    data = {}
    for variable in variables:
        grid = np.full((len(curves), len(steps)), np.nan)
        having = []
        for i, curve in enumerate(curves):
            if variable in curve.data_vars:
                grid[i, np.searchsorted(steps, curve["step"].values)] = curve[variable].values
                having.append(dict(curve[variable].attrs))
        data[variable] = (("curve", "step"), grid, _common_and_varying(having)[0])
    coords: dict[str, Any] = {
        "curve": ("curve", np.asarray(names)),
        "step": ("step", steps.astype(np.int64), dict(curves[0]["step"].attrs)),
    }
    taken = set(variables) | {"curve", "step"}
    for key, value in coord_common.items():
        coords[key] = value
        taken.add(key)
    for key, values in {**coord_varying, **varying}.items():
        if key not in taken:
            coords[key] = ("curve", np.asarray(values))
            taken.add(key)
    return xr.Dataset(data, coords=coords, attrs=common)


def _common_and_varying(
    attrs: Sequence[Mapping[Any, Any]],
) -> tuple[dict[Any, Any], dict[Any, list[Any]]]:
    """Of a list of attribute dicts: the entries equal in all, and the scalar (str or number)
    entries present in all but not equal (key -> values in order); others are dropped."""
    common: dict[Any, Any] = {}
    varying: dict[Any, list[Any]] = {}
    keys = dict.fromkeys(key for entry in attrs for key in entry)
    for key in keys:
        if not all(key in entry for entry in attrs):
            continue
        values = [entry[key] for entry in attrs]
        if all(_same(value, values[0]) for value in values):
            common[key] = values[0]
        elif all(
            isinstance(value, str | int | float | np.number) and not isinstance(value, bool)
            for value in values
        ):
            varying[key] = values
    return common, varying


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return type(a) is type(b) and a == b


# --- simulated curves ------------------------------------------------------------------------


def from_sweep(
    ds: xr.Dataset, *, reduce: str = "mean", name: str = "sweep"
) -> xr.Dataset | dict[str, xr.Dataset]:
    """A ``rivervalley.sweep`` result as curves: ``loss``, ``river_loss`` and ``hill_loss``
    (those recorded) reduced over ``seed`` by ``reduce`` (``"mean"`` or ``"median"``, computed
    in the sweep's precision, then stored as float64), ``lr`` the schedule's rate (the same in
    every seed).

    ``ds`` has dims ``(..., seed, step)`` (``sweep``'s convention: ``step = t`` is the state
    after ``t`` updates, ``lr`` the rate of the next update) and needs ``lr`` (a sweep with a
    schedule).  A record at which any seed had diverged reads NaN (the reduction does not skip
    it).  With no dims besides ``seed`` and ``step`` the result is one curve with dims
    ``("step",)`` and attrs ``name``; otherwise a dict, one curve per grid point, keyed by the
    point's coordinate values in dim order joined by ``","`` (``"wsd"``, ``"wsd,0.05"``; a dim
    without coordinate gives ``dim=index``), each keeping them as scalar coordinates.  Every
    curve keeps the sweep's attrs and variable units (the landscape's ``loss_units``) and adds
    ``source``, ``reduce``, ``n_seeds`` and ``diverged_seeds``.
    """
    if reduce not in _REDUCERS:
        raise ValueError(f"reduce: need one of {', '.join(_REDUCERS)}, got {reduce!r}")
    if "loss" not in ds.data_vars or ds["loss"].dims[-2:] != ("seed", "step"):
        raise ValueError(
            "from_sweep: need a sweep result with a variable loss of dims (..., seed, step)"
        )
    if "lr" not in ds.data_vars:
        raise ValueError(
            "from_sweep: the sweep has no lr (a sweep without a schedule): a curve needs one"
        )
    lr = ds["lr"].transpose(*ds["loss"].dims)
    first = lr.isel(seed=0, drop=True)
    if not bool(((lr == first) | (lr.isnull() & first.isnull())).all()):
        raise ValueError("from_sweep: lr differs between seeds; a curve has one rate per step")
    variables = {}
    for key in _SWEEP_VARIABLES:
        if key in ds.data_vars:
            reducer = getattr(ds[key], reduce)
            variables[key] = reducer("seed", skipna=False, keep_attrs=True).astype(np.float64)
    variables["lr"] = first.astype(np.float64)
    reduced = xr.Dataset(variables)
    reduced = reduced.drop_vars([c for c in reduced.coords if "seed" in reduced[c].dims])
    n_seeds = ds.sizes["seed"]
    diverged = (
        ds["diverged"].sum("seed")
        if "diverged" in ds.data_vars
        else xr.zeros_like(first.isel(step=0, drop=True), dtype=np.int64)
    )
    attrs = {**ds.attrs, "source": "rivervalley.sweep", "reduce": reduce, "n_seeds": n_seeds}
    grid_dims = [d for d in ds["loss"].dims if d not in ("seed", "step")]
    if not grid_dims:
        curve = reduced.transpose("step")
        curve.attrs = {**attrs, "name": name, "diverged_seeds": int(diverged)}
        return curve
    out: dict[str, xr.Dataset] = {}
    shape = [ds.sizes[d] for d in grid_dims]
    for index in np.ndindex(*shape):
        point = dict(zip(grid_dims, index, strict=True))
        labels = [str(ds[d].values[i]) if d in ds.coords else f"{d}={i}" for d, i in point.items()]
        key = ",".join(labels)
        if key in out:
            raise ValueError(
                f"from_sweep: two grid points are both named {key!r} (repeated coordinate values)"
            )
        curve = reduced.isel(point).transpose("step")
        curve.attrs = {
            **attrs,
            "name": key,
            "diverged_seeds": int(diverged.isel(point)),
        }
        out[key] = curve
    return out
