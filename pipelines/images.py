"""Image inputs as tf.data pipelines: embedded digits, a folder of images, or TFDS.

Every source ends as `ImageSplits`: unbatched datasets of `(image, label)` with
images float32 in [0, 1], shape (H, W, C). `batch_images` then applies the usual
tf.data recipe: parallel decode/resize, cache, shuffle, batch, prefetch (AUTOTUNE).
Augmentation and contrast normalization run inside the model, on the accelerator.

    python -c "from dlsuite.pipelines.images import load_digits; print(load_digits(16, 1))"
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from dlsuite.pipelines.errors import DataError  # noqa: F401 - raised here, imported from here by the apps

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


@dataclasses.dataclass
class ImageSplits:
    """Unbatched `(image, label)` datasets and the class names they index into."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    class_names: tuple[str, ...]
    num_train: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def check_image_array(images: np.ndarray, source: str) -> np.ndarray:
    """Returns images as (N, H, W, C) float32; rejects other ranks with a clear error."""
    images = np.asarray(images)
    if images.ndim == 3:  # (N, H, W): grayscale without a channel axis
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{source}: images must have shape (N, H, W) or (N, H, W, C) with C in 1, 3, 4; "
            f"got {images.shape}."
        )
    return images.astype(np.float32)


def _check_labels(labels: np.ndarray, class_names: tuple[str, ...], source: str) -> None:
    if len(labels) == 0:
        raise DataError(f"{source}: no examples. Point the data source at images.")
    present = np.unique(labels)
    if len(present) < 2:
        raise DataError(
            f"{source}: only one class ({class_names[int(present[0])]!r}) has examples; "
            "a classifier needs at least two classes."
        )


def _split_indices(labels: np.ndarray, fractions: tuple[float, float], seed: int):
    """Stratified train / validation / test index arrays."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_val, n_test = int(len(idx) * fractions[0]), int(len(idx) * fractions[1])
        val.extend(idx[:n_val])
        test.extend(idx[n_val : n_val + n_test])
        train.extend(idx[n_val + n_test :])
    return [rng.permutation(np.array(part, dtype=np.int64)) for part in (train, val, test)]


def _resize(image, image_size: int, channels: int):
    """(H, W, C) float in [0, 1] -> (S, S, channels).

    Antialiasing (a wider filter) only matters when shrinking and costs about half
    the pipeline's time, so it is used only then; an image already of the target
    size is passed through.
    """
    static_channels = image.shape[-1]
    size = tf.constant([image_size, image_size])
    height_width = tf.shape(image)[:2]
    image = tf.cond(
        tf.reduce_all(height_width == size),
        lambda: tf.cast(image, tf.float32),
        lambda: tf.cond(
            tf.reduce_any(height_width > size),
            lambda: tf.image.resize(image, size, antialias=True),
            lambda: tf.image.resize(image, size),
        ),
    )
    image.set_shape((image_size, image_size, static_channels))
    if channels == 1 and image.shape[-1] != 1:
        image = tf.image.rgb_to_grayscale(image[..., :3])
    elif channels == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    elif channels == 3:
        image = image[..., :3]
    return tf.clip_by_value(image, 0.0, 1.0)


def splits_from_arrays(
    images, labels, class_names, image_size: int, channels: int,
    fractions=(0.1, 0.2), seed: int = 0, source: str = "arrays",
) -> ImageSplits:
    """In-memory images in [0, 1] -> stratified, resized `ImageSplits`."""
    images = check_image_array(images, source)
    labels = np.asarray(labels, dtype=np.int64)
    class_names = tuple(class_names)
    _check_labels(labels, class_names, source)
    parts = _split_indices(labels, fractions, seed)

    def dataset(idx):
        ds = tf.data.Dataset.from_tensor_slices((images[idx], labels[idx]))
        return ds.map(lambda x, y: (_resize(x, image_size, channels), y), AUTOTUNE)

    return ImageSplits(*(dataset(p) for p in parts), class_names, num_train=len(parts[0]))


def load_digits_arrays(classes: tuple[int, ...] | None = None):
    """scikit-learn's 8x8 digits as (N, 8, 8, 1) floats in [0, 1], labels, names.

    `classes` keeps a subset (e.g. 0-4), relabelled 0..k-1 in the given order.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = digits.images[..., None].astype(np.float32) / 16.0  # pixel values are 0..16
    labels = digits.target.astype(np.int64)
    classes = tuple(range(10)) if not classes else tuple(classes)
    keep = np.isin(labels, classes)
    remap = {c: i for i, c in enumerate(classes)}
    labels = np.array([remap[v] for v in labels[keep]], dtype=np.int64)
    return images[keep], labels, tuple(str(c) for c in classes)


def load_digits(image_size: int, channels: int, classes=None, seed: int = 0) -> ImageSplits:
    images, labels, names = load_digits_arrays(classes)
    return splits_from_arrays(images, labels, names, image_size, channels, seed=seed, source="digits")


def scan_image_folder(root: str | Path) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """Lists `root/<class>/<image>` files; checks every file decodes as an image.

    Raises DataError naming the empty class folder, the corrupt file, or the
    missing folder, so a bad dataset fails before training starts.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Image folder '{root}' does not exist.")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"Image folder '{root}' has no class sub-folders (expected root/<class>/*.png).")
    paths, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(
            f for f in class_dir.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise DataError(
                f"Class folder '{class_dir}' has no images ({', '.join(IMAGE_SUFFIXES)}); "
                "add images or remove the folder."
            )
        for f in files:
            try:
                with Image.open(f) as im:
                    im.load()  # a full decode: verify() misses truncated JPEG data
            except (UnidentifiedImageError, OSError, SyntaxError) as err:
                raise DataError(
                    f"Image file '{f}' is corrupt or not an image ({err}); fix or remove it."
                ) from None
            paths.append(str(f))
            labels.append(label)
    names = tuple(d.name for d in class_dirs)
    if len(names) < 2:
        raise DataError(
            f"Image folder '{root}' has one class ('{names[0]}'); a classifier needs at least two."
        )
    return paths, np.array(labels, dtype=np.int64), names


def decode_image(encoded, image_size: int, channels: int):
    """Encoded PNG/JPEG/GIF/BMP bytes -> (S, S, channels) float32 in [0, 1].

    The same function runs in the training pipeline and in the exported
    serving graph, so a deployed model sees exactly what training saw.
    """
    if channels == 3:
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    else:
        # TF's BMP and GIF decoders refuse channels=1: decode natively, then keep
        # gray (L, LA) as it is and convert colour with the usual luma weights.
        image = tf.io.decode_image(encoded, channels=0, expand_animations=False)
        image = tf.cond(
            tf.shape(image)[-1] < 3,
            lambda: image[..., :1],
            lambda: tf.image.rgb_to_grayscale(image[..., :3]),
        )
    image = tf.image.convert_image_dtype(image, tf.float32)  # uint8 -> [0, 1]
    image.set_shape((None, None, channels))
    return _resize(image, image_size, channels)


def load_image_folder(root, image_size: int, channels: int, seed: int = 0) -> ImageSplits:
    """A folder with one sub-folder per class, any common format and size."""
    paths, labels, names = scan_image_folder(root)
    parts = _split_indices(labels, (0.1, 0.2), seed)
    paths = np.array(paths)

    def dataset(idx):
        ds = tf.data.Dataset.from_tensor_slices((paths[idx], labels[idx]))
        return ds.map(
            lambda p, y: (decode_image(tf.io.read_file(p), image_size, channels), y),
            num_parallel_calls=AUTOTUNE,
        )

    return ImageSplits(*(dataset(p) for p in parts), names, num_train=len(parts[0]))


def load_tfds(name: str, image_size: int, channels: int, data_dir: str | None = None) -> ImageSplits:
    """A TFDS image-classification dataset (mnist, cifar10, ...) via `tfds.load`.

    Downloads into `data_dir` on first use. Uses the dataset's own test split and
    holds out the first 10% of train for validation.
    """
    import tensorflow_datasets as tfds

    has_test = True
    try:
        (train, validation, test), info = tfds.load(
            name, split=["train[10%:]", "train[:10%]", "test"], data_dir=data_dir,
            as_supervised=True, with_info=True,
        )
    except ValueError as err:  # no "test" split: hold out another 10% of train
        if "test" not in str(err).lower():
            raise
        has_test = False
        (train, validation, test), info = tfds.load(
            name, split=["train[20%:]", "train[:10%]", "train[10%:20%]"], data_dir=data_dir,
            as_supervised=True, with_info=True,
        )
    names = tuple(info.features["label"].names)
    # TFDS asserts each split's cardinality, so this is the exact size of the
    # train slice; `info.splits` is empty when TFDS is mocked (tfds.testing).
    num_train = int(train.cardinality())
    if num_train < 0:  # unknown or infinite: estimate from the metadata
        num_train = int(info.splits["train"].num_examples * (0.9 if has_test else 0.8))

    def prepare(ds):
        return ds.map(
            lambda x, y: (_resize(tf.image.convert_image_dtype(x, tf.float32), image_size, channels), y),
            num_parallel_calls=AUTOTUNE,
        )

    return ImageSplits(prepare(train), prepare(validation), prepare(test), names, num_train)


def batch_images(
    ds: tf.data.Dataset, batch_size: int, training: bool, cache: bool = True,
    shuffle_buffer: int = 10_000, seed: int | None = None,
) -> tf.data.Dataset:
    """cache -> shuffle -> batch -> prefetch, the order the tf.data guide recommends.

    Caching after decode/resize means later epochs skip both; shuffling after the
    cache gives a fresh order every epoch.
    """
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    return ds.prefetch(AUTOTUNE)


def encode_png(images: np.ndarray) -> list[bytes]:
    """(N, H, W, C) floats in [0, 1] -> PNG bytes each (8-bit, as a user would send)."""
    encoded = []
    for image in images:
        pixels = tf.cast(tf.round(tf.clip_by_value(image, 0, 1) * 255), tf.uint8)
        encoded.append(tf.io.encode_png(pixels).numpy())
    return encoded
