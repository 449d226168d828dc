"""Distillation on the KJV: the LSTM teacher, the small student from scratch, the student distilled, one budget.

    .venv/bin/python benchmarks/distillation_language.py            # about 15 minutes on 2 CPU cores
    .venv/bin/python benchmarks/distillation_language.py --quick    # the same story on 3,000 verses

The language app in-process (`APPS["language"]`), every run in a temporary folder:

1. the teacher: `dlsuite language train` with the quick preset's optimizer (batch 64, AdamW 3e-3)
   and the full softmax output (distillation needs the whole next-word distribution), at
   --teacher-hidden / --teacher-embedding;
2. the student from scratch: the same command and budget with the student's sizes
   (--student-model lstm | mlp, --student-hidden, --student-embedding);
3. the student distilled: `dlsuite language distill --from <teacher>` with the student's sizes,
   the same epochs, batch, learning rate and data (so the same number of updates), once per
   temperature of --temperatures (4: the app's default, Hinton et al.'s classifier setting; 1: the
   word-level distillation of Kim & Rush 2016), at the app's label weight unless --label-weight;
4. every run exported (`dlsuite language export`) and its SavedModel timed on the CPU: loaded with
   plain `tf.saved_model.load`, `serving_default(sentences=...)` on 64 raw test verses and on 1,
   after a warm-up, the median over --calls calls (the models interleaved call by call, so that
   drift in the shared machine's load hits them alike). Latency is per sentence (a verse: raw text
   in, normalization, tokenization, every token's log-probability and the next-word distribution
   out); the mean tokens per timed verse is reported beside it.

All three share one vocabulary (the words seen twice in training, at most --vocab-max-size, the
rest <unk>), so their perplexities compare. Reported per model: parameters, test perplexity of the
neural model and of its mixture with the 3-gram (weight tuned on the validation split), train
seconds, latency, and ratios to the teacher.

Writes benchmarks/results/distillation_language.json (settings, rows, latency samples) and .md.
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



def make_corpus(train_verses: int, folder: Path) -> str:
    """The KJV itself, or (train_verses > 0) its first training verses with the whole validation
    and test splits, as text files: the `corpus` setting of every run."""
    if not train_verses:
        return "kjv"
    from dlsuite.pipelines.text import load_kjv

    kjv = load_kjv()
    folder.mkdir(parents=True, exist_ok=True)
    for name, verses in (("train", kjv.train[:train_verses]), ("valid", kjv.valid), ("test", kjv.test)):
        (folder / f"{name}.txt").write_text("\n".join(verses) + "\n")
    return f"text:{folder}"


def base_config(app, args, corpus: str, root: Path):
    """The teacher's setting; the students change only the model fields."""
    return dataclasses.replace(
        app.quick(), corpus=corpus, output="full", epochs=args.epochs, hidden_dim=args.teacher_hidden,
        embedding_dim=args.teacher_embedding, vocab_max_size=args.vocab_max_size, ngram_order=3,
        class_ngram_classes=0, run_root=str(root),
        **({"distill_label_weight": args.label_weight} if args.label_weight is not None else {}))


def student_fields(args) -> dict:
    return {"model": args.student_model, "hidden_dim": args.student_hidden, "embedding_dim": args.student_embedding}


def train_models(app, base, args) -> dict:
    return train_teacher_and_students(app, base, student_fields(args), args.temperatures)


def latencies(runs: dict, sentences: list[str], calls: int) -> dict:
    return sentence_latencies(runs, sentences, "sentence_log_prob", calls)


def rows_of(app, runs: dict, samples: dict) -> list[dict]:
    rows = []
    for name, run_dir in runs.items():
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        config = app.trained_config(run_dir)
        per_sentence = {size: statistics.median(s) / size for size, s in samples[name].items()}
        rows.append({"model": name, "vocabulary_size": metrics["vocabulary_size"], "body": config.model, "hidden_dim": config.hidden_dim,
                     "embedding_dim": config.embedding_dim, "parameters": metrics["parameters"],
                     "test_ppl": metrics[f"test_ppl_{config.model}_full"], "test_ppl_mixture": metrics["test_ppl_mixture"],
                     "test_ppl_ngram_3": metrics["test_ppl_ngram_3"], "train_seconds": metrics["train_seconds"],
                     "epochs_run": metrics["epochs_run"], "steps_per_epoch": metrics["steps_per_epoch"],
                     "latency_ms_per_sentence_b64": 1e3 * per_sentence[LATENCY_BATCH],
                     "latency_ms_b1": 1e3 * per_sentence[1],
                     **{k: metrics[k] for k in ("teacher_parameters", "compression", "test_ppl_teacher") if k in metrics}})
    for r in rows:
        for key in ("parameters", "test_ppl", "latency_ms_per_sentence_b64", "latency_ms_b1", "train_seconds"):
            r[f"{key}_vs_teacher"] = r[key] / rows[0][key]
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | body | parameters | vs teacher | test ppl | with 3-gram | train s | ms/sentence, batch 64 "
             "| vs teacher | ms/sentence, batch 1 | vs teacher |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['body']} {r['hidden_dim']}, emb {r['embedding_dim']} | {r['parameters']:,} | "
                     f"{r['parameters_vs_teacher']:.3f}x | {r['test_ppl']:.1f} | {r['test_ppl_mixture']:.1f} | "
                     f"{r['train_seconds']:.0f} | {r['latency_ms_per_sentence_b64']:.3f} | "
                     f"{r['latency_ms_per_sentence_b64_vs_teacher']:.2f}x | {r['latency_ms_b1']:.2f} | "
                     f"{r['latency_ms_b1_vs_teacher']:.2f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 training verses, 5 timed calls: a check in minutes")
    parser.add_argument("--train-verses", type=int, default=0, help="the first N training verses (0: all 28,074)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--vocab-max-size", type=int, default=4000)
    parser.add_argument("--teacher-hidden", type=int, default=128)
    parser.add_argument("--teacher-embedding", type=int, default=64)
    parser.add_argument("--student-model", choices=("lstm", "mlp"), default="lstm")
    parser.add_argument("--student-hidden", type=int, default=32)
    parser.add_argument("--student-embedding", type=int, default=32)
    parser.add_argument("--temperatures", type=lambda s: [float(t) for t in s.split(",")], default=[1.0, 4.0],
                        help="one distilled student per temperature")
    parser.add_argument("--label-weight", type=float, default=None, help="default: the app's distill_label_weight")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per model at batch 64 (twice as many at 1)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave benchmarks/results/ alone")
    args = parser.parse_args()
    if args.quick:
        args.train_verses, args.calls = args.train_verses or 3000, 5
    command = f"$ .venv/bin/python {' '.join(shlex.quote(a) for a in sys.argv)}"
    print(f"{command}  ({os.cpu_count()} cores, {platform.processor() or platform.machine()})", flush=True)

    import keras
    import numpy as np
    import tensorflow as tf

    from dlsuite.apps.cli import APPS
    from dlsuite.pipelines.text import load_kjv, normalize

    app = APPS["language"]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="distillation-language-") as root:
        base = base_config(app, args, make_corpus(args.train_verses, Path(root) / "corpus"), Path(root) / "runs")
        runs = train_models(app, base, args)
        train_wall = time.perf_counter() - start
        sentences = load_kjv().test[:LATENCY_BATCH]
        samples = latencies(runs, sentences, args.calls)
        rows = rows_of(app, runs, samples)
    total = time.perf_counter() - start
    tokens = float(np.mean([len(normalize(s).split()) + 1 for s in sentences]))  # the words and </s>

    settings = {f: getattr(base, f) for f in ("epochs", "batch_size", "learning_rate", "vocab_min_count",
                                              "vocab_max_size", "distill_label_weight")}
    text = [command, "", f"{os.cpu_count()} CPU cores (shared), TensorFlow {tf.__version__}, Keras {keras.__version__}; "
            f"{total:.0f} s for the whole benchmark (training + exports {train_wall:.0f} s).", "",
            f"KJV, {args.train_verses or 'all'} training verses, vocabulary of {rows[0]['vocabulary_size']} entries (words "
            f"seen twice, at most {settings['vocab_max_size']}); {settings['epochs']} epoch(s) of "
            f"{rows[0]['steps_per_epoch']} steps for every model, batch {settings['batch_size']}, AdamW "
            f"{settings['learning_rate']:g}; distilled with label weight {settings['distill_label_weight']:g}. Latency per sentence: median of {args.calls} calls at batch "
            f"{LATENCY_BATCH}, {2 * args.calls} at batch 1 (timed verses: {tokens:.1f} tokens on average).", "",
            table(rows), ""]
    print("\n".join(text))
    if not args.no_write:
        write_results("distillation_language", text,
            {"command": command, "cores": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
             "total_seconds": round(total, 1), "train_verses": args.train_verses or "all", "settings": settings,
             "student": student_fields(args), "temperatures": args.temperatures, "latency_batch": LATENCY_BATCH, "warmup_calls": WARMUP_CALLS,
             "calls_b64": args.calls, "calls_b1": 2 * args.calls, "mean_tokens_per_timed_sentence": tokens,
             "rows": rows, "latency_samples_s": {n: {str(k): v for k, v in s.items()} for n, s in samples.items()}})


if __name__ == "__main__":
    main()
