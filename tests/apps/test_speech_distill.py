"""`dlsuite speech distill`: a smaller CTC model taught by trained runs' per-frame posteriors, in a
run folder that exports like any other; a student with another time stride, or teachers with
another alphabet, are refused with the setting named."""

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from keras import ops

from dlsuite.apps.cli import main
from dlsuite.apps.speech.app import SpeechApp
from dlsuite.apps.speech.distill import FrameLogProbabilities, PaddedCTCLoss
from dlsuite.apps.speech.model import build_speech_model
from dlsuite.apps.speech.transcripts import ALPHABET
from dlsuite.shared.training import save_model_atomic

APP = SpeechApp()


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A tiny CTC model on the app's smoke corpus (20 espeak sentences)."""
    workdir = tmp_path_factory.mktemp("teacher")
    metrics = APP.run("train", APP.smoke_config(workdir))
    return Path(metrics["run_dir"]), metrics


def test_the_wrapper_answers_frame_log_probabilities_with_rows_of_zero_at_padding(teacher_run):
    run_dir, _ = teacher_run
    model = APP.load_model(run_dir)
    inputs = {"features": np.random.default_rng(0).standard_normal((2, 10, 80)).astype(np.float32),
              "lengths": np.array([10, 7], np.int32)}
    twice = ops.convert_to_numpy(FrameLogProbabilities([model, model])(inputs))  # (B, T', C)
    own, lengths = (ops.convert_to_numpy(t) for t in model.log_probs(inputs["features"], inputs["lengths"]))
    assert twice.shape == own.shape and list(lengths) == [4, 3]  # time_stride=3: ceil(T / 3) frames
    np.testing.assert_allclose(twice[0], own[0], atol=1e-5)  # the mean of one model twice is the model
    np.testing.assert_allclose(twice[1, :3], own[1, :3], atol=1e-5)
    assert not twice[1, 3].any()  # padding: a row of 0, skipped by the KL and by the CTC loss
    labels = np.array([[3, 4, 0], [5, 0, 0]], np.int32)  # padded with the blank
    ctc = PaddedCTCLoss()(labels, twice)
    own_loss = model.compute_loss(inputs, {"labels": labels, "label_lengths": np.array([2, 1])}, model(inputs))
    assert float(ctc) == pytest.approx(float(own_loss), rel=1e-5)  # the lengths read from the padding are right


def test_distill_an_ensemble_into_a_smaller_student_that_exports(teacher_run, tmp_path, capsys):
    """The run with itself as a 2-teacher ensemble (the contract, not the gain: that is
    benchmarks/distillation_speech.py's)."""
    run_dir, teacher = teacher_run
    sizes = ["rnn_units=8", "conv_filters=2"]
    assert main(["speech", "distill", "--from", f"{run_dir},{run_dir}", *sizes, f"run_root={tmp_path}"]) == 0
    (distilled,) = (tmp_path / "speech").iterdir()
    result = json.loads((distilled / "metrics.json").read_text())
    assert result["teachers"] == [str(run_dir)] * 2
    assert result["parameters"] < teacher["parameters"] / 2 and result["teacher_parameters"] == 2 * teacher["parameters"]
    assert result["compression"] == pytest.approx(result["teacher_parameters"] / result["parameters"], rel=0.01)
    for method in ("greedy", "beam", "beam_lm"):
        assert math.isfinite(result[f"test_cer_{method}"]) and math.isfinite(result[f"test_wer_{method}"]), method
    assert math.isfinite(result["final_loss"])
    assert (distilled / "lm.arpa").read_bytes() == (run_dir / "lm.arpa").read_bytes()
    assert (distilled / "fusion.json").is_file() and (distilled / "test_results.tsv").is_file()
    capsys.readouterr()
    assert main(["speech", "export", "--from", str(distilled)]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["export_agrees"] and (distilled / "export").is_dir()
    # The run's config describes the student, and so does its model.
    assert APP.resolve_config("export", distilled).rnn_units == APP.load_model(distilled).rnn_units == 8


def test_a_student_with_another_time_stride_is_refused(teacher_run, tmp_path):
    run_dir, _ = teacher_run
    config = APP.resolve_config("distill", str(run_dir), overrides=["time_stride=2", f"run_root={tmp_path}"])
    with pytest.raises(ValueError, match=f"teacher {run_dir} has time_stride=3, the student 2.*time_stride=3"):
        APP.run("distill", config, str(run_dir))


def test_a_student_with_other_features_is_refused(teacher_run, tmp_path):
    run_dir, _ = teacher_run
    config = APP.resolve_config("distill", str(run_dir), overrides=["features=mfcc", f"run_root={tmp_path}"])
    with pytest.raises(ValueError, match="teacher .* has features=log_mel, the student mfcc"):
        APP.run("distill", config, str(run_dir))


def test_a_teacher_with_another_alphabet_is_refused(teacher_run, tmp_path):
    run_dir, _ = teacher_run
    other = tmp_path / "other"
    shutil.copytree(run_dir, other, ignore=shutil.ignore_patterns("checkpoints", "tb", "export", "plots"))
    config = APP.trained_config(run_dir)
    save_model_atomic(build_speech_model(config, 80, len(ALPHABET) + 1), other / "model.keras")
    distill_config = dataclasses.replace(config, run_root=str(tmp_path / "runs"))
    with pytest.raises(ValueError, match=f"Teacher {other} answers 30 classes per frame, the student's alphabet has 29"):
        APP.run("distill", distill_config, f"{run_dir},{other}")
