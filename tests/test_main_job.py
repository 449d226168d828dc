"""The README's main job end to end (slow: a few minutes on 2 cores)."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_main_job_meets_the_quick_targets(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, "-m", "dlsuite.apps.cli", "all", "--run-root", str(tmp_path)],
        capture_output=True, text=True, timeout=3600, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "=== dlsuite main job summary ===" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = summary["vision"]["metrics"]
    assert rows["test accuracy"] >= 0.985, rows
    assert rows["export agrees"] == 1.0 and rows["export max gap"] < 1e-4
    assert list(tmp_path.glob("vision/*-train/export/saved_model.pb"))
    assert list(tmp_path.glob("vision/*-robustness/robustness.md"))
    language = summary["language"]["metrics"]
    assert language["test ppl, mixture"] < language["test ppl, ngram_5"] < language["test ppl, ngram_3"]
    assert language["export agrees"] == 1.0 and language["export max gap"] < 1e-4
    assert list(tmp_path.glob("language/*-train/ngram.arpa"))
    speech = summary["speech"]["metrics"]
    assert speech["test_cer_greedy"] < 0.5, speech  # quick setting: ~8 minutes of CPU training
    assert speech["test_wer_beam_lm"] < speech["test_wer_greedy"]
    assert speech["export agrees"] == 1.0
    assert speech["export max gap"] < 1e-3
    assert list(tmp_path.glob("speech/*-train/export/saved_model.pb"))
    translation = summary["translation"]["metrics"]
    assert translation["test_bleu_beam"] > 2.0, translation  # quick setting: 4 epochs on 20k pairs (measured 4.1)
    assert translation["export agrees"] == 1.0
    assert list(tmp_path.glob("translation/*-train/export/saved_model.pb"))
