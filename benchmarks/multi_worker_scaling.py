"""Synchronous data parallelism on one machine: 1 worker vs N workers (`dlsuite launch`), as ratios.

    .venv/bin/python benchmarks/multi_worker_scaling.py --workers 2 --epochs 10

Same app (vision, digits), same global batch, same epochs: each job is `dlsuite launch --workers K
-- vision train` with batch_size = global / K per worker. Reports each job's training examples/s
(from the chief's `train_seconds`), its wall time (including start-up and cluster formation), the
final training loss, and the ratios to 1 worker. On one machine the workers share its cores, so the
ratio measures the cost of the all-reduce and the extra processes, not the speed-up of more
machines (which needs machines, or a GPU per worker).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def last_json(text: str) -> dict:
    start = text.rfind("\n{") + 1
    return json.loads(text[start : text.find("\n}", start) + 2])


def run_job(workers: int, args, root: Path) -> dict:
    from dlsuite.apps.vision.config import VisionConfig
    from dlsuite.shared.config import config_to_yaml

    config = dataclasses.replace(VisionConfig(), epochs=args.epochs, batch_size=args.global_batch // workers,
                                 run_root=str(root / f"w{workers}"), augment=False)
    config_file = root / f"w{workers}.yaml"
    config_file.write_text(config_to_yaml(config))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dlsuite.apps.cli", "launch", "--workers", str(workers),
                           "--logs", str(root / f"logs{workers}"), "--", "vision", "train", "--config", str(config_file)],
                          capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result = last_json(done.stdout)
    examples = result["steps_per_epoch"] * args.global_batch * result["epochs_run"]  # the last batch counts whole
    return {"workers": workers, "train_seconds": result["train_seconds"], "wall_seconds": round(wall, 1),
            "examples_per_second": examples / result["train_seconds"], "final_loss": result["final_loss"],
            "test_accuracy": result["test_accuracy"], "steps_per_epoch": result["steps_per_epoch"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--global-batch", type=int, default=64)
    args = parser.parse_args()
    print(f"$ python {' '.join(shlex.quote(a) for a in sys.argv)}  ({os.cpu_count()} cores, {platform.processor()})")
    with tempfile.TemporaryDirectory() as root:
        rows = [run_job(k, args, Path(root)) for k in (1, args.workers)]
    base = rows[0]
    print("| workers | steps/epoch | train s | examples/s | vs 1 worker | wall s (with start-up) | final loss | test acc |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['steps_per_epoch']} | {r['train_seconds']:.1f} | {r['examples_per_second']:.0f} | "
              f"{r['examples_per_second'] / base['examples_per_second']:.2f}x | {r['wall_seconds']:.1f} | "
              f"{r['final_loss']:.4f} | {r['test_accuracy']:.4f} |")


if __name__ == "__main__":
    main()
