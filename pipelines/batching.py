"""Length bucketing shared by the sequence apps (speech, translation): batches of similar length
waste little compute on padding."""

from __future__ import annotations

import numpy as np


def bucket_boundaries(lengths, buckets: int = 6) -> list[int]:
    """Length quantiles for `tf.data.Dataset.bucket_by_sequence_length`: each bucket holds about the
    same number of examples."""
    quantiles = np.quantile(lengths, np.linspace(0, 1, buckets + 1)[1:-1])
    return sorted({int(q) + 1 for q in quantiles})
