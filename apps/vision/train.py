"""Train, evaluate, fine-tune and predict for the vision app.

    dlsuite vision train epochs=30           # -> runs/vision/<time>-train/
    dlsuite vision finetune --from runs/vision/<run> data=folder:my_images
    dlsuite vision evaluate --from runs/vision/<run>
    dlsuite vision predict --from runs/vision/<run> image1.png image2.jpg

`train_and_evaluate(config, run_dir)` is the whole story; the helpers below it
are each one step.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dlsuite.apps.commands import run_folder
from dlsuite.apps.vision import data
from dlsuite.apps.vision import model as vision_model
from dlsuite.apps.vision.config import VisionConfig
from dlsuite.pipelines.images import decode_image
from dlsuite.shared import plots
from dlsuite.shared.optim import make_optimizer
from dlsuite.shared.runs import atomic_write_json, write_metrics
from dlsuite.shared.training import fit_in_run_dir, load_run_model, save_model_atomic, set_up


# === Set-up ===
def load_data(config: VisionConfig, evaluation: bool = False):
    """The config's data source as splits; evaluation ignores the few-shot training cap."""
    return data.load_splits(
        config.data, config.image_size, config.channels, config.classes, config.tfds_data_dir,
        config.seed, 0 if evaluation else config.train_examples_per_class,
    )


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


def build_model_from_config(config: VisionConfig, num_classes: int, augmentation):
    """`model.build_model` with the model fields of the config (the config stops here)."""
    return vision_model.build_model(
        num_classes, config.image_size, config.channels, config.normalization,
        config.gcn_regularization, config.lcn_window_size, config.lcn_window,
        config.backbone, config.backbone_weights, config.widths,
        config.blocks_per_stage, config.dropout, augmentation,
    )


def compile_model(model, config: VisionConfig, steps: int, learning_rate: float | None = None):
    model.compile(
        optimizer=make_optimizer(config, steps, learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )


def load_model(source: str | Path) -> keras.Model:
    return load_run_model(source, "vision")


# === Evaluation ===
def evaluate_model(model, test_ds, class_names, run_dir: Path, prefix="test", tta=False) -> dict:
    """Loss, accuracy and a confusion-matrix figure on a batched dataset."""
    labels = np.concatenate([y for _, y in test_ds.as_numpy_iterator()])
    probabilities = model.predict(test_ds, verbose=0)
    metrics = {
        f"{prefix}_accuracy": float(np.mean(probabilities.argmax(-1) == labels)),
        f"{prefix}_loss": float(
            keras.losses.sparse_categorical_crossentropy(labels, probabilities).numpy().mean()
        ),
        f"{prefix}_examples": int(len(labels)),
    }
    if tta:
        tta_probabilities = predict_with_shifts(model, test_ds)
        metrics[f"{prefix}_accuracy_tta"] = float(np.mean(tta_probabilities.argmax(-1) == labels))
    matrix = tf.math.confusion_matrix(labels, probabilities.argmax(-1), len(class_names)).numpy()
    plots.save_figure(
        plots.confusion_matrix_figure(matrix, class_names, f"{prefix} accuracy {metrics[f'{prefix}_accuracy']:.4f}"),
        run_dir, f"{prefix}_confusion_matrix",
    )
    return metrics


def predict_with_shifts(model, ds, shifts=((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))):
    """Test-time augmentation: the mean prediction over one-pixel shifts (an ensemble)."""
    total = 0
    for dy, dx in shifts:
        shifted = ds.map(lambda x, y, dy=dy, dx=dx: (tf.roll(x, (dy, dx), axis=(1, 2)), y))
        total = total + model.predict(shifted, verbose=0)
    return total / len(shifts)


def save_augmentation_samples(augmentation, train_ds, run_dir: Path, n=8):
    images, _ = next(iter(train_ds))
    images = images[:n]
    rows = [("original", images.numpy())]
    for i in range(3):
        rows.append((f"augmented {i + 1}", augmentation(images, training=True).numpy()))
    plots.save_figure(plots.image_grid_figure(rows), run_dir, "augmentation_samples")


# === Train ===
def train_and_evaluate(config: VisionConfig, run_dir: Path) -> dict:
    """Trains from scratch, evaluates on the test split, saves model.keras and metrics."""
    strategy, batch = set_up(config)
    splits = load_data(config)
    train_ds, val_ds, test_ds = data.make_datasets(splits, batch, config.seed)
    steps = config.epochs * -(-splits.num_train // batch)
    with strategy.scope():
        augmentation, train_ds = make_augmentation(config, train_ds)
        model = build_model_from_config(config, splits.num_classes, augmentation)
        compile_model(model, config, steps)
    if augmentation is not None:
        save_augmentation_samples(augmentation, train_ds, run_dir)
    if config.jit_compile and not model.jit_compile:
        print("warning: a layer of this model does not support XLA; training without jit_compile.")
    return fit_and_report(model, config, splits.class_names, (train_ds, val_ds, test_ds), run_dir)


def fit_and_report(model, config, class_names, datasets, run_dir: Path, epochs=None, extra_metrics=None) -> dict:
    """Fits, then writes model.keras, class names, plots and metrics.json (with `extra_metrics`)."""
    train_ds, val_ds, test_ds = datasets
    start = time.perf_counter()
    history = fit_in_run_dir(model, train_ds, val_ds, epochs or config.epochs, run_dir)
    seconds = time.perf_counter() - start
    if model.optimizer.use_ema:
        # Evaluate and ship the Polyak-averaged weights (they generalize better).
        model.optimizer.finalize_variable_values(model.trainable_variables)
    save_model_atomic(model, run_dir / "model.keras")
    atomic_write_json(run_dir / "class_names.json", list(class_names))
    metrics = evaluate_model(model, test_ds, class_names, run_dir, tta=config.tta)
    metrics.update(
        train_seconds=round(seconds, 2),
        epochs_run=len(history.epoch),
        final_val_accuracy=float(history.history.get("val_accuracy", [float("nan")])[-1]),
        parameters=int(model.count_params()),
        **(extra_metrics or {}),
    )
    write_metrics(run_dir, metrics)
    return metrics


def finetune(config: VisionConfig, run_dir: Path, source: str | Path) -> dict:
    """New head for a new label set: train it with the backbone frozen, then unfreeze.

    The unfrozen phase uses `learning_rate * finetune_learning_rate_factor`, so the
    pretrained features move slowly while the head settles.
    """
    strategy, batch = set_up(config)
    splits = load_data(config)
    train_ds, val_ds, test_ds = data.make_datasets(splits, batch, config.seed)
    steps_per_epoch = -(-splits.num_train // batch)
    frozen_epochs = min(config.finetune_frozen_epochs, config.epochs - 1)
    with strategy.scope():
        augmentation, train_ds = make_augmentation(config, train_ds)
        datasets = (train_ds, val_ds, test_ds)
        pretrained = load_model(source)
        model = vision_model.replace_head(pretrained, splits.num_classes, augmentation, config.dropout)
        model.get_layer("backbone").trainable = False
        compile_model(model, config, max(1, frozen_epochs) * steps_per_epoch)
    if frozen_epochs > 0:
        fit_in_run_dir(model, datasets[0], datasets[1], frozen_epochs, run_dir / "frozen")
    with strategy.scope():
        model.get_layer("backbone").trainable = True
        lr = config.learning_rate * config.finetune_learning_rate_factor
        compile_model(model, config, (config.epochs - frozen_epochs) * steps_per_epoch, lr)
    return fit_and_report(
        model, config, splits.class_names, datasets, run_dir, config.epochs - frozen_epochs,
        extra_metrics={"finetuned_from": str(source)},
    )


def evaluate(config: VisionConfig, run_dir: Path, source: str | Path) -> dict:
    """Evaluates a saved model on the test split of `config.data`."""
    _, batch = set_up(config)
    splits = load_data(config, evaluation=True)
    model = load_model(source)
    _, _, test_ds = data.make_datasets(splits, batch, config.seed)
    metrics = evaluate_model(model, test_ds, splits.class_names, run_dir, tta=config.tta)
    metrics["model"] = str(source)
    write_metrics(run_dir, metrics)
    return metrics


def predict(source: str | Path, image_files: list[str], top_k: int = 3) -> list[dict]:
    """Top-k labels for image files, decoded exactly as the exported model does."""
    model = load_model(source)
    run_dir = run_folder(source)
    names_file = run_dir / "class_names.json"
    names = json.loads(names_file.read_text()) if names_file.is_file() else None
    _, size, _, channels = model.input_shape
    results = []
    for file in image_files:
        encoded = Path(file).read_bytes()
        try:
            image = decode_image(encoded, size, channels)
        except tf.errors.InvalidArgumentError:
            raise ValueError(f"'{file}' is not a decodable image (PNG, JPEG, GIF or BMP).") from None
        probabilities = model.predict(image[None], verbose=0)[0]
        best = np.argsort(-probabilities)[:top_k]
        labels = [names[i] if names else str(i) for i in best]
        results.append({"file": str(file), "labels": labels, "probabilities": probabilities[best].tolist()})
    return results

