"""Benchmark the sweep runner against a per-run loop and NumPy (same as ``rivervalley bench``).

    python benchmarks/run.py [--quick] [--out DIR]

Default: 16 workloads (the river valley with d = 2, 64, 1024 and GD, SGD and Adam at 1024 runs x
1000 steps; 16 and 4096 runs; 10^4 and 10^5 steps; the bigram language-model toy with V = 64, SGD
and Adam at 256 runs x 1000 steps and SGD at 1024 runs), results in ``outputs/bench/bench.json``.
``--quick``: two small valley workloads and one small bigram one (a smoke run).  Every measurement
runs in a fresh process.
"""

import sys

from rivervalley.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
