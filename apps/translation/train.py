"""Training steps of the translation app: teacher-forced fitting, one model trained and scored in
its folder, and the fixed-context baseline beside the attention model.

    dlsuite translation train                   # apps/translation/app.py tells the story with these steps
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras

from dlsuite.apps.translation import data, inference, report
from dlsuite.apps.translation.config import TranslationConfig
from dlsuite.apps.translation.model import build_translator
from dlsuite.pipelines.text import PAD_ID
from dlsuite.shared.runs import write_metrics
from dlsuite.shared.training import fit_model, set_up


def fit(model, config: TranslationConfig, train: data.EncodedPairs, valid: data.EncodedPairs, batch: int,
        run_dir: Path) -> dict:
    """Teacher-forced training in the run folder; returns time, epochs and target tokens/s."""
    # ignore_class: padded target positions add nothing to the loss (per-token cross-entropy).
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID)
    figures = fit_model(model, config, data.make_dataset(train, batch, shuffle=True, seed=config.seed),
                        data.make_dataset(valid, batch), run_dir, loss=loss)
    target_tokens = sum(len(t) + 1 for t in train.targets) * figures["epochs_run"]
    return figures | {"train_target_tokens_per_second": round(target_tokens / figures["train_seconds"], 1)}


def fit_and_score(model, config: TranslationConfig, corpus, vocab, batch: int, run_dir: Path) -> tuple[dict, dict]:
    """Trains a built model on the corpus's pairs in `run_dir` (its own checkpoints, TensorBoard
    logs, plots) and scores it on the test pairs; returns (metrics, BLEU by source length)."""
    train = data.encode_pairs(vocab, corpus.train, config.max_tokens, "train")
    valid = data.encode_pairs(vocab, corpus.valid, config.max_tokens, "valid")
    metrics = fit(model, config, train, valid, batch, run_dir)
    scores, by_length = inference.evaluate_pairs(model, vocab, corpus.test, config, run_dir)
    return metrics | scores, by_length


def compare_with_baseline(config, corpus, vocab, run_dir: Path, by_length: dict) -> dict:
    """Trains the fixed-context model in <run>/baseline and plots both models' BLEU by source length."""
    baseline_dir = run_dir / "baseline"
    baseline_dir.mkdir(exist_ok=True)
    data.copy_vocabulary(run_dir, baseline_dir)
    baseline = dataclasses.replace(config, attention=False)
    strategy, batch = set_up(baseline)
    with strategy.scope():
        model = build_translator(baseline, vocab)
    metrics, baseline_by_length = fit_and_score(model, baseline, corpus, vocab, batch, baseline_dir)
    write_metrics(baseline_dir, metrics)
    decoder = "beam" if "beam" in by_length else "greedy"
    both = {f"attention {decoder}": by_length[decoder], f"no attention {decoder}": baseline_by_length[decoder]}
    report.write_scores_table(run_dir / "test_bleu_by_length_vs_baseline.tsv", both)
    report.length_bucket_figure(both, run_dir, name="test_bleu_by_source_length_vs_baseline")
    return {f"baseline_{name}": value for name, value in metrics.items() if name.startswith("test_")}
