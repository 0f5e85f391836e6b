"""Input checks that run before any compute, with messages naming the field, the offending value
and what is allowed.  Values may be batched arrays: every entry must pass."""

from __future__ import annotations

from typing import Any

import numpy as np


def show(value: Any) -> str:
    """A short rendering of a scalar or array value for error messages."""
    if isinstance(value, str):
        return repr(value)
    arr = np.asarray(value)
    if arr.ndim == 0:
        return str(arr[()])
    text = np.array2string(arr, threshold=8, precision=6)
    return f"{text} (shape {arr.shape})"


def require(ok: Any, owner: str, field: str, value: Any, allowed: str) -> None:
    """Raise ``ValueError("owner.field = value: must be allowed")`` unless every entry is ok."""
    if not bool(np.all(ok)):
        raise ValueError(f"{owner}.{field} = {show(value)}: must be {allowed}")


def finite(owner: str, field: str, value: Any) -> np.ndarray:
    """The value as a float array, which must be finite everywhere."""
    arr = np.asarray(value, dtype=float)
    require(np.isfinite(arr), owner, field, value, "finite")
    return arr


def at_least(owner: str, field: str, value: Any, low: float, *, strict: bool = False) -> np.ndarray:
    """A finite value ``>= low`` (``> low`` if ``strict``)."""
    arr = finite(owner, field, value)
    ok = arr > low if strict else arr >= low
    require(ok, owner, field, value, f"{'>' if strict else '>='} {low}")
    return arr


def within(owner: str, field: str, value: Any, low: float, high: float) -> np.ndarray:
    """A finite value in the closed interval ``[low, high]``."""
    arr = finite(owner, field, value)
    require((arr >= low) & (arr <= high), owner, field, value, f"in [{low}, {high}]")
    return arr


def choice(owner: str, field: str, value: Any, allowed: tuple[str, ...]) -> Any:
    """One of the named ``allowed`` options."""
    if value not in allowed:
        raise ValueError(f"{owner}.{field} = {value!r}: unknown; allowed: {', '.join(allowed)}")
    return value
