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
from typing import Literal

import numpy as np
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
ExportPrecision = Literal["float32", "float16", "int8"]
ExportFormat = Literal["saved_model", "litert"]


def at_precision(model, precision: ExportPrecision):
    """The model whose weights are stored at `precision`, and the names of the layers that changed.

    "float32": the model as it is. "float16": a copy whose every float layer computes and stores
    its weights in float16 (half the size; `float16_copy`). "int8": the model itself, quantized
    in place by Keras' own `model.quantize("int8")` (`quantize_int8`)."""
    if precision == "float32":
        return model, []
    if precision == "float16":
        return float16_copy(model)
    if precision == "int8":
        return model, quantize_int8(model)
    raise ValueError(f"Unknown precision '{precision}': choose float32, float16 or int8.")


def float16_copy(model):
    """The same network built from its config with every float32 dtype policy set to float16, and
    the weights cast. Unlike mixed_float16 (float32 variables, float16 arithmetic), the weights
    themselves are float16, which is what halves the export. Integer inputs (token ids) stay."""
    import keras

    # Serialized, not just get_config: the build config comes along, so subclassed models get their
    # weights. The global policy covers the sublayers a subclassed model creates in its __init__.
    default_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float16")
    try:
        copy = keras.saving.deserialize_keras_object(_float16_config(keras.saving.serialize_keras_object(model)))
    finally:
        keras.config.set_dtype_policy(default_policy)
    copy.set_weights([np.asarray(w).astype(np.float16) if np.asarray(w).dtype == np.float32 else w
                      for w in model.get_weights()])
    changed = [layer.name for layer in copy._flatten_layers(include_self=False)
               if getattr(layer, "dtype_policy", None) is not None and layer.dtype_policy.name == "float16"]
    return copy, changed


def _float16_config(config):
    """A layer/model config with float32 dtypes (as names or DTypePolicy dicts) set to float16."""
    if isinstance(config, list):
        return [_float16_config(item) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and config.get("config", {}).get("name") == "float32":
        return {**config, "config": {**config["config"], "name": "float16"}}
    return {key: "float16" if key == "dtype" and value == "float32" else _float16_config(value)
            for key, value in config.items()}


def quantize_int8(model) -> list[str]:
    """Post-training quantization with Keras' own `model.quantize("int8")`: the kernels of the
    Dense, EinsumDense and Embedding layers become int8 with a scale per output channel, and
    their inputs are quantized on the fly; other layers (convolutions, LSTMs) stay float32.
    Returns the names of the layers it converted."""
    import warnings

    with warnings.catch_warnings():  # Keras warns once per layer it cannot quantize
        warnings.simplefilter("ignore", UserWarning)
        model.quantize("int8")
    converted = [layer.name for layer in model._flatten_layers() if getattr(layer, "quantization_mode", None)]
    if not converted:
        raise ValueError(f"precision=int8: this model has no layer Keras can quantize "
                         f"({', '.join(QUANTIZABLE)}); export it as float32 or float16.")
    return converted
