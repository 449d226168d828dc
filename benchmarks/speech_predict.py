"""Batched speech `predict` against one model call per file, on the same files, in one run.

    python benchmarks/speech_predict.py [--run runs/speech/<run>] [--files 120] [--repeats 3]

The files: the first `--files` utterances of the embedded real-speech set's test part
(`data=asterisk`, 8 kHz telephone prompts of 0.5-20 s). The model: the run's, or an untrained
quick-size one (the timing does not depend on the weights). Both paths get the same features
(inference.read_features); timed is the acoustic model only:
- per file: `model.utterance_log_probs(features)`, one eager call per file (what predict did
  before issue 16);
- batched: inference.batched_log_probs, length-sorted padded batches of `batch_size` through one
  traced function (what predict does now).
The two alternate, best of `--repeats` after a warm-up round; their greedy transcripts are compared.
Results: benchmarks/results/speech_predict.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from distill_runs import write_results  # noqa: E402


def timed(function) -> tuple[object, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def model_and_config(run: Path | None, untrained_config):
    """The run's model and config, or an untrained model of `untrained_config` (a timing does not
    depend on the weights)."""
    from dlsuite.apps.speech.app import SpeechApp
    from dlsuite.apps.speech.features import feature_dim
    from dlsuite.apps.speech.model import build_speech_model
    from dlsuite.apps.speech.transcripts import ALPHABET

    if run:
        app = SpeechApp()
        return app.load_model(run), app.trained_config(run)
    return build_speech_model(untrained_config, feature_dim(untrained_config.features), len(ALPHABET)), untrained_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None, help="a speech run (default: an untrained quick model)")
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from dlsuite.apps.speech import inference
    from dlsuite.apps.speech.asterisk_corpus import build_asterisk_corpus
    from dlsuite.apps.speech.config import quick
    from dlsuite.apps.speech.decode import greedy_decode
    from dlsuite.apps.speech.transcripts import ALPHABET

    model, config = model_and_config(args.run, quick())
    test = [u for u in build_asterisk_corpus(config.cache_dir).test if u.duration <= config.max_seconds]
    paths = [u.audio for u in test[: args.files]]
    features = inference.read_features(paths, config)
    seconds = {"per file": [], "batched": []}
    for _ in range(args.repeats + 1):  # the first round traces and warms up; not counted
        one_by_one, t_one = timed(lambda: [model.utterance_log_probs(f) for f in features])
        batched, t_batched = timed(lambda: inference.batched_log_probs(model, features, config.batch_size))
        seconds["per file"].append(t_one)
        seconds["batched"].append(t_batched)
    same = sum(greedy_decode(a, ALPHABET) == greedy_decode(b, ALPHABET) for a, b in zip(one_by_one, batched, strict=True))
    best = {name: min(values[1:]) for name, values in seconds.items()}
    audio_minutes = sum(u.duration for u in test[: args.files]) / 60
    lines = [f"{len(paths)} files, {audio_minutes:.1f} min of audio (asterisk test part), batch_size {config.batch_size}, "
             f"{'run ' + str(args.run) if args.run else 'untrained quick-size model'}:", "",
             "| acoustic model | seconds (best of repeats) | vs per file |", "|---|---|---|",
             *(f"| {name} | {value:.2f} | {best['per file'] / value:.1f}x faster |" if name == "batched" else
               f"| {name} | {value:.2f} | 1.0x |" for name, value in best.items()),
             "", f"greedy transcripts equal: {same} of {len(paths)}"]
    print("\n".join(lines))
    write_results("speech_predict", lines, {"seconds": seconds, "files": len(paths), "same_greedy": same,
                                            "audio_minutes": audio_minutes, "run": str(args.run)})


if __name__ == "__main__":
    main()
