"""Run folders: atomic writes, resume of an unfinished identical run, no damage to old runs."""

import dataclasses
import os

import pytest

from dlsuite.shared import runs


@dataclasses.dataclass(frozen=True)
class Cfg:
    epochs: int = 2


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    runs.atomic_write_json(path, {"a": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        runs.atomic_write_json(path, {"a": 2})
    monkeypatch.undo()
    assert path.read_text().strip() == '{\n  "a": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_unfinished_identical_run_is_resumed_finished_one_is_not(tmp_path):
    first = runs.create_run_dir(tmp_path, "vision", "train", Cfg())
    assert (first / "config.yaml").read_text() == "epochs: 2\n"
    assert runs.create_run_dir(tmp_path, "vision", "train", Cfg()) == first  # killed: resume
    other = runs.create_run_dir(tmp_path, "vision", "train", Cfg(epochs=3))
    assert other != first  # different config: new folder
    runs.write_metrics(first, {"accuracy": 1.0})
    fresh = runs.create_run_dir(tmp_path, "vision", "train", Cfg())
    assert fresh not in (first, other)  # finished runs are never reused
    assert runs.create_run_dir(tmp_path, "vision", "evaluate", Cfg()) != fresh  # other command


def test_replace_dir_swaps_whole_folders(tmp_path):
    final = tmp_path / "export"
    final.mkdir()
    (final / "old.txt").write_text("old")
    new = tmp_path / "tmp"
    new.mkdir()
    (new / "new.txt").write_text("new")
    runs.replace_dir(new, final)
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
