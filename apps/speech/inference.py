"""Using a trained speech model: per-frame log-probabilities, greedy / beam / beam + LM decoding,
CER and WER on a split (with the LM weights tuned on validation), and transcripts of audio files.

    dlsuite speech evaluate --from runs/speech/<run>
    dlsuite speech predict --from runs/speech/<run> a.wav b.flac

`transcribe_files` (predict) reads every file first (so a bad one fails before any model time),
then runs the acoustic model on padded batches of files of similar length through one traced
graph, and decodes each utterance. The model masks padded frames, so a file's transcript does
not depend on the files batched with it. A file longer than max_seconds (up to max_file_minutes)
is cut at pauses (segment.py); its segments join the batches like files of their own, and its
result holds the joined text and each segment's times and text.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from pathlib import Path

import jiwer
import numpy as np
import tensorflow as tf

from dlsuite.apps.speech import data, decode, report, segment
from dlsuite.apps.speech.audio import RECORDING_LIMIT, SAMPLE_RATE, load_audio
from dlsuite.apps.speech.config import SpeechConfig
from dlsuite.apps.speech.transcripts import ALPHABET
from dlsuite.shared.runs import atomic_write_json

# The fusion grid (25 points). On the quick run the best beta was 3.5, past the decoder's default grid.
FUSION_ALPHAS = (0.25, 0.5, 0.75, 1.0, 1.5)
FUSION_BETAS = (0.5, 1.5, 2.5, 3.5, 5.0)


@dataclasses.dataclass(frozen=True)
class FusionLMs:
    """The n-grams a run can fuse into beam search: its word LM (lm.arpa) and its character LM
    (char_lm.arpa, open-vocabulary); either may be missing. fusion.json's `unit` says which one
    the tuned fusion uses."""

    word: decode.WordLM | None = None
    char: decode.CharLM | None = None

    def chosen(self, fusion: dict) -> decode.WordLM | decode.CharLM | None:
        return self.char if fusion.get("unit") == "char" else self.word  # fusion.json before char LMs: word


WORD_LM_FILE, CHAR_LM_FILE = "lm.arpa", "char_lm.arpa"


def load_lm(run_dir: Path) -> FusionLMs | None:
    """The run's fusion LMs, or None for a run trained with lm=none."""
    word, char = (Path(run_dir) / name for name in (WORD_LM_FILE, CHAR_LM_FILE))
    if not word.is_file() and not char.is_file():
        return None
    return FusionLMs(decode.WordLM.from_arpa(word) if word.is_file() else None,
                     decode.CharLM.from_arpa(char) if char.is_file() else None)


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


def decode_all(log_probs, config: SpeechConfig, lms: FusionLMs | None, fusion: dict | None,
               progress: bool | None = None) -> dict[str, list[str]]:
    """Greedy, beam and (with an LM) beam + LM transcripts of each utterance's log-probabilities.

    progress: decode.decode_many's bars; None shows them for more than 50 utterances."""
    results = {"greedy": decode.decode_many(log_probs, ALPHABET, "greedy", progress=progress),
               "beam": decode.decode_many(log_probs, ALPHABET, "beam", progress=progress, beam_width=config.beam_width,
                                          beta=0.0)}
    if lms is not None and fusion is not None and not fusion.get("use_lm", True):
        results["beam_lm"] = results["beam"]  # tuning found the LM no help on data like this (see tune)
    elif lms is not None and fusion is not None:
        results["beam_lm"] = decode.decode_many(log_probs, ALPHABET, "beam_lm", progress=progress,
                                                beam_width=config.beam_width, lm=lms.chosen(fusion),
                                                alpha=fusion["alpha"], beta=fusion["beta"],
                                                lexicon=fusion.get("lexicon", config.lm_lexicon))
    return results


def fusion_candidates(config: SpeechConfig, lms: FusionLMs) -> list[tuple[str, bool]]:
    """(unit, lexicon) settings tune tries, in order: the word LM as configured (lexicon or not),
    the character LM, then the word LM with any spelling; the first that beats beam search wins."""
    candidates = [("word", config.lm_lexicon)] if lms.word else []
    if lms.char:
        candidates.append(("char", False))
    if lms.word and config.lm_lexicon:
        candidates.append(("word", False))
    return candidates


def tune(model, examples: data.Examples, config: SpeechConfig, lms: FusionLMs | None) -> dict | None:
    """alpha, beta, the LM (word or character) and the lexicon of the fused score on the validation
    split (grid search on WER), or, when no fused setting beats beam search without the LM there,
    `use_lm: False`.

    An LM from another domain can only hurt: its lexicon cannot spell the new words, and its
    probabilities favour the wrong ones. So a lexicon grid that does not beat plain beam search
    is followed by open-vocabulary ones (the character LM, which spells any word; the word LM
    scoring only the words it knows), and if none helps either, beam + LM is plain beam search
    for this run: the fusion never makes the validation result worse.
    """
    if lms is None:
        return None
    examples = tuning_sample(examples, config.fusion_tune_utterances)
    log_probs = frame_log_probs(model, examples)
    references = [u.transcript for u in examples.utterances]
    beam_wer = error_rates(references, decode.decode_many(log_probs, ALPHABET, "beam", progress=False,
                                                          beam_width=config.beam_width, beta=0.0))["wer"]
    best, tried = None, {}
    for unit, lexicon in fusion_candidates(config, lms):
        result = decode.tune_fusion(log_probs, references, getattr(lms, unit), ALPHABET, alphas=FUSION_ALPHAS,
                                    betas=FUSION_BETAS, beam_width=config.beam_width, lexicon=lexicon)
        tried[f"{unit}{'_lexicon' if lexicon else ''}"] = result["wer"]
        if best is None or result["wer"] < best["wer"]:
            best = result | {"unit": unit, "lexicon": lexicon}
        if best["wer"] < beam_wer:
            break
    return {"unit": best["unit"], "alpha": best["alpha"], "beta": best["beta"], "lexicon": best["lexicon"],
            "valid_wer": best["wer"], "valid_wer_beam": beam_wer, "valid_wer_tried": tried,
            "use_lm": best["wer"] < beam_wer, "grid": best["grid"], "tune_utterances": len(references)}


def tuning_sample(examples: data.Examples, limit: int) -> data.Examples:
    """At most `limit` of the split's utterances (0: all), evenly spaced through it, so that a split
    ordered by voice or source keeps each of them in the sample."""
    if not limit or len(examples) <= limit:
        return examples
    chosen = np.linspace(0, len(examples) - 1, limit).round().astype(int)
    pick = lambda items: None if items is None else [items[i] for i in chosen]  # noqa: E731
    return data.Examples(pick(examples.utterances), pick(examples.features), pick(examples.labels),
                         pick(examples.waveforms))


def tune_and_save(model, examples: data.Examples, config: SpeechConfig, lms: FusionLMs | None,
                  run_dir: Path) -> tuple[dict | None, dict]:
    """tune, with its result written to <run>/fusion.json; returns (fusion, its run metrics)."""
    fusion = tune(model, examples, config, lms)
    if not fusion:
        return None, {}
    atomic_write_json(Path(run_dir) / "fusion.json", fusion)
    return fusion, fusion_metrics(fusion)


def fusion_metrics(fusion: dict) -> dict:
    """The tuned fusion as run metrics: its weights, its lexicon, and whether the LM is used at all."""
    return {"lm_alpha": fusion["alpha"], "lm_beta": fusion["beta"], "lm_lexicon": fusion.get("lexicon"),
            "lm_unit": fusion.get("unit", "word"), "lm_used": fusion.get("use_lm", True)}


def evaluate_split(model, examples: data.Examples, config: SpeechConfig, lms, fusion, run_dir: Path,
                   prefix: str = "test") -> dict:
    """CER/WER of every decoder on one split; per-utterance results, worst errors and pictures."""
    log_probs = frame_log_probs(model, examples)
    references = [u.transcript for u in examples.utterances]
    hypotheses = decode_all(log_probs, config, lms, fusion)
    metrics = {}
    for method, texts in hypotheses.items():
        for name, value in error_rates(references, texts).items():
            metrics[f"{prefix}_{name}_{method}"] = value
    report.write_results(examples.utterances, hypotheses, run_dir, prefix)
    report.wer_by_length_figure(examples.utterances, hypotheses, run_dir, prefix)
    report.alignment_figure(examples, log_probs, run_dir, prefix, model.time_stride)
    return metrics


# === predict: audio files -> transcripts ===
PROGRESS_MIN_FILES = 8  # fewer files than this: no progress bars


class SegmentationWarning(UserWarning):
    """A long recording in which segment.py found no speech, or a stretch with no pause to cut at."""


def read_recording(path: str, config: SpeechConfig) -> tuple[list[np.ndarray], list[tuple[float, float]] | None]:
    """A file's [T, F] features with load_audio's checks (a bad file is an error naming it): one
    array for a file of at most max_seconds, and None; for a longer one, one array per speech
    segment (segment.py) and each segment's (start, end) in seconds."""
    waveform = load_audio(path, max_seconds=config.max_file_minutes * 60, limit=RECORDING_LIMIT)
    if len(waveform) <= config.max_seconds * SAMPLE_RATE:
        return [data.compute_features(waveform, config.features)], None
    bounds, forced = segment.speech_segments(waveform, config.max_seconds, config.vad_threshold_db,
                                             config.vad_min_pause_seconds)
    if len(bounds) == 0:
        warnings.warn(f"{path}: found no speech in {len(waveform) / SAMPLE_RATE:.1f} s of audio (nothing louder "
                      f"than {segment.SILENCE_DBFS:g} dB full scale for {segment.MIN_SPEECH_FRAMES * 10} ms); the "
                      "transcript is empty.", SegmentationWarning, stacklevel=2)
    elif forced:
        warnings.warn(f"{path}: {forced} forced cut(s): audio longer than max_seconds={config.max_seconds:g} without a "
                      "pause was cut at its quietest point, maybe inside a word (continuous noise or music? a lower "
                      "vad_threshold_db finds quieter pauses).", SegmentationWarning, stacklevel=2)
    pieces = [data.compute_features(waveform[start:end], config.features) for start, end in bounds]
    return pieces, [(start / SAMPLE_RATE, end / SAMPLE_RATE) for start, end in bounds.tolist()]


def read_features(paths: list[str], config: SpeechConfig, progress: bool = False) -> list[np.ndarray]:
    """The [T, F] features of every file and every segment of the long ones, in order (read_recording)."""
    return [piece for pieces, _ in read_recordings(paths, config, progress) for piece in pieces]


def read_recordings(paths: list[str], config: SpeechConfig, progress: bool = False) -> list[tuple]:
    from tqdm import tqdm

    bar = tqdm(paths, desc="reading audio", unit="file", disable=not progress, leave=False)
    return [read_recording(path, config) for path in bar]


def compiled_log_probs(model, feature_dim: int):
    """model.log_probs traced once for any batch and length: ([B, T, F], [B]) -> ([B, T', C], [B])."""
    spec = [tf.TensorSpec([None, None, feature_dim], tf.float32), tf.TensorSpec([None], tf.int32)]
    return tf.function(model.log_probs, input_signature=spec)


def batched_log_probs(model, features: list[np.ndarray], batch_size: int, progress: bool = False) -> list[np.ndarray]:
    """Per-utterance [T', C] log-probabilities, in the order of `features`, from zero-padded batches
    of utterances sorted by length (little padding; the model masks it, as in training)."""
    from tqdm import tqdm

    if not features:
        return []
    run = compiled_log_probs(model, features[0].shape[1])
    order = sorted(range(len(features)), key=lambda i: len(features[i]))
    out: list[np.ndarray | None] = [None] * len(features)
    with tqdm(total=len(features), desc="acoustic model", unit="file", disable=not progress, leave=False) as bar:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            lengths = np.array([len(features[i]) for i in rows], np.int32)
            batch = np.zeros((len(rows), lengths.max(), features[rows[0]].shape[1]), np.float32)  # [B, T, F]
            for row, i in enumerate(rows):
                batch[row, : lengths[row]] = features[i]
            log_probs, out_lengths = run(tf.constant(batch), tf.constant(lengths))  # [B, T', C], [B]
            for i, lp, n in zip(rows, log_probs.numpy(), out_lengths.numpy(), strict=True):
                out[i] = lp[:n]
            bar.update(len(rows))
    return out


def transcribe_files(model, lms, fusion, config: SpeechConfig, paths: list[str],
                     progress: bool | None = None) -> list[dict]:
    """Transcripts of audio files by every decoder the run has (beam + LM when it has an LM), one
    dict per file in the given order: {"input": path, "greedy": ..., "beam": ..., "beam_lm": ...}.
    A file longer than max_seconds gets its segments' texts joined by a space, and
    "segments": [{"start": seconds, "end": seconds, "greedy": ..., ...}] (none: no speech found).

    The acoustic model sees batches of config.batch_size files or segments. progress: tqdm bars
    (reading, acoustic model, each decoder); None: on a terminal for PROGRESS_MIN_FILES files or more.
    """
    if progress is None:
        progress = len(paths) >= PROGRESS_MIN_FILES and sys.stderr.isatty()
    recordings = read_recordings(paths, config, progress)
    every_piece = [piece for pieces, _ in recordings for piece in pieces]  # files and segments, in order
    texts = decode_all(batched_log_probs(model, every_piece, config.batch_size, progress), config, lms, fusion,
                       progress=progress)
    results, first = [], 0
    for path, (pieces, spans) in zip(paths, recordings, strict=True):
        mine = {method: t[first : first + len(pieces)] for method, t in texts.items()}  # this file's pieces
        first += len(pieces)
        result = {"input": path, **{method: " ".join(filter(None, t)) for method, t in mine.items()}}
        if spans is not None:
            result["segments"] = [{"start": start, "end": end, **{m: t[i] for m, t in mine.items()}}
                                  for i, (start, end) in enumerate(spans)]
        results.append(result)
    return results
