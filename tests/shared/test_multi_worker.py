"""strategy=multi_worker: TF_CONFIG checks, and real 2-worker jobs on localhost through `dlsuite launch`.

The reference for "the same training" is a 1-worker job with the same global batch: the
distributed input pipeline (auto-sharding rewrites the dataset) shuffles in another order than
the plain one, so a run under the default strategy sees other batches (about 0.5% apart in loss
on the vision smoke run); with the same order, 2 workers x half the batch must equal 1 worker.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlsuite.apps.cli import APPS
from dlsuite.shared.config import config_to_yaml
from dlsuite.shared.multi_worker import ClusterConfigError, read_tf_config

LAUNCH_TIMEOUT = 240


@pytest.mark.parametrize("text, message", [
    ("", "needs the TF_CONFIG environment variable"),
    ("{not json", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "no cluster"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "no task"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}', "worker:3 is not in its cluster"),
    ('{"cluster": {"chief": ["a:1", "b:1"], "worker": ["c:1"]}, "task": {"type": "worker", "index": 0}}',
     "more than one chief"),
])
def test_bad_tf_config_is_an_error_naming_the_problem(text, message):
    with pytest.raises(ClusterConfigError, match=message):
        read_tf_config(text)


def test_a_good_tf_config_is_returned():
    config = read_tf_config('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}')
    assert config["task"]["index"] == 1


def _last_json(text: str) -> dict:
    """The result a `dlsuite` command printed last (an indented JSON object)."""
    start = text.rfind("\n{") + 1
    return json.loads(text[start : text.find("\n}", start) + 2])


def _launch(workers: int, app: str, config_file: Path, logs: Path) -> tuple[dict, list[dict]]:
    """`dlsuite launch --workers N -- <app> train --config FILE`: (the chief's result, the others')."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-m", "dlsuite.apps.cli", "launch", "--workers", str(workers),
                           "--timeout", str(LAUNCH_TIMEOUT), "--logs", str(logs), "--", app, "train",
                           "--config", str(config_file)],
                          capture_output=True, text=True, timeout=LAUNCH_TIMEOUT + 30, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    others = [_last_json((logs / f"worker-{i}.log").read_text()) for i in range(1, workers)]
    return _last_json(done.stdout), others


def _deterministic_smoke(app: str, workdir: Path, batch_size: int, run_root: Path):
    """The app's smoke setting with no randomness that differs between replicas (dropout, augmentation)."""
    config = APPS[app].smoke_config(workdir)
    changes = {"dropout": 0.0, "batch_size": batch_size, "run_root": str(run_root)}
    if app == "vision":
        changes["augment"] = False
    if app == "speech":
        changes |= {"time_masks": 0, "freq_masks": 0}  # SpecAugment draws other masks on each replica
    return dataclasses.replace(config, **changes)


def _check_two_workers_equal_one(app: str, tmp_path: Path):
    one = _deterministic_smoke(app, tmp_path, 32, tmp_path / "one")
    two = dataclasses.replace(one, batch_size=16, run_root=str(tmp_path / "two"))  # 2 x 16 = the same global batch
    for name, config in (("one", one), ("two", two)):
        (tmp_path / f"{name}.yaml").write_text(config_to_yaml(config))
    single, _ = _launch(1, app, tmp_path / "one.yaml", tmp_path / "logs1")
    chief, (worker,) = _launch(2, app, tmp_path / "two.yaml", tmp_path / "logs2")
    # the same loss curve as one worker on the global batch, and workers in step
    np.testing.assert_allclose(chief["loss_per_epoch"], single["loss_per_epoch"], rtol=1e-4)
    assert chief["steps_per_epoch"] == single["steps_per_epoch"]
    assert chief["weights_fingerprint"] == pytest.approx(worker["weights_fingerprint"], rel=1e-6)
    assert chief["weights_fingerprint"] == pytest.approx(single["weights_fingerprint"], rel=1e-4)
    # the chief owns a complete run folder; the other worker's copy is gone
    run_dir = Path(chief["run_dir"])
    assert run_dir.parent.parent == tmp_path / "two"
    for name in ("config.yaml", "command.json", "metrics.json", "model.keras"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb").rglob("events.out.tfevents.*"))
    assert not list((tmp_path / "two" / ".workers").rglob("metrics.json"))
    exported = APPS[app].run("export", APPS[app].resolve_config("export", run_dir), run_dir)
    assert exported["export_agrees"], exported


@pytest.mark.slow  # 95 s; the default run keeps tests/shared/test_distribute.py's localhost multi-worker check
def test_two_vision_workers_train_like_one_on_the_global_batch(tmp_path):
    _check_two_workers_equal_one("vision", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("app", ["language", "translation", "speech"])
def test_two_workers_train_like_one_on_the_global_batch(app, tmp_path):
    _check_two_workers_equal_one(app, tmp_path)


def test_a_worker_whose_peers_never_come_ends_with_a_clear_error(tmp_path):
    """No hang: TensorFlow would wait for worker 1 for ever; the watchdog ends worker 0 after
    worker_timeout_seconds with a message naming the silent address."""
    from dlsuite.apps.launch import task_configs

    config = _deterministic_smoke("vision", tmp_path, 16, tmp_path / "runs")
    (tmp_path / "alone.yaml").write_text(config_to_yaml(config))
    (_, first), _ = task_configs(2)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=first)
    done = subprocess.run([sys.executable, "-m", "dlsuite.apps.cli", "vision", "train", "--config",
                           str(tmp_path / "alone.yaml"), "strategy=multi_worker", "worker_timeout_seconds=10"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode != 0
    silent = json.loads(first)["cluster"]["worker"][1]
    assert f"did not form within 10 s (worker_timeout_seconds): not answering: {silent}" in done.stderr


def test_launch_stops_and_reports_a_failing_command(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-m", "dlsuite.apps.cli", "launch", "--workers", "2", "--timeout", "60",
                           "--logs", str(tmp_path), "--", "vision", "train", "no_such_key=1"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert "Unknown config key 'no_such_key'" in done.stderr
    assert "exited with status 2" in done.stderr


def test_launch_needs_a_command():
    from dlsuite.apps import launch

    with pytest.raises(SystemExit):
        launch.main(["--workers", "2"])


@pytest.mark.slow  # 3 minutes on 2 cores
def test_a_killed_worker_job_resumes_from_its_last_epoch(tmp_path):
    """Kill worker 1 mid-training: the launcher stops the job; the same command again resumes every
    worker from the last epoch's BackupAndRestore state, losing at most the epoch in flight."""
    import re
    import signal
    import time

    config = dataclasses.replace(_deterministic_smoke("vision", tmp_path, 16, tmp_path / "runs"), epochs=12,
                                 classes=(), widths=(16,), image_size=12)
    (tmp_path / "job.yaml").write_text(config_to_yaml(config))
    command = [sys.executable, "-m", "dlsuite.apps.cli", "launch", "--workers", "2", "--timeout", str(LAUNCH_TIMEOUT),
               "--logs", str(tmp_path / "logs"), "--", "vision", "train", "--config", str(tmp_path / "job.yaml")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with open(tmp_path / "first.out", "w") as out:
        first = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        backups = tmp_path / "runs" / ".workers" / "worker-1"
        while time.monotonic() < deadline and first.poll() is None:
            if list(backups.rglob("checkpoints/last.keras")):  # worker 1 has finished an epoch
                break
            time.sleep(0.2)
        assert first.poll() is None, (tmp_path / "first.out").read_text()[-3000:]
        worker = next(int(p) for p in _worker_pids(first.pid))
        os.kill(worker, signal.SIGKILL)
        assert first.wait(timeout=LAUNCH_TIMEOUT) != 0
    run_dirs = list((tmp_path / "runs" / "vision").iterdir())
    assert len(run_dirs) == 1 and not (run_dirs[0] / "metrics.json").exists()

    again = subprocess.run(command, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT + 30, env=env)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert f"Resuming unfinished run {run_dirs[0]}" in again.stdout
    epochs = [int(n) for n in re.findall(r"^Epoch (\d+)/12", again.stdout, re.M)]
    assert epochs and epochs[0] > 1 and epochs[-1] == 12, again.stdout[-2000:]
    chief = _last_json(again.stdout)
    worker_result = _last_json((tmp_path / "logs" / "worker-1.log").read_text())
    assert chief["weights_fingerprint"] == pytest.approx(worker_result["weights_fingerprint"], rel=1e-6)
    assert (run_dirs[0] / "metrics.json").is_file() and list((tmp_path / "runs" / "vision").iterdir()) == run_dirs


def _worker_pids(launcher_pid: int) -> list[str]:
    """The pids of the launcher's non-chief workers (its children after the first)."""
    children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split()
    return children[1:]
