"""Using a trained vision model: test-split scores (with test-time augmentation) and top-k labels
of image files, decoded exactly as the exported model decodes them.

    dlsuite vision evaluate --from runs/vision/<run>
    dlsuite vision predict --from runs/vision/<run> a.png b.jpg
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dlsuite.apps.app import run_folder
from dlsuite.pipelines.images import decode_image
from dlsuite.shared import plots


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


def class_names(source: str | Path, model=None) -> list[str]:
    """The label names a run saved (class_names.json); without them, the class indices."""
    names_file = run_folder(source) / "class_names.json"
    if names_file.is_file():
        return json.loads(names_file.read_text())
    return [str(i) for i in range(model.output_shape[-1])] if model is not None else []


def classify_files(model, names: list[str], image_files: list[str], top_k: int = 3) -> list[dict]:
    """Top-k labels of image files; a file that is no image is an error naming it."""
    _, size, _, channels = model.input_shape
    results = []
    for file in image_files:
        try:
            image = decode_image(Path(file).read_bytes(), size, channels)
        except tf.errors.InvalidArgumentError:
            raise ValueError(f"'{file}' is not a decodable image (PNG, JPEG, GIF or BMP).") from None
        probabilities = model.predict(image[None], verbose=0)[0]
        best = np.argsort(-probabilities)[:top_k]
        labels = [names[i] if i < len(names) else str(i) for i in best]
        results.append({"input": str(file), "labels": labels, "probabilities": probabilities[best].tolist()})
    return results
