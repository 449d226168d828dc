"""inference.tune: the LM fusion is kept only where it helps on validation data, so an LM from
another domain never makes beam + LM worse than beam search alone."""

import types

import numpy as np
import pytest

from dlsuite.apps.speech import data, inference
from dlsuite.apps.speech.config import SpeechConfig
from dlsuite.apps.speech.transcripts import ALPHABET
from tests.apps.speech_helpers import tiny_lms

CORPUS = ["the red car"] * 4 + ["a rad day"] * 4 + ["the car", "a day"]
# The character LM's text also spells "boxes" and "foxes": it has seen "xes", never "xas".
CHAR_CORPUS = CORPUS + ["the boxes", "a fox", "foxes"] * 2


@pytest.fixture(scope="module")
def lm():
    return tiny_lms(CORPUS, CHAR_CORPUS)


def spoken(text: str, vowel_odds: dict | None = None) -> np.ndarray:
    """[T, 29] log-probs: each character then a blank; '?' is the ambiguous vowel `vowel_odds`."""
    rows = []
    for ch in text:
        for frame in (vowel_odds if ch == "?" else {ch: 1.0}, {"": 1.0}):
            row = np.full(len(ALPHABET), 1e-4)
            for label, p in frame.items():
                row[ALPHABET.index(label)] = p
            rows.append(row / row.sum())
    return np.log(np.array(rows))


def tune_on(monkeypatch, lm, utterances: list[tuple[str, np.ndarray]], **settings):
    # The "features" of these examples are their log-probabilities: no acoustic model runs.
    monkeypatch.setattr(inference, "frame_log_probs", lambda model, examples: list(examples.features))
    examples = data.Examples([types.SimpleNamespace(transcript=t) for t, _ in utterances],
                             [lp for _, lp in utterances], [None] * len(utterances))
    config = SpeechConfig(beam_width=4, **settings)
    return config, inference.tune(None, examples, config, lm)


def test_an_lm_that_helps_is_used(monkeypatch, lm):
    # The acoustics lean to "rad" after "the"; the trigram knows "the red".
    utterances = [("the red car", spoken("the r?d car", {"a": 0.55, "e": 0.45}))] * 3
    config, fusion = tune_on(monkeypatch, lm, utterances)
    assert fusion["use_lm"] and fusion["lexicon"] is True and fusion["valid_wer"] < fusion["valid_wer_beam"]
    assert fusion["unit"] == "word" and list(fusion["valid_wer_tried"]) == ["word_lexicon"]  # the first that helps
    texts = inference.decode_all([lp for _, lp in utterances], config, lm, fusion, progress=False)
    assert texts["beam"][0] == "the rad car" and texts["beam_lm"][0] == "the red car"


def test_the_character_lm_spells_words_the_word_lm_does_not_know(monkeypatch, lm):
    # "taxes": the word LM's lexicon cannot spell it and its unigram calls it <unk>; the acoustics
    # lean to "taxas", the character LM knows "xes" (boxes, foxes).
    utterances = [("taxes", spoken("tax?s", {"a": 0.55, "e": 0.45}))] * 2
    config, fusion = tune_on(monkeypatch, lm, utterances)
    assert fusion["use_lm"] and fusion["unit"] == "char" and fusion["lexicon"] is False
    assert list(fusion["valid_wer_tried"]) == ["word_lexicon", "char"] and fusion["valid_wer"] == 0.0
    texts = inference.decode_all([lp for _, lp in utterances], config, lm, fusion, progress=False)
    assert texts["beam"] == ["taxas"] * 2 and texts["beam_lm"] == ["taxes"] * 2
    assert inference.fusion_metrics(fusion)["lm_unit"] == "char"


def test_an_lm_from_another_domain_is_not_used(monkeypatch, lm):
    # Words neither LM has seen, spelled as the acoustics say: no LM can improve on them.
    utterances = [("hex tax", spoken("hex tax")), ("yet", spoken("yet"))]
    config, fusion = tune_on(monkeypatch, lm, utterances)
    assert list(fusion["valid_wer_tried"]) == ["word_lexicon", "char", "word"]
    assert fusion["use_lm"] is False and fusion["valid_wer_beam"] == 0.0
    texts = inference.decode_all([lp for _, lp in utterances], config, lm, fusion, progress=False)
    assert texts["beam_lm"] == texts["beam"] == ["hex tax", "yet"]
    assert inference.fusion_metrics(fusion)["lm_used"] is False


def test_tuning_uses_an_even_sample_of_validation(monkeypatch, lm):
    # Five utterances, a sample of two: the first and the last, which the LM cannot help; the
    # middle ones (where it would) are left out, so the LM is not used.
    helped = ("the red car", spoken("the r?d car", {"a": 0.55, "e": 0.45}))
    unknown = ("hex tax", spoken("hex tax"))
    utterances = [unknown, helped, helped, helped, unknown]
    _, sampled = tune_on(monkeypatch, lm, utterances, fusion_tune_utterances=2)
    assert sampled["tune_utterances"] == 2 and sampled["use_lm"] is False
    _, every = tune_on(monkeypatch, lm, utterances, fusion_tune_utterances=0)
    assert every["tune_utterances"] == 5 and every["use_lm"] is True


def test_a_negative_tuning_sample_is_refused():
    with pytest.raises(ValueError, match="fusion_tune_utterances must be >= 0"):
        SpeechConfig(fusion_tune_utterances=-1)
