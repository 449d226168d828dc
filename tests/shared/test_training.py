"""The shared fit loop: NaN losses stop with an explanation; a killed run resumes."""

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

from dlsuite.shared.training import NaNLossError, fit_in_run_dir, save_model_atomic


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


MULTI_WORKER_FIT = """
import keras, numpy as np, tensorflow as tf
from dlsuite.shared.distribute import make_strategy
from dlsuite.shared.training import fit_in_run_dir
strategy = make_strategy("multi_worker")  # a one-worker cluster
with strategy.scope():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
data = tf.data.Dataset.from_tensor_slices((np.ones((8, 2)), np.ones(8))).batch(4)
try:
    fit_in_run_dir(model, data, None, 1, sys.argv[1], verbose=0)
except NotImplementedError as err:
    print("REFUSED", err)
"""


def test_multi_worker_fit_is_refused_with_an_explanation(tmp_path):
    """Keras 3.15's fit breaks under MultiWorkerMirroredStrategy: we say so instead of crashing inside Keras."""
    tf_config = '{"cluster": {"worker": ["127.0.0.1:%d"]}, "task": {"type": "worker", "index": 0}}'
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=tf_config % port)
    done = subprocess.run([sys.executable, "-c", "import sys\n" + MULTI_WORKER_FIT, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert "REFUSED" in done.stdout and "keras-team/keras#20585" in done.stdout, done.stderr[-2000:]
