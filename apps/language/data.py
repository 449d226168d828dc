"""Corpus -> vocabulary -> id sentences -> tf.data batches for the neural models.

Every model, n-gram or neural, sees the same id sentences. The neural models read one sentence
per example: inputs `<s> w1 .. wn`, targets `w1 .. wn </s>`, padded with <pad> (PAD_ID, weight 0)
and batched by similar length so little compute goes to padding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from dlsuite.pipelines.batching import bucket_by_length
from dlsuite.pipelines.text import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SubwordVocabulary,
    TextCorpus,
    WordVocabulary,
    load_corpus,
)


def build_vocabulary(config, corpus: TextCorpus, run_dir: Path):
    """Word or subword vocabulary from the training split, saved into the run folder."""
    if config.tokenizer == "word":
        vocab = WordVocabulary.build(corpus.train, config.vocab_min_count, config.vocab_max_size)
        vocab.save(run_dir / "vocabulary.tsv")
        return vocab
    vocab = SubwordVocabulary.train(corpus.train, run_dir / "subwords.model", config.subword_vocab_size,
                                    config.tokenizer)
    vocab.counts = vocab.count(corpus.train)
    return vocab


VOCABULARY_FILES = ("vocabulary.tsv", "subwords.model", "subword_counts.npy")  # whichever a run has


def load_vocabulary(run_dir: Path):
    """The vocabulary a run was trained with (a fine-tuned or evaluated model must keep its ids)."""
    if (run_dir / "vocabulary.tsv").is_file():
        return WordVocabulary.load(run_dir / "vocabulary.tsv")
    if (run_dir / "subwords.model").is_file():
        counts = np.load(run_dir / "subword_counts.npy") if (run_dir / "subword_counts.npy").is_file() else None
        return SubwordVocabulary(run_dir / "subwords.model", counts)
    raise FileNotFoundError(f"{run_dir} holds no vocabulary.tsv or subwords.model; is it a language run folder?")


def save_subword_counts(vocab, run_dir: Path) -> None:
    if isinstance(vocab, SubwordVocabulary):
        np.save(run_dir / "subword_counts.npy", vocab.counts)


def load_text(config) -> TextCorpus:
    return load_corpus(config.corpus, config.text_format, config.tfds_data_dir, config.text_key, config.max_sentences)


def shifted(sentence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A sentence's model inputs `<s> w1 .. wn` and targets `w1 .. wn </s>`."""
    return np.concatenate([[BOS_ID], sentence]), np.concatenate([sentence, [EOS_ID]])


def sentence_dataset(sentences: list[np.ndarray], batch_size: int, max_length: int, shuffle: bool, seed: int = 0):
    """(inputs, targets, weights) batches: inputs `<s> w..`, targets `w.. </s>`, weight 0 on padding."""
    cut = [np.asarray(s[: max_length - 1], np.int32) for s in sentences]

    def examples():
        for s in cut:
            yield shifted(s)

    spec = tf.TensorSpec([None], tf.int32)
    ds = tf.data.Dataset.from_generator(examples, output_signature=(spec, spec)).cache()
    if shuffle:
        ds = ds.shuffle(len(cut), seed=seed, reshuffle_each_iteration=True)
    lengths = [len(s) + 1 for s in cut]
    bounds = sorted({b for b in (8, 16, 24, 32, 48, 64, 96, 128, 192, 256) if b < max(lengths)})
    ds = bucket_by_length(ds, lambda x, y: tf.shape(x)[0], lengths, batch_size, bounds or [max(lengths)],
                          padding_values=(PAD_ID, PAD_ID))
    ds = ds.map(lambda x, y: (x, y, tf.cast(y != PAD_ID, tf.float32)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def ordered_batches(sentences: list[np.ndarray], batch_size: int):
    """Whole sentences in corpus order (no cut, no bucketing): scores align with the n-gram's."""
    for start in range(0, len(sentences), batch_size):
        chunk = [np.asarray(s, np.int32) for s in sentences[start : start + batch_size]]
        width = max(len(s) for s in chunk) + 1
        inputs = np.full((len(chunk), width), PAD_ID, np.int32)
        targets = np.full((len(chunk), width), PAD_ID, np.int32)
        for row, s in enumerate(chunk):
            inputs[row, : len(s) + 1], targets[row, : len(s) + 1] = shifted(s)
        yield inputs, targets
