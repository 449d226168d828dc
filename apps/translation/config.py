"""Translation app configuration: one dataclass, a quick preset, validation.

    dlsuite translation train --quick epochs=6 attention=false
    dlsuite translation train target_lang=fr                  # any language with gettext catalogs
    dlsuite translation train data=table:my_pairs.tsv shared_vocabulary=false
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from dlsuite.shared.config import option, require
from dlsuite.shared.training import TrainConfig


@dataclasses.dataclass(frozen=True)
class TranslationConfig(TrainConfig):
    # Settings a trained model fixes: `--from` commands refuse to change them.
    MODEL_FIELDS: ClassVar[tuple[str, ...]] = (
        "shared_vocabulary", "subword_model", "vocab_size", "attention", "rnn", "embedding_dim", "encoder_units",
        "decoder_units", "attention_units", "dropout")
    epochs: int = option(6, "passes over the training data")
    learning_rate: float = option(2e-3, "peak learning rate")
    # Recurrent encoder-decoders have rare gradient spikes; clip them by default.
    global_clipnorm: float = option(1.0, "clip all gradients jointly to this norm (0 = off)")
    # === Data ===
    data: str = option("gettext", "gettext (embedded: Debian UI messages) | table:<tsv/csv> | files:<src>,<tgt> | folder:<dir> | tfds:<name>")
    cache_dir: str = option("data_cache/translation", "where the gettext corpus (and its .deb files) is kept between runs")
    source_lang: str = option("en", "source language code (gettext: always en)")
    target_lang: str = option("de", "target language code (gettext: any language with catalogs: de, fr, pt_BR, ...)")
    tfds_data_dir: str = option("", "TFDS data_dir (empty: TFDS default)")
    max_train_pairs: int = option(0, "use at most this many training pairs (0 = all)")
    max_eval_pairs: int = option(0, "score at most this many valid/test pairs (0 = all)")
    max_tokens: int = option(64, "training pairs with more subword tokens on either side are skipped (with a count)")
    # === Vocabulary ===
    shared_vocabulary: bool = option(True, "one sentencepiece model for both languages (else one per language)")
    subword_model: Literal["unigram", "bpe"] = option("unigram", "sentencepiece model type")
    vocab_size: int = option(8000, "sentencepiece pieces per model")
    # === Model ===
    attention: bool = option(True, "Bahdanau attention (false: the fixed-size context baseline)")
    compare_baseline: bool = option(False, "also train the model without attention and report both by source length")
    rnn: Literal["gru", "lstm"] = option("gru", "recurrent layer type of encoder and decoder")
    embedding_dim: int = option(128, "token embedding size")
    encoder_units: int = option(128, "units per direction of the bidirectional encoder")
    decoder_units: int = option(192, "decoder RNN units")
    attention_units: int = option(128, "size of the additive attention's hidden layer")
    dropout: float = option(0.2, "dropout on embeddings and the readout")
    # === Decoding ===
    beam_width: int = option(5, "beam search width (1 = greedy)")
    length_penalty: float = option(0.6, "length normalization exponent alpha in ((5 + |y|) / 6)^alpha (0 = none)")
    max_length_ratio: float = option(2.0, "longest output = ratio x source tokens + 10")
    max_input_tokens: int = option(256, "longer inputs are refused with an error (split the text into sentences)")

    def validate(self) -> None:
        super().validate()
        kind = self.data.split(":", 1)[0]
        checks = [
            (kind in ("gettext", "table", "files", "folder", "tfds"),
             f"data must be gettext, table:<file>, files:<src>,<tgt>, folder:<dir> or tfds:<name>, got '{self.data}'"),
            (kind == "gettext" or ":" in self.data, f"data '{self.data}' needs a path or name after ':'"),
            (min(self.max_train_pairs, self.max_eval_pairs) >= 0, "max_train_pairs and max_eval_pairs must be >= 0"),
            (self.max_tokens >= 4, "max_tokens must be >= 4"),
            (self.vocab_size >= 32, "vocab_size must be >= 32"),
            (min(self.embedding_dim, self.encoder_units, self.decoder_units, self.attention_units) >= 1,
             "embedding_dim, encoder_units, decoder_units, attention_units must be >= 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.beam_width >= 1, "beam_width must be >= 1"),
            (self.length_penalty >= 0, "length_penalty must be >= 0"),
            (self.max_length_ratio > 0, "max_length_ratio must be > 0"),
            (self.max_input_tokens >= 1, "max_input_tokens must be >= 1"),
        ]
        require(checks)


def quick() -> TranslationConfig:
    """The main job's setting: 20k training pairs, a smaller vocabulary and model, 4 epochs,
    1,000 test pairs; a few minutes on 2 CPU cores."""
    return dataclasses.replace(TranslationConfig(), max_train_pairs=20000, max_eval_pairs=1000, vocab_size=4000,
                               embedding_dim=96, encoder_units=128, decoder_units=192, attention_units=96,
                               epochs=4, beam_width=4)

