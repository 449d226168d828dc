"""Training steps of the language app: corpus and vocabulary, the n-grams, fitting the neural LM.

    dlsuite language train                       # apps/language/app.py tells the story with these steps
"""

from __future__ import annotations

import time
from pathlib import Path

from dlsuite.apps.language import data, ngrams
from dlsuite.shared.runs import atomic_write_json
from dlsuite.shared.training import fit_model


def prepare(config, run_dir: Path, vocab=None):
    """Corpus and vocabulary (built, or the given one kept); returns (vocab, ids per split, corpus)."""
    corpus = data.load_text(config)
    atomic_write_json(run_dir / "corpus.json", corpus.summary())
    if vocab is None:
        vocab = data.build_vocabulary(config, corpus, run_dir)
        data.save_subword_counts(vocab, run_dir)
    splits = {name: vocab.encode(getattr(corpus, name)) for name in ("train", "valid", "test")}
    return vocab, splits, corpus


def build_ngrams(config, vocab, splits, run_dir: Path) -> tuple[dict, tuple]:
    """The config's n-gram (saved as ngram.arpa), the class n-gram and the trigram baseline it asks
    for; returns (figures, (ngram, class_ngram or None, trigram or None))."""
    start = time.perf_counter()
    ngram = ngrams.build_and_save(config, vocab, splits["train"], run_dir)
    figures = {"vocabulary_size": len(vocab), "ngram_seconds": round(time.perf_counter() - start, 2), **ngram.size()}
    class_ngram = ngrams.build_class_model(config, vocab, splits, run_dir) if config.class_ngram_classes else None
    trigram = ngrams.build_trigram(config, vocab, splits["train"]) if config.ngram_order > 3 else None
    return figures, (ngram, class_ngram, trigram)


def fit(model, config, splits, batch: int, run_dir: Path) -> dict:
    """Fits the neural LM on length-bucketed sentences (the model computes its own loss)."""
    train_ds = data.sentence_dataset(splits["train"], batch, config.max_length, shuffle=True, seed=config.seed)
    valid_ds = data.sentence_dataset(splits["valid"], batch, config.max_length, shuffle=False)
    return fit_model(model, config, train_ds, valid_ds, run_dir)
