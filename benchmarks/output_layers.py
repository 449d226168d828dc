"""Training-step time and peak memory of the large-vocabulary output layers (eqs. 12.8-12.19).

    .venv/bin/python benchmarks/output_layers.py [--vocab 10000,50000,200000] [--hidden 256]
        [--batch 256] [--steps 7] [--quick] [--out benchmarks/results/output_layers.md]

For every vocabulary size V and every output kind (shared/layers/vocabulary_outputs.py), one
training step on synthetic Zipf-distributed token ids: a small input projection (Dense, 64 ->
hidden, tanh) feeding the output layer's `training_loss`, forward + backward + Adam update of
both, inside one `tf.function`. Reported: the median time of --steps steps after --warmup steps
(the first one traces), the time of forward + backward alone (no optimizer update: Adam's update
is dense, O(V H), whatever the layer), and the peak memory.

Memory: each (kind, V) runs in a fresh subprocess; peak MB = `ru_maxrss` (the process's peak
resident set) minus the resident set measured just before the layer and the optimizer are built
(TensorFlow imported, the synthetic batches generated). It counts the weights, Adam's two
moments, gradients and every temporary of the step; TensorFlow's allocator may keep freed
blocks, which a peak includes anyway.

Prints a Markdown table with ratios against the full softmax measured in the same run, and
writes it, with the exact command, to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

KINDS = ("full", "shortlist", "hierarchical_classes", "huffman", "sampled", "nce", "ranking")
INPUT_DIM = 64


def current_rss_mb() -> float:
    """Resident set now, from /proc (ru_maxrss only gives the peak)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def zipf_counts(vocab_size: int, exponent: float = 1.0):
    """Unigram counts ~ 1 / rank^s over a billion tokens (ids by decreasing frequency)."""
    import numpy as np

    p = 1.0 / np.arange(1, vocab_size + 1) ** exponent
    return np.maximum(np.round(1e9 * p / p.sum()), 1).astype(np.int64)


def measure(kind: str, vocab_size: int, args) -> dict:
    """One (kind, V) in this process: ms per training step, ms per forward+backward, peak MB."""
    import keras
    import numpy as np
    import tensorflow as tf

    from dlsuite.shared.layers import make_vocabulary_output
    from dlsuite.shared.optim import LazyAdam

    counts = zipf_counts(vocab_size)
    rng = np.random.default_rng(0)
    n_batches = args.warmup + args.steps
    ids = rng.choice(vocab_size, (n_batches, args.batch), p=counts / counts.sum()).astype(np.int32)
    features = rng.normal(0, 1, (n_batches, args.batch, INPUT_DIM)).astype(np.float32)
    keras.utils.set_random_seed(0)
    rss_before = current_rss_mb()

    options = {}
    if kind == "shortlist":
        options["shortlist_size"] = args.shortlist_size or vocab_size // 10
    if kind in ("sampled", "nce", "ranking"):
        options["num_samples"] = min(args.samples, vocab_size - 1)
    if kind == "hierarchical_classes" and args.num_classes:
        options["num_classes"] = args.num_classes
    projection = keras.layers.Dense(args.hidden, activation="tanh")
    projection.build((None, INPUT_DIM))
    output = make_vocabulary_output(kind, vocab_size, counts, args.hidden, **options)
    variables = projection.trainable_variables + output.trainable_variables
    optimizer = LazyAdam(1e-3) if args.optimizer == "lazy_adam" else keras.optimizers.Adam(1e-3)
    optimizer.build(variables)

    def loss_and_gradients(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(output.training_loss(projection(x), y))
        return loss, tape.gradient(loss, variables)

    @tf.function
    def train_step(x, y):
        loss, gradients = loss_and_gradients(x, y)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return loss

    @tf.function
    def forward_backward(x, y):
        # One scalar per gradient: every gradient is computed, none is copied out (a dense
        # [V, H] copy would bill the full softmax for memory traffic that training never does).
        loss, gradients = loss_and_gradients(x, y)
        sums = [
            tf.reduce_sum(g.values if isinstance(g, tf.IndexedSlices) else g) for g in gradients
        ]
        return tf.stack([loss, *sums])

    def median_ms(step) -> float:
        times = []
        for i in range(n_batches):
            x, y = tf.constant(features[i]), tf.constant(ids[i])
            start = time.perf_counter()
            step(x, y).numpy()
            if i >= args.warmup:
                times.append(1e3 * (time.perf_counter() - start))
        return statistics.median(times)

    step_ms = median_ms(train_step)
    fwd_bwd_ms = median_ms(forward_backward)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before  # KiB on Linux
    return {
        "kind": kind,
        "vocab": vocab_size,
        "step_ms": step_ms,
        "fwd_bwd_ms": fwd_bwd_ms,
        "peak_mb": peak_mb,
        "params": int(sum(np.prod(v.shape) for v in output.trainable_variables)),
    }


def run_worker(kind: str, vocab_size: int, args) -> dict:
    """`measure` in a fresh interpreter, so that ru_maxrss is this (kind, V)'s own peak."""
    command = [sys.executable, __file__, "--worker", kind, str(vocab_size), *worker_flags(args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} V={vocab_size} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker_flags(args) -> list[str]:
    flags = [
        "--hidden",
        str(args.hidden),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--samples",
        str(args.samples),
        "--optimizer",
        args.optimizer,
    ]
    flags += ["--shortlist-size", str(args.shortlist_size)] if args.shortlist_size else []
    return flags + (["--num-classes", str(args.num_classes)] if args.num_classes else [])


def table(results: list[dict]) -> str:
    full = {r["vocab"]: r for r in results if r["kind"] == "full"}
    lines = [
        "| kind | V | ms/step | speed-up vs full | fwd+bwd ms | fwd+bwd speed-up | peak MB | memory vs full |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = full[r["vocab"]]
        lines.append(
            f"| {r['kind']} | {r['vocab']:,} | {r['step_ms']:.1f} | {base['step_ms'] / r['step_ms']:.2f}x "
            f"| {r['fwd_bwd_ms']:.1f} | {base['fwd_bwd_ms'] / r['fwd_bwd_ms']:.2f}x "
            f"| {r['peak_mb']:.0f} | {r['peak_mb'] / base['peak_mb']:.2f}x |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--vocab", default="10000,50000,200000", help="comma-separated vocabulary sizes"
    )
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated output kinds")
    parser.add_argument("--optimizer", default="adam", choices=("adam", "lazy_adam"),
                        help="lazy_adam (shared/optim.py) updates only the rows a sparse gradient touches")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256, help="tokens per step")
    parser.add_argument("--steps", type=int, default=7, help="timed steps (the median is reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing)")
    parser.add_argument("--samples", type=int, default=256, help="m for sampled | nce | ranking")
    parser.add_argument("--shortlist-size", type=int, default=0, help="default: V // 10")
    parser.add_argument("--num-classes", type=int, default=0,
                        help="classes of the class tree (default: the layer's, round(sqrt V))")
    parser.add_argument("--quick", action="store_true", help="smoke run: V=1000,5000, 2 steps")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per (kind, V) subprocess")
    parser.add_argument("--out", default="benchmarks/results/output_layers.md")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "V"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker[0], int(args.worker[1]), args)))
        return None
    if args.quick:
        args.vocab, args.steps, args.warmup = "1000,5000", 2, 1
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    print(f"$ {command}", flush=True)
    kinds = [k for k in args.kinds.split(",") if k != "full"]
    results, start = [], time.perf_counter()
    for vocab_size in (int(v) for v in args.vocab.split(",")):
        for kind in ["full", *kinds]:  # the baseline first
            results.append(run_worker(kind, vocab_size, args))
            r = results[-1]
            print(
                f"  {kind:>20} V={vocab_size:>7,}: {r['step_ms']:8.1f} ms/step, "
                f"{r['fwd_bwd_ms']:8.1f} ms fwd+bwd, {r['peak_mb']:7.0f} MB",
                flush=True,
            )
    import tensorflow as tf  # only for the device line

    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    header = (
        f"device: {device}, {platform.processor() or platform.machine()}; hidden {args.hidden}, "
        f"{args.batch} tokens/step (Zipf ids, s=1), input projection {INPUT_DIM}->{args.hidden}; "
        f"{'LazyAdam' if args.optimizer == 'lazy_adam' else 'Adam'}; median of {args.steps} steps after {args.warmup} warm-up; m={args.samples} samples; "
        f"shortlist {args.shortlist_size or 'V//10'}; class tree: {args.num_classes or 'default'} classes; total {time.perf_counter() - start:.0f} s.\n\n"
        "ms/step: forward + backward + optimizer update of the projection and the output layer, in "
        "one tf.function. fwd+bwd: the same without the update (Keras' Adam densifies sparse "
        "gradients, so its update is O(V H) for every kind; LazyAdam's is O(rows touched)). Peak MB: ru_maxrss of a fresh process per (kind, V) minus its resident set "
        "just before the layer and optimizer were built (weights, Adam moments, gradients and "
        "temporaries)."
    )
    report = f"$ {command}\n\n{header}\n\n{table(results)}\n"
    print("\n" + header + "\n\n" + table(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    return results


if __name__ == "__main__":
    main()
