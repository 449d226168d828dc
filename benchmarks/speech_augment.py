"""Speech: throughput of the training input pipeline with and without waveform augmentation, as
ratios in one run.

    .venv/bin/python benchmarks/speech_augment.py [--utterances 400] [--batch-size 32]

Audio: the first --utterances training utterances of the quick() corpus (synthesized into
data_cache/speech once and reused). Each row is the fastest of 3 passes over them, after one that
traces the map and fills any cache, the rows' passes interleaved so the shared machine's load
drifts over all alike; the batches are those `train.fit` would get:
  * cached features: `data.make_dataset` (features computed once, as without augmentation);
  * waveforms, no augmentation: `data.make_augmented_dataset` with every probability 0, i.e. the
    cost of computing the features every epoch;
  * each step alone at probability 1, then the default config (all steps, their probabilities).
Prints a Markdown table and writes it to benchmarks/results/speech_augment.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dlsuite.apps.speech import augment, data  # noqa: E402
from dlsuite.apps.speech.config import SpeechConfig, quick  # noqa: E402

STEPS = ("speed", "noise", "reverb", "gain", "telephone")


def pass_seconds(datasets: dict, rounds: int = 3) -> dict:
    """Seconds of each dataset's fastest pass: one pass each to trace the map and fill any cache,
    then `rounds` rounds of one pass each, interleaved, so that the shared machine's load drifts
    over every row alike."""
    best = {}
    for round_ in range(rounds + 1):
        for name, ds in datasets.items():
            start = time.perf_counter()
            for _ in ds:
                pass
            if round_:
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    return best


def pipelines(examples: data.Examples, config: SpeechConfig, batch_size: int) -> dict:
    def augmented(augmentation):
        return data.make_augmented_dataset(
            examples,
            batch_size,
            augmentation,
            config.features,
            config.time_stride,
            seed=config.seed,
        )

    off = augment.Augmentation()
    rows = {
        "cached features (make_dataset)": data.make_dataset(examples, batch_size, shuffle=True),
        "waveforms, no augmentation (features every epoch)": augmented(off),
    }
    for step in STEPS:
        rows[f"{step} only (probability 1)"] = augmented(
            dataclasses.replace(off, **{f"{step}_probability": 1.0})
        )
    default = augment.Augmentation.from_config(SpeechConfig())
    probabilities = ", ".join(f"{s} {getattr(default, f'{s}_probability'):g}" for s in STEPS)
    rows[f"default config ({probabilities})"] = augmented(default)
    return rows


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    config = quick()
    splits = data.load_splits(config)
    examples = data.examples(splits.train[: args.utterances], config, "train", keep_waveforms=True)
    audio_seconds = sum(len(w) for w in examples.waveforms) / 16000
    seconds = pass_seconds(pipelines(examples, config, args.batch_size))
    rates = {name: len(examples) / value for name, value in seconds.items()}
    base = rates["cached features (make_dataset)"]
    lines = [
        f"Speech training input: {len(examples)} utterances, {audio_seconds:.0f} s of audio, batch "
        f"{args.batch_size}, {os.cpu_count()} CPU cores (fastest of 3 passes)",
        "",
        "| training batches | utterances/s | audio s per s | vs cached features |",
        "|---|---:|---:|---:|",
    ]
    per_utterance = audio_seconds / len(examples)
    lines += [
        f"| {name} | {rate:,.0f} | {rate * per_utterance:,.0f} | {rate / base:.3f}x |"
        for name, rate in rates.items()
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    (Path(__file__).parent / "results" / "speech_augment.md").write_text(table)


if __name__ == "__main__":
    main()
