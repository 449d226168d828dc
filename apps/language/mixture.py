"""Perplexity and the two-model mixture P = lambda P_a + (1 - lambda) P_b of the language app
(neural + n-gram, class + word n-gram), on per-token natural-log probabilities."""

from __future__ import annotations

import numpy as np


def perplexity(log_probs: np.ndarray) -> float:
    """exp of the mean negative log-likelihood per token."""
    return float(np.exp(-np.mean(log_probs)))


def mix(log_probs_a: np.ndarray, log_probs_b: np.ndarray, weight: float) -> np.ndarray:
    """log(weight P_a + (1 - weight) P_b), per token, computed in log space."""
    return np.logaddexp(np.log(max(weight, 1e-12)) + log_probs_a, np.log(max(1 - weight, 1e-12)) + log_probs_b)


def tune_mixture(valid_a: np.ndarray, valid_b: np.ndarray) -> float:
    """The weight of model a that maximizes validation likelihood (a 1-D search over a fine grid:
    the objective is concave in the weight)."""
    grid = np.linspace(0.0, 1.0, 101)
    scores = [np.mean(mix(valid_a, valid_b, w)) for w in grid]
    return float(grid[int(np.argmax(scores))])
