"""SavedModel export: a raw float32 waveform and its sample rate in, the transcript out.

    dlsuite speech export --from runs/speech/<run>      # -> <run>/export/

    import tensorflow as tf, soundfile as sf            # plain TensorFlow; dlsuite not needed
    asr = tf.saved_model.load("runs/speech/<run>/export")
    audio, rate = sf.read("hello.wav", dtype="float32")  # mono
    out = asr.signatures["serving_default"](waveform=tf.constant(audio), sample_rate=tf.constant(rate))
    out["transcript"].numpy().decode()                   # beam search (no LM)
    out["greedy_transcript"], out["log_probs"]           # greedy; per-frame log-probs [frames, 29]
    asr.transcribe_batch(waveforms, lengths, sample_rate)  # a padded batch [B, N] with true lengths

In the graph: resampling to 16 kHz, log-mel/MFCC features with per-utterance normalization, the
acoustic model, and CTC greedy and beam decoding (TensorFlow's decoders). n-gram LM fusion stays
on the Python side (`dlsuite speech predict`, decode.py): the word-level prefix search is not
expressible in TensorFlow ops at a useful speed. `log_probs` is returned so a client can run its
own LM decoder on the exported model's output.
Input checks in the graph raise InvalidArgumentError with a message: empty waveform, sample rate
outside 8-192 kHz, audio longer than the run's max_seconds, NaN/inf samples.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dlsuite.apps.commands import run_folder
from dlsuite.apps.speech import corpus, features
from dlsuite.apps.speech.train import load_model, run_config
from dlsuite.shared.export import save_module


class SpeechRecognizerModule(tf.Module):
    def __init__(self, model, feature_kind: str, max_seconds: float, beam_width: int):
        super().__init__()
        self.model = model
        self.feature_kind, self.max_seconds, self.beam_width = feature_kind, max_seconds, beam_width
        self.alphabet = tf.constant(list(corpus.ALPHABET))
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
        return tf.strings.reduce_join(tf.gather(self.alphabet, ids), axis=1)

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


def export_run(source: str | Path, export_dir: str | Path | None = None) -> Path:
    source_dir = run_folder(source)
    config = run_config(source_dir)
    module = SpeechRecognizerModule(load_model(source), config.features, config.max_seconds, config.beam_width)
    export_dir = Path(export_dir) if export_dir else source_dir / "export"
    return save_module(module, export_dir, {"serving_default": module.transcribe, "transcribe_batch": module.transcribe_batch})


def max_export_gap(run_dir: str | Path, export_dir: str | Path, paths: list[str]) -> dict:
    """Exported vs in-memory model on audio files: max |log p| difference and whether the greedy
    transcripts agree (the export resamples and computes features in its own graph)."""
    from dlsuite.apps.speech import data
    from dlsuite.apps.speech.decode import greedy_decode

    config = run_config(Path(run_dir))
    model, exported = load_model(run_dir), tf.saved_model.load(str(export_dir))
    gap, same = 0.0, True
    for path in paths:
        audio = corpus.load_audio(path, max_seconds=config.max_seconds)
        values = data.compute_features(audio, config.features)
        expected = model.utterance_log_probs(values)
        out = exported.signatures["serving_default"](waveform=tf.constant(audio), sample_rate=tf.constant(corpus.SAMPLE_RATE))
        gap = max(gap, float(np.max(np.abs(out["log_probs"].numpy() - expected))))
        same &= out["greedy_transcript"].numpy().decode() == greedy_decode(expected, corpus.ALPHABET)
    return {"export max |log p - keras|": gap, "export greedy transcripts agree": float(same)}
