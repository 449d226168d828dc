"""The shared fit loop: NaN losses stop with an explanation; a killed run resumes."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlsuite.shared.training import (
    BackupAndRestoreAfterKill,
    NaNLossError,
    TrainConfig,
    fit_in_run_dir,
    fit_model,
    save_model_atomic,
    steps_per_epoch,
)


def test_nan_loss_raises_a_clear_error(tmp_path):
    x = np.ones((32, 4), np.float32)
    x[5, 2] = np.nan  # one corrupt input poisons the loss
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(NaNLossError, match="learning_rate.*global_clipnorm"):
        fit_in_run_dir(model, tf.data.Dataset.from_tensor_slices((x, np.ones(32))).batch(8), None, 2, tmp_path, verbose=0)


def test_save_model_atomic_keeps_no_partial_file(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = save_model_atomic(model, tmp_path / "model.keras")
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["model.keras"]


class _StopAfterEpoch(keras.callbacks.Callback):
    """Ends fit with an exception after `epoch` (0-based), as a kill would, leaving the backup."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("stopped")


def test_a_kill_while_the_backup_metadata_was_written_resumes_from_the_previous_backup(tmp_path):
    """An empty training_metadata.json (killed between Keras opening and writing it): Keras' own
    callback fails to resume with JSONDecodeError; ours resumes from the previous backup."""
    x, y = np.ones((16, 2), np.float32), np.ones((16, 1), np.float32)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    backup = tmp_path / "backup"
    with pytest.raises(RuntimeError, match="stopped"):
        model.fit(x, y, epochs=5, verbose=0, callbacks=[BackupAndRestoreAfterKill(str(backup)), _StopAfterEpoch(2)])
    (backup / "training_metadata.json").write_text("")  # the kill came mid-write
    with pytest.raises(json.JSONDecodeError):
        model.fit(x, y, epochs=5, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(str(backup), double_checkpoint=True)])
    history = model.fit(x, y, epochs=5, verbose=0, callbacks=[BackupAndRestoreAfterKill(str(backup))])
    assert history.epoch == [2, 3, 4]  # after the previous backup's epoch 1, not from the start


def _train_command(run_root: Path) -> list[str]:
    return [
        sys.executable, "-m", "dlsuite.apps.cli", "vision", "train", f"run_root={run_root}",
        "epochs=12", "widths=8,16", "image_size=8", "augment=false", "batch_size=32",
    ]


def test_killed_training_resumes_from_last_checkpoint(tmp_path):
    """SIGKILL mid-training, re-run the same command: it continues in the same folder."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    first = subprocess.Popen(_train_command(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    checkpoint = None
    while time.time() < deadline and first.poll() is None:
        found = list(tmp_path.glob("vision/*/checkpoints/last.keras"))
        if found and list(found[0].parent.glob("backup/*")):
            checkpoint = found[0]
            time.sleep(1.5)  # let it get into the next epochs
            break
        time.sleep(0.2)
    assert checkpoint is not None and first.poll() is None, "training finished before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    run_dir = checkpoint.parent.parent
    assert not (run_dir / "metrics.json").exists()

    second = subprocess.run(_train_command(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"Resuming unfinished run {run_dir}" in second.stdout
    epochs = [int(n) for n in re.findall(r"^Epoch (\d+)/12", second.stdout, re.M)]
    assert epochs and epochs[0] > 1 and epochs[-1] == 12, second.stdout
    assert (run_dir / "metrics.json").is_file()
    assert len(list(tmp_path.glob("vision/*"))) == 1


# === fit_model: the one compile-and-fit of every app ===
@dataclasses.dataclass(frozen=True)
class _Cfg(TrainConfig):
    pass


def _bucketed_dataset():
    """Sentences of mixed length, bucketed: 40 examples, 3 buckets, batch 8 -> more than 40 // 8 batches."""
    from dlsuite.pipelines.batching import bucket_by_length

    lengths = [3] * 13 + [9] * 14 + [20] * 13
    x = tf.ragged.constant([np.ones(n, np.float32) for n in lengths])
    ds = tf.data.Dataset.from_tensor_slices((x, np.ones(len(lengths), np.float32)))
    ds = ds.map(lambda seq, y: (seq, y))
    ds = bucket_by_length(ds, lambda seq, y: tf.shape(seq)[0], lengths, 8, [5, 12])
    return ds.map(lambda seq, y: (tf.reduce_mean(seq, axis=1, keepdims=True), y)), lengths


def test_bucketed_datasets_know_their_batch_count():
    ds, lengths = _bucketed_dataset()
    counted = sum(1 for _ in ds)
    assert int(ds.cardinality()) == counted == 2 + 2 + 2  # ceil(13/8) + ceil(14/8) + ceil(13/8)
    assert counted > len(lengths) // 8  # what the language and speech schedules used to count
    assert steps_per_epoch(ds) == counted


def test_the_schedule_spans_every_step_of_training(tmp_path):
    """Issue 12: the cosine schedule reached zero before the last batches; now it ends at the last step."""
    ds, _ = _bucketed_dataset()
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    config = _Cfg(epochs=3, learning_rate=0.1, warmup_fraction=0.0)
    figures = fit_model(model, config, ds, None, tmp_path, loss="mse")
    steps = int(model.optimizer.iterations.numpy())
    assert steps == 3 * figures["steps_per_epoch"] == 18
    lr = model.optimizer._learning_rate
    assert float(lr(steps - 1)) > 0.0  # still learning at the last step
    assert float(lr(steps)) == pytest.approx(0.0, abs=1e-9)
    assert (tmp_path / "model.keras").is_file()


def test_compile_gets_jit_compile_and_steps_per_execution(tmp_path):
    """Issue 12: translation's compile dropped both settings; fit_model passes them for every app."""
    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(8)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    fit_model(model, _Cfg(epochs=1, steps_per_execution=2, jit_compile=True), ds, None, tmp_path, loss="mse")
    assert model.jit_compile is True and model.steps_per_execution == 2


def test_ema_weights_are_applied_once(tmp_path):
    """Issue 12: apps called finalize_variable_values after fit, which Keras' fit already does.
    After fit_model the model holds the EMA average, not an average applied on top of it."""
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, x @ np.array([[1.0], [-2.0], [0.5]], np.float32))).batch(8)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    fit_model(model, _Cfg(epochs=2, ema_momentum=0.9, optimizer="sgd", learning_rate=0.05), ds, None, tmp_path,
              loss="mse")
    averages = model.optimizer._model_variables_moving_average
    for variable, average in zip(model.trainable_variables, averages, strict=True):
        np.testing.assert_allclose(variable.numpy(), average.numpy())


def test_gradient_accumulation_makes_the_updates_of_a_bigger_batch(tmp_path):
    """4 batches of 8 with gradient_accumulation_steps=4 = one batch of 32 (the same SGD update)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)
    weights = {}
    for batch, steps in ((32, 1), (8, 4)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        config = _Cfg(epochs=2, batch_size=batch, optimizer="sgd", momentum=0.0, nesterov=False, weight_decay=0.0,
                      schedule="constant", learning_rate=0.1, gradient_accumulation_steps=steps)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
        fit_model(model, config, ds, None, tmp_path / f"b{batch}", loss="mse")
        weights[batch] = model.get_weights()
    for big, accumulated in zip(weights[32], weights[8], strict=True):
        np.testing.assert_allclose(accumulated, big, rtol=1e-5, atol=1e-6)


def test_fit_reports_validation_loss_and_wall_time_per_epoch(tmp_path):
    """The figures a convergence table needs: each epoch's validation loss and when it was known."""
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, x @ np.array([[1.0], [-2.0], [0.5]], np.float32))).batch(8)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    figures = fit_model(model, _Cfg(epochs=3, learning_rate=0.05, warmup_fraction=0.0), ds, ds, tmp_path,
                        loss="mse")
    assert len(figures["val_loss_per_epoch"]) == len(figures["epoch_end_seconds"]) == 3
    assert figures["val_loss_per_epoch"][-1] < figures["val_loss_per_epoch"][0]  # it learns
    assert figures["val_loss_per_epoch"][-1] == figures["final_val_loss"]
    assert 0 < figures["epoch_end_seconds"][0] < figures["epoch_end_seconds"][-1] <= figures["train_seconds"]
