"""The main job: `rivervalley demo --quick` runs, writes a figure, and shows the paper's picture."""

import numpy as np
import pytest

from rivervalley import cli, results
from rivervalley.demo import DemoConfig
from rivervalley.theory import stationary_hill_loss


def check_picture(path, config: DemoConfig):
    ds = results.load(path)
    decay_start = config.steps - round(config.decay_fraction * config.steps)

    def mean(name, var, step):
        return float(ds[var].sel(schedule=name, step=step).mean())

    # stable phase: WSD bounces in the hills at about the noise floor of its peak rate ...
    floor = stationary_hill_loss(config.peak, 10.0, 0.3)
    assert 0.5 * floor < mean("wsd", "hill_loss", decay_start) < 3 * floor
    # ... while the river coordinate advances
    assert mean("wsd", "river_coord", decay_start) > mean("wsd", "river_coord", 0) + 2.0
    # decay: the hill loss collapses and the total loss drops to near the river loss
    assert mean("wsd", "hill_loss", config.steps) < 0.1 * mean("wsd", "hill_loss", decay_start)
    end_loss = mean("wsd", "loss", config.steps)
    assert end_loss < 1.1 * mean("wsd", "river_loss", config.steps)
    assert end_loss < 0.7 * mean("constant", "loss", config.steps)
    # the decay revealed progress rather than making it: river coordinate moved little
    moved_in_decay = mean("wsd", "river_coord", config.steps) - mean(
        "wsd", "river_coord", decay_start
    )
    assert moved_in_decay < 0.5 * (
        mean("wsd", "river_coord", decay_start) - mean("wsd", "river_coord", 0)
    )
    return ds


def test_demo_quick(tmp_path, capsys):
    assert cli.main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    figure = tmp_path / "demo_quick.png"
    assert figure.stat().st_size > 10_000
    assert str(figure.resolve()) in printed
    ds = check_picture(tmp_path / "demo_quick.nc", DemoConfig.quick())
    assert set(np.unique(ds.schedule.values)) == {"constant", "cosine", "wsd"}
    assert ds.loss.dims == ("schedule", "seed", "step")  # labelled: one sweep, no flat runs


@pytest.mark.slow
def test_demo_full(tmp_path):
    assert cli.main(["demo", "--out", str(tmp_path), "--no-progress"]) == 0
    ds = check_picture(tmp_path / "demo.nc", DemoConfig())
    wsd_end = float(ds.loss.sel(schedule="wsd").isel(step=-1).mean())
    cosine_end = float(ds.loss.sel(schedule="cosine").isel(step=-1).mean())
    assert wsd_end < cosine_end
