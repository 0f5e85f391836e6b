"""The convention every script in ``experiments/`` follows: compute -> cache -> plot.

An experiment provides ``compute(quick) -> Dataset`` (the expensive part, cached as netCDF keyed
by its configuration) and ``plot(ds, out_dir) -> list[Path]`` (reads only the dataset).
``run_experiment`` parses ``--quick``, ``--out DIR`` and ``--no-progress``, reuses the cache only
when the configuration and the meaning of the code (the script's and the package's: the AST
without docstrings, so comment and docstring edits keep caches) all match, and prints where the
figures are.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import xarray as xr

from rivervalley import results


def default_output_dir(script: str | Path, name: str) -> Path:
    """``<repository>/outputs/experiments/<name>`` for a script in ``<repository>/experiments``."""
    return Path(script).resolve().parents[1] / "outputs" / "experiments" / name


def cache_request(
    name: str, script: str | Path, cfg: Any, out: Path, *, quick: bool
) -> tuple[Path, dict[str, Any]]:
    """The cache file of an experiment and the key under which ``results.cached`` stores it: the
    experiment's name, its full configuration and the meaning of its script
    (``results.source_meaning_hash``: comment and docstring edits keep the key)."""
    script = Path(script)
    script_hash = results.source_meaning_hash([script], root=script.parent)
    key = {"experiment": name, "config": _config_dict(cfg), "script": script_hash}
    return out / f"{name}_{'quick' if quick else 'full'}.nc", key


def _config_dict(cfg: Any) -> Any:
    return getattr(cfg, "__dict__", cfg)


def with_seeds(ds: xr.Dataset, cfg: Any) -> xr.Dataset:
    """Record in ``attrs["seeds"]`` the random seeds behind ``ds``: the values of its ``seed``
    variable if it has one, else ``0 .. n-1`` for a configuration field ``seeds = n``."""
    if "seed" in ds.variables:
        values = np.unique(np.asarray(ds["seed"].values)).astype(int).tolist()
    else:
        fields = _config_dict(cfg)
        n = fields.get("seeds") if isinstance(fields, dict) else None
        values = list(range(n)) if isinstance(n, int) else None
    if values is None:
        ds.attrs["seeds"] = "none: the computation draws no random numbers"
    elif values == list(range(len(values))):
        n = len(values)
        ds.attrs["seeds"] = f"0..{n - 1} ({n} seed{'s' * (n > 1)})"
    else:
        ds.attrs["seeds"] = json.dumps(values)
    return ds


def load_script(path: str | Path) -> ModuleType:
    """Import the experiment script at ``path`` as module ``experiments.<stem>``."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"experiments.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import experiment script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_experiment(
    name: str,
    *,
    script: str | Path,
    config: Callable[[bool], Any],
    compute: Callable[[Any, bool | None], xr.Dataset],
    plot: Callable[[xr.Dataset, Any, Path], list[Path]],
    description: str | None = None,
    argv: Sequence[str] | None = None,
) -> list[Path]:
    """Parse the standard flags, compute (or load the cache), plot; return the figure paths.

    ``config(quick)`` gives the configuration (a JSON-able object or dataclass with ``asdict``);
    ``compute(config, progress)`` the dataset; ``plot(ds, config, out_dir)`` the figures.
    """
    parser = argparse.ArgumentParser(prog=name, description=description)
    parser.add_argument("--quick", action="store_true", help="seconds: small sizes, for tests")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    out = args.out or default_output_dir(script, name)
    cfg = config(args.quick)
    path, key = cache_request(name, script, cfg, out, quick=args.quick)
    progress = False if args.no_progress else None
    ds = results.cached(path, key, lambda: with_seeds(compute(cfg, progress), cfg))
    figures = plot(ds, cfg, out)
    for figure in figures:
        print(f"figure written to {figure.resolve()}")
    return figures


def main_for(module_name: str, name: str) -> Callable[..., list[Path]]:
    """The ``main(argv)`` of the experiment script ``module_name`` (pass ``__name__``): runs
    ``run_experiment(name, ...)`` with the module's ``config``, ``compute``, ``plot`` and
    docstring, looked up at call time (so a test may replace ``compute``)."""

    def main(argv: Sequence[str] | None = None) -> list[Path]:
        module = sys.modules[module_name]
        return run_experiment(
            name,
            script=module.__file__ or name,
            config=module.config,
            compute=module.compute,
            plot=module.plot,
            description=module.__doc__,
            argv=argv,
        )

    return main


def write_summary(path: Path, summary: Any, *, echo: bool = True) -> Path:
    """Write an experiment's measured summary as indented JSON (and print it)."""
    text = json.dumps(summary, indent=2)
    path.write_text(text + "\n")
    if echo:
        print(text)
    return path
