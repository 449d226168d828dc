"""The training loop every app shares: compile, then `model.fit` with run-folder callbacks.

`TrainConfig` holds the fields every app has (epochs, batch size, strategy,
precision, XLA, optimizer); each app's config subclasses it. `fit_model` is the one
compile-and-fit of the suite: the schedule's length comes from the dataset itself,
`jit_compile` and `steps_per_execution` always reach `compile`, and the model is
saved to `<run>/model.keras`. `fit_in_run_dir` adds the callbacks that make a run
resumable and inspectable: BackupAndRestore (a killed run resumes from its last
epoch), a per-epoch `.keras` checkpoint, TensorBoard logs, and a NaN guard that
stops with an explanation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dlsuite.shared.config import option, require
from dlsuite.shared.distribute import PrecisionName, StrategyName
from dlsuite.shared.export import ExportFormat, ExportPrecision
from dlsuite.shared.optim import OptimizerConfig, make_optimizer


@dataclasses.dataclass(frozen=True)
class TrainConfig(OptimizerConfig):
    """Fields shared by every app's config."""

    epochs: int = option(10, "passes over the training data")
    batch_size: int = option(64, "examples per replica per step (global = this x replicas)")
    strategy: StrategyName = option("auto", "tf.distribute strategy (auto: mirrored over several GPUs, else default)")
    precision: PrecisionName = option("float32", "Keras dtype policy")
    jit_compile: bool = option(False, "compile train/eval steps with XLA")
    steps_per_execution: int = option(1, "train steps per tf.function call (fewer host round-trips)")
    worker_timeout_seconds: float = option(300.0, "multi_worker: give up (with a message) if the cluster has not formed by then")
    export_precision: ExportPrecision = option(
        "float32", "export/evaluate: weights as float16 (a float16 copy) or int8 (Keras' quantization of "
                   "Dense/Embedding layers; LiteRT: full-integer); on export also `precision=`")
    export_format: ExportFormat = option(
        "saved_model", "export: saved_model (<run>/export[-precision]) or litert (<run>/litert/<precision>.tflite); "
                       "on export also `format=`")
    distill_temperature: float = option(4.0, "distill: softmax temperature T of the teachers' and student's outputs")
    distill_label_weight: float = option(0.5, "distill: weight of the labels' loss (the teachers' gets 1 - this)")
    seed: int = option(0, "random seed for data splits, shuffling and initialization")
    run_root: str = option("runs", "folder that holds one sub-folder per run")

    def validate(self) -> None:
        super().validate()
        require([
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.steps_per_execution >= 1, "steps_per_execution must be >= 1"),
            (self.worker_timeout_seconds > 0, "worker_timeout_seconds must be > 0"),
            (self.distill_temperature > 0, "distill_temperature must be > 0"),
            (0 <= self.distill_label_weight <= 1, "distill_label_weight must be in [0, 1]"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (0 <= self.ema_momentum < 1, "ema_momentum must be in [0, 1)"),
        ])


def set_up(config: TrainConfig):
    """Seeds, dtype policy and distribution strategy; returns (strategy, global batch size)."""
    from dlsuite.shared import distribute

    keras.utils.set_random_seed(config.seed)
    distribute.set_precision(config.precision)
    strategy = distribute.make_strategy(config.strategy, timeout_seconds=config.worker_timeout_seconds)
    return strategy, distribute.global_batch_size(config.batch_size, strategy)


class NaNLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


class StopOnNaN(keras.callbacks.Callback):
    """Raises a clear error on a NaN/inf loss instead of training on garbage.

    Keras' TerminateOnNaN stops quietly; a user would then export a broken model.
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NaNLossError(
                f"Loss became {loss} at batch {batch}. Lower learning_rate, set "
                "global_clipnorm (e.g. 1.0), or check the inputs for NaN/inf values. "
                "The last good epoch's checkpoint is kept in the run folder."
            )


def save_model_atomic(model: keras.Model, path: str | Path) -> Path:
    """Saves a `.keras` file through a temporary name, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    model.save(tmp)
    os.replace(tmp, path)
    return path


class StepLossCurve(keras.callbacks.Callback):
    """Each step's training loss and when it finished, for `loss_curve.json` and its plot.

    Keras reports the epoch's running mean at each batch end; a step's own loss is the difference
    of two running sums (several steps' mean under steps_per_execution > 1)."""

    def __init__(self):
        super().__init__()
        self.curve = {"step": [], "seconds": [], "loss": []}
        self.epoch_end_seconds = []  # after each epoch's validation: the wall time to reach its val_loss

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.last_batch, self.last_sum = epoch, -1, 0.0

    def on_train_batch_end(self, batch, logs=None):
        running_mean = (logs or {}).get("loss")
        if running_mean is None:
            return
        running_sum = (batch + 1) * float(running_mean)
        self.curve["loss"].append((running_sum - self.last_sum) / (batch - self.last_batch))
        self.curve["step"].append(self.epoch * self.params.get("steps", 0) + batch + 1)
        self.curve["seconds"].append(round(time.perf_counter() - self.start, 3))
        self.last_batch, self.last_sum = batch, running_sum

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end_seconds.append(round(time.perf_counter() - self.start, 2))


def write_loss_curve(run_dir: Path, curve: dict) -> None:
    """`loss_curve.json` (per step: loss, seconds since the start, staleness if asynchronous) and
    `plots/loss_curve.png`."""
    from dlsuite.shared.plots import loss_curve_figure, save_figure
    from dlsuite.shared.runs import atomic_write_json

    if not curve["loss"]:
        return
    atomic_write_json(Path(run_dir) / "loss_curve.json", curve)
    save_figure(loss_curve_figure({Path(run_dir).name: curve}), run_dir, "loss_curve")


class BackupAndRestoreAfterKill(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore with its double checkpoint (a kill while writing the backup falls
    back to the previous one), also when the kill came while it wrote training_metadata.json.
    Keras writes that file in place, so a kill between opening and writing leaves it empty; on
    resume Keras falls back to the previous backup only on an OSError, and an empty file raises
    JSONDecodeError instead (seen: tests/shared/test_training.py's kill test on busy cores). Here
    the previous backup, weights and metadata together, replaces an unreadable one first."""

    def __init__(self, backup_dir: str):
        super().__init__(backup_dir, double_checkpoint=True)

    def on_train_begin(self, logs=None):
        metadata, weights = Path(self._training_metadata_path), Path(self._weights_path)
        if metadata.is_file() and not _is_json(metadata):
            previous_metadata, previous_weights = Path(self._prev_training_metadata_path), Path(self._prev_weights_path)
            if previous_metadata.is_file() and previous_weights.is_file():
                shutil.copyfile(previous_weights, weights)
                shutil.copyfile(previous_metadata, metadata)
            else:  # the first backup was the one cut short: train from the start
                metadata.unlink()
                weights.unlink(missing_ok=True)
        super().on_train_begin(logs)


def _is_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def make_callbacks(run_dir: Path, extra=()) -> list[keras.callbacks.Callback]:
    run_dir = Path(run_dir)
    return [
        StopOnNaN(),
        BackupAndRestoreAfterKill(str(run_dir / "checkpoints" / "backup")),
        keras.callbacks.ModelCheckpoint(str(run_dir / "checkpoints" / "last.keras")),
        keras.callbacks.TensorBoard(str(run_dir / "tb"), write_graph=False),
        *extra,
    ]


def fit_in_run_dir(model, train_ds, val_ds, epochs: int, run_dir: Path, extra_callbacks=(), verbose=None):
    """`model.fit` with the run folder's callbacks; returns the History.

    Progress bars on a terminal, one line per epoch in logs and CI.
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    if isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        from dlsuite.shared.multi_worker import enable_multi_worker_fit

        enable_multi_worker_fit()  # mends Keras 3.15's fit under this strategy (keras-team/keras#20585)
    return model.fit(
        train_ds, validation_data=val_ds, epochs=epochs,
        callbacks=make_callbacks(run_dir, extra_callbacks), verbose=verbose,
    )


def steps_per_epoch(dataset: tf.data.Dataset) -> int:
    """Batches in one pass of `dataset`: its cardinality, else counted (one pass over the input).

    The suite's pipelines declare their length (`pipelines.batching.bucket_by_length`), so
    counting is only the fallback for a dataset from elsewhere.
    """
    count = int(dataset.cardinality())
    if count == tf.data.INFINITE_CARDINALITY:
        raise ValueError("The training dataset repeats forever; give one pass per epoch (no .repeat()).")
    if count == tf.data.UNKNOWN_CARDINALITY:
        count = int(dataset.reduce(0, lambda n, _: n + 1))
    if count == 0:
        raise ValueError("The training dataset is empty; check the data source and its split.")
    return count


def fit_model(model, config: TrainConfig, train_ds, valid_ds, run_dir: Path, *, epochs: int | None = None,
              learning_rate: float | None = None, loss=None, metrics=None, callbacks=(), saved=None) -> dict:
    """Compiles `model` with the config's optimizer, fits it in `run_dir`, saves `model.keras`.

    The learning-rate schedule spans exactly `epochs x steps_per_epoch(train_ds)` steps, so a
    cosine schedule reaches zero at the last step, not before. Models that compute their own
    loss (CTC, the language model's output layers) pass `loss=None`. Keras' `fit` ends by copying
    the EMA weights into the model when `ema_momentum > 0`, so nothing here does it again.
    `saved`: the model to write as model.keras when it is not the fitted one (a distiller's student).
    Returns the fit's figures: seconds, epochs run, steps per epoch, parameters, last losses.
    """
    run_dir = Path(run_dir)
    epochs = epochs or config.epochs
    steps = steps_per_epoch(train_ds)
    with model.distribute_strategy.scope():
        model.compile(optimizer=make_optimizer(config, epochs * steps, learning_rate), loss=loss, metrics=metrics,
                      jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution)
    if config.jit_compile and not model.jit_compile:
        print("warning: a layer of this model does not support XLA; training without jit_compile.")
    start = time.perf_counter()
    if isinstance(model.distribute_strategy, tf.distribute.ParameterServerStrategy):
        from dlsuite.shared.parameter_server import fit_asynchronously

        history = fit_asynchronously(model, train_ds, valid_ds, epochs, run_dir, seed=config.seed)
        curve, epoch_end_seconds = history.curve, []
    else:
        curve_callback = StepLossCurve()
        history = fit_in_run_dir(model, train_ds, valid_ds, epochs, run_dir, [*callbacks, curve_callback])
        curve, epoch_end_seconds = curve_callback.curve, curve_callback.epoch_end_seconds
    seconds = time.perf_counter() - start
    if not history.history.get("loss"):
        raise RuntimeError("Training ran no steps; check the training split (too few examples for one batch?).")
    saved = model if saved is None else saved
    save_model_atomic(saved, run_dir / "model.keras")
    write_loss_curve(run_dir, curve)
    figures = {"train_seconds": round(seconds, 2), "epochs_run": len(history.epoch), "steps_per_epoch": steps,
               "parameters": int(saved.count_params()), "final_loss": float(history.history["loss"][-1]),
               "loss_per_epoch": [float(x) for x in history.history["loss"]],
               # sum |w| over the weights: workers of a multi-worker job must end with the same one
               "weights_fingerprint": float(sum(np.abs(w).astype(np.float64).sum() for w in saved.get_weights()))}
    if "val_loss" in history.history:
        figures["final_val_loss"] = float(history.history["val_loss"][-1])
        figures["val_loss_per_epoch"] = [float(x) for x in history.history["val_loss"]]
    if epoch_end_seconds:
        figures["epoch_end_seconds"] = epoch_end_seconds
    return figures


def load_run_model(source: str | Path, app: str) -> keras.Model:
    """The trained model of `--from`: a `.keras` file, or a run folder holding `model.keras`."""
    path = Path(source)
    path = path / "model.keras" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"No model at '{path}'. Pass a {app} run folder that finished training "
                                "or a .keras file.")
    try:
        # Uncompiled: no command needs the run's optimizer state (finetune compiles a new one), and a
        # loaded optimizer is tracked into SavedModel exports (measured: 2/3 of the language export).
        return keras.saving.load_model(path, compile=False)
    except (TypeError, ValueError) as err:
        reason = str(err).strip().splitlines()[0]
        raise ValueError(f"Cannot load the {app} model '{path}': {reason} If it was saved by an earlier dlsuite "
                         f"(model configs changed with the app contract of version 0.2), train it again with "
                         f"`dlsuite {app} train`.") from err
