"""Training steps of the language app: corpus and vocabulary, the n-grams, fitting the neural LM.

    dlsuite language train                       # apps/language/app.py tells the story with these steps
"""

from __future__ import annotations

import time
from pathlib import Path

from dlsuite.apps.language import data, inference, ngrams
from dlsuite.shared.layers.vocabulary_outputs import RankingSoftmax
from dlsuite.shared.runs import atomic_write_json
from dlsuite.shared.training import fit_model, save_model_atomic


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
    """Fits the neural LM on length-bucketed sentences (the model computes its own loss); a ranking
    output is then calibrated on the validation split."""
    train_ds = data.sentence_dataset(splits["train"], batch, config.max_length, shuffle=True, seed=config.seed)
    valid_ds = data.sentence_dataset(splits["valid"], batch, config.max_length, shuffle=False)
    figures = fit_model(model, config, train_ds, valid_ds, run_dir)
    if isinstance(model.vocabulary_output, RankingSoftmax):
        figures |= calibrate_ranking(model, splits["valid"], run_dir)
    return figures


def calibrate_ranking(model, sentences, run_dir: Path) -> dict:
    """Fits the ranking output's P(w | h) = softmax(beta a + gamma log unigram) on `sentences`
    (the hinge of eq. 12.19 gives scores without a probability scale: RankingSoftmax) and saves
    model.keras again, with the two numbers among its weights."""
    hidden, targets = inference.hidden_states(model, sentences)
    calibration = model.vocabulary_output.calibrate(hidden, targets)
    save_model_atomic(model, run_dir / "model.keras")
    return {"ranking_calibration": calibration}
