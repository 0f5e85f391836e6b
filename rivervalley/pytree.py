"""Frozen dataclasses registered as JAX pytrees, with batch-aware array fields: the building
blocks of the lab's schedules, landscapes and optimizers, and of custom ones (see
``notebooks/02_custom_landscape_and_schedule.ipynb``).

Every numeric field of a schedule or landscape is an array *leaf*, so ``jax.vmap`` can batch over
it; discrete choices (a decay shape, a river kind) are *static* fields that are part of the tree
structure and therefore of the compiled program.

Each array field declares its *base* number of dimensions (``ndim``: 0 for a scalar such as a peak
rate, 1 for a vector such as budget boundaries or a curvature spectrum).  Any extra leading axes
are batch axes: a schedule whose ``peak`` has shape ``(4,)`` is a batch of four schedules.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

T = TypeVar("T")

_STATIC = "rivervalley_static"
_NDIM = "rivervalley_ndim"


def array_field(*, ndim: int = 0, **kwargs: Any) -> Any:
    """A numeric (array) field whose unbatched value has ``ndim`` dimensions."""
    return dataclasses.field(metadata={_STATIC: False, _NDIM: ndim}, **kwargs)


def static_field(**kwargs: Any) -> Any:
    """A static field: part of the tree structure; changing it recompiles."""
    return dataclasses.field(metadata={_STATIC: True}, **kwargs)


def child_field(**kwargs: Any) -> Any:
    """A field holding another pytree dataclass or ``None`` (e.g. a corpus inside a language
    model): its array fields are leaves of the parent too, and share the parent's batch shape."""
    return dataclasses.field(metadata={_STATIC: False, _NDIM: None}, **kwargs)


def _convert_sequences(self: Any) -> None:
    """Turn list/tuple values of array fields into float arrays (other leaves are kept as given,
    so tracers and ``vmap`` axis specs pass through unchanged)."""
    for name, ndim in array_fields(self).items():
        value = getattr(self, name)
        if isinstance(value, list | tuple) and ndim is not None:
            object.__setattr__(self, name, as_float(value))


def pytree_dataclass(cls: type[T] | None = None, *, kw_only: bool = True) -> Any:
    """Make ``cls`` a frozen dataclass registered as a pytree (array fields are leaves).

    Lists and tuples given for array fields are converted to float arrays.
    """
    if cls is None:
        return lambda c: pytree_dataclass(c, kw_only=kw_only)
    cls.__post_init__ = _convert_sequences  # type: ignore[attr-defined]
    cls = dataclasses.dataclass(frozen=True, kw_only=kw_only)(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    data = tuple(f.name for f in fields if not f.metadata.get(_STATIC, False))
    meta = tuple(f.name for f in fields if f.metadata.get(_STATIC, False))

    # The class itself is part of the auxiliary data, so tree structures of two classes with the
    # same fields (e.g. Linear and Cosine) compare unequal.  jax.tree_util.register_dataclass
    # does not guarantee that (its treedefs of such classes compare equal in jax 0.10).
    def flatten_with_keys(obj):
        children = [(jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in data]
        return children, (cls, tuple(getattr(obj, n) for n in meta))

    def flatten(obj):
        return [getattr(obj, n) for n in data], (cls, tuple(getattr(obj, n) for n in meta))

    def unflatten(aux, children):
        _, meta_values = aux
        return cls(
            **dict(zip(data, children, strict=True)), **dict(zip(meta, meta_values, strict=True))
        )

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls


def array_fields(obj: Any) -> dict[str, int | None]:
    """Names of the array fields of a pytree dataclass, mapped to their base ``ndim`` (``None``
    for a child pytree dataclass)."""
    return {
        f.name: f.metadata.get(_NDIM, 0)
        for f in dataclasses.fields(obj)
        if not f.metadata.get(_STATIC, False)
    }


def static_fields(obj: Any) -> dict[str, Any]:
    """The static fields of a pytree dataclass and their values."""
    return {
        f.name: getattr(obj, f.name)
        for f in dataclasses.fields(obj)
        if f.metadata.get(_STATIC, False)
    }


def _leaf_batch_shape(obj: Any, name: str, ndim: int | None) -> tuple[int, ...]:
    if ndim is None:
        child = getattr(obj, name)
        return () if child is None else batch_shape(child)
    shape = np.shape(getattr(obj, name))
    if len(shape) < ndim:
        raise ValueError(
            f"{type(obj).__name__}.{name} must have at least {ndim} dimension(s), got shape {shape}"
        )
    return tuple(shape[: len(shape) - ndim])


def batch_shape(obj: Any) -> tuple[int, ...]:
    """Common batch shape of all array fields (the leading axes beyond each field's base ndim)."""
    shapes = [_leaf_batch_shape(obj, n, d) for n, d in array_fields(obj).items()]
    try:
        return tuple(np.broadcast_shapes(*shapes)) if shapes else ()
    except ValueError:
        detail = ", ".join(f"{n}: {s}" for n, s in zip(array_fields(obj), shapes, strict=True))
        raise ValueError(
            f"{type(obj).__name__} has array fields with incompatible batch shapes ({detail})"
        ) from None


def batched_fields(obj: Any) -> list[str]:
    """Names of the array fields that carry a batch axis (the swept fields); child pytrees are
    not listed (a batched child has no single coordinate)."""
    return [
        n for n, d in array_fields(obj).items() if d is not None and _leaf_batch_shape(obj, n, d)
    ]


def broadcast_batch(obj: T, shape: tuple[int, ...]) -> T:
    """Broadcast every array field of ``obj`` to the batch ``shape`` (plus its base shape)."""
    updates = {}
    for name, ndim in array_fields(obj).items():
        if ndim is None:
            child = getattr(obj, name)
            updates[name] = None if child is None else broadcast_batch(child, shape)
            continue
        leaf = jnp.asarray(getattr(obj, name))
        base = leaf.shape[leaf.ndim - ndim :]
        updates[name] = jnp.broadcast_to(leaf, tuple(shape) + tuple(base))
    return dataclasses.replace(obj, **updates)  # type: ignore[type-var]


def stack(items: Sequence[T]) -> T:
    """One batched object (a new leading batch axis on every array field) from unbatched objects
    of one type whose static fields agree, e.g. several landscapes swept in one compiled call.

    Raises ``ValueError`` for no items, mixed types or static fields, an already batched item,
    or array fields whose shapes differ between items."""
    if not items:
        raise ValueError("stack: need at least one item")
    first = items[0]
    for i, item in enumerate(items):
        if type(item) is not type(first) or static_fields(item) != static_fields(first):
            raise ValueError(
                f"stack: item {i} is {type(item).__name__}{static_fields(item)}, expected "
                f"{type(first).__name__}{static_fields(first)}; stack items of one kind"
            )
        if batch_shape(item):
            raise ValueError(f"stack: item {i} is already batched {batch_shape(item)}")
    try:
        return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *items)
    except ValueError as err:
        raise ValueError(f"stack: field shapes differ between items ({err})") from None


def map_arrays(fn: Callable[[jax.Array], jax.Array], obj: T) -> T:
    """Apply ``fn`` to every array field (leaf) of ``obj``."""
    return jax.tree_util.tree_map(fn, obj)


def as_float(x: Any) -> jax.Array:
    """Convert a number or array to a floating JAX array (default float dtype).  Values beyond
    the dtype's range become +-inf silently: validation then reports them as non-finite."""
    with np.errstate(over="ignore"):
        return jnp.asarray(x, dtype=jnp.result_type(float))


DESCRIBE_MAX_VALUES = 64  # larger arrays are described by shape, dtype and a SHA-256 digest


def _describe_array(value: Any) -> Any:
    arr = np.asarray(value)
    if arr.size <= DESCRIBE_MAX_VALUES:
        return arr.tolist()
    digest = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
    return {"shape": list(arr.shape), "dtype": str(arr.dtype), "sha256": digest}


def describe(obj: Any) -> dict[str, Any]:
    """Plain-Python description of a pytree dataclass (type, static and array fields), for
    dataset attributes and cache keys.  Arrays of more than ``DESCRIBE_MAX_VALUES`` entries are
    summarised by shape, dtype and content digest, so descriptions stay small but still change
    whenever a value does."""
    out: dict[str, Any] = {"type": type(obj).__name__}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get(_STATIC, False):
            out[f.name] = value
        elif f.metadata.get(_NDIM, 0) is None:
            out[f.name] = None if value is None else describe(value)
        else:
            out[f.name] = _describe_array(value)
    return out
