"""Vision figures and the contrast-robustness experiment.

    dlsuite vision figures        # GCN vs LCN on scikit-learn's sample photos
    dlsuite vision robustness     # accuracy with none / GCN / LCN under contrast jitter
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np

from dlsuite.apps.vision import data, train
from dlsuite.apps.vision import model as vision_model
from dlsuite.apps.vision.config import VisionConfig
from dlsuite.shared import plots
from dlsuite.shared.layers import GlobalContrastNormalization, LocalContrastNormalization
from dlsuite.shared.runs import atomic_write_text
from dlsuite.shared.training import set_up


def sample_photos(size: int = 192) -> np.ndarray:
    """scikit-learn's two sample photos (china, flower), resized, as (2, S, S, 3) in [0, 1]."""
    import tensorflow as tf
    from sklearn.datasets import load_sample_images

    photos = np.stack(load_sample_images().images).astype(np.float32) / 255.0
    return tf.image.resize(photos, (size, int(size * 1.5)), antialias=True).numpy()


def contrast_figure(run_dir: Path) -> Path:
    """Like the chapter's figure 12.2: input, GCN, LCN (per channel and across channels)."""
    photos = sample_photos()
    columns = [
        ("input", photos),
        ("GCN", GlobalContrastNormalization()(photos).numpy()),
        ("LCN 9x9 gaussian", LocalContrastNormalization(9, "gaussian")(photos).numpy()),
        ("LCN 9x9 across channels",
         LocalContrastNormalization(9, "gaussian", across_channels=True)(photos).numpy()),
    ]
    # One row per photo, one column per method: transpose the (method, photos) pairs.
    rows = [(f"photo {i + 1}", [images[i] for _, images in columns]) for i in range(len(photos))]
    figure = plots.image_grid_figure(rows, titles=[name for name, _ in columns])
    return plots.save_figure(figure, run_dir, "gcn_vs_lcn")


def robustness_experiment(config: VisionConfig, run_dir: Path) -> dict:
    """Digits with random per-image contrast/brightness (train and test); none vs GCN vs LCN.

    Writes `robustness.md` (a table); returns each test accuracy (the run's metrics.json).
    """
    _, batch = set_up(config)
    splits = data.load_splits("digits", config.image_size, config.channels, seed=config.seed)
    jittered = dataclasses.replace(
        splits,
        train=data.jitter_contrast(splits.train, config.seed).cache(),
        validation=data.jitter_contrast(splits.validation, config.seed + 1).cache(),
        test=data.jitter_contrast(splits.test, config.seed + 2).cache(),
    )
    train_ds, val_ds, test_ds = data.make_datasets(jittered, batch, config.seed)
    results = {}
    for kind in ("none", "gcn", "lcn"):
        keras.utils.set_random_seed(config.seed)
        # Geometry only: colour jitter would blur the effect being measured.
        augmentation = vision_model.build_augmentation(
            config.translate, config.rotate_degrees, config.zoom, contrast=0, brightness=0
        )
        arguments = train.model_arguments(config) | {"normalization": kind}
        model = vision_model.build_model(splits.num_classes, augmentation=augmentation, **arguments)
        train.fit(model, config, train_ds, val_ds, run_dir / kind)
        results[f"accuracy_{kind}"] = float(model.evaluate(test_ds, verbose=0, return_dict=True)["accuracy"])
    table = [
        "| normalization | test accuracy (contrast-jittered digits) |",
        "|---|---|",
        *(f"| {k} | {results[f'accuracy_{k}']:.4f} |" for k in ("none", "gcn", "lcn")),
    ]
    atomic_write_text(run_dir / "robustness.md", "\n".join(table) + "\n")
    print("\n".join(table))
    return results


def jitter_samples_figure(run_dir: Path, image_size: int = 16) -> Path:
    """What the robustness experiment's inputs look like, before and after GCN/LCN."""
    splits = data.load_splits("digits", image_size, 1)
    images = np.stack([x for x, _ in data.jitter_contrast(splits.test, 0).take(8).as_numpy_iterator()])
    rows = [
        ("jittered", images),
        ("GCN", GlobalContrastNormalization()(images).numpy()),
        ("LCN", LocalContrastNormalization(5)(images).numpy()),
    ]
    return plots.save_figure(plots.image_grid_figure(rows), run_dir, "contrast_jitter_samples")
