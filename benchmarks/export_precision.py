"""Exports at float32, float16 and int8 of the same run, per app: size on disk, test metric, CPU latency.

    .venv/bin/python benchmarks/export_precision.py --runs runs/main/vision/<run> runs/main/language/<run> ...
    .venv/bin/python benchmarks/export_precision.py --train vision language   # trains the quick setting first

For each run (the app is read from its folder's `command.json`), in one process:

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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).resolve().parent / "results"
PRECISIONS = ("float32", "float16", "int8")
WARMUP_CALLS = 3


def app_of(run: Path) -> str:
    return json.loads((run / "command.json").read_text())["app"]


def train_quick(app, run_root: Path) -> Path:
    config = dataclasses.replace(app.quick(), run_root=str(run_root))
    return Path(app.run("train", config)["run_dir"])


def saved_model_rows(app, run: Path) -> list[dict]:
    """Export, size and test metric of each SavedModel precision."""
    rows = []
    for precision in PRECISIONS:
        exported = app.run("export", app.resolve_config("export", run, overrides=[f"precision={precision}"]), run)
        metrics = app.run("evaluate", app.resolve_config("evaluate", run, overrides=[f"export_precision={precision}"]),
                          run)
        variables = Path(exported["export_dir"]) / "variables"
        rows.append({"format": "saved_model", "precision": precision, "export_dir": exported["export_dir"],
                     "size_bytes": exported["size_bytes"],
                     "variables_bytes": sum(f.stat().st_size for f in variables.rglob("*") if f.is_file()),
                     "export_max_gap": exported["export_max_gap"], "metrics": app.summary(metrics)})
    return rows


def saved_model_latency(app, run: Path, rows: list[dict], calls: int) -> None:
    """Median seconds per example of each export on the app's probe inputs (interleaved calls)."""
    import tensorflow as tf

    probe = app.export_probe(app.trained_config(run), run, app.load_model(run))
    inputs = {name: tf.constant(value) for name, value in probe.inputs.items()}
    batch = len(next(iter(probe.inputs.values())))
    for module in probe.imports:
        __import__(module)
    signatures = [tf.saved_model.load(row["export_dir"]).signatures[probe.signature] for row in rows]
    samples = [[] for _ in rows]
    for call in range(WARMUP_CALLS + calls):
        for signature, times in zip(signatures, samples, strict=True):
            start = time.perf_counter()
            signature(**inputs)
            if call >= WARMUP_CALLS:
                times.append(time.perf_counter() - start)
    for row, times in zip(rows, samples, strict=True):
        row |= {"latency_ms_per_example": 1e3 * statistics.median(times) / batch, "probe_batch": batch}


def litert_rows(app, run: Path, calls: int) -> list[dict]:
    """The LiteRT files of the apps that have a plan: size, test accuracy on the test split, latency."""
    import numpy as np

    from dlsuite.apps.app import App
    from dlsuite.shared.litert import run_litert

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
        times = []
        for call in range(WARMUP_CALLS + calls):
            start = time.perf_counter()
            run_litert(exported["export_dir"], [test["images"][:64]])
            if call >= WARMUP_CALLS:
                times.append(time.perf_counter() - start)
        rows.append({"format": "litert", "precision": precision, "export_dir": exported["export_dir"],
                     "size_bytes": exported["size_bytes"], "export_max_gap": exported["export_max_gap"],
                     "top1_agreement": exported["top1_agreement"], "metrics": {"test accuracy": accuracy},
                     # includes loading the interpreter once per call, as run_litert does
                     "latency_ms_per_example": 1e3 * statistics.median(times) / 64, "probe_batch": 64})
    return rows


def test_arrays(app, config) -> dict:
    """The vision test split as arrays (decoded pixels, the LiteRT file's input)."""
    import numpy as np

    from dlsuite.apps.vision import data

    splits = data.load_splits(config.data, config.image_size, config.channels, config.classes,
                              config.tfds_data_dir, config.split_seed)
    images, labels = zip(*splits.test.as_numpy_iterator(), strict=True)
    return {"images": np.stack(images), "labels": np.array(labels)}


def table(results: list[dict]) -> str:
    lines = ["| app | format | precision | size (KB) | vs float32 | test metric | latency ms/example | vs float32 |",
             "|---|---|---|---|---|---|---|---|"]
    for result in results:
        for row in result["rows"]:
            base = next(r for r in result["rows"] if r["format"] == row["format"] and r["precision"] == "float32")
            metric = ", ".join(f"{k} {v:.4g}" for k, v in row["metrics"].items() if "seconds" not in k)
            lines.append(f"| {result['app']} | {row['format']} | {row['precision']} | {row['size_bytes'] / 1e3:,.0f} | "
                         f"{row['size_bytes'] / base['size_bytes']:.2f}x | {metric} | "
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
        rows = saved_model_rows(app, run)
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
