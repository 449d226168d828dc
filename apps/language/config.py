"""Language app configuration: one dataclass, a quick preset, validation.

    dlsuite language train --quick model=mlp output=hierarchical_classes
    dlsuite language train corpus=text:my_corpus/ tokenizer=bpe subword_vocab_size=8000
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from dlsuite.shared.config import option, require
from dlsuite.shared.layers.vocabulary_outputs import OutputKind
from dlsuite.shared.ngram import Smoothing
from dlsuite.shared.training import TrainConfig


@dataclasses.dataclass(frozen=True)
class LanguageConfig(TrainConfig):
    # Settings a trained model fixes: `--from` commands refuse to change them.
    MODEL_FIELDS: ClassVar[tuple[str, ...]] = (
        "tokenizer", "vocab_min_count", "vocab_max_size", "subword_vocab_size", "model", "window", "embedding_dim",
        "hidden_dim", "num_layers", "dropout", "output", "shortlist_size", "num_classes", "num_samples",
        "proposal_power", "ranking_margin", "ranking_loss")
    # === Data ===
    corpus: str = option("kjv", "kjv | text:<file or folder> | tfds:<name> (e.g. tfds:lm1b)")
    text_format: Literal["lines", "running"] = option("lines", "text corpora: one sentence per line, or running text split at . ! ?")
    tfds_data_dir: str = option("", "TFDS data_dir (empty: TFDS default)")
    text_key: str = option("text", "TFDS: the feature that holds the text")
    max_sentences: int = option(0, "TFDS: read at most this many sentences per split (0 = all)")
    tokenizer: Literal["word", "unigram", "bpe"] = option("word", "words, or sentencepiece subwords")
    vocab_min_count: int = option(1, "word vocabulary: words seen fewer times become <unk>")
    vocab_max_size: int = option(0, "word vocabulary: keep at most this many entries (0 = all)")
    subword_vocab_size: int = option(4000, "subword vocabulary size (unigram | bpe)")
    max_length: int = option(128, "neural models: sentences are cut to this many tokens")
    # === n-gram model ===
    ngram_order: int = option(5, "n-gram order N (1..10)")
    ngram_smoothing: Smoothing = option("kneser_ney", "n-gram smoothing")
    additive_k: float = option(0.01, "additive smoothing pseudo-count k")
    class_ngram_classes: int = option(0, "also build a class-based n-gram with this many word classes (0 = off)")
    # === Neural model ===
    model: Literal["lstm", "mlp"] = option("lstm", "neural LM body (mlp: Bengio-style fixed window)")
    window: int = option(4, "mlp: previous words the network sees (n-1)")
    # The default model: the size and dropout that took the KJV mixture to 0.68x the KN 5-gram
    # (LSTM 512 alone 51.4, against 55.2 for LSTM 256 with dropout 0.2; BENCHMARKS.md, issue 15).
    embedding_dim: int = option(256, "word embedding size")
    hidden_dim: int = option(512, "LSTM units / MLP hidden units")
    num_layers: int = option(1, "stacked LSTM / MLP hidden layers")
    dropout: float = option(0.3, "dropout on embeddings and hidden states")
    output: OutputKind = option("sampled", "large-vocabulary output layer (sampled: 1.03x full softmax's perplexity at a quarter of its time, BENCHMARKS.md)")
    shortlist_size: int = option(2000, "shortlist: words the network models; the n-gram covers the rest")
    num_classes: int = option(0, "hierarchical_classes: classes of the tree (0 = the layer's default, 4 sqrt|V|)")
    num_samples: int = option(256, "sampled | nce | ranking: negative samples per step")
    proposal_power: float = option(0.75, "sampled | nce | ranking: proposal q ∝ count ** power")
    ranking_loss: Literal["hinge", "squared_hinge", "logistic"] = option("hinge", "ranking: the pairwise loss, the hinge of eq. 12.19, its square, or its smooth form softplus(a_i - a_y) (the hinge was best on the KJV, BENCHMARKS.md)")
    ranking_margin: float = option(3.0, "ranking: the score gap the hinge asks of the target (eq. 12.19; 3 was best on the KJV, BENCHMARKS.md)")
    # === Evaluation, generation ===
    mixture: bool = option(True, "evaluate the neural + n-gram mixture (weight tuned on validation)")
    temperature: float = option(1.0, "generation: softmax temperature")
    top_k: int = option(40, "generation: sample among the k most likely tokens (0 = all)")
    max_words: int = option(30, "generation: stop after this many tokens")

    def validate(self) -> None:
        super().validate()
        source = self.corpus.split(":", 1)[0]
        checks = [
            (source in ("kjv", "text", "tfds"), f"corpus must be kjv, text:<path> or tfds:<name>, got '{self.corpus}'"),
            (source == "kjv" or ":" in self.corpus, f"corpus '{self.corpus}' needs a path or name after ':'"),
            (self.vocab_min_count >= 1, "vocab_min_count must be >= 1"),
            (self.vocab_max_size == 0 or self.vocab_max_size >= 6, "vocab_max_size must be 0 or >= 6"),
            (self.subword_vocab_size >= 16, "subword_vocab_size must be >= 16"),
            (1 <= self.ngram_order <= 10, "ngram_order must be between 1 and 10"),
            (self.additive_k > 0, "additive_k must be > 0"),
            (self.class_ngram_classes == 0 or self.class_ngram_classes >= 2, "class_ngram_classes must be 0 or >= 2"),
            (self.window >= 1, "window must be >= 1"),
            (min(self.embedding_dim, self.hidden_dim, self.num_layers) >= 1, "embedding_dim, hidden_dim, num_layers must be >= 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.shortlist_size >= 2, "shortlist_size must be >= 2"),
            (self.num_classes >= 0, "num_classes must be >= 0 (0 = the layer's default)"),
            (self.num_samples >= 1, "num_samples must be >= 1"),
            (self.ranking_margin > 0, "ranking_margin must be > 0"),
            (self.max_length >= 2, "max_length must be >= 2"),
            (self.temperature > 0, "temperature must be > 0"),
            (self.top_k >= 0 and self.max_words >= 1, "top_k must be >= 0 and max_words >= 1"),
        ]
        require(checks)


def quick() -> LanguageConfig:
    """The main job's setting: KJV, a 1-layer LSTM trained with sampled softmax (2.4x faster per
    step than full softmax here), about 6 minutes on 2 CPU cores."""
    return dataclasses.replace(LanguageConfig(), epochs=3, batch_size=64, learning_rate=3e-3,
                               embedding_dim=128, hidden_dim=256, dropout=0.2, vocab_min_count=2, output="sampled")

