"""Audio features in the TensorFlow graph: resampling, log-mel spectrogram, MFCC, normalization.

The same functions run in the training input pipeline and inside the exported SavedModel, so a
deployed model takes raw waveforms and computes exactly the features it was trained on.

    log_mel = log_mel_spectrogram(waveform)          # [frames, 80], natural log of mel power
    mfcc = mfccs(log_mel, 13)                        # [frames, 13]

Settings: 16 kHz audio, 32 ms Hann windows (512 samples, also the FFT size) every 10 ms,
80 HTK mel bands from 20 Hz to 7.6 kHz. librosa computes the same features with
`melspectrogram(..., n_fft=512, hop_length=160, center=False, htk=True, norm=None, fmin=20,
fmax=7600)`; tests/apps/test_speech.py checks the two agree (see FEATURE_TOLERANCE there).
"""

from __future__ import annotations

import tensorflow as tf

SAMPLE_RATE = 16000
FRAME_LENGTH = 512  # 32 ms; equal to the FFT size so tf.signal and librosa frame alike
FRAME_STEP = 160  # 10 ms
NUM_MELS = 80
MEL_LOW_HZ, MEL_HIGH_HZ = 20.0, 7600.0
LOG_FLOOR = 1e-6  # log(mel + floor): silence maps to about -13.8, not -inf
VTLP_HIGH_HZ = 4800.0  # VTLP's F_hi: the warp is linear below about this frequency (Jaitly & Hinton 2013)


def num_frames(num_samples):
    """Frames of an unpadded (center=False) STFT: 1 + (n - frame) // step, and 0 for short input."""
    return tf.maximum(0, 1 + (num_samples - FRAME_LENGTH) // FRAME_STEP)


def resample(waveform, sample_rate, target_rate: int = SAMPLE_RATE):
    """Band-limited resampling of a 1-D waveform by zero-padding or truncating its spectrum.

    Written by hand because TensorFlow has no resampling op (tensorflow-io's is a dependency we
    avoid). Treats the clip as one period, like scipy.signal.resample; accurate away from the
    clip's edges, which is what speech features need.
    """
    sample_rate = tf.cast(sample_rate, tf.int32)

    def fourier_resample():
        n = tf.shape(waveform)[0]
        m = tf.cast(tf.round(tf.cast(n, tf.float64) * target_rate / tf.cast(sample_rate, tf.float64)), tf.int32)
        spectrum = tf.signal.rfft(waveform, fft_length=[n])
        keep = tf.minimum(tf.shape(spectrum)[0], m // 2 + 1)
        spectrum = tf.pad(spectrum[:keep], [[0, m // 2 + 1 - keep]])
        return tf.signal.irfft(spectrum, fft_length=[m]) * (tf.cast(m, tf.float32) / tf.cast(n, tf.float32))

    return tf.cond(tf.equal(sample_rate, target_rate), lambda: waveform, fourier_resample)


def mel_matrix(sample_rate: int = SAMPLE_RATE):
    return tf.signal.linear_to_mel_weight_matrix(NUM_MELS, FRAME_LENGTH // 2 + 1, sample_rate, MEL_LOW_HZ, MEL_HIGH_HZ)


def warped_mel_matrix(warp):
    """The mel filterbank [FRAME_LENGTH // 2 + 1, NUM_MELS] read at frequencies warped by `warp`
    (a float32 scalar, about 0.9-1.1): vocal tract length perturbation (VTLP; Jaitly & Hinton 2013,
    eq. 1) for training. A bin at frequency f counts as f' = warp x f below the cutoff
    F_hi min(warp, 1) / warp, and above it on the line that takes the Nyquist frequency to itself:
    warp > 1 moves every formant up, as a shorter vocal tract does. At warp = 1 this is
    `mel_matrix()` (tested); written out because tf.signal's filterbank takes no warped frequencies.
    """
    warp = tf.cast(warp, tf.float32)
    nyquist = SAMPLE_RATE / 2
    hertz = tf.linspace(0.0, nyquist, FRAME_LENGTH // 2 + 1)
    cutoff = VTLP_HIGH_HZ * tf.minimum(warp, 1.0) / warp
    above = nyquist - (nyquist - VTLP_HIGH_HZ * tf.minimum(warp, 1.0)) / (nyquist - cutoff) * (nyquist - hertz)
    mel = _hertz_to_mel(tf.where(hertz <= cutoff, warp * hertz, above))[:, None]  # (bins, 1)
    edges = tf.linspace(_hertz_to_mel(MEL_LOW_HZ), _hertz_to_mel(MEL_HIGH_HZ), NUM_MELS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # each (NUM_MELS,): the triangles
    rising, falling = (mel - lower) / (center - lower), (upper - mel) / (upper - center)
    weights = tf.maximum(0.0, tf.minimum(rising, falling))  # (bins, NUM_MELS)
    return tf.concat([tf.zeros([1, NUM_MELS]), weights[1:]], axis=0)  # no DC, like tf.signal's


def _hertz_to_mel(hertz):
    return 1127.0 * tf.math.log1p(tf.cast(hertz, tf.float32) / 700.0)  # HTK's mel scale, as tf.signal's


def log_mel_spectrogram(waveform, mel=None):
    """float32 waveform [..., samples] at 16 kHz -> natural-log mel power [..., frames, NUM_MELS],
    through the filterbank `mel` (default `mel_matrix()`; training may pass a warped one)."""
    stft = tf.signal.stft(waveform, FRAME_LENGTH, FRAME_STEP, FRAME_LENGTH, window_fn=tf.signal.hann_window)
    power = tf.math.square(tf.abs(stft))
    mel = tf.tensordot(power, mel_matrix() if mel is None else mel, 1)
    return tf.math.log(mel + LOG_FLOOR)


def mfccs(log_mel, num_coefficients: int = 13):
    """MFCCs: orthonormal DCT-II of the log-mel frames (librosa's mfcc uses dB, i.e. x 10/ln 10)."""
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :num_coefficients]


def features(waveform, kind: str = "log_mel", mel=None):
    """The model's input features for one waveform: log-mel or MFCC, per utterance normalized
    (`mel`: the filterbank, see log_mel_spectrogram)."""
    log_mel = log_mel_spectrogram(waveform, mel)
    values = mfccs(log_mel) if kind == "mfcc" else log_mel
    return normalize_utterance(values)


def normalize_utterance(values):
    """Zero mean, unit variance per channel over the utterance's frames: removes the loudness and
    microphone (channel) offsets that differ between speakers and recordings."""
    mean, variance = tf.nn.moments(values, axes=[-2], keepdims=True)
    return (values - mean) * tf.math.rsqrt(variance + 1e-5)


def feature_dim(kind: str) -> int:
    return 13 if kind == "mfcc" else NUM_MELS
