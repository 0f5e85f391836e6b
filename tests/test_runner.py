"""The sweep runner: batching, determinism, key convention, compilation, records, persistence."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from _reference import optax_loop

from rivervalley import optimizers, results, runner, schedules
from rivervalley.landscapes import noisy_quadratic, river_valley, toy

STEPS = 60


def reference_run(landscape, optimizer, schedule, seed, steps, mode="stochastic"):
    """The optimizer's optax transformation with ``schedule`` as a plain Python loop."""
    return optax_loop(landscape, optimizer.transform(schedule), seed, steps, mode)


@pytest.mark.parametrize(
    ("optimizer", "mode"),
    [
        (optimizers.sgd(), "stochastic"),
        (optimizers.sgd(momentum=0.8), "stochastic"),
        (optimizers.adam(), "stochastic"),
        (optimizers.sgd(), "exact"),
    ],
)
def test_sweep_matches_independent_loop(optimizer, mode):
    landscape = toy()
    schedule = schedules.wsd(0.05, STEPS, 0.3, warmup_steps=5)
    ds = runner.sweep(
        landscape, optimizer, schedule, seeds=[3, 11], steps=STEPS, progress=False, gradient=mode
    )
    for seed in [3, 11]:
        expected = reference_run(landscape, optimizer, schedule, seed, STEPS, mode)
        # float32 arithmetic in a different order (fused, vectorised): relative 1e-5 is ~100 ulp
        np.testing.assert_allclose(ds.loss.sel(seed=seed), expected, rtol=1e-5, atol=1e-7)


def test_vmap_over_batch_equals_loop_of_single_runs():
    landscape = river_valley(8, spectrum_exponent=1.0)
    batch = schedules.grid(
        schedules.wsd, {"peak": [0.02, 0.05], "decay_fraction": [0.1, 0.5]}, total_steps=STEPS
    )
    ds = runner.sweep(landscape, optimizers.sgd(), batch, seeds=3, steps=STEPS, progress=False)
    assert dict(ds.loss.sizes) == {"peak": 2, "decay_fraction": 2, "seed": 3, "step": STEPS + 1}
    for i, peak in enumerate([0.02, 0.05]):
        for j, fraction in enumerate([0.1, 0.5]):
            single = schedules.wsd(peak, STEPS, fraction)
            alone = runner.sweep(
                landscape, optimizers.sgd(), single, seeds=3, steps=STEPS, progress=False
            )
            got = ds.isel(peak=i, decay_fraction=j)
            assert float(got.peak) == pytest.approx(peak)
            assert float(got.decay_fraction) == pytest.approx(fraction)
            np.testing.assert_array_equal(got.seed, [0, 1, 2])
            np.testing.assert_allclose(got.loss, alone.loss, rtol=1e-6)


def test_landscape_and_optimizer_batches_form_a_product():
    quads = jax.tree_util.tree_map(
        lambda *xs: jnp.stack(xs),
        noisy_quadratic([1.0, 0.1], 0.5, 1.0),
        noisy_quadratic([2.0, 0.1], 0.5, 1.0),
    )
    momenta = optimizers.sgd(momentum=[0.0, 0.5])
    ds = runner.sweep(quads, momenta, schedules.constant(0.1), seeds=2, steps=10, progress=False)
    assert ds.loss.dims == ("curvatures", "momentum", "seed", "step")
    assert ds.loss.shape[:3] == (2, 2, 2)
    assert ds.curvatures.dims == ("curvatures", "curvatures_dim0")
    np.testing.assert_array_equal(ds.curvatures.values[:, 0], [1, 2])
    np.testing.assert_allclose(ds.momentum.values, [0, 0.5])
    np.testing.assert_array_equal(ds.seed.values, [0, 1])
    # momentum 0 with heavy ball == plain SGD on the same noise: runs 0 and 2 differ, 0 == plain
    plain = runner.sweep(
        noisy_quadratic([1.0, 0.1], 0.5, 1.0),
        optimizers.sgd(),
        schedules.constant(0.1),
        seeds=2,
        steps=10,
        progress=False,
    )
    first = ds.loss.isel(curvatures=0)
    np.testing.assert_allclose(first.sel(momentum=0.0), plain.loss, rtol=1e-6)
    assert not np.allclose(first.sel(momentum=0.0), first.sel(momentum=0.5))


def test_same_key_same_result_and_seeds_differ():
    args = (toy(), optimizers.sgd(), schedules.cosine(0.1, STEPS))
    a = runner.sweep(*args, seeds=[7, 8], steps=STEPS, progress=False)
    b = runner.sweep(*args, seeds=[7, 8], steps=STEPS, progress=False)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert not np.array_equal(a.loss.sel(seed=7), a.loss.sel(seed=8))


def test_records_and_lr_coordinates():
    schedule = schedules.wsd_s(0.1, [40, 80], 0.25, warmup_steps=10)
    ds = runner.sweep(toy(), optimizers.sgd(), schedule, seeds=1, steps=80, record_every=8)
    np.testing.assert_array_equal(ds.step, np.arange(0, 81, 8))
    np.testing.assert_allclose(ds.lr.isel(seed=0), jax.vmap(schedule)(jnp.arange(0, 81, 8)))
    for name in [*runner.RECORDED, "seed", "step"]:  # labelled for xarray's plots
        assert ds[name].attrs["long_name"] and ds[name].attrs["units"]
    full = runner.sweep(toy(), optimizers.sgd(), schedule, seeds=1, steps=80, progress=False)
    # strided records are the same states as the dense record at those steps
    np.testing.assert_allclose(ds.loss, full.loss.sel(step=ds.step), rtol=1e-6)
    assert set(ds.data_vars) == {*runner.RECORDED, "diverged", "diverged_step"}
    assert ds.loss.isel(step=0).item() == pytest.approx(float(toy().loss(toy().start)))


def test_chunking_does_not_change_results():
    args = (toy(), optimizers.sgd(), schedules.wsd(0.1, 120, 0.2))
    # record_every 3 (odd: no unrolled inner loop, half the compile time); chunk_steps 28 is 9
    # records, rebalanced to 5 chunks of 8
    one = runner.sweep(*args, seeds=4, steps=120, record_every=3, progress=False)
    chunked = runner.sweep(
        *args, seeds=4, steps=120, record_every=3, chunk_steps=28, progress=False
    )
    np.testing.assert_array_equal(one.loss, chunked.loss)
    np.testing.assert_array_equal(one.river_coord, chunked.river_coord)


def test_new_values_of_same_shapes_do_not_recompile():
    def run(peak, fraction, curvature):
        batch = schedules.grid(
            schedules.wsd, {"peak": peak, "decay_fraction": fraction}, total_steps=50
        )
        landscape = river_valley(4, curvatures=curvature)
        return runner.sweep(landscape, optimizers.sgd(), batch, seeds=2, steps=50, progress=False)

    run([0.1, 0.2], [0.1], 5.0)
    before = runner.trace_count()
    second = run([0.01, 0.03], [0.7], 2.0)
    assert runner.trace_count() == before
    np.testing.assert_allclose(second.peak, [0.01, 0.03])
    run([0.1, 0.2, 0.3], [0.1], 5.0)  # a new batch size is a new shape: compiles once more
    assert runner.trace_count() == before + 1


def test_save_load_round_trip(tmp_path):
    batch = schedules.stack([schedules.wsd_s(0.1, [20, 40]), schedules.wsd_s(0.05, [10, 40])])
    ds = runner.sweep(toy(), optimizers.sgd(), batch, seeds=2, steps=40, progress=False)
    path = results.save(ds, tmp_path / "sweep.nc")
    back = results.load(path)
    assert back.attrs.pop("content_sha256") == results.content_hash(ds)
    assert back.identical(ds)


def test_cache_reuses_only_matching_config(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return runner.sweep(
            toy(), optimizers.sgd(), schedules.constant(0.1), seeds=1, steps=5, progress=False
        )

    path = tmp_path / "cache.nc"
    first = results.cached(path, {"a": 1}, compute)
    again = results.cached(path, {"a": 1}, compute)
    assert len(calls) == 1 and again.identical(first)
    results.cached(path, {"a": 2}, compute)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 10, "record_every": 3}, "divisor of steps"),
        ({"steps": 10, "seeds": [1, 1]}, "duplicate"),
        ({"steps": True}, "steps"),
        ({"steps": 10, "seeds": True}, "seeds"),
        ({"steps": 10, "chunk_steps": 0}, "chunk_steps"),
        ({"steps": 10, "chunk_steps": 7.5}, "chunk_steps"),
        ({"steps": 10, "record_params": "no"}, "record_params"),
        ({"steps": 10, "gradient": "full"}, "gradient"),
        ({"steps": 2**33}, "int32"),
        ({"steps": 10, "record_every": 0}, "record_every"),
        ({"steps": 10, "seeds": 0}, "seeds"),
        ({"steps": 10, "seeds": [-1]}, "seeds"),
        ({"steps": 10, "seeds": [0.5]}, "seeds"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    kwargs = {"seeds": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        runner.sweep(toy(), optimizers.sgd(), schedules.constant(0.1), progress=False, **kwargs)


def test_integer_arguments_of_any_integer_type():
    ds = runner.sweep(
        toy(),
        optimizers.sgd(),
        schedules.constant(0.1),
        seeds=np.int64(2),
        steps=np.int64(20),
        record_every=np.int32(5),
        progress=False,
    )
    assert ds.sizes["step"] == 5 and ds.sizes["seed"] == 2


def test_compiled_memory_grows_with_records_not_steps():
    """XLA's own memory analysis of the compiled chunk: recording 10 times, every 100,001 steps,
    needs the same buffers as every 101 steps; 1000 records need far larger output buffers."""
    valley, opt, sched = river_valley(16), optimizers.sgd(), schedules.wsd(0.05, 10**6, 0.2)
    runs = 64

    def per_run(c):
        return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (runs, *jnp.shape(x))), c)

    args = (per_run(valley), per_run(opt), per_run(sched))
    keys = jax.vmap(jax.random.key)(jnp.arange(runs))
    state = runner.start_runs(*args, keys)

    def memory(n_records, record_every):
        lowered = runner.advance_runs.lower(
            *args, state, n_records=n_records, record_every=record_every, what=runner.Options()
        )
        stats = lowered.compile().memory_analysis()
        assert stats is not None
        return stats.temp_size_in_bytes + stats.output_size_in_bytes

    # odd record spacings: the runner does not unroll its inner loop (half the compile time)
    few_steps, many_steps, many_records = memory(10, 101), memory(10, 100_001), memory(1000, 5)
    assert many_steps <= 1.1 * few_steps
    # the outputs alone hold (runs x recorded variables) float32 numbers per extra record
    per_record = runs * len(runner.RECORDED) * 4
    assert many_records - few_steps >= (1000 - 10) * per_record


def test_large_swept_fields_are_stored_once_per_batch_member():
    """Tabulated rates (a field of T numbers per schedule) are a coordinate of the schedule's
    dim, not copied once per run; each run's recorded rates are its member's."""
    steps = 128
    rates = np.stack([np.full(steps, 0.05), np.linspace(0.1, 0.0, steps)])
    batch = schedules.stack([schedules.tabulated(r) for r in rates])
    ds = runner.sweep(
        toy(), optimizers.sgd(), batch, seeds=3, steps=steps, progress=False, gradient="exact"
    )
    assert ds.rates.dims == ("peak", "rates_dim0")
    np.testing.assert_allclose(ds.rates.values, rates, rtol=1e-6)
    for i in range(2):
        lr = ds.lr.isel(peak=i).values
        np.testing.assert_allclose(lr[:, :-1], np.broadcast_to(rates[i], (3, steps)), rtol=1e-6)


def test_save_rejects_object_arrays_that_netcdf_cannot_round_trip(tmp_path):
    """A label array with a NaN (as ``xr.concat(join="outer")`` makes) would not read back as
    written; ``save`` says so instead of writing a file that fails its checksum on load."""
    labels = np.array(["wsd", np.nan], dtype=object)
    ds = xr.Dataset({"loss": ("run", [1.0, 2.0])}, coords={"method": ("run", labels)})
    with pytest.raises(ValueError, match=r"'method'.*non-strings"):
        results.save(ds, tmp_path / "bad.nc")
    ok = ds.assign_coords(method=("run", np.array(["wsd", "cosine"], dtype=object)))
    assert results.load(results.save(ok, tmp_path / "ok.nc")).method.values.tolist() == [
        "wsd",
        "cosine",
    ]


def test_split_every_computes_the_split_on_its_grid_only():
    """``split_every=3``: the split and the sharpness at records 0, 3, 6, ... equal those of the
    plain sweep (also across chunk boundaries that are not multiples of 3), NaN at the other
    records, and every other record (the loss) is unchanged."""
    valley = toy()
    kw: dict[str, Any] = {"seeds": 3, "steps": 120, "record_every": 10, "sharpness": 4}
    plain = runner.sweep(valley, optimizers.sgd(), schedules.constant(0.05), **kw)
    sparse = runner.sweep(
        valley, optimizers.sgd(), schedules.constant(0.05), split_every=3, chunk_steps=50, **kw
    )
    np.testing.assert_array_equal(plain.loss.values, sparse.loss.values)
    due = np.arange(plain.sizes["step"]) % 3 == 0
    for name in ("river_loss", "hill_loss", "river_coord", "hill_dist", "sharpness"):
        np.testing.assert_array_equal(plain[name].values[:, due], sparse[name].values[:, due])
        assert np.isnan(sparse[name].values[:, ~due]).all(), name
    with pytest.raises(ValueError, match="split_every"):
        runner.sweep(valley, optimizers.sgd(), schedules.constant(0.05), split_every=0, **kw)
