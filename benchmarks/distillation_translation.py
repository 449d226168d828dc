"""Distillation in translation: the attention teacher, the small student from scratch, the student distilled, one budget.

    .venv/bin/python benchmarks/distillation_translation.py            # about 12 minutes on 2 shared CPU cores
    .venv/bin/python benchmarks/distillation_translation.py --quick    # the same story on 1,500 pairs

The translation app in-process (`APPS["translation"]`), every run in a temporary folder, on the
embedded gettext corpus (en-de UI messages):

1. the teacher: `dlsuite translation train --quick`'s model (embedding 96, encoder 128 per
   direction, decoder 192, attention 96) on --train-pairs training pairs for --epochs epochs;
2. the student from scratch: the same command and budget with the student's sizes
   (--student-embedding, --student-encoder, --student-decoder, --student-attention);
3. the student distilled: `dlsuite translation distill --from <teacher>` with the student's sizes,
   the same epochs, batch, learning rate and pairs (so the same number of updates), once per
   temperature of --temperatures (1: the word-level distillation of Kim & Rush 2016; the app's
   default is 4), at the app's label weight unless --label-weight;
4. every run exported (`dlsuite translation export`) and its SavedModel timed on the CPU: loaded
   with plain `tf.saved_model.load` (+ tensorflow_text), `serving_default(sentences=...)` (beam
   search at the run's beam width) on 64 raw test sources and on 1, after a warm-up, the median
   over --calls calls, the models interleaved call by call (benchmarks/latency.py). Latency is per
   sentence: raw text in, sentencepiece, encoder, beam search, detokenized translation out.

All three share the teacher's sentencepiece vocabulary (the students of step 2 build the same one
from the same pairs and settings), so their BLEU/chrF compare. Reported per model: parameters,
test BLEU and chrF (sacrebleu) of greedy and beam search on --eval-pairs test pairs, train
seconds, latency, and ratios to the teacher.

Writes benchmarks/results/distillation_translation.json (settings, rows, latency samples) and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from distill_runs import (
    LATENCY_BATCH,
    WARMUP_CALLS,
    sentence_latencies,
    train_teacher_and_students,
    write_results,  # beside this script
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE_FIELDS = ("embedding_dim", "encoder_units", "decoder_units", "attention_units")


def base_config(app, args, root: Path):
    """The teacher's setting (the quick preset, fewer pairs and epochs); the students change only the model fields."""
    return dataclasses.replace(
        app.quick(), max_train_pairs=args.train_pairs, max_eval_pairs=args.eval_pairs, epochs=args.epochs,
        run_root=str(root), **({"distill_label_weight": args.label_weight} if args.label_weight is not None else {}))


def student_fields(args) -> dict:
    return dict(zip(SIZE_FIELDS, (args.student_embedding, args.student_encoder, args.student_decoder,
                                  args.student_attention), strict=True))


def train_models(app, base, args) -> dict:
    return train_teacher_and_students(app, base, student_fields(args), args.temperatures)


def latencies(runs: dict, sentences: list[str], calls: int) -> dict:
    import tensorflow_text  # noqa: F401  (registers the sentencepiece ops)

    return sentence_latencies(runs, sentences, "translations", calls)


def rows_of(app, runs: dict, samples: dict) -> list[dict]:
    rows = []
    for name, run_dir in runs.items():
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        config = app.trained_config(run_dir)
        per_sentence = {size: statistics.median(s) / size for size, s in samples[name].items()}
        rows.append({"model": name, **{f: getattr(config, f) for f in SIZE_FIELDS}, "parameters": metrics["parameters"],
                     **{k: metrics[k] for k in ("test_bleu_greedy", "test_chrf_greedy", "test_bleu_beam", "test_chrf_beam")},
                     "train_seconds": metrics["train_seconds"], "epochs_run": metrics["epochs_run"],
                     "steps_per_epoch": metrics["steps_per_epoch"],
                     "latency_ms_per_sentence_b64": 1e3 * per_sentence[LATENCY_BATCH],
                     "latency_ms_b1": 1e3 * per_sentence[1],
                     **{k: metrics[k] for k in ("teacher_parameters", "compression") if k in metrics}})
    for r in rows:
        for key in ("parameters", "latency_ms_per_sentence_b64", "latency_ms_b1", "train_seconds"):
            r[f"{key}_vs_teacher"] = r[key] / rows[0][key]
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | emb / enc / dec / att | parameters | vs teacher | BLEU beam | chrF beam | BLEU greedy | train s "
             "| ms/sentence, batch 64 | vs teacher | ms/sentence, batch 1 | vs teacher |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sizes = " / ".join(str(r[f]) for f in SIZE_FIELDS)
        lines.append(f"| {r['model']} | {sizes} | {r['parameters']:,} | {r['parameters_vs_teacher']:.3f}x | "
                     f"{r['test_bleu_beam']:.1f} | {r['test_chrf_beam']:.1f} | {r['test_bleu_greedy']:.1f} | "
                     f"{r['train_seconds']:.0f} | {r['latency_ms_per_sentence_b64']:.2f} | "
                     f"{r['latency_ms_per_sentence_b64_vs_teacher']:.2f}x | {r['latency_ms_b1']:.1f} | "
                     f"{r['latency_ms_b1_vs_teacher']:.2f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,500 training pairs, 5 timed calls: a check in minutes")
    parser.add_argument("--train-pairs", type=int, default=5000, help="training pairs (the quick preset: 20,000)")
    parser.add_argument("--eval-pairs", type=int, default=300, help="valid and test pairs scored")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--student-embedding", type=int, default=32)
    parser.add_argument("--student-encoder", type=int, default=32)
    parser.add_argument("--student-decoder", type=int, default=48)
    parser.add_argument("--student-attention", type=int, default=32)
    parser.add_argument("--temperatures", type=lambda s: [float(t) for t in s.split(",")], default=[1.0],
                        help="one distilled student per temperature")
    parser.add_argument("--label-weight", type=float, default=None, help="default: the app's distill_label_weight")
    parser.add_argument("--calls", type=int, default=10, help="timed calls per model at batch 64 (twice as many at 1)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave benchmarks/results/ alone")
    args = parser.parse_args()
    if args.quick:
        args.train_pairs, args.eval_pairs, args.calls = 1500, 100, 5
    command = f"$ .venv/bin/python {' '.join(shlex.quote(a) for a in sys.argv)}"
    print(f"{command}  ({os.cpu_count()} cores, {platform.processor() or platform.machine()})", flush=True)

    import keras
    import tensorflow as tf

    from dlsuite.apps.cli import APPS
    from dlsuite.apps.translation import data

    app = APPS["translation"]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="distillation-translation-") as root:
        base = base_config(app, args, Path(root) / "runs")
        runs = train_models(app, base, args)
        train_wall = time.perf_counter() - start
        sentences = [source for source, _ in data.load_corpus(base).test[:LATENCY_BATCH]]
        samples = latencies(runs, sentences, args.calls)
        rows = rows_of(app, runs, samples)
    total = time.perf_counter() - start

    settings = {f: getattr(base, f) for f in ("max_train_pairs", "max_eval_pairs", "epochs", "batch_size",
                                              "learning_rate", "vocab_size", "beam_width", "distill_label_weight")}
    text = [command, "", f"{os.cpu_count()} CPU cores (shared), TensorFlow {tf.__version__}, Keras {keras.__version__}; "
            f"{total:.0f} s for the whole benchmark (training + exports {train_wall:.0f} s).", "",
            f"gettext en-de, {settings['max_train_pairs']} training pairs, {settings['max_eval_pairs']} test pairs, "
            f"shared sentencepiece vocabulary of {settings['vocab_size']}; {settings['epochs']} epoch(s) of "
            f"{rows[0]['steps_per_epoch']} steps for every model, batch {settings['batch_size']}, learning rate "
            f"{settings['learning_rate']:g}; distilled with label weight {settings['distill_label_weight']:g}. Beam "
            f"width {settings['beam_width']}. Latency per sentence of the export's serving_default (beam search): "
            f"median of {args.calls} calls at batch {LATENCY_BATCH}, {2 * args.calls} at batch 1.", "",
            table(rows), ""]
    print("\n".join(text))
    if not args.no_write:
        write_results("distillation_translation", text,
            {"command": command, "cores": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
             "total_seconds": round(total, 1), "settings": settings, "student": student_fields(args),
             "temperatures": args.temperatures, "latency_batch": LATENCY_BATCH, "warmup_calls": WARMUP_CALLS,
             "calls_b64": args.calls, "calls_b1": 2 * args.calls, "rows": rows,
             "latency_samples_s": {n: {str(k): v for k, v in s.items()} for n, s in samples.items()}})


if __name__ == "__main__":
    main()
