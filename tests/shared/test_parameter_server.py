"""strategy=parameter_server: the cluster checks, the coordinator loop's parts, and real jobs of a
chief, workers and parameter servers on localhost (processes started by the test or by `dlsuite launch`)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dlsuite.apps.cli import APPS
from dlsuite.apps.launch import task_configs
from dlsuite.shared.config import config_to_yaml
from dlsuite.shared.multi_worker import ClusterConfigError
from dlsuite.shared.parameter_server import check_cluster, shipped_batches, staleness

JOB_TIMEOUT = 300


def _last_json(text: str) -> dict:
    start = text.rfind("\n{") + 1
    return json.loads(text[start : text.find("\n}", start) + 2])


# === Parts ===
@pytest.mark.parametrize("cluster, missing", [
    ({"worker": ["a:1"]}, "chief, ps missing"),
    ({"chief": ["a:1"], "worker": ["b:1"]}, "ps missing"),
    ({"chief": ["a:1"], "ps": ["b:1"]}, "worker missing"),
])
def test_a_cluster_without_chief_workers_and_servers_is_a_clear_error(cluster, missing):
    with pytest.raises(ClusterConfigError, match=f"needs a TF_CONFIG cluster with 'chief', 'worker' and 'ps' tasks; {missing}"):
        check_cluster({"cluster": cluster, "task": {"type": "chief", "index": 0}})


def test_staleness_counts_the_updates_that_landed_while_a_step_ran():
    # step 0 alone; steps 1 and 2 overlap (2 lands while 1 runs); step 3 spans steps 1 and 2's updates
    starts = np.array([0.0, 1.0, 1.5, 1.2])
    ends = np.array([0.5, 3.0, 2.0, 3.5])
    assert staleness(starts, ends).tolist() == [0, 1, 0, 2]


def test_shipped_batches_keep_every_batch_grouped_by_shape():
    ragged = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([[1], [2, 2], [3], [4, 4], [5]]))
    batches = ragged.map(lambda x: x).padded_batch(1)  # batches of shape (1, 1) and (1, 2)
    groups = shipped_batches(tf.data.Dataset.zip(batches, batches))
    shapes = sorted(group[0].shape for group in groups)
    assert shapes == [(2, 1, 2), (3, 1, 1)]  # two groups, five batches
    rows = sorted(int(x[0, 0]) for group in groups for x in group[0])
    assert rows == [1, 2, 3, 4, 5]


def test_launch_gives_a_parameter_server_cluster_one_chief_first():
    tasks = task_configs(2, 1)
    assert [name for name, _ in tasks] == ["chief 0", "worker 0", "worker 1", "ps 0"]
    cluster = json.loads(tasks[0][1])["cluster"]
    assert {kind: len(addresses) for kind, addresses in cluster.items()} == {"chief": 1, "worker": 2, "ps": 1}


# === Real clusters ===
def test_a_chief_whose_workers_never_come_ends_with_a_clear_error(tmp_path):
    chief = task_configs(1, 1)[0][1]
    cluster = json.loads(chief)["cluster"]
    done = subprocess.run([sys.executable, "-m", "dlsuite.apps.cli", "vision", "train", "--quick",
                           f"run_root={tmp_path}", "strategy=parameter_server", "worker_timeout_seconds=10"],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=chief))
    assert done.returncode != 0
    silent = f"{cluster['worker'][0]}, {cluster['ps'][0]}"
    assert f"did not form within 10 s (worker_timeout_seconds): not answering: {silent}" in done.stderr
MODEL_AND_DATA = textwrap.dedent("""
    import keras, numpy as np, tensorflow as tf

    def model_and_data():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(2048)])  # a 512 KiB kernel: 2 shards
        x = np.random.default_rng(0).normal(size=(32, 64)).astype("float32")
        y = np.random.default_rng(1).normal(size=(32, 2048)).astype("float32")
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        return model, tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # one batch: the same order everywhere
""")
CHIEF_SCRIPT = MODEL_AND_DATA + textwrap.dedent("""
    import json, sys
    from dlsuite.shared import parameter_server

    strategy = parameter_server.make_parameter_server_strategy(60)
    with strategy.scope():
        remote, data = model_and_data()
    shards = remote.layers[0].kernel.value.variables
    history = parameter_server.fit_asynchronously(remote, data, data, 3, sys.argv[1])
    np.savez(sys.argv[1] + "/weights.npz", *remote.get_weights())
    print(json.dumps({"shards": [s.device for s in shards], "shard_rows": [int(s.shape[0]) for s in shards],
                      "val_loss": history.history["val_loss"], "curve": history.curve}))
""")


def test_partitioned_variables_train_like_one_process(tmp_path):
    """One worker, two parameter servers: the 64 x 2048 kernel is split across both, and Adam on
    the shards (gradients per shard, joined) gives the weights of the same steps in one process.
    With one worker, the steps are in order: nothing is stale."""
    tasks = dict(task_configs(1, 2))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    servers = [subprocess.Popen([sys.executable, "-c", "from dlsuite.shared.parameter_server import serve; serve()"],
                                env=dict(env, TF_CONFIG=tasks[name]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for name in ("worker 0", "ps 0", "ps 1")]
    try:
        done = subprocess.run([sys.executable, "-c", CHIEF_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                              timeout=JOB_TIMEOUT, env=dict(env, TF_CONFIG=tasks["chief 0"]))
    finally:
        for server in servers:
            server.kill()
            server.wait()
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    namespace = {}
    exec(MODEL_AND_DATA, namespace)
    local, data = namespace["model_and_data"]()
    local.fit(data, epochs=3, shuffle=False, verbose=0)
    remote = np.load(tmp_path / "weights.npz")
    for i, weight in enumerate(local.get_weights()):
        np.testing.assert_allclose(remote[f"arr_{i}"], weight, atol=1e-5)
    assert [d.split("/")[1] for d in result["shards"]] == ["job:ps", "job:ps"]
    assert {d.split("/")[3] for d in result["shards"]} == {"task:0", "task:1"}
    assert sum(result["shard_rows"]) == 64
    assert result["curve"]["step"] == [1, 2, 3] and set(result["curve"]["staleness"]) == {0}
    assert len(result["val_loss"]) == 3 and result["val_loss"][-1] < result["val_loss"][0]
    assert (tmp_path / "checkpoints" / "async" / "progress.json").is_file()


def _tiny_vision(tmp_path: Path, **changes) -> Path:
    config = dataclasses.replace(APPS["vision"].smoke_config(tmp_path), augment=False, run_root=str(tmp_path / "runs"),
                                 **changes)
    (tmp_path / "job.yaml").write_text(config_to_yaml(config))
    return tmp_path / "job.yaml"


def _launch_command(tmp_path: Path, config_file: Path) -> list[str]:
    return [sys.executable, "-m", "dlsuite.apps.cli", "launch", "--workers", "2", "--ps", "1", "--timeout",
            str(JOB_TIMEOUT), "--logs", str(tmp_path / "logs"), "--", "vision", "train", "--config", str(config_file)]


def test_two_workers_and_a_parameter_server_train_asynchronously_and_export(tmp_path):
    """`dlsuite launch --workers 2 --ps 1`: the chief's run folder is complete, the model learned,
    both workers pushed updates concurrently (some steps are stale), and the export agrees."""
    config_file = _tiny_vision(tmp_path, epochs=4)
    done = subprocess.run(_launch_command(tmp_path, config_file), capture_output=True, text=True,
                          timeout=JOB_TIMEOUT + 30, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = _last_json(done.stdout)
    run_dir = Path(result["run_dir"])
    assert run_dir.parent == tmp_path / "runs" / "vision"
    for name in ("config.yaml", "metrics.json", "model.keras", "loss_curve.json", "plots/loss_curve.png"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb").rglob("events.out.tfevents.*"))
    assert result["loss_per_epoch"][-1] < 0.7 * result["loss_per_epoch"][0]
    curve = json.loads((run_dir / "loss_curve.json").read_text())
    assert len(curve["loss"]) == 4 * result["steps_per_epoch"]
    assert max(curve["staleness"]) >= 1  # two workers: some updates landed while a step ran
    assert not (tmp_path / "runs" / ".workers").exists()  # the serving tasks wrote nothing
    exported = APPS["vision"].run("export", APPS["vision"].resolve_config("export", run_dir), run_dir)
    assert exported["export_agrees"], exported


@pytest.mark.slow
def test_a_killed_parameter_server_job_resumes_from_its_last_epoch(tmp_path):
    """Kill the chief after an epoch's checkpoint: the launcher stops the job; the same command
    again resumes the asynchronous run from that epoch, in the same run folder."""
    config_file = _tiny_vision(tmp_path, epochs=10, widths=(16,), image_size=12)
    command = _launch_command(tmp_path, config_file)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with open(tmp_path / "first.out", "w") as out:
        first = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + JOB_TIMEOUT
        while time.monotonic() < deadline and first.poll() is None:
            if list((tmp_path / "runs").rglob("checkpoints/async/progress.json")):
                break
            time.sleep(0.2)
        assert first.poll() is None, (tmp_path / "first.out").read_text()[-3000:]
        chief = int(Path(f"/proc/{first.pid}/task/{first.pid}/children").read_text().split()[0])
        os.kill(chief, signal.SIGKILL)
        assert first.wait(timeout=60) != 0
    (run_dir,) = (tmp_path / "runs" / "vision").iterdir()
    again = subprocess.run(command, capture_output=True, text=True, timeout=JOB_TIMEOUT + 30, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Resuming unfinished run {run_dir}" in again.stdout
    epochs = [int(n) for n in re.findall(r"^Epoch (\d+)/10", again.stdout, re.M)]
    assert epochs and epochs[0] > 1 and epochs[-1] == 10, again.stdout[-2000:]
    assert "Resuming asynchronous training after epoch" in again.stderr
    assert _last_json(again.stdout)["epochs_run"] == 10


@pytest.mark.slow
@pytest.mark.parametrize("app", ["language", "translation", "speech"])
def test_every_app_trains_with_a_parameter_server_and_exports(app, tmp_path):
    """The coordinator loop with each app's own loss (sampled softmax, attention + cross-entropy,
    CTC) and bucketed batches of several shapes: the run completes and its export agrees."""
    config = dataclasses.replace(APPS[app].smoke_config(tmp_path), run_root=str(tmp_path / "runs"))
    (tmp_path / "job.yaml").write_text(config_to_yaml(config))
    command = _launch_command(tmp_path, tmp_path / "job.yaml")
    command[command.index("vision")] = app
    done = subprocess.run(command, capture_output=True, text=True, timeout=JOB_TIMEOUT + 30,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = _last_json(done.stdout)
    run_dir = Path(result["run_dir"])
    assert np.isfinite(result["loss_per_epoch"]).all()
    assert len(json.loads((run_dir / "loss_curve.json").read_text())["loss"]) == config.epochs * result["steps_per_epoch"]
    exported = APPS[app].run("export", APPS[app].resolve_config("export", run_dir), run_dir)
    assert exported["export_agrees"], exported
