"""CTC decoding: greedy, prefix beam search, and beam search with a word or character n-gram
(shallow fusion).

    text = greedy_decode(log_probs, alphabet)                   # log_probs: [T, C] log-softmax
    lm = WordLM.from_arpa("words.3.arpa")                      # or CharLM.build(sentences, order=6)
    best, score = beam_search(log_probs, alphabet, lm=lm, alpha=0.5, beta=1.0)[0]
    tune_fusion(val_log_probs, val_texts, lm, alphabet)         # grid search for alpha, beta

Conventions: alphabet[0] is the CTC blank "" and " " separates words. Hand-written in Python
because no maintained pure-Python library does CTC prefix beam search with n-gram fusion
(pyctcdecode and torchaudio's decoder both score through KenLM's C++); our n-gram model lives
in shared/ngram. CTC outputs are peaky, so pruning unlikely characters per frame keeps a beam of
16 with an LM over 100 frames at about 5-10 ms on 2 CPU cores.
"""

from __future__ import annotations

import heapq
import itertools
import math
import warnings
from collections.abc import Sequence

import jiwer
import numpy as np

from dlsuite.shared.ngram import build_ngram_model, read_arpa

LN10 = math.log(10.0)
NEG_INF = float("-inf")
BLANK = 0
_UNSEEN = object()  # prefixes not yet in `info` (None there marks a forbidden one)


def _logaddexp(a: float, b: float) -> float:
    """log(e^a + e^b) on Python floats (np.logaddexp on scalars is ~10x slower)."""
    if a < b:
        a, b = b, a
    return a if b == NEG_INF else a + math.log1p(math.exp(b - a))


def _check(log_probs, alphabet) -> tuple[np.ndarray, tuple[str, ...], int]:
    """Validates the two conventions and the [T, C] shape; returns (log_probs, alphabet, space id)."""
    alphabet = tuple(alphabet)
    if not alphabet or alphabet[0] != "":
        raise ValueError(f"alphabet[0] must be the CTC blank '', got {alphabet[:1]!r}.")
    if " " not in alphabet:
        raise ValueError("the alphabet has no word delimiter ' '; words could not be separated.")
    if len(set(alphabet)) != len(alphabet):
        raise ValueError(f"the alphabet repeats entries: {alphabet!r}.")
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs must be 2-D [frames, classes], got shape {log_probs.shape}.")
    if log_probs.shape[1] != len(alphabet):
        raise ValueError(f"log_probs has {log_probs.shape[1]} classes but the alphabet has {len(alphabet)}.")
    if np.isnan(log_probs).any():
        raise ValueError("log_probs contains NaN; the acoustic model's output is broken.")
    return log_probs, alphabet, alphabet.index(" ")


def _clean(text: str) -> str:
    return " ".join(text.split())


def greedy_decode(log_probs: np.ndarray, alphabet) -> str:
    """Best path decoding (Graves 2012, ch. 7): argmax per frame, merge repeats, drop blanks.

    A blank between two equal labels keeps both ("l", "", "l" -> "ll"). T = 0 gives "".
    """
    log_probs, alphabet, _ = _check(log_probs, alphabet)
    best = log_probs.argmax(axis=1)
    keep = (best != BLANK) & np.concatenate([[True], best[1:] != best[:-1]])
    return _clean("".join(alphabet[i] for i in best[keep]))


class _FusionLM:
    """What beam_search needs of an n-gram: natural-log scores of the next unit (a word, or a
    character) given a state, ln P(</s>) at the end, cached by (state, unit)."""

    MAX_CACHE = 1_000_000  # (state, unit) entries; cleared when full so long runs stay bounded
    per_character = False  # True: every emitted character is scored; False: every completed word

    def __init__(self, model):
        self.model = model
        self._cache: dict = {}

    def begin_state(self):
        return self.model.begin_state()

    def score(self, state, unit: str) -> tuple[float, object]:
        """(ln P(unit | state), the state after unit); log10 from the model times ln 10."""
        key = (state, unit)
        hit = self._cache.get(key)
        if hit is None:
            log10_p, next_state = self.model.score(state, self._id(unit))
            hit = (self._log_prob(unit, log10_p), next_state)
            if len(self._cache) >= self.MAX_CACHE:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def end_score(self, state) -> float:
        """ln P(</s> | state): closes the sentence at the end of the utterance."""
        key = (state, None)
        if key not in self._cache:
            self._cache[key] = (self.model.score(state, self.model.eos_id)[0] * LN10, None)
        return self._cache[key][0]

    def _id(self, unit: str) -> int:
        raise NotImplementedError

    def _log_prob(self, unit: str, log10_p: float) -> float:
        return log10_p * LN10


class WordLM(_FusionLM):
    """A word n-gram for shallow fusion: each completed word is scored, unknown words pay a penalty.

    Words the model does not know score `unk_log_prob` (a fixed penalty), not the model's <unk>
    probability: character hypotheses produce many misspellings and <unk>'s probability, which
    Kneser-Ney makes sizeable, would reward them (the history continues through <unk>, as in
    KenLM). `vocabulary` holds the known words and `prefixes` every prefix of them (with ""), for
    beam_search's lexicon constraint.
    """

    def __init__(self, model, unk_log_prob: float = -10.0):
        super().__init__(model)
        self.unk_log_prob = float(unk_log_prob)
        specials = {model.bos, model.eos, model.unk}
        known = model.ids(model.tokens)  # words without a unigram map to <unk>
        self._ids = {w: int(i) for w, i in zip(model.tokens, known, strict=True)
                     if w not in specials and i != model.unk_id}
        self.vocabulary = set(self._ids)
        self.prefixes = {w[:k] for w in self.vocabulary for k in range(len(w) + 1)}

    @classmethod
    def from_arpa(cls, path, unk_log_prob: float = -10.0) -> WordLM:
        return cls(read_arpa(path), unk_log_prob)

    def _id(self, word: str) -> int:
        return self._ids.get(word, self.model.unk_id)

    def _log_prob(self, word: str, log10_p: float) -> float:
        return log10_p * LN10 if word in self._ids else self.unk_log_prob


WORD_BOUNDARY = "|"  # the space between words as a character-LM token (an ARPA token cannot be " ")


class CharLM(_FusionLM):
    """A character n-gram for shallow fusion: every character the search emits, spaces included,
    is scored by ln P(character | the characters before it), and </s> at the end.

    Open-vocabulary by construction: it gives any spelling a probability from how words of the
    language are spelled, where a word LM has only a fixed penalty for a word it never saw, so it
    carries over to text from another domain (names, jargon) that a word LM's vocabulary lacks.
    Built from the same sentences as the word LM (`build`), one token per character.
    """

    per_character = True

    def __init__(self, model):
        super().__init__(model)
        self._ids = {t: i for i, t in enumerate(model.tokens)}

    @classmethod
    def build(cls, sentences, order: int = 6) -> CharLM:
        """A Kneser-Ney character n-gram of `sentences` (normalized transcripts)."""
        texts = [WORD_BOUNDARY.join(s.split()) for s in sentences]
        tokens = ["<unk>", "<s>", "</s>", *sorted(set("".join(texts)))]
        ids = {t: i for i, t in enumerate(tokens)}
        encoded = [np.array([ids[c] for c in text], np.int64) for text in texts]
        with warnings.catch_warnings():  # every character is seen often: no unigram count-of-counts
            warnings.filterwarnings("ignore", "Kneser-Ney: 1-gram counts-of-counts", UserWarning)
            return cls(build_ngram_model(encoded, tokens, order))

    @classmethod
    def from_arpa(cls, path) -> CharLM:
        return cls(read_arpa(path))

    def _id(self, character: str) -> int:
        return self._ids.get(WORD_BOUNDARY if character == " " else character, self.model.unk_id)


class _Prefix:
    """What the LM knows about a labeling: its fusion bonus so far, LM state, unfinished word."""

    __slots__ = ("bonus", "state", "word")

    def __init__(self, bonus: float, state, word: str):
        self.bonus, self.state, self.word = bonus, state, word


def beam_search(log_probs: np.ndarray, alphabet, beam_width: int = 16, lm: _FusionLM | None = None,
                alpha: float = 0.5, beta: float = 1.0, prune_log_prob: float = -12.0,
                lexicon: bool = False, top_k: int | None = None) -> list[tuple[str, float]]:
    """CTC prefix beam search (Hannun et al. 2014, Algorithm 1; Graves 2012, ch. 7).

    Each prefix keeps ln p_blank and ln p_nonblank (its probability summed over alignments that
    end in a blank / in its last label); identical prefixes merge, and a repeated label extends
    the prefix only from p_blank. Hypotheses are ranked by the shallow-fusion score

        ln P_ctc(prefix) + alpha * ln P_lm(words) + beta * |words|

    where a word enters the LM when completed: by a space after it, or by the end of the
    utterance (which also adds ln P_lm(</s>)). A CharLM instead scores every character as it is
    emitted, spaces included, so ln P_lm(words) is the sum of its characters' log-probabilities.
    With lm=None it is plain prefix beam search but beta still rewards words: pass beta=0 for
    pure CTC probabilities.

    Spaces at the start or after a space change no word, so they act as blanks there: prefixes
    never hold leading or double spaces, and at the end "w " and "w" merge. Scores are then
    those of the output text (summed over labelings giving it), which is what we return.

    Speed: prune_log_prob / top_k limit the characters that may start new prefixes in a frame
    (those below the log prob / beyond the top_k most probable); CTC outputs are peaky, so few
    remain. A new prefix that scores below the beam's worst is skipped before it is built, which
    changes no result. lexicon=True (needs lm): drop prefixes whose unfinished word is not a
    prefix of a known word (a completed unknown word still only pays lm.unk_log_prob).

    Returns up to beam_width (text, score) pairs, best first; score is the fusion score above
    (lm=None, beta=0: ln P_ctc(text)). T = 0 gives [("", score of the empty text)].
    """
    log_probs, alphabet, space = _check(log_probs, alphabet)
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, got {beam_width}.")
    if lexicon and not isinstance(lm, WordLM):
        raise ValueError("lexicon=True needs a WordLM (its vocabulary is the lexicon).")
    extend = _extender(alphabet, space, lm, alpha, beta, lexicon)
    margin = max(beta, 0.0) if alpha >= 0 else math.inf  # most a word can raise the score
    root = ()
    beams = {root: (0.0, NEG_INF)}  # prefix (tuple of label ids) -> (ln p_blank, ln p_nonblank)
    info = {root: _Prefix(0.0, lm.begin_state() if lm else None, "")}
    for row in log_probs:
        labels = _candidates(row, prune_log_prob, top_k)
        beams = _step(beams, row.tolist(), labels, space, info, extend, beam_width, margin)
    return _finish(beams, info, alphabet, lm, alpha, beta)[:beam_width]


def _candidates(row: np.ndarray, prune_log_prob: float, top_k: int | None) -> list[int]:
    """Non-blank labels that may start new prefixes this frame, most probable first."""
    labels = np.flatnonzero(row >= prune_log_prob)
    labels = labels[labels != BLANK]
    labels = labels[np.argsort(-row[labels], kind="stable")]
    return labels[:top_k].tolist() if top_k is not None else labels.tolist()


def _step(beams: dict, row: list[float], labels: list[int], space: int, info: dict, extend,
          beam_width: int, margin: float) -> dict:
    """One frame of Algorithm 1; returns the next beam (the beam_width best prefixes)."""
    scored = []  # (fusion score, prefix, ln p_blank, ln p_nonblank)
    for prefix, (p_b, p_nb) in beams.items():  # 1. prefixes already in the beam
        last = prefix[-1] if prefix else None
        total = _logaddexp(p_b, p_nb)
        if last in (None, space):  # a leading / double space changes no word: like a blank
            p_b, p_nb = total + _logaddexp(row[BLANK], row[space]), NEG_INF
        else:  # blank keeps the prefix; "aa" without a blank between collapses to "a"
            p_b, p_nb = total + row[BLANK], p_nb + row[last]
        if prefix and prefix[:-1] in beams:  # it also grows out of its parent's mass
            p_nb = _logaddexp(p_nb, _extension(beams[prefix[:-1]], prefix[:-1], last, row))
        scored.append((_logaddexp(p_b, p_nb) + info[prefix].bonus, prefix, p_b, p_nb))
    # 2. New prefixes. Each has a single parent, so its score is final when made, and one
    # below the beam_width-th best score so far can never enter the beam: skipping it is exact.
    worst = sorted(s[0] for s in scored)[-beam_width:]  # ascending: a min-heap of the best
    for prefix, probs in beams.items():
        last, total, bonus = prefix[-1] if prefix else None, _logaddexp(*probs), info[prefix].bonus
        for c in labels:  # most probable first, so the first hopeless one ends the loop
            if len(worst) == beam_width and total + row[c] + bonus + margin < worst[0]:
                break
            longer = prefix + (c,)
            if (c == space and last in (None, space)) or longer in beams:
                continue  # handled in 1.
            entry = info.get(longer, _UNSEEN)
            if entry is _UNSEEN:
                entry = info[longer] = extend(info[prefix], c)
            if entry is None:
                continue  # lexicon: not the start of a known word
            p_nb = _extension(probs, prefix, c, row)
            score = p_nb + entry.bonus
            if p_nb == NEG_INF:
                continue  # e.g. a repeat right after it was emitted: "aa" needs a blank between
            if len(worst) < beam_width:
                heapq.heappush(worst, score)
            elif score >= worst[0]:
                heapq.heapreplace(worst, score)
            else:
                continue
            scored.append((score, longer, NEG_INF, p_nb))
    return {prefix: (p_b, p_nb) for _, prefix, p_b, p_nb in heapq.nlargest(beam_width, scored, key=_first)}


def _first(item: tuple) -> float:
    return item[0]


def _extension(probs: tuple[float, float], prefix: tuple, c: int, row: list[float]) -> float:
    """ln p_nonblank that prefix + c gets from prefix: a repeat must come after a blank."""
    p_b, p_nb = probs
    return (p_b if prefix and prefix[-1] == c else _logaddexp(p_b, p_nb)) + row[c]


def _extender(alphabet, space: int, lm: _FusionLM | None, alpha: float, beta: float, lexicon: bool):
    """Returns extend(parent, c) -> the _Prefix of parent's prefix + c (None: lexicon forbids it)."""

    def extend(parent: _Prefix, c: int) -> _Prefix | None:
        if c == space:  # a word ends: bonus += alpha * ln P_lm(word | history) + beta
            log_p, state = lm.score(parent.state, parent.word) if lm else (0.0, None)
            return _Prefix(parent.bonus + alpha * log_p + beta, state, "")
        word = parent.word + alphabet[c]
        if lexicon and word not in lm.prefixes:
            return None
        return _Prefix(parent.bonus, parent.state, word)

    def extend_by_character(parent: _Prefix, c: int) -> _Prefix:  # bonus += alpha * ln P_lm(c | history)
        log_p, state = lm.score(parent.state, alphabet[c])
        if c == space:
            return _Prefix(parent.bonus + alpha * log_p + beta, state, "")
        return _Prefix(parent.bonus + alpha * log_p, state, parent.word + alphabet[c])

    return extend_by_character if lm is not None and lm.per_character else extend


def _finish(beams: dict, info: dict, alphabet, lm, alpha: float, beta: float) -> list[tuple[str, float]]:
    """Scores the last word and </s>, then merges prefixes that give the same text ("w " / "w")."""
    texts: dict[str, float] = {}
    for prefix, (p_b, p_nb) in beams.items():
        entry = info[prefix]
        score, state = _logaddexp(p_b, p_nb) + entry.bonus, entry.state
        if entry.word:  # the last word: its word bonus, and a word LM's score (a character LM has scored it)
            log_p, state = lm.score(state, entry.word) if lm and not lm.per_character else (0.0, state)
            score += alpha * log_p + beta
        if lm:
            score += alpha * lm.end_score(state)
        text = "".join(alphabet[i] for i in prefix).rstrip()
        texts[text] = _logaddexp(texts.get(text, NEG_INF), score)
    return sorted(texts.items(), key=lambda kv: kv[1], reverse=True)


def decode_many(log_probs_list: Sequence[np.ndarray], alphabet, method: str = "greedy", *,
                progress: bool | None = None, **beam_options) -> list[str]:
    """Decodes utterances with "greedy", "beam" (no LM; beta defaults to 0) or "beam_lm" (lm=...).

    progress: a tqdm bar; None shows one for more than 50 utterances.
    """
    from tqdm import tqdm

    if method == "greedy":
        if beam_options:
            raise ValueError(f"greedy decoding takes no options, got {sorted(beam_options)}.")
        decode = greedy_decode
    elif method in ("beam", "beam_lm"):
        if method == "beam" and beam_options.get("lm") is not None:
            raise ValueError("method='beam' decodes without an LM; use method='beam_lm' to pass lm.")
        if method == "beam_lm" and beam_options.get("lm") is None:
            raise ValueError("method='beam_lm' needs lm=WordLM(...).")
        if method == "beam":
            beam_options.setdefault("beta", 0.0)

        def decode(log_probs, alphabet):
            return beam_search(log_probs, alphabet, **beam_options)[0][0]
    else:
        raise ValueError(f"unknown method {method!r}; choose 'greedy', 'beam' or 'beam_lm'.")
    items = list(log_probs_list)
    show = len(items) > 50 if progress is None else progress
    return [decode(x, alphabet) for x in tqdm(items, desc=f"decoding ({method})", disable=not show)]


def tune_fusion(log_probs_list: Sequence[np.ndarray], references: list[str], lm: _FusionLM, alphabet,
                alphas=(0.25, 0.5, 1.0, 1.5), betas=(0.0, 1.0, 2.0, 3.0), beam_width: int = 16,
                progress: bool = True, **beam_options) -> dict:
    """Grid search of alpha (LM weight) and beta (word bonus) for the lowest WER on validation data.

    Returns {"alpha", "beta", "wer": the best point (first in grid order on ties), "grid":
    [[alpha, beta, wer], ...]}. The default 4 x 4 grid takes about a minute on 200 utterances
    of 100 frames (each point decodes them all; the LM cache is shared between points).
    """
    from tqdm import tqdm

    log_probs_list = list(log_probs_list)
    if len(log_probs_list) != len(references) or not references:
        raise ValueError(f"need as many references as utterances (and at least one), got "
                         f"{len(references)} for {len(log_probs_list)}.")
    references = [_clean(r) for r in references]
    grid = []
    for alpha, beta in tqdm(list(itertools.product(alphas, betas)), desc="tuning alpha, beta", disable=not progress):
        hypotheses = decode_many(log_probs_list, alphabet, "beam_lm", progress=False, lm=lm, alpha=alpha,
                                 beta=beta, beam_width=beam_width, **beam_options)
        grid.append([float(alpha), float(beta), float(jiwer.wer(references, hypotheses))])
    best = min(grid, key=lambda point: point[2])
    return {"alpha": best[0], "beta": best[1], "wer": best[2], "grid": grid}
