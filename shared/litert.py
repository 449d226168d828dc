"""LiteRT (TensorFlow Lite) export: one `.tflite` file for phones, browsers and microcontrollers.

    dlsuite vision export --from runs/vision/<run> format=litert precision=int8   # -> <run>/litert/int8.tflite

An app says what LiteRT converts (`App.litert_plan`): a Keras model on tensors (decoded pixels,
not image bytes: LiteRT's built-in ops decode no PNG), batches from the app's own pipeline to
calibrate with, and a few inputs for the check. Keras' own `model.export(format="litert")` does the
conversion; the options below choose the precision:

    float32  the graph as it is
    float16  weights stored as float16 (half the file), computed in float32 on CPUs
    int8     full-integer: weights and activations int8, scales calibrated on the app's batches;
             inputs and outputs uint8 where the app allows (pixels 0..255 in, probabilities x 256 out)

The file runs with `ai-edge-litert` (the interpreter's new home; TensorFlow is removing
`tf.lite.Interpreter`): `LiteRTModel` below is all a user needs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

# The largest |difference| from the float32 Keras model each precision is allowed (probabilities).
# int8 rounds every activation to one of 256 levels, so answers move by a few hundredths.
LITERT_TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "int8": 0.1}


@dataclasses.dataclass
class LiteRTPlan:
    """What an app hands to the LiteRT converter.

    Attributes:
        model: keras.Model. Tensor inputs (one array per input) to the app's answer (probabilities).
        calibration: callable returning an iterator of input lists, one batch of 1 example each,
            from the app's own input pipeline (int8 scales are fitted to these).
        probe: list of np.ndarray. A few inputs (batch first) for the check against `model`.
        integer_io: bool. Full-integer files take and give uint8 tensors, not float.
    """

    model: object
    calibration: Callable[[], Iterator[list[np.ndarray]]]
    probe: list
    integer_io: bool = True


def converter_options(plan: LiteRTPlan, precision: str) -> dict:
    """`tf.lite.TFLiteConverter` attributes for one precision (passed through Keras' export)."""
    import tensorflow as tf

    if precision == "float32":
        return {}
    if precision == "float16":
        return {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_types": [tf.float16]}}
    if precision == "int8":
        options = {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": plan.calibration,
                   "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}}
        if plan.integer_io:
            options |= {"inference_input_type": tf.uint8, "inference_output_type": tf.uint8}
        return options
    raise ValueError(f"Unknown precision '{precision}': choose float32, float16 or int8.")


def write_litert(plan: LiteRTPlan, precision: str, path: str | Path) -> Path:
    """Converts `plan.model` at `precision` into `path` (written under a temporary name first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".staging-{os.getpid()}-{path.name}")
    try:
        plan.model.export(str(staging), format="litert", verbose=False, **converter_options(plan, precision))
        os.replace(staging, path)
    except Exception as err:
        staging.unlink(missing_ok=True)
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise ValueError(f"LiteRT cannot convert this model at precision={precision}: {reason}. "
                         "Try precision=float32 or float16, or the SavedModel export.") from err
    return path


class LiteRTModel:
    """A `.tflite` file loaded once into ai-edge-litert's interpreter, called like a model: float
    inputs (batch first) in, float outputs out.

    Full-integer files are fed through their own input scale (q = x / scale + zero point) and their
    outputs turned back into real numbers ((q - zero point) x scale): callers see one interface.
    The tensors are resized only when the batch shape changes."""

    def __init__(self, path: str | Path):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path))
        self.shapes = None

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        interpreter = self.interpreter
        shapes = [np.shape(array) for array in inputs]
        if shapes != self.shapes:
            for detail, shape in zip(interpreter.get_input_details(), shapes, strict=True):
                interpreter.resize_tensor_input(detail["index"], shape)
            interpreter.allocate_tensors()
            self.shapes = shapes
        for detail, array in zip(interpreter.get_input_details(), inputs, strict=True):
            interpreter.set_tensor(detail["index"], _to_tensor(np.asarray(array), detail))
        interpreter.invoke()
        return [_from_tensor(interpreter.get_tensor(d["index"]), d) for d in interpreter.get_output_details()]


def run_litert(path: str | Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The `.tflite` file's answers to float inputs (one call; `LiteRTModel` for many)."""
    return LiteRTModel(path)(inputs)


def _to_tensor(array: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if scale:  # a quantized input
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(array / scale + zero_point), info.min, info.max).astype(detail["dtype"])
    return array.astype(detail["dtype"])


def _from_tensor(array: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    return (array.astype(np.float32) - zero_point) * scale if scale else array


def check_litert(plan: LiteRTPlan, path: str | Path, precision: str) -> dict:
    """{"export_max_gap", "export_agrees", "top1_agreement"}: the file against the float Keras model."""
    want = np.asarray(plan.model.predict(plan.probe if len(plan.probe) > 1 else plan.probe[0], verbose=0))
    got = run_litert(path, plan.probe)[0]
    gap = float(np.max(np.abs(got - want)))
    same_top1 = float(np.mean(np.argmax(got, -1) == np.argmax(want, -1)))
    return {"export_max_gap": gap, "export_agrees": gap <= LITERT_TOLERANCE[precision],
            "top1_agreement": same_top1, "size_bytes": Path(path).stat().st_size}
