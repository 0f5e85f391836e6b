"""Plots and summaries skip diverged runs instead of averaging frozen or NaN values."""

import numpy as np

from rivervalley import optimizers, results, runner, schedules
from rivervalley.landscapes import toy
from rivervalley.plotting import loss_panels


def test_diverged_runs_are_excluded_and_counted():
    batch = schedules.grid(schedules.constant, {"peak": [0.05, 5.0]})
    ds = runner.sweep(toy(), optimizers.gd(), batch, seeds=2, steps=40, progress=False)
    assert ds.diverged.values.tolist() == [False, False, True, True]
    kept, dropped = results.drop_diverged(ds)
    assert dropped == 2 and kept.sizes["run"] == 2
    np.testing.assert_array_equal(kept.peak, np.array([0.05, 0.05], dtype=np.float32))
    fig = loss_panels({"all": ds, "stable": kept})
    legend = fig.axes[0].get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["all (2 diverged, excluded)", "stable"]
    line = fig.axes[0].get_lines()[0]
    plotted = np.asarray(line.get_ydata(), dtype=float)
    np.testing.assert_allclose(plotted, kept.loss.mean("run").values, rtol=1e-6)
    only_bad = ds.isel(run=ds.diverged.values)
    fig = loss_panels({"bad": only_bad})
    legend = fig.axes[0].get_legend()
    assert legend is not None
    assert "all 2 runs diverged" in legend.get_texts()[0].get_text()
