"""Multi-device sweeps: the runs sharded over 8 simulated host devices give results
identical to the single-device sweep.  Runs in a subprocess, because the device count is fixed
when JAX initialises (``XLA_FLAGS=--xla_force_host_platform_device_count=8``)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from rivervalley import optimizers, runner, schedules
    from rivervalley.landscapes import river_valley
    assert jax.device_count() == 8, jax.devices()
    valley = river_valley(16, spectrum_exponent=1.0)
    batch = schedules.grid(schedules.wsd, {"peak": [0.02, 0.05, 0.1]}, total_steps=60)
    args = (valley, optimizers.sgd(momentum=0.5), batch)
    kw = dict(seeds=7, steps=60, record_every=5, progress=False)  # 21 runs: padded to 24
    one = runner.sweep(*args, **kw)
    eight = runner.sweep(*args, devices=8, **kw)
    for name in one.variables:
        assert np.array_equal(one[name].values, eight[name].values), name
    assert one.loss.dims == eight.loss.dims == ("peak", "seed", "step")
    runs = eight.sizes["peak"] * eight.sizes["seed"]
    assert runs == one.diverged.size == 21
    print("IDENTICAL", runs)
    """
)


def test_sharded_sweep_equals_single_device():
    env = os.environ | {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "IDENTICAL 21" in out.stdout
