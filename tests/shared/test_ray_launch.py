"""launcher=ray: a real 2-worker job through Ray Train's TensorflowTrainer on a private local Ray instance."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")

from dlsuite.apps.ray_launch import launch_on_ray  # noqa: E402

RAY_TIMEOUT = 240
TINY = ["epochs=2", "classes=0,1,2", "widths=8", "image_size=8", "batch_size=32", "augment=false", "dropout=0"]


@pytest.mark.slow  # about 60 s on 2 CPU cores, half of it Ray's start-up
def test_two_ray_workers_train_in_step_and_the_chief_owns_the_run(tmp_path):
    # In a subprocess: a job that hangs is bounded twice (launch_on_ray's timeout, then the subprocess's).
    job = (f"import sys; from dlsuite.apps.ray_launch import launch_on_ray; "
           f"sys.exit(launch_on_ray({['vision', 'train', '--quick', f'run_root={tmp_path}', *TINY]!r}, "
           f"num_workers=2, timeout={RAY_TIMEOUT}))")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a private instance, not the user's cluster
    done = subprocess.run([sys.executable, "-c", job], capture_output=True, text=True, timeout=RAY_TIMEOUT + 60,
                          env=dict(env, TF_CPP_MIN_LOG_LEVEL="2"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (chief_file,) = tmp_path.glob(".ray/vision-train-*/result-0.json")
    chief = json.loads(chief_file.read_text())
    worker = json.loads((chief_file.parent / "result-1.json").read_text())
    assert json.loads(done.stdout[done.stdout.rfind("\n{") + 1:]) == chief  # the chief's result is printed
    run_dir = Path(chief["run_dir"])
    assert run_dir.parent == tmp_path / "vision"  # worker 0 is the chief; worker 1 wrote under .workers/
    assert Path(worker["run_dir"]).is_relative_to(tmp_path / ".workers" / "worker-1")
    for name in ("metrics.json", "model.keras"):
        assert (run_dir / name).is_file(), name
    assert chief["epochs_run"] == 2 and all(math.isfinite(x) for x in chief["loss_per_epoch"])
    assert chief["weights_fingerprint"] == pytest.approx(worker["weights_fingerprint"], rel=1e-6)


def test_bad_arguments_are_clear_errors_before_ray_starts(tmp_path, capsys):
    with pytest.raises(ValueError, match="num_workers must be >= 1, got 0"):
        launch_on_ray(["vision", "train"], num_workers=0)
    with pytest.raises(ValueError, match="give the app and its command"):
        launch_on_ray(["vision"], num_workers=2)
    assert launch_on_ray(["vision", "train", f"run_root={tmp_path}", "no_such_key=1"], num_workers=2) == 2
    assert "Unknown config key 'no_such_key'" in capsys.readouterr().err
