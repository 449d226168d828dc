"""Synchronous vs asynchronous (parameter-server) training on one machine: 1 worker, 2 workers, 2 workers + 1 ps.

    .venv/bin/python benchmarks/sync_vs_async.py --epochs 2 --global-batch 128 --max-length 12

The language app on the KJV with its largest vocabulary (word tokenizer, vocab_min_count=1: every
word of the training split) and a full softmax over it (output=full), an LSTM LM without the
mixture (mixture=false, ngram_order=2: the n-gram is only built, not studied). Same data, same
settings, same epochs; three jobs:

- 1 worker: `dlsuite language train`, batch_size = B (the global batch);
- synchronous: `dlsuite launch --workers 2 -- language train`, batch_size = B/2 per worker; each
  step all-reduces the gradients of B examples (MultiWorkerMirroredStrategy);
- asynchronous: `dlsuite launch --workers 2 --ps 1 -- language train`, batch_size = B/2; each worker
  step applies its own batch's update to the parameter server's variables without waiting
  (shared/parameter_server.py), so an epoch is twice the updates, each of half the examples.

Reports per job: training examples/s (training sentences x epochs / the chief's train_seconds),
wall seconds (with start-up, n-gram and evaluation), updates, final training loss, validation
loss, the neural LM's test perplexity, mean staleness (asynchronous), and the loss after a fixed
wall-clock budget: the mean per-step loss of the last 20 steps finished before T seconds on each
job's loss curve, T = the shortest job's training time on that clock (its last step), all as
ratios to 1 worker. Writes benchmarks/results/sync_vs_async.json (figures, settings, the three
loss curves) and sync_vs_async.png (loss per update and per second). On one machine the
processes share its cores: the figures measure synchronization and staleness, not the speed-up of
more machines.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# (label, workers, parameter servers)
JOBS = (("1 worker", 1, 0), ("2 workers, sync", 2, 0), ("2 workers + 1 ps, async", 2, 1))
BUDGET_STEPS = 20  # steps averaged for the loss at the wall-clock budget


def last_json(text: str) -> dict:
    start = text.rfind("\n{") + 1
    return json.loads(text[start : text.find("\n}", start) + 2])


def job_config(workers: int, args, root: Path):
    from dlsuite.apps.language.config import LanguageConfig

    return dataclasses.replace(
        LanguageConfig(), corpus="kjv", tokenizer="word", vocab_min_count=1, vocab_max_size=0, output="full",
        model="lstm", mixture=False, class_ngram_classes=0, ngram_order=2, epochs=args.epochs,
        batch_size=args.global_batch // workers, max_length=args.max_length, hidden_dim=args.hidden_dim,
        embedding_dim=args.embedding_dim, run_root=str(root / f"runs-{workers}"))


def job_command(workers: int, ps: int, config_file: Path, root: Path, timeout: float) -> list[str]:
    app = ["language", "train", "--config", str(config_file)]
    if workers == 1 and not ps:
        return [sys.executable, "-m", "dlsuite.apps.cli", *app]
    return [sys.executable, "-m", "dlsuite.apps.cli", "launch", "--workers", str(workers), "--ps", str(ps),
            "--timeout", str(timeout), "--logs", str(root / f"logs-{workers}-{ps}"), "--", *app]


def run_bounded(command: list[str], cwd: Path, timeout: float) -> tuple[int, str, str]:
    """Runs `command` in its own process group; kills the whole group (launcher and tasks) after `timeout` s."""
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        return 124, out, err + f"\n[benchmark] killed after {timeout:g} s"
    return proc.returncode, out, err


def failure_report(label: str, code: int, err: str, root: Path) -> str:
    noise = ("I0000", "W0000", "E0000", "WARNING: All log messages")
    lines = [line for line in err.splitlines() if not line.startswith(noise)]
    report = [f"job '{label}' exited with status {code}:", *lines[-40:]]
    for log in sorted(root.glob("logs-*/*.log")):
        report += [f"--- {log.name} (last lines)", *log.read_text(errors="replace").splitlines()[-15:]]
    return "\n".join(report)


def run_job(label: str, workers: int, ps: int, args, root: Path) -> dict:
    from dlsuite.shared.config import config_to_yaml

    config_file = root / f"job-{workers}-{ps}.yaml"
    config_file.write_text(config_to_yaml(job_config(workers, args, root)))
    print(f"[benchmark] {label} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    code, out, err = run_bounded(job_command(workers, ps, config_file, root, args.timeout), root, args.timeout + 60)
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(failure_report(label, code, err, root))
    metrics = last_json(out)
    run_dir = Path(metrics["run_dir"])
    curve = json.loads((run_dir / "loss_curve.json").read_text())
    corpus = json.loads((run_dir / "corpus.json").read_text())
    examples = corpus["train_sentences"] * metrics["epochs_run"]
    ppl_key = next(k for k in metrics if k.startswith("test_ppl_") and "ngram" not in k)
    row = {"job": label, "workers": workers, "parameter_servers": ps, "batch_per_step": args.global_batch // workers
           if ps else args.global_batch, "updates": len(curve["step"]), "train_seconds": metrics["train_seconds"],
           "wall_seconds": round(wall, 1), "examples_per_second": examples / metrics["train_seconds"],
           "final_loss": metrics["final_loss"], "final_val_loss": metrics["final_val_loss"],
           "test_ppl": metrics[ppl_key], "test_ppl_key": ppl_key, "test_ppl_ngram": metrics.get("test_ppl_ngram_2"),
           "last_step_seconds": curve["seconds"][-1], "vocabulary_size": metrics["vocabulary_size"],
           "parameters": metrics["parameters"], "loss_per_epoch": metrics["loss_per_epoch"]}
    if "staleness" in curve:
        row["mean_staleness"] = sum(curve["staleness"]) / len(curve["staleness"])
        row["max_staleness"] = max(curve["staleness"])
    print(f"[benchmark] {label}: {row['train_seconds']:.1f} s training, {wall:.0f} s wall", file=sys.stderr, flush=True)
    return row | {"curve": curve}


def loss_at_budget(curve: dict, budget: float, steps: int = BUDGET_STEPS) -> float:
    """Mean per-step loss of the last `steps` steps finished by `budget` seconds."""
    done = [loss for seconds, loss in sorted(zip(curve["seconds"], curve["loss"], strict=True)) if seconds <= budget]
    tail = done[-steps:]
    return sum(tail) / len(tail) if tail else float("nan")


RATIO_KEYS = ("examples_per_second", "wall_seconds", "updates", "final_loss", "final_val_loss", "test_ppl",
              "loss_at_budget")


def add_ratios(rows: list[dict]) -> float:
    """Loss at the budget and ratios to the first row (1 worker); returns the budget T."""
    budget = min(r["last_step_seconds"] for r in rows)
    for r in rows:
        r["loss_at_budget"] = loss_at_budget(r["curve"], budget)
        r["ratios"] = {k: r[k] / rows[0][k] for k in RATIO_KEYS}
    return budget


def save_plot(rows: list[dict], budget: float, path: Path) -> None:
    from dlsuite.shared.plots import loss_curve_figure

    fig = loss_curve_figure({r["job"]: r["curve"] for r in rows})
    fig.axes[1].axvline(budget, color="gray", linestyle="--", linewidth=1)
    fig.axes[1].annotate(f"T = {budget:.0f} s", (budget, 0.97), xycoords=("data", "axes fraction"),
                         ha="right", va="top", fontsize=8, color="gray")
    fig.suptitle("KJV word LM, full softmax: 1 worker vs 2 synchronous vs 2 asynchronous workers (moving average, 20 steps)",
                 fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def markdown_table(rows: list[dict], budget: float) -> str:
    head = ("| job | batch / update | updates | train s | examples/s | wall s | final loss | val loss | test ppl | "
            f"loss at T={budget:.0f} s | mean staleness |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        q = r["ratios"]
        stale = f"{r['mean_staleness']:.2f} (max {r['max_staleness']})" if "mean_staleness" in r else "0"
        lines.append(
            f"| {r['job']} | {r['batch_per_step']} | {r['updates']} ({q['updates']:.2f}x) | {r['train_seconds']:.1f} | "
            f"{r['examples_per_second']:.0f} ({q['examples_per_second']:.2f}x) | {r['wall_seconds']:.0f} "
            f"({q['wall_seconds']:.2f}x) | {r['final_loss']:.3f} ({q['final_loss']:.3f}x) | {r['final_val_loss']:.3f} "
            f"({q['final_val_loss']:.3f}x) | {r['test_ppl']:.1f} ({q['test_ppl']:.3f}x) | {r['loss_at_budget']:.3f} "
            f"({q['loss_at_budget']:.3f}x) | {stale} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--global-batch", type=int, default=128, help="B: 1 worker's batch; B/2 per worker step")
    parser.add_argument("--max-length", type=int, default=12, help="sentences cut to this many tokens")
    parser.add_argument("--hidden-dim", type=int, default=64)
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=900, help="seconds each job may take")
    args = parser.parse_args()
    command = f"python {' '.join(shlex.quote(a) for a in sys.argv)}"
    print(f"$ {command}  ({os.cpu_count()} cores, {platform.processor() or platform.machine()})", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sync-vs-async-") as root:
        rows = [run_job(label, workers, ps, args, Path(root)) for label, workers, ps in JOBS]
    budget = add_ratios(rows)
    total = time.perf_counter() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_plot(rows, budget, RESULTS / "sync_vs_async.png")
    settings = dataclasses.asdict(job_config(1, args, Path("<tmp>")))
    result = {"command": command, "cores": os.cpu_count(), "machine": platform.platform(),
              "date": time.strftime("%Y-%m-%d"), "benchmark_seconds": round(total, 1), "budget_seconds": budget,
              "budget_steps": BUDGET_STEPS, "settings": settings, "jobs": rows}
    (RESULTS / "sync_vs_async.json").write_text(json.dumps(result, indent=1))
    print(markdown_table(rows, budget))
    print(f"\nT = {budget:.1f} s; benchmark {total:.0f} s; wrote {RESULTS / 'sync_vs_async.json'} and .png")


if __name__ == "__main__":
    main()
