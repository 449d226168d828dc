"""SavedModel export helpers shared by the apps.

An app builds a `tf.Module` whose `tf.function`s take raw inputs (image bytes,
waveforms, strings) and do all preprocessing in the graph; `save_module` writes it
atomically, and the result loads with plain `tf.saved_model.load` — no dlsuite,
no Keras custom objects.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from dlsuite.shared.runs import replace_dir


def save_module(module: tf.Module, export_dir: str | Path, signatures: dict) -> Path:
    """`tf.saved_model.save` into a temporary folder, then renamed into place.

    A failed export leaves any earlier export at `export_dir` untouched.
    """
    export_dir = Path(export_dir)
    export_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=export_dir.parent, prefix=f".{export_dir.name}.tmp-"))
    try:
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        return replace_dir(tmp, export_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def top_k_labels(probabilities, class_names, k: int):
    """(B, C) probabilities -> (B, k) label strings and (B, k) scores, in graph."""
    k = min(k, len(class_names))
    scores, indices = tf.math.top_k(probabilities, k=k)
    labels = tf.gather(tf.constant(list(class_names)), indices)
    return labels, scores



QUANTIZABLE = ("Dense", "EinsumDense", "Embedding")  # what Keras 3.15's model.quantize("int8") converts


def quantize_weights(model, precision: str) -> list[str]:
    """Post-training quantization with Keras' own `model.quantize`: precision "int8" stores the
    kernels of the Dense, EinsumDense and Embedding layers as int8 with a scale per output
    channel, and quantizes their inputs on the fly; other layers (convolutions, LSTMs) stay
    float32. Returns the names of the layers it converted; "float32" leaves the model as it is."""
    if precision == "float32":
        return []
    import warnings

    with warnings.catch_warnings():  # Keras warns once per layer it cannot quantize
        warnings.simplefilter("ignore", UserWarning)
        model.quantize(precision)
    converted = [layer.name for layer in model._flatten_layers() if getattr(layer, "quantization_mode", None)]
    if not converted:
        raise ValueError(f"export_precision={precision}: this model has no layer Keras can quantize "
                         f"({', '.join(QUANTIZABLE)}); export it as float32.")
    return converted
