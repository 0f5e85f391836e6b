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
import functools
import hashlib
import itertools
import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

T = TypeVar("T")

_STATIC = "rivervalley_static"
_NDIM = "rivervalley_ndim"
_MAPPING = "mapping"  # the ``_NDIM`` of a ``mapping_field``


def array_field(*, ndim: int = 0, **kwargs: Any) -> Any:
    """A numeric (array) field whose unbatched value has ``ndim`` dimensions."""
    return dataclasses.field(metadata={_STATIC: False, _NDIM: ndim}, **kwargs)


def static_field(**kwargs: Any) -> Any:
    """A static field: part of the tree structure; changing it recompiles."""
    return dataclasses.field(metadata={_STATIC: True}, **kwargs)


def mapping_field(**kwargs: Any) -> Any:
    """A field holding a ``dict`` of named scalar arrays (e.g. an optax optimizer's
    hyperparameters): each entry is an array field of base ``ndim`` 0 named by its key, so it is
    batched, swept and labelled like a declared field.  Give ``default_factory=dict``."""
    return dataclasses.field(metadata={_STATIC: False, _NDIM: _MAPPING}, **kwargs)


def child_field(**kwargs: Any) -> Any:
    """A field holding another pytree dataclass or ``None`` (e.g. a corpus inside a language
    model): its array fields are leaves of the parent too, and share the parent's batch shape."""
    return dataclasses.field(metadata={_STATIC: False, _NDIM: None}, **kwargs)


def _convert_sequences(self: Any) -> None:
    """Turn list/tuple values of array fields into float arrays (other leaves are kept as given,
    so tracers and ``vmap`` axis specs pass through unchanged)."""
    for name, ndim in array_fields(self).items():
        value = getattr(self, name)
        if ndim == _MAPPING and isinstance(value, dict):
            converted = {
                k: as_float(v) if isinstance(v, list | tuple) else v for k, v in value.items()
            }
            object.__setattr__(self, name, converted)
        elif isinstance(value, list | tuple) and ndim is not None:
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


def array_fields(obj: Any) -> dict[str, int | str | None]:
    """Names of the array fields of a pytree dataclass, mapped to their base ``ndim`` (``None``
    for a child pytree dataclass, ``"mapping"`` for a ``mapping_field``)."""
    return {
        f.name: f.metadata.get(_NDIM, 0)
        for f in dataclasses.fields(obj)
        if not f.metadata.get(_STATIC, False)
    }


def named_arrays(obj: Any) -> dict[str, tuple[Any, int]]:
    """Every array of a pytree dataclass by name, with its base ``ndim``: its array fields and
    the entries of its mapping fields (named by their keys); child pytrees are not included."""
    out: dict[str, tuple[Any, int]] = {}
    for name, ndim in array_fields(obj).items():
        if ndim is None:
            continue
        if ndim == _MAPPING:
            for key, value in getattr(obj, name).items():
                if key in out:
                    raise ValueError(f"{type(obj).__name__}: {key!r} is both a field and a key")
                out[key] = (value, 0)
        else:
            out[name] = (getattr(obj, name), int(ndim))
    return out


def static_fields(obj: Any) -> dict[str, Any]:
    """The static fields of a pytree dataclass and their values."""
    return {
        f.name: getattr(obj, f.name)
        for f in dataclasses.fields(obj)
        if f.metadata.get(_STATIC, False)
    }


def _array_batch_shape(owner: Any, name: str, value: Any, ndim: int) -> tuple[int, ...]:
    shape = np.shape(value)
    if len(shape) < ndim:
        raise ValueError(
            f"{type(owner).__name__}.{name} must have at least {ndim} dimension(s), "
            f"got shape {shape}"
        )
    return tuple(shape[: len(shape) - ndim])


def _field_batch_shapes(obj: Any) -> dict[str, tuple[int, ...]]:
    shapes = {n: _array_batch_shape(obj, n, v, d) for n, (v, d) in named_arrays(obj).items()}
    for name, ndim in array_fields(obj).items():
        child = getattr(obj, name)
        if ndim is None and child is not None:
            shapes[name] = batch_shape(child)
    return shapes


def batch_shape(obj: Any) -> tuple[int, ...]:
    """Common batch shape of all array fields (the leading axes beyond each field's base ndim,
    broadcast together)."""
    shapes = _field_batch_shapes(obj)
    try:
        return tuple(np.broadcast_shapes(*shapes.values())) if shapes else ()
    except ValueError:
        detail = ", ".join(f"{n}: {s}" for n, s in shapes.items())
        raise ValueError(
            f"{type(obj).__name__} has array fields with incompatible batch shapes ({detail})"
        ) from None


def batched_fields(obj: Any) -> list[str]:
    """Names of the arrays that carry a batch axis (the swept fields and mapping entries); child
    pytrees are not listed (a batched child has no single coordinate)."""
    return [n for n, (v, d) in named_arrays(obj).items() if _array_batch_shape(obj, n, v, d)]


def broadcast_batch(obj: T, shape: tuple[int, ...]) -> T:
    """Broadcast every array field of ``obj`` to the batch ``shape`` (plus its base shape)."""

    def broadcast(value: Any, ndim: int) -> jax.Array:
        leaf = jnp.asarray(value)
        base = leaf.shape[leaf.ndim - ndim :]
        return jnp.broadcast_to(leaf, tuple(shape) + tuple(base))

    updates = {}
    for name, ndim in array_fields(obj).items():
        value = getattr(obj, name)
        if ndim is None:
            updates[name] = None if value is None else broadcast_batch(value, shape)
        elif ndim == _MAPPING:
            updates[name] = {k: broadcast(v, 0) for k, v in value.items()}
        else:
            updates[name] = broadcast(value, int(ndim))
    return dataclasses.replace(obj, **updates)  # type: ignore[type-var]


def flatten_batch(obj: T) -> T:
    """``obj`` with its batch axes (``batch_shape``) broadcast and merged into one leading axis of
    ``prod(batch_shape)`` members, in row-major order (an unbatched ``obj`` gets one member)."""
    shape = batch_shape(obj)
    full = broadcast_batch(obj, shape)
    size = math.prod(shape)
    return jax.tree_util.tree_map(
        lambda x: jnp.reshape(x, (size, *jnp.shape(x)[len(shape) :])), full
    )


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


def describe_callable(fn: Any) -> Any:
    """A plain-Python description of a static callable (an optimizer factory, a record
    function): its module and qualified name and a digest of its bytecode, constants and
    closure values (not of its source position), so two lambdas of one module differ and a
    changed constant changes the description; ``functools.partial`` objects by their parts."""
    if isinstance(fn, functools.partial):
        return {
            "partial": describe_callable(fn.func),
            "args": [_describe_value(a) for a in fn.args],
            "keywords": {k: _describe_value(v) for k, v in sorted(fn.keywords.items())},
        }
    code = getattr(fn, "__code__", None)
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    if code is None:
        return name
    digest = hashlib.sha256(_code_bytes(code))
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            digest.update(repr(_describe_value(cell.cell_contents)).encode())
        except ValueError:  # an empty cell
            digest.update(b"<empty>")
    return {"callable": name, "sha256": digest.hexdigest()[:16]}


def _code_bytes(code: Any) -> bytes:
    parts = [code.co_code, repr(code.co_names).encode()]
    for const in code.co_consts:
        is_code = hasattr(const, "co_code")
        parts.append(_code_bytes(const) if is_code else repr(const).encode())
    return b"|".join(parts)


def _describe_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return describe(value)
    if callable(value):
        return describe_callable(value)
    if isinstance(value, jax.Array | np.ndarray):
        return _describe_array(value)
    if isinstance(value, tuple | list):
        return [_describe_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe_value(v) for k, v in value.items()}
    return value if isinstance(value, str | int | float | bool | None) else repr(value)


def describe(obj: Any) -> dict[str, Any]:
    """Plain-Python description of a pytree dataclass (type, static and array fields), for
    dataset attributes and cache keys.  Arrays of more than ``DESCRIBE_MAX_VALUES`` entries are
    summarised by shape, dtype and content digest, so descriptions stay small but still change
    whenever a value does; static callables by ``describe_callable``."""
    out: dict[str, Any] = {"type": type(obj).__name__}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        ndim = f.metadata.get(_NDIM, 0)
        if f.metadata.get(_STATIC, False):
            out[f.name] = _describe_value(value)
        elif ndim is None:
            out[f.name] = None if value is None else describe(value)
        elif ndim == _MAPPING:
            out[f.name] = {k: _describe_array(v) for k, v in sorted(value.items())}
        else:
            out[f.name] = _describe_array(value)
    return out


def grid(factory: Callable[..., T], sweep: Mapping[str, Sequence[Any]], **fixed: Any) -> T:
    """The Cartesian product of swept values as one object with one batch axis per swept name,
    in the order given: ``grid(wsd, {"peak": [0.1, 0.2, 0.4], "decay_fraction": [0.1, 0.2]},
    total_steps=1000)`` has batch shape ``(3, 2)``, and ``sweep`` labels its dims ``peak`` and
    ``decay_fraction``.  Every combination is built (and validated) by ``factory``."""
    if not sweep:
        raise ValueError("grid: give at least one swept field")
    names = list(sweep)
    values = [list(sweep[n]) for n in names]
    for name, vals in zip(names, values, strict=True):
        if not vals:
            raise ValueError(f"grid: {name} has no values")
    shape = tuple(len(v) for v in values)
    combos = itertools.product(*values)
    flat = stack([factory(**fixed, **dict(zip(names, c, strict=True))) for c in combos])
    out = jax.tree_util.tree_map(lambda x: jnp.reshape(x, shape + jnp.shape(x)[1:]), flat)
    return label_axes(out, dict(zip(names, values, strict=True)))


_AXIS_LABELS: dict[int, tuple[tuple[str, tuple[Any, ...]], ...]] = {}


def label_axes(obj: T, labels: Mapping[str, Sequence[Any]]) -> T:
    """Name the batch axes of ``obj`` (in order) and give each its values, for ``sweep``'s
    result: ``label_axes(batched, {"peak": [0.1, 0.2]})``.  ``grid`` does this with its keys, so
    its dims are named after them (even a key with a single value, or a factory argument that is
    not a field) and labelled with the values exactly as given.  The labels belong to this very
    object (kept beside it, not in the pytree: a ``tree_map`` of it drops them, and they never
    change the compiled program)."""
    shape = batch_shape(obj)
    sizes = tuple(len(v) for v in labels.values())
    if sizes != shape:
        raise ValueError(f"label_axes: labels of sizes {sizes} for batch shape {shape}")
    key = id(obj)
    _AXIS_LABELS[key] = tuple((str(n), tuple(v)) for n, v in labels.items())
    weakref.finalize(obj, _AXIS_LABELS.pop, key, None)
    return obj


def axis_labels(obj: Any) -> tuple[tuple[str, tuple[Any, ...]], ...] | None:
    """The ``(name, values)`` of each batch axis given by ``label_axes`` (or ``grid``), if any."""
    return _AXIS_LABELS.get(id(obj))
