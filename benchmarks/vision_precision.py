"""Training throughput of the vision model in float32 vs mixed precision, as ratios.

    .venv/bin/python benchmarks/vision_precision.py --size 64 --batch 256 --widths 64,128,256

Same model (augmentation -> GCN -> residual CNN -> head), same in-memory data, one
run: examples/s for each dtype policy and the speed-up over float32. Data come as
NumPy arrays so the script also runs under Keras' JAX backend (KERAS_BACKEND=jax),
which is how the GPU figures in BENCHMARKS.md were taken (the lent GPU machine has
JAX but no TensorFlow, and a TensorFlow wheel is too large to carry there).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from dlsuite.apps.vision.model import build_augmentation, build_model  # noqa: E402


def examples_per_second(policy, images, labels, args) -> float:
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    widths = tuple(int(w) for w in args.widths.split(","))
    augmentation = build_augmentation() if args.augment else None
    model = build_model(10, args.size, 3, "gcn", widths=widths, augmentation=augmentation)
    model.compile(keras.optimizers.AdamW(1e-3), "sparse_categorical_crossentropy", jit_compile=True)
    warm = args.batch * 3
    model.fit(images[:warm], labels[:warm], batch_size=args.batch, epochs=1, verbose=0)  # compile
    start = time.perf_counter()
    model.fit(images, labels, batch_size=args.batch, epochs=args.epochs, verbose=0, shuffle=False)
    return len(images) * args.epochs / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--widths", default="32,64,128")
    parser.add_argument("--augment", action="store_true", help="include the augmentation layers")
    parser.add_argument("--policies", default="float32,mixed_bfloat16,mixed_float16")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (args.examples, args.size, args.size, 3)).astype(np.float32)
    labels = rng.integers(0, 10, args.examples)
    rates = {p: examples_per_second(p, images, labels, args) for p in args.policies.split(",")}
    base = rates.get("float32") or next(iter(rates.values()))
    print(f"\nbackend {keras.backend.backend()}, devices {keras.distribution.list_devices()[:1]}, "
          f"{args.size}x{args.size}x3, batch {args.batch}, widths {args.widths}, "
          f"augmentation {'on' if args.augment else 'off'}\n")
    print("| policy | examples/s | vs float32 |\n|---|---|---|")
    for policy, rate in rates.items():
        print(f"| {policy} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
