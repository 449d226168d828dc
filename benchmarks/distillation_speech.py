"""Distillation in speech: the CTC teacher, the small student from scratch, the student distilled, one budget.

    .venv/bin/python benchmarks/distillation_speech.py              # about 12 minutes on 2 shared CPU cores
    .venv/bin/python benchmarks/distillation_speech.py --epochs 8   # the quick preset's full budget (~30 minutes)

The speech app in-process (`APPS["speech"]`), every run in a temporary folder, on the quick
preset's embedded espeak corpus (800 sentences, 2 voices each; cached in data_cache/speech):

1. the teacher: `dlsuite speech train --quick`'s model (conv 16 filters, 2 x BiLSTM 128) for
   --epochs epochs;
2. the student from scratch: the same command and budget with the student's sizes
   (--student-filters, --student-units, --student-layers);
3. the student distilled: `dlsuite speech distill --from <teacher>` with the student's sizes and
   the same epochs, batch, learning rate and utterances (so the same number of updates), once per
   temperature of --temperatures, at the app's label weight unless --label-weight;
4. every run exported and checked (`dlsuite speech export`).

All use the teacher's LM (built from the same transcripts), with alpha and beta tuned on
validation for each model. Reported per model: parameters, test CER and WER of greedy decoding
and of beam search + LM, train seconds. Writes benchmarks/results/distillation_speech.json and .md.
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

from distill_runs import train_teacher_and_students, write_results  # beside this script
from latency import interleaved_seconds

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE_FIELDS = ("conv_filters", "rnn_units", "rnn_layers")
SCORES = ("test_cer_greedy", "test_wer_greedy", "test_cer_beam_lm", "test_wer_beam_lm")


def base_config(app, args, root: Path):
    """The teacher's setting (the quick preset, --epochs); the students change only the model fields."""
    return dataclasses.replace(
        app.quick(), epochs=args.epochs, run_root=str(root),
        **({"distill_label_weight": args.label_weight} if args.label_weight is not None else {}))


def student_fields(args) -> dict:
    return dict(zip(SIZE_FIELDS, (args.student_filters, args.student_units, args.student_layers), strict=True))


def rows_of(app, runs: dict) -> list[dict]:
    rows = []
    for name, run_dir in runs.items():
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        config = app.trained_config(run_dir)
        rows.append({"model": name, **{f: getattr(config, f) for f in SIZE_FIELDS}, "parameters": metrics["parameters"],
                     **{k: metrics.get(k, float("nan")) for k in SCORES}, "train_seconds": metrics["train_seconds"],
                     "steps_per_epoch": metrics["steps_per_epoch"], "final_loss": metrics["final_loss"]})
    for r in rows:
        r["parameters_vs_teacher"] = r["parameters"] / rows[0]["parameters"]
    return rows


def export_latencies(runs: dict, calls: int) -> dict:
    """name -> median ms per call of the export's serving_default on one 1.5 s waveform
    (features, acoustic model and greedy CTC decoding in the graph), interleaved."""
    import tensorflow as tf

    from dlsuite.apps.speech.app import probe_waveform

    signatures = {name: tf.saved_model.load(str(Path(run) / "export")).signatures["serving_default"]
                  for name, run in runs.items()}
    waveform = {"waveform": tf.constant(probe_waveform()), "sample_rate": tf.constant(16000)}
    calls_of = {name: (lambda x, s=signature: s(**x)) for name, signature in signatures.items()}
    samples = interleaved_seconds(calls_of, [waveform], calls)
    return {name: 1e3 * statistics.median(times) for name, times in samples.items()}


def table(rows: list[dict]) -> str:
    lines = ["| model | filters / units / layers | parameters | vs teacher | CER greedy | WER greedy | CER beam+LM "
             "| WER beam+LM | train s | export ms / 1.5 s utterance | vs teacher |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sizes = " / ".join(str(r[f]) for f in SIZE_FIELDS)
        lines.append(f"| {r['model']} | {sizes} | {r['parameters']:,} | {r['parameters_vs_teacher']:.3f}x | "
                     f"{r['test_cer_greedy']:.3f} | {r['test_wer_greedy']:.3f} | {r['test_cer_beam_lm']:.3f} | "
                     f"{r['test_wer_beam_lm']:.3f} | {r['train_seconds']:.0f} | {r['export_ms']:.1f} | "
                     f"{r['export_ms'] / rows[0]['export_ms']:.2f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="every model's epochs (the quick preset: 8)")
    parser.add_argument("--student-filters", type=int, default=8)
    parser.add_argument("--student-units", type=int, default=64)
    parser.add_argument("--student-layers", type=int, default=2)
    parser.add_argument("--temperatures", type=lambda s: [float(t) for t in s.split(",")], default=[2.0],
                        help="one distilled student per temperature")
    parser.add_argument("--label-weight", type=float, default=None, help="default: the app's distill_label_weight")
    parser.add_argument("--calls", type=int, default=40, help="timed calls per export")
    parser.add_argument("--no-write", action="store_true", help="print only, leave benchmarks/results/ alone")
    args = parser.parse_args()
    command = f"$ .venv/bin/python {' '.join(shlex.quote(a) for a in sys.argv)}"
    print(f"{command}  ({os.cpu_count()} cores, {platform.processor() or platform.machine()})", flush=True)

    import keras
    import tensorflow as tf

    from dlsuite.apps.cli import APPS

    app = APPS["speech"]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="distillation-speech-") as root:
        base = base_config(app, args, Path(root) / "runs")
        runs = train_teacher_and_students(app, base, student_fields(args), args.temperatures)
        rows = rows_of(app, runs)
        for row, milliseconds in zip(rows, export_latencies(runs, args.calls).values(), strict=True):
            row["export_ms"] = milliseconds
    total = time.perf_counter() - start

    settings = {f: getattr(base, f) for f in ("num_sentences", "variants_per_sentence", "epochs", "batch_size",
                                              "learning_rate", "time_stride", "beam_width", "distill_label_weight")}
    text = [command, "", f"{os.cpu_count()} CPU cores (shared), TensorFlow {tf.__version__}, Keras {keras.__version__}; "
            f"{total:.0f} s for the whole benchmark.", "",
            f"espeak corpus of {settings['num_sentences']} sentences x {settings['variants_per_sentence']} voices; "
            f"{settings['epochs']} epoch(s) of {rows[0]['steps_per_epoch']} steps for every model, batch "
            f"{settings['batch_size']}, learning rate {settings['learning_rate']:g}, time stride "
            f"{settings['time_stride']}; distilled with label weight {settings['distill_label_weight']:g}. Beam width "
            f"{settings['beam_width']}, the teacher's LM, alpha and beta tuned on validation per model.", "",
            table(rows), ""]
    print("\n".join(text))
    if not args.no_write:
        write_results("distillation_speech", text,
            {"command": command, "cores": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
             "total_seconds": round(total, 1), "settings": settings, "student": student_fields(args),
             "temperatures": args.temperatures, "rows": rows})


if __name__ == "__main__":
    main()
