"""`dlsuite language distill`: a smaller student taught by trained runs, in a run folder that exports
like any other; teachers it cannot learn from are refused with the setting to change."""

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest

from dlsuite.apps.cli import main
from dlsuite.apps.language import data
from dlsuite.apps.language.app import LanguageApp
from dlsuite.apps.language.model import build_language_model

APP = LanguageApp()


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A tiny full-softmax LSTM on the app's smoke corpus (15 words drawn at random)."""
    workdir = tmp_path_factory.mktemp("teacher")
    config = dataclasses.replace(APP.smoke_config(workdir), epochs=2, hidden_dim=16, embedding_dim=16,
                                 learning_rate=1e-2, mixture=False)
    metrics = APP.run("train", config)
    return Path(metrics["run_dir"]), metrics


def test_distill_an_ensemble_into_a_smaller_student_that_exports(teacher_run, tmp_path, capsys):
    """The run with itself as a 2-teacher ensemble (the contract, not the gain: the gain is
    tests/shared/test_distillation.py's and benchmarks/distillation_language.py's)."""
    run_dir, teacher = teacher_run
    sources = f"{run_dir},{run_dir}"
    assert main(["language", "distill", "--from", sources, "hidden_dim=4", "embedding_dim=4",
                 f"run_root={tmp_path}"]) == 0
    (distilled,) = (tmp_path / "language").iterdir()
    result = json.loads((distilled / "metrics.json").read_text())
    assert result["teachers"] == [str(run_dir)] * 2
    assert result["parameters"] < teacher["parameters"] / 4 and result["teacher_parameters"] == 2 * teacher["parameters"]
    assert result["compression"] == pytest.approx(result["teacher_parameters"] / result["parameters"], rel=0.01)
    assert math.isfinite(result["test_ppl_lstm_full"]) and result["test_ppl_lstm_full"] < result["vocabulary_size"]
    assert result["test_ppl_teacher"] == pytest.approx(teacher["test_ppl_lstm_full"], rel=1e-4)  # the mean of one run twice
    assert (distilled / "vocabulary.tsv").read_bytes() == (run_dir / "vocabulary.tsv").read_bytes()
    config = APP.resolve_config("export", distilled)
    assert (config.hidden_dim, config.embedding_dim) == (4, 4)  # the run's config describes the student
    assert APP.load_model(distilled).hidden_dim == 4
    capsys.readouterr()
    assert main(["language", "export", "--from", str(distilled)]) == 0
    assert json.loads(capsys.readouterr().out)["export_agrees"]
    (scored,) = APP.run("predict", config, distilled, ["the lord said unto moses"])
    assert scored["tokens"][-1] == "</s>" and math.isfinite(scored["perplexity"])


def _copy_of(run_dir: Path, folder: Path) -> Path:
    shutil.copytree(run_dir, folder, ignore=shutil.ignore_patterns("checkpoints", "tb", "export", "plots"))
    return folder


def test_a_teacher_or_student_without_the_whole_distribution_is_refused(teacher_run, tmp_path):
    """The shortlist answers its words and one "any other word" column: nothing to distill over V."""
    run_dir, _ = teacher_run
    shortlist_run = _copy_of(run_dir, tmp_path / "shortlist")
    config = dataclasses.replace(APP.trained_config(run_dir), output="shortlist")
    vocab = data.load_vocabulary(run_dir)
    build_language_model(config, len(vocab), vocab.counts).save(shortlist_run / "model.keras")
    distill = APP.resolve_config("distill", f"{run_dir},{shortlist_run}", overrides=[f"run_root={tmp_path}"])
    with pytest.raises(ValueError, match=f"Teacher {shortlist_run} has output=shortlist.*any other output"):
        APP.run("distill", distill, f"{run_dir},{shortlist_run}")
    shortlist_student = dataclasses.replace(distill, output="shortlist")
    with pytest.raises(ValueError, match="output=shortlist answers only part of it"):
        APP.run("distill", shortlist_student, str(run_dir))


def test_teachers_with_different_vocabularies_are_refused(teacher_run, tmp_path):
    run_dir, _ = teacher_run
    other = _copy_of(run_dir, tmp_path / "other")
    lines = (other / "vocabulary.tsv").read_text().splitlines()
    lines[4], lines[5] = lines[5], lines[4]  # two words trade ids
    (other / "vocabulary.tsv").write_text("\n".join(lines) + "\n")
    config = APP.resolve_config("distill", f"{run_dir},{other}", overrides=[f"run_root={tmp_path}"])
    with pytest.raises(ValueError, match="another vocabulary than the first teacher.*first difference at id 4"):
        APP.run("distill", config, f"{run_dir},{other}")
