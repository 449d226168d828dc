"""Run folders: one per run, written atomically, resumable after a kill.

A run folder holds `config.yaml` (the resolved config), `command.json` (the command and
the `--from` run it started from), `checkpoints/`, `tb/`
(TensorBoard), `plots/`, `metrics.json` and `export/`. Files are written to a
temporary name and renamed, so an interrupted run never leaves a half-written
file, and a new run never writes into an earlier run's folder. `metrics.json`
is written last: its presence marks a finished run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def build_cache_folder(final_dir: str | Path, is_finished: Callable[[Path], Any]) -> Iterator[Path]:
    """Yields a new temporary folder next to `final_dir` to build a cache into.

    When the block ends without an error the folder is renamed to `final_dir`, replacing an
    older one, unless `is_finished(final_dir)` is truthy (e.g. a finished cache's manifest):
    another process finished the same build meanwhile, so ours is discarded and theirs kept. On an error it is removed and `final_dir`
    is left as it was. Write the file that marks the cache finished (a manifest) last, so a
    killed build is never taken for a finished one.
    """
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
    try:
        tmp_dir.chmod(0o755)  # mkdtemp makes it private; the finished cache is an ordinary folder
        yield tmp_dir
        if not is_finished(final_dir):
            replace_dir(tmp_dir, final_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


COMMAND_FILE = "command.json"


def command_record(command: str, source: str | Path | None) -> dict:
    """What started a run: the command and the absolute path of its `--from` run (or None)."""
    return {"command": command, "source": str(Path(source).resolve()) if source else None}


def find_unfinished_run(app_dir: Path, config_yaml: str, record: dict) -> Path | None:
    """The newest run of `app_dir` with the same resolved config, the same command and `--from`
    source, and no metrics yet: the one run a re-started command may resume."""
    if not app_dir.is_dir():
        return None
    candidates = sorted((p for p in app_dir.iterdir() if p.is_dir()), reverse=True)
    for run_dir in candidates:
        config_file, command_file = run_dir / "config.yaml", run_dir / COMMAND_FILE
        if (
            config_file.is_file() and command_file.is_file()
            and not (run_dir / FINISHED_MARKER).exists()
            and config_file.read_text() == config_yaml
            and json.loads(command_file.read_text()) == record
        ):
            return run_dir
    return None


def create_run_dir(root: str | Path, app: str, command: str, config: Any, resume: bool = True,
                   source: str | Path | None = None) -> Path:
    """Returns the run folder for this command, resuming an unfinished identical run.

    Re-running a killed command with the same resolved config and the same `--from` source
    continues in the same folder (Keras' BackupAndRestore picks up the last epoch); any other
    run gets a new, timestamped folder, so earlier runs are never touched. The source is part
    of the key: `finetune --from B` never resumes a killed `finetune --from A`.
    """
    config_yaml = config_to_yaml(config)
    record = command_record(command, source)
    from dlsuite.shared.distribute import is_chief

    if not is_chief():
        # Multi-worker training: every worker runs the same command, but only the chief owns the
        # run folder; the others keep theirs under <root>/.workers/<task>/, the same folder after
        # a restart (so they resume with the chief), removed once the command has finished.
        from dlsuite.shared.multi_worker import worker_run_root

        root = worker_run_root(root)
    app_dir = Path(root) / app
    if resume:
        existing = find_unfinished_run(app_dir, config_yaml, record)
        if existing is not None:
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
    atomic_write_json(run_dir / COMMAND_FILE, record)
    return run_dir


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> Path:
    """Writes metrics.json, which also marks the run as finished."""
    return atomic_write_json(Path(run_dir) / FINISHED_MARKER, metrics)
