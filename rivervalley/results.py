"""Results as ``xarray.Dataset``s: save, load, and a configuration-checked cache.

Files are netCDF-4 (HDF5, via ``h5netcdf``).  A dataset's ``attrs["config"]`` is the JSON of
everything that produced it (components, steps, seeds) and ``attrs["rivervalley_version"]`` the
package version; ``cached`` reuses a file only when both match the request.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xarray as xr

from rivervalley import __version__

ENGINE = "h5netcdf"


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` atomically (a temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine=ENGINE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read a dataset written by ``save`` fully into memory (the file is closed afterwards)."""
    return xr.load_dataset(path, engine=ENGINE)


def canonical(config: Any) -> str:
    """Canonical JSON of a configuration (sorted keys), the form stored in ``attrs``."""
    return json.dumps(config, sort_keys=True, default=str)


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 of the package's source files: any code change invalidates cached results."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for source in sorted(root.rglob("*.py")):
        digest.update(source.relative_to(root).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def cached(path: str | os.PathLike, config: Any, compute: Callable[[], xr.Dataset]) -> xr.Dataset:
    """Load ``path`` if it holds a result of exactly ``config``, made by this package version and
    source code (``code_fingerprint``); otherwise run ``compute()``, tag it and save it."""
    path = Path(path)
    key = canonical({"config": config, "code": code_fingerprint()})
    if path.exists():
        try:
            ds = load(path)
        except (OSError, ValueError):
            ds = None
        if (
            ds is not None
            and ds.attrs.get("cache_config") == key
            and ds.attrs.get("rivervalley_version") == __version__
        ):
            return ds
    ds = compute()
    ds.attrs.update({"cache_config": key, "rivervalley_version": __version__})
    save(ds, path)
    return ds
