"""Using a trained language model: exact per-token log-probabilities, test perplexities of the
n-gram(s), the neural model and their mixture, scoring sentences and generating text.

    dlsuite language evaluate --from runs/language/<run>
    dlsuite language predict --from runs/language/<run> "in the beginning" "and god said"
    dlsuite language generate --from runs/language/<run> "and the lord"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlsuite.apps.language import data, ngrams, report
from dlsuite.apps.language.mixture import (
    mix,
    mix_by_bucket,
    perplexity,
    tune_mixture,
    tune_mixture_by_bucket,
)
from dlsuite.apps.language.model import LanguageModel
from dlsuite.pipelines.text import normalize
from dlsuite.shared.layers.vocabulary_outputs import RankingSoftmax


def neural_token_log_probs(model: LanguageModel, sentences, ngram=None, batch_size: int = 64) -> np.ndarray:
    """log P(w_t | w_<t) for every word and </s> of every sentence, exactly normalized.

    Shortlist outputs give P(tail | C) for words outside the shortlist; the n-gram supplies
    P(w | C, w in tail) (eq. 12.10), so such a model needs `ngram`.
    """
    shortlist_size = getattr(model.vocabulary_output, "shortlist_size", 0)
    out = []
    for inputs, targets in data.ordered_batches(sentences, batch_size):
        hidden = model(inputs)
        if shortlist_size:
            tail = ngram.tail_log_probs(inputs, targets, shortlist_size)
            lp = model.vocabulary_output.log_prob(hidden, targets, tail_log_prob=tail)
        else:
            lp = model.vocabulary_output.log_prob(hidden, targets)
        lp = np.asarray(lp)
        out.extend(lp[row, : len(s) + 1] for row, s in enumerate(sentences[len(out) : len(out) + len(lp)]))
    return np.concatenate(out)


def hidden_states(model: LanguageModel, sentences, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The hidden state before every word and </s> of every sentence, [n, H], and that token, [n]."""
    hidden, targets = [], []
    for start, (inputs, batch_targets) in zip(range(0, len(sentences), batch_size),
                                              data.ordered_batches(sentences, batch_size), strict=True):
        lengths = np.array([len(s) + 1 for s in sentences[start : start + batch_size]])  # words and </s>
        real = np.arange(inputs.shape[1])[None, :] < lengths[:, None]  # [B, T], no padding
        hidden.append(np.asarray(model(inputs))[real])
        targets.append(batch_targets[real])
    return np.concatenate(hidden), np.concatenate(targets)


def uncalibrated_ranking_figures(model: LanguageModel, test_sentences, name: str) -> dict:
    """A ranking output's perplexity (`name`) is that of its calibrated softmax (RankingSoftmax);
    this adds the plain softmax of its scores (beta = 1, gamma = 0) and says so."""
    output = model.vocabulary_output
    calibration = output.calibration
    output.set_calibration()
    try:
        uncalibrated = perplexity(neural_token_log_probs(model, test_sentences))
    finally:
        output.set_calibration(**calibration)
    note = (f"{name}: exactly normalized softmax(beta a + gamma log unigram) of the ranking scores a, "
            f"(beta, gamma) = ranking_calibration fitted on the validation split; "
            f"{name}_uncalibrated: softmax(a)")
    return {f"{name}_uncalibrated": uncalibrated, "ranking_calibration": calibration, "ranking_perplexity_note": note}


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
    name = f"test_ppl_{config.model}_{config.output}"
    metrics[name] = perplexity(test_nn)
    if isinstance(model.vocabulary_output, RankingSoftmax):
        metrics |= uncalibrated_ranking_figures(model, splits["test"], name)
    if config.mixture:
        mixed, mixture_metrics = neural_ngram_mixture(model, ngram, splits, test_nn, test_ng)
        metrics |= mixture_metrics
        report.perplexity_by_length_figure(splits["test"], {"n-gram": test_ng, "neural": test_nn, "mixture": mixed},
                                           run_dir)
    return metrics


def neural_ngram_mixture(model, ngram, splits, test_nn, test_ng) -> tuple[np.ndarray, dict]:
    """The mixture's test log-probs and figures: one neural weight tuned on the validation split
    (`test_ppl_mixture_single_weight`), and one weight per number of history words the n-gram
    knows (`test_ppl_mixture`, the app's mixture: where the n-gram has seen the last N-1 words it
    is the better model, where it backs off to a short history the neural model is)."""
    valid_nn, valid_ng = neural_token_log_probs(model, splits["valid"], ngram), ngram.token_log_probs(splits["valid"])
    weight = tune_mixture(valid_nn, valid_ng)
    weights = tune_mixture_by_bucket(valid_nn, valid_ng, ngram.history_orders(splits["valid"]), overall=weight)
    mixed = mix_by_bucket(test_nn, test_ng, ngram.history_orders(splits["test"]), weights)
    return mixed, {"mixture_weight_neural": weight, "test_ppl_mixture_single_weight": perplexity(mix(test_nn, test_ng, weight)),
                   "mixture_weights_by_history_words": {str(k): v for k, v in weights.items()},
                   "test_ppl_mixture": perplexity(mixed)}


def score_sentences(model, vocab, ngram, sentences: list[str]) -> list[dict]:
    """Per-token log-probabilities (natural log) and perplexity of given sentences."""
    normalized = [normalize(s) for s in sentences]
    ids = vocab.encode(normalized)
    log_probs = neural_token_log_probs(model, ids, ngram)
    results, start = [], 0
    for raw, text, sentence in zip(sentences, normalized, ids, strict=True):
        lp = log_probs[start : start + len(sentence) + 1]
        start += len(sentence) + 1
        tokens = [vocab.tokens[i] for i in sentence] + ["</s>"]
        results.append({"input": raw, "sentence": text, "tokens": tokens, "log_probs": [round(float(x), 4) for x in lp],
                        "log_prob": float(lp.sum()), "perplexity": perplexity(lp)})
    return results


def generate(model, vocab, prompts: list[str], config) -> list[dict]:
    """A sampled continuation of each prompt (temperature, top-k: see report.sample_text)."""
    return [{"input": prompt, "text": report.sample_text(model, vocab, prompt, config, seed=config.seed + i)}
            for i, prompt in enumerate(prompts)]
