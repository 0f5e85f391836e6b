"""Results as ``xarray.Dataset``s: save, load, and a configuration-checked cache.

Files are netCDF-4 (HDF5, via ``h5netcdf``), written atomically.  ``save`` stores a SHA-256 of
the data (every variable and coordinate, names, shapes, dtypes and bytes) in
``attrs["content_sha256"]``; ``load`` recomputes it and raises ``CorruptResultError`` on a
mismatch, and a truncated or unreadable file raises it too.  A dataset's ``attrs["config"]`` is
the JSON of everything that produced it; ``cached`` reuses a file only when its content verifies
and its cache key matches the request: the configuration, the package version and the meaning of
the package code (``code_fingerprint``: the AST without docstrings, so comment and docstring edits
keep caches while any change to the code itself invalidates them).  It records the
``provenance`` (versions, git commit, platform, time) of what it computes.  Result files get the
permissions of the process's umask (``0o644`` under ``022``), like any file the process writes.
"""

from __future__ import annotations

import ast
import datetime
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from rivervalley import __version__
from rivervalley import checkpoint as checkpoint_io

ENGINE = "h5netcdf"


class CorruptResultError(ValueError):
    """A result file that cannot be read or whose content does not match its checksum."""


def content_hash(ds: xr.Dataset) -> str:
    """SHA-256 over every variable and coordinate (name, dtype, shape, bytes), in name order."""
    digest = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        values = np.ascontiguousarray(ds.variables[name].values)
        if values.dtype.kind in "OUS":
            values = np.asarray(values.astype(str), dtype="U")
        digest.update(f"{name}|{values.dtype.str}|{values.shape}|".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` atomically (a temporary file in the same folder, then rename),
    with its ``content_hash`` in ``attrs["content_sha256"]`` and the umask's permissions."""
    for name, var in ds.variables.items():
        values = np.asarray(var.values)
        if values.dtype.kind == "O" and not all(isinstance(v, str) for v in values.ravel()):
            raise ValueError(
                f"save: variable {name!r} is an object array holding non-strings (e.g. the NaN "
                "that xr.concat(join='outer') puts in a missing label); netCDF would not read it "
                "back as written: fill it with strings or convert it to a numeric dtype"
            )
    ds = ds.copy()
    ds.attrs["content_sha256"] = content_hash(ds)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine=ENGINE)
        checkpoint_io.give_umask_permissions(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load(path: str | os.PathLike, *, verify: bool = True) -> xr.Dataset:
    """Read a dataset written by ``save`` fully into memory (the file is closed afterwards).

    Raises ``CorruptResultError`` if the file is unreadable or (with ``verify``) its content does
    not match the stored checksum."""
    try:
        ds = xr.load_dataset(path, engine=ENGINE)
    except FileNotFoundError:
        raise
    except Exception as err:  # h5py/h5netcdf raise many types on damaged files
        raise CorruptResultError(f"{path}: cannot read result file ({err})") from err
    if verify:
        stored = ds.attrs.get("content_sha256")
        if stored != content_hash(ds):
            raise CorruptResultError(
                f"{path}: content does not match its checksum (stored {stored!r})"
            )
    return ds


def drop_diverged(ds: xr.Dataset) -> tuple[xr.Dataset, int]:
    """``ds`` with every variable of a diverged run masked to NaN over all its steps (not only
    from ``diverged_step`` on), and how many runs that is: means with ``skipna`` then leave the
    whole run out.  Coordinates, ``lr`` and the ``diverged`` flags are kept as they are."""
    if "diverged" not in ds:
        return ds, 0
    bad = ds["diverged"]
    keep = {"lr", "diverged", "diverged_step"}
    masked = ds.copy()
    for name, var in ds.data_vars.items():
        if name in keep or var.dtype.kind != "f" or not set(bad.dims) <= set(var.dims):
            continue
        masked[name] = var.where(~bad)
    return masked, int(bad.values.sum())


def canonical(config: Any) -> str:
    """Canonical JSON of a configuration (sorted keys), the form stored in ``attrs``."""
    return json.dumps(config, sort_keys=True, default=str)


_DOCSTRING_HOLDERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def code_meaning(source: str | bytes) -> str:
    """The meaning of Python ``source``: ``ast.dump`` of its syntax tree without line numbers and
    without docstrings (the leading string statement of the module and of each class and
    function; a body left empty becomes ``pass``, as a docstring-only body means).  Comments,
    blank lines and formatting are not in the tree, so editing them, or a docstring, keeps the
    meaning; any other change alters it.  Raises ``SyntaxError`` (or ``ValueError``) if
    ``source`` does not parse.  The dump's form belongs to the Python version running it."""
    tree = ast.parse(source)
    for node in list(ast.walk(tree)):
        if not isinstance(node, _DOCSTRING_HOLDERS) or not node.body:
            continue
        first = node.body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def source_meaning_hash(files: Iterable[str | os.PathLike], root: str | os.PathLike) -> str:
    """SHA-256 over ``files`` (in sorted order) of each file's path relative to ``root`` and its
    ``code_meaning``.  A file that does not parse (a syntax error, a stray NUL byte) falls back
    to its raw bytes, marked as such, so any edit of it still changes the hash.

    Both cache keys use it: ``code_fingerprint`` (the package) and ``experiment.cache_request``
    (an experiment script)."""
    root = Path(root).absolute()
    digest = hashlib.sha256()
    for file in sorted(Path(f).absolute() for f in files):
        raw = file.read_bytes()
        try:
            kind, body = "ast", code_meaning(raw).encode()
        except (SyntaxError, ValueError, RecursionError):
            kind, body = "raw", raw
        name = file.relative_to(root).as_posix()
        digest.update(f"{name}\0{kind}\0{len(body)}\0".encode())
        digest.update(body)
    return digest.hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """``source_meaning_hash`` of the package's ``.py`` files: any change to the code invalidates
    cached results and checkpoints, while comment and docstring edits keep them.  Computed once
    per process."""
    root = Path(__file__).resolve().parent
    return source_meaning_hash(root.rglob("*.py"), root)


@functools.cache
def _git_commit() -> str | None:
    """The commit of the git checkout holding the package (``+dirty`` if it has uncommitted
    changes), or ``None`` outside a checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def provenance() -> dict[str, str]:
    """What produced a result: the package version, its source fingerprint and git commit, the
    versions of the numerical libraries, Python, the platform and the time (UTC, ISO 8601)."""
    libraries = ("jax", "jaxlib", "optax", "numpy", "xarray")
    info = {
        "rivervalley": __version__,
        "code_sha256": code_fingerprint(),
        "git_commit": _git_commit() or "not a git checkout",
        **{name: importlib.metadata.version(name) for name in libraries},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    return info


def is_cached(path: str | os.PathLike, config: Any) -> bool:
    """Whether ``cached(path, config, ...)`` would reuse the file instead of computing."""
    return _reusable(Path(path), _cache_key(config)) is not None


def _cache_key(config: Any) -> str:
    return canonical({"config": config, "code": code_fingerprint()})


def _reusable(path: Path, key: str) -> xr.Dataset | None:
    if not path.exists():
        return None
    try:
        ds = load(path)
    except CorruptResultError:
        return None
    if ds.attrs.get("cache_config") == key and ds.attrs.get("rivervalley_version") == __version__:
        return ds
    return None


def cached(path: str | os.PathLike, config: Any, compute: Callable[[], xr.Dataset]) -> xr.Dataset:
    """Load ``path`` if it holds a result of exactly ``config``, made by this package version and
    the same meaning of its code (``code_fingerprint``); otherwise run ``compute()``, tag it
    (``cache_config``: the configuration and code fingerprint; ``provenance``: JSON of
    ``provenance()``) and save it.

    While ``compute()`` runs, every sweep checkpoints each chunk under a hidden folder next to
    ``path``; if the process is killed, running the same command again resumes every sweep from
    its last completed chunk.  The folder is removed once the result is saved."""
    path = Path(path)
    key = _cache_key(config)
    ds = _reusable(path, key)
    if ds is not None:
        return ds
    checkpoints = path.parent / f".{path.name}.checkpoints"
    with checkpoint_io.directory(checkpoints):
        ds = compute()
    ds.attrs.update(
        {
            "cache_config": key,
            "rivervalley_version": __version__,
            "provenance": canonical(provenance()),
        }
    )
    result = load(save(ds, path))
    shutil.rmtree(checkpoints, ignore_errors=True)
    return result
