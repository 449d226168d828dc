"""The translation app: model, beam search, training on a small table, export, bad input."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dlsuite.apps.app import call_export, compare_outputs
from dlsuite.apps.translation import config as translation_config
from dlsuite.apps.translation import data, decode, export, inference
from dlsuite.apps.translation.app import TranslationApp
from dlsuite.apps.translation.model import Translator
from dlsuite.apps.translation.pairs import ParallelCorpus, TranslationDataError
from dlsuite.pipelines.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from dlsuite.shared.config import ConfigError
from tests.fresh_process import run_without_dlsuite

APP = TranslationApp()
WORDS = {"one": "eins", "two": "zwei", "three": "drei", "four": "vier", "five": "fünf", "six": "sechs",
         "red": "rot", "blue": "blau", "green": "grün", "house": "Haus", "car": "Auto", "tree": "Baum"}


def word_pairs(n: int, seed: int = 0, longest: int = 7) -> list[tuple[str, str]]:
    """A toy language pair: word-by-word translation of random word strings."""
    rng = random.Random(seed)
    english = list(WORDS)
    pairs = []
    for _ in range(n):
        words = [rng.choice(english) for _ in range(rng.randint(1, longest))]
        pairs.append((" ".join(words), " ".join(WORDS[w] for w in words)))
    return pairs


def small_model(rnn="gru", attention=True, seed=0):
    tf.keras.utils.set_random_seed(seed)
    model = Translator(40, 50, 16, 16, 24, 8, rnn=rnn, attention=attention, dropout=0.0)
    model({"source": np.ones((1, 2), np.int32), "target_in": np.ones((1, 2), np.int32)})
    return model


SOURCE = np.array([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]], np.int32)
TARGET_IN = np.array([[2, 5, 6, 0], [2, 7, 8, 9]], np.int32)


# === Config ===
@pytest.mark.parametrize("override", [{"beam_width": 0}, {"rnn": "transformer"}, {"data": "table"},
                                      {"data": "wikipedia"}, {"dropout": 1.0}])
def test_config_rejects_bad_values(override):
    with pytest.raises(ConfigError):
        dataclasses.replace(translation_config.TranslationConfig(), **override).validate()


# === Model ===
@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize("attention", [True, False])
def test_one_decoder_step_at_a_time_equals_teacher_forcing(rnn, attention):
    """Search (decode_step) and training (decode_sequence) must compute the same distribution."""
    model = small_model(rnn, attention)
    expected = tf.nn.log_softmax(model({"source": SOURCE, "target_in": TARGET_IN})).numpy()
    memory = model.encode(SOURCE)
    states = model.initial_states(memory)
    for t in range(TARGET_IN.shape[1]):
        log_probs, states, weights = model.decode_step(TARGET_IN[:, t], states, memory)
        real = TARGET_IN[:, t] > 0  # padded positions are masked in training, not decoded
        np.testing.assert_allclose(log_probs.numpy()[real], expected[real, t], atol=1e-5)
        if attention:  # weights are a distribution over the real source tokens only
            np.testing.assert_allclose(weights.numpy().sum(axis=1), 1.0, atol=1e-5)
            assert np.all(weights.numpy()[0, 4:] < 1e-6)


def test_padding_does_not_change_the_output():
    model = small_model()
    batched = model({"source": SOURCE, "target_in": TARGET_IN}).numpy()
    alone = model({"source": SOURCE[:1, :4], "target_in": TARGET_IN[:1, :3]}).numpy()
    np.testing.assert_allclose(alone[0], batched[0, :3], atol=1e-5)


# === Beam search ===
def sequence_log_prob(model, source_row: np.ndarray, tokens: np.ndarray) -> float:
    """log P(tokens | source) by teacher forcing."""
    target_in = np.concatenate([[BOS_ID], tokens[:-1]])[None].astype(np.int32)
    log_probs = tf.nn.log_softmax(model({"source": source_row[None], "target_in": target_in}))[0].numpy()
    return float(sum(log_probs[t, tok] for t, tok in enumerate(tokens)))


@pytest.mark.parametrize("attention", [True, False])
def test_beam_search_bookkeeping_matches_teacher_forcing(attention):
    """The returned raw score is the log-probability of the returned tokens, which end in </s>."""
    model = small_model(attention=attention, seed=1)
    out = decode.beam_search(model, SOURCE, beam_width=4, length_penalty=0.6)
    for row in range(len(SOURCE)):
        n = int(out["lengths"][row])
        tokens = out["tokens"][row, :n].numpy()
        assert tokens[-1] == EOS_ID and EOS_ID not in tokens[:-1] and np.all(tokens[:-1] > EOS_ID)
        source_row = SOURCE[row][SOURCE[row] > 0]
        assert out["log_probs"][row].numpy() == pytest.approx(sequence_log_prob(model, source_row, tokens), abs=1e-3)
        expected_score = out["log_probs"][row].numpy() / ((5 + n) / 6) ** 0.6
        assert out["scores"][row].numpy() == pytest.approx(expected_score, rel=1e-5)


def test_wider_beams_never_find_worse_hypotheses():
    """Without length normalization, a wider beam's best log-probability is at least greedy's."""
    model = small_model(seed=2)
    greedy = decode.beam_search(model, SOURCE, beam_width=1, length_penalty=0.0)["log_probs"].numpy()
    beam = decode.beam_search(model, SOURCE, beam_width=8, length_penalty=0.0)["log_probs"].numpy()
    assert np.all(beam >= greedy - 1e-4)


def test_beam_search_respects_length_limits_and_never_emits_specials():
    model = small_model(seed=3)
    out = decode.beam_search(model, SOURCE, beam_width=3, max_length_ratio=0.5)
    limits = (np.array([4, 6]) * 0.5).astype(int) + 10
    assert np.all(out["lengths"].numpy() <= limits)
    assert not np.isin(out["tokens"].numpy(), [UNK_ID, BOS_ID]).any()


def test_batched_search_equals_one_sentence_at_a_time():
    model = small_model(seed=4)
    batched = decode.beam_search(model, SOURCE, beam_width=3)
    alone = decode.beam_search(model, SOURCE[:1, :4], beam_width=3)
    n = int(alone["lengths"][0])
    np.testing.assert_array_equal(alone["tokens"][0, :n], batched["tokens"][0, :n])


def test_empty_batch_decodes_to_nothing():
    out = decode.beam_search(small_model(), np.zeros((0, 3), np.int32), beam_width=2)
    assert out["tokens"].shape[0] == 0


# === Data ===
def test_encode_pairs_skips_long_pairs_with_a_warning(tmp_path):
    config = dataclasses.replace(translation_config.TranslationConfig(), vocab_size=60)
    corpus = ParallelCorpus("toy", "en", "de", word_pairs(300), word_pairs(20, 1), word_pairs(20, 2))
    vocab = data.build_vocabulary(config, corpus, tmp_path)
    assert (tmp_path / "source.model").read_bytes() == (tmp_path / "target.model").read_bytes()  # shared
    pairs = corpus.train[:50] + [(" ".join(["house"] * 40), " ".join(["Haus"] * 40))]
    with pytest.warns(UserWarning, match="skipped 1 of 51"):
        encoded = data.encode_pairs(vocab, pairs, max_tokens=30)
    assert len(encoded) == 50
    assert vocab.decode_target(np.concatenate([encoded.targets[0], [EOS_ID, 7]])) == pairs[0][1]


def test_dataset_knows_its_number_of_batches(tmp_path):
    config = dataclasses.replace(translation_config.TranslationConfig(), vocab_size=60)
    corpus = ParallelCorpus("toy", "en", "de", word_pairs(500), [], [])
    encoded = data.encode_pairs(data.build_vocabulary(config, corpus, tmp_path), corpus.train, 64)
    ds = data.make_dataset(encoded, 16, shuffle=True)
    batches = list(ds)
    assert int(ds.cardinality()) == len(batches)
    assert sum(len(targets) for _, targets in batches) == len(encoded)
    for inputs, targets in batches[:5]:  # teacher forcing: target_in is <s> + targets shifted right
        np.testing.assert_array_equal(inputs["target_in"][:, 0], BOS_ID)
        np.testing.assert_array_equal(inputs["target_in"][:, 1:], np.where(targets[:, :-1] == EOS_ID, PAD_ID, targets[:, :-1]))


def test_pair_limits_sample_the_whole_corpus_not_its_first_pairs():
    pairs = [(f"message {i}", f"Meldung {i}") for i in range(1000)]
    corpus = ParallelCorpus("toy", "en", "de", pairs, pairs[:100], pairs[:100])
    config = dataclasses.replace(translation_config.TranslationConfig(), max_train_pairs=100, max_eval_pairs=10)
    limited = data.limit_pairs(corpus, config)
    assert len(limited.train) == 100 and len(limited.valid) == len(limited.test) == 10
    picked = sorted(int(s.split()[1]) for s, _ in limited.train)
    assert picked[-1] > 800 and picked[0] < 200  # spread over the corpus
    assert data.limit_pairs(corpus, config).train == limited.train  # and the same every time


def test_separate_vocabularies_and_empty_training_split(tmp_path):
    config = dataclasses.replace(translation_config.TranslationConfig(), vocab_size=50, shared_vocabulary=False)
    corpus = ParallelCorpus("toy", "en", "de", word_pairs(300), [], [])
    vocab = data.build_vocabulary(config, corpus, tmp_path)
    assert "▁Haus" in vocab.target.tokens and "▁Haus" not in vocab.source.tokens
    with pytest.raises(TranslationDataError, match="training split is empty"):
        data.build_vocabulary(config, ParallelCorpus("empty", "en", "de", [], [], []), tmp_path)


def test_domain_corpus_drops_pairs_the_general_corpus_has(monkeypatch, tmp_path):
    general = ParallelCorpus("general", "en", "de", [("Open", "Öffnen")], [("Save", "Speichern")], [])
    domain = ParallelCorpus("domain", "en", "de", [("Open", "Öffnen"), ("Account", "Konto")],
                            [("Ledger", "Hauptbuch")], [("Save", "Speichern"), ("Budget", "Budget")])
    monkeypatch.setattr(data, "load_corpus", lambda config: general)
    packages_asked = []

    def fake_build(cache_dir, lang, packages):
        packages_asked.extend(packages)
        return domain

    monkeypatch.setattr(data, "build_gettext_corpus", fake_build)
    result = data.load_domain_corpus(translation_config.TranslationConfig(cache_dir=str(tmp_path)))
    assert result.train == [("Account", "Konto")] and result.test == [("Budget", "Budget")]
    assert sorted(data._package_name(p) for p in packages_asked) == sorted(data.DOMAIN_PACKAGES)
    assert not set(data.DOMAIN_PACKAGES) & {data._package_name(p) for p in data.GENERAL_PACKAGES}


# === A trained run on a small table: learning, commands, export ===
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("translation")
    table = root / "pairs.tsv"
    table.write_text("\n".join(f"{s}\t{t}" for s, t in word_pairs(3000)) + "\n", encoding="utf-8")
    config = dataclasses.replace(
        translation_config.TranslationConfig(), data=f"table:{table}", run_root=str(root / "runs"), vocab_size=80,
        embedding_dim=32, encoder_units=32, decoder_units=48, attention_units=24, dropout=0.0, epochs=6,
        batch_size=32, learning_rate=1e-2, beam_width=3, max_eval_pairs=120)
    metrics = APP.run("train", config)
    return config, Path(metrics["run_dir"]), metrics


def test_training_learns_the_toy_language(trained_run):
    _, run_dir, metrics = trained_run
    assert metrics["test_bleu_greedy"] > 60 and metrics["test_bleu_beam"] > 60, metrics
    assert json.loads((run_dir / "metrics.json").read_text())["test_chrf_beam"] == metrics["test_chrf_beam"]
    for name in ("model.keras", "test_translations.tsv", "test_bleu_by_length.tsv", "plots/test_attention_0.png",
                 "plots/test_bleu_by_source_length.png"):
        assert (run_dir / name).is_file(), name


def test_predict_translates_sentences_and_files(trained_run, tmp_path):
    _, run_dir, _ = trained_run
    lines = tmp_path / "in.txt"
    lines.write_text("red car\nthree trees\n", encoding="utf-8")
    long_sentence = "one two three " * 130  # no file name: too long for the OS (it was an OSError)
    results = APP.run("predict", APP.resolve_config("predict", run_dir), run_dir, ["one two", str(lines), ""])
    assert [r["input"] for r in results] == ["one two", "red car", "three trees", ""]
    with pytest.raises(TranslationDataError, match="max_input_tokens"):
        APP.run("predict", APP.resolve_config("predict", run_dir), run_dir, [long_sentence])
    assert results[0]["translation"] == "eins zwei" and results[1]["translation"] == "rot Auto"
    assert results[3]["translation"] == ""


def test_too_long_input_is_an_error_naming_the_limit(trained_run):
    config, run_dir, _ = trained_run
    model, vocab = APP.load_model(run_dir), data.load_vocabulary(run_dir)
    with pytest.raises(TranslationDataError, match="max_input_tokens=256"):
        inference.translate(model, vocab, ["one " * 300], config)


def test_finetune_on_new_pairs_reports_before_and_after(trained_run, tmp_path):
    config, run_dir, _ = trained_run
    # The new domain: every sentence has a number the model never saw ("seven", "eight"), spelled
    # with pieces the vocabulary has.
    words = dict(WORDS, seven="sieben", eight="acht")
    rng = random.Random(5)
    domain = []
    for _ in range(600):
        sentence = [rng.choice(list(words)) for _ in range(rng.randint(1, 6))] + [rng.choice(["seven", "eight"])]
        rng.shuffle(sentence)
        domain.append((" ".join(sentence), " ".join(words[w] for w in sentence)))
    table = tmp_path / "domain.tsv"
    table.write_text("\n".join(f"{s}\t{t}" for s, t in domain) + "\n", encoding="utf-8")
    tuned = dataclasses.replace(config, data=f"table:{table}", epochs=8, learning_rate=1e-3)
    metrics = APP.run("finetune", tuned, run_dir)
    out_dir = Path(metrics["run_dir"])
    assert metrics["test_bleu_beam"] > metrics["before_bleu_beam"] + 3, metrics
    assert metrics["test_bleu_greedy"] > metrics["before_bleu_greedy"], metrics
    assert (out_dir / "before_translations.tsv").is_file() and (out_dir / "target.model").is_file()


def test_export_translates_without_dlsuite_like_the_keras_model(trained_run):
    config, run_dir, _ = trained_run
    export_dir = APP.run("export", config, run_dir)["export_dir"]
    # "☃" was never seen in training: it becomes an <unk> piece and the rest is still translated.
    sentences = ["one two three", "red house", "green tree five six", "", "red ☃ house"]
    model, vocab = APP.load_model(run_dir), data.load_vocabulary(run_dir)
    probe = export.probe(model, vocab, config, sentences)
    check = compare_outputs(probe, call_export(export_dir, probe))
    assert check["export_agrees"] and check["export_max_gap"] < 1e-3, check
    expected = inference.translate(model, vocab, sentences, config)
    got = run_without_dlsuite(f"""
import json, tensorflow as tf, tensorflow_text
nmt = tf.saved_model.load({str(export_dir)!r})
out = nmt.signatures["serving_default"](sentences=tf.constant({sentences!r}))
greedy = nmt.signatures["greedy"](sentences=tf.constant({sentences!r}))
try:
    nmt.signatures["serving_default"](sentences=tf.constant(["one " * 300]))
    error = ""
except tf.errors.InvalidArgumentError as e:
    error = e.message
print(json.dumps({{"beam": [t.decode() for t in out["translations"].numpy()],
                  "greedy": [t.decode() for t in greedy["translations"].numpy()],
                  "attention_shape": list(out["attention"].shape), "error": error}}))
""")
    assert got["beam"] == expected and got["beam"][3] == ""
    assert "rot" in got["beam"][4] and "Haus" in got["beam"][4] and "⁇" not in got["beam"][4]
    assert got["greedy"][:3] == ["eins zwei drei", "rot Haus", "grün Baum fünf sechs"]
    assert got["attention_shape"][0] == 5
    assert "max_input_tokens" in got["error"]


@pytest.mark.slow  # 30 s: a second model trained beside the first
def test_compare_baseline_trains_the_fixed_context_model_beside(tmp_path):
    config = dataclasses.replace(APP.smoke_config(tmp_path), compare_baseline=True)
    metrics = APP.run("train", config)
    run_dir = Path(metrics["run_dir"])
    assert "baseline_test_bleu_beam" in metrics and "test_bleu_beam" in metrics
    assert (run_dir / "baseline" / "model.keras").is_file() and (run_dir / "baseline" / "metrics.json").is_file()
    assert not APP.load_model(run_dir / "baseline").attention and APP.load_model(run_dir).attention
    for name in ("test_bleu_by_length_vs_baseline.tsv", "plots/test_bleu_by_source_length_vs_baseline.png"):
        assert (run_dir / name).is_file(), name
