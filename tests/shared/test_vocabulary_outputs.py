"""Vocabulary output layers (eqs. 12.8-12.19) against direct NumPy versions of the formulas."""

import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from dlsuite.shared.layers import (
    OUTPUT_KINDS,
    FullSoftmax,
    HierarchicalSoftmax,
    NoiseContrastiveSoftmax,
    RankingSoftmax,
    SampledSoftmax,
    ShortlistSoftmax,
    make_vocabulary_output,
)
from dlsuite.shared.layers.vocabulary_outputs import balanced_classes, huffman_codes

V, H, SHORTLIST = 40, 6, 12
# Zipf-like counts, ids by decreasing frequency; the last word never seen (count 0).
COUNTS = np.floor(2000.0 / np.arange(1, V + 1)).astype(np.int64)
COUNTS[-1] = 0
OPTIONS = {
    "shortlist": {"shortlist_size": SHORTLIST},
    "sampled": {"num_samples": 10},
    "nce": {"num_samples": 10},
    "ranking": {"num_samples": 10},
}


def make(kind, vocab_size=V, counts=COUNTS, hidden=H, seed=0, scale=1.0, **options):
    """A built layer with N(0, scale) trainable weights: peaked distributions make formula errors
    visible. (The ranking layer's calibration stays at its identity, beta = 1, gamma = 0.)"""
    layer = make_vocabulary_output(
        kind, vocab_size, counts, hidden, **{**OPTIONS.get(kind, {}), **options}
    )
    rng = np.random.default_rng(seed)
    for weight in layer.trainable_weights:
        weight.assign(rng.normal(0, scale, weight.shape).astype(np.float32))
    return layer


def inputs(shape=(3, 5), seed=1, vocab_size=V):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(0, 1, (*shape, H)).astype(np.float32)
    return hidden, rng.integers(0, vocab_size, shape).astype(np.int32)


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def log_sigmoid(x):
    return -np.logaddexp(0, -x)


def weights(layer):
    return [w.numpy().astype(np.float64) for w in layer.weights]


# === NumPy versions of the formulas, one hidden vector h [H] at a time ===
def numpy_full(layer, h):
    """Eqs. 12.8-12.9: log softmax(h W^T + b) over all |V| (or |L| + 1) rows."""
    kernel, bias = weights(layer)
    return log_softmax(kernel @ h + bias)


def numpy_classes(layer, h):
    """log P(c(w) | h) + log P(w | c(w), h): softmax over classes, then within the class.

    Word w's vector is slot word_slot[w] of its class's block; the class's members are the words
    with the same word_class (the block's empty slots belong to no word)."""
    block_kernel, block_bias, class_kernel, class_bias = weights(layer)
    class_lp = log_softmax(class_kernel @ h + class_bias)
    c, j = layer.word_class, layer.word_slot
    logits = np.array(
        [block_kernel[c[w], j[w]] @ h + block_bias[c[w], j[w]] for w in range(len(c))]
    )
    out = np.empty(layer.vocab_size)
    for w in range(layer.vocab_size):
        members = np.flatnonzero(c == c[w])
        out[w] = class_lp[c[w]] + log_softmax(logits[members])[members == w][0]
    return out


def numpy_huffman(layer, h):
    """Eq. 12.12: sum over the path of log sigmoid(+-(h . v_k + b_k)), branch 1 -> +, 0 -> -."""
    node_kernel, node_bias = weights(layer)
    out = np.zeros(layer.vocab_size)
    for w in range(layer.vocab_size):
        for k in range(layer.code_lengths[w]):
            node, sign = layer.paths[w, k], 2 * layer.codes[w, k] - 1
            out[w] += log_sigmoid(sign * (node_kernel[node] @ h + node_bias[node]))
    return out


EXACT = {"full": numpy_full, "hierarchical_classes": numpy_classes, "huffman": numpy_huffman}


@pytest.mark.parametrize("kind", list(EXACT))
def test_exact_layers_normalize_and_match_the_formula(kind):
    layer = make(kind)
    hidden, targets = inputs()
    log_probs = layer.log_probs(hidden).numpy()
    assert log_probs.shape == (3, 5, V) and log_probs.dtype == np.float32
    np.testing.assert_allclose(np.exp(log_probs.astype(np.float64)).sum(-1), 1.0, atol=1e-5)
    want = np.stack([EXACT[kind](layer, h) for h in hidden.reshape(-1, H).astype(np.float64)])
    np.testing.assert_allclose(log_probs.reshape(-1, V), want, atol=2e-4)
    log_prob = layer.log_prob(hidden, targets).numpy()
    assert log_prob.shape == (3, 5)
    np.testing.assert_allclose(
        log_prob, np.take_along_axis(log_probs, targets[..., None], -1)[..., 0], atol=2e-4
    )
    np.testing.assert_allclose(layer.training_loss(hidden, targets).numpy(), -log_prob, atol=1e-6)


def test_shortlist_with_a_tail_distribution_is_normalized_and_matches_eq_12_10():
    layer = make("shortlist")
    hidden = inputs((4,))[0]
    tail = np.random.default_rng(2).dirichlet(np.ones(V - SHORTLIST))  # P_ngram(w | C, w in T)
    tail_log_prob = np.concatenate([np.full(SHORTLIST, -np.inf), np.log(tail)]).astype(np.float32)
    every_word = np.tile(np.arange(V, dtype=np.int32), (4, 1))  # [4, V]
    every_hidden = np.repeat(hidden[:, None], V, 1)  # [4, V, H]
    log_prob = layer.log_prob(
        every_hidden, every_word, tail_log_prob=np.tile(tail_log_prob, (4, 1))
    ).numpy()
    np.testing.assert_allclose(np.exp(log_prob.astype(np.float64)).sum(-1), 1.0, atol=1e-5)
    columns = np.stack([numpy_full(layer, h) for h in hidden.astype(np.float64)])  # [4, L + 1]
    want = np.concatenate([columns[:, :SHORTLIST], columns[:, -1:] + np.log(tail)], 1)
    np.testing.assert_allclose(log_prob, want, atol=2e-4)
    log_probs = layer.log_probs(hidden).numpy()
    assert log_probs.shape == (4, SHORTLIST + 1)
    np.testing.assert_allclose(log_probs, columns, atol=2e-4)


def test_shortlist_needs_the_tail_log_prob_and_trains_tail_words_as_the_tail_unit():
    layer = make("shortlist")
    hidden = inputs((2, 3))[0]
    targets = np.array([[0, 5, SHORTLIST], [V - 1, 1, 2]], np.int32)
    with pytest.raises(ValueError, match="tail_log_prob"):
        layer.log_prob(hidden, targets)
    head = np.array([[0, 5, 1], [3, 1, 2]], np.int32)
    log_probs = layer.log_probs(hidden).numpy()
    np.testing.assert_allclose(
        layer.log_prob(hidden, head).numpy(),
        np.take_along_axis(log_probs, head[..., None], -1)[..., 0],
        atol=1e-5,
    )
    columns = np.minimum(targets, SHORTLIST)
    np.testing.assert_allclose(
        layer.training_loss(hidden, targets).numpy(),
        -np.take_along_axis(log_probs, columns[..., None], -1)[..., 0],
        atol=1e-5,
    )


# === The trees ===
def test_huffman_codes_are_short_for_frequent_words_and_satisfy_kraft():
    counts = np.floor(1e6 / np.arange(1, 501) ** 1.1)
    paths, codes, lengths = huffman_codes(counts)
    assert np.all(np.diff(lengths) >= 0)  # ids by decreasing count: lengths never decrease
    assert lengths[0] < lengths[-1]
    assert np.sum(2.0**-lengths) == 1.0  # Kraft equality: a full binary tree
    words = {"".join(map(str, codes[w, : lengths[w]])) for w in range(len(counts))}
    assert len(words) == len(counts)
    assert not any(a != b and b.startswith(a) for a in words for b in words)  # prefix-free
    p = counts / counts.sum()
    entropy = -(p * np.log2(p)).sum()
    assert entropy <= (p * lengths).sum() < entropy + 1  # Huffman's optimality bound
    assert paths.max() == len(counts) - 2 and np.all(
        paths[:, 0] == len(counts) - 2
    )  # the root first


@pytest.mark.parametrize("vocab_size", [64, 100, 1000])
def test_huffman_depth_is_log2_v_for_uniform_counts(vocab_size):
    lengths = huffman_codes(np.ones(vocab_size))[2]
    assert lengths.min() == np.floor(np.log2(vocab_size)) and lengths.max() == np.ceil(
        np.log2(vocab_size)
    )
    assert np.sum(2.0**-lengths) == 1.0


def test_balanced_classes_are_frequency_runs_of_equal_size():
    vocab_size, num_classes = 3001, 55
    counts = np.floor(1e7 / np.arange(1, vocab_size + 1))
    shuffled = np.random.default_rng(0).permutation(vocab_size)  # ids need not be sorted
    word_class, word_slot = balanced_classes(counts[shuffled], num_classes)
    word_class, word_slot = word_class[np.argsort(shuffled)], word_slot[np.argsort(shuffled)]
    # back in frequency order: class k is the k-th run, the slots count up within it
    assert np.all(np.diff(word_class) >= 0) and word_class[-1] == num_classes - 1
    sizes = np.bincount(word_class, minlength=num_classes)
    assert sizes.sum() == vocab_size and sizes.max() - sizes.min() <= 1  # 55 or 54 words each
    np.testing.assert_array_equal(word_slot, np.concatenate([np.arange(n) for n in sizes]))
    assert HierarchicalSoftmax(vocab_size, counts, num_classes=55).class_size == 55
    layer = HierarchicalSoftmax(vocab_size, counts)  # the default: 4 sqrt|V| classes
    assert layer.num_classes == round(4 * np.sqrt(vocab_size)) == 219 and layer.class_size == 14
    assert HierarchicalSoftmax(10, np.ones(10)).num_classes == 10  # never more than |V|


@pytest.mark.parametrize("vocab_size,num_classes", [(40, 6), (40, 40), (41, 1), (2, 2), (9, 4)])
def test_class_tree_is_exact_for_uneven_and_extreme_class_counts(vocab_size, num_classes):
    """Blocks with an empty slot (|V| not a multiple of C), one word per class, a single class."""
    counts = np.floor(500.0 / np.arange(1, vocab_size + 1))
    layer = make("hierarchical_classes", vocab_size, counts, num_classes=num_classes, scale=2.0)
    assert layer.node_kernel.shape == (num_classes, -(-vocab_size // num_classes), H)
    hidden = inputs((4,))[0]
    log_probs = layer.log_probs(hidden).numpy()
    np.testing.assert_allclose(np.exp(log_probs.astype(np.float64)).sum(-1), 1.0, atol=1e-5)
    want = np.stack([numpy_classes(layer, h) for h in hidden.astype(np.float64)])
    np.testing.assert_allclose(log_probs, want, atol=2e-4)
    every_word = np.tile(np.arange(vocab_size, dtype=np.int32), (4, 1))  # [4, V]
    every_hidden = np.repeat(hidden[:, None], vocab_size, 1)  # [4, V, H]
    np.testing.assert_allclose(layer.log_prob(every_hidden, every_word).numpy(), want, atol=2e-4)


def test_class_tree_starts_as_the_smoothed_unigram_model():
    """Class and word biases start at log u(c) and log u(w | c): with h = 0 the tree predicts the
    unigram distribution (equal-size classes hold very unequal mass; zero biases would start at a
    uniform class choice). A layer waiting for its counts and weights starts at 0."""
    layer = make_vocabulary_output("hierarchical_classes", V, COUNTS, H, num_classes=6)
    smoothed = np.where(COUNTS > 0, COUNTS, COUNTS[COUNTS > 0].min() / 2)
    log_unigram = np.log(smoothed / smoothed.sum())
    zero = np.zeros((2, H), np.float32)
    np.testing.assert_allclose(
        layer.log_probs(zero).numpy(), np.tile(log_unigram, (2, 1)), atol=1e-5
    )
    mass = np.bincount(layer.word_class, np.exp(log_unigram), 6)
    np.testing.assert_allclose(layer.class_bias.numpy(), np.log(mass), rtol=1e-6)
    assert mass[0] > 0.5 and mass[0] > 15 * mass[-1]  # the commonest words' class: most mass
    waiting = HierarchicalSoftmax.from_config(layer.get_config())
    waiting.build((None, H))
    assert not np.any(waiting.class_bias.numpy()) and not np.any(waiting.node_bias.numpy())


def test_huffman_tree_starts_as_the_smoothed_unigram_model():
    """Each node's bias starts at log(u(branch 1) / u(branch 0)): with h = 0 the product of the
    decisions on a word's path is its unigram probability. Waiting for counts: zeros."""
    layer = make_vocabulary_output("huffman", V, COUNTS, H)
    smoothed = np.where(COUNTS > 0, COUNTS, COUNTS[COUNTS > 0].min() / 2)
    log_unigram = np.log(smoothed / smoothed.sum())
    zero = np.zeros((3, H), np.float32)
    np.testing.assert_allclose(layer.log_probs(zero).numpy(), np.tile(log_unigram, (3, 1)), atol=1e-5)
    words = np.array([0, V // 2, V - 1], np.int32)
    np.testing.assert_allclose(layer.log_prob(zero, words).numpy(), log_unigram[words], atol=1e-5)
    waiting = HierarchicalSoftmax.from_config(layer.get_config())
    waiting.build((None, H))
    assert not np.any(waiting.node_bias.numpy())


def test_training_gathers_only_the_rows_it_needs():
    """Per token: the target's class block, its path, or the target and the m samples."""
    vocab_size = 2000
    counts = np.floor(1e6 / np.arange(1, vocab_size + 1))
    targets = np.array([[0, 3, 10, 1999]], np.int32)
    hidden = np.random.default_rng(3).normal(0, 1, (1, 4, H)).astype(np.float32)
    for kind in ("hierarchical_classes", "huffman", "sampled", "nce", "ranking"):
        layer = (
            make(kind, vocab_size, counts, num_samples=16)
            if kind in OPTIONS
            else make(kind, vocab_size, counts)
        )
        kernel = layer.weights[0]  # [V, H], [V - 1, H] or the class tree's [C, S, H] blocks
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer.training_loss(hidden, targets))
        grad = tape.gradient(loss, kernel)
        assert isinstance(grad, tf.IndexedSlices), kind
        touched = len(np.unique(grad.indices.numpy()))
        assert 0 < touched < kernel.shape[0] // 4, (kind, touched)
        if kind == "hierarchical_classes":  # the 4 targets' classes, sqrt|V| word vectors each
            assert touched == len(np.unique(layer.word_class[targets]))
            assert grad.values.shape == (4, layer.class_size, H) and layer.class_size == 12


# === Sampled objectives ===
def test_sampled_softmax_nce_and_ranking_losses_match_their_formulas():
    """Eq. 12.18's corrected softmax, NCE's logistic loss and eq. 12.19's hinge, given the samples."""
    hidden, targets = inputs((4,))
    sampled = np.array([0, 0, 1, 5, targets[0], 20, 39], np.int64)  # a repeat and an accidental hit
    for cls in (SampledSoftmax, NoiseContrastiveSoftmax, RankingSoftmax):
        layer = cls(V, COUNTS, num_samples=len(sampled), proposal_power=0.75)
        layer.build((None, H))
        kernel, bias = (w.numpy().astype(np.float64) for w in (layer.kernel, layer.bias))
        q = layer.proposal
        m = len(sampled)
        values = (
            tf.constant(sampled),
            tf.constant(m * q[targets][:, None], tf.float32),
            tf.constant(m * q[sampled], tf.float32),
        )
        got = layer.sampled_loss(tf.constant(hidden), tf.constant(targets), values).numpy()
        scores = hidden.astype(np.float64) @ kernel.T + bias  # a = h W^T + b, [4, V]
        for n, (y, a) in enumerate(zip(targets, scores, strict=True)):
            if cls is SampledSoftmax:
                logits = np.concatenate(
                    [[a[y] - np.log(m * q[y])], a[sampled] - np.log(m * q[sampled])]
                )
                logits[1:][sampled == y] = -np.inf  # accidental hits removed
                want = -log_softmax(logits)[0]
            elif cls is NoiseContrastiveSoftmax:
                want = (
                    -log_sigmoid(a[y] - np.log(m * q[y]))
                    - log_sigmoid(-(a[sampled] - np.log(m * q[sampled]))).sum()
                )
            else:
                want = np.maximum(0, 1.0 - a[y] + a[sampled])[sampled != y].sum()
            np.testing.assert_allclose(got[n], want, rtol=1e-4, atol=1e-4, err_msg=cls.__name__)


def test_the_ranking_pairwise_losses_match_their_formulas():
    """squared_hinge: [margin - a_y + a_i]_+^2; logistic: softplus(a_i - a_y), the target excluded."""
    hidden, targets = inputs((4,))
    sampled = np.array([0, 1, 5, targets[0], 20, 39], np.int64)
    values = (tf.constant(sampled), tf.ones((4, 1)), tf.ones((len(sampled),)))
    for pairwise, formula in (("squared_hinge", lambda d: np.maximum(0, 2.0 - d) ** 2),
                              ("logistic", lambda d: np.logaddexp(0, -d))):
        layer = RankingSoftmax(V, COUNTS, num_samples=len(sampled), margin=2.0, pairwise=pairwise)
        layer.build((None, H))
        got = layer.sampled_loss(tf.constant(hidden), tf.constant(targets), values).numpy()
        scores = hidden.astype(np.float64) @ layer.kernel.numpy().T + layer.bias.numpy()
        for n, (y, a) in enumerate(zip(targets, scores, strict=True)):
            want = formula(a[y] - a[sampled])[sampled != y].sum()
            np.testing.assert_allclose(got[n], want, rtol=1e-4, atol=1e-4, err_msg=pairwise)
        assert RankingSoftmax.from_config(layer.get_config()).pairwise == pairwise
    with pytest.raises(ValueError, match="pairwise must be one of hinge, squared_hinge, logistic"):
        RankingSoftmax(V, COUNTS, num_samples=5, pairwise="hinged")


def test_proposal_is_unigram_to_a_power_and_samples_follow_it():
    layer = SampledSoftmax(V, COUNTS, num_samples=V - 1, proposal_power=0.75)
    smoothed = np.where(
        COUNTS > 0, COUNTS, COUNTS[COUNTS > 0].min() / 2
    )  # the unseen word: half the rarest
    np.testing.assert_allclose(layer.proposal, smoothed**0.75 / (smoothed**0.75).sum())
    tf.random.set_seed(0)
    draws = np.concatenate([layer.sample(tf.constant([0]))[0].numpy() for _ in range(200)])
    frequency = np.bincount(draws, minlength=V) / len(draws)
    np.testing.assert_allclose(frequency, layer.proposal, atol=0.01)
    _, true_expected, sampled_expected = layer.sample(tf.constant([3]))
    np.testing.assert_allclose(
        true_expected.numpy()[0, 0], (V - 1) * layer.proposal[3], rtol=1e-4
    )  # m q


def test_sampled_softmax_gradient_matches_the_full_gradient_in_expectation():
    """Eqs. 12.13-12.18: the average sampled gradient over many draws ~ the exact gradient."""
    tf.random.set_seed(0)
    vocab_size, m, draws = 30, 20, 2000
    counts = np.floor(3000.0 / np.arange(1, vocab_size + 1))
    layer = SampledSoftmax(vocab_size, counts, num_samples=m)
    layer.build((None, 5))
    rng = np.random.default_rng(0)
    layer.kernel.assign(rng.normal(0, 0.3, (vocab_size, 5)))
    layer.bias.assign(np.log(layer.proposal))  # a trained LM's biases track log unigram frequency
    hidden = tf.constant(rng.normal(0, 1, (4, 5)), tf.float32)
    targets = tf.constant([0, 2, 7, 21])

    def gradients(loss_fn):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(loss_fn(hidden, targets))
        return [tf.convert_to_tensor(g) for g in tape.gradient(loss, [layer.kernel, layer.bias])]

    exact = [g.numpy() for g in gradients(lambda h, t: -layer.log_prob(h, t))]

    @tf.function
    def mean_sampled_gradient():
        total = [tf.zeros_like(g) for g in exact]
        for _ in tf.range(draws):  # a new sample each iteration: the sampler op is stateful
            total = [
                t + g / draws for t, g in zip(total, gradients(layer.training_loss), strict=True)
            ]
        return total

    mean = [g.numpy() for g in mean_sampled_gradient()]
    single = [g.numpy() for g in gradients(layer.training_loss)]
    random = [rng.normal(0, 1, g.shape) * np.linalg.norm(g) / np.sqrt(g.size) for g in exact]
    for e, avg, one, rnd in zip(exact, mean, single, random, strict=True):
        error = np.linalg.norm(avg - e) / np.linalg.norm(e)
        assert error < 0.1, error
        assert error < 0.1 * 1.0  # the zero gradient's relative error is 1
        assert error < 0.1 * np.linalg.norm(rnd - e) / np.linalg.norm(e)
        assert error < np.linalg.norm(one - e) / np.linalg.norm(e)  # averaging removes noise


@pytest.mark.parametrize("kind", ["sampled", "nce", "ranking"])
def test_sampled_layers_start_as_the_smoothed_unigram_model(kind):
    """The bias starts at log(c_w / sum c), the unseen word at half the rarest count: untrained,
    the exact log_probs are the unigram model's up to the kernel's h W^T, so rarely sampled words
    keep a unigram score instead of 0 (which gave NCE a perplexity in the millions)."""
    layer = make_vocabulary_output(kind, V, COUNTS, H, **OPTIONS[kind])
    smoothed = np.where(COUNTS > 0, COUNTS, COUNTS[COUNTS > 0].min() / 2)
    log_unigram = np.log(smoothed / smoothed.sum())  # finite for the unseen word too
    np.testing.assert_allclose(layer.bias.numpy(), log_unigram, rtol=1e-6)
    np.testing.assert_allclose(layer.log_unigram, log_unigram)
    rng = np.random.default_rng(0)
    corpus = rng.choice(V, 5000, p=smoothed / smoothed.sum())  # a toy corpus of the unigram model
    zero = np.zeros((len(corpus), H), np.float32)
    np.testing.assert_allclose(
        layer.log_probs(zero[:2]).numpy(), np.broadcast_to(log_unigram, (2, V)), atol=1e-5
    )
    unigram_ppl = np.exp(-log_unigram[corpus].mean())
    layer_ppl = np.exp(-layer.log_prob(zero, corpus).numpy().mean())
    np.testing.assert_allclose(layer_ppl, unigram_ppl, rtol=1e-5)
    assert unigram_ppl < 0.6 * V  # a zero bias starts at the uniform model, perplexity V
    hidden = rng.normal(0, 1, (50, H)).astype(np.float32)  # any h: within the kernel's reach
    scores = hidden @ layer.kernel.numpy().T  # [50, V]
    reach = 2 * np.abs(scores).max(-1, keepdims=True)
    assert np.all(np.abs(layer.log_probs(hidden).numpy() - log_unigram) <= reach + 1e-5)


def test_ranking_calibration_recovers_the_scale_and_the_unigram_prior():
    """Targets drawn from softmax(a / 2.5 + 0.8 log u): calibrate finds beta ~ 0.4, gamma ~ 0.8,
    better than one temperature, and log_probs become log_softmax(beta a + gamma log u), still
    normalized, also in a graph traced before calibrating (the two are weights, not constants)."""
    layer = make("ranking", scale=1.0)
    rng = np.random.default_rng(3)
    hidden = rng.normal(0, 1, (4000, H)).astype(np.float32)
    scores = hidden.astype(np.float64) @ layer.kernel.numpy().T + layer.bias.numpy()  # [N, V]
    log_u = layer.log_unigram
    p = np.exp(log_softmax(scores / 2.5 + 0.8 * log_u))
    targets = np.array([rng.choice(V, p=row / row.sum()) for row in p], np.int32)
    traced = tf.function(layer.log_probs)
    np.testing.assert_allclose(traced(hidden[:5]).numpy(), log_softmax(scores[:5]), atol=1e-4)

    def nll():
        return -layer.log_prob(hidden, targets).numpy().mean()

    uncalibrated = nll()
    temperature = layer.calibrate(hidden, targets, prior=False, chunk_size=1000)
    assert temperature["gamma"] == 0 and temperature["beta"] > 0
    with_temperature = nll()
    calibration = layer.calibrate(hidden, targets, chunk_size=1000)
    assert calibration == layer.calibration
    np.testing.assert_allclose([calibration["beta"], calibration["gamma"]], [0.4, 0.8], atol=0.08)
    assert nll() < with_temperature - 0.01 and with_temperature < uncalibrated
    want = log_softmax(calibration["beta"] * scores[:5] + calibration["gamma"] * log_u)
    np.testing.assert_allclose(traced(hidden[:5]).numpy(), want, atol=1e-4)
    np.testing.assert_allclose(np.exp(want).sum(-1), 1.0, atol=1e-6)
    layer.set_calibration()  # back to the plain softmax of the scores
    np.testing.assert_allclose(nll(), uncalibrated, rtol=1e-6)


@pytest.mark.parametrize("cls", [SampledSoftmax, NoiseContrastiveSoftmax, RankingSoftmax])
def test_sampled_losses_decrease_when_the_target_score_rises(cls):
    hidden, targets = inputs((4,))
    targets = np.array([3, 8, 15, 30], np.int32)
    layer = cls(V, COUNTS, num_samples=6)
    layer.build((None, H))
    sampled = np.array([0, 1, 1, 2, 5, 9], np.int64)  # no target among them
    values = (
        tf.constant(sampled),
        tf.constant(6 * layer.proposal[targets][:, None], tf.float32),
        tf.constant(6 * layer.proposal[sampled], tf.float32),
    )
    before = layer.sampled_loss(hidden, targets, values).numpy()
    layer.bias.assign(layer.bias.numpy() + np.isin(np.arange(V), targets) * 1.0)  # a_y + 1
    after = layer.sampled_loss(hidden, targets, values).numpy()
    assert np.all(after <= before) and np.all(after[before > 0] < before[before > 0]), (
        before,
        after,
    )
    assert before.sum() > after.sum()


# === Training with model.fit ===
class TinyModel(keras.Model):
    """A fixed random hidden vector per context id ([B, T] -> [B, T, H]) and a learnable output."""

    def __init__(self, output, contexts):
        super().__init__()
        self.contexts = keras.layers.Embedding(
            contexts,
            H,
            trainable=False,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=0),
        )
        self.vocabulary_output = output

    def call(self, x):
        return self.contexts(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if training:
            return ops.mean(self.vocabulary_output.training_loss(y_pred, y))
        return -ops.mean(self.vocabulary_output.log_prob(y_pred, y))


def exact_log_prob(output, hidden, targets):
    if isinstance(output, ShortlistSoftmax):
        tail = np.full(targets.shape, -np.log(V - SHORTLIST), np.float32)  # a uniform tail
        return output.log_prob(hidden, targets, tail_log_prob=tail).numpy()
    return output.log_prob(hidden, targets).numpy()


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_each_training_loss_learns_under_model_fit(kind):
    """~100 Adam steps of model.fit raise the exact log-probability of the targets."""
    keras.utils.set_random_seed(0)
    contexts = 12
    answer = np.random.default_rng(0).choice(V, contexts, p=COUNTS / COUNTS.sum())  # the next word
    x = np.random.default_rng(1).integers(0, contexts, (800, 3)).astype(np.int32)  # [B, T]
    y = answer[x].astype(np.int32)
    model = TinyModel(make_vocabulary_output(kind, V, COUNTS, H, **OPTIONS.get(kind, {})), contexts)
    model.compile(keras.optimizers.Adam(0.05))
    hidden = model(x[:64])
    before = exact_log_prob(model.vocabulary_output, hidden, y[:64]).mean()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    after = exact_log_prob(model.vocabulary_output, model(x[:64]), y[:64]).mean()
    assert np.isfinite(history.history["loss"][-1])
    assert after > before + 1.0, (before, after)
    best = np.argmax(model.vocabulary_output.log_probs(model(x[:64])).numpy(), -1)
    columns = np.minimum(y[:64], SHORTLIST) if kind == "shortlist" else y[:64]
    # The answer is the most probable word (column) for most contexts; always guessing the
    # commonest answer scores 0.25. (NCE and ranking are still converging after 100 steps.)
    assert np.mean(best == columns) > 0.4


# === Shapes, graphs, precision, saving ===
@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_rank_2_and_3_inputs_in_a_tf_function(kind):
    layer = make(kind)
    columns = SHORTLIST + 1 if kind == "shortlist" else V
    for shape in [(7,), (2, 3)]:
        hidden, targets = inputs(shape)
        targets = np.minimum(targets, SHORTLIST - 1) if kind == "shortlist" else targets

        @tf.function
        def run(h, t):
            return layer.log_probs(h), layer.log_prob(h, t), layer.training_loss(h, t)

        log_probs, log_prob, loss = run(hidden, targets)
        assert (
            log_probs.shape == (*shape, columns) and log_prob.shape == shape and loss.shape == shape
        )
        np.testing.assert_allclose(
            log_prob.numpy(), layer.log_prob(hidden, targets).numpy(), atol=1e-6
        )
        assert np.all(np.isfinite(loss.numpy()))
    with pytest.raises(ValueError, match="leading shape"):
        layer.log_prob(hidden, targets[:, :2])


@pytest.mark.parametrize("kind", ["full", "huffman", "sampled"])
def test_float32_outputs_under_mixed_float16(kind):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = make_vocabulary_output(kind, V, COUNTS, H, **OPTIONS.get(kind, {}))
        hidden, targets = inputs()
        hidden = hidden.astype(np.float16)
        assert layer.dtype_policy.name == "float32" and all(
            w.dtype == "float32" for w in layer.weights
        )
        for out in (
            layer(hidden),
            layer.log_prob(hidden, targets),
            layer.training_loss(hidden, targets),
        ):
            assert out.dtype == tf.float32 and np.all(np.isfinite(out.numpy()))
        np.testing.assert_allclose(
            np.exp(layer(hidden).numpy().astype(np.float64)).sum(-1), 1, atol=1e-5
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_saved_model_reproduces_log_probs(kind, tmp_path):
    layer = make(kind)
    hidden_in = keras.Input((None, H))
    model = keras.Model(hidden_in, layer(hidden_in))

    class Scorer(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(
            input_signature=[tf.TensorSpec([None, None, H]), tf.TensorSpec([None, None], tf.int32)]
        )
        def score(self, hidden, targets):
            output = self.model.layers[-1]
            tail = {"tail_log_prob": tf.zeros_like(hidden[..., 0])} if kind == "shortlist" else {}
            return {
                "log_probs": self.model(hidden),
                "log_prob": output.log_prob(hidden, targets, **tail),
            }

    hidden, targets = inputs()
    scorer = Scorer(model)
    want = scorer.score(hidden, targets)
    tf.saved_model.save(scorer, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    got = loaded.score(hidden, targets)
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-6)


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_config_round_trip_reproduces_outputs(kind):
    """The config holds every constructor argument but the |V| counts, which the layer gets back
    from a .keras file's assets (or, here, set_counts)."""
    layer = make(kind)
    config = layer.get_config()
    assert "counts" not in config
    clone = type(layer).from_config(config)
    clone.build((None, H))
    clone.set_weights(layer.get_weights())
    if getattr(layer, "counts", None) is not None:
        assert clone.counts is None
        with pytest.raises(ValueError, match="has no unigram counts"):
            clone.training_loss(*inputs())
        clone.set_counts(layer.counts)
    assert clone.get_config() == config
    hidden, targets = inputs()
    targets = np.minimum(targets, SHORTLIST - 1) if kind == "shortlist" else targets
    np.testing.assert_allclose(
        clone.log_probs(hidden).numpy(), layer.log_probs(hidden).numpy(), atol=1e-6
    )
    np.testing.assert_allclose(
        clone.log_prob(hidden, targets).numpy(), layer.log_prob(hidden, targets).numpy(), atol=1e-6
    )


@pytest.mark.parametrize("kind", ["hierarchical_classes", "huffman", "sampled", "ranking"])
def test_keras_file_round_trip(tmp_path, kind):
    """The counts travel as an asset: the reloaded layer has the same tree / proposal (and the
    ranking layer its calibration, a pair of weights)."""
    hidden_in = keras.Input((H,))
    layer = make(kind)
    if kind == "ranking":
        layer.set_calibration(0.5, 0.7)
    model = keras.Model(hidden_in, layer(hidden_in))
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        assert "counts" not in archive.read("config.json").decode()
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.layers[-1].counts, model.layers[-1].counts)
    hidden = inputs((4,))[0]
    np.testing.assert_allclose(
        loaded.predict(hidden, verbose=0), model.predict(hidden, verbose=0), atol=1e-6
    )
    if kind == "ranking":
        assert loaded.layers[-1].calibration == pytest.approx({"beta": 0.5, "gamma": 0.7})


def test_factory_builds_each_kind():
    classes = {
        "full": FullSoftmax,
        "shortlist": ShortlistSoftmax,
        "hierarchical_classes": HierarchicalSoftmax,
        "huffman": HierarchicalSoftmax,
        "sampled": SampledSoftmax,
        "nce": NoiseContrastiveSoftmax,
        "ranking": RankingSoftmax,
    }
    assert set(classes) == set(OUTPUT_KINDS)
    for kind, cls in classes.items():
        layer = make_vocabulary_output(kind, V, COUNTS, H)
        assert type(layer) is cls and layer.built and layer.name == "vocabulary_output"
    assert make_vocabulary_output("huffman", V, COUNTS).tree == "huffman"
    assert make_vocabulary_output("shortlist", V, COUNTS).shortlist_size == V // 10
    assert make_vocabulary_output("nce", V, COUNTS).num_samples == V - 1


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_a_vocabulary_of_one_word_is_rejected_by_every_output(kind):
    with pytest.raises(
        ValueError, match="vocab_size must be an integer >= 2, got 1: a vocabulary of one"
    ):
        make_vocabulary_output(kind, 1, np.array([5]), H)


def test_counts_that_give_words_no_probability_are_rejected():
    """Zero counts are smoothed (the unseen word above); no count at all, or a proposal power so
    high that q underflows to 0 for some words (their -log(m q) would be infinite), is an error."""
    for kind in ("huffman", "hierarchical_classes", "sampled"):
        with pytest.raises(ValueError, match="counts are all zero"):
            make_vocabulary_output(kind, V, np.zeros(V), H, **OPTIONS.get(kind, {}))
    with pytest.raises(ValueError, match="finite and non-negative"):
        SampledSoftmax(V, np.where(np.arange(V) == 3, np.nan, COUNTS), num_samples=5)
    for cls in (SampledSoftmax, NoiseContrastiveSoftmax, RankingSoftmax):
        with pytest.raises(
            ValueError, match="proposal gives .* words probability 0.*proposal_power=200"
        ):
            cls(V, COUNTS, num_samples=5, proposal_power=200.0)
    assert np.all(SampledSoftmax(V, COUNTS, num_samples=5, proposal_power=20.0).proposal > 0)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 2"):
        FullSoftmax(1)
    with pytest.raises(ValueError, match="length 40 .* got shape \\(39,\\)"):
        HierarchicalSoftmax(V, COUNTS[:-1])
    with pytest.raises(ValueError, match="non-negative"):
        SampledSoftmax(V, -COUNTS, num_samples=5)
    with pytest.raises(
        ValueError, match="num_samples must be an integer in \\[1, vocab_size=40\\)"
    ):
        NoiseContrastiveSoftmax(V, COUNTS, num_samples=V)
    with pytest.raises(ValueError, match="num_samples"):
        RankingSoftmax(V, COUNTS, num_samples=0)
    for size in (0, V):
        with pytest.raises(
            ValueError, match="shortlist_size must be an integer in \\[1, vocab_size=40\\)"
        ):
            ShortlistSoftmax(V, size)
    with pytest.raises(ValueError, match="tree must be 'classes' or 'huffman'"):
        HierarchicalSoftmax(V, COUNTS, tree="binary")
    with pytest.raises(ValueError, match="num_classes must be in"):
        HierarchicalSoftmax(V, COUNTS, num_classes=V + 1)
    with pytest.raises(ValueError, match="num_classes applies to tree='classes'"):
        HierarchicalSoftmax(V, COUNTS, tree="huffman", num_classes=4)
    with pytest.raises(ValueError, match="margin"):
        RankingSoftmax(V, COUNTS, num_samples=5, margin=0)
    with pytest.raises(ValueError, match="proposal_power"):
        SampledSoftmax(V, COUNTS, num_samples=5, proposal_power=-1)
    with pytest.raises(
        ValueError, match="valid kinds: full, shortlist, hierarchical_classes, huffman, sampled"
    ):
        make_vocabulary_output("softmax9", V, COUNTS)
    waiting = make_vocabulary_output("huffman", V, hidden_size=H)  # counts to come (set_counts)
    with pytest.raises(ValueError, match="has no unigram counts: pass counts"):
        waiting.log_prob(*inputs())
    with pytest.raises(ValueError, match="has no unigram counts"):
        make_vocabulary_output("sampled", V, hidden_size=H).training_loss(*inputs())
    with pytest.raises(ValueError, match="counts must hold one unigram count per word id"):
        waiting.set_counts(COUNTS[:-1])


def test_full_softmax_can_start_at_the_smoothed_unigram_model():
    """`start_at_unigram` (the language app uses it when it has counts): with h = 0 the full
    softmax predicts the smoothed unigram model; an unbuilt layer or bad counts say why."""
    layer = make_vocabulary_output("full", V, None, H)
    np.testing.assert_allclose(layer.bias.numpy(), 0.0)  # uniform start by default
    layer.start_at_unigram(COUNTS)
    smoothed = np.where(COUNTS > 0, COUNTS, COUNTS[COUNTS > 0].min() / 2)
    np.testing.assert_allclose(
        layer.log_probs(np.zeros((2, H), np.float32)).numpy(),
        np.broadcast_to(np.log(smoothed / smoothed.sum()), (2, V)), atol=1e-5,
    )
    with pytest.raises(ValueError, match="built layer"):
        FullSoftmax(V).start_at_unigram(COUNTS)
    with pytest.raises(ValueError, match="one unigram count per word id"):
        layer.start_at_unigram(COUNTS[:-1])
