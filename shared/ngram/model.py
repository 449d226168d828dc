"""A back-off n-gram model in ARPA form, and its scoring (equations 12.5–12.7).

Every smoothing method here (additive, Kneser-Ney, Katz) ends in the same form, the one ARPA
files store: for each seen n-gram g = (c, w) a log10 probability p(g), and for each context c a
log10 back-off weight b(c), so that

    log P(w | c) = p(c, w)                     if (c, w) was seen,
                 = b(c) + log P(w | suffix(c))  otherwise  (recursively down to unigrams).

Interpolated models fit this form too: their p(c, w) already contains the interpolated lower
orders and b(c) is the interpolation weight gamma(c).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from dlsuite.shared.ngram.counts import NGramError, NGramTable, flatten_sentences, suffix_indices

LOG10 = math.log(10.0)


@dataclasses.dataclass(frozen=True)
class State:
    """Where the decoder stands: the longest known suffix of the history, as (order, index)."""

    order: int
    index: int


@dataclasses.dataclass
class BackoffNGramModel:
    tokens: list[str]  # id -> token; ids index the tables' `word` columns
    tables: list[NGramTable]
    log_probs: list[np.ndarray]  # log10 p per entry
    log_backoffs: list[np.ndarray]  # log10 b per entry (0 where not a context; highest order all 0)
    bos: str = "<s>"
    eos: str = "</s>"
    unk: str = "<unk>"

    def __post_init__(self):
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        for special in (self.bos, self.eos, self.unk):
            if special not in self._ids:
                raise NGramError(f"the model's vocabulary lacks {special!r}; every n-gram model needs <s>, </s> and <unk>.")
        self.bos_id, self.eos_id, self.unk_id = (self._ids[t] for t in (self.bos, self.eos, self.unk))
        self._suffix = suffix_indices(self.tables)
        # Unigram entry of every vocabulary id (ids without one score as <unk>).
        self._unigram = np.full(len(self.tokens), -1, np.int64)
        self._unigram[self.tables[0].word] = np.arange(len(self.tables[0]))
        if self._unigram[self.unk_id] < 0:
            raise NGramError("the model has no unigram entry for <unk>; unknown words could not be scored.")

    @property
    def order(self) -> int:
        return len(self.tables)

    def ids(self, words: Sequence[str]) -> np.ndarray:
        """Words -> ids; words outside the model's vocabulary (or without a unigram) -> <unk>."""
        ids = np.array([self._ids.get(w, self.unk_id) for w in words], np.int64)
        return np.where(self._unigram[ids] >= 0, ids, self.unk_id) if len(ids) else ids

    # --- scoring a whole corpus at once -------------------------------------------------------
    def token_log10_probs(self, sentences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """log10 P(token | history) for every token and </s> of every sentence (ids), vectorized.

        Returns (log10 probs, sentence index of each). For each position, the longest matching
        n-gram is found order by order with searchsorted; the back-off weights of the longer
        contexts that did not match are added (the recursion above, unrolled).
        """
        tokens, sentence = flatten_sentences(sentences, self.bos_id, self.eos_id)
        entries, longest = self._longest_matches(tokens, sentence)
        logp = np.zeros(len(tokens))
        for n in range(1, self.order + 1):
            hit = longest == n
            logp[hit] = self.log_probs[n - 1][entries[n - 1][hit]]
        for k in range(1, self.order):  # back-off weight of context (t-k..t-1) when order k+1 missed
            context = np.concatenate([[-1], entries[k - 1][:-1]])
            use = (longest <= k) & (context >= 0)
            logp[use] += self.log_backoffs[k - 1][context[use]]
        predicted = self._predicted(tokens, sentence)
        return logp[predicted], sentence[predicted]

    def history_orders(self, sentences: Sequence[np.ndarray]) -> np.ndarray:
        """For every token and </s> that `token_log10_probs` scores: how many words of its history
        (1..N-1, <s> included) the model knows as a context, the longest n-gram ending just before
        it. A function of the history alone, not of the token, so a mixture weight chosen by it
        still mixes normalized distributions into a normalized one."""
        tokens, sentence = flatten_sentences(sentences, self.bos_id, self.eos_id)
        _, longest = self._longest_matches(tokens, sentence)
        before = np.minimum(np.concatenate([[1], longest[:-1]]), self.order - 1)
        return before[self._predicted(tokens, sentence)]

    def _longest_matches(self, tokens: np.ndarray, sentence: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """(entry index of the n-gram ending at each position, per order n, -1 if unseen; the
        highest order seen, 1..N). An n-gram is only looked up within its sentence."""
        unigram = self._unigram[np.where(self._unigram[tokens] >= 0, tokens, self.unk_id)]
        entries = [unigram]
        for n in range(2, self.order + 1):
            context = np.concatenate([[-1], entries[-1][:-1]])
            same = np.zeros(len(tokens), bool)
            same[n - 1 :] = sentence[n - 1 :] == sentence[: len(tokens) - n + 1]
            entries.append(np.where(same, self.tables[n - 1].lookup(context, tokens), -1))
        found = np.stack([e >= 0 for e in entries])  # [N, T]
        return entries, found.shape[0] - np.argmax(found[::-1], axis=0)

    def _predicted(self, tokens: np.ndarray, sentence: np.ndarray) -> np.ndarray:
        """<s> only conditions; it is never predicted."""
        predicted = tokens != self.bos_id
        predicted[np.concatenate([[0], np.flatnonzero(np.diff(sentence)) + 1])] = False
        return predicted

    def sentence_log10_probs(self, sentences: Sequence[np.ndarray]) -> np.ndarray:
        logp, sentence = self.token_log10_probs(sentences)
        return np.bincount(sentence, weights=logp, minlength=len(sentences))

    def perplexity(self, sentences: Sequence[np.ndarray]) -> float:
        """10 ** (-mean log10 P) over all words and </s> (as KenLM's query reports it)."""
        logp, _ = self.token_log10_probs(sentences)
        return float(10.0 ** (-logp.mean()))

    def encode(self, sentences: Sequence[str]) -> list[np.ndarray]:
        return [self.ids(s.split()) for s in sentences]

    # --- scoring one word at a time (the speech decoder's interface) ------------------------
    def begin_state(self) -> State:
        return State(1, int(self._unigram[self.bos_id]))

    def null_state(self) -> State:
        """No history at all (order 0): scores words with unigram probabilities."""
        return State(0, 0)

    def score(self, state: State, word: int) -> tuple[float, State]:
        """(log10 P(word | state), the state after word): KenLM's `BaseScore` in NumPy."""
        if self._unigram[word] < 0:
            word = self.unk_id
        backoff, order, index = 0.0, state.order, state.index
        while order >= 1:
            if order < self.order:
                hit = int(self.tables[order].lookup(np.array([index]), np.array([word]))[0])
                if hit >= 0:
                    return backoff + float(self.log_probs[order][hit]), self._as_context(order + 1, hit)
            backoff += float(self.log_backoffs[order - 1][index])
            order, index = order - 1, int(self._suffix[order - 1][index]) if order > 1 else 0
        hit = int(self._unigram[word])
        return backoff + float(self.log_probs[0][hit]), State(1, hit)

    def _as_context(self, order: int, index: int) -> State:
        """States keep at most N-1 words: a full-order match continues from its suffix."""
        if order == self.order:
            return State(order - 1, int(self._suffix[order - 1][index]))
        return State(order, index)

    def next_word_log10_probs(self, state: State) -> np.ndarray:
        """log10 P(w | state) for every vocabulary id; -inf for <s> and ids the model lacks."""
        out = np.full(len(self.tokens), -np.inf)
        out[self.tables[0].word] = self.log_probs[0]
        chain, order, index = [], state.order, state.index
        while order >= 1:  # collect contexts from the shortest up, so longer ones overwrite
            chain.append((order, index))
            order, index = order - 1, int(self._suffix[order - 1][index]) if order > 1 else 0
        for order, index in reversed(chain):
            out += float(self.log_backoffs[order - 1][index])
            if order < self.order:
                table = self.tables[order]
                lo, hi = np.searchsorted(table.context, [index, index + 1])
                out[table.word[lo:hi]] = self.log_probs[order][lo:hi]
        out[self.bos_id] = -np.inf
        return out

    def size(self) -> dict:
        return {f"{n + 1}-grams": len(t) for n, t in enumerate(self.tables)}
