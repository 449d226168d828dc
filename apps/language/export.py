"""SavedModel export: raw sentences in, per-token log-probabilities and the next-token distribution out.

    dlsuite language export --from runs/language/<run>      # -> <run>/export/

    import tensorflow as tf   # plus `import tensorflow_text` for subword (sentencepiece) runs
    lm = tf.saved_model.load("runs/language/<run>/export")
    out = lm.signatures["serving_default"](sentences=tf.constant(["In the beginning God created"]))
    out["token_log_probs"], out["sentence_log_prob"], out["next_token_log_probs"], out["tokens"]

Normalization and tokenization run in the graph (the same ops as training: pipelines/text.py's
`normalize_in_graph`, then a word lookup table or tensorflow-text's sentencepiece tokenizer).
Shortlist models: the graph has no n-gram, so words outside the shortlist get
log P(tail | C) + log of their unigram share of the tail; `evaluate`, with the n-gram, is exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from dlsuite.apps.commands import run_folder
from dlsuite.apps.language import data
from dlsuite.apps.language.train import load_model
from dlsuite.pipelines.text import normalize_in_graph
from dlsuite.shared.export import save_module


class LanguageModelModule(tf.Module):
    def __init__(self, model, vocab):
        super().__init__()
        self.model = model
        self.tokens = tf.constant(vocab.tokens)
        self.sentencepiece = None
        if isinstance(vocab, data.SubwordVocabulary):
            import tensorflow_text as tf_text

            self.sentencepiece = tf_text.SentencepieceTokenizer(model=Path(vocab.model_file).read_bytes(), out_type=tf.int32)
        else:
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(vocab.tokens[4:]), tf.range(4, len(vocab), dtype=tf.int32)),
                default_value=1)  # unknown words -> <unk>
        self.shortlist_size = getattr(model.vocabulary_output, "shortlist_size", 0)
        if self.shortlist_size:
            counts = np.asarray(vocab.counts, np.float64)[self.shortlist_size :] + 0.5
            tail = np.zeros(len(vocab), np.float32)
            tail[self.shortlist_size :] = np.log(counts / counts.sum())
            self.tail_unigram = tf.constant(tail)

    def _ids(self, sentences):
        text = normalize_in_graph(sentences)
        if self.sentencepiece is not None:
            return self.sentencepiece.tokenize(text)
        return tf.ragged.map_flat_values(self.table.lookup, tf.strings.split(text))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def score(self, sentences):
        ids = self._ids(sentences)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        batch = tf.shape(lengths)[0]
        bos = tf.fill([batch, 1], 2)
        inputs = tf.concat([bos, ids], axis=1).to_tensor(0)
        targets = tf.concat([ids, tf.fill([batch, 1], 3)], axis=1).to_tensor(0)
        hidden = self.model(inputs)
        output = self.model.vocabulary_output
        if self.shortlist_size:
            log_probs = output.log_prob(hidden, targets, tail_log_prob=tf.gather(self.tail_unigram, targets))
        else:
            log_probs = output.log_prob(hidden, targets)
        mask = tf.sequence_mask(lengths + 1, tf.shape(targets)[1])
        log_probs = tf.where(mask, tf.cast(log_probs, tf.float32), 0.0)
        last = tf.gather(hidden, lengths, axis=1, batch_dims=1)  # the state after the last word
        return {
            "tokens": tf.where(mask, tf.gather(self.tokens, targets), ""),
            "token_log_probs": log_probs,
            "sentence_log_prob": tf.reduce_sum(log_probs, axis=1),
            "next_token_log_probs": tf.cast(output.log_probs(last), tf.float32),
        }

    @tf.function(input_signature=[])
    def vocabulary(self):
        return self.tokens


def export_run(source: str | Path, export_dir: str | Path | None = None) -> Path:
    source_dir = run_folder(source)
    module = LanguageModelModule(load_model(source), data.load_vocabulary(source_dir))
    export_dir = Path(export_dir) if export_dir else source_dir / "export"
    return save_module(module, export_dir, {"serving_default": module.score, "vocabulary": module.vocabulary})


def max_export_gap(run_dir: str | Path, export_dir: str | Path, sentences: list[str]) -> float:
    """max |log p_export - log p_keras| over the tokens of `sentences` (same tokens, same order)."""
    from dlsuite.apps.language import ngrams
    from dlsuite.apps.language.train import neural_token_log_probs
    from dlsuite.pipelines.text import normalize

    run_dir = Path(run_dir)
    vocab, model = data.load_vocabulary(run_dir), load_model(run_dir)
    if getattr(model.vocabulary_output, "shortlist_size", 0):
        raise ValueError("shortlist exports use a unigram tail (no n-gram in the graph); compare them with score().")
    ids = vocab.encode([normalize(s) for s in sentences])
    expected = neural_token_log_probs(model, ids, ngrams.load(run_dir, vocab.tokens))
    out = tf.saved_model.load(str(export_dir)).signatures["serving_default"](sentences=tf.constant(sentences))
    got = np.concatenate([row[: len(s) + 1] for row, s in zip(out["token_log_probs"].numpy(), ids, strict=False)])
    return float(np.max(np.abs(got - expected)))
