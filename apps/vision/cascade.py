"""A cascade of two classifiers: the cheap one answers when it is sure, the expensive one otherwise.

    dlsuite vision cascade --from runs/vision/<cheap>,runs/vision/<expensive>   # threshold chosen on validation
    dlsuite vision cascade --from <cheap>,<expensive> cascade_threshold=0.99
    dlsuite vision export --from runs/vision/<time>-cascade     # one SavedModel runs the whole cascade

The source text's dynamic structure (a cascade of classifiers, section 12.1.5): every image goes
through the cheap model; the images whose top probability is not above the threshold go through
the expensive model too, and its answer replaces the cheap one. `CascadeClassifier` does this in
the graph, with the expensive model called on the unsure images only (a gather, then a scatter
back), so the saving is real in the exported SavedModel, not just on paper.

The threshold's accuracy/cost curve comes from both models' probabilities of every image, computed
once (`cascade_curve`). Without `cascade_threshold` the command chooses the threshold with the
fewest expensive calls whose accuracy is within 0.2 points of the expensive model alone, on the
validation split, and reports the test split (`choose_threshold`). The run folder holds
model.keras (the cascade: `evaluate`, `predict` and `export --from` take it as they take any run),
class_names.json, curve.json (both curves) and plots/cascade.png (also in TensorBoard).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import ops

from dlsuite.apps.vision import inference, train
from dlsuite.apps.vision.config import VisionConfig
from dlsuite.apps.vision.model import inference_model
from dlsuite.shared import plots
from dlsuite.shared.runs import atomic_write_json
from dlsuite.shared.training import load_run_model, set_up

TOLERANCE = 0.002  # 0.2 points of accuracy below the expensive model alone
# The fields that draw the data split and shape the images: the cascade scores both runs on the splits they had.
DATA_FIELDS = ("data", "tfds_data_dir", "classes", "image_size", "channels", "split_seed")


# === Layers ===
@keras.saving.register_keras_serializable(package="dlsuite")
class CascadeClassifier(keras.layers.Layer):
    """The cheap classifier's answer where its top probability is above `threshold`, else the
    expensive classifier's, which runs on those images only.

    Needs the TensorFlow backend: the number of unsure images is known only when the graph runs
    (a dynamic shape). XLA wants static shapes, so the layer says `supports_jit = False` and
    Keras predicts with it uncompiled.

    Args:
        cheap: keras.Model. Images (B, S, S, C) -> probabilities (B, classes); run on every image.
        expensive: keras.Model. The same inputs and classes; run on the unsure images only.
        threshold: float. The cheap model answers when its top probability is above this: 0 =
            always (the cheap model alone), 1 or more = never (the expensive model alone).
        **kwargs: `keras.layers.Layer` arguments (name, ...).

    Example:
    >>> cascade = CascadeClassifier(cheap, expensive, threshold=0.99)
    >>> probabilities, to_expensive = cascade.route(images)   # (B, classes), (B,) bool
    """

    def __init__(self, cheap, expensive, threshold, **kwargs):
        super().__init__(**kwargs)
        self.cheap = cheap
        self.expensive = expensive
        self.threshold = float(threshold)
        self.supports_jit = False

    def call(self, images):
        probabilities, _ = self.route(images)
        return probabilities

    def route(self, images):
        """(probabilities (B, classes), to_expensive (B,) bool): the cascade's answer, and which
        images the expensive model answered."""
        cheap = ops.cast(self.cheap(images), "float32")  # (B, classes)
        unsure = self.to_expensive(cheap)  # (B,)
        # A batch the cheap model is sure of skips the expensive model: nothing to compute, and a batch
        # of 0 images fails in TF's CPU kernels (measured: a strided convolution answers a wrong shape).
        probabilities = ops.cond(ops.any(unsure), lambda: self._ask_expensive(images, cheap, unsure),
                                 lambda: cheap)
        return probabilities, unsure

    def to_expensive(self, cheap_probabilities):
        """(B,) bool: the images whose top cheap probability is not above the threshold.
        The threshold is compared in float32, as `cascade_curve` compares it."""
        return ops.max(cheap_probabilities, axis=-1) <= ops.cast(self.threshold, "float32")

    def _ask_expensive(self, images, cheap, unsure):
        indices = ops.nonzero(unsure)[0]  # (U,) rows of the unsure images
        answers = ops.cast(self.expensive(ops.take(images, indices, axis=0)), "float32")  # (U, classes)
        return ops.scatter_update(cheap, ops.expand_dims(indices, -1), answers)  # (B, classes)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.cheap.output_shape[-1])

    def get_config(self):
        return {**super().get_config(), "cheap": keras.saving.serialize_keras_object(self.cheap),
                "expensive": keras.saving.serialize_keras_object(self.expensive), "threshold": self.threshold}

    @classmethod
    def from_config(cls, config):
        models = {key: keras.saving.deserialize_keras_object(config[key]) for key in ("cheap", "expensive")}
        return cls(**{**config, **models})


# === Functional Model ===
def build_cascade_model(cheap, expensive, threshold):
    """images -> the cascade of two trained vision classifiers' inference graphs (augmentation
    and dropout left out, as in their exports)."""
    parts = []
    for model, name in ((cheap, "cheap"), (expensive, "expensive")):
        parts.append(inference_model(model))
        parts[-1].name = name
    inputs = keras.Input(cheap.input_shape[1:], name="images")
    outputs = CascadeClassifier(*parts, threshold, name="cascade")(inputs)
    return keras.Model(inputs, outputs, name="vision_cascade")


# === The accuracy/cost curve ===
def cascade_curve(cheap_probabilities, expensive_probabilities, labels, thresholds) -> dict:
    """What the cascade answers at each threshold, from both models' probabilities of every image.

    Returns {"threshold": (T,), "fraction_expensive": (T,), "accuracy": (T,)} as NumPy arrays. An
    image goes to the expensive model when the cheap top probability is not above the threshold
    (`CascadeClassifier.to_expensive`, in float32 alike), so with the images sorted by that
    probability the expensive model takes a prefix, whose length grows with the threshold.
    """
    confidence = np.max(cheap_probabilities, axis=-1).astype(np.float32)  # (N,)
    order = np.argsort(confidence, kind="stable")
    cheap_right = (np.argmax(cheap_probabilities, axis=-1) == labels)[order]
    expensive_right = (np.argmax(expensive_probabilities, axis=-1) == labels)[order]
    thresholds = np.asarray(thresholds, dtype=np.float32)
    sent = np.searchsorted(confidence[order], thresholds, side="right")  # (T,) images with confidence <= t
    cheap_correct = np.concatenate([[0], np.cumsum(cheap_right)])  # right answers among the k least sure
    expensive_correct = np.concatenate([[0], np.cumsum(expensive_right)])
    correct = expensive_correct[sent] + cheap_correct[-1] - cheap_correct[sent]
    return {"threshold": thresholds.astype(np.float64), "fraction_expensive": sent / len(labels),
            "accuracy": correct / len(labels)}


def candidate_thresholds(cheap_probabilities, extra=()) -> np.ndarray:
    """0 (the cheap model alone), every top cheap probability (each one moves that image and the
    less sure ones to the expensive model), 1 (the expensive model alone), and `extra`."""
    confidence = np.max(cheap_probabilities, axis=-1)
    return np.unique(np.concatenate([[0.0, 1.0], confidence, list(extra)]).astype(np.float32)).astype(np.float64)


def choose_threshold(curve: dict, expensive_accuracy: float, tolerance: float = TOLERANCE) -> float:
    """The threshold of `curve` with the fewest expensive calls whose accuracy is at least
    `expensive_accuracy - tolerance` (ties: the more accurate, then the lower threshold).

    Give it the validation curve and the expensive model's validation accuracy: a threshold
    chosen on the test split would report an accuracy tuned on the very images it is scored on.
    """
    good = np.flatnonzero(curve["accuracy"] >= expensive_accuracy - tolerance - 1e-9)  # 1e-9: float rounding
    if not len(good):
        raise ValueError(f"No threshold of the curve comes within {tolerance} of accuracy {expensive_accuracy:.4f}; "
                         "the curve needs threshold 1 (the expensive model alone).")
    best = min(good, key=lambda i: (curve["fraction_expensive"][i], -curve["accuracy"][i], curve["threshold"][i]))
    return float(curve["threshold"][best])


def point_at(curve: dict, threshold: float) -> dict:
    """The curve's fraction to the expensive model and accuracy at one of its thresholds."""
    (i,) = np.flatnonzero(curve["threshold"] == np.float32(threshold))
    return {"fraction_expensive": float(curve["fraction_expensive"][i]), "accuracy": float(curve["accuracy"][i])}


def cascade_figure(curves: dict, threshold: float, tolerance: float = TOLERANCE):
    """Accuracy against the fraction of images sent to the expensive model, one line per split;
    the ends are the two models alone; the dot is the chosen threshold."""
    fig, ax = plots.plt.subplots(figsize=(6.5, 4.5))
    for split, style in (("validation", "--"), ("test", "-")):
        curve = curves[split]
        (line,) = ax.plot(curve["fraction_expensive"], 100 * curve["accuracy"], linestyle=style,
                          label=f"cascade, {split}")
        chosen = point_at(curve, threshold)
        ax.plot(chosen["fraction_expensive"], 100 * chosen["accuracy"], "o", color=line.get_color())
        for end, marker in ((0.0, "s"), (1.0, "D")):  # threshold 0: the cheap model alone; 1: the expensive one
            alone = point_at(curve, end)
            ax.plot(alone["fraction_expensive"], 100 * alone["accuracy"], marker, color=line.get_color(),
                    fillstyle="none")
    expensive = point_at(curves["validation"], 1.0)["accuracy"]
    ax.axhline(100 * (expensive - tolerance), color="gray", linestyle=":", linewidth=1,
               label=f"expensive alone - {100 * tolerance:g} points (validation)")
    test = point_at(curves["test"], threshold)
    ax.set(xlabel="fraction of images sent to the expensive model", ylabel="accuracy (%)",
           title=f"Cascade: threshold {threshold:.4g}, {100 * test['fraction_expensive']:.1f}% expensive on test "
                 "(square: cheap alone, diamond: expensive alone)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


# === The command ===
def cascade_sources(source: str | None) -> list[str]:
    """`--from CHEAP_RUN,EXPENSIVE_RUN` -> the two runs as given (the app checks that they exist)."""
    runs = [s.strip() for s in str(source or "").split(",") if s.strip()]
    if not runs:
        raise ValueError("'dlsuite vision cascade' needs --from CHEAP_RUN,EXPENSIVE_RUN (two trained vision runs).")
    if len(runs) != 2:
        raise ValueError(f"--from {source}: a cascade takes exactly two runs, the cheap one first, got {len(runs)}.")
    return runs


def check_cascade_runs(runs: list[Path], run_configs: list[VisionConfig], config: VisionConfig) -> list[str]:
    """The two runs' class names (the same, in the same order) after checking that the cascade's
    settings draw the data split and image shape both runs were trained on."""
    names = [inference.class_names(run) for run in runs]
    if names[0] != names[1]:
        raise ValueError(f"The cheap run {runs[0]} answers {names[0]}, the expensive run {runs[1]} {names[1]}: a "
                         "cascade needs two runs trained on the same labels.")
    for run, trained in zip(runs, run_configs, strict=True):
        differ = [f for f in DATA_FIELDS if getattr(trained, f) != getattr(config, f)]
        if differ:
            theirs = ", ".join(f"{f}={getattr(trained, f)!r}" for f in differ)
            ours = ", ".join(f"{f}={getattr(config, f)!r}" for f in differ)
            raise ValueError(f"Run {run} was trained with {theirs}, the cascade's settings have {ours}: its "
                             f"validation and test images would not be the run's. Pass the runs' settings, e.g. "
                             f"--config {Path(run) / 'config.yaml'}.")
    return names[0]


def split_answers(models, dataset) -> dict:
    """Each model's probabilities of a batched split, and its labels."""
    labels = np.concatenate([y for _, y in dataset.as_numpy_iterator()])
    cheap, expensive = (model.predict(dataset, verbose=0) for model in models)
    return {"cheap": cheap, "expensive": expensive, "labels": labels}


def make_cascade(config: VisionConfig, run_dir: Path, runs: list[Path], run_configs: list[VisionConfig]) -> dict:
    """The cascade of `runs` (cheap, expensive) at `config.cascade_threshold`, or at the threshold
    chosen on the validation split; saves it as model.keras and returns its test metrics."""
    class_names = check_cascade_runs(runs, run_configs, config)
    _, batch = set_up(config)
    _, (_, val_ds, test_ds) = train.load_datasets(config, batch, evaluation=True)
    cheap, expensive = (load_run_model(run, "vision") for run in runs)
    answers = {"validation": split_answers((cheap, expensive), val_ds), "test": split_answers((cheap, expensive), test_ds)}
    given = config.cascade_threshold >= 0
    thresholds = candidate_thresholds(answers["validation"]["cheap"], [config.cascade_threshold] if given else [])
    curves = {split: cascade_curve(a["cheap"], a["expensive"], a["labels"], thresholds) for split, a in answers.items()}
    validation = curves["validation"]
    threshold = config.cascade_threshold if given else choose_threshold(validation, point_at(validation, 1.0)["accuracy"])
    model = build_cascade_model(cheap, expensive, threshold)
    model.save(run_dir / "model.keras")
    atomic_write_json(run_dir / "class_names.json", list(class_names))
    atomic_write_json(run_dir / "curve.json", {"threshold": threshold, "tolerance": TOLERANCE, "cheap_run": str(runs[0]),
                                               "expensive_run": str(runs[1]),
                                               **{s: {k: v.tolist() for k, v in c.items()} for s, c in curves.items()}})
    plots.save_figure(cascade_figure(curves, threshold), run_dir, "cascade")
    measured = inference.evaluate_model(model, test_ds, class_names, run_dir)  # the cascade itself, run on the test split
    return measured | cascade_metrics(curves, threshold, given, (cheap, expensive, model)) | {
        "cheap_run": str(runs[0]), "expensive_run": str(runs[1])}


def cascade_metrics(curves: dict, threshold: float, given: bool, models) -> dict:
    """The curves' figures at the threshold and at both ends, and the three models' sizes."""
    metrics = {"threshold": threshold, "threshold_chosen_on": "config" if given else "validation"}
    for split, curve in curves.items():
        at = point_at(curve, threshold)
        metrics |= {f"{split}_fraction_expensive": at["fraction_expensive"],
                    f"cheap_{split}_accuracy": point_at(curve, 0.0)["accuracy"],
                    f"expensive_{split}_accuracy": point_at(curve, 1.0)["accuracy"]}
    metrics["validation_accuracy"] = point_at(curves["validation"], threshold)["accuracy"]
    cheap, expensive, cascade = (int(m.count_params()) for m in models)
    return metrics | {"cheap_parameters": cheap, "expensive_parameters": expensive, "parameters": cascade}

