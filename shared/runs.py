"""Run folders: one per run, written atomically, resumable after a kill.

A run folder holds `config.yaml` (the resolved config), `checkpoints/`, `tb/`
(TensorBoard), `plots/`, `metrics.json` and `export/`. Files are written to a
temporary name and renamed, so an interrupted run never leaves a half-written
file, and a new run never writes into an earlier run's folder. `metrics.json`
is written last: its presence marks a finished run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from dlsuite.shared.config import config_to_yaml

FINISHED_MARKER = "metrics.json"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes `data` to `path` through a temporary file in the same folder, then renames it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Writes `text` (UTF-8) to `path` through a temporary file in the same folder."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")


def replace_dir(tmp_dir: Path, final_dir: Path) -> Path:
    """Moves a finished temporary folder into place, replacing an older one."""
    final_dir = Path(final_dir)
    if final_dir.exists():
        old = final_dir.with_name(f".{final_dir.name}.old-{time.time_ns()}")
        os.replace(final_dir, old)
        os.replace(tmp_dir, final_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp_dir, final_dir)
    return final_dir


def find_unfinished_run(app_dir: Path, config_yaml: str) -> Path | None:
    """The newest run of `app_dir` with the same resolved config and no metrics yet."""
    if not app_dir.is_dir():
        return None
    candidates = sorted((p for p in app_dir.iterdir() if p.is_dir()), reverse=True)
    for run_dir in candidates:
        config_file = run_dir / "config.yaml"
        if (
            config_file.is_file()
            and not (run_dir / FINISHED_MARKER).exists()
            and config_file.read_text() == config_yaml
        ):
            return run_dir
    return None


def create_run_dir(root: str | Path, app: str, command: str, config: Any, resume: bool = True) -> Path:
    """Returns the run folder for this command, resuming an unfinished identical run.

    Re-running a killed command with the same resolved config continues in the same
    folder (Keras' BackupAndRestore picks up the last epoch); any other run gets a new,
    timestamped folder, so earlier runs are never touched.
    """
    config_yaml = config_to_yaml(config)
    from dlsuite.shared.distribute import is_chief

    if not is_chief():
        # Multi-worker training: every worker runs the same command, but only the
        # chief owns the run folder; the others write to a throw-away folder.
        root = tempfile.mkdtemp(prefix="dlsuite-worker-")
    app_dir = Path(root) / app
    if resume:
        existing = find_unfinished_run(app_dir, config_yaml)
        if existing is not None and existing.name.endswith(f"-{command}"):
            print(f"Resuming unfinished run {existing}")
            return existing
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = app_dir / f"{stamp}-{command}"
    suffix = 1
    while run_dir.exists():
        run_dir = app_dir / f"{stamp}.{suffix}-{command}"
        suffix += 1
    for sub in ("checkpoints", "tb", "plots"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", config_yaml)
    return run_dir


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> Path:
    """Writes metrics.json, which also marks the run as finished."""
    return atomic_write_json(Path(run_dir) / FINISHED_MARKER, metrics)
