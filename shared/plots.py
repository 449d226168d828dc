"""Figures for run folders: saved as PNG under plots/ and logged to TensorBoard."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def save_figure(fig, run_dir: Path, name: str, step: int = 0) -> Path:
    """Writes `plots/<name>.png` and the same picture to TensorBoard under `name`."""
    run_dir = Path(run_dir)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    png = buffer.getvalue()
    path = run_dir / "plots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(png)
    tmp.replace(path)
    writer = tf.summary.create_file_writer(str(run_dir / "tb" / "plots"))
    with writer.as_default():
        tf.summary.image(name, tf.io.decode_png(png)[None], step=step)
    writer.close()
    return path


def confusion_matrix_figure(matrix: np.ndarray, class_names, title="Confusion matrix"):
    """Counts with true classes as rows and predictions as columns."""
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * n, 0.8 + 0.45 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=90 if n > 12 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                color = "white" if matrix[i, j] > threshold else "black"
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    return fig


def image_grid_figure(rows, titles=None, raw_rows=("input", "original", "jittered")):
    """A grid: one row per (label, images[N, H, W, C]) pair.

    Rows whose label is in `raw_rows` are shown as values in [0, 1], so contrast
    differences stay visible; the others are min-max rescaled per image.
    """
    n_cols = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(1.6 * n_cols, 1.7 * len(rows)), squeeze=False
    )
    for r, (label, images) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(images):
                continue
            image = np.asarray(images[c], dtype=np.float32)
            lo, hi = (0.0, 1.0) if label in raw_rows else (image.min(), image.max())
            image = np.clip((image - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(image)
            ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
            if titles is not None and r == 0:
                ax.set_title(titles[c], fontsize=8)
        axes[r][0].text(-0.1, 0.5, label, transform=axes[r][0].transAxes, ha="right", va="center")
    return fig


def loss_curve_figure(curves: dict, window: int = 20):
    """Training loss against steps and against seconds, one line per run (label -> curve with
    "step", "seconds", "loss"); a moving average over `window` steps, as the per-step loss is noisy."""
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for label, curve in curves.items():
        loss = np.asarray(curve["loss"], dtype=float)
        width = max(1, min(window, len(loss) // 5))
        smooth = np.convolve(loss, np.ones(width) / width, mode="valid")
        by_step.plot(np.asarray(curve["step"])[width - 1:], smooth, label=label)
        by_time.plot(np.asarray(curve["seconds"])[width - 1:], smooth, label=label)
    by_step.set(xlabel="step (updates of the weights)", ylabel="training loss", title="Loss per update")
    by_time.set(xlabel="seconds since training began", title="Loss per second")
    for axes in (by_step, by_time):
        axes.grid(alpha=0.3)
    by_step.legend()
    return fig
