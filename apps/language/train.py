"""Train, evaluate, fine-tune, score and generate for the language app.

    dlsuite language train                       # -> runs/language/<time>-train/
    dlsuite language train model=mlp output=huffman
    dlsuite language finetune --from runs/language/<run> corpus=text:my.txt
    dlsuite language evaluate --from runs/language/<run>
    dlsuite language predict --from runs/language/<run> "in the beginning" "and god said"
    dlsuite language generate --from runs/language/<run> "and the lord"

`train_and_evaluate(config, run_dir)` is the whole story: vocabulary, n-gram model, neural
model, then test perplexity of each and of their mixture.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dlsuite.apps.commands import run_folder
from dlsuite.apps.language import data, ngrams, report
from dlsuite.apps.language.config import LanguageConfig
from dlsuite.apps.language.model import LanguageModel, build_language_model
from dlsuite.shared.optim import make_optimizer
from dlsuite.shared.runs import atomic_write_json, write_metrics
from dlsuite.shared.training import fit_in_run_dir, load_run_model, save_model_atomic, set_up


# === Exact per-token log-probabilities (natural log), in corpus order ===
def neural_token_log_probs(model: LanguageModel, sentences, ngram=None, batch_size: int = 64) -> np.ndarray:
    """log P(w_t | w_<t) for every word and </s> of every sentence, exactly normalized.

    Shortlist outputs give P(tail | C) for words outside the shortlist; the n-gram supplies
    P(w | C, w in tail) (eq. 12.10), so such a model needs `ngram`.
    """
    out = []
    for inputs, targets in data.ordered_batches(sentences, batch_size):
        hidden = model(inputs)
        if model.settings["output"] == "shortlist":
            tail = ngram.tail_log_probs(inputs, targets, model.vocabulary_output.shortlist_size)
            lp = model.vocabulary_output.log_prob(hidden, targets, tail_log_prob=tail)
        else:
            lp = model.vocabulary_output.log_prob(hidden, targets)
        lp = np.asarray(lp)
        out.extend(lp[row, : len(s) + 1] for row, s in enumerate(sentences[len(out) : len(out) + len(lp)]))
    return np.concatenate(out)


def perplexity(log_probs: np.ndarray) -> float:
    return float(np.exp(-np.mean(log_probs)))


def tune_mixture(neural_valid: np.ndarray, ngram_valid: np.ndarray) -> float:
    """The weight lambda of P = lambda P_neural + (1 - lambda) P_ngram that maximizes validation
    likelihood (a 1-D search over a fine grid: the objective is concave in lambda)."""
    grid = np.linspace(0.0, 1.0, 101)
    scores = [np.mean(np.logaddexp(np.log(max(w, 1e-12)) + neural_valid, np.log(max(1 - w, 1e-12)) + ngram_valid))
              for w in grid]
    return float(grid[int(np.argmax(scores))])


def mix(neural: np.ndarray, ngram: np.ndarray, weight: float) -> np.ndarray:
    return np.logaddexp(np.log(max(weight, 1e-12)) + neural, np.log(max(1 - weight, 1e-12)) + ngram)


# === Building blocks ===
def compile_language_model(model, config: LanguageConfig, steps: int, learning_rate=None):
    model.compile(optimizer=make_optimizer(config, steps, learning_rate), jit_compile=config.jit_compile,
                  steps_per_execution=config.steps_per_execution)


def load_model(source: str | Path) -> LanguageModel:
    return load_run_model(source, "language")


def prepare(config: LanguageConfig, run_dir: Path, vocab=None):
    """Corpus and vocabulary (built, or the given one kept); returns (vocab, ids per split, corpus)."""
    corpus = data.load_text(config)
    atomic_write_json(run_dir / "corpus.json", corpus.summary())
    if vocab is None:
        vocab = data.build_vocabulary(config, corpus, run_dir)
        data.save_subword_counts(vocab, run_dir)
    splits = {name: vocab.encode(getattr(corpus, name)) for name in ("train", "valid", "test")}
    return vocab, splits, corpus


def fit_neural(model, config, splits, batch, run_dir: Path, epochs=None, learning_rate=None) -> dict:
    train_ds = data.sentence_dataset(splits["train"], batch, config.max_length, shuffle=True, seed=config.seed)
    valid_ds = data.sentence_dataset(splits["valid"], batch, config.max_length, shuffle=False)
    steps = (epochs or config.epochs) * max(1, len(splits["train"]) // batch)
    compile_language_model(model, config, steps, learning_rate)
    start = time.perf_counter()
    history = fit_in_run_dir(model, train_ds, valid_ds, epochs or config.epochs, run_dir)
    if model.optimizer.use_ema:
        model.optimizer.finalize_variable_values(model.trainable_variables)
    save_model_atomic(model, run_dir / "model.keras")
    return {"train_seconds": round(time.perf_counter() - start, 1), "epochs_run": len(history.epoch),
            "parameters": int(model.count_params())}


def evaluate_all(config, model, ngram, splits, run_dir: Path, class_ngram=None, trigram=None) -> dict:
    """Test perplexity of the n-gram(s), the neural model and their mixture (weight tuned on valid)."""
    metrics = {}
    if trigram is not None:
        metrics["test_ppl_ngram_3"] = perplexity(trigram.token_log_probs(splits["test"]))
    test_ng = ngram.token_log_probs(splits["test"])
    metrics[f"test_ppl_ngram_{ngram.order}"] = perplexity(test_ng)
    if class_ngram is not None:
        metrics.update(ngrams.evaluate_class_mixture(class_ngram, ngram, splits))
    if model is None:
        return metrics
    test_nn = neural_token_log_probs(model, splits["test"], ngram)
    metrics[f"test_ppl_{config.model}_{config.output}"] = perplexity(test_nn)
    if config.mixture:
        valid_nn = neural_token_log_probs(model, splits["valid"], ngram)
        weight = tune_mixture(valid_nn, ngram.token_log_probs(splits["valid"]))
        metrics["mixture_weight_neural"] = weight
        metrics["test_ppl_mixture"] = perplexity(mix(test_nn, test_ng, weight))
        report.perplexity_by_length_figure(splits["test"], {"n-gram": test_ng, "neural": test_nn,
                                                           "mixture": mix(test_nn, test_ng, weight)}, run_dir)
    return metrics


# === Commands ===
def train_and_evaluate(config: LanguageConfig, run_dir: Path) -> dict:
    strategy, batch = set_up(config)
    vocab, splits, _ = prepare(config, run_dir)
    start = time.perf_counter()
    ngram = ngrams.build_and_save(config, vocab, splits["train"], run_dir)
    metrics = {"vocabulary_size": len(vocab), "ngram_seconds": round(time.perf_counter() - start, 2), **ngram.size()}
    class_ngram = ngrams.build_class_model(config, vocab, splits, run_dir) if config.class_ngram_classes else None
    trigram = ngrams.build_trigram(config, vocab, splits["train"]) if config.ngram_order > 3 else None
    with strategy.scope():
        model = build_language_model(config, len(vocab), vocab.counts)
    metrics.update(fit_neural(model, config, splits, batch, run_dir))
    metrics.update(evaluate_all(config, model, ngram, splits, run_dir, class_ngram, trigram))
    report.embedding_map(model, vocab, run_dir)
    report.save_samples(model, vocab, config, run_dir)
    write_metrics(run_dir, metrics)
    return metrics


def finetune(config: LanguageConfig, run_dir: Path, source: str | Path) -> dict:
    """Continues training a run's model on `config.corpus`, keeping its vocabulary (new words -> <unk>)
    at learning_rate (usually lower than the original); the n-gram is rebuilt on the new text."""
    source_dir = run_folder(source)
    strategy, batch = set_up(config)
    vocab, splits, _ = prepare(config, run_dir, vocab=data.load_vocabulary(source_dir))
    copy_vocabulary(source_dir, run_dir)
    ngram = ngrams.build_and_save(config, vocab, splits["train"], run_dir)
    with strategy.scope():
        model = load_model(source)
    before = perplexity(neural_token_log_probs(model, splits["test"], ngram))
    metrics = fit_neural(model, config, splits, batch, run_dir)
    metrics.update(evaluate_all(config, model, ngram, splits, run_dir))
    metrics.update(finetuned_from=str(source), test_ppl_before_finetune=before)
    write_metrics(run_dir, metrics)
    return metrics


def copy_vocabulary(source_dir: Path, run_dir: Path) -> None:
    import shutil

    for name in ("vocabulary.tsv", "subwords.model", "subword_counts.npy"):
        if (source_dir / name).is_file():
            shutil.copy2(source_dir / name, run_dir / name)


def evaluate(config: LanguageConfig, run_dir: Path, source: str | Path) -> dict:
    """Test perplexities of a trained run (its model, n-gram and vocabulary) on `config.corpus`."""
    source_dir = run_folder(source)
    set_up(config)
    vocab, splits, _ = prepare(config, run_dir, vocab=data.load_vocabulary(source_dir))
    ngram = ngrams.load(source_dir, vocab.tokens)
    metrics = evaluate_all(config, load_model(source), ngram, splits, run_dir)
    metrics["model"] = str(source)
    write_metrics(run_dir, metrics)
    return metrics


def score_sentences(source: str | Path, sentences: list[str]) -> list[dict]:
    """Per-token log-probabilities (natural log) and perplexity of given sentences."""
    from dlsuite.pipelines.text import normalize

    source_dir = run_folder(source)
    vocab, model = data.load_vocabulary(source_dir), load_model(source)
    ngram = ngrams.load(source_dir, vocab.tokens)
    normalized = [normalize(s) for s in sentences]
    ids = vocab.encode(normalized)
    log_probs = neural_token_log_probs(model, ids, ngram)
    results, start = [], 0
    for text, sentence in zip(normalized, ids, strict=False):
        lp = log_probs[start : start + len(sentence) + 1]
        start += len(sentence) + 1
        tokens = [vocab.tokens[i] for i in sentence] + ["</s>"]
        results.append({"sentence": text, "tokens": tokens, "log_probs": [round(float(x), 4) for x in lp],
                        "log_prob": float(lp.sum()), "perplexity": perplexity(lp)})
    return results


def generate(source: str | Path, prompts: list[str], config: LanguageConfig) -> list[str]:
    source_dir = run_folder(source)
    vocab, model = data.load_vocabulary(source_dir), load_model(source)
    return [report.sample_text(model, vocab, prompt, config, seed=config.seed + i) for i, prompt in enumerate(prompts)]
