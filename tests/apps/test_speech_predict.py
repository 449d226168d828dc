"""Batched `predict` for the speech app (apps/speech/inference.py): padded batches of files sorted
by length give each file the answer it gets alone, in the input order, with the same errors."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest
import soundfile as sf

from dlsuite.apps.app import write_predictions
from dlsuite.apps.speech import data, inference
from dlsuite.apps.speech.audio import SAMPLE_RATE, load_audio
from dlsuite.apps.speech.config import SpeechConfig
from dlsuite.apps.speech.model import build_speech_model
from dlsuite.apps.speech.transcripts import ALPHABET, SpeechDataError
from tests.apps.speech_helpers import tiny_lms

SECONDS = (1.3, 0.4, 2.1, 0.7, 0.41, 1.0, 1.9)  # not sorted: batching sorts, the results must not be


def small_config(**changes) -> SpeechConfig:
    base = dict(rnn_units=16, rnn_layers=1, conv_filters=4, batch_size=3, beam_width=4)
    return dataclasses.replace(SpeechConfig(), **(base | changes))


def waveform(seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    tone = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 400) * (1 + t) * t)
    return (tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict")
    paths = []
    for i, seconds in enumerate(SECONDS):
        path = folder / f"utt_{i}.wav"
        if i == 3:  # one stereo file at 22.05 kHz: the resampling and mono paths
            rate = 22050
            x = np.stack([waveform(seconds * rate / SAMPLE_RATE, i)] * 2, axis=1)
            sf.write(path, x, rate)
        else:
            sf.write(path, waveform(seconds, i), SAMPLE_RATE)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_speech_model(small_config(), 80, len(ALPHABET))


@pytest.fixture(scope="module")
def lm():
    return tiny_lms(["in the beginning", "the word was", "and the earth was without form"])


FUSION = {"alpha": 0.5, "beta": 1.0}


def one_at_a_time(model, lm, config, paths) -> tuple[list[np.ndarray], list[dict]]:
    """The former predict: one eager model call per file, no padding."""
    log_probs, results = [], []
    for path in paths:
        values = data.compute_features(load_audio(path, max_seconds=config.max_seconds), config.features)
        log_probs.append(model.utterance_log_probs(values))
        texts = inference.decode_all(log_probs[-1:], config, lm, FUSION, progress=False)
        results.append({"input": path, **{m: t[0] for m, t in texts.items()}})
    return log_probs, results


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_batched_predict_equals_one_file_at_a_time(model, lm, files, batch_size):
    config = small_config(batch_size=batch_size)
    alone_log_probs, alone = one_at_a_time(model, lm, config, files)
    batched_log_probs = inference.batched_log_probs(model, inference.read_features(files, config), batch_size)
    for a, b in zip(alone_log_probs, batched_log_probs, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, atol=1e-4)
    results = inference.transcribe_files(model, lm, FUSION, config, files)
    assert results == alone  # transcripts identical, same keys in the same order
    assert any(r["greedy"] for r in results)  # the untrained model does spell something
    assert [list(r) for r in results] == [["input", "greedy", "beam", "beam_lm"]] * len(files)


def test_results_keep_the_input_order(model, files):
    config = small_config()
    shuffled = [files[i] for i in (5, 0, 6, 2, 4, 1, 3)] + [files[2]]  # a file given twice, too
    results = inference.transcribe_files(model, None, None, config, shuffled)
    assert [r["input"] for r in results] == shuffled
    by_file = {r["input"]: r for r in inference.transcribe_files(model, None, None, config, files)}
    assert results == [by_file[p] for p in shuffled]
    assert set(results[0]) == {"input", "greedy", "beam"}  # no LM: no beam_lm


def test_a_bad_file_among_good_ones_is_an_error_naming_it(model, files, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(SpeechDataError, match="broken.wav: cannot read the audio"):
        inference.transcribe_files(model, None, None, small_config(), [files[0], str(bad), files[1]])
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(4000, np.float32), SAMPLE_RATE)
    with pytest.raises(SpeechDataError, match="silent.wav: the audio is silent"):
        inference.transcribe_files(model, None, None, small_config(), [*files, str(silent)])
    # Longer than max_seconds is cut at pauses (tests/apps/test_speech_long_audio.py); past
    # max_file_minutes (here 1.8 s) it is an error.
    with pytest.raises(SpeechDataError, match=r"utt_2.wav: 2.1 s of audio, longer than the 0.03-minute limit"):
        inference.transcribe_files(model, None, None, small_config(max_seconds=1.5, max_file_minutes=0.03), files)


def test_speech_app_predict_on_a_saved_model(model, files, tmp_path):
    from dlsuite.apps.speech.app import SpeechApp

    model.save(tmp_path / "model.keras")
    results = SpeechApp().predict(small_config(), tmp_path / "model.keras", files[:3])
    assert results == inference.transcribe_files(model, None, None, small_config(), files[:3])


def test_write_predictions_as_tsv_or_json(tmp_path):
    results = [{"input": "a b.wav", "greedy": "in the", "beam": "in the"},
               {"input": "c\tweird.wav", "greedy": "", "beam": "word"}]
    write_predictions(results, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == results
    write_predictions(results, tmp_path / "out.tsv")
    import csv

    with open(tmp_path / "out.tsv", newline="") as f:
        assert list(csv.DictReader(f, delimiter="\t")) == results
    assert (tmp_path / "out.tsv").read_text().splitlines()[0] == "input\tgreedy\tbeam"
    with pytest.raises(ValueError, match=r"\.tsv or \.json"):
        write_predictions(results, tmp_path / "out.txt")
    # a long recording's segments: one JSON cell, read back whole
    long = [{"input": "long.wav", "greedy": "in the beginning", "segments": [{"start": 0.0, "end": 2.5, "greedy": "in the"}]}]
    write_predictions(long, tmp_path / "long.tsv")
    with open(tmp_path / "long.tsv", newline="") as f:
        row = next(csv.DictReader(f, delimiter="\t"))
    assert json.loads(row["segments"]) == long[0]["segments"] and row["greedy"] == "in the beginning"
