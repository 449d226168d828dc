"""Cutting long recordings at pauses: energy-based voice-activity segmentation in TensorFlow ops.

    bounds, forced = speech_segments(waveform, max_seconds=20.0)   # NumPy [N] at 16 kHz -> [S, 2] samples
    bounds, forced = segment_bounds(waveform, 20.0, 35.0, 0.3)     # the same inside a graph

`dlsuite speech predict` (inference.py) and the exported SavedModel (export.py, `transcribe_long`)
both call `segment_bounds`, so a recording is cut at the same samples in Python and in serving.
On a 16 kHz waveform, in 10 ms frames (the features' hop):

1. Frame energy in dB: the mean square of the frame's samples, 0 dB = full scale.
2. A frame is speech if it is louder than SILENCE_DBFS, within `threshold_db` of the file's loud
   level, and louder than NOISE_SHARE of the way from the noise floor up to the loud level. The
   loud level is the LOUD_QUANTILE of the frames louder than SILENCE_DBFS (a quantile, not the
   maximum, so one click does not set it; audible frames only, so hours of digital silence do
   not pull it down); the noise floor is the NOISE_QUANTILE of all frames. In a clean recording
   `threshold_db` decides; in a noisy one (noise less than `threshold_db` under the speech) the
   noise floor does, else the noise would count as speech and no pause would be found.
3. A pause is a run of non-speech frames at least `min_pause_seconds` long; shorter dips (stop
   consonants, the gaps between words) stay inside speech. Each pause is cut at its quietest
   frame; of frames within TIE_DB of that minimum (digital silence is all one level), the one
   nearest the pause's middle.
4. A stretch longer than `max_seconds` without a pause (fast speech in noise, music, noise) is cut
   at the quietest frame of the second half of its `max_seconds` window: the second half, so a
   forced cut never leaves a sliver of a segment behind it.
5. Each segment is trimmed to its speech frames plus half a minimum pause of context on each side
   (inside its cuts), and dropped if it has fewer than MIN_SPEECH_FRAMES speech frames (silence,
   a click). Segments are therefore at most `max_seconds` long and never overlap.

Why energy and not webrtcvad (WebRTC's GMM voice detector, on PyPI): it tells speech from noise
better, but it is a C extension with no release since 2017 (wheels only from a fork) and cannot
run inside a SavedModel, so predict and the export would cut the same recording differently. In
a clean or moderately noisy recording the pauses are what an energy detector finds well; a
recording with no pauses at all is still cut (step 4) and reported (`forced` cuts).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from dlsuite.apps.speech.features import FRAME_STEP, SAMPLE_RATE

FRAME = FRAME_STEP  # samples per energy frame: 10 ms, the features' hop
FRAMES_PER_SECOND = SAMPLE_RATE // FRAME
# Below -60 dB full scale a frame is silence whatever the recording's level: the noise floor of a
# quiet room through a decent microphone; speech even 20 dB under a normal level is above it.
SILENCE_DBFS = -60.0
LOUD_QUANTILE = 0.95  # the loud level: 5% of the audible frames are louder (vowels, stresses)
NOISE_QUANTILE = 0.1  # the noise floor: a recording with pauses has at least 10% of pause frames
# A third of the way up: about 8 dB over noise 20 dB under the speech, clear of the noise frames'
# own ups and downs (a few dB), and still under the weaker speech sounds.
NOISE_SHARE = 1 / 3
TIE_DB = 1.0  # frames this close to a pause's minimum count as equally quiet
MIN_SPEECH_FRAMES = 5  # 50 ms: shorter than any syllable, longer than a click


def frame_energy_db(waveform):
    """[N] float32 -> [T] energy of 10 ms frames in dB (T = ceil(N / FRAME); -100 dB for zeros)."""
    frames = tf.signal.frame(waveform, FRAME, FRAME, pad_end=True)  # [T, FRAME]
    power = tf.reduce_mean(tf.square(frames), axis=1)  # [T]
    return 10.0 / math.log(10.0) * tf.math.log(power + 1e-10)


def _quantile(ordered, q: float):
    """The q-quantile (nearest rank below) of a sorted, non-empty [T] tensor."""
    return ordered[tf.cast(q * tf.cast(tf.size(ordered) - 1, tf.float32), tf.int32)]


def speech_frames(energy_db, threshold_db: float):
    """[T] bool: the frames above SILENCE_DBFS, within threshold_db of the loud level, and above
    NOISE_SHARE of the way from the noise floor to the loud level (module docstring, step 2)."""
    ordered = tf.sort(energy_db)  # [T]
    audible = tf.boolean_mask(ordered, ordered > SILENCE_DBFS)  # [A], still sorted
    loud = tf.cond(
        tf.size(audible) > 0,
        lambda: _quantile(audible, LOUD_QUANTILE),
        lambda: tf.constant(SILENCE_DBFS),
    )
    floor = _quantile(ordered, NOISE_QUANTILE)
    level = tf.reduce_max(
        tf.stack([SILENCE_DBFS, loud - threshold_db, floor + NOISE_SHARE * (loud - floor)])
    )
    return energy_db > level


def pause_cuts(energy_db, speech, min_pause_frames: int):
    """[P] sorted frame indices: one cut per pause (a non-speech run of min_pause_frames or more),
    at its quietest frame (ties within TIE_DB: the one nearest the pause's middle)."""
    t = tf.range(tf.size(speech))  # [T]
    change = tf.concat([[True], tf.not_equal(speech[1:], speech[:-1])], 0)
    run = tf.cumsum(tf.cast(change, tf.int32)) - 1  # [T] run id of each frame, sorted
    # [T] each frame's run: its length and twice its middle (whole numbers)
    length = tf.gather(tf.math.segment_sum(tf.ones_like(t), run), run)
    middle2 = tf.gather(tf.math.segment_min(t, run), run) * 2 + length - 1
    quietest = tf.gather(tf.math.segment_min(energy_db, run), run)  # [T]
    candidate = ~speech & (length >= min_pause_frames) & (energy_db <= quietest + TIE_DB)
    # Twice the distance to the middle, +1 right of it: one smallest key per pause.
    key = 2 * tf.abs(2 * t - middle2) + tf.cast(2 * t > middle2, tf.int32)
    key = tf.where(candidate, key, tf.int32.max)
    best = tf.gather(tf.math.segment_min(key, run), run)
    return tf.cast(tf.where(candidate & tf.equal(key, best))[:, 0], tf.int32)


def cut_frames(energy_db, pauses, max_frames: int):
    """[S] increasing segment ends in frames (the last is T): every pause cut, plus a cut at the
    quietest frame of the second half of any max_frames window that has none; and their count."""
    num_frames = tf.size(energy_db)
    nexts = tf.concat([pauses, [num_frames]], 0)  # [P + 1]
    half = max(1, max_frames // 2)

    def forced_cut(start):
        # Not empty: called when the next pause is over max_frames away, so start + max_frames < T.
        window = energy_db[start + half : start + max_frames]
        return start + half + tf.argmin(window, output_type=tf.int32)

    def body(start, ends, forced):
        following = nexts[tf.searchsorted(pauses, start[None], side="right")[0]]
        fits = following - start <= max_frames
        cut = tf.cond(fits, lambda: following, lambda: forced_cut(start))
        return cut, ends.write(ends.size(), cut), forced + tf.cast(~fits, tf.int32)

    ends = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
    _, ends, forced = tf.while_loop(
        lambda start, *_: start < num_frames, body, (tf.constant(0), ends, tf.constant(0))
    )
    return ends.stack(), forced


def segment_bounds(waveform, max_seconds: float, threshold_db: float, min_pause_seconds: float):
    """Speech segments of a 16 kHz waveform [N]: [S, 2] int32 (start, end) samples, at most
    max_seconds each, in order; and the number of forced cuts (stretches with no pause)."""
    max_frames = max(2, int(max_seconds * FRAMES_PER_SECOND + 1e-6))
    min_pause = max(1, round(min_pause_seconds * FRAMES_PER_SECOND))
    energy = frame_energy_db(waveform)  # [T]
    speech = speech_frames(energy, threshold_db)  # [T]
    ends, forced = cut_frames(energy, pause_cuts(energy, speech, min_pause), max_frames)  # [S]
    starts = tf.concat([[0], ends[:-1]], 0)  # [S]
    t = tf.range(tf.size(energy))
    segment = tf.searchsorted(ends, t, side="right")  # [T] the segment of each frame
    count = tf.size(ends)
    first = tf.math.unsorted_segment_min(tf.where(speech, t, tf.int32.max), segment, count)  # [S]
    last = tf.math.unsorted_segment_max(tf.where(speech, t, -1), segment, count)  # [S]
    voiced = tf.math.unsorted_segment_sum(tf.cast(speech, tf.int32), segment, count)  # [S]
    context = min_pause // 2
    lo = tf.maximum(starts, first - context)
    hi = tf.minimum(ends, last + 1 + context)
    keep = voiced >= MIN_SPEECH_FRAMES
    bounds = tf.boolean_mask(tf.stack([lo, hi], axis=1), keep) * FRAME  # [S', 2] samples
    return tf.minimum(bounds, tf.shape(waveform)[0]), forced


_GRAPHS: dict = {}  # one traced graph per setting


def speech_segments(
    waveform: np.ndarray,
    max_seconds: float,
    threshold_db: float = 35.0,
    min_pause_seconds: float = 0.3,
) -> tuple[np.ndarray, int]:
    """segment_bounds on a NumPy waveform (16 kHz float32) through a traced graph: [S, 2] int
    sample bounds and the number of forced cuts."""
    key = (float(max_seconds), float(threshold_db), float(min_pause_seconds))
    if key not in _GRAPHS:
        _GRAPHS[key] = tf.function(
            lambda w: segment_bounds(w, *key), input_signature=[tf.TensorSpec([None], tf.float32)]
        )
    bounds, forced = _GRAPHS[key](tf.constant(waveform, tf.float32))
    return bounds.numpy(), int(forced)
