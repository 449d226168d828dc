"""Export a trained vision model as a SavedModel that takes encoded image bytes.

    dlsuite vision export --from runs/vision/<run>        # -> <run>/export/ (checked against Keras)

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
import numpy as np
import tensorflow as tf

from dlsuite.apps.app import ExportProbe
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


def probe(model, encoded_images: list[bytes]) -> ExportProbe:
    """The export's check: encoded images, and the probabilities the Keras model gives them when
    the training pipeline's `decode_image` decodes them (the SavedModel decodes in its graph)."""
    _, size, _, channels = model.input_shape
    images = tf.stack([decode_image(b, size, channels) for b in encoded_images])
    expected = model.predict(images, verbose=0)
    return ExportProbe(inputs={"image_bytes": np.array(encoded_images, dtype=object)},
                       expected={"probabilities": expected}, tolerance=1e-4)
