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
from dlsuite.apps.language.mixture import mix, perplexity, tune_mixture
from dlsuite.apps.language.model import LanguageModel
from dlsuite.pipelines.text import normalize


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
