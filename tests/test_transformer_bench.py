"""``benchmarks/transformer.py --quick`` runs, and its correctness check holds: the sweep's
recorded losses equal the plain per-run loop's for the same seeds (float32, different program
layouts: a few ulps of a ~4-nat loss)."""

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "transformer.py"


def test_transformer_benchmark_quick(capsys):
    spec = importlib.util.spec_from_file_location("bench_transformer", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--quick"])
    assert out["max_abs_difference"] < 1e-4
    for name in ("sweep", "loop"):
        assert np.isfinite(out[name]["tokens_per_s"]) and out[name]["tokens_per_s"] > 0
    assert np.isfinite(out["ratio"]["median"])
    assert "sweep / loop speed ratio" in capsys.readouterr().out
