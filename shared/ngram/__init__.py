"""n-gram language models: counting, smoothing, ARPA files, scoring (equations 12.5–12.7).

    model = build_ngram_model(sentences, tokens, order=5)      # modified Kneser-Ney
    model.perplexity(model.encode(["in the beginning"]))
    write_arpa(model, "kjv.5.arpa"); read_arpa("kjv.5.arpa")  # KenLM / SRILM compatible

Lives in shared/ because two apps use it: the language app and the speech decoder (which
advances `model.score(state, word)` one word at a time).
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

import numpy as np

from dlsuite.shared.ngram.arpa import read_arpa, write_arpa
from dlsuite.shared.ngram.counts import NGramCounts, NGramError, count_ngrams
from dlsuite.shared.ngram.model import BackoffNGramModel, State
from dlsuite.shared.ngram.smoothing import FALLBACK_DISCOUNTS, Discounts, additive, kneser_ney

Smoothing = typing.Literal["kneser_ney", "kneser_ney_backoff", "additive"]
SMOOTHINGS = typing.get_args(Smoothing)


def build_ngram_model(sentences: Sequence[np.ndarray], tokens: Sequence[str], order: int = 3,
                      smoothing: str = "kneser_ney", additive_k: float = 0.01,
                      unigram_ids: np.ndarray | None = None, bos: str = "<s>", eos: str = "</s>",
                      unk: str = "<unk>", discount_fallback=FALLBACK_DISCOUNTS) -> BackoffNGramModel:
    """Counts `sentences` (arrays of ids into `tokens`) and smooths them.

    `unigram_ids`: ids that get a unigram even if unseen (default: every token but padding-like
    ones the caller leaves out; None = all tokens).
    """
    if smoothing not in SMOOTHINGS:
        raise NGramError(f"unknown smoothing {smoothing!r}; choose one of {SMOOTHINGS}.")
    if not 1 <= order <= 10:
        raise NGramError(f"order must be between 1 and 10, got {order}.")
    tokens = list(tokens)
    ids = {t: i for i, t in enumerate(tokens)}
    for special in (bos, eos, unk):
        if special not in ids:
            raise NGramError(f"the vocabulary lacks {special!r}; add <s>, </s> and <unk> to it.")
    if len(tokens) - 3 < 1:
        raise NGramError("the vocabulary holds no words besides <s>, </s>, <unk>; give a corpus with words.")
    if unigram_ids is None:
        unigram_ids = np.arange(len(tokens))
    counts = count_ngrams(sentences, order, len(tokens), ids[bos], ids[eos], np.asarray(unigram_ids, np.int64))
    if smoothing == "additive":
        model = additive(counts, tokens, additive_k)
    else:
        model, _ = kneser_ney(counts, tokens, interpolate=smoothing == "kneser_ney", discount_fallback=discount_fallback)
    return model


__all__ = ["BackoffNGramModel", "Discounts", "NGramCounts", "NGramError", "SMOOTHINGS", "State",
           "build_ngram_model", "count_ngrams", "read_arpa", "write_arpa"]
