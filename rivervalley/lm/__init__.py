"""The bigram language-model toy: synthetic corpora with controlled per-context uncertainty
(``data``) and bigram models as landscapes (``model``)."""

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

__all__ = [
    "BigramCorpus",
    "BigramTable",
    "ContextClass",
    "Factorized",
    "FiniteCorpus",
    "LanguageModel",
    "bigram_corpus",
    "bigram_table",
    "deterministic",
    "dirichlet",
    "factorized",
    "finite_corpus",
    "uniform",
    "zipf",
]
