"""Plots and summaries skip diverged runs instead of averaging frozen or NaN values."""

import numpy as np

from rivervalley import optimizers, results, runner, schedules
from rivervalley.landscapes import toy
from rivervalley.plotting import loss_panels


def test_diverged_runs_are_excluded_and_counted():
    batch = schedules.grid(schedules.constant, {"peak": [0.05, 5.0]})
    ds = runner.sweep(
        toy(), optimizers.sgd(), batch, seeds=2, steps=40, gradient="exact", progress=False
    )
    assert ds.diverged.values.tolist() == [[False, False], [True, True]]  # (peak, seed)
    kept, dropped = results.drop_diverged(ds)
    # the diverged runs are masked over all their steps: the runs left are those with records
    left = np.isfinite(kept.loss.isel(step=0).values)
    assert dropped == 2 and int(left.sum()) == 2
    peaks = np.broadcast_to(kept.peak.values[:, None], left.shape)[left]
    np.testing.assert_array_equal(peaks, [0.05, 0.05])  # float32 peaks labelled by their decimal
    stable = ds.sel(peak=ds.peak[~ds.diverged.any("seed")])  # the runs that never diverged
    fig = loss_panels({"all": ds, "stable": stable})
    legend = fig.axes[0].get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["all (2 diverged, excluded)", "stable"]
    line = fig.axes[0].get_lines()[0]
    plotted = np.asarray(line.get_ydata(), dtype=float)
    np.testing.assert_allclose(plotted, kept.loss.mean(["peak", "seed"]).values, rtol=1e-6)
    np.testing.assert_allclose(plotted, stable.loss.mean(["peak", "seed"]).values, rtol=1e-6)
    only_bad = ds.sel(peak=ds.peak[ds.diverged.all("seed")])
    fig = loss_panels({"bad": only_bad})
    legend = fig.axes[0].get_legend()
    assert legend is not None
    assert "all 2 runs diverged" in legend.get_texts()[0].get_text()
    # a labelled Dataset is split along a dim into one curve per coordinate value
    fig = loss_panels(ds, by="peak")
    legend = fig.axes[0].get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["0.05", "5.0 (all 2 runs diverged)"]
