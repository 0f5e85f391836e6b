"""Shared test configuration.  Warnings are errors (pyproject); float64 is opt-in per test via
the ``x64`` fixture, so the default float32 path is what most tests exercise."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax
import pytest


@pytest.fixture
def x64():
    """Enable float64 for one test (restored afterwards)."""
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)
