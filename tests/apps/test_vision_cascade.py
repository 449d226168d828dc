"""The vision cascade (apps/vision/cascade.py): its accuracy/cost curve, the threshold it chooses,
the routing in the graph, and `dlsuite vision cascade` end to end through the app contract."""

import dataclasses
import json
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from dlsuite.apps.cli import main
from dlsuite.apps.vision import cascade
from dlsuite.apps.vision.app import VisionApp
from dlsuite.apps.vision.config import VisionConfig
from dlsuite.pipelines.images import decode_image, encode_png, load_digits_arrays
from dlsuite.shared.config import ConfigError, config_to_yaml
from tests.fresh_process import run_without_dlsuite

APP = VisionApp()
TINY = dataclasses.replace(VisionConfig(), classes=(0, 1, 2), image_size=8, epochs=2, batch_size=32,
                           learning_rate=5e-3)


def synthetic_answers(n=400, classes=4, seed=0):
    """Probabilities of a weaker and a stronger classifier, and labels: each classifier's logits
    favour the right class by a random margin (the stronger one by more)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    answers = []
    for strength in (1.0, 2.5):
        logits = rng.normal(size=(n, classes)) + strength * np.eye(classes)[labels]
        answers.append(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
    return answers[0].astype(np.float32), answers[1].astype(np.float32), labels


# === The curve ===
def test_the_curve_is_monotone_in_the_threshold_and_ends_at_the_two_models_alone():
    cheap, expensive, labels = synthetic_answers()
    thresholds = np.concatenate([[0.0], np.sort(np.random.default_rng(1).uniform(0, 1, 200)), [1.0, 1.5]])
    curve = cascade.cascade_curve(cheap, expensive, labels, thresholds)
    assert (np.diff(curve["fraction_expensive"]) >= 0).all()  # a higher threshold never sends fewer images
    assert 0 < curve["fraction_expensive"][100] < 1
    cheap_accuracy, expensive_accuracy = (np.mean(p.argmax(-1) == labels) for p in (cheap, expensive))
    assert curve["fraction_expensive"][0] == 0 and curve["accuracy"][0] == cheap_accuracy
    assert (curve["fraction_expensive"][-2:] == 1).all() and (curve["accuracy"][-2:] == expensive_accuracy).all()
    for i in range(0, len(thresholds), 17):  # the sorted prefix sums against the definition, image by image
        sent = cheap.max(-1) <= np.float32(thresholds[i])
        answer = np.where(sent[:, None], expensive, cheap).argmax(-1)
        assert curve["fraction_expensive"][i] == sent.mean()
        assert curve["accuracy"][i] == pytest.approx(np.mean(answer == labels))


def test_choose_threshold_takes_the_fewest_expensive_calls_within_the_tolerance():
    curve = {"threshold": np.array([0.0, 0.5, 0.8, 0.9, 0.95, 0.97, 1.0]),
             "fraction_expensive": np.array([0.0, 0.1, 0.2, 0.3, 0.3, 0.6, 1.0]),
             "accuracy": np.array([0.90, 0.95, 0.979, 0.980, 0.983, 0.985, 0.982])}
    assert cascade.choose_threshold(curve, 0.982) == 0.95  # 0.9 is as cheap, 0.95 more accurate
    assert cascade.choose_threshold(curve, 0.982, tolerance=0.003) == 0.8
    assert cascade.choose_threshold(curve, 0.90) == 0.0
    with pytest.raises(ValueError, match="No threshold"):
        cascade.choose_threshold(curve, 0.99)
    cheap, expensive, labels = synthetic_answers(seed=2)
    real = cascade.cascade_curve(cheap, expensive, labels, cascade.candidate_thresholds(cheap))
    best = real["accuracy"][-1]  # threshold 1: the expensive model alone
    chosen = cascade.point_at(real, cascade.choose_threshold(real, best))
    assert chosen["accuracy"] >= best - 0.002
    assert not ((real["accuracy"] >= best - 0.002) & (real["fraction_expensive"] < chosen["fraction_expensive"])).any()


# === The layer ===
class CountingLayer(keras.layers.Layer):
    """The identity, counting the images it is given (eagerly and in a graph)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False, name="seen")

    def call(self, x):
        self.seen.assign_add(ops.shape(x)[0])
        return x


def _classifier(seed, counter=None):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Flatten()(counter(inputs) if counter is not None else inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(3)(x) * 4))


def test_the_cascade_asks_the_expensive_model_about_the_unsure_images_only():
    counter = CountingLayer()
    cheap, expensive = _classifier(0), _classifier(1, counter)
    images = np.random.default_rng(0).uniform(0, 1, (32, 4, 4, 1)).astype(np.float32)
    cheap_p, expensive_p = cheap.predict(images, verbose=0), expensive.predict(images, verbose=0)
    counter.seen.assign(0)
    threshold = float(np.median(cheap_p.max(-1)))
    layer = cascade.CascadeClassifier(cheap, expensive, threshold)
    unsure = cheap_p.max(-1) <= np.float32(threshold)
    assert 0 < unsure.sum() < len(images)
    probabilities, routed = layer.route(images)
    np.testing.assert_array_equal(routed, unsure)
    np.testing.assert_allclose(probabilities, np.where(unsure[:, None], expensive_p, cheap_p), atol=1e-6)
    assert int(counter.seen.numpy()) == unsure.sum()
    in_graph = tf.function(layer, input_signature=[tf.TensorSpec((None, 4, 4, 1), tf.float32)])
    np.testing.assert_allclose(in_graph(images), probabilities, atol=1e-6)
    assert int(counter.seen.numpy()) == 2 * unsure.sum()  # the graph's batch of unsure images: dynamic
    in_graph(images[~unsure])  # all sure: the expensive model is not called at all
    assert int(counter.seen.numpy()) == 2 * unsure.sum()
    np.testing.assert_allclose(cascade.CascadeClassifier(cheap, expensive, 0.0)(images), cheap_p, atol=1e-6)
    np.testing.assert_allclose(cascade.CascadeClassifier(cheap, expensive, 1.0)(images), expensive_p, atol=1e-6)
    plain = cascade.CascadeClassifier(cheap, _classifier(2), threshold)  # from_config needs no test-only class
    clone = cascade.CascadeClassifier.from_config(plain.get_config())
    assert clone.threshold == threshold and clone.get_config() == plain.get_config()


# === Bad inputs: caught before any model is loaded ===
def _fake_run(folder: Path, class_names, config=TINY) -> Path:
    """A run folder with the files the cascade reads first (no model.keras)."""
    folder.mkdir(parents=True)
    (folder / "class_names.json").write_text(json.dumps(class_names))
    (folder / "config.yaml").write_text(config_to_yaml(config))
    return folder


def test_bad_cascade_sources_are_clear_errors(tmp_path):
    a = _fake_run(tmp_path / "a", ["0", "1", "2"])
    config = dataclasses.replace(TINY, run_root=str(tmp_path / "runs"))
    with pytest.raises(ValueError, match="needs --from CHEAP_RUN,EXPENSIVE_RUN"):
        APP.run("cascade", config)
    with pytest.raises(ValueError, match="exactly two runs.*got 1"):
        APP.run("cascade", config, str(a))
    with pytest.raises(ValueError, match="exactly two runs.*got 3"):
        APP.run("cascade", config, f"{a},{a},{a}")
    with pytest.raises(FileNotFoundError, match="nowhere: no such run folder"):
        APP.run("cascade", config, f"{a},{tmp_path / 'nowhere'}")
    other = _fake_run(tmp_path / "other", ["cat", "dog", "bird"])
    with pytest.raises(ValueError, match="same labels"):
        APP.run("cascade", config, f"{a},{other}")
    with pytest.raises(ValueError, match=r"image_size=8.*image_size=16.*--config"):
        APP.run("cascade", dataclasses.replace(config, image_size=16), f"{a},{a}")
    with pytest.raises(FileNotFoundError, match="No model"):
        APP.run("cascade", config, f"{a},{a}")
    with pytest.raises(ConfigError, match="cascade_threshold must be in"):
        dataclasses.replace(config, cascade_threshold=1.5)


# === End to end ===
@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A tiny cheap run and a less tiny expensive one on digits 0-2 (8x8, 2 epochs)."""
    root = tmp_path_factory.mktemp("runs")
    runs = [APP.run("train", dataclasses.replace(TINY, widths=widths, run_root=str(root)))["run_dir"]
            for widths in ((4,), (8, 16))]
    return [Path(r) for r in runs], root


def _cascade_run(root: Path, sources: str, *overrides) -> tuple[Path, dict]:
    before = set((root / "vision").iterdir())
    assert main(["vision", "cascade", "--from", sources, "--config", f"{sources.split(',')[0]}/config.yaml",
                 f"run_root={root}", *overrides]) == 0
    (run_dir,) = set((root / "vision").iterdir()) - before
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def test_cascade_command_saves_a_cascade_that_evaluates_and_exports(two_runs, tmp_path):
    (cheap, expensive), root = two_runs
    run_dir, metrics = _cascade_run(root, f"{cheap},{expensive}")
    for name in ("model.keras", "class_names.json", "curve.json", "plots/cascade.png", "config.yaml"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb").rglob("events.out.tfevents.*"))
    saved = json.loads((run_dir / "curve.json").read_text())
    assert (saved["cheap_run"], saved["expensive_run"]) == (str(cheap), str(expensive))
    assert saved["validation"]["threshold"] == saved["test"]["threshold"]
    curve = {k: np.array(v) for k, v in saved["test"].items()}
    at = cascade.point_at(curve, metrics["threshold"])
    assert metrics["threshold_chosen_on"] == "validation"
    assert metrics["test_accuracy"] == pytest.approx(at["accuracy"])  # the cascade run = the curve's prediction
    assert metrics["test_fraction_expensive"] == at["fraction_expensive"]
    assert metrics["validation_accuracy"] >= metrics["expensive_validation_accuracy"] - cascade.TOLERANCE - 1e-9
    assert metrics["parameters"] == metrics["cheap_parameters"] + metrics["expensive_parameters"]
    assert metrics["cheap_parameters"] < metrics["expensive_parameters"]
    again = APP.run("evaluate", APP.resolve_config("evaluate", run_dir, overrides=[f"run_root={tmp_path}"]), run_dir)
    assert again["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    exported = APP.run("export", APP.resolve_config("export", run_dir), run_dir)
    assert exported["export_agrees"], exported
    images, _, _ = load_digits_arrays(classes=(0, 1, 2))
    blobs = encode_png(images[:24])
    for i, blob in enumerate(blobs):
        (tmp_path / f"{i}.png").write_bytes(blob)
    served = run_without_dlsuite(textwrap.dedent(f"""
        import json, pathlib
        import tensorflow as tf
        serve = tf.saved_model.load({exported["export_dir"]!r}).signatures["serving_default"]
        blobs = [pathlib.Path({str(tmp_path)!r}, f"{{i}}.png").read_bytes() for i in range({len(blobs)})]
        print(json.dumps({{"p": serve(image_bytes=tf.constant(blobs))["probabilities"].numpy().tolist()}}))
    """))
    decoded = np.stack([decode_image(b, 8, 1).numpy() for b in blobs])
    np.testing.assert_allclose(served["p"], APP.load_model(run_dir).predict(decoded, verbose=0), atol=1e-5)


def test_a_given_threshold_of_0_or_1_is_one_model_alone(two_runs):
    (cheap, expensive), root = two_runs
    _, alone = _cascade_run(root, f"{cheap},{expensive}", "cascade_threshold=0")
    assert alone["threshold_chosen_on"] == "config" and alone["test_fraction_expensive"] == 0
    assert alone["test_accuracy"] == pytest.approx(json.loads((cheap / "metrics.json").read_text())["test_accuracy"])
    _, alone = _cascade_run(root, f"{cheap},{expensive}", "cascade_threshold=1")
    assert alone["test_fraction_expensive"] == 1
    assert alone["test_accuracy"] == pytest.approx(json.loads((expensive / "metrics.json").read_text())["test_accuracy"])

