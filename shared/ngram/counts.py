"""n-gram counting with NumPy: every order in a few vectorized passes over the corpus.

An n-gram of order n is stored as (context, word), where `context` is the index of its
(n-1)-word prefix in the order n-1 table. The key `context * vocab_size + word` is then a
single int64 whatever n is, so counting is `np.unique` on keys and lookup is `np.searchsorted`,
with no per-token Python loop. (Hand-written: no maintained Python library counts n-grams
this way; KenLM's lmplz is a C++ build, the complaint this suite answers.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


class NGramError(ValueError):
    """Bad input to an n-gram model: the message names the problem and the fix."""


@dataclasses.dataclass
class NGramTable:
    """The n-grams of one order, sorted by key = context * vocab_size + word."""

    context: np.ndarray  # int64 [M], index into the previous order's table (0 for unigrams)
    word: np.ndarray  # int64 [M], vocabulary id of the last word
    vocab_size: int

    @property
    def keys(self) -> np.ndarray:
        return self.context * self.vocab_size + self.word

    def __len__(self) -> int:
        return len(self.word)

    def lookup(self, context: np.ndarray, word: np.ndarray) -> np.ndarray:
        """Index of each (context, word) in this table, or -1 (also for context == -1)."""
        keys = self.keys
        query = np.asarray(context, np.int64) * self.vocab_size + np.asarray(word, np.int64)
        pos = np.minimum(np.searchsorted(keys, query), max(len(keys) - 1, 0))
        found = (np.asarray(context) >= 0) & (keys[pos] == query) if len(keys) else np.zeros(query.shape, bool)
        return np.where(found, pos, -1)


@dataclasses.dataclass
class NGramCounts:
    """Tables and raw counts for orders 1..N (index 0 = unigrams)."""

    tables: list[NGramTable]
    counts: list[np.ndarray]
    vocab_size: int
    bos_id: int
    eos_id: int

    @property
    def order(self) -> int:
        return len(self.tables)


def flatten_sentences(sentences: Sequence[np.ndarray], bos_id: int, eos_id: int):
    """Sentences of ids -> one token array `<s> w.. </s> <s> ...` and each token's sentence index."""
    if len(sentences) == 0:
        raise NGramError("no sentences to count: the corpus is empty. Give at least one sentence.")
    lengths = np.array([len(s) for s in sentences], np.int64) + 2
    tokens = np.empty(lengths.sum(), np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    tokens[starts] = bos_id
    tokens[starts + lengths - 1] = eos_id
    inner = np.ones(len(tokens), bool)
    inner[starts] = inner[starts + lengths - 1] = False
    tokens[inner] = np.concatenate([np.asarray(s, np.int64) for s in sentences]) if inner.any() else []
    sentence = np.repeat(np.arange(len(sentences)), lengths)
    return tokens, sentence


def count_ngrams(sentences: Sequence[np.ndarray], order: int, vocab_size: int, bos_id: int, eos_id: int,
                 unigram_words: np.ndarray | None = None) -> NGramCounts:
    """Counts all n-grams of orders 1..order inside sentences padded with one <s> and one </s>.

    `unigram_words`: ids that get a unigram entry even with count 0 (the whole vocabulary, so
    unseen words and <unk> have a probability); by default only the words that occur.
    """
    if order < 1:
        raise NGramError(f"order must be >= 1, got {order}.")
    tokens, sentence = flatten_sentences(sentences, bos_id, eos_id)
    if tokens.max() >= vocab_size or tokens.min() < 0:
        raise NGramError(f"token ids must lie in [0, {vocab_size}); got {tokens.min()}..{tokens.max()}.")
    words = np.unique(tokens if unigram_words is None else np.concatenate([tokens, unigram_words]))
    tables = [NGramTable(np.zeros(len(words), np.int64), words.astype(np.int64), vocab_size)]
    counts = [np.bincount(np.searchsorted(words, tokens), minlength=len(words))]
    previous = np.searchsorted(words, tokens)
    for n in range(2, order + 1):
        valid = np.zeros(len(tokens), bool)
        valid[n - 1 :] = sentence[n - 1 :] == sentence[: len(tokens) - n + 1]
        keys = previous[np.flatnonzero(valid) - 1] * vocab_size + tokens[valid]
        unique, inverse, raw = np.unique(keys, return_inverse=True, return_counts=True)
        tables.append(NGramTable(unique // vocab_size, unique % vocab_size, vocab_size))
        counts.append(raw)
        previous = np.full(len(tokens), -1, np.int64)
        previous[valid] = inverse
    return NGramCounts(tables, counts, vocab_size, bos_id, eos_id)


def suffix_indices(tables: list[NGramTable]) -> list[np.ndarray]:
    """For order n >= 2, the index of each n-gram's (n-1)-word suffix in the order n-1 table.

    suffix(w1..wn) = lookup(suffix(w1..w_{n-1}), wn): one searchsorted per order. Entry 0 (unigrams)
    is an array of -1 (their suffix is the empty context).
    """
    out = [np.full(len(tables[0]), -1, np.int64)]
    for n in range(1, len(tables)):
        table = tables[n]
        if n == 1:
            suffix = tables[0].lookup(np.zeros(len(table), np.int64), table.word)
        else:
            suffix = tables[n - 1].lookup(out[n - 1][table.context], table.word)
        if (suffix < 0).any():
            raise NGramError(f"{n + 1}-grams whose suffix is missing from the {n}-grams: the lower orders are incomplete.")
        out.append(suffix)
    return out
