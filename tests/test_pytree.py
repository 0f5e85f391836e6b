"""``rivervalley.pytree.stack``: batching several objects of one kind, and its errors."""

import numpy as np
import pytest

from rivervalley import optimizers, schedules
from rivervalley.landscapes import noisy_quadratic, toy
from rivervalley.pytree import stack


def test_stack_batches_every_array_field_and_keeps_static_ones():
    valleys = stack([toy(), toy(noise_std=0.0, amplitude=0.3)])
    assert valleys.batch_shape == (2,) and valleys.river == "softplus"
    np.testing.assert_allclose(valleys.amplitudes[:, 0], [0.15, 0.3])
    np.testing.assert_allclose(valleys.noise_std[1], [0.0, 0.0])
    opts = stack([optimizers.adam(b1=0.8), optimizers.adam(b1=0.95)])
    np.testing.assert_allclose(opts.hyperparams["b1"], [0.8, 0.95])
    assert opts.name == "adam"


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ([], "at least one"),
        ([toy(), noisy_quadratic([1.0, 2.0], 0.1, 1.0)], "one kind"),
        ([toy(), toy(river="power")], "one kind"),
        ([optimizers.sgd(), optimizers.adam()], "one kind"),
        ([stack([toy(), toy()]), toy()], "already batched"),
        ([noisy_quadratic([1.0], 0.1, 1.0), noisy_quadratic([1.0, 2.0], 0.1, 1.0)], "shapes"),
    ],
)
def test_stack_errors(items, match):
    with pytest.raises(ValueError, match=match):
        stack(items)


def test_schedules_stack_is_the_same():
    a, b = schedules.wsd(0.1, 100, 0.2), schedules.wsd(0.2, 100, 0.4)
    both = schedules.stack([a, b])
    np.testing.assert_allclose(both.peak, [0.1, 0.2])
    with pytest.raises(ValueError, match="one kind"):
        schedules.stack([a, schedules.cosine(0.1, 100)])
