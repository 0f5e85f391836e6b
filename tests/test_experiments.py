"""Every experiment script runs with ``--quick`` and writes its figures; a second run re-plots
from the cache without recomputing."""

import importlib.util
import sys
from pathlib import Path

import pytest

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.py"))


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"experiments.{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_experiment_quick(path, tmp_path, monkeypatch):
    module = load(path)
    figures = module.main(["--quick", "--out", str(tmp_path), "--no-progress"])
    assert figures and all(f.stat().st_size > 10_000 for f in figures)
    calls = []
    monkeypatch.setattr(module, "compute", lambda *a: calls.append(a))
    module.main(["--quick", "--out", str(tmp_path), "--no-progress"])
    assert calls == [], "the second run should re-plot from the cache"
