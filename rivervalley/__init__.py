"""rivervalley: a JAX laboratory for the river-valley picture of loss landscapes and of
learning-rate schedules such as Warmup-Stable-Decay."""

__version__ = "0.1.0"

from rivervalley import (
    axes,
    decompose,
    hessian,
    landscapes,
    lm,
    optimizers,
    records,
    runner,
    schedules,
)
from rivervalley.landscapes import Decomposition
from rivervalley.runner import sweep

__all__ = [
    "Decomposition",
    "__version__",
    "axes",
    "decompose",
    "hessian",
    "landscapes",
    "lm",
    "optimizers",
    "records",
    "runner",
    "schedules",
    "sweep",
]
