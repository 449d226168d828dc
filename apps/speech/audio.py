"""Audio files for speech: reading them (soundfile, librosa for the other formats), checking
them (empty, silent, clipped, too long), and `load_audio`: float32 mono in [-1, 1] at 16 kHz.

Training utterances are limited to max_seconds (`load_audio`'s default message); a recording to
transcribe (`predict`) may be up to max_file_minutes long and is cut at pauses (segment.py): pass
`limit=RECORDING_LIMIT`."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from dlsuite.apps.speech.transcripts import SpeechDataError

SAMPLE_RATE = 16000
# What a too-long file's error says about the limit (formatted with max_seconds, and minutes).
UTTERANCE_LIMIT = "max_seconds={max_seconds:g}. Raise max_seconds or cut the file into shorter utterances."
RECORDING_LIMIT = ("the {minutes:g}-minute limit on one recording (max_file_minutes). Cut it into parts, e.g. "
                   "`ffmpeg -i long.wav -f segment -segment_time 1800 part%02d.wav`, or raise max_file_minutes.")


class ClippingWarning(UserWarning):
    """Audio with many samples at full scale: kept, but the recording is distorted."""


def _read_audio_file(path: Path, max_seconds: float, limit: str) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the file's rate; soundfile first, librosa for the rest."""
    if not path.is_file():
        raise SpeechDataError(f"{path}: audio file not found. Check the path (paths in a transcript table are relative to its folder).")
    try:
        info = sf.info(str(path))
    except Exception:
        info = None  # not a format libsndfile knows; librosa (audioread/ffmpeg) may still read it
    if info is not None and info.duration > max_seconds:
        raise _too_long(path, info.duration, max_seconds, limit)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return data, rate
    except Exception as sf_error:
        error = sf_error
    try:
        import librosa

        with warnings.catch_warnings():  # librosa warns before falling back to audioread
            warnings.simplefilter("ignore")
            data, rate = librosa.load(str(path), sr=None, mono=False)
        return np.atleast_2d(data).T.astype(np.float32), int(rate)
    except Exception as librosa_error:
        raise SpeechDataError(
            f"{path}: cannot read the audio (soundfile: {error}; librosa: {librosa_error}). The file "
            "is corrupt or in an unknown format; convert it to wav or flac, e.g. "
            "`ffmpeg -i in.xxx -ar 16000 -ac 1 out.wav`.") from librosa_error


def _too_long(name, seconds: float, max_seconds: float, limit: str) -> SpeechDataError:
    text = limit.format(max_seconds=max_seconds, minutes=max_seconds / 60)
    return SpeechDataError(f"{name}: {seconds:.1f} s of audio, longer than {text}")


def _check_waveform(name, x: np.ndarray, rate: int, max_seconds: float, limit: str) -> None:
    if x.size == 0:
        raise SpeechDataError(f"{name}: the audio is empty (0 samples). Remove the utterance or re-export it.")
    if len(x) / rate > max_seconds:
        raise _too_long(name, len(x) / rate, max_seconds, limit)
    peak = float(np.max(np.abs(x)))
    if peak < 1e-4:
        raise SpeechDataError(f"{name}: the audio is silent (peak {peak:.1e}). Check the recording "
                              "or remove the utterance.")
    clipped = float(np.mean(np.abs(x) >= 0.999))
    if clipped > 0.01:
        # Kept: a clipped recording is still speech, but the user should know it is distorted.
        warnings.warn(f"{name}: {clipped:.1%} of the samples are clipped at full scale; "
                      "the audio is kept but distorted.", ClippingWarning, stacklevel=3)


def load_audio(utterance_or_path, sample_rate: int = SAMPLE_RATE, max_seconds: float = 20.0,
               limit: str = UTTERANCE_LIMIT) -> np.ndarray:
    """Float32 mono waveform in [-1, 1] at `sample_rate`, from a file or an utterance: its `audio`
    file, or for in-memory data its `samples` at its `sample_rate`. Audio over max_seconds is an
    error whose advice is `limit` (UTTERANCE_LIMIT, or RECORDING_LIMIT for predict)."""
    source = utterance_or_path
    if getattr(source, "samples", None) is not None:  # an in-memory Utterance (utterances.py)
        name, rate = f"{source.key} (in memory)", source.sample_rate
        x = source.samples
        x = x.astype(np.float32) / 32768.0 if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)
        x = x.reshape(len(x), -1)
    else:
        name = Path(getattr(source, "audio", source))  # an Utterance or a path
        x, rate = _read_audio_file(name, max_seconds, limit)
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]  # stereo -> mono
    _check_waveform(name, x, rate, max_seconds, limit)
    if rate != sample_rate:
        x = soxr.resample(x, rate, sample_rate, quality="HQ")
    # Resampling can overshoot full scale a little; the promise is [-1, 1].
    return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)


def audio_duration(path: Path) -> float:
    """Seconds of audio from the file header (no decoding) where soundfile knows the format."""
    try:
        return float(sf.info(str(path)).duration)
    except Exception:
        pass
    try:
        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(librosa.get_duration(path=str(path)))
    except Exception as error:
        raise SpeechDataError(f"{path}: cannot read the audio ({error}). The file is corrupt or in an "
                              "unknown format; convert it to wav or flac.") from error

