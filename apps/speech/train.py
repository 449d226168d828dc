"""Train, evaluate, fine-tune and transcribe for the speech app.

    dlsuite speech train                        # -> runs/speech/<time>-train/
    dlsuite speech train data=folder:my_audio/ lm=my.arpa
    dlsuite speech finetune --from runs/speech/<run>          # adapt to the held-out voices
    dlsuite speech evaluate --from runs/speech/<run>
    dlsuite speech predict --from runs/speech/<run> a.wav b.flac

`train_and_evaluate(config, run_dir)` is the whole story: corpus, features, CTC training, then
test CER/WER of greedy decoding, beam search, and beam search fused with an n-gram LM whose
weights (alpha, beta) are tuned on the validation split.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import jiwer
import numpy as np

from dlsuite.apps.commands import run_folder
from dlsuite.apps.speech import corpus, data, decode, report
from dlsuite.apps.speech.config import SpeechConfig
from dlsuite.apps.speech.model import build_speech_model
from dlsuite.shared.ngram import build_ngram_model, read_arpa, write_arpa
from dlsuite.shared.optim import make_optimizer
from dlsuite.shared.runs import atomic_write_json, write_metrics
from dlsuite.shared.training import fit_in_run_dir, load_run_model, save_model_atomic, set_up

# The fusion grid (25 points). On the quick run the best beta was 3.5, past the decoder's default grid.
FUSION_ALPHAS = (0.25, 0.5, 0.75, 1.0, 1.5)
FUSION_BETAS = (0.5, 1.5, 2.5, 3.5, 5.0)


# === Language model for fusion ===
def lm_sentences(config: SpeechConfig, splits: corpus.SpeechCorpus) -> list[str]:
    """LM text: the training transcripts, plus (embedded corpus) the KJV's training chapters, which
    share no verse with the valid/test sentences."""
    sentences = [u.transcript for u in splits.train]
    if config.data == "espeak" and config.lm_text == "kjv":
        from dlsuite.pipelines.text import load_kjv

        for verse in load_kjv().train:
            try:
                sentences.append(corpus.normalize_transcript(verse))
            except corpus.SpeechDataError:
                continue  # a verse with characters we cannot spell (none in the KJV, but be safe)
    return sentences


def build_lm(config: SpeechConfig, splits: corpus.SpeechCorpus, run_dir: Path) -> decode.WordLM | None:
    """The fusion LM: none, a given ARPA file (KenLM/SRILM/the language app's ngram.arpa), or a
    Kneser-Ney n-gram built here; copied/written to <run>/lm.arpa so later commands reuse it."""
    if config.lm == "none":
        return None
    if config.lm != "train":
        path = Path(config.lm)
        path = path / "ngram.arpa" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"lm='{config.lm}': no ARPA file there. Give a .arpa file, a language run folder, 'train' or 'none'.")
        shutil.copy2(path, run_dir / "lm.arpa")
        return decode.WordLM(read_arpa(path))
    sentences = lm_sentences(config, splits)
    words = sorted({w for s in sentences for w in s.split()})
    tokens = ["<unk>", "<s>", "</s>", *words]
    ids = {w: i for i, w in enumerate(tokens)}
    model = build_ngram_model([np.array([ids[w] for w in s.split()]) for s in sentences], tokens, config.lm_order)
    write_arpa(model, run_dir / "lm.arpa")
    return decode.WordLM(model)


def load_lm(run_dir: Path) -> decode.WordLM | None:
    path = Path(run_dir) / "lm.arpa"
    return decode.WordLM(read_arpa(path)) if path.is_file() else None


# === Recognition and scoring ===
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
    results = {"greedy": decode.decode_many(log_probs, corpus.ALPHABET, "greedy"),
               "beam": decode.decode_many(log_probs, corpus.ALPHABET, "beam", beam_width=config.beam_width, beta=0.0)}
    if lm is not None:
        results["beam_lm"] = decode.decode_many(log_probs, corpus.ALPHABET, "beam_lm", beam_width=config.beam_width,
                                                lm=lm, alpha=fusion["alpha"], beta=fusion["beta"], lexicon=config.lm_lexicon)
    return results


def tune(model, examples: data.Examples, config: SpeechConfig, lm) -> dict | None:
    """alpha, beta of the fused score on the validation split (grid search on WER)."""
    if lm is None:
        return None
    references = [u.transcript for u in examples.utterances]
    result = decode.tune_fusion(frame_log_probs(model, examples), references, lm, corpus.ALPHABET,
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


# === Building blocks ===
def compile_speech_model(model, config: SpeechConfig, steps: int, learning_rate=None):
    model.compile(optimizer=make_optimizer(config, steps, learning_rate), jit_compile=config.jit_compile,
                  steps_per_execution=config.steps_per_execution)


def load_model(source: str | Path):
    return load_run_model(source, "speech")


def fit(model, config: SpeechConfig, train: data.Examples, valid: data.Examples, batch: int, run_dir: Path,
        learning_rate=None) -> dict:
    train_ds = data.make_dataset(train, batch, shuffle=True, seed=config.seed)
    valid_ds = data.make_dataset(valid, batch)
    compile_speech_model(model, config, config.epochs * max(1, len(train) // batch), learning_rate)
    start = time.perf_counter()
    history = fit_in_run_dir(model, train_ds, valid_ds, config.epochs, run_dir,
                             extra_callbacks=[report.AudioSamples(valid, run_dir)])
    if not history.history.get("loss"):
        raise RuntimeError(f"Training ran no steps on {len(train)} utterances; check the data split.")
    save_model_atomic(model, run_dir / "model.keras")
    seconds = time.perf_counter() - start
    audio_seconds = sum(u.duration for u in train.utterances) * len(history.epoch)
    return {"train_seconds": round(seconds, 1), "epochs_run": len(history.epoch), "parameters": int(model.count_params()),
            "train_audio_seconds_per_second": round(audio_seconds / seconds, 1)}


def prepare(config: SpeechConfig, run_dir: Path, names=("train", "valid", "test")):
    """The corpus and the features of the named splits (evaluate needs no training features)."""
    splits = data.load_splits(config)
    atomic_write_json(run_dir / "corpus.json", splits.summary())
    examples = {name: data.examples(getattr(splits, name), config, name) for name in names}
    return splits, examples


# === Commands ===
def train_and_evaluate(config: SpeechConfig, run_dir: Path) -> dict:
    strategy, batch = set_up(config)
    splits, examples = prepare(config, run_dir)
    lm = build_lm(config, splits, run_dir)
    with strategy.scope():
        model = build_speech_model(config, examples["train"].features[0].shape[1], len(corpus.ALPHABET))
    metrics = fit(model, config, examples["train"], examples["valid"], batch, run_dir)
    fusion = tune(model, examples["valid"], config, lm)
    if fusion:
        atomic_write_json(run_dir / "fusion.json", fusion)
        metrics.update(lm_alpha=fusion["alpha"], lm_beta=fusion["beta"])
    metrics.update(evaluate_split(model, examples["test"], config, lm, fusion, run_dir))
    write_metrics(run_dir, metrics)
    return metrics


def run_config(source_dir: Path) -> SpeechConfig:
    """The resolved config a run folder was made with (features and limits must match at predict time)."""
    from dlsuite.shared.config import load_config

    path = source_dir / "config.yaml"
    return load_config(SpeechConfig(), path) if path.is_file() else SpeechConfig()


def read_fusion(source_dir: Path) -> dict | None:
    import json

    path = source_dir / "fusion.json"
    return json.loads(path.read_text()) if path.is_file() else None


def evaluate(config: SpeechConfig, run_dir: Path, source: str | Path) -> dict:
    """Test CER/WER of a trained run (its model and LM) on `config.data`; alpha and beta are
    tuned again on that data's validation split (with this config's lm_lexicon and beam_width)."""
    source_dir = run_folder(source)
    set_up(config)
    _, examples = prepare(config, run_dir, ("valid", "test"))
    lm, model = load_lm(source_dir), load_model(source)
    fusion = tune(model, examples["valid"], config, lm)
    if fusion:
        atomic_write_json(run_dir / "fusion.json", fusion)
    metrics = evaluate_split(model, examples["test"], config, lm, fusion, run_dir)
    metrics["model"] = str(source)
    write_metrics(run_dir, metrics)
    return metrics


def finetune(config: SpeechConfig, run_dir: Path, source: str | Path) -> dict:
    """Adapts a trained model to new voices. Embedded corpus: `adapt_minutes` of the held-out test
    voices (speaking training sentences, never the test ones); test WER before and after. User
    data: continues training on its training split."""
    source_dir = run_folder(source)
    strategy, batch = set_up(config)
    splits, examples = prepare(config, run_dir, ("valid", "test"))
    adapt = adaptation_set(splits, config)
    lm, fusion = load_lm(source_dir), read_fusion(source_dir)
    for name in ("lm.arpa", "fusion.json"):
        if (source_dir / name).is_file():
            shutil.copy2(source_dir / name, run_dir / name)
    with strategy.scope():
        model = load_model(source)
    before = evaluate_split(model, examples["test"], config, lm, fusion, run_dir, prefix="before")
    metrics = fit(model, config, adapt, examples["valid"], batch, run_dir)
    metrics.update(before)
    metrics.update(evaluate_split(model, examples["test"], config, lm, fusion, run_dir))
    metrics.update(finetuned_from=str(source), adapt_utterances=len(adapt),
                   adapt_minutes=round(sum(u.duration for u in adapt.utterances) / 60, 2))
    write_metrics(run_dir, metrics)
    return metrics


def adaptation_set(splits: corpus.SpeechCorpus, config: SpeechConfig) -> data.Examples:
    if "adapt" not in splits.extra:
        return data.examples(splits.train, config, "train")
    chosen, total = [], 0.0
    for utt in splits.extra["adapt"]:
        if total >= config.adapt_minutes * 60:
            break
        chosen.append(utt)
        total += utt.duration
    return data.examples(chosen, config, "adapt")


def transcribe_files(source: str | Path, paths: list[str]) -> list[dict]:
    """Transcripts of audio files with a trained run (beam + LM when the run has one)."""
    source_dir = run_folder(source)
    config = run_config(source_dir)
    model, lm, fusion = load_model(source), load_lm(source_dir), read_fusion(source_dir)
    results = []
    for path in paths:
        values = data.compute_features(corpus.load_audio(path, max_seconds=config.max_seconds), config.features)
        texts = decode_all([model.utterance_log_probs(values)], config, lm, fusion)
        results.append({"file": path, **{m: t[0] for m, t in texts.items()}})
    return results
