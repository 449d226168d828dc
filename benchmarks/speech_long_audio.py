"""The export's `transcribe_long`: segments in batches against one segment at a time, in one run.

    python benchmarks/speech_long_audio.py [--run runs/speech/<run>] [--minutes 3] [--repeats 3]

The recording: the embedded real-speech set's test prompts (`data=asterisk`, 8 kHz) joined with
0.6 s pauses up to `--minutes`, as one 8 kHz waveform. The model: the run's, or an untrained model
of the default size (the timing does not depend on the weights). Timed: the export module's
`transcribe_long` (resampling, segmentation, features, acoustic model, TensorFlow's CTC decoders)
with `segments_per_batch` = 1 (each segment alone, what it did before) and 16 (the default: equal
batches of at most 16, 52 segments are 4 of 13); the
two alternate, best of `--repeats` after a warm-up call; their segment transcripts are compared.
Results: benchmarks/results/speech_long_audio.{md,json}.
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


def recording(config, minutes: float):
    """An 8 kHz waveform of test prompts joined by 0.6 s pauses, at most `minutes` long."""
    import numpy as np

    from dlsuite.apps.speech.asterisk_corpus import build_asterisk_corpus
    from dlsuite.apps.speech.audio import load_audio

    pieces, pause, samples = [], np.zeros(int(0.6 * 8000), np.float32), 0
    for utterance in build_asterisk_corpus(config.cache_dir).test:
        pieces += [load_audio(utterance, 8000, config.max_seconds), pause]
        samples += len(pieces[-2]) + len(pause)
        if samples >= minutes * 60 * 8000:
            break
    return np.concatenate(pieces)[: int(minutes * 60 * 8000)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None, help="a speech run (default: an untrained default-size model)")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import tensorflow as tf
    from speech_predict import model_and_config

    from dlsuite.apps.speech import export
    from dlsuite.apps.speech.config import SpeechConfig

    model, config = model_and_config(args.run, SpeechConfig())
    waveform = tf.constant(recording(config, args.minutes))
    modules = {n: export.serving_module(model, config, segments_per_batch=n) for n in (1, export.SEGMENTS_PER_BATCH)}
    best, answers = {}, {}
    for round_ in range(args.repeats + 1):  # round 0 traces each function
        for per_batch, module in modules.items():
            start = time.perf_counter()
            out = module.transcribe_long(waveform, tf.constant(8000))
            seconds = time.perf_counter() - start
            answers[per_batch] = [t.decode() for t in out["segment_greedy_transcripts"].numpy()]
            if round_:
                best[per_batch] = min(best.get(per_batch, float("inf")), seconds)
    one, batched = best[1], best[export.SEGMENTS_PER_BATCH]
    same = answers[1] == answers[export.SEGMENTS_PER_BATCH]
    lines = [f"transcribe_long on {args.minutes:g} min of 8 kHz speech ({len(answers[1])} segments), "
             f"model {'of ' + str(args.run) if args.run else 'untrained, default size'}; best of {args.repeats}:", "",
             "| segments per batch | seconds | real-time factor |", "|---|---|---|",
             f"| 1 (before) | {one:.2f} | {one / (args.minutes * 60):.3f} |",
             f"| up to {export.SEGMENTS_PER_BATCH}, equal batches | {batched:.2f} | {batched / (args.minutes * 60):.3f} |",
             "", f"speed-up {one / batched:.2f}x; greedy segment transcripts equal: {same}"]
    print("\n".join(lines))
    write_results("speech_long_audio", lines, {"run": str(args.run), "minutes": args.minutes, "seconds": best,
                                               "segments": len(answers[1]), "answers_equal": same})


if __name__ == "__main__":
    main()
