"""Vision data: pick a source, split it, batch it.

    from dlsuite.apps.vision import data
    splits = data.load_splits("digits", image_size=16, channels=1)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dlsuite.pipelines.images import (
    ImageSplits,
    batch_images,
    load_digits,
    load_image_folder,
    load_tfds,
)


def load_splits(
    source: str, image_size: int, channels: int, classes=(), tfds_data_dir: str = "",
    seed: int = 0, train_examples_per_class: int = 0,
) -> ImageSplits:
    """`digits`, `folder:<path>` or `tfds:<name>` -> train/validation/test splits."""
    kind, _, arg = source.partition(":")
    if kind == "digits":
        splits = load_digits(image_size, channels, classes=classes or None, seed=seed)
    elif kind == "folder":
        splits = load_image_folder(arg, image_size, channels, seed=seed)
    elif kind == "tfds":
        splits = load_tfds(arg, image_size, channels, data_dir=tfds_data_dir or None)
    else:
        raise ValueError(f"Unknown data source '{source}'; use digits, folder:<path> or tfds:<name>.")
    if train_examples_per_class:
        splits = few_shot(splits, train_examples_per_class, seed)
    return splits


def few_shot(splits: ImageSplits, per_class: int, seed: int = 0) -> ImageSplits:
    """Keeps the first `per_class` training images of each class (after a seeded shuffle)."""
    images, labels = (np.stack(a) for a in zip(*splits.train.as_numpy_iterator(), strict=True))
    order = np.random.default_rng(seed).permutation(len(labels))
    keep = np.concatenate([order[labels[order] == c][:per_class] for c in np.unique(labels)])
    train = tf.data.Dataset.from_tensor_slices((images[keep], labels[keep]))
    return ImageSplits(train, splits.validation, splits.test, splits.class_names, len(keep))


def jitter_contrast(ds: tf.data.Dataset, seed: int, low: float = 0.1) -> tf.data.Dataset:
    """Random per-image contrast a and brightness b: x' = a * x + b, staying in [0, 1].

    a ~ U(low, 1) shrinks the contrast; b ~ U(0, 1 - a) shifts the brightness.
    Used by the contrast-robustness experiment on both train and test images.
    """

    def change(x, y, s):
        a = tf.random.stateless_uniform((), s, low, 1.0)
        b = tf.random.stateless_uniform((), s + 1, 0.0, 1.0 - a)
        return a * x + b, y

    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    return tf.data.Dataset.zip(ds, seeds).map(
        lambda xy, s: change(xy[0], xy[1], s), num_parallel_calls=tf.data.AUTOTUNE
    )


def make_datasets(splits: ImageSplits, global_batch_size: int, seed: int = 0):
    """Batched (train, validation, test) datasets ready for `model.fit`."""
    return (
        batch_images(splits.train, global_batch_size, training=True, seed=seed),
        batch_images(splits.validation, global_batch_size, training=False),
        batch_images(splits.test, global_batch_size, training=False),
    )
