"""Language-model landscapes: the bigram toy (synthetic corpora with controlled per-context
uncertainty, ``data``, and bigram models, ``model``) and a small transformer (``transformer``)
on real text (``text``: the King James Bible, byte tokens)."""

from rivervalley.lm.data import (
    BigramCorpus,
    ContextClass,
    FiniteCorpus,
    bigram_corpus,
    deterministic,
    dirichlet,
    finite_corpus,
    uniform,
    zipf,
)
from rivervalley.lm.model import BigramTable, Factorized, LanguageModel, bigram_table, factorized
from rivervalley.lm.text import TextCorpus, next_token_entropy, text_corpus
from rivervalley.lm.transformer import Transformer, transformer

__all__ = [
    "BigramCorpus",
    "BigramTable",
    "ContextClass",
    "Factorized",
    "FiniteCorpus",
    "LanguageModel",
    "TextCorpus",
    "Transformer",
    "bigram_corpus",
    "bigram_table",
    "deterministic",
    "dirichlet",
    "factorized",
    "finite_corpus",
    "next_token_entropy",
    "text_corpus",
    "transformer",
    "uniform",
    "zipf",
]
