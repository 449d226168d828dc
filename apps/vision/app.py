"""The vision app: image classification with contrast normalization (GCN, LCN) and augmentation.

    dlsuite vision train epochs=30                  # -> runs/vision/<time>-train/
    dlsuite vision finetune --from runs/vision/<run> data=folder:my_images
    dlsuite vision evaluate --from runs/vision/<run>
    dlsuite vision predict --from runs/vision/<run> image1.png image2.jpg
    dlsuite vision export --from runs/vision/<run>
    dlsuite vision distill --from runs/vision/<a>,runs/vision/<b> widths=8,16,32   # a 15x smaller student
    dlsuite vision cascade --from runs/vision/<cheap>,runs/vision/<expensive>     # the cheap one answers when sure
    dlsuite vision figures | robustness             # the chapter's GCN/LCN figure; contrast robustness

`VisionApp` fills the app contract (apps/app.py); each method is one command's story, told with
the steps of train.py (data, augmentation, fitting), inference.py and export.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np

from dlsuite.apps.app import App, ExportProbe, run_folder
from dlsuite.apps.vision import cascade, export, inference, report, train
from dlsuite.apps.vision import model as vision_model
from dlsuite.apps.vision.config import VisionConfig, quick
from dlsuite.pipelines.images import encode_png, load_digits_arrays
from dlsuite.shared.distillation import check_same_classes, make_distiller
from dlsuite.shared.litert import LiteRTPlan
from dlsuite.shared.runs import atomic_write_json
from dlsuite.shared.training import fit_model, set_up


class VisionApp(App):
    name = "vision"
    config_class = VisionConfig
    inputs_are = "files"
    extra_commands = ("figures", "robustness", "cascade")

    def quick(self) -> VisionConfig:
        return quick()

    def smoke_config(self, workdir: Path) -> VisionConfig:
        return dataclasses.replace(VisionConfig(), run_root=str(Path(workdir) / "runs"), classes=(0, 1, 2), epochs=2,
                                   finetune_frozen_epochs=1, widths=(8,), image_size=8, batch_size=32)

    def smoke_inputs(self, workdir: Path) -> list[str]:
        images, _, _ = load_digits_arrays()
        paths = []
        for i, encoded in enumerate(encode_png(images[:2])):
            paths.append(Path(workdir) / f"digit{i}.png")
            paths[-1].write_bytes(encoded)
        return [str(p) for p in paths]

    # === Commands ===
    def train_and_evaluate(self, config: VisionConfig, run_dir: Path) -> dict:
        """Trains from scratch, evaluates on the test split."""
        strategy, batch = set_up(config)
        splits, (train_ds, val_ds, test_ds) = train.load_datasets(config, batch)
        with strategy.scope():
            augmentation, train_ds = train.make_augmentation(config, train_ds)
            model = vision_model.build_model(splits.num_classes, augmentation=augmentation,
                                             **train.model_arguments(config))
        if augmentation is not None:
            train.save_augmentation_samples(augmentation, train_ds, run_dir)
        return train.fit_and_evaluate(model, config, splits.class_names, (train_ds, val_ds, test_ds), run_dir)

    def finetune(self, config: VisionConfig, run_dir: Path, source: Path) -> dict:
        """A new head for a new label set: trained with the backbone frozen, then all layers at
        `learning_rate * finetune_learning_rate_factor`, so the pretrained features move slowly."""
        strategy, batch = set_up(config)
        splits, (train_ds, val_ds, test_ds) = train.load_datasets(config, batch)
        frozen_epochs = min(config.finetune_frozen_epochs, config.epochs - 1)
        with strategy.scope():
            augmentation, train_ds = train.make_augmentation(config, train_ds)
            model = vision_model.replace_head(self.load_model(source), splits.num_classes, augmentation, config.dropout)
            model.get_layer("backbone").trainable = False
        if frozen_epochs > 0:
            train.fit(model, config, train_ds, val_ds, run_dir / "frozen", epochs=frozen_epochs)
        model.get_layer("backbone").trainable = True
        return train.fit_and_evaluate(model, config, splits.class_names, (train_ds, val_ds, test_ds), run_dir,
                                      epochs=config.epochs - frozen_epochs,
                                      learning_rate=config.learning_rate * config.finetune_learning_rate_factor)

    def distill(self, config: VisionConfig, run_dir: Path, teachers: list[Path]) -> dict:
        """The model `config` describes (e.g. widths=8,16,32), taught by the teachers' averaged
        probabilities and the labels. Augmentation runs in the input pipeline here, so that the
        teachers judge the very image the student sees."""
        strategy, batch = set_up(config)
        splits, (train_ds, val_ds, test_ds) = train.load_datasets(config, batch)
        class_names = check_same_classes(
            [json.loads((run_folder(t) / "class_names.json").read_text()) for t in teachers], teachers)
        if list(class_names) != list(splits.class_names):
            raise ValueError(f"The teachers answer {class_names}, the data has {list(splits.class_names)}: distill on "
                             "the teachers' labels.")
        _, train_ds = train.make_augmentation(dataclasses.replace(config, jit_compile=True), train_ds)
        with strategy.scope():
            student = vision_model.build_model(splits.num_classes, **train.model_arguments(config))
            teacher_models = [self.load_model(t) for t in teachers]
            distiller = make_distiller(teacher_models, student, config.distill_temperature, config.distill_label_weight,
                                       next(iter(val_ds))[0])
        figures = fit_model(distiller, config, train_ds, val_ds, run_dir, saved=student,
                            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),  # log-probabilities
                            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
        atomic_write_json(run_dir / "class_names.json", list(class_names))
        teacher_parameters = sum(m.count_params() for m in teacher_models)
        return inference.evaluate_model(student, test_ds, class_names, run_dir, tta=config.tta) | figures | {
            "teacher_parameters": int(teacher_parameters),
            "compression": round(teacher_parameters / figures["parameters"], 2)}

    def evaluate(self, config: VisionConfig, run_dir: Path, source: Path) -> dict:
        _, batch = set_up(config)
        splits, (_, _, test_ds) = train.load_datasets(config, batch, evaluation=True)
        return inference.evaluate_model(self.load_model(source, config.export_precision), test_ds, splits.class_names, run_dir, tta=config.tta)

    def predict(self, config: VisionConfig, source: Path, inputs: list[str]) -> list[dict]:
        return inference.classify_files(self.load_model(source), inference.class_names(source), inputs, config.top_k)

    def export(self, config: VisionConfig, source: Path, model, export_dir: Path) -> None:
        export.export_serving_model(model, inference.class_names(source, model), export_dir, config.top_k)

    def export_probe(self, config: VisionConfig, source: Path, model) -> ExportProbe:
        images, _, _ = load_digits_arrays()
        return export.probe(model, encode_png(images[:16]))

    def litert_plan(self, config: VisionConfig, source: Path, model) -> LiteRTPlan:
        """LiteRT takes decoded pixels (B, S, S, C): full-integer files read them as uint8 0..255
        (the calibrated input scale is 1/255) and answer probabilities as uint8 / 256."""
        splits = train.load_splits(config, evaluation=True)

        def calibration():  # int8 scales from 200 training images, one at a time as the converter asks
            for image, _ in splits.train.take(200).as_numpy_iterator():
                yield [image[None]]

        probe = np.stack([image for image, _ in splits.test.take(32).as_numpy_iterator()])
        return LiteRTPlan(vision_model.inference_model(model), calibration, [probe], integer_io=True)

    def summary(self, metrics: dict) -> dict:
        return {"test accuracy": metrics["test_accuracy"], "train seconds": metrics["train_seconds"]}

    # === The app's own commands ===
    def run_extra(self, command: str, config: VisionConfig, run_dir: Path, source: str | None = None) -> dict:
        if command == "figures":
            paths = [report.contrast_figure(run_dir), report.jitter_samples_figure(run_dir, config.image_size)]
            return {"figures": [str(p) for p in paths]}
        if command == "robustness":
            return report.robustness_experiment(config, run_dir)
        if command == "cascade":  # --from CHEAP_RUN,EXPENSIVE_RUN (apps/vision/cascade.py)
            runs = [self.checked_source(command, s) for s in cascade.cascade_sources(source)]
            return cascade.make_cascade(config, run_dir, runs, [self.trained_config(run) for run in runs])
        return super().run_extra(command, config, run_dir, source)

    def main_job_extras(self, config: VisionConfig) -> dict:
        """The chapter's figures and the contrast-robustness experiment (15 epochs per model)."""
        self.run("figures", config)
        robust = self.run("robustness", dataclasses.replace(config, epochs=15))
        return {f"jittered digits acc, {k.split('_')[1]}": v for k, v in robust.items() if k.startswith("accuracy_")}
