"""What the apps share: the special token ids of every vocabulary, model configs that list their
constructor arguments (the keras-hub way), and a language model config without its |V| counts."""

import dataclasses
import inspect
import json
import types
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import sentencepiece as spm

from dlsuite.apps.language import data as language_data
from dlsuite.apps.language.config import LanguageConfig
from dlsuite.apps.language.model import LanguageModel, build_language_model
from dlsuite.apps.speech.model import SpecAugment, SpeechRecognizer
from dlsuite.apps.translation import data as translation_data
from dlsuite.apps.translation.config import TranslationConfig
from dlsuite.apps.translation.model import Translator
from dlsuite.apps.vision.model import build_model
from dlsuite.pipelines.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID, TextCorpus, normalize
from dlsuite.shared.layers import (
    OUTPUT_KINDS,
    GlobalContrastNormalization,
    LocalContrastNormalization,
    make_vocabulary_output,
)

KJV_EXCERPT = Path(__file__).parents[1] / "data" / "kenlm" / "kjv_excerpt.txt"
SPECIAL_TOKENS = {PAD_ID: "<pad>", UNK_ID: "<unk>", BOS_ID: "<s>", EOS_ID: "</s>"}
V = 60
COUNTS = np.random.default_rng(0).integers(0, 500, V)  # uneven counts: trees and proposals depend on them


# === 1. Special token ids ===
def test_every_vocabulary_puts_the_specials_at_the_named_ids(tmp_path):
    """Language's word and sentencepiece vocabularies and translation's (two sides, not shared)
    all put <pad> <unk> <s> </s> at PAD_ID, UNK_ID, BOS_ID, EOS_ID, also inside the model files
    that the exported graphs read."""
    lines = [s for s in (normalize(line) for line in KJV_EXCERPT.read_text().splitlines()) if s]
    corpus = TextCorpus("kjv excerpt", lines, lines[:5], lines[:5])
    for name in ("word", "subword", "translation"):
        (tmp_path / name).mkdir()
    word = language_data.build_vocabulary(LanguageConfig(), corpus, tmp_path / "word")
    subword = language_data.build_vocabulary(
        dataclasses.replace(LanguageConfig(), tokenizer="unigram", subword_vocab_size=200), corpus, tmp_path / "subword")
    pairs = types.SimpleNamespace(name="toy", train=[(s, s.upper()) for s in lines])
    translation = translation_data.build_vocabulary(
        dataclasses.replace(TranslationConfig(), vocab_size=200, shared_vocabulary=False), pairs, tmp_path / "translation")
    assert isinstance(word, language_data.WordVocabulary) and isinstance(subword, language_data.SubwordVocabulary)
    for vocab in (word, subword, translation.source, translation.target):
        assert {i: vocab.tokens[i] for i in SPECIAL_TOKENS} == SPECIAL_TOKENS
    for vocab in (subword, translation.source, translation.target):
        sp = spm.SentencePieceProcessor(model_file=str(vocab.model_file))
        assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    assert word.encode(["zzqx"])[0].tolist() == [UNK_ID]
    assert word.counts[EOS_ID] == subword.counts[EOS_ID] == len(lines)  # </s> ends every sentence


# === 3. Configs list the constructor arguments ===
def _language_model():
    config = dataclasses.replace(LanguageConfig(), model="mlp", embedding_dim=8, hidden_dim=8, output="huffman")
    return build_language_model(config, V, COUNTS)


def _vision_model():
    return build_model(3, image_size=8, channels=1, normalization="lcn", widths=(4, 8))


BUILDERS = {
    "LanguageModel": _language_model,
    "Translator": lambda: Translator(40, 50, 8, 8, 12, 6, rnn="lstm", attention=False, dropout=0.1),
    "SpeechRecognizer": lambda: SpeechRecognizer(16, 29, conv_filters=4, rnn="lstm", rnn_units=8, rnn_layers=1,
                                                 spec_augment={"time_masks": 1, "seed": 3}, time_stride=3),
    "SpecAugment": lambda: SpecAugment(time_masks=1, time_mask_frames=5, freq_masks=3, freq_mask_bins=2, seed=7),
    "GlobalContrastNormalization": lambda: GlobalContrastNormalization(scale=2.0, regularization=10.0),
    "LocalContrastNormalization": lambda: LocalContrastNormalization(window_size=5, window="box", scale=0.5),
    **{f"vocabulary_output_{kind}": (lambda kind=kind: make_vocabulary_output(kind, V, COUNTS, 4, num_classes=5)
                                     if kind == "hierarchical_classes" else make_vocabulary_output(kind, V, COUNTS, 4))
       for kind in OUTPUT_KINDS},
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_constructor_argument_is_an_attribute_and_in_the_config(name):
    obj = BUILDERS[name]()
    config = obj.get_config()
    json.dumps(config)  # a .keras file's config.json
    arguments = [p for p in inspect.signature(type(obj).__init__).parameters if p not in ("self", "kwargs")]
    for argument in arguments:
        if argument == "counts":  # saved as an asset, not in the config (item 4)
            assert argument not in config
            continue
        value = getattr(obj, argument)
        assert config[argument] == (dict(value) if isinstance(value, dict) else value), argument
    clone = type(obj).from_config(config)
    assert clone.get_config() == config
    assert not hasattr(obj, "settings")


def test_vision_classifier_round_trips_through_its_functional_config():
    model = _vision_model()
    clone = keras.Model.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.get_layer("normalize").get_config() == model.get_layer("normalize").get_config()


# === 4. The language model's config stays small; its counts come back from the file ===
def _walk(value):
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


@pytest.mark.parametrize("output", ["hierarchical_classes", "huffman", "sampled", "nce", "ranking", "full"])
def test_language_model_file_keeps_counts_out_of_its_config(tmp_path, output):
    config = dataclasses.replace(LanguageConfig(), embedding_dim=8, hidden_dim=8, output=output, num_samples=8)
    model = build_language_model(config, V, COUNTS)
    model.compile(optimizer="adam")
    rng = np.random.default_rng(1)
    tokens, targets = rng.integers(0, V, (3, 7)).astype(np.int32), rng.integers(1, V, (3, 7)).astype(np.int32)
    model.train_on_batch(tokens, targets)  # as after training: the optimizer has its variables
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        saved = json.loads(archive.read("config.json"))
    assert not any(isinstance(v, list) and len(v) >= V for v in _walk(saved)), saved
    assert "counts" not in json.dumps(saved)
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded, LanguageModel) and loaded.get_config() == model.get_config()
    if output == "full":
        assert loaded.counts is None
    else:
        np.testing.assert_array_equal(loaded.counts, COUNTS)
    np.testing.assert_allclose(loaded.log_prob(tokens, targets), model.log_prob(tokens, targets), rtol=0, atol=1e-6)
    np.testing.assert_allclose(loaded.next_log_probs(tokens), model.next_log_probs(tokens), rtol=0, atol=1e-6)
    if output in ("sampled", "nce", "ranking"):
        np.testing.assert_array_equal(loaded.vocabulary_output.proposal, model.vocabulary_output.proposal)
    assert np.isfinite(loaded.train_on_batch(tokens, targets))  # training needs the counts too
