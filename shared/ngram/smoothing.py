"""Estimating n-gram probabilities from counts: additive and modified Kneser-Ney smoothing.

All estimators are vectorized over the n-grams of one order (`np.bincount` groups by context)
and return a `BackoffNGramModel`, which writes ARPA files. Modified Kneser-Ney follows Chen &
Goodman (1999) as KenLM's lmplz implements it, so the two give the same log-probabilities:

- adjusted counts a(g): the raw count for the highest order and for n-grams that start with <s>;
  otherwise the number of distinct words seen before g (its continuation count);
- three discounts per order from the counts-of-counts n_1..n_4 of the adjusted counts
  (Chen & Goodman eq. 26): Y = n1/(n1 + 2 n2), D_k = k - (k+1) Y n_{k+1}/n_k, k = 1, 2, 3+;
  when they cannot be computed (small corpora) KenLM's fallback D = (0.5, 1, 1.5) is used;
- u(w|c) = (a(cw) - D(a(cw))) / sum_x a(cx),
  gamma(c) = (D1 N1(c.) + D2 N2(c.) + D3 N3+(c.)) / sum_x a(cx);
- interpolated:  p(w|c) = u(w|c) + gamma(c) p(w|suffix(c)), unigrams interpolated with the
  uniform 1/|V| (|V| counts </s> and <unk>, not <s>); back-off weight b(c) = gamma(c);
- back-off:      p(w|c) = u(w|c) for seen n-grams, b(c) chosen so each P(.|c) sums to one.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from dlsuite.shared.ngram.counts import NGramCounts, NGramError, suffix_indices
from dlsuite.shared.ngram.model import BackoffNGramModel

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # KenLM's --discount_fallback defaults


@dataclasses.dataclass(frozen=True)
class Discounts:
    """D1, D2, D3+ for one order, and whether they are the small-corpus fallback."""

    d1: float
    d2: float
    d3: float
    fallback: bool = False

    def of(self, adjusted: np.ndarray) -> np.ndarray:
        return np.select([adjusted == 1, adjusted == 2, adjusted >= 3], [self.d1, self.d2, self.d3], 0.0)


def estimate_discounts(adjusted: np.ndarray, order: int, fallback=FALLBACK_DISCOUNTS, strict=False) -> Discounts:
    """Chen & Goodman eq. 26 from counts-of-counts; KenLM's fallback when the data is too small.

    KenLM accepts 0 <= D_k <= k. `strict` demands D_k < k, which back-off smoothing needs: there a
    seen n-gram's probability is (a - D)/total alone, and D = a would make it zero."""
    n = np.bincount(np.minimum(adjusted, 5), minlength=6).astype(np.float64)  # n[k] = #grams with a == k
    if min(n[1], n[2], n[3]) > 0:
        y = n[1] / (n[1] + 2 * n[2])
        d = [k - (k + 1) * y * n[k + 1] / n[k] for k in (1, 2, 3)]
        if all(0 <= dk <= k and not (strict and dk >= k) for k, dk in zip((1, 2, 3), d, strict=True)):
            return Discounts(*d)
    warnings.warn(f"Kneser-Ney: {order}-gram counts-of-counts n1..n4 = {n[1:5].astype(int).tolist()} do not give "
                  f"discounts in range (small or artificial corpus); using fallback D = {fallback}.", stacklevel=3)
    return Discounts(*fallback, fallback=True)


def first_words(counts: NGramCounts) -> list[np.ndarray]:
    """The first word of every n-gram, per order."""
    first = [counts.tables[0].word]
    for table in counts.tables[1:]:
        first.append(first[-1][table.context])
    return first


def adjusted_counts(counts: NGramCounts, suffixes: list[np.ndarray]) -> list[np.ndarray]:
    """KN counts: continuation counts below the highest order, except n-grams starting with <s>."""
    first = first_words(counts)
    out = []
    for n, raw in enumerate(counts.counts):
        if n == counts.order - 1:  # highest order: raw counts (a unigram model still never predicts <s>)
            out.append(np.where((first[n] == counts.bos_id) & (n == 0), 0, raw))
            continue
        continuation = np.bincount(suffixes[n + 1], minlength=len(raw))
        starts_bos = (first[n] == counts.bos_id) & (n > 0)  # unigram <s>: 0, as in KenLM
        out.append(np.where(starts_bos, raw, continuation))
    return out


def _uniform_size(counts: NGramCounts) -> int:
    return int(np.sum(counts.tables[0].word != counts.bos_id))


def _per_context(values, context, size):
    return np.bincount(context, weights=values, minlength=size)


def _is_context(counts: NGramCounts, n: int) -> np.ndarray:
    if n == counts.order - 1:
        return np.zeros(len(counts.tables[n]), bool)
    return np.bincount(counts.tables[n + 1].context, minlength=len(counts.tables[n])) > 0


def kneser_ney(counts: NGramCounts, tokens: list[str], interpolate: bool = True,
               discount_fallback=FALLBACK_DISCOUNTS) -> tuple[BackoffNGramModel, list[Discounts]]:
    """Modified Kneser-Ney (interpolated by default, else back-off); returns the model and discounts."""
    suffixes = suffix_indices(counts.tables)
    adjusted = adjusted_counts(counts, suffixes)
    discounts = [estimate_discounts(a, n + 1, discount_fallback, strict=not interpolate) for n, a in enumerate(adjusted)]
    probs, gammas = [], []
    for n, (table, a, disc) in enumerate(zip(counts.tables, adjusted, discounts, strict=False)):
        n_contexts = 1 if n == 0 else len(counts.tables[n - 1])
        denominator = _per_context(a.astype(np.float64), table.context, n_contexts)
        if np.any(denominator[np.unique(table.context)] <= 0):
            raise NGramError(f"{n + 1}-grams: a context with zero adjusted count; the corpus is degenerate.")
        safe = np.where(denominator > 0, denominator, 1.0)
        u = (a - disc.of(a)) / safe[table.context]
        mass = _per_context(disc.of(a), table.context, n_contexts)  # D1 N1 + D2 N2 + D3 N3+
        gammas.append(mass / safe)
        if n == 0:
            p = u + gammas[0][0] / _uniform_size(counts)
        elif interpolate:
            p = u + gammas[n][table.context] * probs[n - 1][suffixes[n]]
        else:
            p = u
        probs.append(p)
    log_backoffs = _backoffs(counts, probs, gammas, suffixes, interpolate)
    log_probs = [np.log10(np.maximum(p, 1e-300)) for p in probs]
    log_probs[0][counts.tables[0].word == counts.bos_id] = 0.0  # <s> is given, never predicted
    return BackoffNGramModel(tokens, counts.tables, log_probs, log_backoffs), discounts


def _backoffs(counts, probs, gammas, suffixes, interpolate: bool) -> list[np.ndarray]:
    """log10 b(c) for every entry that is a context (0 elsewhere)."""
    out = []
    for n in range(counts.order):
        is_context = _is_context(counts, n)
        if n == counts.order - 1 or interpolate:
            b = gammas[n + 1] if n + 1 < counts.order else np.ones(len(is_context))
        else:  # back-off: b(c) = (1 - sum_seen p(w|c)) / (1 - sum_seen P(w|suffix(c)))
            nxt = counts.tables[n + 1]
            seen = _per_context(probs[n + 1], nxt.context, len(is_context))
            lower = _per_context(probs[n][suffixes[n + 1]], nxt.context, len(is_context))
            b = np.where(is_context, (1 - seen) / np.maximum(1 - lower, 1e-12), 1.0)
        out.append(np.where(is_context, np.log10(np.maximum(b, 1e-300)), 0.0))
    return out


def additive(counts: NGramCounts, tokens: list[str], k: float = 1.0) -> BackoffNGramModel:
    """Additive smoothing (a Dirichlet prior centred on the next lower order).

    Unigrams: p(w) = (c(w) + k) / (N + k|V|), add-k proper. Higher orders:
    p(w|c) = (c(cw) + k|V| P(w|suffix(c))) / (c(c.) + k|V|), which is add-k whenever the lower
    order is uniform, and is exactly representable in back-off form with b(c) = k|V| / (c(c.) + k|V|).
    """
    if k <= 0:
        raise NGramError(f"additive smoothing needs k > 0, got {k}.")
    suffixes = suffix_indices(counts.tables)
    size = _uniform_size(counts)
    not_bos = counts.tables[0].word != counts.bos_id
    raw0 = np.where(not_bos, counts.counts[0], 0).astype(np.float64)
    probs = [np.where(not_bos, (raw0 + k) / (raw0.sum() + k * size), 1.0)]
    weights = []
    for n in range(1, counts.order):
        table, raw = counts.tables[n], counts.counts[n].astype(np.float64)
        total = _per_context(raw, table.context, len(counts.tables[n - 1]))
        prior = k * size
        probs.append((raw + prior * probs[n - 1][suffixes[n]]) / (total[table.context] + prior))
        weights.append(prior / (total + prior))
    log_backoffs = []
    for n in range(counts.order):
        is_context = _is_context(counts, n)
        b = weights[n] if n < counts.order - 1 else np.ones(len(is_context))
        log_backoffs.append(np.where(is_context, np.log10(b), 0.0))
    log_probs = [np.log10(p) for p in probs]
    return BackoffNGramModel(tokens, counts.tables, log_probs, log_backoffs)
