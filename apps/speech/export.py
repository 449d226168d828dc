"""SavedModel export: a raw float32 waveform and its sample rate in, the transcript out.

    dlsuite speech export --from runs/speech/<run>      # -> <run>/export/ (checked against Keras)

    import tensorflow as tf, soundfile as sf            # plain TensorFlow; dlsuite not needed
    asr = tf.saved_model.load("runs/speech/<run>/export")
    audio, rate = sf.read("hello.wav", dtype="float32")  # mono
    out = asr.signatures["serving_default"](waveform=tf.constant(audio), sample_rate=tf.constant(rate))
    out["transcript"].numpy().decode()                   # beam search (no LM)
    out["greedy_transcript"], out["log_probs"]           # greedy; per-frame log-probs [frames, 29]
    asr.transcribe_batch(waveforms, lengths, sample_rate)  # a padded batch [B, N] with true lengths
    long = asr.signatures["transcribe_long"](waveform=..., sample_rate=...)  # up to max_file_minutes
    long["transcript"], long["segment_starts"], long["segment_ends"], long["segment_transcripts"]

In the graph: resampling to 16 kHz, log-mel/MFCC features with per-utterance normalization, the
acoustic model, and CTC greedy and beam decoding (TensorFlow's decoders). n-gram LM fusion stays
on the Python side (`dlsuite speech predict`, decode.py): the word-level prefix search is not
expressible in TensorFlow ops at a useful speed. `log_probs` is returned so a client can run its
own LM decoder on the exported model's output.
`transcribe_long` takes a recording of up to max_file_minutes: resampled to 16 kHz, cut at pauses
by segment.py's energy segmentation (the same function `dlsuite speech predict` uses, so both cut
at the same samples) into segments of at most max_seconds, each transcribed as `serving_default`
would (in equal padded batches of at most 16 segments); audio of at most max_seconds is one
segment, so it gives serving_default's transcripts.
Input checks in the graph raise InvalidArgumentError with a message: empty waveform, sample rate
outside 8-192 kHz, audio longer than the run's max_seconds (transcribe_long: max_file_minutes),
NaN/inf samples.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dlsuite.apps.app import ExportProbe
from dlsuite.apps.speech import features, segment
from dlsuite.apps.speech.audio import SAMPLE_RATE
from dlsuite.apps.speech.transcripts import ALPHABET
from dlsuite.shared.export import save_module

SEGMENTS_PER_BATCH = 16  # transcribe_long: at most 16 x max_seconds of audio a batch, bounded memory for an hour's file


class SpeechRecognizerModule(tf.Module):
    def __init__(self, model, feature_kind: str, max_seconds: float, beam_width: int, max_file_minutes: float = 60.0,
                 vad_threshold_db: float = 35.0, vad_min_pause_seconds: float = 0.3,
                 segments_per_batch: int = SEGMENTS_PER_BATCH):
        super().__init__()
        self.model, self.segments_per_batch = model, segments_per_batch
        self.feature_kind, self.max_seconds, self.beam_width = feature_kind, max_seconds, beam_width
        self.max_file_minutes, self.vad_threshold_db = max_file_minutes, vad_threshold_db
        self.vad_min_pause_seconds = vad_min_pause_seconds
        self.alphabet = tf.constant(list(ALPHABET))
        self.dim = features.feature_dim(feature_kind)

    def _check(self, waveforms, lengths, sample_rate):
        longest = tf.cast(self.max_seconds * tf.cast(sample_rate, tf.float32), tf.int32)
        return [
            tf.debugging.assert_greater(tf.reduce_min(lengths), 0, message="empty waveform: send at least one sample"),
            tf.debugging.assert_less_equal(tf.reduce_max(lengths), tf.shape(waveforms)[1],
                                           message="a length is larger than the padded waveform"),
            tf.debugging.assert_greater_equal(sample_rate, 8000, message="sample_rate must be 8000..192000 Hz"),
            tf.debugging.assert_less_equal(sample_rate, 192000, message="sample_rate must be 8000..192000 Hz"),
            tf.debugging.assert_less_equal(tf.reduce_max(lengths), longest,
                                           message=f"audio longer than max_seconds={self.max_seconds}: cut it into parts"),
            tf.debugging.assert_all_finite(waveforms, message="waveform holds NaN or inf samples"),
        ]

    def _features(self, waveforms, lengths, sample_rate):
        def one(args):
            waveform, length = args
            return features.features(features.resample(waveform[:length], sample_rate), self.feature_kind)

        ragged = tf.map_fn(one, (waveforms, lengths),
                           fn_output_signature=tf.RaggedTensorSpec([None, self.dim], tf.float32, ragged_rank=0))
        return ragged.to_tensor(), tf.cast(ragged.row_lengths(), tf.int32)

    def _texts(self, decoded):
        """Decoded label ids [B, T] (padded with -1) -> strings."""
        ids = tf.RaggedTensor.from_tensor(decoded, padding=-1)
        text = tf.strings.reduce_join(tf.gather(self.alphabet, ids), axis=1)
        # Words are separated by one space, as decode.py's transcripts are (CTC may emit several).
        return tf.strings.strip(tf.strings.regex_replace(text, " +", " "))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveforms"),
                                  tf.TensorSpec([None], tf.int32, name="lengths"),
                                  tf.TensorSpec([], tf.int32, name="sample_rate")])
    def transcribe_batch(self, waveforms, lengths, sample_rate):
        with tf.control_dependencies(self._check(waveforms, lengths, sample_rate)):
            values, frames = self._features(waveforms, lengths, sample_rate)
        log_probs, out_lengths = self.model.log_probs(values, frames)
        greedy = keras.ops.ctc_decode(log_probs, out_lengths, strategy="greedy", mask_index=0)[0][0]
        beam = keras.ops.ctc_decode(log_probs, out_lengths, strategy="beam_search", beam_width=self.beam_width,
                                    top_paths=1, mask_index=0)[0][0]
        return {"transcript": self._texts(beam), "greedy_transcript": self._texts(greedy),
                "log_probs": log_probs, "frames": out_lengths}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform"),
                                  tf.TensorSpec([], tf.int32, name="sample_rate")])
    def transcribe(self, waveform, sample_rate):
        out = self.transcribe_batch(waveform[None], tf.shape(waveform)[:1], sample_rate)
        return {"transcript": out["transcript"][0], "greedy_transcript": out["greedy_transcript"][0],
                "log_probs": out["log_probs"][0, : out["frames"][0]]}

    def _check_recording(self, waveform, sample_rate):
        seconds = tf.cast(tf.size(waveform), tf.float64) / tf.cast(sample_rate, tf.float64)
        return [
            tf.debugging.assert_greater(tf.size(waveform), 0, message="empty waveform: send at least one sample"),
            tf.debugging.assert_greater_equal(sample_rate, 8000, message="sample_rate must be 8000..192000 Hz"),
            tf.debugging.assert_less_equal(sample_rate, 192000, message="sample_rate must be 8000..192000 Hz"),
            tf.debugging.assert_less_equal(seconds, tf.constant(self.max_file_minutes * 60, tf.float64),
                                           message=f"audio longer than max_file_minutes={self.max_file_minutes:g}: "
                                                   "cut it into parts"),
            tf.debugging.assert_all_finite(waveform, message="waveform holds NaN or inf samples"),
        ]

    def _transcribe_segments(self, audio, bounds):
        """Beam and greedy transcripts [S] of audio[start:end] for each row of bounds [S, 2], in
        padded batches through transcribe_batch (each segment as serving_default would answer it
        alone: features and masks follow each one's length)."""
        count = tf.shape(bounds)[0]

        def batch(group):  # [size, 2] -> [size] beam, [size] greedy
            lengths = group[:, 1] - group[:, 0]
            offsets = tf.range(tf.reduce_max(lengths))[None, :]
            inside = offsets < lengths[:, None]
            samples = tf.gather(audio, tf.minimum(group[:, :1] + offsets, tf.shape(audio)[0] - 1))
            out = self.transcribe_batch(tf.where(inside, samples, 0.0), lengths, tf.constant(SAMPLE_RATE))
            return out["transcript"], out["greedy_transcript"]

        def every_batch():  # count > 0
            batches = (count + self.segments_per_batch - 1) // self.segments_per_batch
            size = (count + batches - 1) // batches  # equal batches: 17 segments are 9 + 8
            # Fill the last batch with copies of the last segment (a length-0 one would fail the checks).
            groups = tf.reshape(tf.concat([bounds, tf.repeat(bounds[-1:], batches * size - count, axis=0)], 0),
                                [batches, size, 2])
            texts = tf.TensorSpec([None], tf.string)
            beam, greedy = tf.map_fn(batch, groups, fn_output_signature=(texts, texts))  # [batches, size]
            return tf.reshape(beam, [-1])[:count], tf.reshape(greedy, [-1])[:count]

        no_text = tf.zeros([0], tf.string)
        return tf.cond(count > 0, every_batch, lambda: (no_text, no_text))  # silence: no segment at all

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform"),
                                  tf.TensorSpec([], tf.int32, name="sample_rate")])
    def transcribe_long(self, waveform, sample_rate):
        with tf.control_dependencies(self._check_recording(waveform, sample_rate)):
            audio = features.resample(waveform, sample_rate)  # [N] at 16 kHz
        length = tf.shape(audio)[0]
        bounds = tf.cond(  # [S, 2] samples
            length <= int(self.max_seconds * SAMPLE_RATE),
            lambda: tf.stack([[0, length]]),
            lambda: segment.segment_bounds(audio, self.max_seconds, self.vad_threshold_db,
                                           self.vad_min_pause_seconds)[0])

        beam, greedy = self._transcribe_segments(audio, bounds)

        def joined(texts):
            return tf.strings.reduce_join(tf.boolean_mask(texts, tf.strings.length(texts) > 0), separator=" ")

        seconds = tf.cast(bounds, tf.float32) / SAMPLE_RATE  # [S, 2]
        return {"transcript": joined(beam), "greedy_transcript": joined(greedy), "segment_transcripts": beam,
                "segment_greedy_transcripts": greedy, "segment_starts": seconds[:, 0], "segment_ends": seconds[:, 1]}


def serving_module(model, config, segments_per_batch: int = SEGMENTS_PER_BATCH) -> SpeechRecognizerModule:
    """The export's module with the config's features, input limits, beam width and segmentation."""
    return SpeechRecognizerModule(model, config.features, config.max_seconds, config.beam_width, config.max_file_minutes,
                                  config.vad_threshold_db, config.vad_min_pause_seconds, segments_per_batch)


def export_serving_model(model, config, export_dir: str | Path) -> Path:
    """Writes the SavedModel of serving_module(model, config)."""
    module = serving_module(model, config)
    return save_module(module, export_dir, {"serving_default": module.transcribe, "transcribe_batch": module.transcribe_batch,
                                            "transcribe_long": module.transcribe_long})


def probe(model, config, waveform: np.ndarray) -> ExportProbe:
    """The export's check: a 16 kHz waveform, and the per-frame log-probabilities and greedy
    transcript of the Keras model on features computed by the Python pipeline (the SavedModel
    computes them in its graph)."""
    from dlsuite.apps.speech import data
    from dlsuite.apps.speech.decode import greedy_decode

    expected = model.utterance_log_probs(data.compute_features(waveform, config.features))
    return ExportProbe(inputs={"waveform": waveform, "sample_rate": np.int32(SAMPLE_RATE)},
                       expected={"log_probs": expected,
                                 "greedy_transcript": np.array(greedy_decode(expected, ALPHABET), dtype=object)},
                       tolerance=1e-3)
