"""SavedModel export: raw sentences in, per-token log-probabilities and the next-token distribution out.

    dlsuite language export --from runs/language/<run>      # -> <run>/export/ (checked against Keras)

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

from dlsuite.apps.app import ExportProbe
from dlsuite.apps.language import data
from dlsuite.pipelines.text import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, normalize_in_graph
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
                tf.lookup.KeyValueTensorInitializer(tf.constant(vocab.tokens[len(SPECIALS):]), tf.range(len(SPECIALS), len(vocab), dtype=tf.int32)),
                default_value=UNK_ID)  # unknown words -> <unk>
        self.shortlist_size = getattr(model.vocabulary_output, "shortlist_size", 0)
        if self.shortlist_size:
            self.tail_unigram = tf.constant(tail_unigram_log_probs(vocab, self.shortlist_size))

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
        bos = tf.fill([batch, 1], BOS_ID)
        inputs = tf.concat([bos, ids], axis=1).to_tensor(PAD_ID)
        targets = tf.concat([ids, tf.fill([batch, 1], EOS_ID)], axis=1).to_tensor(PAD_ID)
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


def tail_unigram_log_probs(vocab, shortlist_size: int) -> np.ndarray:
    """log P(w | w in tail) from unigram counts (add-0.5), 0 for shortlist words: the graph's
    stand-in for the n-gram's tail distribution (eq. 12.10)."""
    counts = np.asarray(vocab.counts, np.float64)[shortlist_size:] + 0.5
    tail = np.zeros(len(vocab), np.float32)
    tail[shortlist_size:] = np.log(counts / counts.sum())
    return tail


def export_serving_model(model, vocab, export_dir: str | Path) -> Path:
    module = LanguageModelModule(model, vocab)
    return save_module(module, export_dir, {"serving_default": module.score, "vocabulary": module.vocabulary})


def probe(model, vocab, sentences: list[str]) -> ExportProbe:
    """The export's check: sentences, and the per-token log-probabilities the Keras model gives them
    after Python-side normalization and tokenization (the SavedModel does both in its graph)."""
    from dlsuite.pipelines.text import normalize

    ids = vocab.encode([normalize(s) for s in sentences])
    inputs, targets = next(data.ordered_batches(ids, len(ids)))
    hidden, output = model(inputs), model.vocabulary_output
    shortlist_size = getattr(output, "shortlist_size", 0)
    if shortlist_size:
        tail = tail_unigram_log_probs(vocab, shortlist_size)[targets]
        log_probs = np.asarray(output.log_prob(hidden, targets, tail_log_prob=tail))
    else:
        log_probs = np.asarray(output.log_prob(hidden, targets))
    positions = np.arange(targets.shape[1])[None, :] <= np.array([len(s) for s in ids])[:, None]
    return ExportProbe(inputs={"sentences": np.array(sentences, dtype=object)},
                       expected={"token_log_probs": np.where(positions, log_probs, 0.0).astype(np.float32)},
                       tolerance=1e-4, imports=("tensorflow_text",) if isinstance(vocab, data.SubwordVocabulary) else ())
