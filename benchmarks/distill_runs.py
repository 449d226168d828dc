"""The runs every distillation benchmark compares, made the same way for every app.

    from distill_runs import sentence_latencies, train_teacher_and_students   # beside the scripts

One training budget for all: the teacher (`train`), the student from scratch (`train` with the
student's model fields) and the student distilled at each temperature (`distill --from teacher`),
each exported and checked through the app contract.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from latency import WARMUP_CALLS, interleaved_seconds

LATENCY_BATCH = 64

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, text: list[str], payload: dict) -> None:
    """benchmarks/results/<name>.md (the printed report) and <name>.json (settings, rows, samples)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text("\n".join(text))
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1, default=str))
    print(f"wrote {RESULTS / name}.json and {name}.md")


def train_teacher_and_students(app, base, student: dict, temperatures) -> dict:
    """name -> run folder for the teacher, the student from scratch and the students distilled."""
    runs = {"teacher": app.run("train", base)["run_dir"]}
    runs["student, scratch"] = app.run("train", dataclasses.replace(base, **student))["run_dir"]
    for temperature in temperatures:
        overrides = [f"{key}={value}" for key, value in student.items()] + [
            f"distill_temperature={temperature}", f"run_root={base.run_root}"]
        distill = app.resolve_config("distill", runs["teacher"], overrides=overrides)
        runs[f"student, distilled (T={temperature:g})"] = app.run("distill", distill, runs["teacher"])["run_dir"]
    for run_dir in runs.values():
        exported = app.run("export", app.resolve_config("export", run_dir), run_dir)
        assert exported["export_agrees"], exported
    return runs


def sentence_latencies(runs: dict, sentences: list[str], output: str, calls: int) -> dict:
    """name -> {batch size -> seconds per call} of each export's `serving_default(sentences=...)`
    (its `output` fetched), at batch 64 and 1, interleaved."""
    import tensorflow as tf

    loaded = {name: tf.saved_model.load(str(Path(run_dir) / "export")) for name, run_dir in runs.items()}
    calls_of = {name: (lambda b, s=obj.signatures["serving_default"]: s(sentences=b)[output].numpy())
                for name, obj in loaded.items()}
    by_size = {size: interleaved_seconds(calls_of, [tf.constant(sentences[:size])], repeats, WARMUP_CALLS)
               for size, repeats in ((LATENCY_BATCH, calls), (1, 2 * calls))}
    return {name: {size: by_size[size][name] for size in by_size} for name in calls_of}
