"""Command dispatch shared by every app's `run_command`: the commands that make a run folder."""

from __future__ import annotations

from pathlib import Path

from dlsuite.shared.runs import create_run_dir


def need_source(app: str, command: str, source):
    if not source:
        raise ValueError(f"'dlsuite {app} {command}' needs --from <run folder>.")
    return source


def run_in_new_folder(app: str, command: str, config, source, train_module):
    """train / finetune / evaluate: a fresh run folder, then train_module's function of that name."""
    run_dir = create_run_dir(config.run_root, app, command, config)
    if command == "train":
        return train_module.train_and_evaluate(config, run_dir) | {"run_dir": str(run_dir)}
    if command in ("finetune", "evaluate"):
        step = getattr(train_module, command)
        return step(config, run_dir, need_source(app, command, source)) | {"run_dir": str(run_dir)}
    raise ValueError(f"Unknown {app} command '{command}'.")


def run_folder(source) -> Path:
    """The run folder of `--from`: the folder itself, or the folder holding a given model file."""
    path = Path(source)
    return path if path.is_dir() else path.parent
