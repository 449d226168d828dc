"""The speech app's CTC decoders: exact on tiny inputs, agree with TensorFlow, fuse an n-gram, fail clearly."""

import itertools
import math
import string
import warnings

import numpy as np
import pytest

from dlsuite.apps.speech.decode import (
    CharLM,
    WordLM,
    beam_search,
    decode_many,
    greedy_decode,
    tune_fusion,
)
from dlsuite.shared.ngram import build_ngram_model, write_arpa

LN10 = math.log(10.0)
TINY = ("", " ", "a", "c", "d", "e", "h", "r", "t", "x", "y")  # enough letters for the LM tests
CORPUS = ["the red car"] * 4 + ["a rad day"] * 4 + ["the car", "a day"]


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def frames(spec, alphabet=TINY, rest: float = 1e-4) -> np.ndarray:
    """[T, C] log probs: each frame a label (probability ~1) or a dict {label: probability}."""
    out = np.full((len(spec), len(alphabet)), rest)
    for t, frame in enumerate(spec):
        frame = frame if isinstance(frame, dict) else {frame: 1.0}
        for label, p in frame.items():
            out[t, alphabet.index(label)] = p
    return np.log(out / out.sum(axis=1, keepdims=True))


def spoken(text: str, ambiguous: dict | None = None) -> list:
    """Frames for `text`, one per character with a blank after each; "?" marks `ambiguous`."""
    return [f for ch in text for f in ((ambiguous if ch == "?" else ch), "")]


@pytest.fixture(scope="module")
def model():
    words = sorted({w for s in CORPUS for w in s.split()})
    tokens = ["<s>", "</s>", "<unk>", *words]
    ids = {t: i for i, t in enumerate(tokens)}
    with warnings.catch_warnings():  # a ten-sentence corpus falls back to default discounts
        warnings.simplefilter("ignore", UserWarning)
        return build_ngram_model([np.array([ids[w] for w in s.split()]) for s in CORPUS], tokens, order=3)


@pytest.fixture(scope="module")
def lm(model):
    return WordLM(model)


# --- greedy -------------------------------------------------------------------------------------
def test_greedy_merges_repeats_and_keeps_blank_separated_ones():
    alphabet = ("", " ", "e", "h", "l", "o")
    x = frames(["h", "h", "e", "", "l", "l", "", "l", "o", "o"], alphabet)
    assert greedy_decode(x, alphabet) == "hello"
    x = frames([" ", "h", "e", " ", " ", "", " ", "h", "e", " "], alphabet)
    assert greedy_decode(x, alphabet) == "he he"  # stripped, spaces collapsed


# --- beam search without an LM ------------------------------------------------------------------
def brute_force(log_probs: np.ndarray, alphabet) -> dict[str, float]:
    """ln P(text) by summing exp(sum of log probs) over all C^T alignments, grouped by their text."""
    sums: dict[str, float] = {}
    for path in itertools.product(range(len(alphabet)), repeat=len(log_probs)):
        labels = [k for k, _ in itertools.groupby(path) if k != 0]
        text = " ".join("".join(alphabet[k] for k in labels).split())
        sums[text] = sums.get(text, 0.0) + math.exp(log_probs[np.arange(len(path)), path].sum())
    return {text: math.log(p) for text, p in sums.items()}


@pytest.mark.parametrize("alphabet", [("", " ", "a"), ("", " ", "a", "b")])
@pytest.mark.parametrize("T", [1, 2, 3, 4, 5])
def test_beam_search_is_exact_on_tiny_inputs(alphabet, T):
    rng = np.random.default_rng(100 * T + len(alphabet))
    for _ in range(4):
        x = log_softmax(rng.normal(0.0, 1.5, (T, len(alphabet))))
        exact = brute_force(x, alphabet)
        assert sum(math.exp(v) for v in exact.values()) == pytest.approx(1.0)
        wide = dict(beam_search(x, alphabet, beam_width=10_000, beta=0.0, prune_log_prob=-np.inf))
        assert wide.keys() == exact.keys()  # a beam holding every prefix sums every alignment
        for text, log_p in exact.items():
            assert wide[text] == pytest.approx(log_p, abs=1e-9), text
        best, log_p = beam_search(x, alphabet, beta=0.0)[0]  # the default beam of 16
        assert best == max(exact, key=exact.get)
        assert log_p <= exact[best] + 1e-9  # a narrow beam can only lose alignments


def test_beam_search_agrees_with_tensorflow():
    tf = pytest.importorskip("tensorflow")
    alphabet = ("", " ", "a", "b", "c")
    rng = np.random.default_rng(0)
    batch, T = 24, 12
    logits = rng.normal(0.0, 2.0, (batch, T, len(alphabet)))
    logits[..., 1] -= 8.0  # almost no spaces: tf ranks labelings, we rank texts ("a " and "a" merge)
    x = log_softmax(logits)
    tf_input = np.transpose(x[..., [2, 3, 4, 1, 0]], (1, 0, 2)).astype(np.float32)  # [T, B, C], blank last
    decoded, log_p = tf.nn.ctc_beam_search_decoder(tf_input, np.full(batch, T, np.int32), beam_width=16)
    dense = tf.sparse.to_dense(decoded[0], default_value=-1).numpy()
    to_ours = {0: 2, 1: 3, 2: 4, 3: 1}
    gaps = []
    for b in range(batch):
        expected = " ".join("".join(alphabet[to_ours[k]] for k in dense[b] if k >= 0).split())
        text, score = beam_search(x[b], alphabet, beam_width=16, beta=0.0, prune_log_prob=-np.inf)[0]
        assert text == expected, b
        gaps.append(abs(score - float(log_p[b, 0])))
    # tf's beam is not always the 16 best prefixes (it sometimes keeps a worse one), so a few
    # scores differ by a little lost or kept mass; most agree to float32 precision.
    assert np.median(gaps) < 1e-4 and max(gaps) < 0.5


def test_beta_rewards_words_without_an_lm():
    alphabet = ("", " ", "a", "b")
    x = frames(["a", {" ": 0.4, "": 0.6}, "b"], alphabet)
    assert beam_search(x, alphabet, beta=0.0)[0][0] == "ab"
    assert beam_search(x, alphabet, beta=2.0)[0][0] == "a b"


def test_beam_search_returns_at_most_beam_width_distinct_texts_best_first():
    x = log_softmax(np.random.default_rng(1).normal(0.0, 1.0, (20, len(TINY))))
    hypotheses = beam_search(x, TINY, beam_width=5, beta=0.0)
    texts, scores = zip(*hypotheses, strict=True)
    assert 3 <= len(hypotheses) <= 5 and len(set(texts)) == len(texts)  # "w " and "w" merge
    assert list(scores) == sorted(scores, reverse=True)
    assert all(t == " ".join(t.split()) for t in texts)


# --- shallow fusion ---------------------------------------------------------------------------------
@pytest.mark.parametrize("context, acoustic, fused", [("the", "rad", "red"), ("a", "red", "rad")])
def test_fusion_picks_the_word_the_lm_prefers_in_context(lm, context, acoustic, fused):
    """Equal unigram counts for red / rad: only the trigram context can decide against acoustics."""
    preferred_vowel, other_vowel = acoustic[1], fused[1]
    x = frames(spoken(f"{context} r?d", {preferred_vowel: 0.52, other_vowel: 0.48}))
    assert beam_search(x, TINY, beta=0.0)[0][0] == f"{context} {acoustic}"
    assert beam_search(x, TINY, lm=lm, alpha=0.0, beta=0.0)[0][0] == f"{context} {acoustic}"
    assert beam_search(x, TINY, lm=lm, alpha=1.0, beta=0.0)[0][0] == f"{context} {fused}"


def test_fusion_score_is_ctc_plus_weighted_lm_plus_word_bonus(lm):
    x = frames(spoken("the car"))  # a wide beam, so that both searches keep every alignment
    ctc = beam_search(x, TINY, beam_width=500, beta=0.0)[0]
    fused = beam_search(x, TINY, beam_width=500, lm=lm, alpha=0.7, beta=1.3)[0]
    state, lm_log_p = lm.begin_state(), 0.0
    for word in ("the", "car"):
        log_p, state = lm.score(state, word)
        lm_log_p += log_p
    lm_log_p += lm.end_score(state)
    assert fused[0] == ctc[0] == "the car"
    assert fused[1] == pytest.approx(ctc[1] + 0.7 * lm_log_p + 1.3 * 2)


def test_lexicon_drops_partial_words_the_lm_does_not_know(lm):
    x = frames(spoken("the r?d", {"x": 0.55, "e": 0.45}))
    assert beam_search(x, TINY, lm=lm, alpha=0.0, beta=0.0)[0][0] == "the rxd"
    assert beam_search(x, TINY, lm=lm, alpha=0.0, beta=0.0, lexicon=True)[0][0] == "the red"


# --- WordLM -------------------------------------------------------------------------------------
def test_word_lm_is_the_model_in_natural_log_with_a_fixed_unknown_penalty(model, tmp_path):
    lm = WordLM(model, unk_log_prob=-7.5)
    state = lm.begin_state()
    for word in ("the", "red", "car"):
        log_p, next_state = lm.score(state, word)
        log10_p, expected_state = model.score(state, int(model.ids([word])[0]))
        assert log_p == pytest.approx(log10_p * LN10) and next_state == expected_state
        assert lm.score(state, word) is lm.score(state, word)  # cached
        state = next_state
    assert lm.end_score(state) == pytest.approx(model.score(state, model.eos_id)[0] * LN10)
    begin = lm.begin_state()
    assert lm.score(begin, "zebra")[0] == -7.5
    assert model.score(begin, model.unk_id)[0] * LN10 != pytest.approx(-7.5)  # not <unk>'s probability
    assert lm.vocabulary == {"a", "car", "day", "rad", "red", "the"}
    assert {"", "r", "re", "red", "th"} <= lm.prefixes and "rx" not in lm.prefixes

    loaded = WordLM.from_arpa(write_arpa(model, tmp_path / "words.arpa"), unk_log_prob=-7.5)
    states = [lm.begin_state(), loaded.begin_state()]
    for word in ("a", "rad", "day", "zebra", "the"):
        (ours, states[0]), (theirs, states[1]) = lm.score(states[0], word), loaded.score(states[1], word)
        assert theirs == pytest.approx(ours, abs=1e-5)
    assert loaded.end_score(states[1]) == pytest.approx(lm.end_score(states[0]), abs=1e-5)


# --- CharLM -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def char_lm():
    with warnings.catch_warnings():  # a tiny corpus falls back to default discounts
        warnings.simplefilter("ignore", UserWarning)
        return CharLM.build(CORPUS + ["the boxes", "a fox"] * 2, order=4)


def test_char_lm_scores_every_character_then_the_end(char_lm, tmp_path):
    model, state, total = char_lm.model, char_lm.begin_state(), 0.0
    for character in "the car":
        log_p, next_state = char_lm.score(state, character)
        token = "|" if character == " " else character
        log10_p, expected_state = model.score(state, model.tokens.index(token))
        assert log_p == pytest.approx(log10_p * LN10) and next_state == expected_state
        state, total = next_state, total + log_p
    total += char_lm.end_score(state)
    expected = model.sentence_log10_probs([np.array([model.tokens.index(c) for c in "the|car"])])[0] * LN10
    assert total == pytest.approx(expected)  # the search's sum is the n-gram's sentence probability
    loaded = CharLM.from_arpa(write_arpa(model, tmp_path / "chars.arpa"))
    assert loaded.score(loaded.begin_state(), "t")[0] == pytest.approx(char_lm.score(char_lm.begin_state(), "t")[0],
                                                                         abs=1e-5)


def test_char_lm_fusion_score_is_ctc_plus_weighted_character_lm_plus_word_bonus(char_lm):
    x = frames(spoken("the car"))
    ctc = beam_search(x, TINY, beam_width=500, beta=0.0)[0]
    fused = beam_search(x, TINY, beam_width=500, lm=char_lm, alpha=0.7, beta=1.3)[0]
    state, lm_log_p = char_lm.begin_state(), 0.0
    for character in "the car":
        log_p, state = char_lm.score(state, character)
        lm_log_p += log_p
    lm_log_p += char_lm.end_score(state)
    assert fused[0] == ctc[0] == "the car"
    # Not to the last digit: labelings "the car " (a trailing space, 1e-4 a frame) merge into the
    # text, and unlike a word LM the character LM charges them for the boundary they emit.
    assert fused[1] == pytest.approx(ctc[1] + 0.7 * lm_log_p + 1.3 * 2, abs=1e-3)


def test_char_lm_spells_a_word_no_lm_text_holds(lm, char_lm):
    """"taxes" is in neither LM's text; the word LM can only call it unknown, the character LM has
    seen "xes" (boxes) and never "xas"."""
    alphabet = TINY + ("b", "f", "o", "s")
    x = frames(spoken("tax?s", {"a": 0.55, "e": 0.45}), alphabet)
    assert beam_search(x, alphabet, beta=0.0)[0][0] == "taxas"
    assert beam_search(x, alphabet, lm=lm, alpha=1.0, beta=0.0)[0][0] == "taxas"
    assert beam_search(x, alphabet, lm=char_lm, alpha=1.0, beta=0.0)[0][0] == "taxes"
    with pytest.raises(ValueError, match="lexicon"):
        beam_search(x, alphabet, lm=char_lm, lexicon=True)


# --- many utterances, tuning ----------------------------------------------------------------------
def ambiguous_set():
    """Acoustics lean to the wrong vowel; the trigram knows better: WER 0.5 without it, 0 with."""
    utterances = [frames(spoken("the r?d", {"a": 0.52, "e": 0.48})),
                  frames(spoken("a r?d", {"e": 0.52, "a": 0.48}))]
    return utterances, ["the red", "a rad"]


def test_decode_many_methods(lm):
    utterances, _ = ambiguous_set()
    assert decode_many(utterances, TINY) == ["the rad", "a red"]
    assert decode_many(utterances, TINY, "beam") == ["the rad", "a red"]
    assert decode_many(utterances, TINY, "beam_lm", lm=lm, alpha=1.0, beta=0.0) == ["the red", "a rad"]
    for method, options, message in [("viterbi", {}, "unknown method"), ("beam_lm", {}, "needs lm"),
                                     ("beam", {"lm": lm}, "beam_lm"), ("greedy", {"beta": 1.0}, "no options")]:
        with pytest.raises(ValueError, match=message):
            decode_many(utterances, TINY, method, **options)


def test_decode_many_shows_progress_for_long_lists(capsys):
    utterances = [frames(spoken("the car"))] * 51
    assert decode_many(utterances, TINY) == ["the car"] * 51
    assert "decoding (greedy)" in capsys.readouterr().err
    decode_many(utterances, TINY, progress=False)
    decode_many(utterances[:50], TINY)
    assert capsys.readouterr().err == ""


def test_tune_fusion_returns_the_grid_minimum(lm):
    utterances, references = ambiguous_set()
    result = tune_fusion(utterances, references, lm, TINY, alphas=(0.0, 1.0), betas=(0.0, 0.5),
                         progress=False)
    assert [point[:2] for point in result["grid"]] == [[0.0, 0.0], [0.0, 0.5], [1.0, 0.0], [1.0, 0.5]]
    wers = [point[2] for point in result["grid"]]
    assert result["wer"] == min(wers) == 0.0 and wers[:2] == [0.5, 0.5]
    assert [result["alpha"], result["beta"], result["wer"]] in result["grid"]
    assert result["alpha"] == 1.0
    with pytest.raises(ValueError, match="references"):
        tune_fusion(utterances, references[:1], lm, TINY)


# --- edges, errors, speed ---------------------------------------------------------------------------
def test_empty_utterance(lm):
    empty = np.zeros((0, len(TINY)))
    assert greedy_decode(empty, TINY) == ""
    assert beam_search(empty, TINY, beta=0.0) == [("", 0.0)]
    [(text, score)] = beam_search(empty, TINY, lm=lm, alpha=0.5)
    assert text == "" and score == pytest.approx(0.5 * lm.end_score(lm.begin_state()))


@pytest.mark.parametrize("log_probs, alphabet, message", [
    (np.zeros(4), ("", " ", "a"), "2-D"),
    (np.zeros((2, 3, 3)), ("", " ", "a"), "2-D"),
    (np.zeros((2, 4)), ("", " ", "a"), "4 classes but the alphabet has 3"),
    (np.array([[0.0, np.nan, 0.0]]), ("", " ", "a"), "NaN"),
    (np.zeros((2, 3)), ("a", "", " "), "blank"),
    (np.zeros((2, 3)), ("", "a", "b"), "delimiter"),
])
@pytest.mark.parametrize("decoder", [greedy_decode, beam_search])
def test_bad_input_is_rejected(decoder, log_probs, alphabet, message):
    with pytest.raises(ValueError, match=message):
        decoder(log_probs, alphabet)


def test_bad_options_are_rejected():
    x = frames(["a"])
    with pytest.raises(ValueError, match="lexicon"):
        beam_search(x, TINY, lexicon=True)
    with pytest.raises(ValueError, match="beam_width"):
        beam_search(x, TINY, beam_width=0)


def test_beam_search_with_an_lm_reads_a_peaky_input(lm):
    # Speed is measured in benchmarks/, never asserted here.
    alphabet = ("", " ", "'", *string.ascii_lowercase)
    rng = np.random.default_rng(0)
    labels = np.zeros(100, int)
    labels[np.sort(rng.choice(100, 20, replace=False))] = [alphabet.index(c) for c in "the red car a rad da"]
    logits = rng.normal(0.0, 1.0, (100, len(alphabet)))
    logits[np.arange(100), labels] += 8.0
    x = log_softmax(logits)
    text, _ = beam_search(x, alphabet, lm=lm)[0]
    assert text == "the red car a rad da"
