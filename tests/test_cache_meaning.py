"""Cache keys by meaning: comment, docstring and blank-line edits of an experiment script or of the
package keep caches, any change to the code itself invalidates them; and the files the lab writes
(results, checkpoints) get the process's umask permissions, not ``mkstemp``'s ``0o600``."""

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from rivervalley import checkpoint as checkpoint_io
from rivervalley import results
from rivervalley.experiment import cache_request

SCRIPT = '''"""A tiny experiment."""

RATE = 1


class Config:
    """Its configuration."""

    steps = 3


def compute(x):
    """Scale ``x``."""
    return x * RATE
'''

# The same code: a comment, blank lines and other docstrings.
COMMENTED = '''"""A tiny experiment, documented differently."""

# the learning rate
RATE = 1  # a comment


class Config:
    """Another configuration docstring."""

    steps = 3  # steps


def compute(x):
    """Scale ``x`` (edited docstring)."""

    # multiply
    return x * RATE
'''

# Different code, each line one edit of SCRIPT.
CHANGED = [
    SCRIPT.replace("RATE = 1", "RATE = 2"),
    SCRIPT.replace("steps = 3", "steps = 4"),
    SCRIPT.replace("x * RATE", "x + RATE"),
    SCRIPT.replace("def compute(x)", "def compute(y)").replace("x * RATE", "y * RATE"),
    SCRIPT + "\nNAME = 'a'\n",
]


def _key(script: Path, tmp_path: Path) -> dict:
    return cache_request("tiny", script, {"steps": 3}, tmp_path / "out", quick=True)[1]


# ---------------------------------------------------------------------------------------------
# (a) cache_request keys an experiment by the meaning of its script


def test_cache_request_keeps_key_on_comment_and_docstring_edits(tmp_path: Path) -> None:
    script = tmp_path / "tiny.py"
    script.write_text(SCRIPT)
    original = _key(script, tmp_path)
    script.write_text(SCRIPT.replace("RATE = 1\n", "RATE = 1  # the rate\n"))
    assert _key(script, tmp_path) == original, "a comment edit changed the key"
    script.write_text(SCRIPT.replace('"""Scale ``x``."""', '"""Multiply ``x`` by the rate."""'))
    assert _key(script, tmp_path) == original, "a docstring edit changed the key"
    script.write_text(COMMENTED)
    assert _key(script, tmp_path) == original


@pytest.mark.parametrize("changed", CHANGED)
def test_cache_request_changes_key_on_code_edits(tmp_path: Path, changed: str) -> None:
    script = tmp_path / "tiny.py"
    script.write_text(SCRIPT)
    original = _key(script, tmp_path)
    script.write_text(changed)
    assert _key(script, tmp_path) != original


# ---------------------------------------------------------------------------------------------
# (b) results.cached reuses a result across a comment edit, recomputes after a code edit


def test_cached_reuses_after_comment_edit_and_recomputes_after_code_edit(tmp_path: Path) -> None:
    script = tmp_path / "tiny.py"
    script.write_text(SCRIPT)
    calls = []

    def compute() -> xr.Dataset:
        calls.append(1)
        return xr.Dataset({"loss": ("step", np.arange(4.0) * len(calls))})

    def run() -> xr.Dataset:
        path, key = cache_request("tiny", script, {"steps": 3}, tmp_path / "out", quick=True)
        return results.cached(path, key, compute)

    first = run()
    assert len(calls) == 1
    script.write_text(SCRIPT.replace("RATE = 1\n", "RATE = 1  # an edited comment\n"))
    again = run()
    assert len(calls) == 1, "a comment edit recomputed the cached result"
    np.testing.assert_array_equal(again["loss"].values, first["loss"].values)
    script.write_text(COMMENTED)
    run()
    assert len(calls) == 1, "a docstring edit recomputed the cached result"
    script.write_text(SCRIPT.replace("RATE = 1", "RATE = 2"))
    changed = run()
    assert len(calls) == 2, "a code change reused the cached result"
    np.testing.assert_array_equal(changed["loss"].values, 2 * first["loss"].values)


# ---------------------------------------------------------------------------------------------
# (c) the meaning of package-like source


def test_code_meaning_ignores_comments_docstrings_and_blank_lines() -> None:
    assert results.code_meaning(SCRIPT) == results.code_meaning(COMMENTED)
    plain = "def f(x):\n    return x\n"
    documented = 'def f(x):\n    """Doc."""\n\n    # identity\n    return x\n'
    assert results.code_meaning(plain) == results.code_meaning(documented)
    asynchronous = "class A:\n    async def g(self):\n        return 1\n"
    documented = (
        'class A:\n    """A."""\n    async def g(self):\n        """G."""\n        return 1\n'
    )
    assert results.code_meaning(asynchronous) == results.code_meaning(documented)
    # a body that is only a docstring means ``pass``
    assert results.code_meaning('def f():\n    """Doc."""\n') == results.code_meaning(
        "def f():\n    pass\n"
    )
    # no line numbers: the same code moved down a line means the same
    assert results.code_meaning("\n\nX = 1\n") == results.code_meaning("X = 1\n")


def test_code_meaning_changes_with_code() -> None:
    meanings = {results.code_meaning(source) for source in [SCRIPT, *CHANGED]}
    assert len(meanings) == 1 + len(CHANGED)
    # only the leading string is a docstring: a later string statement is code
    assert results.code_meaning('X = 1\n"a"\n') != results.code_meaning('X = 1\n"b"\n')
    assert results.code_meaning('X = "a"\n') != results.code_meaning('X = "b"\n')


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _package_hash(root: Path) -> str:
    return results.source_meaning_hash(root.rglob("*.py"), root)


def test_source_meaning_hash_of_a_package(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": '"""Package."""\n',
        "pkg/core.py": SCRIPT,
        "pkg/sub/m.py": "Y = 0\n",
    }
    base = _package_hash(_package(tmp_path / "a", files))
    edited = {**files, "pkg/core.py": COMMENTED, "pkg/__init__.py": '"""Other."""\n# note\n'}
    assert _package_hash(_package(tmp_path / "b", edited)) == base
    changed = {**files, "pkg/core.py": CHANGED[0]}
    assert _package_hash(_package(tmp_path / "c", changed)) != base
    moved = {**files, "pkg/sub/n.py": files["pkg/sub/m.py"]}
    del moved["pkg/sub/m.py"]
    assert _package_hash(_package(tmp_path / "d", moved)) != base, "the relative path is keyed"


def test_source_meaning_hash_falls_back_to_raw_bytes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n    return 1  # a comment\n")
    with pytest.raises(SyntaxError):
        results.code_meaning(broken.read_text())
    before = results.source_meaning_hash([broken], tmp_path)
    broken.write_text("def f(:\n    return 1  # another comment\n")
    assert results.source_meaning_hash([broken], tmp_path) != before


def test_code_fingerprint_is_the_meaning_of_the_package() -> None:
    root = Path(results.__file__).resolve().parent
    assert results.code_fingerprint() == results.source_meaning_hash(root.rglob("*.py"), root)


# ---------------------------------------------------------------------------------------------
# (d) files written by the lab get the umask's permissions


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("mask", "mode"),
    [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
    ids=["umask022", "umask077", "umask002"],
)
def test_written_files_get_umask_permissions(tmp_path: Path, mask: int, mode: int) -> None:
    ds = xr.Dataset({"loss": ("step", np.arange(3.0))})
    state = {"x": jnp.zeros(2), "key": jax.random.key(0)}
    with _umask(mask):
        saved = results.save(ds, tmp_path / "result.nc")
        checkpoint = tmp_path / "sweep.npz"
        checkpoint_io.save(checkpoint, "fingerprint", state, {"loss": np.zeros(3)}, done=1)
        cached = tmp_path / "cached.nc"
        results.cached(cached, {"mask": mask}, lambda: ds.copy())
    assert _mode(saved) == mode
    assert _mode(checkpoint) == mode
    assert _mode(cached) == mode
    assert checkpoint_io.load(checkpoint, "fingerprint", state) is not None
