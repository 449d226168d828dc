"""Speech: training time per epoch of the earlier batching against today's, as ratios in one run.

    .venv/bin/python benchmarks/speech_bucketing.py [--epochs 1] [--extra asterisk:fr,asterisk:it]

The quick() corpus's training split, and the same plus --extra's human prompts (up to 20 s; the
mix where quantile buckets pad most). For each corpus and bucketing, a fresh quick-size model
(same seed) trains --epochs epochs on the batches `train.fit` gets (`data.make_dataset`); the
rows alternate so the shared machine's load drifts over both alike. Reported: frames computed
over real frames (padding), batches, seconds per epoch and the ratio to the first row. Rows:
"before": 6 length-quantile buckets (`pipelines.batching.bucket_boundaries`) and labels padded
to the corpus's longest transcript, as the pipeline was; "quantile": the same buckets, labels
padded per batch; "bounded" (today's): `padding_bounded_boundaries` (max 1.15x within a bucket,
at least one batch per bucket), labels per batch.
Results: benchmarks/results/speech_bucketing.{md,json}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dlsuite.apps.speech import data  # noqa: E402
from dlsuite.apps.speech.config import quick  # noqa: E402
from dlsuite.apps.speech.model import build_speech_model  # noqa: E402
from dlsuite.apps.speech.transcripts import ALPHABET  # noqa: E402
from dlsuite.pipelines import batching  # noqa: E402
from dlsuite.shared.optim import make_optimizer  # noqa: E402


def quantiles(lengths, min_bucket):
    return batching.bucket_boundaries(lengths)


RULES = {"before": quantiles, "quantile": quantiles, "bounded": batching.padding_bounded_boundaries}


def dataset(examples: data.Examples, batch_size: int, rule: str):
    """make_dataset's shuffled training batches with the bucket edges of `rule` ("before": and the
    labels padded to the corpus's longest)."""
    original = data.padding_bounded_boundaries
    data.padding_bounded_boundaries = RULES[rule]
    try:
        ds = data.make_dataset(examples, batch_size, shuffle=True, seed=0)
    finally:
        data.padding_bounded_boundaries = original
    if rule != "before":
        return ds
    longest = max(len(y) for y in examples.labels)

    def pad_labels(inputs, targets):
        labels = targets["labels"]
        return inputs, {**targets, "labels": tf.pad(labels, [[0, 0], [0, longest - tf.shape(labels)[1]]])}
    return ds.map(pad_labels).apply(tf.data.experimental.assert_cardinality(int(ds.cardinality())))


def padding(ds) -> tuple[float, int]:
    """Frames in the padded batches over real frames, and the number of batches."""
    padded = real = batches = 0
    for inputs, _ in ds:
        padded += int(np.prod(inputs["features"].shape[:2]))
        real += int(inputs["lengths"].numpy().sum())
        batches += 1
    return padded / real, batches


def epoch_seconds(config, examples: data.Examples, ds, epochs: int) -> float:
    model = build_speech_model(config, examples.features[0].shape[1], len(ALPHABET))
    model.compile(optimizer=make_optimizer(config, total_steps=epochs * int(ds.cardinality())))
    model.fit(ds.take(1), epochs=1, verbose=0)  # trace the step once, outside the timing
    start = time.perf_counter()
    model.fit(ds, epochs=epochs, verbose=0)
    return (time.perf_counter() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--extra", default="asterisk:fr,asterisk:it", help="extra_train_data for the mixed corpus")
    args = parser.parse_args()
    base = quick()
    rows, lines = [], ["| corpus | batching | padded / real frames | batches | s per epoch | vs before |",
                       "|---|---|---|---|---|---|"]
    for extra in ((), tuple(args.extra.split(","))):
        config = dataclasses.replace(base, extra_train_data=extra)
        utterances = data.load_splits(config).train + (data.extra_train_utterances(config) if extra else [])
        examples = data.examples(utterances, config, "train")
        corpus = "synthetic" + (" + " + "+".join(extra) if extra else "")
        figures = {}
        for rule in RULES:
            ds = dataset(examples, config.batch_size, rule)
            ratio, batches = padding(ds)
            figures[rule] = {"padding": ratio, "batches": batches, "seconds": epoch_seconds(config, examples, ds, args.epochs)}
        for rule, f in figures.items():
            speedup = figures["before"]["seconds"] / f["seconds"]
            rows.append({"corpus": corpus, "bucketing": rule, "utterances": len(examples), **f})
            lines.append(f"| {corpus} ({len(examples)} utterances) | {rule} | {f['padding']:.2f} | {f['batches']} | "
                         f"{f['seconds']:.0f} | {speedup:.2f}x faster |")
    print("\n".join(lines))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "speech_bucketing.md").write_text("\n".join(lines) + "\n")
    (out / "speech_bucketing.json").write_text(json.dumps({"epochs": args.epochs, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
