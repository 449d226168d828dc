"""Run folders: atomic writes, resume of an unfinished identical run, no damage to old runs."""

import dataclasses
import json
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


def finished(folder):
    """A cache counts as finished when it holds its manifest (the file written last)."""
    return (folder / "manifest.json").is_file()


def test_build_cache_folder_renames_the_finished_build_into_place(tmp_path):
    final = tmp_path / "cache" / "corpus-1"  # the parent is made
    with runs.build_cache_folder(final, finished) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".corpus-1.tmp-") and not final.exists()
        assert tmp.stat().st_mode & 0o777 == 0o755  # an ordinary folder, not mkdtemp's private one
        (tmp / "data.txt").write_text("new")
        (tmp / "manifest.json").write_text("{}")
    assert sorted(p.name for p in final.iterdir()) == ["data.txt", "manifest.json"]
    assert [p.name for p in final.parent.iterdir()] == ["corpus-1"]  # no temporary folder left


def test_build_cache_folder_error_leaves_no_temp_folder_and_keeps_the_older_build(tmp_path):
    final = tmp_path / "corpus-1"
    final.mkdir()
    (final / "data.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), runs.build_cache_folder(final, finished) as tmp:
        (tmp / "data.txt").write_text("half")
        raise KeyboardInterrupt  # killed midway, before the manifest
    assert [p.name for p in tmp_path.iterdir()] == ["corpus-1"]
    assert (final / "data.txt").read_text() == "old"


def test_build_cache_folder_keeps_what_another_process_finished_first(tmp_path):
    final = tmp_path / "corpus-1"
    with runs.build_cache_folder(final, finished) as tmp:
        (tmp / "data.txt").write_text("ours")
        (tmp / "manifest.json").write_text("{}")
        final.mkdir()  # meanwhile another process finishes the same build
        (final / "data.txt").write_text("theirs")
        (final / "manifest.json").write_text("{}")
    assert (final / "data.txt").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["corpus-1"]


def test_build_cache_folder_replaces_an_unfinished_folder(tmp_path):
    final = tmp_path / "corpus-1"
    final.mkdir()
    (final / "data.txt").write_text("left by an older, unfinished layout")
    with runs.build_cache_folder(final, finished) as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert [p.name for p in final.iterdir()] == ["manifest.json"]


def test_a_killed_finetune_is_resumed_only_from_the_same_source(tmp_path):
    """Issue 12: `finetune --from B` once resumed a killed `finetune --from A`, so BackupAndRestore
    put A's weights over B's. The source is part of the resume key."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    from_a = runs.create_run_dir(tmp_path, "vision", "finetune", Cfg(), source=tmp_path / "a")
    assert runs.create_run_dir(tmp_path, "vision", "finetune", Cfg(), source=tmp_path / "a") == from_a
    from_b = runs.create_run_dir(tmp_path, "vision", "finetune", Cfg(), source=tmp_path / "b")
    assert from_b != from_a
    assert json.loads((from_b / "command.json").read_text()) == {"command": "finetune",
                                                                 "source": str((tmp_path / "b").resolve())}
