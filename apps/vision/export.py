"""Export a trained vision model as a SavedModel that takes encoded image bytes.

    dlsuite vision export --from runs/vision/<run>        # -> <run>/export/

The serving signature `serving_default(image_bytes: string[B])` decodes PNG/JPEG/
GIF/BMP, converts channels, resizes, scales to [0, 1] and runs the model (whose
contrast normalization is a layer inside it), returning `probabilities` (B, C),
`top_k_labels` (B, k) and `top_k_scores` (B, k). Load it with plain TensorFlow:

    serve = tf.saved_model.load("export").signatures["serving_default"]
    serve(image_bytes=tf.constant([open("digit.png", "rb").read()]))
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from dlsuite.apps.vision.model import inference_model
from dlsuite.pipelines.images import decode_image
from dlsuite.shared.export import save_module, top_k_labels


class ImageClassifierModule(tf.Module):
    """Raw image bytes in, class probabilities and top-k labels out."""

    def __init__(self, model: keras.Model, class_names, top_k: int = 3):
        super().__init__()
        self.model = inference_model(model)
        self.class_names = tuple(str(c) for c in class_names)
        self.top_k = top_k
        _, self.image_size, _, self.channels = model.input_shape

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes):
        images = tf.map_fn(
            lambda b: decode_image(b, self.image_size, self.channels),
            image_bytes,
            fn_output_signature=tf.TensorSpec((self.image_size, self.image_size, self.channels), tf.float32),
        )  # (B, S, S, C) in [0, 1]
        probabilities = tf.cast(self.model(images, training=False), tf.float32)  # (B, classes)
        labels, scores = top_k_labels(probabilities, self.class_names, self.top_k)
        return {"probabilities": probabilities, "top_k_labels": labels, "top_k_scores": scores}


def export_serving_model(model, class_names, export_dir: str | Path, top_k: int = 3) -> Path:
    """Writes the SavedModel; returns its folder."""
    module = ImageClassifierModule(model, class_names, top_k)
    return save_module(
        module, export_dir,
        signatures={"serving_default": module.serve},
    )


def export_run(source: str | Path, export_dir: str | Path | None = None, top_k: int = 3) -> Path:
    """Exports the model of a finished run folder (or a .keras file) to `<run>/export`."""
    import json

    from dlsuite.apps.vision.train import load_model

    source = Path(source)
    run_dir = source if source.is_dir() else source.parent
    model = load_model(source)
    names_file = run_dir / "class_names.json"
    if names_file.is_file():
        class_names = json.loads(names_file.read_text())
    else:
        class_names = [str(i) for i in range(model.output_shape[-1])]
    return export_serving_model(model, class_names, export_dir or run_dir / "export", top_k)


def max_export_gap(model, export_dir: str | Path, encoded_images: list[bytes]) -> float:
    """Largest |probability difference| between the SavedModel and the Keras model.

    Both see the same bytes: the SavedModel decodes them in its graph, the Keras
    model gets them decoded by the training pipeline's `decode_image`.
    """
    _, size, _, channels = model.input_shape
    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    exported = serve(image_bytes=tf.constant(encoded_images))["probabilities"].numpy()
    images = tf.stack([decode_image(b, size, channels) for b in encoded_images])
    in_memory = model.predict(images, verbose=0)
    return float(abs(exported - in_memory).max())


def check_export_matches(run_dir: str | Path, export_dir: str | Path, n: int = 32) -> float:
    """`max_export_gap` on n digits test images encoded as PNG (the main job's check)."""
    from dlsuite.apps.vision.train import load_model
    from dlsuite.pipelines.images import encode_png, load_digits_arrays

    images, _, _ = load_digits_arrays()
    gap = max_export_gap(load_model(run_dir), export_dir, encode_png(images[:n]))
    if gap > 1e-4:
        raise AssertionError(f"Exported model differs from the Keras model by {gap:.2e}.")
    return gap
