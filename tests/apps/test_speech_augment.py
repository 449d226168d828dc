"""Speech waveform augmentation (apps/speech/augment.py): what each step does to a signal, measured
with NumPy FFTs; VTLP's warped filterbank; the augmented training dataset (apps/speech/data.py); the config checks; one
training epoch of the smoke setting with every step on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from dlsuite.apps.speech import augment, data, features
from dlsuite.apps.speech.config import SpeechConfig
from dlsuite.apps.speech.model import output_lengths
from dlsuite.apps.speech.utterances import Utterance
from dlsuite.shared.config import ConfigError, load_config

RATE = 16000
SEED = tf.constant([7, 11], tf.int64)
EVERY_STEP = dict(
    speed_probability=1.0,
    noise_probability=1.0,
    reverb_probability=1.0,
    gain_probability=1.0,
    telephone_probability=1.0,
    vtlp_probability=1.0,
)


def sine(hertz: float, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hertz * np.arange(int(seconds * RATE)) / RATE)).astype(
        "float32"
    )


def white(seconds: float = 1.0, scale: float = 0.1, seed: int = 0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(
        "float32"
    )


def peak_hertz(x: np.ndarray) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(x))) * RATE / len(x))


def band_share(x: np.ndarray, low: float, high: float) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    hertz = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(power[(hertz >= low) & (hertz < high)].sum() / power.sum())


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2)))


# === The steps ===
@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_length_and_pitch_by_the_factor(factor):
    x = sine(440.0, seconds=1.0257)  # 16411 samples, a prime: the FFTs work on zero-padded lengths
    y = augment.change_speed(tf.constant(x), factor).numpy()
    assert len(y) == augment.sped_up_length(len(x), factor) == round(len(x) / factor)
    assert peak_hertz(y) / peak_hertz(x) == pytest.approx(factor, rel=0.005)


def test_telephone_keeps_only_the_telephone_band():
    x = white(
        seconds=1.0257
    )  # half its energy lies above 4 kHz; a prime length, zero-padded inside
    y = augment.telephone(tf.constant(x)).numpy()
    assert len(y) == len(x)
    assert band_share(x, 4000, RATE) > 0.45
    assert band_share(y, 4000, RATE) < 1e-4  # -40 dB: what cutting off the padding leaks
    assert band_share(y, 300, 3400) > 0.99  # G.712's band; the rest is mu-law's quantization noise


def test_mu_law_round_trip_is_8_bit_within_the_g711_bound():
    x = np.concatenate([np.linspace(-1, 1, 20001), np.linspace(-0.01, 0.01, 2001)]).astype(
        "float32"
    )
    y = augment.mu_law(tf.constant(x)).numpy()
    step = 1 / (2 * 127)  # half a step of the companded magnitude (sign + 7 bits)
    bound = (1 / augment.MU + np.abs(x)) * ((1 + augment.MU) ** step - 1)
    assert np.all(np.abs(y - x) <= bound * (1 + 1e-4) + 1e-7)
    assert len(np.unique(y)) <= 255  # 8 bits: +-127 levels and 0
    assert np.max(np.abs(y - x) / np.maximum(np.abs(x), 1e-3)) > 0.01  # it does quantize
    assert y[np.argmin(np.abs(x))] == 0.0 and np.all(np.sign(y) * np.sign(x) >= 0)


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
def test_noise_is_added_at_the_requested_snr(kind):
    x = sine(300.0) + sine(1200.0, amplitude=0.1)
    seed = tf.constant([3, 5], tf.int64)
    noise = {
        "white": lambda: augment.white_noise(seed, len(x)),
        "pink": lambda: augment.pink_noise(seed, len(x)),
        "babble": lambda: augment.babble_noise(seed, tf.constant(x)),
    }[kind]()
    for target in (0.0, 10.0, 20.0):
        y = augment.add_noise(tf.constant(x), noise, target).numpy()
        assert snr_db(x, y) == pytest.approx(target, abs=1.0)
    octave_ratio = band_share(noise.numpy(), 250, 500) / band_share(noise.numpy(), 2000, 4000)
    if kind == "white":
        assert octave_ratio == pytest.approx(0.125, rel=0.3)  # power per hertz is flat
    if kind == "pink":
        assert octave_ratio == pytest.approx(1.0, rel=0.3)  # power per octave is flat


def test_reverberation_convolves_with_a_room_that_decays_by_its_rt60():
    rt60, direct_to_reverberant_db = 0.4, 6.0
    rir = augment.room_impulse_response(SEED, rt60, direct_to_reverberant_db).numpy()
    assert len(rir) == int(np.ceil(rt60 * RATE))
    assert np.sum(rir**2) == pytest.approx(1.0, rel=1e-4)
    assert 10 * np.log10(rir[0] ** 2 / np.sum(rir[1:] ** 2)) == pytest.approx(
        direct_to_reverberant_db, abs=0.01
    )
    # RT60 back from the tail: the slope of its energy in dB per second, over 20 ms windows
    tail = rir[1 : 1 + (len(rir) - 1) // 320 * 320]
    energy = np.square(tail).reshape(-1, 320).mean(axis=1)
    slope = np.polyfit(np.arange(len(energy)) * 0.02, 10 * np.log10(energy), 1)[0]
    assert -60 / slope == pytest.approx(rt60, rel=0.15)
    x = white(0.3)
    y = augment.convolve(tf.constant(x), tf.constant(rir)).numpy()
    assert len(y) == len(x) + len(rir) - 1  # the tail after the last word is kept
    np.testing.assert_allclose(y, np.convolve(x, rir), atol=1e-5)


def test_gain_stays_in_its_range_and_clips_at_full_scale():
    x = sine(500.0, amplitude=0.01)
    only_gain = augment.Augmentation(gain_probability=1.0, gain_db_range=(-6.0, 3.0))
    gains = []
    for i in range(12):
        y = augment.augment_waveform(
            tf.constant(x), tf.constant([i, 0], tf.int64), only_gain
        ).numpy()
        gains.append(20 * np.log10(np.max(np.abs(y)) / np.max(np.abs(x))))
    assert -6.0 - 1e-3 <= min(gains) < max(gains) <= 3.0 + 1e-3
    loud = augment.change_gain(tf.constant(sine(500.0, amplitude=0.8)), 6.0).numpy()
    assert np.max(np.abs(loud)) == 1.0 and np.mean(np.abs(loud) == 1.0) > 0.1


def test_probability_zero_leaves_the_waveform_bit_identical():
    x = white(0.5)
    everything_off = dataclasses.replace(
        augment.Augmentation(**EVERY_STEP), **{k: 0.0 for k in EVERY_STEP}
    )
    assert not everything_off.enabled
    assert np.array_equal(augment.augment_waveform(tf.constant(x), SEED, everything_off).numpy(), x)
    half = augment.Augmentation(gain_probability=0.5)
    same = [
        np.array_equal(
            augment.augment_waveform(tf.constant(x), tf.constant([i, 1], tf.int64), half).numpy(), x
        )
        for i in range(20)
    ]
    assert 3 <= sum(same) <= 17  # some utterances untouched, bit for bit; the others not


def test_every_step_together_keeps_a_bounded_waveform():
    x = sine(440.0, seconds=1.5)
    y = augment.augment_waveform(tf.constant(x), SEED, augment.Augmentation(**EVERY_STEP)).numpy()
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0
    assert len(y) != len(x)  # sped up or down, and the reverberant tail
    assert band_share(y, 4000, RATE) < 1e-4  # the telephone channel comes last


# === VTLP: the warped mel filterbank ===
def test_the_unwarped_filterbank_is_tf_signals():
    np.testing.assert_allclose(
        features.warped_mel_matrix(1.0).numpy(), features.mel_matrix().numpy(), atol=1e-4
    )


def loudest_band(waveform: np.ndarray, mel=None) -> int:
    log_mel = features.log_mel_spectrogram(tf.constant(waveform), mel).numpy()
    return int(np.argmax(log_mel.mean(axis=0)))


@pytest.mark.parametrize("warp", [0.9, 1.1])
def test_a_warp_hears_a_tone_as_the_tone_at_warp_times_its_frequency(warp):
    """Below F_hi the warp is linear: 1 kHz through the warped filterbank lands in the band of
    warp x 1 kHz unwarped, two bands (about 100 Hz) away from 1 kHz's own."""
    warped = loudest_band(sine(1000.0), features.warped_mel_matrix(warp))
    assert warped == loudest_band(sine(1000.0 * warp))
    assert abs(warped - loudest_band(sine(1000.0))) >= 2


@pytest.mark.parametrize("warp", [0.8, 1.2])
def test_the_widest_warps_leave_no_band_empty(warp):
    """Above F_hi the warp takes the Nyquist frequency to itself: every band still sees some bins."""
    assert np.all(features.warped_mel_matrix(warp).numpy().sum(axis=0) > 0)


def test_vtlp_warps_with_its_probability_within_its_range():
    off = augment.Augmentation(noise_probability=1.0)
    np.testing.assert_array_equal(
        augment.random_mel_matrix(SEED, off).numpy(), features.mel_matrix().numpy()
    )
    assert augment.Augmentation(vtlp_probability=0.1).enabled
    fixed = augment.Augmentation(vtlp_probability=1.0, vtlp_warp_range=(1.1, 1.1))
    np.testing.assert_allclose(
        augment.random_mel_matrix(SEED, fixed).numpy(), features.warped_mel_matrix(1.1).numpy()
    )
    half = augment.Augmentation(vtlp_probability=0.5, vtlp_warp_range=(0.9, 1.1))
    unwarped = features.warped_mel_matrix(1.0).numpy()
    draws = [augment.random_mel_matrix(tf.constant([i, 3], tf.int64), half).numpy() for i in range(20)]
    assert 3 <= sum(np.array_equal(d, unwarped) for d in draws) <= 17
    # each warp inside the range: a 1 kHz tone heard between 0.9 and 1.1 kHz
    bands = [loudest_band(sine(1000.0), d) for d in draws]
    assert min(bands) >= loudest_band(sine(900.0)) and max(bands) <= loudest_band(sine(1100.0))
    assert len(set(bands)) >= 3  # warps drawn across the range, not one value


# === The augmented training dataset ===
@pytest.fixture(scope="module")
def waveform_examples(tmp_path_factory):
    """Six 1 s utterances; 'tight' has exactly as many characters as CTC frames at time_stride 3
    (97 feature frames -> 33 output frames): a 1.1x speed-up would leave it too few."""
    folder = tmp_path_factory.mktemp("augment")
    texts = ["abcdefghijklmnopqrstuvwxyzabcdefg", "hello", "a b", "speech", "noise here", "the end"]
    utterances = []
    for i, text in enumerate(texts):
        path = folder / f"u{i}.wav"
        sf.write(path, sine(200.0 + 100 * i) + white(seed=i), RATE)
        utterances.append(Utterance(str(path), text, "s", 1.0, "tight" if i == 0 else f"u{i}"))
    config = dataclasses.replace(SpeechConfig(), time_stride=3)
    return data.examples(utterances, config, "train", keep_waveforms=True)


def test_the_fastest_speed_leaves_every_transcript_enough_ctc_frames(waveform_examples):
    samples = np.array([len(w) for w in waveform_examples.waveforms], np.int32)
    fastest = data.fastest_feasible_speeds(samples, waveform_examples.labels, (0.9, 1.1), 3)
    assert fastest.tolist() == [1.0] + [np.float32(1.1)] * 5


def test_augmented_batches_are_well_formed_and_ctc_feasible(waveform_examples):
    speed_up = augment.Augmentation(
        **EVERY_STEP | dict(speed_factors=(1.1,), reverb_probability=0.0)
    )
    ds = data.make_augmented_dataset(waveform_examples, 4, speed_up, "log_mel", 3, seed=5)
    epochs = [list(ds), list(ds)]
    for batches in epochs:
        assert len(batches) == int(ds.cardinality())
        seen = []
        for inputs, targets in batches:
            f, n = inputs["features"].numpy(), inputs["lengths"].numpy()
            y, m = targets["labels"].numpy(), targets["label_lengths"].numpy()
            assert (
                f.shape[2] == features.NUM_MELS and f.shape[1] == n.max() and np.all(np.isfinite(f))
            )
            assert np.array_equal(m, np.sum(y > 0, axis=1))
            for row in range(len(n)):
                assert int(output_lengths(n[row], 3)) >= data.min_frames(y[row, : m[row]])
                seen.append((data.decode_ids(y[row, : m[row]]), int(n[row])))
        assert sorted(t for t, _ in seen) == sorted(
            data.decode_ids(y) for y in waveform_examples.labels
        )
        frames = dict(seen)
        assert (
            frames["abcdefghijklmnopqrstuvwxyzabcdefg"] == 97
        )  # kept at speed 1: 1.1x leaves 30 < 33
        assert frames["hello"] == int(features.num_frames(augment.sped_up_length(16000, 1.1))) == 88
    first, second = (np.concatenate([b[0]["features"].numpy().ravel() for b in e]) for e in epochs)
    assert not np.array_equal(first, second)  # new noise every epoch
    again = data.make_augmented_dataset(waveform_examples, 4, speed_up, "log_mel", 3, seed=5)
    replay = np.concatenate([b[0]["features"].numpy().ravel() for b in again])
    np.testing.assert_array_equal(replay, first)  # the same seed, the same epoch


def test_augmentation_needs_the_waveforms(waveform_examples):
    without = dataclasses.replace(waveform_examples, waveforms=None)
    with pytest.raises(ValueError, match="keep_waveforms=True"):
        data.make_augmented_dataset(
            without, 4, augment.Augmentation(noise_probability=1.0), "log_mel", 3
        )


# === Config ===
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("noise_probability=-0.1", "noise_probability must be in \\[0, 1\\]"),
        ("telephone_probability=1.5", "telephone_probability must be in \\[0, 1\\]"),
        ("noise_snr_db_range=20,5", "noise_snr_db_range must be low,high"),
        ("noise_snr_db_range=5", "noise_snr_db_range must be low,high"),
        ("reverb_rt60_range=0.8,0.2", "reverb_rt60_range must be"),
        ("reverb_rt60_range=0,0.5", "reverb_rt60_range must be"),
        ("speed_factors=3.0", "speed_factors must be"),
        ("gain_db_range=6,-6", "gain_db_range must be low,high"),
        ("vtlp_probability=2", "vtlp_probability must be in \\[0, 1\\]"),
        ("vtlp_warp_range=0.5,1.0", "vtlp_warp_range must be low,high with 0.8"),
        ("vtlp_warp_range=1.1,0.9", "vtlp_warp_range must be low,high"),
    ],
)
def test_config_rejects_bad_augmentation_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(SpeechConfig(), None, [override])


def test_augmentation_reads_its_config_fields():
    config = load_config(
        SpeechConfig(), None, ["speed_factors=0.9,1.0,1.1", "noise_snr_db_range=0,10"]
    )
    augmentation = augment.Augmentation.from_config(config)
    assert augmentation.speed_factors == (0.9, 1.0, 1.1) and augmentation.noise_snr_db_range == (
        0.0,
        10.0,
    )
    assert augmentation.enabled and augmentation.fastest_speed == 1.1
    assert (
        "speed_probability" not in SpeechConfig.MODEL_FIELDS
    )  # training only: a finetune may change it


# === One epoch of the smoke setting, every step on ===
def test_smoke_setting_trains_an_epoch_on_augmented_audio(tmp_path):
    from dlsuite.apps.speech import train
    from dlsuite.apps.speech.app import SpeechApp
    from dlsuite.apps.speech.model import build_speech_model
    from dlsuite.apps.speech.transcripts import ALPHABET

    config = dataclasses.replace(SpeechApp().smoke_config(tmp_path), **EVERY_STEP)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _, examples = train.prepare(config, run_dir, ("train", "valid"))
    assert (
        len(examples["train"].waveforms) == len(examples["train"])
        and examples["valid"].waveforms is None
    )
    model = build_speech_model(config, features.feature_dim(config.features), len(ALPHABET))
    figures = train.fit(
        model, config, examples["train"], examples["valid"], config.batch_size, run_dir
    )
    assert (
        figures["epochs_run"] == 1
        and np.isfinite(figures["final_loss"])
        and np.isfinite(figures["final_val_loss"])
    )
    assert (run_dir / "model.keras").is_file()
