"""The lab's figure style and standard panels (matplotlib; figures are saved, never shown, so
any backend works: Agg in scripts and tests, inline in Jupyter)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rivervalley.results import drop_diverged

STYLE: dict[Any, Any] = {
    "figure.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
}

# one colour and display name per schedule kind, shared by every figure
SCHEDULE_COLORS = {
    "constant": "tab:blue",
    "linear": "tab:purple",
    "cosine": "tab:orange",
    "wsd": "tab:green",
    "wsd_s": "tab:red",
    "cyclic_cosine": "tab:brown",
}
SCHEDULE_NAMES = {
    "constant": "constant",
    "linear": "linear decay",
    "cosine": "cosine",
    "wsd": "WSD",
    "wsd_s": "WSD-S",
    "cyclic_cosine": "cyclic cosine",
}

LABELS = {
    "loss": "total loss $L(w)$",
    "river_loss": "river loss $L(r(w))$",
    "hill_loss": "hill loss $L(w) - L(r(w))$",
    "river_coord": "river coordinate $s$",
    "hill_dist": "hill distance $\\|w - r(w)\\|$",
    "lr": "learning rate $\\eta_t$",
    "excess_loss": "excess loss $L(w) - H$ (nats)",
    "class_excess": "excess loss of the class (nats)",
    "sharpness": "top Hessian eigenvalue $\\lambda_{max}$",
}


# every figure is written as a raster for viewing and a vector file for papers
FIGURE_FORMATS = ("png", "pdf")


def save_figure(fig: Figure, path: str | Path, *, close: bool = True) -> list[Path]:
    """Write ``fig`` as ``path`` with each suffix of ``FIGURE_FORMATS`` (PNG, then PDF), creating
    the folder; close the figure; return the paths (the PNG first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    paths = [path.with_suffix(f".{fmt}") for fmt in FIGURE_FORMATS]
    for target in paths:
        fig.savefig(target)
    if close:
        plt.close(fig)
    return paths


def _reduced_dims(da: xr.DataArray, over: str | Sequence[str] | None) -> list[str]:
    """The dims a curve against ``step`` reduces: ``over``, or (``None``) every dim but
    ``step`` (the seeds, and any other dim left in a group: all its runs pooled)."""
    if "step" not in da.dims:
        raise ValueError(f"band: need a dim 'step' to plot against, got dims {da.dims}")
    if over is None:
        dims = [str(d) for d in da.dims if d != "step"]
    else:
        dims = [over] if isinstance(over, str) else list(over)
    missing = [d for d in dims if d not in da.dims]
    if missing:
        raise ValueError(f"band: no dim {missing} to reduce over; the data has dims {da.dims}")
    left = [d for d in da.dims if d != "step" and d not in dims]
    if left:
        raise ValueError(
            f"band: dims {left} would remain besides 'step'; select them (e.g. "
            f"da.sel({left[0]}=...)) or reduce over them too (over=...)"
        )
    return dims


def band(
    ax: Axes,
    da: xr.DataArray,
    *,
    label: str,
    color: str | None = None,
    quantiles: tuple[float, float] = (0.25, 0.75),
    over: str | Sequence[str] | None = None,
) -> None:
    """Mean over the runs as a line and a quantile band (default: interquartile) against
    ``step``.  The runs are the entries of the dims ``over`` (default: every dim but ``step``,
    e.g. ``seed``); NaN entries (a diverged run's records) are skipped."""
    dims = _reduced_dims(da, over)
    mean = da.mean(dims)
    lo, hi = (da.quantile(q, dim=dims) for q in quantiles)
    (line,) = ax.plot(da["step"], mean, label=label, color=color, lw=1.6)
    ax.fill_between(da["step"], lo, hi, color=line.get_color(), alpha=0.2, lw=0)


def as_groups(
    data: Mapping[str, xr.Dataset] | xr.Dataset, by: str = "schedule"
) -> dict[str, xr.Dataset]:
    """Named groups of runs: a dict as it is, or a Dataset split along its dim ``by`` (one group
    per coordinate value, e.g. per schedule of a sweep's named axis); a Dataset without that dim
    is one group, named by its scalar coordinate ``by`` if it has one."""
    if not isinstance(data, xr.Dataset):
        return dict(data)
    if by in data.dims:
        return {str(value): data.sel({by: value}) for value in data[by].values}
    name = str(data[by].values) if by in data.coords else by
    return {name: data}


def loss_panels(
    groups: Mapping[str, xr.Dataset] | xr.Dataset,
    variables: tuple[str, ...] = ("loss", "river_loss", "hill_loss"),
    *,
    by: str = "schedule",
    title: str | None = None,
    log: bool = True,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """One panel per variable, one mean+band curve per group against ``step``, each group's runs
    (its seeds, and any other dim it has but ``step``) pooled.  ``groups``: a dict of name ->
    Dataset (e.g. ``{"wsd": ds.sel(schedule="wsd")}``), or a Dataset split along its dim ``by``
    (default ``schedule``: one curve per schedule).  A group named by a schedule kind gets its
    ``SCHEDULE_NAMES`` label and ``SCHEDULE_COLORS`` colour.  Diverged runs are excluded from
    the statistics and counted in the legend.  Draws into ``axes`` (one per variable) when
    given, else into a new figure."""
    named = as_groups(groups, by)
    with plt.rc_context(STYLE):
        if axes is None:
            _, axes = plt.subplots(1, len(variables), figsize=(4.2 * len(variables), 3.6))
        axes = list(np.atleast_1d(np.asarray(axes, dtype=object)))
        fig = cast(Figure, axes[0].figure)
        for ax, var in zip(axes, variables, strict=True):
            for name, ds in named.items():
                kept, n_diverged = drop_diverged(ds)
                n_runs = _run_count(ds[var])
                shown = SCHEDULE_NAMES.get(name, name)
                label = shown if not n_diverged else f"{shown} ({n_diverged} diverged, excluded)"
                if n_diverged < n_runs:
                    band(ax, kept[var], label=label, color=SCHEDULE_COLORS.get(name))
                else:
                    ax.plot([], [], label=f"{shown} (all {n_diverged} runs diverged)")
            ax.set_xlabel("step (updates)")
            ax.set_ylabel(LABELS.get(var, var))
            if log:
                ax.set_yscale("log")
        axes[0].legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


def _run_count(da: xr.DataArray) -> int:
    """Number of runs (entries of every dim but ``step``) in ``da``."""
    return int(np.prod([size for dim, size in da.sizes.items() if dim != "step"], dtype=np.int64))
