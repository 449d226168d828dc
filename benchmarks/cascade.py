"""A cascade on digits: a cheap model answers when it is sure, the default-sized one otherwise.

    .venv/bin/python benchmarks/cascade.py            # ~5 minutes on 2 CPU cores
    .venv/bin/python benchmarks/cascade.py --quick    # 3 epochs, few calls: checks the script

The vision app in-process (`APPS["vision"]`), every run in a temporary folder:

1. the cheap model (`widths=8,16`) and the expensive one (the default `widths=32,64,128`), each
   `dlsuite vision train` at the quick setting (30 epochs, batch 64, lr 3e-3), both with seed 0, so
   both have the same train/validation/test split (in the vision app `seed` also draws the split);
2. `dlsuite vision cascade --from CHEAP,EXPENSIVE`: the threshold with the fewest expensive calls
   within 0.2 points of the expensive model's accuracy, chosen on the validation split;
3. the three runs exported (`dlsuite vision export`, each checked against its Keras model) and their
   SavedModels timed on the CPU with plain `tf.saved_model.load`: `serving_default(image_bytes=...)`
   on PNG-encoded test digits, batches of 64 and of 1 (cycling through the test split, so that a
   batch of the cascade holds as many unsure images as the split does), after a warm-up, the median
   over `--calls` calls (the models interleaved call by call, so that drift in the shared machine's
   load hits them alike), divided by the batch size. At batch 1 the mean is reported too: a sure
   image costs the cheap model alone, an unsure one both, and the median shows only the first.

Reported: the threshold sweep (fraction of images sent to the expensive model and accuracy, on both
splits, at a few thresholds and the chosen one), and per model its parameters, test accuracy and
latency, with the ratios to the expensive model alone measured in the same run.

Writes benchmarks/results/cascade.json (settings, sweep, rows, latency samples), cascade.md and
cascade.png (the run's plots/cascade.png: accuracy against the fraction sent to the expensive model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import shutil
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
LATENCY_BATCH = 64
WARMUP_CALLS = 5
SWEEP = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0)


def widths(text: str) -> tuple[int, ...]:
    return tuple(int(w) for w in text.split(","))


def train_and_cascade(app, base, args, root: Path) -> dict:
    """name -> run folder of the cheap model, the expensive one and their cascade, all exported."""
    runs = {}
    for name, model_widths in (("cheap", args.cheap_widths), ("expensive", args.expensive_widths)):
        runs[name] = app.run("train", dataclasses.replace(base, widths=model_widths, run_root=str(root)))["run_dir"]
    sources = f"{runs['cheap']},{runs['expensive']}"
    config = dataclasses.replace(app.trained_config(runs["cheap"]), run_root=str(root))  # the runs' data settings
    runs["cascade"] = app.run("cascade", config, sources)["run_dir"]
    for run_dir in runs.values():
        exported = app.run("export", app.resolve_config("export", run_dir), run_dir)
        assert exported["export_agrees"], exported
    return runs


def sweep(app, runs: dict, base, threshold: float) -> list[dict]:
    """Fraction to the expensive model and accuracy at the SWEEP thresholds and the chosen one."""
    from dlsuite.apps.vision import cascade, train

    _, (_, val_ds, test_ds) = train.load_datasets(base, 256, evaluation=True)
    models = [app.load_model(runs["cheap"]), app.load_model(runs["expensive"])]
    thresholds = sorted({*SWEEP, threshold})
    curves = {}
    for split, dataset in (("validation", val_ds), ("test", test_ds)):
        answers = cascade.split_answers(models, dataset)
        curves[split] = cascade.cascade_curve(answers["cheap"], answers["expensive"], answers["labels"], thresholds)
    return [{"threshold": t, "chosen": t == threshold,
             **{f"{split}_{key}": float(curves[split][key][i]) for split in curves
                for key in ("fraction_expensive", "accuracy")}} for i, t in enumerate(thresholds)]


def test_png() -> tuple[list[bytes], object]:
    """PNG bytes of the raw 8x8 test digits of the seed-0 split (as a user sends them), and labels."""
    import numpy as np

    from dlsuite.pipelines.images import encode_png, load_digits

    raw = load_digits(8, 1, seed=0).test
    images, labels = (np.stack(a) for a in zip(*raw.as_numpy_iterator(), strict=True))
    return encode_png(images), labels


def served_answers(runs: dict, png: list[bytes], labels, threshold: float) -> dict:
    """Each export's accuracy on the PNG test digits, and the fraction of them the cascade export
    sends to the expensive model (the cheap export's top probability not above the threshold)."""
    import numpy as np
    import tensorflow as tf

    probabilities = {name: tf.saved_model.load(str(Path(run) / "export")).signatures["serving_default"](
        image_bytes=tf.constant(png))["probabilities"].numpy() for name, run in runs.items()}
    accuracy = {name: float(np.mean(p.argmax(-1) == labels)) for name, p in probabilities.items()}
    sent = probabilities["cheap"].max(-1) <= np.float32(threshold)
    return {"export_accuracy_png": accuracy, "export_fraction_expensive_png": float(sent.mean())}


def latencies(runs: dict, png: list[bytes], calls: int) -> dict:
    """Seconds per call of each export's serving_default at batch 64 and 1, interleaved, cycling
    through the test split; also the decoding alone (the exports' own map_fn of decode_image)."""
    import tensorflow as tf

    calls_of = vision_export_calls({name: Path(run) / "export" for name, run in runs.items()})
    batches = {LATENCY_BATCH: [tf.constant(png[i:i + LATENCY_BATCH])
                               for i in range(0, len(png) - LATENCY_BATCH + 1, LATENCY_BATCH)],
               1: [tf.constant(png[i:i + 1]) for i in range(len(png))]}
    by_size = {size: interleaved_seconds(calls_of, batch_list, calls if size == LATENCY_BATCH else 4 * calls,
                                         WARMUP_CALLS)
               for size, batch_list in batches.items()}
    return {name: {size: by_size[size][name] for size in by_size} for name in calls_of}


def rows_of(runs: dict, samples: dict, served: dict) -> list[dict]:
    rows = []
    for name in (*runs, "decode only"):
        metrics = json.loads((Path(runs[name]) / "metrics.json").read_text()) if name in runs else {}
        b64, b1 = samples[name][LATENCY_BATCH], samples[name][1]
        rows.append({"model": name, "parameters": metrics.get("parameters", 0),
                     "test_accuracy": metrics.get("test_accuracy"),
                     "export_accuracy_png": served["export_accuracy_png"].get(name),
                     "ms_per_image_b64": 1e3 * statistics.median(b64) / LATENCY_BATCH,
                     "ms_b1_median": 1e3 * statistics.median(b1), "ms_b1_mean": 1e3 * statistics.mean(b1)})
    reference = rows[1]  # the expensive model alone
    for row in rows:
        for key in ("ms_per_image_b64", "ms_b1_median", "ms_b1_mean"):
            row[f"{key}_vs_expensive"] = row[key] / reference[key]
    return rows


def tables(result: dict) -> list[str]:
    lines = ["| threshold | validation: fraction to expensive | validation acc | test: fraction to expensive "
             "| test acc |", "|---|---|---|---|---|"]
    for r in result["sweep"]:
        mark = " (chosen)" if r["chosen"] else ""
        lines.append(f"| {r['threshold']:.6g}{mark} | {r['validation_fraction_expensive']:.3f} | "
                     f"{r['validation_accuracy']:.4f} | {r['test_fraction_expensive']:.3f} | {r['test_accuracy']:.4f} |")
    lines += ["", "| model | parameters | test acc | export acc (PNG) | ms/image, batch 64 | vs expensive "
              "| ms, batch 1 (median) | vs expensive | ms, batch 1 (mean) | vs expensive |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        accuracy = "" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}"
        served = "" if r["export_accuracy_png"] is None else f"{r['export_accuracy_png']:.4f}"
        lines.append(f"| {r['model']} | {r['parameters']:,} | {accuracy} | {served} | {r['ms_per_image_b64']:.3f} | "
                     f"{r['ms_per_image_b64_vs_expensive']:.2f}x | {r['ms_b1_median']:.2f} | "
                     f"{r['ms_b1_median_vs_expensive']:.2f}x | {r['ms_b1_mean']:.2f} | {r['ms_b1_mean_vs_expensive']:.2f}x |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cheap-widths", type=widths, default=(8, 16))
    parser.add_argument("--expensive-widths", type=widths, default=(32, 64, 128))
    parser.add_argument("--calls", type=int, default=100, help="timed calls per model at batch 64 (4x as many at 1)")
    parser.add_argument("--epochs", type=int, default=0, help="0: the quick setting's")
    parser.add_argument("--quick", action="store_true", help="3 epochs and 5 calls: checks that the script runs")
    parser.add_argument("--no-write", action="store_true", help="print only, leave benchmarks/results/ alone")
    args = parser.parse_args()
    command = f"$ .venv/bin/python {' '.join(shlex.quote(a) for a in sys.argv)}"
    print(f"{command}  ({os.cpu_count()} cores, {platform.processor() or platform.machine()})", flush=True)

    import keras
    import tensorflow as tf

    from dlsuite.apps.cli import APPS

    app = APPS["vision"]
    base = dataclasses.replace(app.quick(), seed=0)
    epochs = 3 if args.quick else args.epochs
    base = dataclasses.replace(base, epochs=epochs) if epochs else base
    calls = 5 if args.quick else args.calls
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cascade-") as root:
        runs = train_and_cascade(app, base, args, Path(root))
        train_wall = time.perf_counter() - start
        metrics = json.loads((Path(runs["cascade"]) / "metrics.json").read_text())
        png, labels = test_png()
        served = served_answers(runs, png, labels, metrics["threshold"])
        samples = latencies(runs, png, calls)
        result = {"sweep": sweep(app, runs, base, metrics["threshold"]), "rows": rows_of(runs, samples, served),
                  "cascade_metrics": metrics, **served}
        figure = Path(runs["cascade"]) / "plots" / "cascade.png"
        if not args.no_write:
            RESULTS.mkdir(exist_ok=True)
            shutil.copy2(figure, RESULTS / "cascade.png")
    total = time.perf_counter() - start

    m = result["cascade_metrics"]
    text = [command, "", f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, Keras {keras.__version__}; "
            f"{total:.0f} s for the whole benchmark (training, cascade and exports {train_wall:.0f} s).", "",
            f"{base.epochs} epochs, batch {base.batch_size}, lr {base.learning_rate:g}, seed 0 (one split); cheap "
            f"widths {args.cheap_widths}, expensive {args.expensive_widths}; {len(labels)} test images. Threshold "
            f"{m['threshold']:.6g} chosen on the validation split (fewest expensive calls within 0.2 points of the "
            f"expensive model): validation {m['validation_accuracy']:.4f} vs expensive alone "
            f"{m['expensive_validation_accuracy']:.4f}, {m['validation_fraction_expensive']:.1%} to the expensive "
            f"model; test {m['test_accuracy']:.4f} vs {m['expensive_test_accuracy']:.4f} (cheap alone "
            f"{m['cheap_test_accuracy']:.4f}), {m['test_fraction_expensive']:.1%} to the expensive model "
            f"({result['export_fraction_expensive_png']:.1%} of the PNG digits the exports are timed on).", "",
            *tables(result), "", f"Latency: median of {calls} calls at batch 64 ({4 * calls} at batch 1), after "
            f"{WARMUP_CALLS} warm-up calls, models interleaved; 'decode only' is the PNG decoding every export does."]
    print("\n".join(text))
    if not args.no_write:
        (RESULTS / "cascade.md").write_text("\n".join(text) + "\n")
        (RESULTS / "cascade.json").write_text(json.dumps(
            {"command": command, "cores": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
             "total_seconds": round(total, 1), "epochs": base.epochs, "cheap_widths": list(args.cheap_widths),
             "expensive_widths": list(args.expensive_widths), "latency_batch": LATENCY_BATCH,
             "warmup_calls": WARMUP_CALLS, "calls_b64": calls, "calls_b1": 4 * calls, **result,
             "latency_samples_s": {n: {str(k): v for k, v in s.items()} for n, s in samples.items()}},
            indent=1, default=str))
        print(f"wrote {RESULTS / 'cascade.json'}, cascade.md and cascade.png")


if __name__ == "__main__":
    main()
