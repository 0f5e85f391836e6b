"""The transformer landscape (``rivervalley.lm.transformer``) on the real corpus: logits and loss
against an independent NumPy reference written with explicit loops over sequences, positions
and heads (float64), gradients (exact and stochastic) against central differences of that
reference, causality, the parameter layout and initialisation, the relaxation split and the
uncertainty classes, and runs through ``sweep`` against a Python loop of single runs.

A tiny configuration keeps the file fast (width 16, context 8, the corpus's 65 byte tokens).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import xarray as xr

from rivervalley import optimizers, schedules, sweep
from rivervalley.lm import TextCorpus, Transformer, text_corpus, transformer
from rivervalley.lm.transformer import token_classes

CONTEXT = 8
STEPS = 40


@functools.cache
def _corpus() -> TextCorpus:
    return text_corpus()


@functools.cache
def _model(n_layers: int = 1, n_heads: int = 2, validation_windows: int = 3) -> Transformer:
    return transformer(
        _corpus(),
        context=CONTEXT,
        width=16,
        n_layers=n_layers,
        n_heads=n_heads,
        batch_size=4,
        validation_windows=validation_windows,
    )


@functools.cache
def _logits(n_layers: int, n_heads: int):
    return jax.jit(_model(n_layers, n_heads).logits)


# -- an independent reference (NumPy, float64) ----------------------------------------------------


def _unpack(w, V, d, m, context, n_layers):
    """The documented layout, read off in order with its own offsets."""
    offset = 0

    def take(*shape):
        nonlocal offset
        size = math.prod(shape)
        out = w[offset : offset + size].reshape(shape)
        offset += size
        return out

    embed, position = take(V, d), take(context, d)
    layers = []
    for _ in range(n_layers):
        names = ["g1", "b1", "Wqkv", "bqkv", "Wo", "bo", "g2", "b2", "W1", "c1", "W2", "c2"]
        shapes = [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,), (d, m), (m,)]
        shapes += [(m, d), (d,)]
        layers.append({n: take(*s) for n, s in zip(names, shapes, strict=True)})
    final = take(d), take(d), take(d, V), take(V)
    assert offset == w.shape[0]
    return embed, position, layers, final


def _norm(x, g, b):
    mu = x.sum() / x.size
    var = ((x - mu) ** 2).sum() / x.size
    return (x - mu) / math.sqrt(var + 1e-5) * g + b


def _gelu(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def reference_logits(model: Transformer, w, tokens) -> np.ndarray:
    """Logits ``(B, T, V)`` with loops over sequences, positions and heads; position ``t``'s
    head ``i`` attends to the keys of positions ``0..t`` with a softmax written out."""
    w = np.asarray(w, np.float64)
    V, d, H = model.vocab_size, model.width, model.n_heads
    m, dh = model.mlp_ratio * d, d // H
    embed, position, layers, (gf, bf, U, u) = _unpack(w, V, d, m, model.context, model.n_layers)
    out = []
    for sequence in np.asarray(tokens):
        x = [embed[tok] + position[t] for t, tok in enumerate(sequence)]
        for p in layers:
            qkv = [_norm(xt, p["g1"], p["b1"]) @ p["Wqkv"] + p["bqkv"] for xt in x]
            new_x = []
            for t in range(len(sequence)):
                seen = np.stack(qkv[: t + 1])  # positions s <= t only: causal by construction
                heads = []
                for i in range(H):
                    q = qkv[t][i * dh : (i + 1) * dh]
                    keys = seen[:, d + i * dh : d + (i + 1) * dh]  # (t + 1, dh)
                    values = seen[:, 2 * d + i * dh : 2 * d + (i + 1) * dh]
                    scores = keys @ q / math.sqrt(dh)
                    e = np.exp(scores - scores.max())
                    heads.append((e / e.sum()) @ values)
                g = x[t] + np.concatenate(heads) @ p["Wo"] + p["bo"]
                hidden = _gelu(_norm(g, p["g2"], p["b2"]) @ p["W1"] + p["c1"])
                new_x.append(g + hidden @ p["W2"] + p["c2"])
            x = new_x
        out.append(np.stack([_norm(xt, gf, bf) @ U + u for xt in x]))
    return np.stack(out)


def reference_loss(model: Transformer, w, windows) -> float:
    """Mean over windows and targets of ``-log softmax(z_t)[target]``."""
    windows = np.asarray(windows)
    logits = reference_logits(model, w, windows[:, :-1])
    total = 0.0
    for b, window in enumerate(windows):
        for t, target in enumerate(window[1:]):
            z = logits[b, t]
            total -= z[target] - (z.max() + math.log(np.exp(z - z.max()).sum()))
    return total / (windows.shape[0] * (windows.shape[1] - 1))


def _generic_point(model: Transformer, seed: int = 0) -> np.ndarray:
    """A float64 point with every parameter (biases, LayerNorm gains) away from its init."""
    return np.random.default_rng(seed).normal(0.0, 0.5, model.n_params)


def _check_gradient(model: Transformer, w: np.ndarray, windows, grad: np.ndarray, seed: int):
    """``grad`` against central differences of the reference loss (``h = 1e-5``: truncation
    ``~h^2``, rounding ``~1e-16 / h``): three coordinates of every parameter array and three
    random directions."""
    rng = np.random.default_rng(seed)
    h = 1e-5

    def slope(v):
        up, down = (
            reference_loss(model, w + h * v, windows),
            reference_loss(model, w - h * v, windows),
        )
        return (up - down) / (2 * h)

    start = 0
    for name, shape in model.param_shapes().items():
        size = math.prod(shape)
        for j in start + rng.choice(size, min(3, size), replace=False):
            e = np.zeros_like(w)
            e[j] = 1.0
            np.testing.assert_allclose(grad[j], slope(e), rtol=1e-6, atol=1e-9, err_msg=name)
        start += size
    for _ in range(3):
        v = rng.normal(size=w.size)
        np.testing.assert_allclose(grad @ v, slope(v), rtol=1e-6)


@pytest.mark.parametrize(("n_layers", "n_heads"), [(1, 2), (2, 4)])
def test_logits_loss_and_gradient_equal_the_reference(x64, n_layers, n_heads):
    model = _model(n_layers, n_heads)
    w = _generic_point(model, n_layers)
    windows = np.asarray(model.validation_tokens)
    got = _logits(n_layers, n_heads)(jnp.asarray(w), windows[:, :-1])
    assert got.dtype == jnp.float64 and got.shape == (3, 8, 65)
    np.testing.assert_allclose(got, reference_logits(model, w, windows[:, :-1]), rtol=1e-11)
    loss, grad = jax.jit(jax.value_and_grad(model.loss))(jnp.asarray(w))
    np.testing.assert_allclose(loss, reference_loss(model, w, windows), rtol=1e-12)
    _check_gradient(model, w, windows, np.asarray(grad), seed=n_layers)


def test_the_stochastic_gradient_is_the_gradient_on_the_drawn_train_windows(x64):
    model = _model()
    w = _generic_point(model, 5)
    key = jax.random.key(9)
    windows = model.corpus.sample(key, model.batch_size, model.context)
    stochastic_grad = jax.jit(model.stochastic_grad)
    got = stochastic_grad(jnp.asarray(w), key)
    np.testing.assert_array_equal(got, stochastic_grad(jnp.asarray(w), key))  # same key
    _check_gradient(model, w, windows, np.asarray(got), seed=5)


def test_causality_a_future_token_leaves_earlier_logits_unchanged(x64):
    model = _model(2, 4)
    w = jnp.asarray(_generic_point(model, 7))
    tokens = np.asarray(model.validation_tokens[:, :-1])
    logits = _logits(2, 4)
    before = logits(w, tokens)
    for j in (0, 3, 7):
        changed = tokens.copy()
        changed[:, j] = (changed[:, j] + 1) % model.vocab_size
        after = logits(w, changed)
        np.testing.assert_array_equal(after[:, :j], before[:, :j])
        assert np.all(np.max(np.abs(after[:, j:] - before[:, j:]), axis=-1) > 1e-6)
    # a shorter input gives the first positions of a longer one
    np.testing.assert_allclose(logits(w, tokens[:, :5]), before[:, :5], rtol=1e-12)


def test_the_parameter_layout_and_count():
    model = _model()
    V, d, T, L, m = 65, 64, 64, 2, 256
    per_layer = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * m + m) + (m * d + d)
    default = transformer(_corpus(), validation_windows=2)
    assert default.n_params == V * d + T * d + L * per_layer + 2 * d + d * V + V == 112_577
    w = jnp.arange(model.n_params, dtype=jnp.float32)
    params = model.unravel(w)
    assert list(params)[:3] == ["embed", "position", "layer0.ln1_scale"]
    assert params["embed"].shape == (65, 16) and params["unembed_bias"].shape == (65,)
    np.testing.assert_array_equal(model.ravel(params), w)


def test_init_is_standard_small_normal_and_depends_on_the_key():
    model = transformer(_corpus(), validation_windows=2)  # the default size
    w0, w1 = model.init(jax.random.key(0)), model.init(jax.random.key(1))
    assert w0.dtype == jnp.float32 and w0.shape == (112_577,)
    assert not np.allclose(w0, w1)
    np.testing.assert_array_equal(w0, model.init(jax.random.key(0)))
    p = model.unravel(w0)
    for name in ("embed", "position", "layer0.qkv_weight", "layer1.mlp_in_weight", "unembed"):
        assert abs(float(jnp.std(p[name])) / 0.02 - 1) < 0.05, name
        assert abs(float(jnp.mean(p[name]))) < 0.002, name
    for name in ("layer0.out_weight", "layer1.mlp_out_weight"):
        assert abs(float(jnp.std(p[name])) / (0.02 / 2) - 1) < 0.05, name
    for name in ("layer0.ln1_scale", "layer1.ln2_scale", "ln_scale"):
        np.testing.assert_array_equal(p[name], 1.0)
    for name in ("layer0.qkv_bias", "layer1.mlp_out_bias", "ln_bias", "unembed_bias"):
        np.testing.assert_array_equal(p[name], 0.0)
    # near-uniform predictions at the start: the loss is close to log V
    loss = _loss()(_model().init(jax.random.key(0)))
    assert abs(float(loss) - math.log(65)) < 0.05


def test_the_split_switched_off_and_the_labels():
    """``relax_steps = 0``: the river point is ``w`` (hill 0) and no curvature is estimated (the
    relaxation itself is checked along the sweep's runs below)."""
    model = dataclasses.replace(_model(), relax_steps=0)
    w = model.init(jax.random.key(2))
    parts, loss = jax.jit(lambda v: (model.decompose(v), model.loss(v)))(w)
    assert float(parts.hill_loss) == 0.0 and float(parts.hill_dist) == 0.0
    np.testing.assert_allclose(parts.river_loss, loss, rtol=1e-6)
    np.testing.assert_allclose(parts.river_coord, jnp.linalg.norm(w), rtol=1e-6)
    assert "16 full-batch gradient steps" in _model().decomposition_method()
    assert "10 Lanczos iterations" in _model().decomposition_method()
    assert model.class_names == ("H<0.5", "0.5<=H<1.5", "H>=1.5")
    assert model.observable_dims() == {"class_loss": ("token_class", list(model.class_names))}
    assert dataclasses.replace(model, entropy_bounds=()).class_names == ("all",)


def test_token_classes_follow_the_corpus_entropy():
    corpus = _corpus()
    starts = corpus.validation_starts(2, 8)
    classes = token_classes(corpus, starts, 8, 0, [2.0, 4.0])  # order 0: the unigram entropy
    assert classes.shape == (2, 8) and np.all(classes == 1)  # 3.02 nats
    classes = token_classes(corpus, starts, 8, 3, [0.5, 1.5])
    np.testing.assert_array_equal(
        classes, np.asarray(_model(validation_windows=2).validation_class)
    )


SCHEDULES = {
    "wsd": schedules.wsd(1e-2, STEPS, 0.25, warmup_steps=4),
    "cosine": schedules.cosine(1e-2, STEPS),
}
SEEDS = (0, 3)


@functools.cache
def _sweep() -> xr.Dataset:
    """2 schedules x 2 seeds with Adam in one compiled call, recorded every 10 updates."""
    return sweep(
        _model(),
        optimizers.adam(),
        SCHEDULES,
        seeds=list(SEEDS),
        steps=STEPS,
        record_every=10,
        progress=False,
    )


@functools.cache
def _step(schedule_name: str):
    """One jitted Adam update of the tiny model (compiled once per schedule, for every seed)."""
    tx = optimizers.adam().transform(SCHEDULES[schedule_name])

    @jax.jit
    def step(w, state, noise_key, t):
        grad = _model().stochastic_grad(w, jax.random.fold_in(noise_key, t))
        updates, state = tx.update(grad, state, w)
        w = optax.apply_updates(w, updates)
        return w, state, _model().loss(w)

    return step, tx


@functools.cache
def _loss():
    return jax.jit(_model().loss)


def _single_run(schedule_name: str, seed: int) -> np.ndarray:
    """One run as a Python loop with the runner's documented keys (``split(key(seed))``; the
    minibatch of update ``t`` from ``fold_in(k_noise, t)``): the loss after every update."""
    step, tx = _step(schedule_name)
    init_key, noise_key = jax.random.split(jax.random.key(seed))
    w = _model().init(init_key)
    state = tx.init(w)
    losses = [float(_loss()(w))]
    for t in range(STEPS):
        w, state, loss = step(w, state, noise_key, t)
        losses.append(float(loss))
    return np.array(losses)


def test_sweep_equals_a_loop_of_single_runs():
    ds = _sweep()
    assert ds.loss.dims == ("schedule", "seed", "step")
    assert ds.class_loss.dims == ("schedule", "seed", "step", "token_class")
    np.testing.assert_array_equal(ds.step, np.arange(0, STEPS + 1, 10))
    for name in SCHEDULES:
        for seed in SEEDS:
            expected = _single_run(name, seed)[::10]
            np.testing.assert_allclose(ds.loss.sel(schedule=name, seed=seed), expected, rtol=1e-5)
    assert not np.allclose(ds.loss.sel(seed=0), ds.loss.sel(seed=3))


def test_adam_lowers_the_loss_on_real_text_and_the_split_along_the_runs():
    ds = _sweep()
    start, end = ds.loss.isel(step=0), ds.loss.isel(step=-1)
    assert bool(np.all(start > 4.1)) and bool(np.all(end < start - 0.8))
    assert not bool(ds.diverged.any())
    # the relaxation split at every record: loss = river + hill, and from the start (a steep
    # point) the relaxation descends
    np.testing.assert_allclose(ds.river_loss + ds.hill_loss, ds.loss, rtol=1e-5)
    assert bool(np.all(ds.hill_loss.isel(step=0) > 0.1)) and bool(np.all(ds.hill_dist > 0))
    assert bool(np.all(np.isfinite(ds.river_coord)))
    # the uncertainty classes: their token-weighted mean is the loss
    counts = np.bincount(np.asarray(_model().validation_class).ravel(), minlength=3)
    assert counts.sum() == 3 * CONTEXT and np.all(counts > 0)
    mean = (ds.class_loss * counts).sum("token_class") / counts.sum()
    np.testing.assert_allclose(mean, ds.loss, rtol=1e-5)
    assert list(ds.token_class.values) == ["H<0.5", "0.5<=H<1.5", "H>=1.5"]


def test_validation_names_the_field():
    corpus = _corpus()
    with pytest.raises(ValueError, match="width"):
        transformer(corpus, width=10, n_heads=4, validation_windows=2)
    with pytest.raises(ValueError, match="context"):
        transformer(corpus, context=10**6)
    with pytest.raises(ValueError, match="entropy_bounds"):
        transformer(corpus, entropy_bounds=(1.0, 0.5), validation_windows=2)
    with pytest.raises(ValueError, match="batch_size"):
        transformer(corpus, batch_size=0, validation_windows=2)
    with pytest.raises(ValueError, match="init_scale"):
        transformer(corpus, init_scale=-1.0, validation_windows=2)
    assert bool(_model().is_finite(jnp.zeros(_model().n_params)))
    assert not bool(_model().is_finite(jnp.full(_model().n_params, jnp.nan)))
