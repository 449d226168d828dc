"""Exports at float32, float16 and int8 of the same run, per app: size on disk, test metric, CPU latency.

    .venv/bin/python benchmarks/export_precision.py --runs runs/main/vision/<run> runs/main/language/<run> ...
    .venv/bin/python benchmarks/export_precision.py --train vision language   # trains the quick setting first

For each run (the app is the name of the folder above it), in one process:

1. `dlsuite <app> export --from RUN precision=P` for P in float32, float16, int8 (SavedModel; int8 is
   Keras' `model.quantize("int8")`: Dense/EinsumDense/Embedding kernels only), and for the apps with
   a LiteRT plan (vision) `format=litert precision=P` as well (full-integer at int8);
2. the test metric of each: `dlsuite <app> evaluate --from RUN export_precision=P` (the converted
   Keras model, which each export was checked against), or for LiteRT the `.tflite` file itself
   run with ai-edge-litert on the test split;
3. CPU latency: the export's own signature on the app's probe inputs (the same for every precision),
   after a warm-up, the median over `--calls` calls, precisions interleaved call by call so that
   drift in the machine's load hits them alike, divided by the probe's batch size.

Writes benchmarks/results/export_precision.json and export_precision.md.
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
import time
from pathlib import Path

from latency import interleaved_seconds  # benchmarks/latency.py, beside this script

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).resolve().parent / "results"
PRECISIONS = ("float32", "float16", "int8")
WARMUP_CALLS = 3


def app_of(run: Path) -> str:
    return run.resolve().parent.name  # run folders are <run_root>/<app>/<time>-<command>


# The metrics each table row shows (the first of them is the one compared across precisions).
HEADLINE_PREFIXES = {"vision": ("test_accuracy",), "language": ("test_ppl_lstm", "test_ppl_mlp", "test_ppl_mixture"),
                     "speech": ("test_cer", "test_wer"), "translation": ("test_bleu",)}


def headline(app_name: str, metrics: dict) -> dict:
    prefixes = HEADLINE_PREFIXES.get(app_name, ("test_",))
    return {k: v for k, v in metrics.items() if k.startswith(prefixes) and isinstance(v, int | float)}


def train_quick(app, run_root: Path) -> Path:
    config = dataclasses.replace(app.quick(), run_root=str(run_root))
    return Path(app.run("train", config)["run_dir"])


def saved_model_rows(app, run: Path, run_root: Path) -> list[dict]:
    """Export, size and test metric of each SavedModel precision."""
    from dlsuite.apps.app import folder_size

    rows = []
    for precision in PRECISIONS:
        exported = app.run("export", app.resolve_config("export", run, overrides=[f"precision={precision}"]), run)
        overrides = [f"export_precision={precision}", f"run_root={run_root}"]  # evaluate's run folders go there
        metrics = app.run("evaluate", app.resolve_config("evaluate", run, overrides=overrides), run)
        variables = Path(exported["export_dir"]) / "variables"
        rows.append({"format": "saved_model", "precision": precision, "export_dir": exported["export_dir"],
                     "size_bytes": exported["size_bytes"],
                     "variables_bytes": folder_size(variables),
                     "export_max_gap": exported["export_max_gap"], "metrics": headline(app.name, metrics)})
    return rows


def saved_model_latency(app, run: Path, rows: list[dict], repeats: int) -> None:
    """Median seconds per example of each export on the app's probe inputs (interleaved calls)."""
    import tensorflow as tf

    probe = app.export_probe(app.trained_config(run), run, app.load_model(run))
    inputs = {name: tf.constant(value) for name, value in probe.inputs.items()}
    first = next(iter(probe.inputs.values()))
    batch = len(first) if getattr(first, "ndim", 1) > 1 or first.dtype == object else 1  # speech: one waveform
    for module in probe.imports:
        __import__(module)
    signatures = {row["precision"]: tf.saved_model.load(row["export_dir"]).signatures[probe.signature] for row in rows}
    calls = {precision: (lambda x, s=signature: s(**x)) for precision, signature in signatures.items()}
    samples = interleaved_seconds(calls, [inputs], repeats, WARMUP_CALLS)
    for row in rows:
        times = samples[row["precision"]]
        row |= {"latency_ms_per_example": 1e3 * statistics.median(times) / batch, "probe_batch": batch}


def litert_rows(app, run: Path, calls: int) -> list[dict]:
    """The LiteRT files of the apps that have a plan: size, test accuracy on the test split, latency."""
    import numpy as np

    from dlsuite.apps.app import App
    from dlsuite.shared.litert import LiteRTModel, run_litert

    if type(app).litert_plan is App.litert_plan:
        return []
    config = app.trained_config(run)
    test = test_arrays(app, config)
    rows = []
    for precision in PRECISIONS:
        exported = app.run("export", app.resolve_config("export", run, overrides=[f"precision={precision}",
                                                                                "format=litert"]), run)
        probabilities = run_litert(exported["export_dir"], [test["images"]])[0]
        accuracy = float(np.mean(np.argmax(probabilities, -1) == test["labels"]))
        litert_model = LiteRTModel(exported["export_dir"])  # loaded once, as a server would
        call = {precision: lambda x, model=litert_model: model([x])}
        times = interleaved_seconds(call, [test["images"][:64]], calls, WARMUP_CALLS)[precision]
        rows.append({"format": "litert", "precision": precision, "export_dir": exported["export_dir"],
                     "size_bytes": exported["size_bytes"], "export_max_gap": exported["export_max_gap"],
                     "top1_agreement": exported["top1_agreement"], "metrics": {"test_accuracy": accuracy},
                     "latency_ms_per_example": 1e3 * statistics.median(times) / 64, "probe_batch": 64})
    return rows


def test_arrays(app, config) -> dict:
    """The vision test split as arrays (decoded pixels, the LiteRT file's input)."""
    import numpy as np

    from dlsuite.apps.vision import train

    splits = train.load_splits(config, evaluation=True)
    images, labels = zip(*splits.test.as_numpy_iterator(), strict=True)
    return {"images": np.stack(images), "labels": np.array(labels)}


def table(results: list[dict]) -> str:
    lines = ["| app | format | precision | size (KB) | weights (KB) | vs float32 | test metric | latency ms/example | vs float32 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        for row in result["rows"]:
            base = next(r for r in result["rows"] if r["format"] == row["format"] and r["precision"] == "float32")
            metric = ", ".join(f"{k[5:]} {v:.4g}" for k, v in row["metrics"].items())
            weights, base_weights = row.get("variables_bytes", row["size_bytes"]), base.get("variables_bytes", base["size_bytes"])
            lines.append(f"| {result['app']} | {row['format']} | {row['precision']} | {row['size_bytes'] / 1e3:,.0f} | "
                         f"{weights / 1e3:,.0f} | {weights / base_weights:.2f}x | {metric} | "
                         f"{row['latency_ms_per_example']:.3f} | "
                         f"{row['latency_ms_per_example'] / base['latency_ms_per_example']:.2f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=[], help="trained run folders (any app)")
    parser.add_argument("--train", nargs="*", default=[], help="apps to train at the quick setting first")
    parser.add_argument("--run-root", default="runs/benchmarks/export_precision")
    parser.add_argument("--calls", type=int, default=30, help="timed calls per export")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from dlsuite.apps.cli import APPS

    runs = [Path(r) for r in args.runs] + [train_quick(APPS[a], Path(args.run_root)) for a in args.train]
    if not runs:
        parser.error("give --runs RUN_FOLDER... or --train APP...")
    results = []
    for run in runs:
        app = APPS[app_of(run)]
        started = time.perf_counter()
        rows = saved_model_rows(app, run, Path(args.run_root))
        saved_model_latency(app, run, rows, args.calls)
        rows += litert_rows(app, run, args.calls)
        results.append({"app": app.name, "run": str(run), "rows": rows, "seconds": time.perf_counter() - started})
        print(table(results[-1:]), flush=True)
    command = "  ".join([".venv/bin/python benchmarks/export_precision.py", shlex.join(sys.argv[1:])])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "export_precision.json").write_text(json.dumps(
        {"command": command, "machine": f"{platform.machine()}, {os.cpu_count()} cores", "results": results},
        indent=1, default=float))
    (RESULTS / "export_precision.md").write_text(f"```\n{command}\n```\n\n{table(results)}\n")
    print(table(results))


if __name__ == "__main__":
    main()
