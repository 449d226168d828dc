"""Length bucketing (pipelines/batching.py): padding-bounded bucket edges."""

import numpy as np

from dlsuite.pipelines.batching import bucket_boundaries, padding_bounded_boundaries


def _padded_over_real(lengths, boundaries):
    """Frames computed over real frames in the worst case: every batch padded to its bucket's
    longest example."""
    buckets = np.digitize(lengths, boundaries)
    padded = sum(lengths[buckets == b].max() * np.sum(buckets == b) for b in np.unique(buckets))
    return padded / lengths.sum()


def test_buckets_bound_the_padding_where_quantiles_do_not():
    rng = np.random.default_rng(0)
    # mostly 1-5 s utterances and a tail of long recordings up to 20 s, as in real corpora
    lengths = np.concatenate([rng.integers(100, 500, 1500), rng.integers(500, 2000, 300)])
    bounded = padding_bounded_boundaries(lengths, min_bucket=32, max_ratio=1.15)
    per_bucket = np.bincount(np.digitize(lengths, bounded))
    assert per_bucket.min() >= 32 and per_bucket.sum() == len(lengths)
    for b in range(len(per_bucket) - 1):  # the last one takes the tail that is too few for a bucket
        inside = lengths[np.digitize(lengths, bounded) == b]
        # within the ratio, or where lengths are sparse just big enough (a few more for equal lengths)
        assert inside.max() <= 1.15 * inside.min() or len(inside) <= 36
    assert _padded_over_real(lengths, bounded) < 1.15
    assert _padded_over_real(lengths, bucket_boundaries(lengths)) > 1.3


def test_few_or_equal_lengths_make_one_bucket():
    assert padding_bounded_boundaries(np.full(100, 300), min_bucket=8) == []
    assert padding_bounded_boundaries(np.arange(100, 110), min_bucket=8) == []


def test_no_edges_make_one_bucket_and_none_lets_quantiles_choose():
    import tensorflow as tf

    from dlsuite.pipelines.batching import bucket_by_length

    lengths = list(range(1, 11))
    ds = tf.data.Dataset.from_tensor_slices(tf.range(1, 11)).map(lambda n: tf.ones([n]))
    one_bucket = bucket_by_length(ds, lambda x: tf.shape(x)[0], lengths, 4, [], padded_shapes=[None])
    assert [len(b) for b in one_bucket] == [4, 4, 2] and int(one_bucket.cardinality()) == 3
    quantiles = bucket_by_length(ds, lambda x: tf.shape(x)[0], lengths, 4, None, padded_shapes=[None])
    assert int(quantiles.cardinality()) > 3
