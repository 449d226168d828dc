"""Lower-precision exports: the float16 copy, Keras' int8 quantization and LiteRT files."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dlsuite.shared.export import at_precision, float16_copy
from dlsuite.shared.litert import LiteRTPlan, run_litert, write_litert


def small_classifier(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dense(256, activation="relu")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))  # 5.6k parameters


def token_model():
    inputs = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(50, 8)(inputs)
    return keras.Model(inputs, keras.layers.Dense(50)(keras.layers.GlobalAveragePooling1D()(x)))


IMAGES = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)


def test_the_float16_copy_stores_half_precision_weights_and_answers_like_the_float32_model():
    model = small_classifier()
    copy, changed = float16_copy(model)
    assert {w.dtype for w in copy.weights} == {"float16"} and len(changed) >= 4
    np.testing.assert_allclose(np.asarray(copy.predict(IMAGES, verbose=0), np.float32),
                               model.predict(IMAGES, verbose=0), atol=5e-3)


def test_the_float16_copy_keeps_integer_inputs():
    copy, _ = float16_copy(token_model())
    assert copy.inputs[0].dtype == "int32"
    assert copy.predict(np.arange(10).reshape(2, 5), verbose=0).shape == (2, 50)


def test_int8_quantizes_only_the_layers_keras_supports():
    model, converted = at_precision(small_classifier(), "int8")
    assert len(converted) == 2 and model.layers[-1].quantization_mode == "int8"  # the Dense layers, not the conv
    with pytest.raises(ValueError, match="no layer Keras can quantize"):
        at_precision(keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3)]), "int8")


def plan_for(model):
    def calibration():
        for image in IMAGES:
            yield [image[None]]
    return LiteRTPlan(model, calibration, [IMAGES])


@pytest.mark.parametrize("precision, tolerance", [("float32", 1e-5), ("float16", 1e-2), ("int8", 0.1)])
def test_a_litert_file_answers_like_the_keras_model(tmp_path, precision, tolerance):
    model = small_classifier()
    path = write_litert(plan_for(model), precision, tmp_path / f"{precision}.tflite")
    got = run_litert(path, [IMAGES])[0]
    np.testing.assert_allclose(got, model.predict(IMAGES, verbose=0), atol=tolerance)


def test_a_full_integer_litert_file_takes_and_gives_uint8(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    float_file = write_litert(plan_for(small_classifier()), "float32", tmp_path / "float32.tflite")
    int8_file = write_litert(plan_for(small_classifier()), "int8", tmp_path / "int8.tflite")
    interpreter = Interpreter(model_path=str(int8_file))
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert interpreter.get_output_details()[0]["dtype"] == np.uint8
    # int8 weights are a quarter of float32's; per-channel scales and the graph take the rest
    assert int8_file.stat().st_size < 0.6 * float_file.stat().st_size


def test_an_unknown_precision_is_refused(tmp_path):
    with pytest.raises(ValueError, match="choose float32, float16 or int8"):
        at_precision(small_classifier(), "int4")
    with pytest.raises(ValueError, match="choose float32, float16 or int8"):
        write_litert(plan_for(small_classifier()), "int4", tmp_path / "x.tflite")
    assert not list(tmp_path.iterdir())  # nothing half-written
