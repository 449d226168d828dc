"""SavedModel export: sentences in, translations out; tokenization, encoder, beam search and
detokenization all in the graph.

    dlsuite translation export --from runs/translation/<run>      # -> <run>/export/ (checked against Keras)

    import tensorflow as tf, tensorflow_text  # tensorflow_text registers the sentencepiece ops
    nmt = tf.saved_model.load("runs/translation/<run>/export")
    out = nmt.signatures["serving_default"](sentences=tf.constant(["Open the file"]))
    out["translations"], out["scores"], out["attention"], out["source_tokens"], out["target_tokens"]
    nmt.signatures["greedy"](sentences=...)                       # one beam: faster

The sentencepiece models travel inside the SavedModel (tensorflow-text's `SentencepieceTokenizer`,
the same normalization as the Python tokenizer used in training). Inputs: an empty string
translates to ""; characters never seen in training become <unk> pieces (the model still
translates the rest; <unk> is never generated); an input longer than `max_input_tokens` pieces
fails the call with an error that says so (split the text into sentences).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from dlsuite.apps.app import ExportProbe
from dlsuite.apps.translation import data, decode
from dlsuite.apps.translation.inference import translate_ids
from dlsuite.shared.export import save_module


def _pieces(model_file: Path) -> tf.Tensor:
    return tf.constant(data.SubwordVocabulary(model_file).tokens)


class TranslatorModule(tf.Module):
    def __init__(self, model, run_dir: Path, config):
        super().__init__()
        import tensorflow_text as tf_text

        self.model = model
        self.source_tokenizer = tf_text.SentencepieceTokenizer(model=(run_dir / "source.model").read_bytes(), out_type=tf.int32)
        self.target_tokenizer = tf_text.SentencepieceTokenizer(model=(run_dir / "target.model").read_bytes(), out_type=tf.int32)
        self.source_pieces = _pieces(run_dir / "source.model")
        self.target_pieces = _pieces(run_dir / "target.model")
        self.settings = (config.length_penalty, config.max_length_ratio)
        self.beam_width = config.beam_width
        self.max_input_tokens = config.max_input_tokens

    def _translate(self, sentences, beam_width: int):
        ids = self.source_tokenizer.tokenize(sentences)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        check = tf.debugging.assert_less_equal(
            lengths, self.max_input_tokens,
            message=f"an input sentence has more than max_input_tokens={self.max_input_tokens} subword tokens; "
                    "split the text into sentences")
        with tf.control_dependencies([check]):
            source = ids.to_tensor(data.PAD_ID)
        source = tf.pad(source, [[0, 0], [0, tf.maximum(1 - tf.shape(source)[1], 0)]])  # at least one column
        out = decode.beam_search(self.model, source, beam_width, *self.settings)
        words = tf.RaggedTensor.from_tensor(out["tokens"], lengths=tf.maximum(out["lengths"] - 1, 0))  # drop </s>
        translations = tf.where(lengths > 0, self.target_tokenizer.detokenize(words), "")
        target_tokens = tf.gather(self.target_pieces, out["tokens"])
        return {
            "translations": translations, "scores": tf.where(lengths > 0, out["scores"], 0.0), "attention": out["attention"],
            "source_tokens": tf.where(source != data.PAD_ID, tf.gather(self.source_pieces, source), ""),
            "target_tokens": tf.where(out["tokens"] != data.PAD_ID, target_tokens, ""),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def serving_default(self, sentences):
        return self._translate(sentences, self.beam_width)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def greedy(self, sentences):
        return self._translate(sentences, 1)


def export_serving_model(model, run_dir: Path, config, export_dir: str | Path) -> Path:
    """Writes the SavedModel of a run's model with its sentencepiece models and the config's decoding."""
    module = TranslatorModule(model, run_dir, config)
    return save_module(module, export_dir, {"serving_default": module.serving_default, "greedy": module.greedy})


def probe(model, vocab, config, sentences: list[str]) -> ExportProbe:
    """The export's check: sentences, and the Keras model's beam-search translations and scores
    (tokenized in Python; the SavedModel tokenizes, searches and detokenizes in its graph)."""
    results = translate_ids(model, vocab.encode_source(sentences), config, config.beam_width)
    return ExportProbe(inputs={"sentences": np.array(sentences, dtype=object)},
                       expected={"translations": np.array([vocab.decode_target(r["tokens"]) for r in results], dtype=object),
                                 "scores": np.array([r["score"] for r in results], np.float32)},
                       tolerance=1e-4, imports=("tensorflow_text",))
