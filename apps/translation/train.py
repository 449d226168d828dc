"""Train, evaluate, fine-tune and translate for the translation app.

    dlsuite translation train                               # -> runs/translation/<time>-train/
    dlsuite translation train compare_baseline=true         # + the no-attention model, BLEU by length
    dlsuite translation train target_lang=fr                # the same commands for en-fr
    dlsuite translation finetune --from runs/translation/<run>   # the held-out accounting domain
    dlsuite translation evaluate --from runs/translation/<run>
    dlsuite translation predict --from runs/translation/<run> "Open the file" sentences.txt

`train_and_evaluate(config, run_dir)` is the whole story: corpus, sentencepiece vocabulary,
teacher-forced training, then test BLEU/chrF (sacrebleu) of greedy and beam search, BLEU by
source length, sample translations and attention alignments.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from dlsuite.apps.commands import run_folder
from dlsuite.apps.translation import data, decode, report
from dlsuite.apps.translation.config import TranslationConfig
from dlsuite.apps.translation.corpus import TranslationDataError
from dlsuite.apps.translation.model import build_translator, compile_translator
from dlsuite.shared.optim import make_optimizer
from dlsuite.shared.runs import atomic_write_json, write_metrics
from dlsuite.shared.training import fit_in_run_dir, load_run_model, save_model_atomic, set_up

ALIGNMENT_EXAMPLES = 4


# === Translating ===
def _searcher(model, beam_width: int, config: TranslationConfig):
    """beam_search traced once per model and setting (tf.function: a graph, not Python, per step)."""
    key = (beam_width, config.length_penalty, config.max_length_ratio)
    cache = model.__dict__.setdefault("_dlsuite_searchers", {})
    if key not in cache:
        cache[key] = tf.function(
            lambda source: decode.beam_search(model, source, beam_width, config.length_penalty, config.max_length_ratio),
            input_signature=[tf.TensorSpec([None, None], tf.int32)])
    return cache[key]


def translate_ids(model, sources: list[np.ndarray], config: TranslationConfig, beam_width: int,
                  batch_size: int = 64) -> list[dict]:
    """Beam search over id sentences, batched by length; per sentence: tokens (up to </s>),
    score and attention [len(tokens), len(source)]. An empty source gives an empty result."""
    search = _searcher(model, beam_width, config)
    results: list[dict] = [{"tokens": np.zeros(0, np.int32), "score": 0.0, "attention": np.zeros((0, 0))}] * len(sources)
    order = [i for i in sorted(range(len(sources)), key=lambda i: len(sources[i])) if len(sources[i])]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out = {k: v.numpy() for k, v in search(tf.constant(data.padded([sources[i] for i in chunk]))).items()}
        for row, i in enumerate(chunk):
            n = int(out["lengths"][row])
            results[i] = {"tokens": out["tokens"][row, :n], "score": float(out["scores"][row]),
                          "attention": out["attention"][row, :n, : len(sources[i])]}
    return results


def check_inputs(sentences: list[str], vocab: data.Vocabulary, config: TranslationConfig) -> list[np.ndarray]:
    """Ids of the sentences; too long ones are an error naming the sentence (empty ones translate to "")."""
    ids = vocab.encode_source(sentences)
    for i, seq in enumerate(ids):
        if len(seq) > config.max_input_tokens:
            raise TranslationDataError(
                f"input {i + 1} has {len(seq)} subword tokens, more than max_input_tokens={config.max_input_tokens}: "
                f"{sentences[i][:60]!r}... Split the text into sentences first.")
    return ids


def translate(model, vocab: data.Vocabulary, sentences: list[str], config: TranslationConfig,
              beam_width: int | None = None) -> list[str]:
    ids = check_inputs(sentences, vocab, config)
    width = config.beam_width if beam_width is None else beam_width
    return [vocab.decode_target(r["tokens"]) for r in translate_ids(model, ids, config, width)]


# === Scoring ===
def evaluate_pairs(model, vocab: data.Vocabulary, pairs, config: TranslationConfig, run_dir: Path,
                   prefix: str = "test") -> tuple[dict, dict]:
    """BLEU/chrF of greedy and beam search on `pairs`; samples, BLEU by source length and attention
    alignments in the run folder. Returns (metrics, per-bucket scores by decoder)."""
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    ids = check_inputs(sources, vocab, config)
    hypotheses, by_length, metrics = {}, {}, {}
    decoders = {"greedy": 1, "beam": config.beam_width} if config.beam_width > 1 else {"greedy": 1}
    for name, width in decoders.items():
        start = time.perf_counter()
        results = translate_ids(model, ids, config, width)
        seconds = time.perf_counter() - start
        hypotheses[name] = [vocab.decode_target(r["tokens"]) for r in results]
        scores = report.corpus_scores(hypotheses[name], references)
        metrics.update({f"{prefix}_bleu_{name}": round(scores["bleu"], 2), f"{prefix}_chrf_{name}": round(scores["chrf"], 2),
                        f"{prefix}_sentences_per_second_{name}": round(len(pairs) / seconds, 1)})
        by_length[name] = report.scores_by_length(sources, hypotheses[name], references)
    report.write_samples(run_dir / f"{prefix}_translations.tsv", sources, references, hypotheses)
    report.write_scores_table(run_dir / f"{prefix}_bleu_by_length.tsv", by_length)
    report.length_bucket_figure(by_length, run_dir, name=f"{prefix}_bleu_by_source_length")
    if model.use_attention:  # the last decoder's results (beam search when there is one)
        save_alignment_figures(vocab, ids, results, run_dir, f"{prefix}_attention")
    return metrics, by_length


def save_alignment_figures(vocab, ids: list[np.ndarray], results: list[dict], run_dir: Path, name: str) -> None:
    """Source x target attention heat maps (like Bahdanau et al.'s figure 3) for a few mid-length
    sentences, from search results already computed."""
    lengths = [len(s) for s in ids]
    chosen = [i for i in np.argsort(lengths)[len(ids) // 2 :] if 6 <= lengths[i] <= 20][:ALIGNMENT_EXAMPLES]
    examples = [(vocab.source_pieces(ids[i]), vocab.target_pieces(results[i]["tokens"]), results[i]["attention"])
                for i in chosen]
    report.save_alignments(examples, run_dir, name=name)


# === Training ===
def load_model(source: str | Path):
    return load_run_model(source, "translation")


def fit(model, config: TranslationConfig, train: data.EncodedPairs, valid: data.EncodedPairs, batch: int,
        run_dir: Path) -> dict:
    """Teacher-forced training in the run folder; returns time, epochs and target tokens/s."""
    train_ds = data.make_dataset(train, batch, shuffle=True, seed=config.seed)
    compile_translator(model, make_optimizer(config, config.epochs * int(train_ds.cardinality())))
    start = time.perf_counter()
    history = fit_in_run_dir(model, train_ds, data.make_dataset(valid, batch), config.epochs, run_dir)
    if not history.history.get("loss"):
        raise RuntimeError(f"Training ran no steps on {len(train)} pairs; check the data split.")
    save_model_atomic(model, run_dir / "model.keras")
    seconds = time.perf_counter() - start
    target_tokens = sum(len(t) + 1 for t in train.targets) * len(history.epoch)
    return {"train_seconds": round(seconds, 1), "epochs_run": len(history.epoch),
            "parameters": int(model.count_params()), "train_target_tokens_per_second": round(target_tokens / seconds, 1),
            "valid_loss": round(float(history.history["val_loss"][-1]), 4)}


def train_model(config: TranslationConfig, corpus, vocab, run_dir: Path) -> tuple[dict, dict]:
    """One model trained and scored in `run_dir` (its own checkpoints, TensorBoard logs, plots)."""
    strategy, batch = set_up(config)
    train = data.encode_pairs(vocab, corpus.train, config.max_tokens, "train")
    valid = data.encode_pairs(vocab, corpus.valid, config.max_tokens, "valid")
    with strategy.scope():
        model = build_translator(config, vocab)
    metrics = fit(model, config, train, valid, batch, run_dir)
    scores, by_length = evaluate_pairs(model, vocab, corpus.test, config, run_dir)
    return metrics | scores, by_length


def train_and_evaluate(config: TranslationConfig, run_dir: Path) -> dict:
    corpus = data.load_corpus(config)
    atomic_write_json(run_dir / "corpus.json", corpus.summary() | {"extra": corpus.extra})
    vocab = data.build_vocabulary(config, corpus, run_dir)
    metrics, by_length = train_model(config, corpus, vocab, run_dir)
    if config.compare_baseline and config.attention:
        metrics |= compare_with_baseline(config, corpus, vocab, run_dir, by_length)
    write_metrics(run_dir, metrics)
    return metrics


def compare_with_baseline(config, corpus, vocab, run_dir: Path, by_length: dict) -> dict:
    """Trains the fixed-context model in <run>/baseline and plots both models' BLEU by source length."""
    baseline_dir = run_dir / "baseline"
    baseline_dir.mkdir(exist_ok=True)
    data.copy_vocabulary(run_dir, baseline_dir)
    metrics, baseline_by_length = train_model(dataclasses.replace(config, attention=False), corpus, vocab, baseline_dir)
    write_metrics(baseline_dir, metrics)
    decoder = "beam" if "beam" in by_length else "greedy"
    both = {f"attention {decoder}": by_length[decoder], f"no attention {decoder}": baseline_by_length[decoder]}
    report.write_scores_table(run_dir / "test_bleu_by_length_vs_baseline.tsv", both)
    report.length_bucket_figure(both, run_dir, name="test_bleu_by_source_length_vs_baseline")
    return {f"baseline_{name}": value for name, value in metrics.items() if name.startswith("test_")}


# === Commands on a trained run ===
def run_config(source_dir: Path) -> TranslationConfig:
    """The resolved config a run folder was made with (decoding settings, limits)."""
    from dlsuite.shared.config import load_config

    path = source_dir / "config.yaml"
    return load_config(TranslationConfig(), path) if path.is_file() else TranslationConfig()


def evaluate(config: TranslationConfig, run_dir: Path, source: str | Path) -> dict:
    """Test BLEU/chrF of a trained run on `config.data` (its vocabulary and model, this config's decoding)."""
    set_up(config)
    corpus = data.load_corpus(config)
    vocab, model = data.load_vocabulary(run_folder(source)), load_model(source)
    metrics, _ = evaluate_pairs(model, vocab, corpus.test, config, run_dir)
    metrics["model"] = str(source)
    write_metrics(run_dir, metrics)
    return metrics


def finetune(config: TranslationConfig, run_dir: Path, source: str | Path) -> dict:
    """Continues training a trained model on a new domain's pairs: the embedded corpus's held-out
    accounting/spreadsheet packages (data=gettext), or the pairs in `config.data`. Test BLEU on that
    domain before and after; the vocabulary stays the trained one (ids must not change)."""
    source_dir = run_folder(source)
    strategy, batch = set_up(config)
    domain = data.load_domain_corpus(config)
    atomic_write_json(run_dir / "corpus.json", domain.summary())
    vocab = data.load_vocabulary(source_dir)
    data.copy_vocabulary(source_dir, run_dir)
    with strategy.scope():
        model = load_model(source)
    before, _ = evaluate_pairs(model, vocab, domain.test, config, run_dir, prefix="before")
    train = data.encode_pairs(vocab, domain.train, config.max_tokens, "finetune train")
    valid = data.encode_pairs(vocab, domain.valid, config.max_tokens, "finetune valid")
    metrics = fit(model, config, train, valid, batch, run_dir)
    after, _ = evaluate_pairs(model, vocab, domain.test, config, run_dir)
    metrics |= before | after | {"finetuned_from": str(source), "domain": domain.name, "domain_train_pairs": len(train)}
    write_metrics(run_dir, metrics)
    return metrics


def read_inputs(inputs: list[str]) -> list[str]:
    """predict's inputs: a text file gives one sentence per line; anything else is a sentence."""
    sentences = []
    for item in inputs:
        path = Path(item)
        sentences.extend(path.read_text(encoding="utf-8").splitlines() if path.is_file() else [item])
    return sentences


def translate_inputs(source: str | Path, inputs: list[str]) -> list[dict]:
    source_dir = run_folder(source)
    config = run_config(source_dir)
    model, vocab = load_model(source), data.load_vocabulary(source_dir)
    sentences = read_inputs(inputs)
    return [{"source": s, "translation": t} for s, t in zip(sentences, translate(model, vocab, sentences, config), strict=True)]
