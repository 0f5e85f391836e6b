"""Monte-Carlo summaries over seeds: the mean and its standard error.

For ``n`` independent runs (seeds) ``x_1..x_n`` the estimate is the sample mean ``x_bar`` and its
standard error ``s / sqrt(n)``, ``s`` the sample standard deviation (``ddof = 1``).  Differences
between two methods run on the *same* seeds (common random numbers) are summarised the same way,
from the per-seed differences (a paired standard error), which is usually far smaller than the
two unpaired errors combined.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def mean_se(x: ArrayLike) -> tuple[float, float]:
    """``(mean, standard error)`` of the finite values of ``x`` (NaN marks a missing or diverged
    run and is skipped); ``(nan, nan)`` with fewer than two finite values."""
    x = np.asarray(x, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))


def paired_difference(a: ArrayLike, b: ArrayLike) -> dict[str, float]:
    """The mean of the per-seed differences ``a - b``, its standard error and ``z = diff / se``
    (NaN when the error is 0 or undefined); ``a`` and ``b`` are aligned by seed."""
    diff, se = mean_se(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    z = diff / se if se > 0 else float("nan")
    return {"diff": diff, "se": se, "z": z}
