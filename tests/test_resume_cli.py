"""``rivervalley demo`` killed with SIGKILL mid-run and restarted with the same command resumes
from its checkpoints and produces exactly the result of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rivervalley import results

COMMAND = [sys.executable, "-m", "rivervalley.cli", "demo", "--quick", "--no-progress", "--out"]


def run_to_completion(out):
    done = subprocess.run([*COMMAND, str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return results.load(out / "demo_quick.nc"), done.stderr


@pytest.mark.slow  # ~1 min; test_faults kills and resumes a sweep subprocess in the default suite
def test_killed_demo_resumes_to_the_same_result(tmp_path):
    killed_out = tmp_path / "killed"
    proc = subprocess.Popen([*COMMAND, str(killed_out)], stdout=subprocess.DEVNULL)
    checkpoints = killed_out / ".demo_quick.nc.checkpoints"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoints.exists() and any(checkpoints.glob("sweep-*.npz")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the demo finished before a checkpoint could be seen"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = sorted(checkpoints.glob("sweep-*.npz"))
    assert saved and not (killed_out / "demo_quick.nc").exists()
    resumed, log = run_to_completion(killed_out)
    assert log.count("sweep: resumed from") == len(saved)  # each finished sweep was reused
    assert not checkpoints.exists()  # cleaned up once the result is saved
    fresh, fresh_log = run_to_completion(tmp_path / "fresh")
    assert "resumed" not in fresh_log
    for name in fresh.data_vars:
        np.testing.assert_array_equal(resumed[name].values, fresh[name].values)
