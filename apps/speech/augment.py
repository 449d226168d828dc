"""Waveform augmentation for the speech app's training input: what real recordings do to speech
and the espeak-ng corpus does not.

    augmentation = Augmentation.from_config(config)  # probabilities and ranges (config.py)
    noisy = augment_waveform(waveform, seed, augmentation)  # [n] at 16 kHz -> [n'] at 16 kHz

`data.make_augmented_dataset` calls `augment_waveform` in its `Dataset.map`, so every epoch hears
each utterance differently. Each step applies to an utterance with its own probability (0 = off,
and then the step is not even in the graph), in the order a recording goes through them:

1. Speed (Ko et al. 2015, "Audio augmentation for speech recognition"): resampling by a factor
   such as 0.9 or 1.1 changes tempo and pitch together, a slower and lower or faster and higher
   talker; the synthetic voices span a narrower range of both than people do.
2. Reverberation: convolution with a synthetic room impulse response, a direct path plus
   Gaussian noise under an exponential envelope that falls 60 dB in RT60 seconds (the statistical
   model of late reverberation, Polack 1988), at a direct-to-reverberant ratio of 0-12 dB.
3. Additive noise at a random SNR: white, pink (power ~ 1/f, like fans and traffic) or
   babble-like (time-reversed, shifted copies of the utterance itself: speech's spectrum and
   rhythm without its words; real babble would need other utterances inside the map). Noise also
   fills espeak's digital silence (a sixth of its samples are 0), which no microphone records.
4. Gain (dB), then clipping at full scale: the per-utterance feature normalization removes a pure
   gain, so what this teaches is the rest: loud recordings clip, quiet ones sit nearer the
   mu-law quantization floor of step 5.
5. Telephone channel: down to 8 kHz (nothing above 4 kHz), the ITU-T G.712 band 300-3400 Hz,
   G.711 mu-law 8-bit companding, and back up to 16 kHz.

Then, on the features rather than the waveform, vocal tract length perturbation (VTLP; Jaitly &
Hinton 2013): `random_mel_matrix` gives the utterance a mel filterbank read at warped frequencies
(`features.warped_mel_matrix`), formants moved as by a longer or shorter vocal tract while tempo
and pitch stay: new talkers from the corpus's few voices, which speed perturbation alone moves
only together with their tempo.

TensorFlow has none of these as ops (no mu-law, room impulse response or coloured noise), so they
are written here with tf.signal FFTs and `features.resample`. Every function takes and returns a
1-D float32 waveform; random draws are stateless, from a `[2]` int64 seed per utterance.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from dlsuite.apps.speech.features import SAMPLE_RATE, mel_matrix, resample, warped_mel_matrix

TELEPHONE_RATE = 8000
TELEPHONE_BAND_HZ = (300.0, 3400.0)  # ITU-T G.712 passband
MU = 255.0  # ITU-T G.711 mu-law (North America, Japan)
DIRECT_TO_REVERBERANT_DB = (0.0, 12.0)  # a talker within a few metres, not at the far end of a hall
BABBLE_TALKERS = 4


# === Settings ===
@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Probabilities (0 = off) and ranges of the waveform augmentation.

    The fields are SpeechConfig's of the same names (`from_config`); see config.py for defaults.

    Args:
        speed_probability: float. Chance that an utterance is resampled by one of `speed_factors`.
        speed_factors: tuple of float. Speed factors drawn uniformly (> 1: faster, shorter).
        noise_probability: float. Chance of additive white, pink or babble-like noise.
        noise_snr_db_range: (low, high). SNR of the noise in dB, drawn uniformly.
        reverb_probability: float. Chance of convolution with a synthetic room impulse response.
        reverb_rt60_range: (low, high). RT60 of the room in seconds, drawn uniformly.
        gain_probability: float. Chance of a gain change (then clipping at full scale).
        gain_db_range: (low, high). Gain in dB, drawn uniformly.
        telephone_probability: float. Chance of the telephone channel (8 kHz, G.712, mu-law).
        vtlp_probability: float. Chance of a VTLP-warped mel filterbank for the features.
        vtlp_warp_range: (low, high). Its frequency warp factor, drawn uniformly (> 1: formants up).
    """

    speed_probability: float = 0.0
    speed_factors: tuple[float, ...] = (0.9, 1.1)
    noise_probability: float = 0.0
    noise_snr_db_range: tuple[float, float] = (5.0, 25.0)
    reverb_probability: float = 0.0
    reverb_rt60_range: tuple[float, float] = (0.2, 0.8)
    gain_probability: float = 0.0
    gain_db_range: tuple[float, float] = (-18.0, 6.0)
    telephone_probability: float = 0.0
    vtlp_probability: float = 0.0
    vtlp_warp_range: tuple[float, float] = (0.9, 1.1)

    @classmethod
    def from_config(cls, config) -> Augmentation:
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})

    @property
    def enabled(self) -> bool:
        probabilities = (
            self.speed_probability,
            self.noise_probability,
            self.reverb_probability,
            self.gain_probability,
            self.telephone_probability,
            self.vtlp_probability,
        )
        return max(probabilities) > 0

    @property
    def fastest_speed(self) -> float:
        return max(self.speed_factors) if self.speed_probability > 0 else 1.0


# === The chain ===
def augment_waveform(waveform, seed, augmentation: Augmentation, max_speed=None):
    """One utterance through the enabled steps, each with its probability: [n] -> [n'].

    Args:
        waveform: float32 [n] at 16 kHz in [-1, 1].
        seed: int64 [2]. The utterance's stateless seed (one per utterance and epoch).
        augmentation: Augmentation. Probabilities and ranges.
        max_speed: float32 scalar or None. A drawn speed factor above it is replaced by 1: the
            sped-up utterance would have fewer CTC frames than its transcript needs.
    """
    a = augmentation
    steps = [
        (a.speed_probability, _random_speed(a.speed_factors, max_speed)),
        (a.reverb_probability, _random_reverb(a.reverb_rt60_range)),
        (a.noise_probability, _random_noise(a.noise_snr_db_range)),
        (a.gain_probability, lambda x, s: change_gain(x, _uniform(s, a.gain_db_range))),
        (a.telephone_probability, lambda x, s: telephone(x)),
    ]
    step_seeds = tf.unstack(tf.random.experimental.stateless_split(seed, len(steps)))  # steps x [2]
    x = waveform
    for (probability, step), step_seed in zip(steps, step_seeds, strict=True):
        x = _sometimes(probability, step_seed, x, step)
    return tf.clip_by_value(x, -1.0, 1.0)  # a recording never exceeds full scale


def _sometimes(probability: float, seed, waveform, apply):
    """apply(waveform, seed) with `probability`, else the waveform itself (bit for bit)."""
    if probability <= 0:
        return waveform
    draw, rest = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    chosen = tf.random.stateless_uniform([], draw) < probability
    return tf.cond(chosen, lambda: apply(waveform, rest), lambda: waveform)


def _uniform(seed, value_range):
    low, high = value_range
    return (
        tf.random.stateless_uniform([], seed, low, high)
        if high > low
        else tf.constant(low, tf.float32)
    )


def _random_speed(factors, max_speed):
    def apply(x, seed):
        index = tf.random.stateless_uniform([], seed, 0, len(factors), tf.int32)
        branches = [lambda f=f: change_speed(x, f) for f in factors]
        if max_speed is not None:  # too fast for the transcript: the extra last branch, speed 1
            too_fast = tf.gather(tf.constant(factors, tf.float32), index) > max_speed
            index = tf.where(too_fast, len(factors), index)
            branches.append(lambda: x)
        return tf.switch_case(index, branches)

    return apply


def _random_reverb(rt60_range):
    def apply(x, seed):
        rt60_seed, drr_seed, rir_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        rir = room_impulse_response(
            rir_seed, _uniform(rt60_seed, rt60_range), _uniform(drr_seed, DIRECT_TO_REVERBERANT_DB)
        )
        return convolve(x, rir)

    return apply


def _random_noise(snr_db_range):
    def apply(x, seed):
        kind_seed, snr_seed, noise_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 3)
        )
        n = tf.shape(x)[0]
        noise = tf.switch_case(
            tf.random.stateless_uniform([], kind_seed, 0, 3, tf.int32),
            [
                lambda: white_noise(noise_seed, n),
                lambda: pink_noise(noise_seed, n),
                lambda: babble_noise(noise_seed, x),
            ],
        )
        return add_noise(x, noise, _uniform(snr_seed, snr_db_range))

    return apply


def random_mel_matrix(seed, augmentation: Augmentation):
    """The utterance's mel filterbank [bins, NUM_MELS]: VTLP-warped by a factor drawn from
    `vtlp_warp_range` with `vtlp_probability`, else `features.mel_matrix()`."""
    if augmentation.vtlp_probability <= 0:
        return mel_matrix()
    draw, warp_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    chosen = tf.random.stateless_uniform([], draw) < augmentation.vtlp_probability
    warp = tf.where(chosen, _uniform(warp_seed, augmentation.vtlp_warp_range), 1.0)
    return warped_mel_matrix(warp)


# === Fast FFT lengths ===
# 2^a 3^b 5^c: lengths that tf.signal's FFTs transform several times faster than an arbitrary n
# with a large prime factor (the resamplings zero-pad to them)
_SMOOTH = sorted(
    k
    for k in {2**a * 3**b * 5**c for a in range(24) for b in range(15) for c in range(10)}
    if 2 <= k <= 2**23
)


def _next_smooth(n):
    """The smallest 5-smooth number >= n (a scalar int32 tensor, 2 <= n <= 2^23)."""
    table = tf.constant(_SMOOTH, tf.int32)
    return tf.gather(table, tf.searchsorted(table, tf.reshape(n, [1]))[0])


# === Speed and gain ===
def change_speed(waveform, factor: float):
    """The waveform played `factor` times faster: [n] -> [round(n / factor)], every frequency
    times `factor`. Its samples are read as if recorded at factor x 16 kHz and resampled to 16 kHz."""
    return _resample(waveform, round(factor * SAMPLE_RATE), SAMPLE_RATE)


def sped_up_length(num_samples, factor: float):
    """Samples after `change_speed(..., factor)`, with the same rounding as `features.resample`."""
    rate = round(factor * SAMPLE_RATE)
    return np.round(np.asarray(num_samples, np.float64) * SAMPLE_RATE / rate).astype(np.int32)


def _resample(waveform, rate: int, target: int):
    """`features.resample` from `rate` to `target` Hz, [n] -> [round(n x target / rate)], of the
    waveform zero-padded to up x q samples (rate = up x gcd, q 5-smooth), which resample to
    down x q (target = down x gcd): both FFT lengths are fast (a 1.1x speed change of
    0.5-3 s: 3.5x faster than without the padding, measured)."""
    up = rate // math.gcd(rate, target)
    n = tf.shape(waveform)[0]
    q = _next_smooth(-(-n // up))
    m = tf.cast(tf.round(tf.cast(n, tf.float64) * target / rate), tf.int32)
    return resample(tf.pad(waveform, [[0, q * up - n]]), rate, target)[:m]


def change_gain(waveform, gain_db):
    """Scales by 10^(gain_db / 20) and clips at full scale, as an overdriven input stage does."""
    return tf.clip_by_value(waveform * tf.pow(10.0, gain_db / 20.0), -1.0, 1.0)


# === Reverberation ===
def room_impulse_response(seed, rt60, direct_to_reverberant_db, sample_rate: int = SAMPLE_RATE):
    """A synthetic room: [ceil(rt60 x rate)] impulse response of unit energy.

    h[0] is the direct path; h[1:] is Gaussian noise under the envelope 10^(-3 t / rt60) (60 dB
    down in energy after rt60 seconds), scaled so that direct / reverberant energy is
    `direct_to_reverberant_db`.
    """
    rt60 = tf.cast(rt60, tf.float32)
    length = tf.maximum(2, tf.cast(tf.math.ceil(rt60 * sample_rate), tf.int32))
    t = tf.range(length, dtype=tf.float32) / sample_rate  # (L,)
    tail = tf.random.stateless_normal([length], seed) * tf.pow(10.0, -3.0 * t / rt60)
    tail = tf.concat([[0.0], tail[1:]], axis=0)  # the direct path owns h[0]
    tail_energy = tf.reduce_sum(tf.square(tail))
    tail *= tf.math.rsqrt(tail_energy * tf.pow(10.0, direct_to_reverberant_db / 10.0))
    rir = tail + tf.one_hot(0, length)  # (L,)
    return rir * tf.math.rsqrt(tf.reduce_sum(tf.square(rir)))


def convolve(waveform, impulse_response):
    """Full linear convolution by FFT, the reverberant tail kept: [n] * [k] -> [n + k - 1]."""
    n, k = tf.shape(waveform)[0], tf.shape(impulse_response)[0]
    out = n + k - 1
    fft_length = _next_smooth(out)  # zero padding to >= n + k - 1: no circular wrap-around
    spectrum = tf.signal.rfft(waveform, [fft_length]) * tf.signal.rfft(
        impulse_response, [fft_length]
    )
    return tf.signal.irfft(spectrum, [fft_length])[:out]


# === Noise ===
def add_noise(waveform, noise, snr_db):
    """waveform + noise scaled to `snr_db` below the waveform's mean power (the whole utterance,
    pauses included): 10 log10(P_waveform / P_added) = snr_db."""
    signal_power = tf.reduce_mean(tf.square(waveform))
    noise_power = tf.maximum(tf.reduce_mean(tf.square(noise)), 1e-20)
    scale = tf.sqrt(signal_power / (noise_power * tf.pow(10.0, snr_db / 10.0)))
    return waveform + scale * noise


def white_noise(seed, num_samples):
    return tf.random.stateless_normal([num_samples], seed)  # (n,)


def pink_noise(seed, num_samples):
    """Gaussian noise with power ~ 1/f (amplitude 1/sqrt(f), DC removed), shaped by FFT: [n]."""
    fft_length = _next_smooth(num_samples)  # a fast FFT length; the excess is cut off
    spectrum = tf.signal.rfft(tf.random.stateless_normal([fft_length], seed))  # (L/2 + 1,)
    bins = tf.range(fft_length // 2 + 1, dtype=tf.float32)
    weights = tf.where(bins > 0, tf.math.rsqrt(tf.maximum(bins, 1.0)), 0.0)
    return tf.signal.irfft(spectrum * tf.cast(weights, tf.complex64), [fft_length])[:num_samples]


def babble_noise(seed, waveform, talkers: int = BABBLE_TALKERS):
    """`talkers` time-reversed copies of the utterance, each circularly shifted at random: [n]."""
    n = tf.shape(waveform)[0]
    shifts = tf.random.stateless_uniform([talkers], seed, 0, tf.maximum(n, 1), tf.int32)
    reversed_speech = tf.reverse(waveform, [0])
    return tf.add_n([tf.roll(reversed_speech, shifts[i], 0) for i in range(talkers)])


# === Telephone channel ===
def mu_law(waveform, mu: float = MU, bits: int = 8):
    """G.711 mu-law round trip: compand, quantize to `bits` (sign + magnitude), expand: [n] -> [n].

    Compression F(x) = sgn(x) ln(1 + mu |x|) / ln(1 + mu) with mu = 255 (ITU-T G.711); |F| is
    rounded to 2^(bits-1) - 1 = 127 steps; expansion F^-1(y) = sgn(y) ((1 + mu)^|y| - 1) / mu.
    G.711's codec approximates this curve with 8 linear segments. Rounding moves |F| by at most
    d = 1 / (2 x 127), so |x - x'| <= (1/mu + |x|) ((1 + mu)^d - 1): about 2.2% of |x| for loud
    samples, 8.6e-5 of full scale near 0.
    """
    x = tf.clip_by_value(waveform, -1.0, 1.0)
    levels = float(2 ** (bits - 1) - 1)
    log_mu = math.log1p(mu)
    companded = tf.math.log1p(mu * tf.abs(x)) / log_mu  # |F(x)| in [0, 1]
    quantized = tf.round(companded * levels) / levels
    return tf.sign(x) * tf.math.expm1(quantized * log_mu) / mu


def telephone(waveform):
    """A telephone call: down to 8 kHz, the G.712 band 300-3400 Hz, mu-law at 8 bits, back up to
    16 kHz: [n] -> [n]. The up-sampled spectrum stops at 4 kHz; cutting the zero padding off
    leaks < 1e-4 of the energy (-40 dB) back above it."""
    n = tf.shape(waveform)[0]
    q = _next_smooth(-(-n // 2))  # zero-padded to 2q samples: fast FFT lengths at both rates
    narrow = resample(tf.pad(waveform, [[0, 2 * q - n]]), SAMPLE_RATE, TELEPHONE_RATE)  # (q,)
    spectrum = tf.signal.rfft(narrow)  # (q/2 + 1,)
    hertz = tf.range(q // 2 + 1, dtype=tf.float32) * (TELEPHONE_RATE / tf.cast(q, tf.float32))
    low, high = TELEPHONE_BAND_HZ
    band = tf.cast((hertz >= low) & (hertz <= high), tf.complex64)
    narrow = mu_law(tf.signal.irfft(spectrum * band, [q]))
    return resample(narrow, TELEPHONE_RATE, SAMPLE_RATE)[:n]  # (2q,) -> (n,)
