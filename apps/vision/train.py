"""Training steps of the vision app: data, augmentation, the model's arguments, fitting.

    dlsuite vision train epochs=30           # apps/vision/app.py tells the story with these steps
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from dlsuite.apps.vision import data, inference
from dlsuite.apps.vision import model as vision_model
from dlsuite.apps.vision.config import VisionConfig
from dlsuite.shared import plots
from dlsuite.shared.runs import atomic_write_json
from dlsuite.shared.training import fit_model


# === Data ===
def load_splits(config: VisionConfig, evaluation: bool = False):
    """The config's train/validation/test splits (unbatched); evaluation ignores the few-shot cap."""
    return data.load_splits(
        config.data, config.image_size, config.channels, config.classes, config.tfds_data_dir,
        config.split_seed, 0 if evaluation else config.train_examples_per_class,
    )


def load_datasets(config: VisionConfig, batch: int, evaluation: bool = False):
    """(splits, (train, valid, test) batched datasets) of the config's data source; evaluation
    ignores the few-shot training cap."""
    splits = load_splits(config, evaluation)
    return splits, data.make_datasets(splits, batch, config.seed)


def make_augmentation(config: VisionConfig, train_ds):
    """Returns (augmentation layer for the model or None, training dataset).

    Augmentation normally runs inside the model, on the accelerator. Keras' geometric
    augmentation layers are not XLA-compilable, though, and would silently switch XLA
    off for the whole model; with jit_compile=true they run in the input pipeline.
    """
    if not config.augment:
        return None, train_ds
    augmentation = vision_model.build_augmentation(
        config.translate, config.rotate_degrees, config.zoom, config.flip,
        config.contrast, config.brightness, seed=config.seed,
    )
    if not config.jit_compile:
        return augmentation, train_ds
    augmented = train_ds.map(
        lambda x, y: (augmentation(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
    )
    return None, augmented.prefetch(tf.data.AUTOTUNE)


def save_augmentation_samples(augmentation, train_ds, run_dir: Path, n=8):
    images, _ = next(iter(train_ds))
    images = images[:n]
    rows = [("original", images.numpy())]
    for i in range(3):
        rows.append((f"augmented {i + 1}", augmentation(images, training=True).numpy()))
    plots.save_figure(plots.image_grid_figure(rows), run_dir, "augmentation_samples")


# === Model ===
def model_arguments(config: VisionConfig) -> dict:
    """`model.build_model`'s keyword arguments from the config (the config stops here)."""
    return dict(
        image_size=config.image_size, channels=config.channels, normalization=config.normalization,
        gcn_regularization=config.gcn_regularization, lcn_window_size=config.lcn_window_size,
        lcn_window=config.lcn_window, backbone=config.backbone, backbone_weights=config.backbone_weights,
        widths=config.widths, blocks_per_stage=config.blocks_per_stage, dropout=config.dropout,
        head=config.head, moe_experts=config.moe_experts, moe_top_k=config.moe_top_k,
        moe_hidden_units=config.moe_hidden_units, moe_dispatch=config.moe_dispatch,
    )


# === Fitting ===
def fit(model, config: VisionConfig, train_ds, val_ds, run_dir: Path, epochs=None, learning_rate=None) -> dict:
    """`shared.training.fit_model` with the classifier's loss and accuracy."""
    return fit_model(model, config, train_ds, val_ds, run_dir, epochs=epochs, learning_rate=learning_rate,
                     loss=keras.losses.SparseCategoricalCrossentropy(),
                     metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])


def fit_and_evaluate(model, config: VisionConfig, class_names, datasets, run_dir: Path, epochs=None,
                     learning_rate=None) -> dict:
    """Fits, saves the class names beside model.keras, then scores the test split."""
    train_ds, val_ds, test_ds = datasets
    figures = fit(model, config, train_ds, val_ds, run_dir, epochs, learning_rate)
    atomic_write_json(run_dir / "class_names.json", list(class_names))
    return inference.evaluate_model(model, test_ds, class_names, run_dir, tta=config.tta) | figures
