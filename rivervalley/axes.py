r"""How a sweep's components become the labelled axes of its result.

A *component* (the landscape, the optimizer or the schedule of ``sweep``) is given either as one
object or as a ``dict`` of named objects (a *named axis*, e.g. ``{"wsd": wsd(...), "cosine":
cosine(...)}``).  Each object may be batched: its array fields have leading batch axes beyond
their base ``ndim`` (``rivervalley.pytree``), e.g. from ``pytree.grid``.

The result's dims for a component are, in order:

- the component's own name (``"schedule"``), for a named axis, with the names as coordinate;
- one dim per batch axis: for an object made by ``pytree.grid`` (or ``pytree.label_axes``) the
  grid's keys with their values as coordinates; otherwise named after the field that varies
  along it (``peak``,
  ``decay_fraction``, an optimizer hyperparameter such as ``b1``).  A field *varies* along an
  axis when its values are not all equal along it; the dim takes the name of the first field
  varying along that axis alone (else along it and others; else ``<component>_axis<i>``).
  Every varying field becomes a coordinate over the dims it varies along (``total_steps`` zipped
  with ``peak`` is a non-index coordinate of dim ``peak``; a field varying along two axes is a
  2-d coordinate; a vector field that is constant within each entry, such as a noise level
  ``sigma * ones(d)``, is labelled by that constant).  float32 values are stored as the float64
  of their shortest decimal form, so ``sel(peak=0.02)`` matches.

Members of a named axis must have the same batch dims (names and sizes); a coordinate whose
values differ between members gains the component's dim.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from rivervalley.pytree import axis_labels, batch_shape, named_arrays

Coords = dict[str, tuple[tuple[str, ...], np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Layout:
    """The labelled axes of one component.

    ``members``: the objects (one, or one per name of a named axis), each of batch shape
    ``batch``; ``names``: the names of a named axis (``None`` for one object); ``dims`` and
    ``sizes``: the component's result dims in order (the named axis first, then one per batch
    axis); ``coords``: coordinate name -> (dims, values)."""

    component: str
    members: tuple[Any, ...]
    names: tuple[str, ...] | None
    batch: tuple[int, ...]
    dims: tuple[str, ...]
    sizes: tuple[int, ...]
    coords: Coords

    @property
    def size(self) -> int:
        """Number of (member, batch entry) pairs: the product of ``sizes``."""
        return int(np.prod(self.sizes, dtype=np.int64))

    @property
    def kind(self) -> str:
        """The kind of a single object (``wsd``, ``sgd``, ...), stored as a scalar coordinate."""
        return kind_of(self.members[0])

    def renamed(self, mapping: Mapping[str, str]) -> Layout:
        """The layout with dims and coordinates renamed by ``mapping`` (others unchanged)."""

        def new(name: str) -> str:
            return mapping.get(name, name)

        coords = {new(c): (tuple(new(d) for d in dims), v) for c, (dims, v) in self.coords.items()}
        return dataclasses.replace(self, dims=tuple(new(d) for d in self.dims), coords=coords)


def kind_of(obj: Any) -> str:
    """A component's kind: its ``kind`` (schedules, landscapes) or ``name`` (optimizers)."""
    return str(getattr(obj, "kind", None) or getattr(obj, "name", None) or type(obj).__name__)


def _varying_axes(full: np.ndarray, n_batch: int) -> tuple[int, ...]:
    return tuple(
        i for i in range(n_batch) if full.shape[i] > 1 and np.any(full != np.take(full, [0], i))
    )


def batch_labels(component: str, obj: Any) -> tuple[tuple[str, ...], Coords]:
    """The dim names of ``obj``'s batch axes and the coordinates of its varying fields."""
    shape = batch_shape(obj)
    arrays = {}
    for name, (value, ndim) in named_arrays(obj).items():
        value = np.asarray(value)
        arrays[name] = np.broadcast_to(value, shape + value.shape[value.ndim - ndim :])
    varying = {name: _varying_axes(full, len(shape)) for name, full in arrays.items()}
    labels = axis_labels(obj)
    coords: Coords = {}
    if labels is not None:  # named by grid / label_axes: its keys and values as given
        dims = [name for name, _ in labels]
        for name, values in labels:
            if all(isinstance(v, int | float | str | np.number) for v in values):
                coords[name] = ((name,), decimal(np.asarray(values)))
    else:
        dims = []
        for i in range(len(shape)):
            alone = [n for n, axes in varying.items() if axes == (i,)]
            shared = [n for n, axes in varying.items() if i in axes]
            dims.append((alone or shared or [f"{component}_axis{i}"])[0])
        if len(set(dims)) < len(dims):  # one field varying along several axes named two
            dims = [d if dims.count(d) == 1 else f"{component}_axis{i}" for i, d in enumerate(dims)]
    for name, axes in varying.items():
        if not axes or name in coords:
            continue
        full = arrays[name]
        index = tuple(slice(None) if i in axes else 0 for i in range(len(shape)))
        values = full[index]
        n_inner = full.ndim - len(shape)
        flat = values.reshape((*values.shape[: values.ndim - n_inner], -1))
        if n_inner and flat.shape[-1] and np.all(flat == flat[..., :1]):
            values, n_inner = flat[..., 0], 0  # a constant vector: labelled by its value
        inner = tuple(f"{name}_dim{j}" for j in range(n_inner))
        coords[name] = (tuple(dims[i] for i in axes) + inner, decimal(values))
    return tuple(dims), coords


def decimal(values: np.ndarray) -> np.ndarray:
    """Coordinate values as float64 of their shortest decimal form: the float32 ``0.02``
    (``0.0199999995...``) becomes ``0.02``, so ``ds.sel(peak=0.02)`` finds it.  Other dtypes
    are returned as they are."""
    if values.dtype != np.float32:
        return values
    return values.astype(str).astype(np.float64)


def layout(component: str, value: Any) -> Layout:
    """The ``Layout`` of a component given as one object or as a dict of named objects."""
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"{component}: a named axis needs at least one entry, got {{}}")
        names = tuple(value)
        for name in names:
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"{component}: names of a named axis must be strings, got {name!r}"
                )
        members = tuple(value.values())
    else:
        names, members = None, (value,)
    labels = [batch_labels(component, m) for m in members]
    batches = [batch_shape(m) for m in members]
    if names is not None:
        for name, (dims, _), batch in zip(names, labels, batches, strict=True):
            if (dims, batch) != (labels[0][0], batches[0]):
                raise ValueError(
                    f"{component}: every entry of a named axis needs the same batch dims; "
                    f"{names[0]!r} has {dict(zip(labels[0][0], batches[0], strict=True))}, "
                    f"{name!r} has {dict(zip(dims, batch, strict=True))}"
                )
    batch = batches[0]
    dims = labels[0][0]
    coords: Coords = {}
    if names is None:
        coords = labels[0][1]
    else:
        for cname in dict.fromkeys(c for _, cs in labels for c in cs):
            found = [cs.get(cname) for _, cs in labels]
            present = [f for f in found if f is not None]
            same = len(present) == len(found) and all(
                f[0] == present[0][0] and np.array_equal(f[1], present[0][1]) for f in present
            )
            if same:
                coords[cname] = present[0]
                continue
            expanded = [None if f is None else _expand(f, dims, batch) for f in found]
            shapes = {e.shape for e in expanded if e is not None}
            if len(shapes) != 1:  # e.g. budget ends of different counts: no common coordinate
                continue
            inner = tuple(d for d in present[0][0] if d not in dims)
            stacked = np.full((len(names), *shapes.pop()), np.nan)
            for i, e in enumerate(expanded):
                if e is not None:
                    stacked[i] = e
            coords[cname] = ((component, *dims, *inner), stacked)
    sizes = batch if names is None else (len(names), *batch)
    all_dims = dims if names is None else (component, *dims)
    return Layout(component, members, names, batch, all_dims, tuple(sizes), coords)


def _expand(coord: tuple[tuple[str, ...], np.ndarray], dims, batch) -> np.ndarray:
    """A member's coordinate broadcast over all batch ``dims`` (then its inner dims)."""
    own_dims, values = coord
    n_inner = sum(d not in dims for d in own_dims)
    inner = values.shape[values.ndim - n_inner :]
    shape = [values.shape[own_dims.index(d)] if d in own_dims else 1 for d in dims]
    return np.broadcast_to(values.reshape((*shape, *inner)), (*batch, *inner))
