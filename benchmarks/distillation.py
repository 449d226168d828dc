"""Distillation on digits: teacher, student from scratch, student distilled (1 teacher, 3-teacher ensemble), one budget.

    .venv/bin/python benchmarks/distillation.py

The vision app in-process (`APPS["vision"]`), every run in a temporary folder. Per variant:

1. three teachers (`dlsuite vision train`, the quick setting: 30 epochs, batch 64, lr 3e-3, the
   default widths 32,64,128) with seeds 0, 1, 2;
2. the student trained from scratch (`widths=8,16,32`, the same setting, seed 0);
3. the student distilled (`dlsuite vision distill`, the same epochs / batch / lr, seed 0, default
   temperature 4 and label weight 0.5) from the 3-teacher ensemble, and from teacher 0 alone;
4. every run exported (`dlsuite vision export`) and its SavedModel timed on the CPU: loaded with plain
   `tf.saved_model.load`, `serving_default(image_bytes=...)` on 64 PNG-encoded test digits and on 1,
   after a warm-up, the median over `--calls` calls (the models interleaved call by call, so that
   drift in the shared machine's load hits them alike), divided by the batch size.

Reported per model: parameters, test accuracy (metrics.json), train seconds, latency per example at
batch 64 and 1, and ratios to teacher 0. The ensemble row: the mean of the 3 teachers' probabilities
on the same test split (their Keras models on the split metrics.json scores; the exports' answers on
the PNG test digits are checked too), its parameters, train seconds and latency the sums of the 3.

Variants: `quick` (all the training data: ~1,257 images) and, when the scratch student is within one
point of the teachers there (`--hard auto`, the default) or always (`--hard always`), `hard`: the same
settings with `train_examples_per_class=20` (200 training images) for every model, the teachers included.

Every run shares one train/validation/test split (and few-shot subset): the vision app draws them with
`split_seed` (0), not `seed`, so teachers with seeds 1 and 2 differ from teacher 0 only in
initialization, shuffling and augmentation (before `split_seed` existed, they would have trained on
241 and 236 of the 355 seed-0 test images the students are scored on).

Writes benchmarks/results/distillation.json (settings, rows, latency samples) and distillation.md.
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

from latency import (  # benchmarks/latency.py, beside this script
    interleaved_seconds,
    vision_export_calls,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).resolve().parent / "results"
SPLIT_SEED = 0
TEACHER_SEEDS = (0, 1, 2)
LATENCY_BATCH = 64
WARMUP_CALLS = 5


def metrics_of(run_dir: str) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def train_models(app, base, student_widths, root: Path) -> dict:
    """name -> run folder, for the teachers, the scratch student and the two distilled students."""
    runs = {}
    for seed in TEACHER_SEEDS:
        runs[f"teacher {seed}"] = app.run("train", dataclasses.replace(base, seed=seed, run_root=str(root)))["run_dir"]
    runs["student, scratch"] = app.run(
        "train", dataclasses.replace(base, widths=student_widths, seed=0, run_root=str(root)))["run_dir"]
    budget = {f: getattr(base, f) for f in ("epochs", "batch_size", "learning_rate", "train_examples_per_class")}
    for label, teachers in (("student, distilled from teacher 0", [runs["teacher 0"]]),
                            ("student, distilled from the ensemble", [runs[f"teacher {s}"] for s in TEACHER_SEEDS])):
        sources = ",".join(teachers)
        config = dataclasses.replace(app.resolve_config("distill", sources), widths=student_widths, seed=0,
                                     run_root=str(root), **budget)
        runs[label] = app.run("distill", config, sources)["run_dir"]
    for run_dir in runs.values():
        exported = app.run("export", app.resolve_config("export", run_dir), run_dir)
        assert exported["export_agrees"], exported
    return runs


def test_split(base):
    """(16x16 test dataset as metrics.json scores it, PNG bytes of the raw 8x8 test digits, labels)."""
    import numpy as np

    from dlsuite.apps.vision import train
    from dlsuite.pipelines.images import encode_png, load_digits

    _, (_, _, test_ds) = train.load_datasets(base, 256, evaluation=True)
    raw = load_digits(8, 1, seed=SPLIT_SEED).test  # the same split, at the digits' own 8x8: as a user sends them
    images, labels = (np.stack(a) for a in zip(*raw.as_numpy_iterator(), strict=True))
    split_labels = np.concatenate([y for _, y in test_ds.as_numpy_iterator()])
    assert (labels == split_labels).all()
    return test_ds, encode_png(images), labels


def accuracies(app, runs: dict, test_ds, png: list[bytes], labels) -> dict:
    """Per run: accuracy of the Keras model on the test split, of the export on the PNG digits; and the
    ensemble's (mean of the teachers' probabilities), both ways."""
    import numpy as np
    import tensorflow as tf

    keras_probs, export_probs = {}, {}
    for name, run_dir in runs.items():
        keras_probs[name] = app.load_model(run_dir).predict(test_ds, verbose=0)
        serve = tf.saved_model.load(str(Path(run_dir) / "export")).signatures["serving_default"]
        export_probs[name] = serve(image_bytes=tf.constant(png))["probabilities"].numpy()
    teachers = [f"teacher {s}" for s in TEACHER_SEEDS]
    keras_probs["ensemble of 3 teachers"] = np.mean([keras_probs[t] for t in teachers], axis=0)
    export_probs["ensemble of 3 teachers"] = np.mean([export_probs[t] for t in teachers], axis=0)
    return {name: {"keras": float(np.mean(keras_probs[name].argmax(-1) == labels)),
                   "export": float(np.mean(export_probs[name].argmax(-1) == labels))} for name in keras_probs}


def latencies(runs: dict, png: list[bytes], calls: int) -> dict:
    """Seconds per call of each export's serving_default, batch 64 and batch 1, interleaved; also the
    decoding alone (the export's own map_fn of decode_image, no model) as the floor every export shares."""
    import tensorflow as tf

    calls_of = vision_export_calls({name: Path(run_dir) / "export" for name, run_dir in runs.items()})
    by_size = {}
    for size, repeats in ((LATENCY_BATCH, calls), (1, 2 * calls)):
        by_size[size] = interleaved_seconds(calls_of, [tf.constant(png[:size])], repeats, WARMUP_CALLS)
    return {name: {size: by_size[size][name] for size in by_size} for name in calls_of}


def variant(app, name: str, base, args, root: Path) -> dict:
    start = time.perf_counter()
    runs = train_models(app, base, args.student_widths, root / name)
    train_wall = time.perf_counter() - start
    test_ds, png, labels = test_split(base)
    accs = accuracies(app, runs, test_ds, png, labels)
    samples = latencies(runs, png, args.calls)
    per_example = {n: {size: statistics.median(s) / size for size, s in by_size.items()} for n, by_size in samples.items()}
    rows = []
    for label, run_dir in runs.items():
        m = metrics_of(run_dir)
        rows.append({"model": label, "widths": list(app.trained_config(run_dir).widths),
                     "parameters": m["parameters"], "test_accuracy": m["test_accuracy"],
                     "keras_accuracy_recomputed": accs[label]["keras"], "export_accuracy_png": accs[label]["export"],
                     "train_seconds": m["train_seconds"], "epochs_run": m["epochs_run"],
                     "latency_ms_per_example_b64": 1e3 * per_example[label][LATENCY_BATCH],
                     "latency_ms_b1": 1e3 * per_example[label][1],
                     **({"teacher_parameters": m["teacher_parameters"], "compression": m["compression"]}
                        if "compression" in m else {})})
    teachers = rows[: len(TEACHER_SEEDS)]
    ensemble = {"model": "ensemble of 3 teachers", "parameters": sum(r["parameters"] for r in teachers),
                "test_accuracy": accs["ensemble of 3 teachers"]["keras"],
                "keras_accuracy_recomputed": accs["ensemble of 3 teachers"]["keras"],
                "export_accuracy_png": accs["ensemble of 3 teachers"]["export"],
                "train_seconds": round(sum(r["train_seconds"] for r in teachers), 2),
                "latency_ms_per_example_b64": sum(r["latency_ms_per_example_b64"] for r in teachers),
                "latency_ms_b1": sum(r["latency_ms_b1"] for r in teachers)}
    rows.insert(len(TEACHER_SEEDS), ensemble)
    reference = rows[0]
    for r in rows:
        for key in ("parameters", "latency_ms_per_example_b64", "latency_ms_b1", "train_seconds"):
            r[f"{key}_vs_teacher"] = r[key] / reference[key]
    decode = {"latency_ms_per_example_b64": 1e3 * per_example["decode only"][LATENCY_BATCH],
              "latency_ms_b1": 1e3 * per_example["decode only"][1]}
    return {"variant": name, "settings": {f: getattr(base, f) for f in
                                          ("epochs", "batch_size", "learning_rate", "train_examples_per_class",
                                           "widths", "distill_temperature", "distill_label_weight")},
            "student_widths": list(args.student_widths), "test_examples": int(len(labels)),
            "train_wall_seconds": round(train_wall, 1), "rows": rows, "decode_only": decode,
            "latency_samples_s": {n: {str(k): v for k, v in s.items()} for n, s in samples.items()}}


def table(result: dict) -> str:
    lines = ["| model | parameters | vs teacher | test acc | train s | ms/example, batch 64 | vs teacher "
             "| ms, batch 1 | vs teacher |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['parameters_vs_teacher']:.3f}x | "
                     f"{r['test_accuracy']:.4f} | {r['train_seconds']:.1f} | {r['latency_ms_per_example_b64']:.3f} | "
                     f"{r['latency_ms_per_example_b64_vs_teacher']:.2f}x | {r['latency_ms_b1']:.2f} | "
                     f"{r['latency_ms_b1_vs_teacher']:.2f}x |")
    d = result["decode_only"]
    lines.append(f"| (decoding alone, no model) | 0 | | | | {d['latency_ms_per_example_b64']:.3f} | "
                 f"{d['latency_ms_per_example_b64'] / result['rows'][0]['latency_ms_per_example_b64']:.2f}x | "
                 f"{d['latency_ms_b1']:.2f} | {d['latency_ms_b1'] / result['rows'][0]['latency_ms_b1']:.2f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student-widths", type=lambda s: tuple(int(w) for w in s.split(",")), default=(8, 16, 32))
    parser.add_argument("--hard", choices=("auto", "always", "never"), default="auto",
                        help="the 20-examples-per-class variant: auto = when the scratch student is within "
                             "one point of the mean teacher at the quick setting")
    parser.add_argument("--hard-examples-per-class", type=int, default=20)
    parser.add_argument("--calls", type=int, default=30, help="timed calls per model at batch 64 (twice as many at 1)")
    parser.add_argument("--epochs", type=int, default=0, help="0: the quick setting's")
    parser.add_argument("--no-write", action="store_true", help="print only, leave benchmarks/results/ alone")
    args = parser.parse_args()
    command = f"$ .venv/bin/python {' '.join(shlex.quote(a) for a in sys.argv)}"
    print(f"{command}  ({os.cpu_count()} cores, {platform.processor() or platform.machine()})", flush=True)

    import keras
    import tensorflow as tf

    from dlsuite.apps.cli import APPS

    app = APPS["vision"]
    base = app.quick()
    if args.epochs:
        base = dataclasses.replace(base, epochs=args.epochs)
    start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="distillation-") as root:
        results.append(variant(app, "quick", base, args, Path(root)))
        rows = {r["model"]: r for r in results[0]["rows"]}
        teacher_mean = statistics.mean(rows[f"teacher {s}"]["test_accuracy"] for s in TEACHER_SEEDS)
        close = rows["student, scratch"]["test_accuracy"] >= teacher_mean - 0.01
        if args.hard == "always" or (args.hard == "auto" and close):
            hard = dataclasses.replace(base, train_examples_per_class=args.hard_examples_per_class)
            results.append(variant(app, f"hard ({args.hard_examples_per_class} per class)", hard, args, Path(root)))
    total = time.perf_counter() - start

    text = [command, "", f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, Keras {keras.__version__}; "
            f"{total:.0f} s for the whole benchmark; one split (split_seed {SPLIT_SEED}) for every run.", ""]
    for result in results:
        s = result["settings"]
        text += [f"### {result['variant']}: {s['epochs']} epochs, batch {s['batch_size']}, lr {s['learning_rate']:g}, "
                 f"train_examples_per_class={s['train_examples_per_class'] or 'all'}, teachers {tuple(s['widths'])}, "
                 f"students {tuple(result['student_widths'])}, T={s['distill_temperature']:g}, label weight "
                 f"{s['distill_label_weight']:g}; {result['test_examples']} test images; training + exports "
                 f"{result['train_wall_seconds']:.0f} s", "", table(result), "",
                 "export accuracy on the PNG test digits: " + ", ".join(
                     f"{r['model']} {r['export_accuracy_png']:.4f}" for r in result["rows"]),
                 "Keras accuracies recomputed here equal metrics.json's: " + str(all(
                     abs(r["keras_accuracy_recomputed"] - r["test_accuracy"]) < 1e-9 for r in result["rows"])), ""]
    print("\n".join(text))
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "distillation.md").write_text("\n".join(text))
        (RESULTS / "distillation.json").write_text(json.dumps(
            {"command": command, "cores": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
             "total_seconds": round(total, 1), "split_seed": SPLIT_SEED, "teacher_seeds": list(TEACHER_SEEDS),
             "latency_batch": LATENCY_BATCH, "warmup_calls": WARMUP_CALLS, "calls_b64": args.calls,
             "calls_b1": 2 * args.calls, "variants": results}, indent=1, default=str))
        print(f"wrote {RESULTS / 'distillation.json'} and distillation.md")


if __name__ == "__main__":
    main()
