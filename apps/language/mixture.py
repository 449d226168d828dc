"""Perplexity and the two-model mixture P = lambda P_a + (1 - lambda) P_b of the language app
(neural + n-gram, class + word n-gram), on per-token natural-log probabilities."""

from __future__ import annotations

import numpy as np


def perplexity(log_probs: np.ndarray) -> float:
    """exp of the mean negative log-likelihood per token."""
    return float(np.exp(-np.mean(log_probs)))


def mix(log_probs_a: np.ndarray, log_probs_b: np.ndarray, weight) -> np.ndarray:
    """log(weight P_a + (1 - weight) P_b), per token, computed in log space; `weight` is one number
    or one per token."""
    weight = np.asarray(weight, np.float64)
    return np.logaddexp(np.log(np.maximum(weight, 1e-12)) + log_probs_a,
                        np.log(np.maximum(1 - weight, 1e-12)) + log_probs_b)


def tune_mixture(valid_a: np.ndarray, valid_b: np.ndarray) -> float:
    """The weight of model a that maximizes validation likelihood (a 1-D search over a fine grid:
    the objective is concave in the weight)."""
    grid = np.linspace(0.0, 1.0, 101)
    scores = [np.mean(mix(valid_a, valid_b, w)) for w in grid]
    return float(grid[int(np.argmax(scores))])


def tune_mixture_by_bucket(valid_a: np.ndarray, valid_b: np.ndarray, buckets: np.ndarray,
                           min_tokens: int = 200, overall: float | None = None) -> dict[int, float]:
    """One weight of model a per bucket of a history feature (here: how many history words the
    n-gram knows), each maximizing validation likelihood on its own tokens: the likelihood is a sum
    over buckets, so the weights are independent 1-D searches. Buckets with fewer than
    `min_tokens` validation tokens get the global weight (`overall`, tuned here if not given). Deleted interpolation (Jelinek & Mercer
    1980) ties weights to history buckets the same way: trust the n-gram where it has seen the
    history, the neural model where it has not."""
    overall = tune_mixture(valid_a, valid_b) if overall is None else overall
    weights = {}
    for bucket in np.unique(buckets):
        chosen = buckets == bucket
        weights[int(bucket)] = tune_mixture(valid_a[chosen], valid_b[chosen]) if chosen.sum() >= min_tokens else overall
    return weights


def mix_by_bucket(log_probs_a: np.ndarray, log_probs_b: np.ndarray, buckets: np.ndarray,
                  weights: dict[int, float]) -> np.ndarray:
    """`mix` with the weight of each token's bucket (buckets never seen in tuning: their mean)."""
    fallback = float(np.mean(list(weights.values())))
    return mix(log_probs_a, log_probs_b, [weights.get(int(b), fallback) for b in buckets])
