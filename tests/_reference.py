"""An independent single-run loop of an optax transformation, the yardstick of the runner tests."""

import jax
import numpy as np
import optax

from rivervalley import runner


def optax_loop(landscape, tx, seed, steps, mode="stochastic"):
    """One run as a plain Python loop of the optax transformation ``tx``, with the runner's
    documented key convention (``split(key(seed))``; the noise of update ``t`` from
    ``fold_in(k_noise, t)``), without scan or vmap.  Returns the loss after every update (index
    ``t`` = after ``t`` updates).  Each update is one compiled call (``jax.jit`` of the step
    alone: op-by-op dispatch of the same loop took ~5 s per optimizer)."""
    init_key, noise_key = jax.random.split(jax.random.key(seed))
    w = landscape.init(init_key)
    state = tx.init(w)

    @jax.jit
    def step(w, state, t):
        g = runner.gradient(landscape, w, jax.random.fold_in(noise_key, t), mode)
        updates, state = tx.update(g, state, w)
        w = optax.apply_updates(w, updates)
        return w, state, landscape.loss(w)

    losses = [float(landscape.loss(w))]
    for t in range(steps):
        w, state, loss = step(w, state, t)
        losses.append(float(loss))
    return np.array(losses)
