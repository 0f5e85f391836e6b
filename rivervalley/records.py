r"""Turning a sweep's records into a labelled ``xarray.Dataset``.

The runner produces, per recorded variable, one array of shape ``(nL, nO, nS, n_seeds,
n_steps, *extra)``: the flattened (member, batch entry) pairs of the landscape, optimizer and
schedule (``rivervalley.axes.Layout``, row-major over each component's dims), the seeds and the
record steps.  ``to_dataset`` unflattens each component into its dims, so the result has dims

    (*landscape dims, *optimizer dims, *schedule dims, seed, step, *extra)

with the coordinates of every swept field, and ``diverged`` / ``diverged_step`` over every dim
but ``step``.  It is the only place that knows the run order.  Variables carry ``long_name`` and
``units`` attributes (``VARIABLES``), so ``ds.loss.plot()`` labels its axes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from rivervalley import __version__
from rivervalley.axes import Layout

RECORDED = ("loss", "river_loss", "hill_loss", "river_coord", "hill_dist", "lr")
AVERAGE_RECORDED = ("loss", "river_loss", "hill_loss")  # per iterate average ``a``: ``a_loss``, ...

LOSS = "{loss}"  # placeholder for the landscape's ``loss_units`` (nats for the language models)
# name -> (long_name, units) of the lab's variables; ``a_<name>`` of an iterate average ``a``
# (``ema``, ``window``) reads "<a> average: <long_name>"
VARIABLES: dict[str, tuple[str, str]] = {
    "loss": ("loss L(w)", LOSS),
    "river_loss": ("river loss L(r(w))", LOSS),
    "hill_loss": ("hill loss L(w) - L(r(w))", LOSS),
    "river_coord": ("river coordinate s", "dimensionless"),
    "hill_dist": ("distance from the river |w - r(w)|", "dimensionless"),
    "lr": ("learning rate eta_t", "dimensionless"),
    "y_loss": ("loss at the gradient point y", LOSS),
    "sharpness": ("sharpness (top Hessian eigenvalue)", LOSS),
    "params": ("iterate w", "dimensionless"),
    "diverged": ("run diverged", "bool"),
    "diverged_step": ("step at which the run diverged (-1: never)", "updates"),
    "step": ("step", "updates"),
    "seed": ("seed", "PRNG seed"),
}
AVERAGE_LABELS = {"ema": "EMA", "window": "window average"}


def variable_attrs(name: str, loss_units: str = "dimensionless") -> dict[str, str]:
    """``long_name`` and ``units`` of a recorded variable (a user's own get its name); losses
    are in ``loss_units`` (the landscape's)."""
    prefix, _, rest = name.partition("_")
    if name in VARIABLES:
        long_name, units = VARIABLES[name]
    elif prefix in AVERAGE_LABELS and rest in VARIABLES:
        long_name, units = VARIABLES[rest]
        long_name = f"{AVERAGE_LABELS[prefix]}: {long_name}"
    else:
        long_name, units = name.replace("_", " "), "as returned by the record function"
    return {"long_name": long_name, "units": units.replace(LOSS, loss_units)}


def to_dataset(
    data: Mapping[str, np.ndarray],
    diverged_at: np.ndarray,
    layouts: Sequence[Layout],
    seeds: np.ndarray,
    steps: np.ndarray,
    *,
    extra_dims: Mapping[str, tuple[str, Sequence[str]]] | None = None,
    attrs: Mapping[str, Any] | None = None,
    loss_units: str = "dimensionless",
) -> xr.Dataset:
    """The labelled dataset of a sweep.

    ``data[name]`` has shape ``(nL, nO, nS, len(seeds), len(steps), *extra)`` (``n*`` the
    layouts' sizes); ``diverged_at`` shape ``(nL, nO, nS, len(seeds))``; ``extra_dims`` names the
    extra axis of a non-scalar variable (e.g. per-class losses: ``("context_class", labels)``),
    else it is ``<name>_dim0`` (``param`` for iterates); ``loss_units`` are the landscape's."""
    extra_dims = dict(extra_dims or {})
    dims: list[str] = []
    sizes: list[int] = []
    coords: dict[str, Any] = {}
    for lay in layouts:
        dims += lay.dims
        sizes += lay.sizes
        if lay.names is None:
            coords[lay.component] = lay.kind
        else:
            coords[lay.component] = (lay.component, list(lay.names))
        for name, (cdims, values) in lay.coords.items():
            coords[name] = (cdims, values)
    grid = (*sizes, len(seeds))
    run_dims = (*dims, "seed")
    coords["seed"] = ("seed", np.asarray(seeds), variable_attrs("seed"))
    coords["step"] = ("step", np.asarray(steps), variable_attrs("step"))
    variables: dict[str, Any] = {}
    for name, values in data.items():
        values = np.asarray(values)
        values = values.reshape((*grid, *values.shape[4:]))
        extra = values.ndim - len(grid) - 1
        if name in extra_dims:
            dim, labels = extra_dims[name]
            coords[dim] = list(labels)
            inner = (dim,)
        elif name.endswith("params") and extra == 1:
            inner = ("param",)
        else:
            inner = tuple(f"{name}_dim{i}" for i in range(extra))
        variables[name] = ((*run_dims, "step", *inner), values, variable_attrs(name, loss_units))
    diverged_at = np.asarray(diverged_at, dtype=np.int64).reshape(grid)
    variables["diverged"] = (run_dims, diverged_at >= 0, variable_attrs("diverged"))
    variables["diverged_step"] = (run_dims, diverged_at, variable_attrs("diverged_step"))
    ds = xr.Dataset(variables, coords=coords)
    ds.attrs.update({"rivervalley_version": __version__, **(attrs or {})})
    return ds


def config_attr(config: Mapping[str, Any]) -> str:
    """The JSON stored in ``attrs["config"]``: everything that produced the dataset."""
    return json.dumps(config, sort_keys=True, default=str)
