"""Shared pieces of the speech tests."""

import warnings

import numpy as np

from dlsuite.apps.speech.decode import CharLM, WordLM
from dlsuite.apps.speech.inference import FusionLMs
from dlsuite.shared.ngram import build_ngram_model


def tiny_word_lm(sentences: list[str], order: int = 3) -> WordLM:
    """A Kneser-Ney word LM of a few sentences (its discounts fall back on so small a corpus)."""
    tokens = ["<unk>", "<s>", "</s>", *sorted({w for s in sentences for w in s.split()})]
    ids = {w: i for i, w in enumerate(tokens)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return WordLM(build_ngram_model([np.array([ids[w] for w in s.split()]) for s in sentences], tokens, order))


def tiny_lms(sentences: list[str], char_sentences: list[str] | None = None) -> FusionLMs:
    """A run's fusion LMs for tests: the word LM of `sentences`, a character 4-gram of
    `char_sentences` (default: the same sentences)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return FusionLMs(tiny_word_lm(sentences), CharLM.build(char_sentences or sentences, order=4))
