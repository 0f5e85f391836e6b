"""Atomic on-disk checkpoints of a sweep in progress, so a killed sweep resumes where it stopped.

A checkpoint is one ``.npz`` file holding the batched ``RunState`` leaves (PRNG keys as their raw
key data), the records so far, the number of records done, and a *fingerprint* of everything that
determines the result (configuration, chunking, package code).  It is written to a temporary file
and renamed over the old one, so at any instant the file on disk is a complete, consistent
checkpoint; a truncated or corrupted file fails the zip CRC check or the structure check and is
ignored (the sweep starts afresh).  Like every file the lab writes, it gets the permissions the
process's umask allows (``give_umask_permissions``), not the owner-only mode of ``mkstemp``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_META = "__meta__"
_DIRECTORY: contextvars.ContextVar[Path | None] = contextvars.ContextVar("directory", default=None)


@contextlib.contextmanager
def directory(path: str | os.PathLike) -> Iterator[Path]:
    """Within this context every ``sweep`` without an explicit ``checkpoint`` checkpoints to
    ``path/sweep-<fingerprint>.npz`` (so re-running the same command resumes each sweep)."""
    token = _DIRECTORY.set(Path(path))
    try:
        yield Path(path)
    finally:
        _DIRECTORY.reset(token)


def default_path(fingerprint: str) -> Path | None:
    """The checkpoint file for a sweep inside a ``directory`` context, else ``None``."""
    folder = _DIRECTORY.get()
    return None if folder is None else folder / f"sweep-{fingerprint[:24]}.npz"


def give_umask_permissions(path: str | os.PathLike) -> None:
    """Set ``path`` to the mode an ordinary ``open(path, "w")`` would have given it: ``0o666``
    less the process's umask (``0o644`` under umask ``022``), instead of ``mkstemp``'s ``0o600``.

    Call it on a temporary file before renaming it into place.  The umask can only be read by
    setting it; it is set to ``0o077`` (so a file another thread creates in that instant is
    private, never world-writable) and restored at once."""
    umask = os.umask(0o077)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _is_key(leaf: Any) -> bool:
    return jnp.issubdtype(getattr(leaf, "dtype", np.float32), jax.dtypes.prng_key)


def save(path: str | os.PathLike, fingerprint: str, state: Any, records: dict, done: int) -> None:
    """Write ``state`` (a pytree), ``records`` (name -> array) and ``done`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    leaves = jax.tree_util.tree_leaves(state)
    arrays = {
        f"state_{i}": np.asarray(jax.random.key_data(x) if _is_key(x) else x)
        for i, x in enumerate(leaves)
    }
    arrays |= {f"record_{k}": np.asarray(v) for k, v in records.items()}
    meta = {"fingerprint": fingerprint, "done": done, "n_leaves": len(leaves)}
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        give_umask_permissions(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path: str | os.PathLike, fingerprint: str, template: Any) -> tuple[Any, dict, int] | None:
    """Restore ``(state, records, done)`` if ``path`` is a valid checkpoint of ``fingerprint``
    whose state has the structure, shapes and dtypes of ``template``; otherwise ``None``."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with open(path, "rb") as f, np.load(f) as z:
            meta = json.loads(z[_META].tobytes().decode())
            if meta.get("fingerprint") != fingerprint:
                return None
            saved = [z[f"state_{i}"] for i in range(meta["n_leaves"])]
            records = {k[len("record_") :]: z[k] for k in z.files if k.startswith("record_")}
    except Exception:  # a damaged file can fail in many ways (zip, npy, json): start afresh
        return None
    leaves, treedef = jax.tree_util.tree_flatten(template)
    if len(saved) != len(leaves):
        return None
    restored = []
    for old, new in zip(leaves, saved, strict=True):
        if _is_key(old):
            expected = jax.random.key_data(old)
            if new.shape != expected.shape or new.dtype != expected.dtype:
                return None
            restored.append(jax.random.wrap_key_data(new, impl=jax.random.key_impl(old)))
        else:
            if new.shape != np.shape(old) or new.dtype != np.asarray(old).dtype:
                return None
            restored.append(new)
    return jax.tree_util.tree_unflatten(treedef, restored), records, int(meta["done"])
