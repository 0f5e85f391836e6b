"""``rivervalley.stats``: mean and standard error by hand, NaN skipped, paired differences."""

import numpy as np
import pytest

from rivervalley import stats


def test_mean_se_by_hand_and_nan_skipped():
    mean, se = stats.mean_se([1.0, 2.0, 3.0, 6.0, np.nan])
    assert mean == pytest.approx(3.0)
    # sample variance ((4 + 1 + 0 + 9) / 3) over n = 4
    assert se == pytest.approx(np.sqrt(14 / 3 / 4))
    assert all(np.isnan(stats.mean_se([1.0, np.nan])))


def test_paired_difference_removes_the_shared_part():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 10, 400)  # common random numbers: large, shared by both methods
    a = shared + 0.5 + rng.normal(0, 0.1, 400)
    b = shared + rng.normal(0, 0.1, 400)
    row = stats.paired_difference(a, b)
    assert abs(row["diff"] - 0.5) < 4 * row["se"]
    assert row["se"] == pytest.approx(np.sqrt(0.02 / 400), rel=0.2)  # not ~10 / sqrt(200)
    assert row["z"] == pytest.approx(row["diff"] / row["se"])
    assert np.isnan(stats.paired_difference([1.0, 1.0], [0.0, 0.0])["z"])  # se 0
