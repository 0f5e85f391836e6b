"""Loss landscapes: parametric river valleys and the noisy quadratic model."""

from rivervalley.landscapes.base import Decomposition, Landscape
from rivervalley.landscapes.quadratic import NoisyQuadratic, noisy_quadratic, power_law_spectrum
from rivervalley.landscapes.valley import RIVERS, RiverValley, river_valley, toy

__all__ = [
    "RIVERS",
    "Decomposition",
    "Landscape",
    "NoisyQuadratic",
    "RiverValley",
    "noisy_quadratic",
    "power_law_spectrum",
    "river_valley",
    "toy",
]
