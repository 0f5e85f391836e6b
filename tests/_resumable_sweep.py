"""A checkpointed sweep run as a separate process by ``test_faults.py`` (the leading underscore
keeps pytest from collecting it); the tests also import its configuration.

    python tests/_resumable_sweep.py OUT.nc REPORT.json [--checkpoint CKPT.npz] [--pause SECONDS]

writes the package's code fingerprint to ``REPORT.json`` (``code``), runs the sweep in chunks of
``CHUNK_STEPS`` updates (resuming from ``CKPT.npz`` if it holds a checkpoint of this sweep), saves
the dataset to ``OUT.nc`` with ``results.save`` and completes the report with ``resumed_done``
(records restored from the checkpoint, ``null`` if it started afresh) and ``chunks`` (chunks
computed by this process).
``--pause`` sleeps after every checkpoint write, so a test can kill the process between chunks.
The package itself is not modified: the checkpoint module's ``load``/``save`` are wrapped here.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from rivervalley import checkpoint as checkpoint_io
from rivervalley import optimizers, results, runner, schedules
from rivervalley.landscapes import toy

STEPS = 200
RECORD_EVERY = 2
CHUNK_STEPS = 7 * RECORD_EVERY  # 100 records in chunks of 7: 14 full chunks and one of 2
N_RECORDS = STEPS // RECORD_EVERY
PEAKS = (0.05, 0.1)
SEEDS = (0, 1)


def sweep(
    *,
    peaks: Sequence[float] = PEAKS,
    seeds: Sequence[int] = SEEDS,
    chunk_steps: int | None = None,
    checkpoint: str | Path | None = None,
) -> xr.Dataset:
    """The sweep: SGD on the toy valley under WSD schedules, 2 peaks x 2 seeds = 4 runs."""
    schedule = schedules.grid(schedules.wsd, {"peak": list(peaks)}, total_steps=STEPS)
    return runner.sweep(
        toy(),
        optimizers.sgd(),
        schedule,
        seeds=list(seeds),
        steps=STEPS,
        record_every=RECORD_EVERY,
        chunk_steps=chunk_steps,
        checkpoint=checkpoint,
        progress=False,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("report", type=Path)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"code": results.code_fingerprint(), "resumed_done": None, "chunks": 0}
    args.report.write_text(json.dumps(report))  # the code fingerprint, even if killed later
    real_load, real_save = checkpoint_io.load, checkpoint_io.save

    def load(*a: Any, **k: Any) -> Any:
        restored = real_load(*a, **k)
        report["resumed_done"] = None if restored is None else restored[2]
        return restored

    def save(*a: Any, **k: Any) -> None:
        real_save(*a, **k)
        report["chunks"] += 1
        time.sleep(args.pause)

    checkpoint_io.load = load
    checkpoint_io.save = save
    ds = sweep(chunk_steps=CHUNK_STEPS, checkpoint=args.checkpoint)
    results.save(ds, args.out)
    args.report.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
