"""Speech app: in-graph features against librosa, the acoustic model, the data pipeline, a tiny
end-to-end run with every command, and the export in a process that cannot import dlsuite.

The decoders and the corpus have their own files (test_speech_decode.py, test_speech_corpus.py).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import textwrap

import jiwer
import librosa
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from dlsuite.apps.speech import config as speech_config
from dlsuite.apps.speech import data, features
from dlsuite.apps.speech.audio import load_audio
from dlsuite.apps.speech.model import SpecAugment, build_speech_model
from dlsuite.apps.speech.transcripts import ALPHABET, SpeechDataError
from dlsuite.apps.speech.utterances import Utterance
from dlsuite.shared.config import ConfigError, load_config
from tests.fresh_process import run_without_dlsuite

# Documented agreement with librosa (features.py): log-mel power differs by at most this much
# (natural log) on speech; the difference comes from float32 FFTs and mel-weight rounding.
FEATURE_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """A real utterance: espeak-ng at its native 22050 Hz, and librosa's 16 kHz resampling of it."""
    path = tmp_path_factory.mktemp("audio") / "spoken.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "in the beginning god created the heaven"], check=True)
    audio, rate = sf.read(path, dtype="float32")
    return path, audio, rate, librosa.resample(audio, orig_sr=rate, target_sr=16000)


def librosa_log_mel(audio):
    mel = librosa.feature.melspectrogram(y=audio, sr=16000, n_fft=512, hop_length=160, center=False, htk=True,
                                         norm=None, fmin=20, fmax=7600, n_mels=80, power=2.0)
    return np.log(mel.T + features.LOG_FLOOR)


# === Features ===
def test_log_mel_matches_librosa(spoken):
    _, _, _, audio16 = spoken
    ours = features.log_mel_spectrogram(tf.constant(audio16)).numpy()
    reference = librosa_log_mel(audio16)
    assert ours.shape == reference.shape == (int(features.num_frames(len(audio16))), features.NUM_MELS)
    assert np.max(np.abs(ours - reference)) < FEATURE_TOLERANCE


def test_mfcc_matches_librosa_up_to_its_db_scale(spoken):
    _, _, _, audio16 = spoken
    log_mel = librosa_log_mel(audio16)
    ours = features.mfccs(tf.constant(log_mel, tf.float32)).numpy()
    db = librosa.power_to_db(np.exp(log_mel).T, top_db=None, amin=1e-12)
    reference = librosa.feature.mfcc(S=db, n_mfcc=13, norm="ortho").T * np.log(10) / 10  # dB -> natural log
    # TensorFlow scales c0 by sqrt(2) relative to the orthonormal DCT; the others agree.
    np.testing.assert_allclose(ours[:, 0], reference[:, 0] * np.sqrt(2), atol=0.05)
    np.testing.assert_allclose(ours[:, 1:], reference[:, 1:], atol=0.05)


def test_in_graph_resampling_matches_soxr_features(spoken):
    _, audio, rate, audio16 = spoken
    resampled = features.resample(tf.constant(audio), rate).numpy()
    assert len(resampled) == len(audio16)
    ours = features.log_mel_spectrogram(tf.constant(resampled)).numpy()
    loud = librosa_log_mel(audio16) > np.log(1e-2)
    assert np.mean(np.abs(ours - librosa_log_mel(audio16))[loud]) < 0.01
    np.testing.assert_array_equal(features.resample(tf.constant(audio16), 16000).numpy(), audio16)


def test_features_are_normalized_per_utterance(spoken):
    _, _, _, audio16 = spoken
    values = data.compute_features(audio16, "log_mel")
    np.testing.assert_allclose(values.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(values.std(axis=0), 1, atol=1e-2)
    # A gain change shifts every log-mel value by the same amount, which normalization removes
    # (up to frames near the log floor: espeak's digital silence).
    softer = data.compute_features(audio16 * 0.5, "log_mel")
    loud = librosa_log_mel(audio16) > np.log(1e-2)
    assert np.median(np.abs(softer - values)[loud]) < 0.05


# === Model ===
def small_config(**changes):
    base = dict(rnn_units=16, rnn_layers=1, conv_filters=4, epochs=1, batch_size=4)
    return dataclasses.replace(speech_config.SpeechConfig(), **(base | changes))


@pytest.mark.parametrize("stride", [2, 3])
def test_batched_and_single_utterances_give_the_same_outputs(stride):
    model = build_speech_model(small_config(time_stride=stride), 80, len(ALPHABET))
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(3, 53, 80)).astype("float32")
    lengths = np.array([53, 30, 31])
    for row, n in enumerate(lengths):
        batch[row, n:] = 0.0
    together, out_lengths = model.log_probs(batch, lengths)
    for row, n in enumerate(lengths):
        alone, alone_length = model.log_probs(batch[row : row + 1, :n], np.array([n]))
        assert int(alone_length[0]) == int(out_lengths[row]) == -(-n // stride)
        np.testing.assert_allclose(np.asarray(together)[row, : int(out_lengths[row])], np.asarray(alone)[0], atol=1e-5)


def test_spec_augment_masks_only_in_training():
    layer = SpecAugment(time_masks=2, time_mask_frames=10, freq_masks=2, freq_mask_bins=8, seed=1)
    x = np.ones((4, 100, 80), "float32")
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    masked = np.asarray(layer(x, training=True))
    zero_share = np.mean(masked == 0)
    assert 0.0 < zero_share < 0.5
    rows_fully_zero = np.all(masked == 0, axis=2)  # time masks zero whole frames
    assert rows_fully_zero.any()


def test_ctc_model_learns_to_transcribe_a_few_utterances(spoken):
    """Over-fitting three utterances: the CTC loss falls and greedy decoding reads them back."""
    from dlsuite.apps.speech.decode import greedy_decode

    _, _, _, audio16 = spoken
    texts = ["in the beginning god created the heaven", "in the beginning", "god created"]
    clips = [audio16, audio16[: len(audio16) // 3], audio16[len(audio16) // 3 : 2 * len(audio16) // 3]]
    config = small_config(rnn_units=48, conv_filters=8, time_masks=0, freq_masks=0, dropout=0.0)
    examples = data.Examples([Utterance(f"clip{i}", t, "s", len(c) / 16000, f"k{i}") for i, (c, t) in enumerate(zip(clips, texts, strict=True))],
                             [data.compute_features(c, "log_mel") for c in clips], [data.encode(t) for t in texts])
    model = build_speech_model(config, 80, len(ALPHABET))
    model.compile(optimizer="adam")
    ds = data.make_dataset(examples, 3, ordered=True)
    first = model.evaluate(ds, verbose=0)
    model.fit(ds.repeat(), steps_per_epoch=150, epochs=1, verbose=0)
    assert model.evaluate(ds, verbose=0) < 0.2 * first
    log_probs, lengths = model.log_probs(examples.features[0][None], np.array([len(examples.features[0])]))
    decoded = greedy_decode(np.asarray(log_probs)[0, : int(lengths[0])], ALPHABET)
    assert jiwer.cer(texts[0], decoded) < 0.4, decoded  # an untrained model outputs nothing: CER 1


# === Data pipeline ===
def test_buckets_keep_padding_small_and_labels_intact():
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 400, 64)
    feats = [rng.normal(size=(n, 80)).astype("float32") for n in lengths]
    labels = [data.encode("ab c"[: 1 + i % 4]) for i in range(64)]
    utts = [Utterance(f"u{i}", "x", "s", 1.0, f"k{i}") for i in range(64)]
    ds = data.make_dataset(data.Examples(utts, feats, labels), 8, shuffle=True)
    waste, seen = 0, 0
    for inputs, targets in ds:
        n = inputs["lengths"].numpy()
        waste += np.sum(inputs["features"].shape[1] - n)
        seen += n.sum()
        m = targets["label_lengths"].numpy()
        assert np.all(targets["labels"].numpy()[np.arange(len(m)), m - 1] > 0)  # last real label kept
    assert waste / seen < 0.15  # sorted-by-length batches; random batches waste about half


def test_examples_skip_utterances_too_short_for_their_transcript(tmp_path):
    sf.write(tmp_path / "short.wav", 0.1 * np.sin(np.arange(1600) / 5.0).astype("float32"), 16000)  # 0.1 s
    sf.write(tmp_path / "ok.wav", 0.1 * np.sin(np.arange(16000) / 5.0).astype("float32"), 16000)
    utts = [Utterance(str(tmp_path / "short.wav"), "a much too long transcript for a tenth of a second", "s", 0.1, "short"),
            Utterance(str(tmp_path / "ok.wav"), "hello", "s", 1.0, "ok")]
    with pytest.warns(UserWarning, match="too short for their transcript"):
        kept = data.examples(utts, small_config(), "train")
    assert [u.key for u in kept.utterances] == ["ok"]
    with pytest.warns(UserWarning, match="longer than max_seconds"), pytest.raises(SpeechDataError, match="no usable"):
        data.examples(utts[1:], small_config(max_seconds=0.5), "train")


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="time_stride"):
        load_config(speech_config.SpeechConfig(), None, ["time_stride=7"])
    with pytest.raises(ConfigError, match="data must be"):
        load_config(speech_config.SpeechConfig(), None, ["data=http://x"])
    with pytest.raises(ConfigError, match="Unknown config key 'beam'"):
        load_config(speech_config.SpeechConfig(), None, ["beam=3"])


def _tone_table(folder, words: list[str], speaker_prefix: str):
    """A transcripts table of one-second tones, one speaker per row (so it splits by speaker)."""
    folder.mkdir(parents=True)
    rows = ["path,transcript,speaker"]
    for i, word in enumerate(words):
        sf.write(folder / f"{i}.wav", 0.1 * np.sin(np.arange(16000) / (3.0 + i)).astype("float32"), 16000)
        rows.append(f"{i}.wav,{word},{speaker_prefix}{i}")
    (folder / "list.csv").write_text("\n".join(rows) + "\n")
    return f"table:{folder / 'list.csv'}"


def test_extra_train_data_joins_training_only(tmp_path):
    """extra_train_data's utterances (all their splits) are trained on, never LM text, valid or test."""
    from dlsuite.apps.speech import train

    main_words = [f"main {w}" for w in "one two three four five six seven eight nine ten".split()]
    extra_words = [f"extra {w}" for w in "un deux trois quatre cinq six sept huit neuf dix".split()]
    config = small_config(data=_tone_table(tmp_path / "main", main_words, "m"), lm_text="none", **speech_config.NO_AUGMENTATION,
                          extra_train_data=(_tone_table(tmp_path / "extra", extra_words, "e"),))
    config.validate()
    splits, examples = train.prepare(config, tmp_path)
    trained = {u.transcript for u in examples["train"].utterances}
    assert set(extra_words) <= trained and trained - set(extra_words) == {u.transcript for u in splits.train}
    assert all(w.startswith("main") for name in ("valid", "test") for w in (u.transcript for u in examples[name].utterances))
    assert not any("extra" in s for s in train.lm_sentences(config, splits))
    assert json.loads((tmp_path / "corpus.json").read_text())["extra_train"]["utterances"] == 10
    _, evaluation = train.prepare(config, tmp_path, ("valid", "test"))  # evaluate loads no extra corpus
    assert set(evaluation) == {"valid", "test"}
    with pytest.raises(ConfigError, match="extra_train_data must be distinct corpora other than data"):
        dataclasses.replace(config, extra_train_data=(config.data,)).validate()


# === A tiny end-to-end run: train, evaluate, predict, finetune, export ===
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from dlsuite.apps.cli import run_app

    root = tmp_path_factory.mktemp("speech")
    args = ["num_sentences=20", "epochs=1", "batch_size=8", "rnn_units=16", "rnn_layers=1", "conv_filters=4",
            "lm_text=none", f"cache_dir={root / 'cache'}", f"run_root={root / 'runs'}"]
    result = run_app("speech", ["train", *args])
    return root, args, result


def test_train_writes_metrics_results_and_pictures(tiny_run):
    from pathlib import Path

    _, _, result = tiny_run
    run_dir = Path(result["run_dir"])
    for method in ("greedy", "beam", "beam_lm"):
        assert 0.0 <= result[f"test_cer_{method}"] <= 2.0
    assert (run_dir / "lm.arpa").is_file() and (run_dir / "fusion.json").is_file()
    rows = (run_dir / "test_results.tsv").read_text().splitlines()
    assert rows[0].startswith("key\tspeaker\tseconds\treference\tgreedy\tbeam\tbeam_lm")
    assert len(rows) - 1 == json.loads((run_dir / "corpus.json").read_text())["test"]["utterances"]
    for name in ("test_ctc_alignment", "test_wer_by_length"):
        assert (run_dir / "plots" / f"{name}.png").is_file()


def test_evaluate_predict_and_finetune_use_the_run(tiny_run):
    from pathlib import Path

    from dlsuite.apps.cli import run_app

    root, args, result = tiny_run
    run_dir = Path(result["run_dir"])
    evaluated = run_app("speech", ["evaluate", "--from", str(run_dir), *args])
    assert evaluated["test_cer_greedy"] == pytest.approx(result["test_cer_greedy"])
    wav = sorted((root / "cache").glob("*/wav/*.wav"))[0]
    predicted = run_app("speech", ["predict", "--from", str(run_dir), str(wav)])
    assert set(predicted[0]) == {"input", "greedy", "beam", "beam_lm"}
    tuned = run_app("speech", ["finetune", "--from", str(run_dir), *args, "adapt_minutes=0.2"])
    assert tuned["adapt_minutes"] <= 0.3 and "before_cer_greedy" in tuned and "test_cer_greedy" in tuned
    from dlsuite.apps.speech.app import SpeechApp

    before, after = (SpeechApp().load_model(r).classifier.kernel.numpy() for r in (run_dir, tuned["run_dir"]))
    assert np.abs(after - before).max() > 1e-4  # fine-tuning trained (a small split once gave no batches)



def test_finetune_starts_from_small_batch_defaults_that_the_user_can_override(tmp_path):
    """finetune --from: batch 16 at a learning rate of at most 1e-3 for the app's fine-tuning epochs
    in place of the run's 64 at 3e-3 (9 minutes of audio need more, smaller updates); a setting
    given on the command line wins; evaluate keeps the run's own settings."""
    from dlsuite.apps.speech.app import SpeechApp
    from dlsuite.shared.config import config_to_yaml

    app = SpeechApp()
    trained = dataclasses.replace(speech_config.SpeechConfig(), epochs=25, batch_size=64, learning_rate=3e-3)
    (tmp_path / "config.yaml").write_text(config_to_yaml(trained))
    tuned = app.resolve_config("finetune", str(tmp_path))
    assert (tuned.batch_size, tuned.learning_rate) == (16, 1e-3) and tuned.epochs == app.finetune_defaults(trained)["epochs"] != 25
    assert app.resolve_config("finetune", str(tmp_path), overrides=["epochs=3", "batch_size=4"]).epochs == 3
    assert app.resolve_config("finetune", str(tmp_path), overrides=["batch_size=4"]).batch_size == 4
    evaluated = app.resolve_config("evaluate", str(tmp_path))
    assert (evaluated.batch_size, evaluated.learning_rate, evaluated.epochs) == (64, 3e-3, 25)
    assert not set(app.finetune_defaults(trained)) & set(speech_config.SpeechConfig.MODEL_FIELDS)


def test_finetune_with_rehearsal_mixes_in_the_source_runs_training_data(tiny_run):
    """rehearsal_minutes: that much of the source run's own training split (loaded from its
    config, here the synthetic corpus) joins the adaptation set; a negative value is refused."""
    import dataclasses
    from pathlib import Path

    from dlsuite.apps.cli import run_app
    from dlsuite.apps.speech import data, train
    from dlsuite.apps.speech.app import SpeechApp
    from dlsuite.shared.config import ConfigError

    _, args, result = tiny_run
    source = SpeechApp().trained_config(Path(result["run_dir"]))
    chosen = train.rehearsal_set(source, dataclasses.replace(source, rehearsal_minutes=0.1))
    assert len(chosen) >= 1 and {u.key for u in chosen.utterances} <= {u.key for u in data.load_splits(source).train}
    assert sum(u.duration for u in chosen.utterances[:-1]) < 0.1 * 60
    tuned = run_app("speech", ["finetune", "--from", result["run_dir"], *args, "adapt_minutes=0.1", "rehearsal_minutes=0.1"])
    assert tuned["rehearsal_utterances"] == len(chosen) and tuned["rehearsal_minutes"] >= 0.1
    with pytest.raises(ConfigError, match="rehearsal_minutes must be >= 0"):
        run_app("speech", ["finetune", "--from", result["run_dir"], *args, "rehearsal_minutes=-1"])


def test_finetune_adapts_the_fusion_lms_to_the_new_transcripts(tiny_run, tmp_path):
    """adapt_lm_weight: the LMs rebuilt from the source run's LM text plus the adaptation transcripts
    know the new words (the source run's did not) and rate the new sentences higher the more they
    count, the old ones lower; 0 keeps the source run's LMs; a finetune writes the adapted LMs."""
    from pathlib import Path

    from dlsuite.apps.cli import run_app
    from dlsuite.apps.speech import inference, train
    from dlsuite.apps.speech.app import SpeechApp
    from dlsuite.shared.ngram import read_arpa

    _, args, result = tiny_run
    source_dir = Path(result["run_dir"])
    source = SpeechApp().trained_config(source_dir)
    new = "the quokka pressed pound"
    adaptation = data.Examples([Utterance("unused.wav", new, "s", 1.0, "a")], [np.zeros((1, 80))], [data.encode(new)])
    old = next(u.transcript for u in data.load_splits(source).train)

    def log10_probs(lms):
        model = lms.word.model
        return model.sentence_log10_probs(model.encode([new, old]))

    source_lms = inference.load_lm(source_dir)
    kept = train.adapted_lm(source, dataclasses.replace(source, adapt_lm_weight=0), adaptation, source_lms, source_dir)
    assert kept is source_lms and "quokka" not in kept.word.model.tokens
    scores = {}
    for weight in (1, 10):
        out = tmp_path / f"weight{weight}"
        out.mkdir()
        lms = train.adapted_lm(source, dataclasses.replace(source, adapt_lm_weight=weight), adaptation, source_lms, out)
        assert "quokka" in read_arpa(out / inference.WORD_LM_FILE).tokens and (out / inference.CHAR_LM_FILE).is_file()
        scores[weight] = log10_probs(lms)
    assert scores[10][0] > scores[1][0] and scores[10][1] < scores[1][1]
    tuned = run_app("speech", ["finetune", "--from", str(source_dir), *args, "adapt_minutes=0.1", "epochs=1"])
    adapted_words = set(read_arpa(Path(tuned["run_dir"]) / inference.WORD_LM_FILE).tokens)
    adapt_set = train.adaptation_set(data.load_splits(source), dataclasses.replace(source, adapt_minutes=0.1))
    assert {w for u in adapt_set.utterances for w in u.transcript.split()} <= adapted_words
    assert (Path(tuned["run_dir"]) / inference.WORD_LM_FILE).read_bytes() != (source_dir / inference.WORD_LM_FILE).read_bytes()
    with pytest.raises(ConfigError, match="adapt_lm_weight must be >= 0"):
        load_config(speech_config.SpeechConfig(), None, ["adapt_lm_weight=-1"])


def test_predict_on_a_corrupt_file_names_it(tiny_run, tmp_path):
    from dlsuite.apps.cli import run_app

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(SpeechDataError, match="broken.wav"):
        run_app("speech", ["predict", "--from", tiny_run[2]["run_dir"], str(bad)])


def test_export_transcribes_raw_audio_without_dlsuite(tiny_run, spoken):
    """The SavedModel resamples, computes features and decodes in its graph: a 22.05 kHz file
    gives the in-memory model's greedy transcript, in a process that cannot import dlsuite."""
    from pathlib import Path

    from dlsuite.apps.cli import run_app
    from dlsuite.apps.speech.app import SpeechApp
    from dlsuite.apps.speech.decode import greedy_decode

    path, audio, rate, _ = spoken
    run_dir = Path(tiny_run[2]["run_dir"])
    exported = run_app("speech", ["export", "--from", str(run_dir)])
    assert exported["export_agrees"], exported
    export_dir = exported["export_dir"]
    model = SpeechApp().load_model(run_dir)
    values = data.compute_features(load_audio(path), "log_mel")
    expected = greedy_decode(model.utterance_log_probs(values), ALPHABET)
    script = textwrap.dedent(f"""
        import json, soundfile as sf, tensorflow as tf
        audio, rate = sf.read({str(path)!r}, dtype="float32")
        asr = tf.saved_model.load({str(export_dir)!r})
        out = asr.signatures["serving_default"](waveform=tf.constant(audio), sample_rate=tf.constant(rate))
        batch = asr.transcribe_batch(tf.constant([audio, audio]), tf.constant([len(audio), len(audio) // 2]), tf.constant(rate))
        try:
            asr.signatures["serving_default"](waveform=tf.zeros([0]), sample_rate=tf.constant(rate))
            empty = "no error"
        except tf.errors.InvalidArgumentError as err:
            empty = err.message
        print(json.dumps({{"greedy": out["greedy_transcript"].numpy().decode(), "beam": out["transcript"].numpy().decode(),
                          "batch": [t.decode() for t in batch["greedy_transcript"].numpy()], "empty": empty}}))
    """)
    out = run_without_dlsuite(script)
    assert " ".join(out["greedy"].split()) == expected
    assert out["batch"][0] == out["greedy"]
    assert "empty waveform" in out["empty"]
