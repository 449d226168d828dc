"""`dlsuite translation distill`: a smaller encoder-decoder taught by trained runs (word-level
distillation), in a run folder that exports like any other; teachers with other vocabularies, or a
student asking for another vocabulary, are refused with the file or setting named."""

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from keras import ops

from dlsuite.apps.cli import main
from dlsuite.apps.translation import data
from dlsuite.apps.translation.app import TranslationApp
from dlsuite.apps.translation.distill import NextTokenLogProbabilities
from dlsuite.pipelines.text import PAD_ID, SubwordVocabulary

APP = TranslationApp()


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A tiny attention model on the app's smoke pairs (a toy word-by-word language)."""
    workdir = tmp_path_factory.mktemp("teacher")
    config = dataclasses.replace(APP.smoke_config(workdir), epochs=2, embedding_dim=16, encoder_units=16,
                                 decoder_units=16, attention_units=16, learning_rate=1e-2)
    metrics = APP.run("train", config)
    return Path(metrics["run_dir"]), metrics


def test_the_wrapper_answers_log_probabilities_with_rows_of_zero_at_padding(teacher_run):
    run_dir, _ = teacher_run
    model = APP.load_model(run_dir)
    inputs = {"source": np.array([[5, 6, 7], [8, 9, PAD_ID]], np.int32),
              "target_in": np.array([[2, 5, 6], [2, 7, PAD_ID]], np.int32)}
    twice = ops.convert_to_numpy(NextTokenLogProbabilities([model, model])(inputs))  # (B, T, V)
    own = ops.convert_to_numpy(ops.log_softmax(model(inputs), axis=-1))
    np.testing.assert_allclose(twice[0], own[0], atol=1e-5)  # the mean of one model twice is the model
    np.testing.assert_allclose(twice[1, :2], own[1, :2], atol=1e-5)
    assert not twice[1, 2].any()  # padding: a row of 0, which SequenceLogitsDistillation skips


@pytest.mark.slow  # 30 s; the language and speech distill runs stay in the default run
def test_distill_an_ensemble_into_a_smaller_student_that_exports(teacher_run, tmp_path, capsys):
    """The run with itself as a 2-teacher ensemble (the contract, not the gain: that is
    benchmarks/distillation_translation.py's)."""
    run_dir, teacher = teacher_run
    sizes = ["embedding_dim=4", "encoder_units=4", "decoder_units=4", "attention_units=4"]
    assert main(["translation", "distill", "--from", f"{run_dir},{run_dir}", *sizes, "epochs=1", f"run_root={tmp_path}"]) == 0
    (distilled,) = (tmp_path / "translation").iterdir()
    result = json.loads((distilled / "metrics.json").read_text())
    assert result["teachers"] == [str(run_dir)] * 2
    assert result["parameters"] < teacher["parameters"] / 2 and result["teacher_parameters"] == 2 * teacher["parameters"]
    assert result["compression"] == pytest.approx(result["teacher_parameters"] / result["parameters"], rel=0.01)
    for name in ("test_bleu_greedy", "test_bleu_beam", "test_chrf_greedy", "test_chrf_beam", "final_loss"):
        assert math.isfinite(result[name]), name
    for name in APP.kept_files:
        assert (distilled / name).read_bytes() == (run_dir / name).read_bytes()
    capsys.readouterr()
    assert main(["translation", "export", "--from", str(distilled)]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["export_agrees"] and (distilled / "export").is_dir() and (distilled / "test_translations.tsv").is_file()
    student = APP.load_model(distilled)
    # The run's config describes the student, and so does its model.
    assert APP.resolve_config("export", distilled).encoder_units == student.encoder_units == 4


def test_teachers_with_different_vocabularies_are_refused(teacher_run, tmp_path):
    run_dir, _ = teacher_run
    other = tmp_path / "other"
    shutil.copytree(run_dir, other, ignore=shutil.ignore_patterns("checkpoints", "tb", "export", "plots"))
    german = [t for _, t in data.load_corpus(APP.trained_config(run_dir)).train]
    SubwordVocabulary.train(german, other / "target.model", 32, "unigram")  # the teacher's has 40 pieces
    config = APP.resolve_config("distill", f"{run_dir},{other}", overrides=[f"run_root={tmp_path}"])
    with pytest.raises(ValueError, match=f"Teacher {other} has another target.model than the first teacher.*40 entries"):
        APP.run("distill", config, f"{run_dir},{other}")


def test_a_student_with_another_vocabulary_setting_is_refused(teacher_run, tmp_path):
    run_dir, _ = teacher_run
    config = APP.resolve_config("distill", str(run_dir), overrides=["vocab_size=64", f"run_root={tmp_path}"])
    with pytest.raises(ValueError, match="'vocab_size' makes the vocabulary.*cannot change it to 64"):
        APP.run("distill", config, str(run_dir))
