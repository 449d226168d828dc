"""The training loop every app shares: `model.fit` with run-folder callbacks.

`TrainConfig` holds the fields every app has (epochs, batch size, strategy,
precision, XLA, optimizer); each app's config subclasses it. `fit_in_run_dir`
adds the callbacks that make a run resumable and inspectable: BackupAndRestore
(a killed run resumes from its last epoch), a per-epoch `.keras` checkpoint,
TensorBoard logs, and a NaN guard that stops with an explanation.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path

import keras
import tensorflow as tf

from dlsuite.shared.config import option, require
from dlsuite.shared.optim import OptimizerConfig


@dataclasses.dataclass(frozen=True)
class TrainConfig(OptimizerConfig):
    """Fields shared by every app's config."""

    epochs: int = option(10, "passes over the training data")
    batch_size: int = option(64, "examples per replica per step (global = this x replicas)")
    strategy: str = option("auto", "auto | default | mirrored | tpu | multi_worker")
    precision: str = option("float32", "float32 | mixed_float16 | mixed_bfloat16")
    jit_compile: bool = option(False, "compile train/eval steps with XLA")
    steps_per_execution: int = option(1, "train steps per tf.function call (fewer host round-trips)")
    seed: int = option(0, "random seed for data splits, shuffling and initialization")
    run_root: str = option("runs", "folder that holds one sub-folder per run")

    def validate(self) -> None:
        from dlsuite.shared.distribute import PRECISIONS, STRATEGIES
        from dlsuite.shared.optim import OPTIMIZERS, SCHEDULES

        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (0 <= self.ema_momentum < 1, "ema_momentum must be in [0, 1)"),
            (self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
        ]
        require(checks)


def set_up(config: TrainConfig):
    """Seeds, dtype policy and distribution strategy; returns (strategy, global batch size)."""
    from dlsuite.shared import distribute

    keras.utils.set_random_seed(config.seed)
    distribute.set_precision(config.precision)
    strategy = distribute.make_strategy(config.strategy)
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


def make_callbacks(run_dir: Path, extra=()) -> list[keras.callbacks.Callback]:
    run_dir = Path(run_dir)
    return [
        StopOnNaN(),
        # double_checkpoint: a kill while writing the backup falls back to the previous one.
        keras.callbacks.BackupAndRestore(str(run_dir / "checkpoints" / "backup"), double_checkpoint=True),
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
        raise NotImplementedError(
            "strategy=multi_worker: Keras 3.15's model.fit fails under MultiWorkerMirroredStrategy "
            "(keras-team/keras#20585, its all-reduce of the metrics). Use strategy=mirrored for the "
            "GPUs of one machine; make_strategy('multi_worker') works in custom training loops."
        )
    return model.fit(
        train_ds, validation_data=val_ds, epochs=epochs,
        callbacks=make_callbacks(run_dir, extra_callbacks), verbose=verbose,
    )


def load_run_model(source: str | Path, app: str) -> keras.Model:
    """The trained model of `--from`: a `.keras` file, or a run folder holding `model.keras`."""
    path = Path(source)
    path = path / "model.keras" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"No model at '{path}'. Pass a {app} run folder that finished training "
                                "or a .keras file.")
    return keras.saving.load_model(path)
