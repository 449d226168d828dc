"""Corpus -> vocabulary -> id sentences -> tf.data batches for the neural models.

Every model, n-gram or neural, sees the same id sentences. The neural models read one sentence
per example: inputs `<s> w1 .. wn`, targets `w1 .. wn </s>`, padded with <pad> (id 0, weight 0)
and batched by similar length so little compute goes to padding.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from dlsuite.pipelines.text import (
    SPECIALS,
    TextCorpus,
    WordVocabulary,
    load_corpus,
    train_sentencepiece,
)


@dataclasses.dataclass
class SubwordVocabulary:
    """A sentencepiece model with WordVocabulary's interface (tokens, counts, encode, decode)."""

    model_file: Path
    tokens: list[str]
    counts: np.ndarray

    @classmethod
    def load(cls, model_file: str | Path, counts: np.ndarray | None = None) -> SubwordVocabulary:
        import sentencepiece as spm

        processor = spm.SentencePieceProcessor(model_file=str(model_file))
        tokens = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        tokens[: len(SPECIALS)] = SPECIALS
        return cls(Path(model_file), tokens, np.zeros(len(tokens), np.int64) if counts is None else counts)

    @property
    def processor(self):
        import sentencepiece as spm

        if not hasattr(self, "_processor"):
            self._processor = spm.SentencePieceProcessor(model_file=str(self.model_file))
        return self._processor

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, sentences) -> list[np.ndarray]:
        return [np.array(ids, np.int32) for ids in self.processor.encode(list(sentences))]

    def decode(self, ids) -> str:
        return self.processor.decode([int(i) for i in ids if i > 3])


def build_vocabulary(config, corpus: TextCorpus, run_dir: Path):
    """Word or subword vocabulary from the training split, saved into the run folder."""
    if config.tokenizer == "word":
        vocab = WordVocabulary.build(corpus.train, config.vocab_min_count, config.vocab_max_size)
        vocab.save(run_dir / "vocabulary.tsv")
        return vocab
    model_file = train_sentencepiece(corpus.train, run_dir / "subwords", config.subword_vocab_size, config.tokenizer)
    vocab = SubwordVocabulary.load(model_file)
    vocab.counts = np.bincount(np.concatenate(vocab.encode(corpus.train)), minlength=len(vocab)).astype(np.int64)
    vocab.counts[3] = len(corpus.train)  # </s> ends every sentence
    return vocab


def load_vocabulary(run_dir: Path):
    """The vocabulary a run was trained with (a fine-tuned or evaluated model must keep its ids)."""
    if (run_dir / "vocabulary.tsv").is_file():
        return WordVocabulary.load(run_dir / "vocabulary.tsv")
    if (run_dir / "subwords.model").is_file():
        counts = np.load(run_dir / "subword_counts.npy") if (run_dir / "subword_counts.npy").is_file() else None
        return SubwordVocabulary.load(run_dir / "subwords.model", counts)
    raise FileNotFoundError(f"{run_dir} holds no vocabulary.tsv or subwords.model; is it a language run folder?")


def save_subword_counts(vocab, run_dir: Path) -> None:
    if isinstance(vocab, SubwordVocabulary):
        np.save(run_dir / "subword_counts.npy", vocab.counts)


def load_text(config) -> TextCorpus:
    return load_corpus(config.corpus, config.text_format, config.tfds_data_dir, config.text_key, config.max_sentences)


def sentence_dataset(sentences: list[np.ndarray], batch_size: int, max_length: int, shuffle: bool, seed: int = 0):
    """(inputs, targets, weights) batches: inputs `<s> w..`, targets `w.. </s>`, weight 0 on padding."""
    cut = [np.asarray(s[: max_length - 1], np.int32) for s in sentences]

    def examples():
        for s in cut:
            yield np.concatenate([[2], s]), np.concatenate([s, [3]])

    spec = tf.TensorSpec([None], tf.int32)
    ds = tf.data.Dataset.from_generator(examples, output_signature=(spec, spec)).cache()
    if shuffle:
        ds = ds.shuffle(len(cut), seed=seed, reshuffle_each_iteration=True)
    lengths = [len(s) + 1 for s in cut]
    bounds = sorted({b for b in (8, 16, 24, 32, 48, 64, 96, 128, 192, 256) if b < max(lengths)})
    ds = ds.bucket_by_sequence_length(
        lambda x, y: tf.shape(x)[0], bucket_boundaries=bounds or [max(lengths)],
        bucket_batch_sizes=[batch_size] * ((len(bounds) or 1) + 1), padding_values=(0, 0))
    ds = ds.map(lambda x, y: (x, y, tf.cast(y > 0, tf.float32)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def ordered_batches(sentences: list[np.ndarray], batch_size: int):
    """Whole sentences in corpus order (no cut, no bucketing): scores align with the n-gram's."""
    for start in range(0, len(sentences), batch_size):
        chunk = [np.asarray(s, np.int32) for s in sentences[start : start + batch_size]]
        width = max(len(s) for s in chunk) + 1
        inputs = np.zeros((len(chunk), width), np.int32)
        targets = np.zeros((len(chunk), width), np.int32)
        for row, s in enumerate(chunk):
            inputs[row, : len(s) + 1] = np.concatenate([[2], s])
            targets[row, : len(s) + 1] = np.concatenate([s, [3]])
        yield inputs, targets
