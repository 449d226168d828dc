"""The vision app end to end: it learns, exports, fine-tunes and fails clearly."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlsuite.apps.cli import main
from dlsuite.apps.vision import config as vision_config
from dlsuite.apps.vision import model as vision_model
from dlsuite.apps.vision import train
from dlsuite.apps.vision.app import VisionApp
from dlsuite.pipelines.images import decode_image, encode_png, load_digits_arrays
from dlsuite.shared.config import ConfigError
from tests.fresh_process import run_without_dlsuite

APP = VisionApp()
SMALL = dataclasses.replace(
    vision_config.VisionConfig(), epochs=8, widths=(16, 32), image_size=12, batch_size=32,
    learning_rate=5e-3,
)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One short digits training shared by the tests below."""
    root = tmp_path_factory.mktemp("runs")
    metrics = APP.run("train", dataclasses.replace(SMALL, run_root=str(root)))
    return Path(metrics["run_dir"]), metrics


def test_training_learns_digits_and_fills_the_run_folder(trained_run):
    run_dir, metrics = trained_run
    assert metrics["test_accuracy"] > 0.9, metrics
    for name in ("config.yaml", "model.keras", "metrics.json", "class_names.json",
                 "plots/test_confusion_matrix.png", "plots/augmentation_samples.png"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb").rglob("events.out.tfevents.*"))
    assert json.loads((run_dir / "metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]


def test_export_loads_without_dlsuite_and_matches_keras(trained_run, tmp_path):
    run_dir, _ = trained_run
    result = APP.run("export", APP.resolve_config("export", run_dir, overrides=["top_k=2"]), run_dir)
    export_dir = result["export_dir"]
    assert result["export_agrees"] and result["export_max_gap"] < 1e-4
    images, labels, _ = load_digits_arrays()
    encoded = encode_png(images[:16])
    # Also a JPEG and an RGB PNG: channels and formats are converted in the graph.

    rgb = tf.image.grayscale_to_rgb(tf.cast(tf.round(images[16] * 255), tf.uint8))
    encoded += [tf.io.encode_jpeg(rgb, quality=95).numpy(), tf.io.encode_png(rgb).numpy()]
    for i, blob in enumerate(encoded):
        (tmp_path / f"{i}.img").write_bytes(blob)
    served = run_without_dlsuite(textwrap.dedent(f"""
        import json, pathlib
        import tensorflow as tf
        serve = tf.saved_model.load({str(export_dir)!r}).signatures["serving_default"]
        blobs = [pathlib.Path({str(tmp_path)!r}, f"{{i}}.img").read_bytes() for i in range({len(encoded)})]
        out = serve(image_bytes=tf.constant(blobs))
        print(json.dumps({{"p": out["probabilities"].numpy().tolist(),
                           "labels": out["top_k_labels"].numpy().astype(str).tolist()}}))
    """))
    assert [len(row) for row in served["labels"]] == [2] * len(encoded)  # the top_k override reached the export
    model = APP.load_model(run_dir)
    decoded = np.stack([decode_image(b, 12, 1).numpy() for b in encoded])
    in_memory = model.predict(decoded, verbose=0)
    np.testing.assert_allclose(np.array(served["p"]), in_memory, atol=1e-5)
    top1 = [row[0] for row in served["labels"]]
    assert top1 == [str(i) for i in in_memory.argmax(-1)]
    assert np.mean(in_memory[:16].argmax(-1) == labels[:16]) > 0.8


def test_predict_and_cli_errors(trained_run, tmp_path):
    run_dir, _ = trained_run
    images, labels, _ = load_digits_arrays()
    good = tmp_path / "digit.png"
    good.write_bytes(encode_png(images[:1])[0])
    result = APP.run("predict", APP.resolve_config("predict", run_dir), run_dir, [str(good)])
    assert len(result[0]["labels"]) == 3 and result[0]["probabilities"][0] >= result[0]["probabilities"][1]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png.*not a decodable image"):
        APP.run("predict", APP.resolve_config("predict", run_dir), run_dir, [str(bad)])
    with pytest.raises(FileNotFoundError, match="No such file"):
        APP.run("predict", APP.resolve_config("predict", run_dir), run_dir, [str(tmp_path / "missing.png")])
    with pytest.raises(FileNotFoundError, match="No model"):
        APP.load_model(tmp_path / "nowhere")


def test_predict_writes_its_answers_as_tsv_or_json(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    images, _, _ = load_digits_arrays()
    paths = []
    for i, blob in enumerate(encode_png(images[:3])):
        paths.append(str(tmp_path / f"{i}.png"))
        Path(paths[-1]).write_bytes(blob)
    assert main(["vision", "predict", "--from", str(run_dir), "--output", str(tmp_path / "p.tsv"), *paths]) == 0
    rows = (tmp_path / "p.tsv").read_text().splitlines()
    assert rows[0].split("\t")[0] == "input" and [r.split("\t")[0] for r in rows[1:]] == paths
    assert main(["vision", "predict", "--from", str(run_dir), "--output", str(tmp_path / "p.json"), *paths]) == 0
    assert [answer["input"] for answer in json.loads((tmp_path / "p.json").read_text())] == paths
    assert main(["vision", "predict", "--from", str(run_dir), "--output", str(tmp_path / "p.xlsx"), *paths]) == 2
    assert "written as .tsv or .json" in capsys.readouterr().err


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "dlsuite.apps.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_cli_help_and_unknown_key(capsys):
    with pytest.raises(SystemExit) as helped:
        main(["vision", "--help"])
    assert helped.value.code == 0 and "normalization = 'gcn'" in capsys.readouterr().out
    assert main(["vision", "train", "learnig_rate=0.1"]) == 2
    err = capsys.readouterr().err
    assert "Unknown config key 'learnig_rate'" in err and "learning_rate" in err
    assert _cli("speech-to-text", "train").returncode == 2  # the installed entry point, in a fresh process


@pytest.mark.parametrize("normalization", ["none", "gcn", "lcn"])
def test_every_normalization_builds_and_serializes(normalization, tmp_path):
    model = vision_model.build_model(3, 12, 3, normalization, widths=(8,),
                                     augmentation=vision_model.build_augmentation(flip=True))
    x = np.random.default_rng(0).uniform(0, 1, (2, 12, 12, 3)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_keras_applications_backbone_with_grayscale_input():
    model = vision_model.build_model(4, 16, 1, "gcn", backbone="mobilenet_v2")
    assert model.get_layer("backbone").output_shape[-1] == 1280
    assert model.predict(np.zeros((1, 16, 16, 1), np.float32), verbose=0).shape == (1, 4)


def test_mixed_precision_keeps_a_float32_head(tmp_path):
    from dlsuite.shared.distribute import set_precision

    set_precision("mixed_bfloat16")
    try:
        model = vision_model.build_model(3, 8, 1, "lcn", widths=(8,))
        x = np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 1)).astype(np.float32)
        train_ds = tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 3)).batch(4)
        figures = train.fit(model, dataclasses.replace(SMALL, precision="mixed_bfloat16", epochs=1), train_ds, None,
                            tmp_path)
        history = {"loss": [figures["final_loss"]]}
        assert np.isfinite(history["loss"][0])
        assert model.get_layer("backbone").compute_dtype == "bfloat16"
        assert model.output.dtype == "float32"
    finally:
        set_precision("float32")


@pytest.mark.slow  # 2+ minutes; the finetune command itself runs in every app's contract test
def test_finetune_beats_training_from_scratch_on_few_examples(tmp_path):
    """Pretrain on digits 0-4; with one image per class of 5-9, fine-tuning wins.

    Measured while writing this test (seed 0): scratch 0.60, fine-tuned 0.78 test accuracy.
    With 5+ images per class a CNN from scratch already reaches ~0.95 on digits and the
    pretrained 0-4 features no longer help; see the issue notes.
    """
    base = dataclasses.replace(vision_config.VisionConfig(), run_root=str(tmp_path), learning_rate=5e-3)
    pre = dataclasses.replace(base, classes=(0, 1, 2, 3, 4), epochs=15)
    pre_dir = Path(APP.run("train", pre)["run_dir"])
    few = dataclasses.replace(base, classes=(5, 6, 7, 8, 9), train_examples_per_class=1, epochs=40,
                              batch_size=8, finetune_frozen_epochs=5, finetune_learning_rate_factor=0.3)
    scratch = APP.run("train", few)
    tuned = APP.run("finetune", few, pre_dir)
    assert tuned["test_accuracy"] > scratch["test_accuracy"] + 0.05, (tuned, scratch)
    assert (tmp_path / "vision").is_dir() and tuned["finetuned_from"] == str(pre_dir)


def test_xla_training_moves_augmentation_to_the_pipeline(tmp_path, capsys):
    """jit_compile=true really compiles: geometric augmentation (not XLA-compatible) runs in tf.data."""
    config = dataclasses.replace(SMALL, jit_compile=True, epochs=1, widths=(8,), normalization="lcn",
                                 run_root=str(tmp_path))
    metrics = APP.run("train", config)
    assert np.isfinite(metrics["test_loss"])
    assert "does not support XLA" not in capsys.readouterr().out
    model = APP.load_model(metrics["run_dir"])
    assert "augment" not in [layer.name for layer in model.layers]


def test_evaluate_reproduces_the_training_runs_test_accuracy(trained_run, tmp_path):
    run_dir, metrics = trained_run
    config = dataclasses.replace(SMALL, run_root=str(tmp_path), tta=True)
    again = APP.run("evaluate", config, run_dir)
    assert again["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert again["test_accuracy_tta"] > 0.85  # the mean over shifted copies is still a good classifier
    assert again["test_examples"] == metrics["test_examples"]


def test_distill_two_teachers_into_a_smaller_student_that_exports(trained_run, tmp_path):
    """`dlsuite vision distill --from A,B widths=...`: an ensemble of the trained run with itself
    (the contract, not the gain: tests/shared/test_distillation.py measures that), a student with
    fewer parameters in its own run folder, with an export that agrees."""
    run_dir, metrics = trained_run
    sources = f"{run_dir},{run_dir}"
    assert main(["vision", "distill", "--from", sources, "widths=8", "epochs=4", f"run_root={tmp_path}"]) == 0
    (distilled,) = (tmp_path / "vision").iterdir()
    result = json.loads((distilled / "metrics.json").read_text())
    assert result["teachers"] == [str(run_dir)] * 2 and result["parameters"] < metrics["parameters"] / 2
    assert result["compression"] > 4 and result["test_accuracy"] > 0.2  # 10 classes: chance is 0.1
    config = APP.resolve_config("export", distilled)
    assert config.widths == (8,)  # the run's config describes the student
    assert APP.run("export", config, distilled)["export_agrees"]


def test_int8_exports_load_without_dlsuite_and_stay_close_to_the_float_model(trained_run, tmp_path):
    """precision=int8: Keras' weight quantization (the head is the model's Dense layer) in a
    SavedModel of its own beside the float one, and the full-integer LiteRT file (uint8 pixels in,
    uint8 probabilities out), each run in a process without dlsuite — the LiteRT one with
    ai-edge-litert only — and within 0.02 / 0.1 in probability of the float model (measured:
    0.004 / 0.014 on other digits runs)."""
    run_dir, _ = trained_run
    saved = APP.run("export", APP.resolve_config("export", run_dir, overrides=["precision=int8"]), run_dir)
    assert saved["export_agrees"] and saved["precision"] == "int8" and saved["converted_layers"] >= 1
    assert Path(saved["export_dir"]) == run_dir / "export-int8"
    litert = APP.run("export", APP.resolve_config("export", run_dir, overrides=["precision=int8", "format=litert"]),
                     run_dir)
    assert litert["export_agrees"] and Path(litert["export_dir"]) == run_dir / "litert" / "int8.tflite"
    images, _, _ = load_digits_arrays()
    for i, blob in enumerate(encode_png(images[:16])):
        (tmp_path / f"{i}.png").write_bytes(blob)
    decoded = np.stack([decode_image((tmp_path / f"{i}.png").read_bytes(), 12, 1).numpy() for i in range(16)])
    np.save(tmp_path / "pixels.npy", decoded)
    served = run_without_dlsuite(textwrap.dedent(f"""
        import json, pathlib
        import numpy as np
        import tensorflow as tf
        from ai_edge_litert.interpreter import Interpreter
        serve = tf.saved_model.load({saved["export_dir"]!r}).signatures["serving_default"]
        blobs = [pathlib.Path({str(tmp_path)!r}, f"{{i}}.png").read_bytes() for i in range(16)]
        p = serve(image_bytes=tf.constant(blobs))["probabilities"].numpy()
        interpreter = Interpreter(model_path={litert["export_dir"]!r})
        given, answer = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        pixels = np.load({str(tmp_path / "pixels.npy")!r})
        interpreter.resize_tensor_input(given["index"], pixels.shape)
        interpreter.allocate_tensors()
        scale, zero = given["quantization"]
        interpreter.set_tensor(given["index"], np.clip(np.round(pixels / scale + zero), 0, 255).astype(np.uint8))
        interpreter.invoke()
        out_scale, out_zero = answer["quantization"]
        q = (interpreter.get_tensor(answer["index"]).astype(np.float32) - out_zero) * out_scale
        print(json.dumps({{"p": p.tolist(), "q": q.tolist(), "dtype": str(given["dtype"].__name__)}}))
    """))
    want = APP.load_model(run_dir).predict(decoded, verbose=0)
    np.testing.assert_allclose(np.array(served["p"]), want, atol=0.02)
    np.testing.assert_allclose(np.array(served["q"]), want, atol=0.1)
    assert served["dtype"] == "uint8"


def test_a_mixture_of_experts_head_trains_and_exports(tmp_path):
    """head=moe: the gated experts sit between the backbone and the softmax, in training, in the
    inference graph and in the export; top-k routing gives each image exactly k experts."""
    config = dataclasses.replace(SMALL, run_root=str(tmp_path), head="moe", moe_experts=4, moe_top_k=2)
    metrics = APP.run("train", config)
    assert metrics["test_accuracy"] > 0.8, metrics
    run_dir = Path(metrics["run_dir"])
    model = APP.load_model(run_dir)
    experts = model.get_layer("experts")
    features = model.get_layer("backbone")(np.zeros((3, 12, 12, 1), "float32"))
    assert (np.count_nonzero(np.asarray(experts.gates(features)), axis=-1) == 2).all()
    assert "experts" in [layer.name for layer in vision_model.inference_model(model).layers]
    assert APP.run("export", APP.resolve_config("export", run_dir), run_dir)["export_agrees"]
    with pytest.raises(ConfigError, match="moe_top_k must be between 1 and moe_experts"):
        dataclasses.replace(config, moe_top_k=5)
