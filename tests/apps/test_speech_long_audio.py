"""Long recordings and bad input for the speech app's predict and export (apps/speech/segment.py,
inference.py, export.py): a recording longer than max_seconds is cut in its pauses, each segment
transcribed as it would be alone, in Python and in the SavedModel alike."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import jiwer
import keras
import numpy as np
import pytest
import soundfile as sf
import soxr
import tensorflow as tf

from dlsuite.apps.speech import data, export, inference, segment
from dlsuite.apps.speech.audio import SAMPLE_RATE, ClippingWarning, load_audio
from dlsuite.apps.speech.config import SpeechConfig
from dlsuite.apps.speech.inference import SegmentationWarning
from dlsuite.apps.speech.model import build_speech_model
from dlsuite.apps.speech.transcripts import ALPHABET, SpeechDataError
from tests.apps.speech_helpers import tiny_lms

SENTENCES = (
    "in the beginning god created the heaven and the earth",
    "and the earth was without form and void",
    "and darkness was upon the face of the deep",
    "and god said let there be light",
    "and there was light",
    "and god saw the light that it was good",
    "and god divided the light from the darkness",
    "and the evening and the morning were the first day",
    "let the waters under the heaven be gathered together",
    "and god called the dry land earth",
    "and the earth brought forth grass",
    "and god made two great lights",
)
VOICES = (("en-us", 150), ("en-gb+f2", 180), ("en-us+m3", 200))
MAX_SECONDS = 8.0  # the recordings below are minutes long; each utterance is 1-4 s
CLOSE_GAP = 0.12  # seconds: shorter than the minimum pause, so no cut between such neighbours


def small_config(**changes) -> SpeechConfig:
    base = dict(
        rnn_units=16,
        rnn_layers=1,
        conv_filters=4,
        batch_size=8,
        beam_width=4,
        max_seconds=MAX_SECONDS,
    )
    return dataclasses.replace(SpeechConfig(), **(base | changes))


def speak(text: str, voice: str, rate: int, folder) -> np.ndarray:
    """espeak-ng's utterance at 16 kHz, cut to its audible samples (so we know where speech is)."""
    raw = folder / "raw.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate), "-a", "75", "-w", str(raw), text], check=True
    )
    x, rate = sf.read(str(raw), dtype="float32")
    x = soxr.resample(x, rate, SAMPLE_RATE)
    audible = np.flatnonzero(np.abs(x) > 1e-3)
    return x[audible[0] : audible[-1] + 1]


@dataclasses.dataclass
class Recording:
    path: str
    waveform: np.ndarray  # 16 kHz
    utterances: list[tuple[float, float]]  # (start, end) seconds of each spoken utterance
    groups: list[list[int]]  # utterances with no pause between them, which one segment must hold


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> Recording:
    """About two minutes: 36 utterances (12 sentences x 3 voices) with 0.5-1.5 s pauses of quiet
    noise (-50 dB) between them; after every sixth utterance the next follows CLOSE_GAP later."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    folder = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(0)
    parts, utterances, groups, position = [], [], [], 0
    for i, (voice, rate) in enumerate(v for v in VOICES for _ in SENTENCES):
        gap = CLOSE_GAP if i % 6 == 5 else rng.uniform(0.5, 1.5)
        piece = speak(SENTENCES[i % len(SENTENCES)], voice, rate, folder)
        parts += [np.zeros(int(gap * SAMPLE_RATE), np.float32), piece]
        position += int(gap * SAMPLE_RATE)
        utterances.append((position / SAMPLE_RATE, (position + len(piece)) / SAMPLE_RATE))
        position += len(piece)
        if gap == CLOSE_GAP:
            groups[-1].append(i)
        else:
            groups.append([i])
    waveform = np.concatenate([*parts, np.zeros(SAMPLE_RATE, np.float32)])
    waveform = waveform + 0.003 * rng.standard_normal(len(waveform)).astype(np.float32)
    path = folder / "long.wav"
    sf.write(path, waveform, SAMPLE_RATE, subtype="FLOAT")
    return Recording(str(path), waveform, utterances, groups)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_speech_model(small_config(), 80, len(ALPHABET))


@pytest.fixture(scope="module")
def lm():
    return tiny_lms(SENTENCES)


FUSION = {"alpha": 0.5, "beta": 1.0}


@pytest.fixture(scope="module")
def transcribe_alone(model):
    """One piece of audio alone, every decoder: a batch of one, no padding (the model traced once:
    eager calls of the LSTM are slow)."""
    run = inference.compiled_log_probs(model, 80)

    def transcribe(lm, config, waveform: np.ndarray) -> dict:
        features = data.compute_features(waveform, config.features)
        log_probs, _ = run(tf.constant(features[None]), tf.constant([len(features)]))
        texts = inference.decode_all([log_probs.numpy()[0]], config, lm, FUSION, progress=False)
        return {m: t[0] for m, t in texts.items()}

    return transcribe


def write(path, waveform, rate=SAMPLE_RATE) -> str:
    sf.write(path, waveform, rate, subtype="FLOAT")
    return str(path)


# === Segmentation ===
def test_segments_are_cut_in_the_pauses_between_utterances(spoken):
    bounds, forced = segment.speech_segments(spoken.waveform, MAX_SECONDS)
    seconds = bounds / SAMPLE_RATE
    assert forced == 0 and len(spoken.waveform) / SAMPLE_RATE > 100
    assert np.all(seconds[:, 1] - seconds[:, 0] <= MAX_SECONDS)
    assert np.all(seconds[1:, 0] >= seconds[:-1, 1])  # in order, no overlap
    # Each segment holds exactly one group of utterances, whole: every cut lies in a pause, and the
    # CLOSE_GAP between two utterances is no cut.
    held = [
        [i for i, (s, e) in enumerate(spoken.utterances) if s < end and e > start]
        for start, end in seconds
    ]
    assert held == spoken.groups
    for (start, end), group in zip(seconds, held, strict=True):
        first, last = spoken.utterances[group[0]], spoken.utterances[group[-1]]
        assert start <= first[0] and last[1] <= end
        assert first[0] - start < 0.25 and end - last[1] < 0.25  # trimmed: little silence kept


def test_each_pause_is_cut_at_its_quietest_frame_nearest_its_middle():
    energy = np.full(300, -10.0, np.float32)  # dB; speech is above -30 here
    energy[50:150] = -50.0  # a pause, quietest at frames 120..124
    energy[120:125] = -70.0
    energy[170:172] = -50.0  # 2 frames: a dip inside speech, too short to be a pause
    energy[200:260] = -100.0  # digital silence: every frame equally quiet, middle 229.5
    cuts = segment.pause_cuts(tf.constant(energy), tf.constant(energy > -30), 30)
    assert cuts.numpy().tolist() == [120, 229]


def test_a_stretch_without_pause_is_cut_at_its_quietest_point():
    """62 s of a tone whose loudness dips once every 6.5 s (never below the speech threshold):
    cut at the dips, the only quiet frames in the second halves of the 8 s windows."""
    t = np.arange(62 * SAMPLE_RATE) / SAMPLE_RATE
    dips = np.arange(6.5, 60, 6.5)  # the last, 58.5, leaves 3.5 s
    envelope = 1 - 0.9 * np.exp(-(((t[:, None] - dips) / 0.05) ** 2)).sum(axis=1)
    x = (0.3 * envelope * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    bounds, forced = segment.speech_segments(x, MAX_SECONDS)
    cuts = bounds[1:, 0] / SAMPLE_RATE
    assert forced == len(dips) and len(bounds) == len(dips) + 1
    np.testing.assert_allclose(cuts, dips, atol=0.02)
    assert bounds[0, 0] == 0 and bounds[-1, 1] == len(x)


# === predict ===
def test_predict_on_a_long_recording_equals_each_segment_transcribed_alone(
    model, lm, spoken, transcribe_alone
):
    config = small_config()
    [result] = inference.transcribe_files(model, lm, FUSION, config, [spoken.path])
    waveform = load_audio(spoken.path, max_seconds=3600)
    bounds, _ = segment.speech_segments(waveform, MAX_SECONDS)
    assert [(s["start"], s["end"]) for s in result["segments"]] == [
        (s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in bounds
    ]
    assert len(result["segments"]) == len(spoken.groups)
    for part, (start, end) in zip(result["segments"], bounds, strict=True):
        alone = transcribe_alone(lm, config, waveform[start:end])
        assert {m: part[m] for m in ("greedy", "beam", "beam_lm")} == alone
    for method in ("greedy", "beam", "beam_lm"):
        assert result[method] == " ".join(p[method] for p in result["segments"] if p[method])
    assert result["greedy"]  # the untrained model does spell something


def test_short_files_keep_their_output_beside_a_long_one(model, spoken, tmp_path, transcribe_alone):
    config = small_config()
    short = write(tmp_path / "short.wav", spoken.waveform[: 5 * SAMPLE_RATE])
    results = inference.transcribe_files(model, None, None, config, [short, spoken.path, short])
    assert [r["input"] for r in results] == [short, spoken.path, short]
    alone = transcribe_alone(None, config, load_audio(short))
    assert results[0] == results[2] == {"input": short, **alone}  # no "segments" key
    assert "segments" in results[1]


def test_predict_refuses_a_recording_past_max_file_minutes(model, tmp_path):
    path = write(tmp_path / "forty.wav", 0.1 * np.ones(40 * SAMPLE_RATE, np.float32))
    with pytest.raises(
        SpeechDataError, match=r"forty.wav: 40.0 s of audio, longer than the 0.5-minute limit"
    ):
        inference.transcribe_files(model, None, None, small_config(max_file_minutes=0.5), [path])


# === Export ===
@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    config = small_config(max_file_minutes=2.5)
    folder = tmp_path_factory.mktemp("export") / "export"
    return config, tf.saved_model.load(str(export.export_serving_model(model, config, folder)))


def call(asr, signature: str, waveform: np.ndarray, rate: int = SAMPLE_RATE) -> dict:
    out = asr.signatures[signature](
        waveform=tf.constant(waveform, tf.float32), sample_rate=tf.constant(rate)
    )
    return {key: value.numpy() for key, value in out.items()}


def test_export_transcribe_long_cuts_and_transcribes_as_predict_does(model, spoken, exported):
    config, asr = exported
    out = call(asr, "transcribe_long", spoken.waveform)
    [expected] = inference.transcribe_files(model, None, None, config, [spoken.path])
    segments = expected["segments"]
    np.testing.assert_allclose(out["segment_starts"], [s["start"] for s in segments], atol=1e-4)
    np.testing.assert_allclose(out["segment_ends"], [s["end"] for s in segments], atol=1e-4)
    # TensorFlow's greedy decoder spells as ours does (its beam search need not).
    greedy = [text.decode() for text in out["segment_greedy_transcripts"]]
    assert greedy == [s["greedy"] for s in segments]
    assert out["greedy_transcript"].decode() == expected["greedy"]
    beam = [text.decode() for text in out["segment_transcripts"]]
    assert out["transcript"].decode() == " ".join(filter(None, beam))


def test_export_transcribe_long_of_short_audio_is_serving_default(spoken, exported):
    _, asr = exported
    short = spoken.waveform[: 5 * SAMPLE_RATE]  # at most max_seconds: one segment, the whole audio
    one, served = call(asr, "transcribe_long", short), call(asr, "serving_default", short)
    assert (one["segment_starts"].tolist(), one["segment_ends"].tolist()) == ([0.0], [5.0])
    assert one["transcript"] == served["transcript"]
    assert one["greedy_transcript"] == served["greedy_transcript"]


def test_transcribe_long_answers_alike_in_batches_of_any_size(model, spoken, exported):
    # This file has 30 segments: two default batches of 15, or eight of 4, the last one filled up
    # with two copies of the last segment; each segment must still be transcribed as if alone.
    config, asr = exported
    module = export.serving_module(model, config, segments_per_batch=4)
    small = {k: v.numpy() for k, v in module.transcribe_long(tf.constant(spoken.waveform), tf.constant(SAMPLE_RATE)).items()}
    whole = call(asr, "transcribe_long", spoken.waveform)
    count = len(whole["segment_starts"])
    assert count > export.SEGMENTS_PER_BATCH and count % 4
    for key in ("segment_greedy_transcripts", "segment_transcripts", "segment_starts", "segment_ends"):
        assert small[key].tolist() == whole[key].tolist(), key


def test_export_refuses_audio_past_its_limits_and_hears_nothing_in_silence(spoken, exported):
    _, asr = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match="audio longer than max_seconds=8"):
        call(
            asr, "serving_default", spoken.waveform
        )  # as before: serving_default is for short audio
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than max_file_minutes=2.5"):
        call(asr, "transcribe_long", np.zeros(151 * 8000), rate=8000)
    silence = call(asr, "transcribe_long", np.zeros(20 * SAMPLE_RATE))
    assert silence["transcript"] == b"" and silence["segment_starts"].shape == (0,)


# === Bad input ===
def test_a_silent_long_file_is_an_error_naming_it(model, spoken, tmp_path):
    silent = write(tmp_path / "silent_long.wav", np.zeros(30 * SAMPLE_RATE, np.float32))
    with pytest.raises(SpeechDataError, match="silent_long.wav: the audio is silent"):
        inference.transcribe_files(model, None, None, small_config(), [spoken.path, silent])


def test_a_long_file_without_speech_gives_an_empty_transcript_and_a_warning(model, tmp_path):
    # -70 dB of noise: not silent for load_audio (its peak is over 1e-4), but quieter than any speech.
    quiet = 3e-4 * np.random.default_rng(1).standard_normal(30 * SAMPLE_RATE).astype(np.float32)
    path = write(tmp_path / "hiss.wav", quiet)
    with pytest.warns(SegmentationWarning, match="hiss.wav: found no speech"):
        [result] = inference.transcribe_files(model, None, None, small_config(), [path])
    assert result == {"input": path, "greedy": "", "beam": "", "segments": []}


def music(seconds: float) -> np.ndarray:
    """Legato notes of a major scale, four harmonics each, no rests."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 220 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12])[(t / 0.4).astype(int) % 8] / 12)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    return (0.2 * sum(np.sin(k * phase) / k for k in range(1, 5))).astype(np.float32)


@pytest.mark.parametrize("kind", ["noise", "music"])
def test_noise_or_music_is_cut_into_segments_without_crashing(model, tmp_path, kind):
    x = (
        0.1 * np.random.default_rng(2).standard_normal(30 * SAMPLE_RATE)
        if kind == "noise"
        else music(30)
    )
    path = write(tmp_path / f"{kind}.wav", x.astype(np.float32))
    with pytest.warns(SegmentationWarning, match="forced cut"):
        [result] = inference.transcribe_files(model, None, None, small_config(), [path])
    spans = [(s["start"], s["end"]) for s in result["segments"]]
    assert all(0 < e - s <= MAX_SECONDS for s, e in spans) and sum(e - s for s, e in spans) > 29
    assert all(
        isinstance(s["greedy"], str) and isinstance(s["beam"], str) for s in result["segments"]
    )


def test_8_khz_stereo_gives_the_transcript_of_the_16_khz_mono_file(model, spoken, tmp_path):
    """The same band-limited audio (the first 20 s, so it is cut too) as 16 kHz mono and as 8 kHz
    stereo whose channels average to it: same segments, same texts."""
    low = soxr.resample(spoken.waveform[: 20 * SAMPLE_RATE], SAMPLE_RATE, 8000)  # [N] at 8 kHz
    other = 0.05 * np.random.default_rng(3).standard_normal(len(low)).astype(np.float32)
    stereo = write(tmp_path / "stereo_8k.wav", np.stack([low + other, low - other], axis=1), 8000)
    mono = write(tmp_path / "mono_16k.wav", soxr.resample(low, 8000, SAMPLE_RATE))
    np.testing.assert_allclose(load_audio(stereo), load_audio(mono), atol=1e-5)
    from_stereo, from_mono = inference.transcribe_files(
        model, None, None, small_config(), [stereo, mono]
    )
    assert len(from_mono["segments"]) >= 5 and from_mono["greedy"]
    for a, b in zip(from_stereo["segments"], from_mono["segments"], strict=True):
        assert (a["start"], a["end"], a["greedy"]) == (b["start"], b["end"], b["greedy"])
    # The untrained model's beam search is near ties everywhere: the float rounding of the downmix
    # can flip a few characters.
    assert jiwer.cer(from_mono["beam"], from_stereo["beam"]) < 0.1


def test_clipped_audio_is_kept_with_a_clipping_warning(model, spoken, tmp_path):
    clipped = np.clip(4 * spoken.waveform[: 30 * SAMPLE_RATE], -1, 1)
    path = write(tmp_path / "clipped.wav", clipped)
    with pytest.warns(ClippingWarning, match="clipped.wav: .* clipped at full scale"):
        [result] = inference.transcribe_files(model, None, None, small_config(), [path])
    assert len(result["segments"]) >= 5 and result["greedy"]


def test_a_ten_minute_file_is_segmented_and_transcribed(model, tmp_path):
    """Ten minutes at the default max_seconds=20: quiet noise, a one-second tone every 14 s, and
    a 50 s tone without a pause (cut where forced); every tone burst lands in one segment."""
    rng = np.random.default_rng(4)
    x = 3e-4 * rng.standard_normal(600 * SAMPLE_RATE)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    bursts = [s for s in np.arange(2.0, 600, 14.0) if not 300 <= s < 352]
    for start in bursts:
        i = int(start * SAMPLE_RATE)
        x[i : i + SAMPLE_RATE] += 0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t)
    x[300 * SAMPLE_RATE : 350 * SAMPLE_RATE] += 0.2 * np.sin(
        2 * np.pi * 300 * np.arange(50 * SAMPLE_RATE) / SAMPLE_RATE
    )
    path = tmp_path / "ten_minutes.flac"
    sf.write(path, x.astype(np.float32), SAMPLE_RATE)
    with pytest.warns(SegmentationWarning, match="forced cut"):
        [result] = inference.transcribe_files(
            model, None, None, small_config(max_seconds=20.0), [str(path)]
        )
    spans = [(s["start"], s["end"]) for s in result["segments"]]
    assert all(e - s <= 20 for s, e in spans)
    held = [[b for b in bursts if s <= b and b + 1 <= e] for s, e in spans]
    assert sorted(b for h in held for b in h) == bursts and max(len(h) for h in held) == 1
    tone = [
        (s, e) for s, e in spans if 299 < s and e < 351
    ]  # 50 s cut in at least three, back to back
    assert len(tone) >= 3 and tone[0][0] < 300.2 and tone[-1][1] > 349.8
    assert all(a[1] == b[0] for a, b in zip(tone[:-1], tone[1:], strict=True))
