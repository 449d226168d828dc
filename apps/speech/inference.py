"""Using a trained speech model: per-frame log-probabilities, greedy / beam / beam + LM decoding,
CER and WER on a split (with the LM weights tuned on validation), and transcripts of audio files.

    dlsuite speech evaluate --from runs/speech/<run>
    dlsuite speech predict --from runs/speech/<run> a.wav b.flac
"""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import numpy as np

from dlsuite.apps.speech import data, decode, report
from dlsuite.apps.speech.audio import load_audio
from dlsuite.apps.speech.config import SpeechConfig
from dlsuite.apps.speech.transcripts import ALPHABET
from dlsuite.shared.ngram import read_arpa

# The fusion grid (25 points). On the quick run the best beta was 3.5, past the decoder's default grid.
FUSION_ALPHAS = (0.25, 0.5, 0.75, 1.0, 1.5)
FUSION_BETAS = (0.5, 1.5, 2.5, 3.5, 5.0)


def load_lm(run_dir: Path) -> decode.WordLM | None:
    """The run's fusion LM (lm.arpa), or None for a run trained with lm=none."""
    path = Path(run_dir) / "lm.arpa"
    return decode.WordLM(read_arpa(path)) if path.is_file() else None


def read_fusion(run_dir: Path) -> dict | None:
    """The LM weights (alpha, beta) tuned on validation, or None."""
    path = Path(run_dir) / "fusion.json"
    return json.loads(path.read_text()) if path.is_file() else None


def frame_log_probs(model, examples: data.Examples, batch_size: int = 32) -> list[np.ndarray]:
    """Per-utterance [T', C] log-probabilities, trimmed to each utterance's length."""
    out = []
    for inputs, _ in data.make_dataset(examples, batch_size, ordered=True):
        log_probs, lengths = model.log_probs(inputs["features"], inputs["lengths"])
        out.extend(lp[:n] for lp, n in zip(np.asarray(log_probs), np.asarray(lengths), strict=True))
    return out


def error_rates(references: list[str], hypotheses: list[str]) -> dict:
    return {"wer": jiwer.wer(references, hypotheses), "cer": jiwer.cer(references, hypotheses)}


def decode_all(log_probs, config: SpeechConfig, lm, fusion: dict | None) -> dict[str, list[str]]:
    """Greedy, beam and (with an LM) beam + LM transcripts of each utterance's log-probabilities."""
    results = {"greedy": decode.decode_many(log_probs, ALPHABET, "greedy"),
               "beam": decode.decode_many(log_probs, ALPHABET, "beam", beam_width=config.beam_width, beta=0.0)}
    if lm is not None and fusion is not None:
        results["beam_lm"] = decode.decode_many(log_probs, ALPHABET, "beam_lm", beam_width=config.beam_width,
                                                lm=lm, alpha=fusion["alpha"], beta=fusion["beta"], lexicon=config.lm_lexicon)
    return results


def tune(model, examples: data.Examples, config: SpeechConfig, lm) -> dict | None:
    """alpha, beta of the fused score on the validation split (grid search on WER)."""
    if lm is None:
        return None
    references = [u.transcript for u in examples.utterances]
    result = decode.tune_fusion(frame_log_probs(model, examples), references, lm, ALPHABET,
                                alphas=FUSION_ALPHAS, betas=FUSION_BETAS, beam_width=config.beam_width,
                                lexicon=config.lm_lexicon)
    return {"alpha": result["alpha"], "beta": result["beta"], "valid_wer": result["wer"], "grid": result["grid"]}


def evaluate_split(model, examples: data.Examples, config: SpeechConfig, lm, fusion, run_dir: Path,
                   prefix: str = "test") -> dict:
    """CER/WER of every decoder on one split; per-utterance results, worst errors and pictures."""
    log_probs = frame_log_probs(model, examples)
    references = [u.transcript for u in examples.utterances]
    hypotheses = decode_all(log_probs, config, lm, fusion)
    metrics = {}
    for method, texts in hypotheses.items():
        for name, value in error_rates(references, texts).items():
            metrics[f"{prefix}_{name}_{method}"] = value
    report.write_results(examples.utterances, hypotheses, run_dir, prefix)
    report.wer_by_length_figure(examples.utterances, hypotheses, run_dir, prefix)
    report.alignment_figure(examples, log_probs, run_dir, prefix, model.time_stride)
    return metrics


def transcribe_files(model, lm, fusion, config: SpeechConfig, paths: list[str]) -> list[dict]:
    """Transcripts of audio files by every decoder the run has (beam + LM when it has an LM)."""
    results = []
    for path in paths:
        values = data.compute_features(load_audio(path, max_seconds=config.max_seconds), config.features)
        texts = decode_all([model.utterance_log_probs(values)], config, lm, fusion)
        results.append({"input": path, **{m: t[0] for m, t in texts.items()}})
    return results
