"""Output layers for large vocabularies (the applications chapter, section 12.4.3).

A full affine + softmax output costs O(n_h |V|) per token (eqs. 12.8–12.9). Each layer here turns
hidden states [..., H] into word probabilities another way, behind one interface:

    log_probs(hidden)              [..., H] -> [..., V]  exact, normalized (natural log)
    log_prob(hidden, targets)      [..., H], int [...] -> [...]  exact log P(target), cheap
    training_loss(hidden, targets) [...] the training objective (sampled ones: a surrogate)

- `FullSoftmax`: the baseline.
- `ShortlistSoftmax` (12.10): the frequent words plus one "tail" unit; a caller's n-gram supplies
  P(w | C, w in tail).
- `HierarchicalSoftmax` (12.11–12.12): a two-level class tree (about sqrt|V| classes) or a
  binary Huffman tree; both exact, O(sqrt|V|) or O(log|V|) per token.
- `SampledSoftmax` (12.13–12.18), `NoiseContrastiveSoftmax`, `RankingSoftmax` (12.19): trained
  with m negative samples from a unigram proposal, evaluated with the exact full softmax.

Ids are vocabulary ids; `counts` are training counts per id (the proposal, the trees).
"""

from __future__ import annotations

import heapq
import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

OUTPUT_KINDS = ("full", "shortlist", "hierarchical_classes", "huffman", "sampled", "nce", "ranking")


def _check_counts(counts, vocab_size: int) -> np.ndarray:
    counts = np.asarray(counts, np.float64)
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}: a vocabulary of one word has nothing to predict.")
    if counts.shape != (vocab_size,):
        raise ValueError(f"counts must hold one count per word: {vocab_size} expected, got shape {counts.shape}.")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("counts must be finite and >= 0.")
    return counts


def _flat(hidden, targets=None):
    """[..., H] -> [N, H] float32 (and targets -> [N]); returns the leading shape to restore."""
    hidden = tf.cast(hidden, tf.float32)
    lead = tf.shape(hidden)[:-1]
    flat = tf.reshape(hidden, [-1, tf.shape(hidden)[-1]])
    if targets is None:
        return flat, lead
    return flat, tf.reshape(tf.cast(targets, tf.int32), [-1]), lead


class VocabularyOutput(keras.layers.Layer):
    """Base class: float32 outputs (even under mixed precision), `call` = `log_probs`."""

    def __init__(self, vocab_size, **kwargs):
        kwargs.setdefault("dtype", "float32")  # log-probabilities need float32 range
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)

    def call(self, hidden):
        return self.log_probs(hidden)

    def training_loss(self, hidden, targets):
        return -self.log_prob(hidden, targets)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size}


@keras.saving.register_keras_serializable(package="dlsuite")
class FullSoftmax(VocabularyOutput):
    """softmax(h W + b) over the whole vocabulary (eqs. 12.8–12.9): the baseline every other
    output is measured against."""

    def __init__(self, vocab_size, **kwargs):
        super().__init__(vocab_size, **kwargs)
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}.")

    def build(self, hidden_shape):
        self.kernel = self.add_weight(name="kernel", shape=(hidden_shape[-1], self.output_size),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.output_size,), initializer="zeros")

    @property
    def output_size(self) -> int:
        return self.vocab_size

    def logits(self, hidden):
        return ops.matmul(ops.cast(hidden, "float32"), self.kernel) + self.bias

    def log_probs(self, hidden):
        return ops.log_softmax(self.logits(hidden), axis=-1)

    def log_prob(self, hidden, targets):
        log_probs = self.log_probs(hidden)
        return ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(ops.cast(targets, "int32"), -1), axis=-1), -1)


@keras.saving.register_keras_serializable(package="dlsuite")
class ShortlistSoftmax(FullSoftmax):
    """Shortlist (eq. 12.10): ids < shortlist_size are modelled directly, plus one tail unit.

    P(w | C) = P(w | C) for w in the shortlist L, and P(tail | C) P_ngram(w | C, w in T) for the
    tail T; the caller passes log P_ngram(w | C, w in T) as `tail_log_prob`. Ids are ordered by
    frequency, so L holds the frequent words.
    """

    def __init__(self, vocab_size, shortlist_size, **kwargs):
        super().__init__(vocab_size, **kwargs)
        if not 1 <= shortlist_size < vocab_size:
            raise ValueError(f"shortlist_size must be in [1, vocab_size={vocab_size}), got {shortlist_size}.")
        self.shortlist_size = int(shortlist_size)

    @property
    def output_size(self) -> int:
        return self.shortlist_size + 1  # last column: the tail

    def _columns(self, targets):
        targets = ops.cast(targets, "int32")
        return ops.where(targets < self.shortlist_size, targets, self.shortlist_size)

    def log_prob(self, hidden, targets, tail_log_prob=None):
        in_tail = ops.cast(targets, "int32") >= self.shortlist_size
        head = super().log_prob(hidden, self._columns(targets))
        if tail_log_prob is None:
            if isinstance(in_tail, np.ndarray | tf.Tensor) and not tf.is_symbolic_tensor(in_tail) and np.any(in_tail):
                raise ValueError("targets outside the shortlist need tail_log_prob (the n-gram's log P(w | C, tail)).")
            return head
        return head + ops.where(in_tail, ops.cast(tail_log_prob, "float32"), 0.0)

    def training_loss(self, hidden, targets):
        return -super().log_prob(hidden, self._columns(targets))

    def get_config(self):
        return {**super().get_config(), "shortlist_size": self.shortlist_size}


def huffman_codes(counts: np.ndarray):
    """Binary Huffman tree over word counts: (paths [V, D] internal-node ids, codes [V, D] in {0, 1},
    lengths [V]). Frequent words get short paths (expected depth within 1 of the entropy)."""
    heap = [(float(c) + 1e-3, i, i) for i, c in enumerate(counts)]  # (weight, tie-break, node)
    heapq.heapify(heap)
    vocab_size = len(counts)
    parent, bit = np.zeros(2 * vocab_size - 1, np.int64), np.zeros(2 * vocab_size - 1, np.int64)
    next_node = vocab_size
    while len(heap) > 1:
        w0, _, n0 = heapq.heappop(heap)
        w1, _, n1 = heapq.heappop(heap)
        parent[n0], bit[n0], parent[n1], bit[n1] = next_node, 0, next_node, 1
        heapq.heappush(heap, (w0 + w1, next_node, next_node))
        next_node += 1
    root = next_node - 1
    paths, codes = [], []
    for word in range(vocab_size):
        path, code, node = [], [], word
        while node != root:
            path.append(parent[node] - vocab_size)  # internal nodes numbered 0..V-2
            code.append(bit[node])
            node = parent[node]
        paths.append(path[::-1])
        codes.append(code[::-1])
    lengths = np.array([len(p) for p in paths])
    pad = lambda rows: np.array([r + [0] * (lengths.max() - len(r)) for r in rows], np.int32)  # noqa: E731
    return pad(paths), pad(codes), lengths.astype(np.int32)


def frequency_classes(counts: np.ndarray, num_classes: int):
    """Words sorted by frequency and cut into `num_classes` classes of equal size (about sqrt|V|
    words each), so the frequent words share classes. Returns (class of each word, position in its
    class, members [C, S] padded with -1)."""
    order = np.argsort(-counts, kind="stable")
    size = math.ceil(len(counts) / num_classes)
    word_class, position = np.zeros(len(counts), np.int32), np.zeros(len(counts), np.int32)
    word_class[order] = np.arange(len(counts)) // size
    position[order] = np.arange(len(counts)) % size
    members = np.full((num_classes, size), -1, np.int32)
    members[word_class, position] = np.arange(len(counts))
    return word_class, position, members


@keras.saving.register_keras_serializable(package="dlsuite")
class HierarchicalSoftmax(VocabularyOutput):
    """Hierarchical softmax (eqs. 12.11–12.12): P(w | h) = product of the decisions on w's path.

    tree="classes": P(w|h) = P(c(w)|h) P(w|c(w), h), a softmax over about sqrt|V| classes, then
    one within the class (cost O(sqrt|V|) per token). tree="huffman": a binary Huffman tree from
    the counts, P(w|h) = prod_k sigmoid(+-(h . v_k + b_k)) over w's path (cost O(log|V|)).
    Only the target's class block or path is gathered in `log_prob`: training never touches all |V|
    output vectors.
    """

    def __init__(self, vocab_size, counts, tree="classes", num_classes=None, **kwargs):
        super().__init__(vocab_size, **kwargs)
        self.counts = _check_counts(counts, self.vocab_size)
        if tree not in ("classes", "huffman"):
            raise ValueError(f"tree must be 'classes' or 'huffman', got {tree!r}.")
        self.tree = tree
        self.num_classes = int(num_classes or max(2, round(math.sqrt(self.vocab_size))))
        if tree == "classes":
            if not 2 <= self.num_classes <= self.vocab_size:
                raise ValueError(f"num_classes must be in [2, vocab_size], got {self.num_classes}.")
            word_class, position, members = frequency_classes(self.counts, self.num_classes)
            self._word_class, self._position = tf.constant(word_class), tf.constant(position)
            self._members = tf.constant(np.maximum(members, 0))
            self._member_mask = tf.constant(members >= 0)
        else:
            paths, codes, lengths = huffman_codes(self.counts)
            self.code_lengths = lengths
            self._paths, self._signs = tf.constant(paths), tf.constant(2.0 * codes - 1.0, tf.float32)
            self._path_mask = tf.constant(np.arange(paths.shape[1])[None] < lengths[:, None], tf.float32)

    def build(self, hidden_shape):
        hidden = hidden_shape[-1]
        rows = self.vocab_size if self.tree == "classes" else self.vocab_size - 1
        self.node_kernel = self.add_weight(name="node_kernel", shape=(rows, hidden), initializer="glorot_uniform")
        self.node_bias = self.add_weight(name="node_bias", shape=(rows,), initializer="zeros")
        if self.tree == "classes":
            self.class_kernel = self.add_weight(name="class_kernel", shape=(hidden, self.num_classes),
                                                initializer="glorot_uniform")
            self.class_bias = self.add_weight(name="class_bias", shape=(self.num_classes,), initializer="zeros")

    def log_prob(self, hidden, targets):
        flat, targets, lead = _flat(hidden, targets)
        if self.tree == "classes":
            out = self._class_log_prob(flat, targets)
        else:
            out = self._huffman_log_prob(flat, targets)
        return ops.reshape(out, lead)

    def _class_log_prob(self, hidden, targets):
        cls = tf.gather(self._word_class, targets)
        class_lp = tf.gather(tf.nn.log_softmax(hidden @ self.class_kernel + self.class_bias), cls, batch_dims=1)
        members = tf.gather(self._members, cls)  # [N, S]: only the target's class
        logits = tf.einsum("nh,nsh->ns", hidden, tf.gather(self.node_kernel, members)) + tf.gather(self.node_bias, members)
        logits = tf.where(tf.gather(self._member_mask, cls), logits, -1e9)
        word_lp = tf.gather(tf.nn.log_softmax(logits), tf.gather(self._position, targets), batch_dims=1)
        return class_lp + word_lp

    def _huffman_log_prob(self, hidden, targets):
        nodes = tf.gather(self._paths, targets)  # [N, D]
        z = tf.einsum("nh,ndh->nd", hidden, tf.gather(self.node_kernel, nodes)) + tf.gather(self.node_bias, nodes)
        return tf.reduce_sum(tf.math.log_sigmoid(tf.gather(self._signs, targets) * z) * tf.gather(self._path_mask, targets), -1)

    def log_probs(self, hidden):
        flat, lead = _flat(hidden)
        if self.tree == "classes":
            class_lp = tf.nn.log_softmax(flat @ self.class_kernel + self.class_bias)  # [N, C]
            logits = flat @ tf.transpose(self.node_kernel) + self.node_bias  # [N, V]
            grouped = tf.where(self._member_mask, tf.gather(logits, self._members, axis=1), -1e9)  # [N, C, S]
            norm = tf.reduce_logsumexp(grouped, axis=-1)  # [N, C]
            out = tf.gather(class_lp - norm, self._word_class, axis=1) + logits
        else:
            z = flat @ tf.transpose(self.node_kernel) + self.node_bias  # [N, V-1]
            per_node = tf.math.log_sigmoid(self._signs[None] * tf.gather(z, self._paths, axis=1))  # [N, V, D]
            out = tf.reduce_sum(per_node * self._path_mask[None], -1)
        return tf.reshape(out, tf.concat([lead, [self.vocab_size]], 0))

    def get_config(self):
        return {**super().get_config(), "counts": self.counts.tolist(), "tree": self.tree,
                "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="dlsuite")
class SampledSoftmax(FullSoftmax):
    """Importance-sampled softmax (eqs. 12.13–12.18), evaluated exactly.

    The negative phase of the log-likelihood gradient is estimated from m words drawn from the
    proposal q ∝ count^power, with the self-normalized weights of biased importance sampling
    (12.18): a softmax over the target and the samples with each logit corrected by -log(m q).
    `tf.nn.sampled_softmax_loss` computes exactly that (remove_accidental_hits drops samples equal
    to the target), so we use it rather than re-deriving it.
    """

    def __init__(self, vocab_size, counts, num_samples=256, proposal_power=1.0, **kwargs):
        super().__init__(vocab_size, **kwargs)
        self.counts = _check_counts(counts, self.vocab_size)
        if not 1 <= num_samples < vocab_size:
            raise ValueError(f"num_samples must be in [1, vocab_size={vocab_size}), got {num_samples}.")
        if proposal_power < 0:
            raise ValueError(f"proposal_power must be >= 0, got {proposal_power}.")
        self.num_samples, self.proposal_power = int(num_samples), float(proposal_power)

    def _samples(self, targets):
        # Counts floored at 1: ids never seen in training still get pushed down as negatives.
        return tf.random.fixed_unigram_candidate_sampler(
            true_classes=tf.cast(targets[:, None], tf.int64), num_true=1, num_sampled=self.num_samples, unique=True,
            range_max=self.vocab_size, distortion=self.proposal_power, unigrams=np.maximum(self.counts, 1).tolist())

    def training_loss(self, hidden, targets):
        flat, targets, lead = _flat(hidden, targets)
        loss = tf.nn.sampled_softmax_loss(
            weights=tf.transpose(self.kernel), biases=self.bias, labels=tf.cast(targets[:, None], tf.int64),
            inputs=flat, num_sampled=self.num_samples, num_classes=self.vocab_size,
            sampled_values=self._samples(targets), remove_accidental_hits=True)
        return ops.reshape(loss, lead)

    def get_config(self):
        return {**super().get_config(), "counts": self.counts.tolist(), "num_samples": self.num_samples,
                "proposal_power": self.proposal_power}


@keras.saving.register_keras_serializable(package="dlsuite")
class NoiseContrastiveSoftmax(SampledSoftmax):
    """Noise-contrastive estimation: logistic regression of data words against m noise words from
    q (tf.nn.nce_loss); the softmax's normalization is learned, and evaluation normalizes exactly."""

    def training_loss(self, hidden, targets):
        flat, targets, lead = _flat(hidden, targets)
        loss = tf.nn.nce_loss(
            weights=tf.transpose(self.kernel), biases=self.bias, labels=tf.cast(targets[:, None], tf.int64),
            inputs=flat, num_sampled=self.num_samples, num_classes=self.vocab_size,
            sampled_values=self._samples(targets), remove_accidental_hits=True)
        return ops.reshape(loss, lead)


@keras.saving.register_keras_serializable(package="dlsuite")
class RankingSoftmax(SampledSoftmax):
    """Ranking loss (eq. 12.19): L = sum_i max(0, margin - a_y + a_i) over m sampled negatives i != y.

    Hand-written: no library ships this loss for sampled vocabularies. The scores a = h W + b are
    the full softmax's logits, so evaluation is the exact softmax of the same scores.
    """

    def __init__(self, vocab_size, counts, num_samples=256, proposal_power=1.0, margin=1.0, **kwargs):
        super().__init__(vocab_size, counts, num_samples, proposal_power, **kwargs)
        self.margin = float(margin)

    def training_loss(self, hidden, targets):
        flat, targets, lead = _flat(hidden, targets)
        sampled = tf.cast(self._samples(targets)[0], tf.int32)  # [m], shared by the batch
        target_score = tf.reduce_sum(flat * tf.gather(tf.transpose(self.kernel), targets), -1) + tf.gather(self.bias, targets)
        negative = flat @ tf.gather(self.kernel, sampled, axis=1) + tf.gather(self.bias, sampled)  # [N, m]
        hinge = tf.nn.relu(self.margin - target_score[:, None] + negative)
        hinge = tf.where(sampled[None] == targets[:, None], 0.0, hinge)  # the target is not its own negative
        return ops.reshape(tf.reduce_sum(hinge, -1), lead)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


def make_vocabulary_output(kind: str, vocab_size: int, counts, hidden_size: int | None = None, **options):
    """The output layer named `kind` (one of OUTPUT_KINDS); `options` go to its constructor."""
    del hidden_size  # layers build from the hidden shape they first see
    if kind == "full":
        return FullSoftmax(vocab_size, name="vocabulary_output", **options)
    if kind == "shortlist":
        return ShortlistSoftmax(vocab_size, name="vocabulary_output", **options)
    if kind in ("hierarchical_classes", "huffman"):
        tree = "classes" if kind == "hierarchical_classes" else "huffman"
        return HierarchicalSoftmax(vocab_size, counts, tree=tree, name="vocabulary_output", **options)
    layers = {"sampled": SampledSoftmax, "nce": NoiseContrastiveSoftmax, "ranking": RankingSoftmax}
    if kind in layers:
        return layers[kind](vocab_size, counts, name="vocabulary_output", **options)
    raise ValueError(f"unknown output {kind!r}; choose one of {OUTPUT_KINDS}.")
