"""Length bucketing shared by the sequence apps (language, speech, translation): batches of similar length
waste little compute on padding."""

from __future__ import annotations

import numpy as np


def bucket_boundaries(lengths, buckets: int = 6) -> list[int]:
    """Length quantiles for `tf.data.Dataset.bucket_by_sequence_length`: each bucket holds about the
    same number of examples."""
    quantiles = np.quantile(lengths, np.linspace(0, 1, buckets + 1)[1:-1])
    return sorted({int(q) + 1 for q in quantiles})


def bucket_by_length(ds, length_of, lengths, batch_size: int, boundaries=None, **options):
    """`Dataset.bucket_by_sequence_length` with a known number of batches.

    tf.data cannot know how many batches bucketing yields, so Keras would see an input of unknown
    length: the learning-rate schedule could not be sized from it and each epoch would end in an
    "input ran out of data" warning. Every bucket gives ceil(n_bucket / batch) batches (the last
    one partial), which `assert_cardinality` declares (and checks while iterating).

    Args:
        ds: tf.data.Dataset of single examples.
        length_of: function of an element -> its int32 length (what bucketing sorts by).
        lengths: the same lengths as a list, in any order, one per example.
        batch_size: int. Examples per batch in every bucket.
        boundaries: list of int or None. Bucket edges; None: length quantiles (`bucket_boundaries`).
        **options: passed to `bucket_by_sequence_length` (padded_shapes, padding_values).
    """
    import tensorflow as tf

    boundaries = list(boundaries) if boundaries else bucket_boundaries(lengths)
    ds = ds.bucket_by_sequence_length(length_of, boundaries, [batch_size] * (len(boundaries) + 1), **options)
    # bucket i holds boundaries[i-1] <= length < boundaries[i], which is np.digitize's rule
    per_bucket = np.bincount(np.digitize(lengths, boundaries), minlength=len(boundaries) + 1)
    batches = int(sum(-(-int(n) // batch_size) for n in per_bucket))
    return ds.apply(tf.data.experimental.assert_cardinality(batches))
