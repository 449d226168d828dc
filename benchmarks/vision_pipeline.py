"""Vision input-pipeline and training throughput: dlsuite against keras-io-style baselines.

    .venv/bin/python benchmarks/vision_pipeline.py [--images 3000] [--size 64] [--pipeline-epochs 5]

Writes a folder of PNG digits (upscaled to --size, RGB, like a user's photo folder),
then, in one run:
  * input pipeline images/s over --pipeline-epochs passes (best of 3) (decode + resize + batch):
      - ours: `pipelines.images.load_image_folder` + `batch_images` (parallel decode,
        cache, shuffle, prefetch, AUTOTUNE);
      - keras-io: `keras.utils.image_dataset_from_directory` (+ prefetch), the loader
        of keras-io's image_classification_from_scratch example;
      - naive: `Dataset.from_tensor_slices(paths).map(load).batch()` with no parallelism;
  * training examples/s of the same vision model fed by each pipeline.
Prints a Markdown table of absolute numbers and ratios against each baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dlsuite.apps.vision.model import build_augmentation, build_model  # noqa: E402
from dlsuite.pipelines.images import batch_images, load_digits_arrays, load_image_folder  # noqa: E402


def write_folder(root: Path, n: int, size: int) -> Path:
    images, labels, _ = load_digits_arrays()
    for i in range(n):
        image = tf.image.resize(images[i % len(images)], (size, size))
        rgb = tf.cast(tf.image.grayscale_to_rgb(image) * 255, tf.uint8)
        folder = root / str(labels[i % len(labels)])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.png").write_bytes(tf.io.encode_png(rgb).numpy())
    return root


def ours(root, size, batch):
    splits = load_image_folder(root, size, 3)
    # All images in train for the benchmark: concatenate the three splits.
    ds = splits.train.concatenate(splits.validation).concatenate(splits.test)
    return batch_images(ds, batch, training=True)


def keras_io(root, size, batch):
    ds = keras.utils.image_dataset_from_directory(
        root, image_size=(size, size), batch_size=batch, label_mode="int", verbose=False
    )
    return ds.map(lambda x, y: (x / 255.0, y)).prefetch(tf.data.AUTOTUNE)


def naive(root, size, batch):
    paths = sorted(str(p) for p in Path(root).rglob("*.png"))
    labels = [int(Path(p).parent.name) for p in paths]

    def load(path, label):
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)
        return tf.image.resize(tf.cast(image, tf.float32) / 255.0, (size, size)), label

    return tf.data.Dataset.from_tensor_slices((paths, labels)).shuffle(len(paths)).map(load).batch(batch)


def pipeline_rate(build, epochs: int, repeats: int = 3) -> float:
    """Images per second over `epochs` full passes (the first pass includes decoding).

    The best of `repeats` fresh pipelines, to keep the noise of a shared machine out.
    """
    rates = []
    for _ in range(repeats):
        ds = build()
        count, start = 0, time.perf_counter()
        for _ in range(epochs):
            for x, _ in ds:
                count += int(x.shape[0])
        rates.append(count / (time.perf_counter() - start))
    return max(rates)


def training_rate(ds, n_images: int, size: int, epochs: int, jit: bool) -> float:
    keras.utils.set_random_seed(0)
    model = build_model(10, size, 3, "gcn", augmentation=build_augmentation())
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=jit)
    model.fit(ds.take(2), epochs=1, verbose=0)  # build and trace outside the clock
    count = n_images * epochs
    start = time.perf_counter()
    model.fit(ds, epochs=epochs, verbose=0)
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--pipeline-epochs", type=int, default=5, help="passes for the input-only rate")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs for the training rate")
    parser.add_argument("--jit", action="store_true", help="XLA-compile the training step")
    parser.add_argument("--precision", default="float32", help="float32 | mixed_float16 | mixed_bfloat16")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    keras.mixed_precision.set_global_policy(args.precision)
    builders = {"ours": ours, "keras-io": keras_io, "naive": naive}
    results = {"device": tf.config.list_logical_devices("GPU")[0].name if tf.config.list_logical_devices("GPU") else "CPU",
               "args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        root = write_folder(Path(tmp), args.images, args.size)
        for name, build in builders.items():
            results[f"pipeline_{name}"] = pipeline_rate(
                lambda build=build: build(root, args.size, args.batch), args.pipeline_epochs
            )
        for name, build in builders.items():
            results[f"training_{name}"] = training_rate(
                build(root, args.size, args.batch), args.images, args.size, args.epochs, args.jit
            )
    print(f"\ndevice: {results['device']}, {args.images} PNG images {args.size}x{args.size}, "
          f"batch {args.batch}, {args.pipeline_epochs} pipeline passes, {args.epochs} training epochs, precision {args.precision}, jit {args.jit}\n")
    print("| measure | ours | keras-io | naive | ours / keras-io | ours / naive |")
    print("|---|---|---|---|---|---|")
    for kind, unit in (("pipeline", "images/s"), ("training", "examples/s")):
        o, k, n = (results[f"{kind}_{b}"] for b in builders)
        print(f"| {kind} ({unit}) | {o:,.0f} | {k:,.0f} | {n:,.0f} | {o / k:.2f}x | {o / n:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
