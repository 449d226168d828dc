"""Length bucketing shared by the sequence apps (language, speech, translation): batches of similar length
waste little compute on padding."""

from __future__ import annotations

import numpy as np


def bucket_boundaries(lengths, buckets: int = 6) -> list[int]:
    """Length quantiles for `tf.data.Dataset.bucket_by_sequence_length`: each bucket holds about the
    same number of examples."""
    quantiles = np.quantile(lengths, np.linspace(0, 1, buckets + 1)[1:-1])
    return sorted({int(q) + 1 for q in quantiles})


def padding_bounded_boundaries(lengths, min_bucket: int, max_ratio: float = 1.15) -> list[int]:
    """Bucket edges under which no bucket's longest example is more than `max_ratio` x its
    shortest, so padding costs at most that factor, unless a bucket would then hold fewer than
    `min_bucket` examples (it grows until it has them: a lone long utterance is not a batch of
    its own). Quantile buckets (bucket_boundaries) waste much more on a wide length range: on
    synthetic speech plus human prompts of up to 20 s, 1.78x the real frames against 1.20x here
    (BENCHMARKS.md, speech bucketing). Written here: tf.data takes edges, it does not choose them."""
    ordered = np.sort(np.asarray(lengths))
    boundaries, start = [], 0
    for i in range(1, len(ordered)):
        new_length = ordered[i] > ordered[i - 1]
        if (new_length and ordered[i] > ordered[start] * max_ratio and i - start >= min_bucket
                and len(ordered) - i >= min_bucket):
            boundaries.append(int(ordered[i]))
            start = i
    return boundaries


def bucket_by_length(ds, length_of, lengths, batch_size: int, boundaries=None, drop_remainder: bool = False,
                     **options):
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
        boundaries: list of int or None. Bucket edges ([]: one bucket); None: length quantiles
            (`bucket_boundaries`).
        drop_remainder: bool. Drop each bucket's last, partial batch (every batch then has
            `batch_size` examples; the shuffle decides which few examples sit out an epoch).
        **options: passed to `bucket_by_sequence_length` (padded_shapes, padding_values).
    """
    import tensorflow as tf

    if boundaries is not None:  # [] is one bucket; None lets quantiles choose
        boundaries = list(boundaries)
    else:  # with full batches only, a bucket needs at least one batch's worth of examples
        buckets = max(1, min(6, len(lengths) // batch_size)) if drop_remainder else 6
        boundaries = bucket_boundaries(lengths, buckets)
    ds = ds.bucket_by_sequence_length(length_of, boundaries, [batch_size] * (len(boundaries) + 1),
                                      drop_remainder=drop_remainder, **options)
    # bucket i holds boundaries[i-1] <= length < boundaries[i], which is np.digitize's rule
    per_bucket = np.bincount(np.digitize(lengths, boundaries), minlength=len(boundaries) + 1)
    batches = int(sum(int(n) // batch_size if drop_remainder else -(-int(n) // batch_size) for n in per_bucket))
    return ds.apply(tf.data.experimental.assert_cardinality(batches))
