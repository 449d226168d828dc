"""Vision app configuration: one dataclass, a quick preset, validation.

    dlsuite vision train --quick epochs=5 normalization=lcn
    dlsuite vision train --config my_settings.yaml data=folder:photos channels=3
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from dlsuite.shared.config import option, require
from dlsuite.shared.training import TrainConfig


@dataclasses.dataclass(frozen=True)
class VisionConfig(TrainConfig):
    # Settings a trained model fixes: `--from` commands refuse to change them.
    MODEL_FIELDS: ClassVar[tuple[str, ...]] = (
        "image_size", "channels", "normalization", "gcn_regularization", "lcn_window_size", "lcn_window",
        "backbone", "widths", "blocks_per_stage", "head", "moe_experts", "moe_top_k", "moe_hidden_units",
        "moe_dispatch")
    # === Data ===
    data: str = option("digits", "digits | folder:<path> | tfds:<name> (e.g. tfds:mnist)")
    tfds_data_dir: str = option("", "TFDS data_dir (empty: TFDS default)")
    classes: tuple[int, ...] = option((), "digits only: keep these classes, e.g. 0,1,2,3,4")
    train_examples_per_class: int = option(0, "keep at most this many training images per class (0 = all)")
    split_seed: int = option(0, "draws the train/validation/test split and the few-shot subset; `seed` varies only "
                                "initialization, shuffling and augmentation, so runs of any seed share one test split")
    image_size: int = option(16, "images are resized to image_size x image_size")
    channels: int = option(1, "1 (grayscale) or 3 (RGB); images are converted")
    # === Model ===
    normalization: Literal["none", "gcn", "lcn"] = option("gcn", "contrast normalization, a layer inside the model")
    gcn_regularization: float = option(0.0, "GCN lambda (eq. 12.3)")
    lcn_window_size: int = option(5, "LCN window width in pixels (odd)")
    lcn_window: Literal["gaussian", "box"] = option("gaussian", "LCN window")
    backbone: Literal["resnet", "mobilenet_v2", "efficientnet_b0", "resnet50"] = option(
        "resnet", "resnet (ours) or a Keras Applications backbone")
    backbone_weights: str = option("", "Keras Applications backbones: path to a local weights file")
    widths: tuple[int, ...] = option((32, 64, 128), "resnet: filters per stage (stride 2 after the first)")
    blocks_per_stage: int = option(1, "resnet: residual blocks per stage")
    dropout: float = option(0.2, "dropout before the classification head")
    head: Literal["dense", "moe"] = option("dense", "moe: a gated mixture of experts between the backbone and the softmax")
    moe_experts: int = option(4, "head=moe: Dense experts")
    moe_top_k: int = option(2, "head=moe: experts run per image (the top-k gates)")
    moe_hidden_units: int = option(64, "head=moe: hidden units of each expert")
    moe_dispatch: Literal["dense", "capacity"] = option(
        "dense", "head=moe: dense runs every expert on every image; capacity runs each expert on "
        "1.25 x top_k x batch / experts slots only (choices past them dropped)")
    # === Augmentation (Keras preprocessing layers inside the model) ===
    augment: bool = option(True, "random translation/rotation/zoom/contrast/brightness while training")
    translate: float = option(0.1, "max translation as a fraction of the image size")
    rotate_degrees: float = option(10.0, "max rotation in degrees")
    zoom: float = option(0.1, "max zoom in/out as a fraction")
    flip: bool = option(False, "horizontal flips (only where they keep the label: not for digits)")
    contrast: float = option(0.2, "max random contrast change (fraction)")
    brightness: float = option(0.1, "max random brightness change (fraction of the range)")
    # === Fine-tuning ===
    finetune_frozen_epochs: int = option(5, "fine-tune: epochs with the backbone frozen (head only)")
    finetune_learning_rate_factor: float = option(0.3, "fine-tune: lr multiplier once unfrozen")
    # === Evaluation and export ===
    top_k: int = option(3, "labels returned by predict and the exported model")
    tta: bool = option(False, "evaluate also with test-time augmentation (mean over shifted copies)")
    # === Cascade (dlsuite vision cascade --from CHEAP_RUN,EXPENSIVE_RUN) ===
    cascade_threshold: float = option(
        -1.0, "cascade: the cheap model answers when its top probability is above this (0: always, 1: never); "
        "-1: the threshold with the fewest expensive calls within 0.2 points of the expensive model, on validation")

    def validate(self) -> None:
        super().validate()
        source = self.data.split(":", 1)[0]
        checks = [
            (source in ("digits", "folder", "tfds"), f"data must be digits, folder:<path> or tfds:<name>, got '{self.data}'"),
            (source == "digits" or ":" in self.data, f"data '{self.data}' needs a path or name after ':'"),
            (self.channels in (1, 3), "channels must be 1 or 3"),
            (self.image_size >= 8, "image_size must be >= 8"),
            (self.lcn_window_size % 2 == 1, "lcn_window_size must be odd"),
            (len(self.widths) >= 1, "widths needs at least one stage"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.top_k >= 1, "top_k must be >= 1"),
            (min(self.moe_experts, self.moe_hidden_units) >= 1, "moe_experts and moe_hidden_units must be >= 1"),
            (1 <= self.moe_top_k <= self.moe_experts, "moe_top_k must be between 1 and moe_experts"),
            (self.cascade_threshold == -1 or 0 <= self.cascade_threshold <= 1,
             "cascade_threshold must be in [0, 1], or -1 to choose it on the validation split"),
        ]
        require(checks)


def quick() -> VisionConfig:
    """The main job's setting: digits, about a minute on 2 CPU cores."""
    return dataclasses.replace(VisionConfig(), epochs=30, batch_size=64, learning_rate=3e-3)
