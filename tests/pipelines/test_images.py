"""Image pipelines: folders of mixed images, clear errors, digits splits, TFDS (mocked), batching."""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # before TensorFlow is imported

import hashlib
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from dlsuite.pipelines.images import (
    DataError,
    batch_images,
    check_image_array,
    decode_image,
    encode_png,
    load_digits,
    load_digits_arrays,
    load_image_folder,
    load_tfds,
    scan_image_folder,
    splits_from_arrays,
)

COLOURS = {"white": (255, 255, 255), "black": (0, 0, 0), "red": (255, 0, 0)}

# (file name, Pillow mode, size (W, H)): every format, mode and size the folder test mixes.
# "red" has no grayscale files (red is not a gray level); GIF files are saved in palette mode.
FOLDER_FILES = {
    "white": [("a.png", "L", (12, 20)), ("b.jpg", "RGB", (33, 17)), ("c.bmp", "RGB", (9, 9)),
              ("d.gif", "L", (24, 24)), ("e.png", "RGBA", (40, 10)), ("f.JPEG", "L", (16, 16))],
    "black": [("a.bmp", "L", (5, 7)), ("b.png", "RGB", (64, 48)), ("c.jpg", "L", (20, 20)),
              ("d.gif", "RGB", (13, 31))],
    "red": [("a.png", "RGBA", (30, 30)), ("b.jpg", "RGB", (17, 33)), ("c.bmp", "RGB", (8, 8)),
            ("d.gif", "RGB", (24, 12)), ("e.png", "RGB", (16, 16))],
}
PNG_AND_JPEG_ONLY = {
    name: [f for f in files if f[0].lower().endswith((".png", ".jpg", ".jpeg"))]
    for name, files in FOLDER_FILES.items()
}


def solid_image(mode, size, rgb):
    if mode == "L":
        return Image.new("L", size, rgb[0])
    if mode == "RGBA":
        return Image.new("RGBA", size, (*rgb, 255))
    return Image.new("RGB", size, rgb)


def write_folder(root, files=FOLDER_FILES):
    """root/<colour>/<file>: solid images of the folder's colour, plus a non-image file."""
    for colour, entries in files.items():  # created white, black, red: not sorted on purpose
        (root / colour).mkdir(parents=True)
        for name, mode, size in entries:
            solid_image(mode, size, COLOURS[colour]).save(root / colour / name)
    (root / "white" / "notes.txt").write_text("not an image, must be skipped")
    return root


def collect(ds):
    """All `(image, label)` pairs of an unbatched dataset as two NumPy arrays."""
    pairs = list(ds.as_numpy_iterator())
    return np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs])


def collect_splits(splits):
    parts = [collect(ds) for ds in (splits.train, splits.validation, splits.test)
             if int(ds.cardinality()) > 0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# 1. Folder datasets --------------------------------------------------------------------------


def test_folder_of_mixed_formats_modes_and_sizes(tmp_path):
    """PNG/JPEG/BMP/GIF in L/RGB/RGBA and any size load as (16, 16, 3) floats in [0, 1];
    labels index the sorted folder names and every image has its own folder's colour."""
    root = write_folder(tmp_path / "shapes")
    splits = load_image_folder(root, image_size=16, channels=3)

    assert splits.class_names == ("black", "red", "white")
    assert splits.train.element_spec[0].shape == (16, 16, 3)
    images, labels = collect_splits(splits)
    assert images.shape == (15, 16, 16, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert splits.num_train == len(collect(splits.train)[1])
    counts = {name: int((labels == i).sum()) for i, name in enumerate(splits.class_names)}
    assert counts == {name: len(files) for name, files in FOLDER_FILES.items()}  # txt skipped
    for image, label in zip(images, labels, strict=True):
        expected = np.array(COLOURS[splits.class_names[label]]) / 255.0
        np.testing.assert_allclose(image.mean((0, 1)), expected, atol=0.02)  # JPEG: ~1/255 off
        assert np.ptp(image, (0, 1)).max() < 0.02  # solid colour stays solid after resizing


def test_scan_lists_every_file_under_its_class(tmp_path):
    """scan_image_folder pairs each file with the index of the folder it is in."""
    root = write_folder(tmp_path / "shapes")
    paths, labels, names = scan_image_folder(root)
    assert names == ("black", "red", "white")
    assert len(paths) == 15 and not any(p.endswith(".txt") for p in paths)
    for path, label in zip(paths, labels, strict=True):
        assert os.path.basename(os.path.dirname(path)) == names[label]


def test_folder_grayscale_from_png_and_jpeg(tmp_path):
    """channels=1 gives (16, 16, 1): white ~1, black ~0, red a mid gray (luma of red)."""
    root = write_folder(tmp_path / "shapes", PNG_AND_JPEG_ONLY)
    splits = load_image_folder(root, image_size=16, channels=1)
    images, labels = collect_splits(splits)
    assert images.shape[1:] == (16, 16, 1) and images.dtype == np.float32
    means = {name: images[labels == i].mean((1, 2, 3)) for i, name in enumerate(splits.class_names)}
    np.testing.assert_allclose(means["white"], 1.0, atol=0.02)
    np.testing.assert_allclose(means["black"], 0.0, atol=0.02)
    assert np.all((means["red"] > 0.15) & (means["red"] < 0.35))


def test_folder_grayscale_from_bmp_and_gif(tmp_path):
    """channels=1 must also work for BMP and GIF files (a folder scan accepts them)."""
    root = write_folder(tmp_path / "shapes")
    images, _ = collect_splits(load_image_folder(root, image_size=16, channels=1))
    assert images.shape == (15, 16, 16, 1)


# 2. Clear errors -----------------------------------------------------------------------------


def test_corrupt_file_is_named(tmp_path):
    """Random bytes saved as .png: the DataError names that exact file."""
    root = write_folder(tmp_path / "shapes")
    bad = root / "red" / "broken.png"
    bad.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(DataError, match=re.escape(str(bad))):
        load_image_folder(root, 16, 3)


def test_truncated_jpeg_is_named(tmp_path):
    """A JPEG cut short (e.g. an interrupted download) fails the scan, not the training run."""
    root = write_folder(tmp_path / "shapes")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    bad = root / "red" / "cut.jpg"
    Image.fromarray(noise).save(bad)
    bad.write_bytes(bad.read_bytes()[:-300])
    with pytest.raises(DataError, match=re.escape(str(bad))):
        scan_image_folder(root)


def test_empty_class_folder_is_named(tmp_path):
    """A class folder with no images (only a text file) is named in the error."""
    root = write_folder(tmp_path / "shapes")
    empty = root / "green"
    empty.mkdir()
    (empty / "readme.txt").write_text("todo")
    with pytest.raises(DataError, match=re.escape(str(empty)) + ".*no images"):
        load_image_folder(root, 16, 3)


def test_single_class_folder(tmp_path):
    """One class folder cannot train a classifier: the error says so and names the class."""
    root = write_folder(tmp_path / "shapes", {"white": FOLDER_FILES["white"]})
    with pytest.raises(DataError, match=r"one class \('white'\)"):
        load_image_folder(root, 16, 3)


def test_missing_root_and_root_without_class_folders(tmp_path):
    """A missing folder, and a folder of loose images, each get their own message."""
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing)) + ".*does not exist"):
        load_image_folder(missing, 16, 3)
    solid_image("RGB", (8, 8), COLOURS["red"]).save(tmp_path / "loose.png")
    with pytest.raises(DataError, match="no class sub-folders"):
        scan_image_folder(tmp_path)


@pytest.mark.parametrize("shape", [(10, 8), (2, 3, 4, 5, 6), (4, 8, 8, 2), (5,)])
def test_wrong_array_shapes_are_reported(shape):
    """Arrays that are not (N, H, W[, C in 1/3/4]) are rejected with their shape and source."""
    images = np.zeros(shape, np.float32)
    with pytest.raises(DataError, match="my.npz: images must have shape") as err:
        check_image_array(images, "my.npz")
    assert str(shape) in str(err.value)
    with pytest.raises(DataError, match=re.escape(str(shape))):
        splits_from_arrays(images, np.arange(len(images)) % 2, ("a", "b"), 8, 1)


def test_array_checks_accept_grayscale_without_channel_axis():
    """(N, H, W) gains a channel axis; labels of a single class or no examples are rejected."""
    assert check_image_array(np.zeros((3, 5, 6), np.uint8), "x").shape == (3, 5, 6, 1)
    assert check_image_array(np.zeros((3, 5, 6), np.uint8), "x").dtype == np.float32
    with pytest.raises(DataError, match="only one class \\('b'\\)"):
        splits_from_arrays(np.zeros((6, 8, 8)), np.ones(6), ("a", "b"), 8, 1)
    with pytest.raises(DataError, match="no examples"):
        splits_from_arrays(np.zeros((0, 8, 8)), np.zeros(0), ("a", "b"), 8, 1)


# 3. Digits -----------------------------------------------------------------------------------


def test_digits_splits_are_stratified_disjoint_and_complete():
    """load_digits(16, 1): 1797 images over three disjoint splits, 10/20% of every class
    held out, 10 classes; the 1797 digits are all distinct, so image hashes identify them."""
    splits = load_digits(16, 1)
    assert splits.class_names == tuple(str(d) for d in range(10)) and splits.num_classes == 10
    parts = [collect(ds) for ds in (splits.train, splits.validation, splits.test)]
    assert sum(len(labels) for _, labels in parts) == 1797
    assert splits.num_train == len(parts[0][1])

    hashes = [{hashlib.sha1(x.tobytes()).hexdigest() for x in images} for images, _ in parts]
    assert sum(len(h) for h in hashes) == 1797  # no image twice, within or across splits
    assert not (hashes[0] & hashes[1] or hashes[0] & hashes[2] or hashes[1] & hashes[2])

    per_class = np.bincount(load_digits_arrays()[1], minlength=10)
    np.testing.assert_array_equal(np.bincount(parts[1][1], minlength=10), (per_class * 0.1).astype(int))
    np.testing.assert_array_equal(np.bincount(parts[2][1], minlength=10), (per_class * 0.2).astype(int))
    for images, _ in parts:
        assert images.shape[1:] == (16, 16, 1) and images.min() >= 0 and images.max() <= 1


def test_array_splits_keep_labels_with_their_images():
    """Each image encodes its own index: splits partition the indices and labels travel along."""
    _, labels, names = load_digits_arrays()
    n = len(labels)
    images = np.broadcast_to((np.arange(n) / n).reshape(n, 1, 1, 1), (n, 8, 8, 1))
    splits = splits_from_arrays(images, labels, names, image_size=8, channels=1, seed=3)
    seen = []
    for ds in (splits.train, splits.validation, splits.test):
        x, y = collect(ds)
        index = np.rint(x[:, 0, 0, 0] * n).astype(int)
        np.testing.assert_array_equal(y, labels[index])
        seen.append(index)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(n))


def test_digit_subset_is_relabelled_in_the_given_order():
    """classes=(5, 6) keeps those digits as labels 0/1; classes=(6, 5) swaps them."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images, labels, names = load_digits_arrays(classes=(5, 6))
    assert names == ("5", "6") and set(labels.tolist()) == {0, 1}
    assert images.shape == ((digits.target == 5).sum() + (digits.target == 6).sum(), 8, 8, 1)
    np.testing.assert_allclose(images[labels == 0, ..., 0], digits.images[digits.target == 5] / 16)
    np.testing.assert_allclose(images[labels == 1, ..., 0], digits.images[digits.target == 6] / 16)
    assert images.min() == 0.0 and images.max() == 1.0

    _, swapped, names = load_digits_arrays(classes=(6, 5))
    assert names == ("6", "5")
    np.testing.assert_array_equal(swapped, 1 - labels)


# 4. TFDS, offline ----------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_tfds_mnist_mocked(tmp_path, channels):
    """load_tfds("mnist") under tfds.testing.mock_data: resized float images in [0, 1] and
    mnist's 10 class names; the mock has no split sizes, so num_train comes from the data."""
    with tfds.testing.mock_data(num_examples=12):
        splits = load_tfds("mnist", image_size=16, channels=channels, data_dir=str(tmp_path))
        parts = [collect(ds) for ds in (splits.train, splits.validation, splits.test)]
    assert splits.class_names == tuple(str(d) for d in range(10))
    assert splits.num_train == 12  # the mock gives every split (and slice) num_examples
    for images, labels in parts:
        assert images.shape == (12, 16, 16, channels) and images.dtype == np.float32
        assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() > 0.0
        assert labels.min() >= 0 and labels.max() <= 9


def file_backed_split_table(dataset, sizes):
    """The split table of a prepared TFDS dataset, so TFDS resolves `train[10%:]` and rejects
    unknown splits with its own code (the plain mock accepts any split name at full size)."""
    template = tfds.core.ShardedFileTemplate(
        data_dir="/nonexistent", dataset_name=dataset, filetype_suffix="tfrecord"
    )
    return tfds.core.SplitDict(
        [tfds.core.SplitInfo(name=name, shard_lengths=[n], num_bytes=0, filename_template=template)
         for name, n in sizes.items()]
    )


SPLIT_OFFSET = {"train": 0, "test": 128}  # pixel value = offset + row within the split


def as_dataset_reading(table):
    """Replacement for the builder's file reader: the rows TFDS's instructions select, each
    row a constant image of value offset + row, so the test can tell which rows each split got."""

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        (instruction,) = table[split].file_instructions  # raises "Unknown split" like TFDS
        name = re.search(r"-(\w+)\.tfrecord-", instruction.filename).group(1)  # the split read
        rows = SPLIT_OFFSET[name] + np.arange(instruction.skip, instruction.skip + instruction.take)
        shape = tuple(d or 20 for d in self.info.features["image"].shape)
        images = np.broadcast_to(rows.astype(np.uint8).reshape(-1, 1, 1, 1), (len(rows), *shape))
        n_classes = self.info.features["label"].num_classes
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": rows % n_classes})

    return as_dataset


def tfds_rows(ds):
    images, _ = collect(ds)
    return set(np.rint(images[:, 0, 0, 0] * 255).astype(int).tolist())


def test_tfds_splits_with_a_test_split(tmp_path):
    """mnist with train (50) and test (20): train[10%:] for training, train[:10%] for
    validation, the real test split for test, and num_train the exact training size."""
    table = file_backed_split_table("mnist", {"train": 50, "test": 20})
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_reading(table)):
        splits = load_tfds("mnist", image_size=16, channels=1, data_dir=str(tmp_path))
        rows = [tfds_rows(ds) for ds in (splits.train, splits.validation, splits.test)]
    assert rows == [set(range(5, 50)), set(range(5)), set(range(128, 148))]
    assert splits.num_train == 45 and splits.num_classes == 10


def test_tfds_without_test_split_holds_out_train(tmp_path):
    """tf_flowers has only a train split: TFDS's "Unknown split 'test'" error makes load_tfds
    hold out train[:10%] for validation and train[10%:20%] for test, disjoint from training."""
    table = file_backed_split_table("tf_flowers", {"train": 50})
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_reading(table)):
        splits = load_tfds("tf_flowers", image_size=16, channels=3, data_dir=str(tmp_path))
        rows = [tfds_rows(ds) for ds in (splits.train, splits.validation, splits.test)]
        images, _ = collect(splits.train)
    assert rows == [set(range(10, 50)), set(range(5)), set(range(5, 10))]
    assert splits.num_train == 40
    assert splits.class_names == ("dandelion", "daisy", "tulips", "sunflowers", "roses")
    assert images.shape == (40, 16, 16, 3) and images.min() >= 0 and images.max() <= 1


# 5. Batching and PNG round trip --------------------------------------------------------------


def numbered_dataset(n):
    return tf.data.Dataset.from_tensor_slices((np.arange(n), 10 * np.arange(n)))


def epoch(ds):
    """One pass: the batch sizes and the order of the first component."""
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    for x, y in batches:
        np.testing.assert_array_equal(y, 10 * x)  # pairs stay together through the shuffle
    return [len(x) for x, _ in batches], np.concatenate([x for x, _ in batches]).tolist()


@pytest.mark.parametrize("seed", [None, 7])
def test_training_batches_reshuffle_every_epoch(seed):
    """training=True: batches of 4 (last one partial), every element once per epoch, and a
    different order each epoch (a repeat by luck: 1 in 22!), seeded or not."""
    ds = batch_images(numbered_dataset(22), 4, training=True, seed=seed)
    sizes, first = epoch(ds)
    _, second = epoch(ds)
    assert sizes == [4, 4, 4, 4, 4, 2]
    assert sorted(first) == sorted(second) == list(range(22))
    assert first != second


def test_evaluation_batches_keep_order():
    """training=False: same batches, original order, identical every epoch."""
    ds = batch_images(numbered_dataset(10), 4, training=False)
    assert epoch(ds) == epoch(ds) == ([4, 4, 2], list(range(10)))


def test_png_round_trip_of_digits():
    """decode_image(encode_png(x)) gives the digits back within 1/255, in 1 or 3 channels,
    also inside a graph with a scalar string input as in the exported serving model."""
    images = load_digits_arrays()[0][:32]
    encoded = encode_png(images)
    assert all(e.startswith(b"\x89PNG") for e in encoded)
    gray = np.stack([decode_image(e, 8, 1).numpy() for e in encoded])
    np.testing.assert_allclose(gray, images, atol=1 / 255 + 1e-6)
    rgb = np.stack([decode_image(e, 8, 3).numpy() for e in encoded])
    np.testing.assert_allclose(rgb, np.repeat(images, 3, axis=-1), atol=1 / 255 + 1e-6)

    serve = tf.function(lambda s: decode_image(s, 8, 1), input_signature=[tf.TensorSpec([], tf.string)])
    assert serve.get_concrete_function().structured_outputs.shape == (8, 8, 1)
    np.testing.assert_allclose(serve(tf.constant(encoded[0])).numpy(), images[0], atol=1 / 255 + 1e-6)
