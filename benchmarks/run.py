"""Benchmark the sweep runner against a per-run loop and NumPy (same as ``rivervalley bench``).

    python benchmarks/run.py [--quick] [--out DIR]

Default: 13 workloads (d = 2, 64, 1024 with GD, SGD and Adam at 1024 runs x 1000 steps; 16 and
4096 runs; 10^4 and 10^5 steps), about 10 minutes on 2 CPU cores; results in
``outputs/bench/bench.json``.  Every measurement runs in a fresh process.
"""

import sys

from rivervalley.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
