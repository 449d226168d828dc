"""Output layers for large vocabularies (the applications chapter, section 12.4.3).

A full affine + softmax output costs O(n_h |V|) per token (eqs. 12.8-12.9), which dominates a
neural language model once |V| reaches tens of thousands of words. Each layer here turns hidden
states `[..., H]` into word probabilities another way, behind one interface:

    log_probs(hidden)              [..., H] -> [..., V]  exact, normalized natural logs
    log_prob(hidden, targets)      [..., H], int [...] -> [...]  exact log P(target | hidden)
    training_loss(hidden, targets) [...]  the per-token training objective

- `FullSoftmax`: softmax(h W^T + b), the baseline (12.8-12.9).
- `ShortlistSoftmax` (12.10): the frequent words plus one "tail" unit; the caller's n-gram
  supplies P(w | C, w in tail).
- `HierarchicalSoftmax` (12.11-12.12): a two-level tree of equal-size classes of words in
  frequency order (about sqrt|V| classes, one padded block of vectors each) or a binary Huffman
  tree; exact, O(sqrt|V|) or O(log|V|) output vectors per token.
- `SampledSoftmax` (12.13-12.18), `NoiseContrastiveSoftmax`, `RankingSoftmax` (12.19): trained
  on the target plus m words sampled from a unigram proposal, evaluated with the exact softmax of
  the same [V, H] weights, so their perplexities compare with the others' (the ranking scores
  after a two-number calibration fitted on held-out data, `RankingSoftmax.calibrate`).

Word ids are vocabulary ids, ordered by decreasing frequency (the shortlist relies on it);
`counts` are unigram training counts per id (the trees and the proposals are built from them).
They are no part of a layer's config (|V| numbers): a `.keras` file keeps them as an asset.
All computation is float32, also under a mixed-precision policy: log-probabilities of rare words
and the normalizers over |V| terms need float32's range and precision.

The layers use `tf` ops rather than `keras.ops`: the candidate sampler, the sampled losses,
segment reductions and sparse products have no `keras.ops` counterpart, and the suite runs on the
TensorFlow backend. Everything works in `tf.function`, `model.fit` and SavedModel exports.
"""

from __future__ import annotations

import heapq
import math
import os
import typing

import keras
import numpy as np
import tensorflow as tf

OutputKind = typing.Literal[
    "full", "shortlist", "hierarchical_classes", "huffman", "sampled", "nce", "ranking"
]
OUTPUT_KINDS = typing.get_args(OutputKind)


# === Arguments and shapes ===
def _check_vocab_size(vocab_size) -> int:
    if int(vocab_size) != vocab_size or vocab_size < 2:
        raise ValueError(
            f"vocab_size must be an integer >= 2, got {vocab_size}: "
            "a vocabulary of one word has nothing to predict."
        )
    return int(vocab_size)


def _check_counts(counts, vocab_size: int) -> np.ndarray:
    counts = np.asarray(counts, np.float64)
    if counts.shape != (vocab_size,):
        raise ValueError(
            f"counts must hold one unigram count per word id: length {vocab_size} "
            f"(vocab_size) expected, got shape {counts.shape}."
        )
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError("counts must be finite and non-negative (they are unigram counts).")
    if not np.any(counts > 0):
        raise ValueError(
            "counts are all zero: the trees and the sampling proposals are built from the "
            "training unigram counts, and these say no word was ever seen."
        )
    return counts


def _smoothed(counts: np.ndarray) -> np.ndarray:
    """Counts with zeros raised to half the smallest positive count.

    A word unseen in training still needs q(w) > 0: as a target its importance correction
    -log(m q) would be infinite, and it could never be pushed down as a negative.
    """
    return np.where(counts > 0, counts, counts[counts > 0].min() / 2)


def _flatten(hidden, targets=None):
    """[..., H] -> float32 [N, H] (and int [...] -> int32 [N]), so each method works on any rank."""
    hidden = tf.cast(hidden, tf.float32)
    flat = tf.reshape(hidden, [-1, tf.shape(hidden)[-1]])
    if targets is None:
        return flat
    targets = tf.convert_to_tensor(targets)
    if hidden.shape.rank is not None and targets.shape.rank is not None:
        if not hidden.shape[:-1].is_compatible_with(targets.shape):
            raise ValueError(
                f"targets must have the hidden states' leading shape: hidden {hidden.shape}, "
                f"targets {targets.shape}."
            )
    return flat, tf.reshape(tf.cast(targets, tf.int32), [-1])


def _like_targets(values, targets):
    """[N] -> the targets' shape [...]."""
    targets = tf.convert_to_tensor(targets)
    out = tf.reshape(values, tf.shape(targets))
    out.set_shape(targets.shape)
    return out


def _with_columns(values, hidden, columns: int):
    """[N, K] -> [..., K] with the hidden states' leading shape."""
    hidden = tf.convert_to_tensor(hidden)
    out = tf.reshape(values, tf.concat([tf.shape(hidden)[:-1], [columns]], 0))
    out.set_shape(hidden.shape[:-1].concatenate([columns]))
    return out


def _eager_constant(value, dtype):
    """A constant created eagerly even when first needed inside a `tf.function` trace.

    Traced functions capture it by reference (one copy, saved once in a SavedModel) instead of
    baking an O(|V|) array into every graph.
    """
    with tf.init_scope():
        return tf.constant(value, dtype)


COUNTS_ASSET = "counts.npy"


class _UnigramCounts:
    """The `counts` of an output layer built from them (a tree, a sampling proposal).

    They stay out of `get_config()`: |V| numbers are no setting, and a config that held them
    would make every saved `config.json` O(|V|). Like keras-hub's tokenizers with their
    vocabularies, the layer saves them as an asset of the `.keras` file (`counts.npy`, exact
    float64) and `keras.saving.load_model` gives them back. A layer made with `counts=None`
    (`from_config` does that) waits for them: `set_counts`, or the assets of a `.keras` file.
    """

    def set_counts(self, counts) -> None:
        """Sets the unigram counts (one per word id) and rebuilds what is derived from them."""
        self.counts = _check_counts(counts, self.vocab_size)
        self._use_counts()

    def _use_counts(self) -> None:
        raise NotImplementedError

    def _require_counts(self) -> None:
        if self.counts is None:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} has no unigram counts: pass counts when "
                "creating it or call set_counts. keras.saving.load_model restores them from the "
                ".keras file (an asset: they are not in the config)."
            )

    def save_assets(self, dir_path):
        if self.counts is not None:
            np.save(os.path.join(dir_path, COUNTS_ASSET), self.counts)

    def load_assets(self, dir_path):
        path = os.path.join(dir_path, COUNTS_ASSET) if dir_path else ""
        if os.path.isfile(path):
            self.set_counts(np.load(path))

    @classmethod
    def from_config(cls, config):
        return super().from_config({"counts": None, **config})  # counts come with the assets


# === The interface ===
@keras.saving.register_keras_serializable(package="dlsuite")
class VocabularyOutput(keras.layers.Layer):
    """Base class of the vocabulary outputs: hidden states [..., H] -> word log-probabilities.

    Subclasses implement `log_probs` (exact, normalized, for evaluation and generation) and
    `log_prob` (exact log P(target), gathering only what the method needs); `training_loss` is
    `-log_prob` unless the layer trains on a sampled surrogate. `call` is `log_probs`.

    The layer's dtype policy defaults to float32 and every method casts `hidden` to float32, so
    the outputs are float32 under a `mixed_float16` global policy too.

    Args:
        vocab_size: int >= 2. |V|, the number of word ids.
    """

    def __init__(self, vocab_size, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.vocab_size = _check_vocab_size(vocab_size)

    def call(self, hidden):
        return self.log_probs(hidden)

    def log_probs(self, hidden):
        raise NotImplementedError

    def log_prob(self, hidden, targets):
        raise NotImplementedError

    def training_loss(self, hidden, targets):
        return -self.log_prob(hidden, targets)

    @property
    def output_size(self) -> int:
        """Columns of `log_probs`: |V| (the shortlist: its size + 1)."""
        return self.vocab_size

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_size,)

    def _ensure_built(self, hidden):
        # log_prob / training_loss may be the first method called (they bypass __call__).
        if not self.built:
            self.build(tuple(hidden.shape))

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size}


class _AffineSoftmax(VocabularyOutput):
    """softmax(h W^T + b) over `output_size` rows of a [rows, H] matrix W and a bias b.

    W is stored [rows, H], like an embedding table, so that the sampled losses gather whole rows
    (their gradient is then an IndexedSlices of those rows, not a dense [V, H] tensor).
    """

    def build(self, input_shape):
        if self.built:  # the language app builds explicitly, and may be called again
            return
        hidden = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=(self.output_size, hidden), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.output_size,), initializer=self._bias_initializer()
        )

    def _bias_initializer(self):
        return "zeros"

    def _logits(self, flat):
        return tf.matmul(flat, self.kernel, transpose_b=True) + self.bias

    def log_probs(self, hidden):
        self._ensure_built(hidden)
        log_probs = tf.nn.log_softmax(self._logits(_flatten(hidden)))
        return _with_columns(log_probs, hidden, self.output_size)

    def _column_log_prob(self, hidden, columns):
        """log softmax(h W^T + b)[column], flattened to [N]."""
        self._ensure_built(hidden)
        flat, columns = _flatten(hidden, columns)
        return -tf.nn.sparse_softmax_cross_entropy_with_logits(columns, self._logits(flat))


@keras.saving.register_keras_serializable(package="dlsuite")
class FullSoftmax(_AffineSoftmax):
    """The full affine + softmax output, eqs. 12.8-12.9: P(w | h) = softmax(h W^T + b)_w.

    Every token costs O(n_h |V|) in the forward and the backward pass; it is the baseline the
    other outputs are measured against, and the parametrization ([V, H] kernel, [V] bias) the
    sampled outputs share.

    Args:
        vocab_size: int >= 2. |V|.

    Example:
    >>> output = FullSoftmax(10_000)
    >>> log_probs = output(hidden)                 # [B, T, 10000]
    >>> nll = -output.log_prob(hidden, targets)    # [B, T]
    """

    def log_prob(self, hidden, targets):
        return _like_targets(self._column_log_prob(hidden, targets), targets)

    def start_at_unigram(self, counts) -> None:
        """Sets the bias to the smoothed log unigram distribution, so that the untrained layer
        predicts about the unigram model instead of the uniform one: the start the sampled layers
        get (`_SampledOutput`). A weight, not a setting: saved and loaded with the others."""
        if not self.built:
            raise ValueError("start_at_unigram needs a built layer: call it once, or pass hidden_size.")
        smoothed = _smoothed(_check_counts(counts, self.vocab_size))
        self.bias.assign(np.log(smoothed / smoothed.sum()).astype(np.float32))


@keras.saving.register_keras_serializable(package="dlsuite")
class ShortlistSoftmax(_AffineSoftmax):
    """Shortlist output, eq. 12.10: the network models the frequent words, an n-gram the rest.

    Ids `0 .. shortlist_size - 1` (the shortlist L: ids are ordered by decreasing frequency) each
    get a softmax unit, plus one tail unit giving P(w in T | C) for the tail T = the other ids:

        P(w | C) = softmax(...)_w                      for w in L
        P(w | C) = P(T | C) * P_ngram(w | C, w in T)   for w in T

    `log_probs` returns shortlist_size + 1 columns, the last being log P(T | C). `log_prob` needs
    the n-gram's log P(w | C, w in T) as `tail_log_prob` for tail targets. Training maps every
    tail word to the tail unit, so its cost is O(n_h |L|) instead of O(n_h |V|).

    Args:
        vocab_size: int >= 2. |V|.
        shortlist_size: int in [1, vocab_size). |L|.

    Example:
    >>> output = ShortlistSoftmax(50_000, shortlist_size=2_000)
    >>> lp = output.log_prob(hidden, targets, tail_log_prob=ngram_tail_log_probs)
    """

    def __init__(self, vocab_size, shortlist_size, **kwargs):
        super().__init__(vocab_size, **kwargs)
        if int(shortlist_size) != shortlist_size or not 1 <= shortlist_size < self.vocab_size:
            raise ValueError(
                f"shortlist_size must be an integer in [1, vocab_size={self.vocab_size}), "
                f"got {shortlist_size}: the tail must hold at least one word."
            )
        self.shortlist_size = int(shortlist_size)

    @property
    def output_size(self) -> int:
        return self.shortlist_size + 1

    def _columns(self, targets):
        """Word ids -> softmax columns: tail words all map to the tail unit (column |L|)."""
        targets = tf.cast(targets, tf.int32)
        return tf.minimum(targets, self.shortlist_size)

    def log_prob(self, hidden, targets, tail_log_prob=None):
        """log P(target | C); tail targets need `tail_log_prob` = log P_ngram(w | C, w in T).

        Raises ValueError (eagerly) when tail targets are present and `tail_log_prob` is None.
        Inside a `tf.function` the targets' values are unknown when tracing, so there a missing
        `tail_log_prob` counts as 0: tail targets get log P(T | C) only.
        """
        targets = tf.convert_to_tensor(targets)
        in_tail = tf.cast(targets, tf.int32) >= self.shortlist_size
        head = _like_targets(self._column_log_prob(hidden, self._columns(targets)), targets)
        if tail_log_prob is None:
            if tf.executing_eagerly() and bool(tf.reduce_any(in_tail)):
                raise ValueError(
                    f"targets outside the shortlist (ids >= {self.shortlist_size}) need "
                    "tail_log_prob, the n-gram's log P(w | C, w in tail) (eq. 12.10)."
                )
            return head
        tail_log_prob = tf.cast(tail_log_prob, tf.float32)
        return head + tf.where(in_tail, tail_log_prob, tf.zeros_like(tail_log_prob))

    def training_loss(self, hidden, targets):
        # -log P(column): the network learns P(T | C) for tail words; the n-gram is trained apart.
        return _like_targets(-self._column_log_prob(hidden, self._columns(targets)), targets)

    def get_config(self):
        return {**super().get_config(), "shortlist_size": self.shortlist_size}


# === Trees for the hierarchical softmax ===
def _glorot_rows(shape, dtype=None):
    """Glorot-uniform for a [..., H] table as if it were [rows, H] (a [C, S, H] block table
    gets the scale of the [C S, H] matrix, not Keras' convolution-kernel fans)."""
    rows = int(np.prod(shape[:-1]))
    return tf.reshape(keras.initializers.GlorotUniform()((rows, shape[-1]), dtype), shape)


def huffman_codes(counts):
    """A binary Huffman tree over the word counts (eq. 12.12's tree, as in word2vec).

    Returns `(paths, codes, lengths)`: `paths[w, k]` is the k-th internal node (0 .. |V|-2, the
    root first) on word w's path, `codes[w, k]` in {0, 1} the branch taken there, `lengths[w]` the
    path length; rows are zero-padded to the longest path. Frequent words get short paths: the
    expected length is within one bit of the unigram entropy, O(log |V|).
    """
    counts = np.asarray(counts, np.float64)
    vocab_size = len(counts)
    # (weight, node id): equal weights merge lower ids first, so leaves pair up before the
    # internal nodes made from them, and uniform counts give a balanced tree.
    heap = [(float(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = np.zeros(2 * vocab_size - 1, np.int64)
    branch = np.zeros(2 * vocab_size - 1, np.int32)
    for node in range(vocab_size, 2 * vocab_size - 1):
        (w0, n0), (w1, n1) = heapq.heappop(heap), heapq.heappop(heap)
        parent[[n0, n1]], branch[[n0, n1]] = node, (0, 1)
        heapq.heappush(heap, (w0 + w1, node))
    root = 2 * vocab_size - 2
    parent[root] = root
    depth = np.zeros(2 * vocab_size - 1, np.int32)
    for node in range(root - 1, -1, -1):  # a parent is created after its children
        depth[node] = depth[parent[node]] + 1
    lengths = depth[:vocab_size]
    paths = np.zeros((vocab_size, lengths.max()), np.int32)
    codes = np.zeros((vocab_size, lengths.max()), np.int32)
    node, position = np.arange(vocab_size), lengths - 1
    while np.any(position >= 0):  # climb from every leaf at once, filling paths from the end
        live = np.flatnonzero(position >= 0)
        paths[live, position[live]] = parent[node[live]] - vocab_size
        codes[live, position[live]] = branch[node[live]]
        node, position = parent[node], position - 1
    return paths, codes, lengths


def balanced_classes(counts, num_classes: int):
    """Words sorted by decreasing count, cut into `num_classes` consecutive runs of equal size.

    The runs differ in size by one word at most (the first `|V| mod num_classes` hold one more),
    so every class fits one padded block of ceil(|V| / num_classes) slots. Frequency binning
    (Mikolov et al. 2011: classes of equal unigram mass) would give the rare words classes of
    thousands of members at |V| = 200k, and one such class in a batch costs as much as hundreds
    of small ones; with equal sizes a token always costs one block. Keeping the frequency order
    still puts the frequent words together, so the class softmax learns the frequency band and
    the within-class softmax the word.

    Returns `(word_class, word_slot)`: each word's class and its position in the class's block.
    """
    counts = _smoothed(np.asarray(counts, np.float64))
    vocab_size = len(counts)
    order = np.argsort(-counts, kind="stable")  # word ids by decreasing count
    sizes = np.full(num_classes, vocab_size // num_classes)
    sizes[: vocab_size % num_classes] += 1
    word_class, word_slot = np.empty(vocab_size, np.int32), np.empty(vocab_size, np.int32)
    word_class[order] = np.repeat(np.arange(num_classes, dtype=np.int32), sizes)
    word_slot[order] = np.arange(vocab_size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return word_class, word_slot


CLASSES_PER_SQRT_V = 4  # the class tree's default C = 4 sqrt|V| (see HierarchicalSoftmax)


@keras.saving.register_keras_serializable(package="dlsuite")
class HierarchicalSoftmax(_UnigramCounts, VocabularyOutput):
    """Hierarchical softmax, eqs. 12.11-12.12: P(w | h) = the product of the decisions on w's path.

    `tree="classes"`: a depth-2 tree, P(w | h) = P(c(w) | h) P(w | c(w), h) with a softmax over
    C classes and a softmax over the words of c(w). The classes are runs of the words in
    frequency order, all of the same size S = ceil(|V| / C) (`balanced_classes`), and the word
    vectors are stored as one padded block per class, `node_kernel` [C, S, H]: a token gathers
    its class's block whole, O(C + S) = O(sqrt|V|) vectors, whatever its class. C = S = sqrt|V|
    minimizes C + S per token, but in a batch the C class scores are one dense product shared by
    all tokens, while every distinct class in the batch costs its S vectors in the gather and in
    a lazy optimizer's update; so C defaults to 4 sqrt|V| (S = sqrt|V| / 4), which at |V| = 200k
    steps 2.3x faster than C = sqrt|V| (BENCHMARKS.md). `tree="huffman"`:
    a binary Huffman tree built from the counts (`huffman_codes`), P(w | h) = prod_k
    sigmoid(s_k (h . v_k + b_k)) over the internal nodes k on w's path, s_k = +1 for branch 1 and
    -1 for branch 0; O(log |V|) per token.

    Both are exactly normalized. `log_prob` and `training_loss` gather only the target's class
    block or path nodes, so a training step never touches all |V| output vectors (the gradient of
    the node matrices is an IndexedSlices of those blocks or rows); `log_probs` computes all.

    Args:
        vocab_size: int >= 2. |V|.
        counts: unigram count per word id, length |V|, or None to set them later (`set_counts`,
            or a `.keras` file's assets: they are not in the config).
        tree: "classes" or "huffman".
        num_classes: int or None. Classes C of the class tree; defaults to
            min(|V|, round(4 sqrt|V|)).

    Example:
    >>> output = HierarchicalSoftmax(50_000, counts, tree="huffman")
    >>> loss = output.training_loss(hidden, targets)   # [B, T], O(log |V|) per token
    """

    def __init__(self, vocab_size, counts, tree="classes", num_classes=None, **kwargs):
        super().__init__(vocab_size, **kwargs)
        if tree not in ("classes", "huffman"):
            raise ValueError(f"tree must be 'classes' or 'huffman', got {tree!r}.")
        self.tree = tree
        # The Huffman tree's sparse product and the trees' IndexedSlices gradients stay out of XLA.
        self.supports_jit = False
        if tree == "huffman":
            if num_classes is not None:
                raise ValueError(
                    "num_classes applies to tree='classes' only; the Huffman tree is binary."
                )
            self.num_classes = None
        else:
            default = min(self.vocab_size, round(CLASSES_PER_SQRT_V * math.sqrt(self.vocab_size)))
            self.num_classes = int(num_classes or default)
            if not 1 <= self.num_classes <= self.vocab_size:
                raise ValueError(
                    f"num_classes must be in [1, vocab_size={self.vocab_size}], got {num_classes}."
                )
        self.counts = None
        if counts is not None:
            self.set_counts(counts)

    def _use_counts(self):
        if self.tree == "huffman":
            self._init_huffman()
        else:
            self._init_classes()

    @property
    def class_size(self) -> int:
        """S, the slots of each class's block: ceil(|V| / num_classes)."""
        return -(-self.vocab_size // self.num_classes)

    def _init_classes(self):
        self.word_class, self.word_slot = balanced_classes(self.counts, self.num_classes)
        self._word_class = _eager_constant(self.word_class, tf.int32)
        self._word_slot = _eager_constant(self.word_slot, tf.int32)
        # Flat block position c S + j of each word, and -inf on the empty slots (one at most, at
        # the end of the smaller classes) so that they get no probability.
        self._word_position = _eager_constant(
            self.word_class * self.class_size + self.word_slot, tf.int32
        )
        filled = np.zeros((self.num_classes, self.class_size), bool)
        filled[self.word_class, self.word_slot] = True
        self._slot_mask = _eager_constant(np.where(filled, 0.0, -np.inf), tf.float32)
        # The biases' initial values: the unigram model, log u(c) and log u(w | c), so that an
        # untrained tree predicts the (smoothed) unigram distribution. Equal-size classes in
        # frequency order hold very unequal mass (the first, the commonest words, about half of
        # it), which zero biases would start as uniform (KJV, 1 epoch: 135 instead of ..).
        unigram = _smoothed(self.counts) / _smoothed(self.counts).sum()
        class_mass = np.bincount(self.word_class, unigram, self.num_classes)
        self.class_log_prior = np.log(class_mass)  # [C]
        self.slot_log_prior = np.zeros((self.num_classes, self.class_size))  # [C, S]
        self.slot_log_prior[self.word_class, self.word_slot] = np.log(
            unigram / class_mass[self.word_class]
        )

    def _init_huffman(self):
        paths, codes, lengths = huffman_codes(_smoothed(self.counts))
        self.code_lengths, self.paths, self.codes = lengths, paths, codes
        mask = np.arange(paths.shape[1])[None] < lengths[:, None]
        words, steps = np.nonzero(mask)
        # The node biases' initial values: the unigram model, as the class tree's. Node k takes
        # branch 1 with probability sigmoid(b_k) at h = 0, so b_k = log(u(branch 1) / u(branch 0)),
        # the unigram masses under each child. (Measured on the KJV, 6 epochs: 63.10 against 62.95
        # from zeros, no gain: the tree's decisions learn their frequencies within an epoch.)
        unigram = _smoothed(self.counts) / _smoothed(self.counts).sum()
        branch_mass = np.zeros((self.vocab_size - 1, 2))
        np.add.at(branch_mass, (paths[words, steps], codes[words, steps]), unigram[words])
        self.slot_log_prior = np.log(branch_mass[:, 1]) - np.log(branch_mass[:, 0])  # [V - 1]
        self._paths = _eager_constant(paths, tf.int32)
        self._signs = _eager_constant(np.where(mask, 2.0 * codes - 1.0, 0.0), tf.float32)
        # log_probs as one sparse product: row w of the [V, 2(V-1)] matrix picks log sigmoid(+z_k) (column
        # k) or log sigmoid(-z_k) (column |V|-1+k) for each node k on w's path.
        columns = paths[words, steps] + np.where(codes[words, steps] == 1, 0, self.vocab_size - 1)
        indices = np.stack([words, columns], 1).astype(np.int64)
        self._path_indices = _eager_constant(indices[np.lexsort((columns, words))], tf.int64)

    def build(self, input_shape):
        if self.built:
            return
        hidden = int(input_shape[-1])
        # classes: one vector per word slot, a [S, H] block per class (scored within the class);
        # huffman: one vector per internal node.
        rows = (
            (self.num_classes, self.class_size)
            if self.tree == "classes"
            else (self.vocab_size - 1,)
        )
        self.node_kernel = self.add_weight(
            name="node_kernel", shape=(*rows, hidden), initializer=_glorot_rows
        )
        self.node_bias = self.add_weight(
            name="node_bias", shape=rows, initializer=self._prior_initializer("slot_log_prior")
        )
        if self.tree == "classes":
            self.class_kernel = self.add_weight(
                name="class_kernel", shape=(self.num_classes, hidden), initializer="glorot_uniform"
            )
            self.class_bias = self.add_weight(
                name="class_bias",
                shape=(self.num_classes,),
                initializer=self._prior_initializer("class_log_prior"),
            )

    def _prior_initializer(self, name):
        """Both trees' biases start at the unigram model (`_init_classes`, `_init_huffman`); a
        layer without counts yet (`from_config`: weights to be loaded) at 0."""
        if self.counts is None:
            return "zeros"
        value = getattr(self, name)
        return lambda shape, dtype=None: tf.constant(value, dtype or tf.float32)

    # --- exact log P(target): only the target's class block or path ---
    def log_prob(self, hidden, targets):
        self._ensure_built(hidden)
        self._require_counts()
        flat, flat_targets = _flatten(hidden, targets)
        if self.tree == "classes":
            out = self._class_log_prob(flat, flat_targets)
        else:
            out = self._huffman_log_prob(flat, flat_targets)
        return _like_targets(out, targets)

    def _class_log_prob(self, hidden, targets):
        """log P(c(y) | h) + log P(y | c(y), h) (eq. 12.11 with a depth-2 tree), flat [N]."""
        target_class = tf.gather(self._word_class, targets)  # [N]
        class_logits = tf.matmul(hidden, self.class_kernel, transpose_b=True) + self.class_bias
        class_lp = tf.gather(tf.nn.log_softmax(class_logits), target_class, batch_dims=1)  # [N]
        # The target's class block, gathered whole: its gradient is an IndexedSlices of N blocks.
        blocks = tf.gather(self.node_kernel, target_class)  # [N, S, H]
        word_logits = tf.linalg.matvec(blocks, hidden)  # [N, S]
        word_logits += tf.gather(self.node_bias + self._slot_mask, target_class)
        word_lp = tf.nn.log_softmax(word_logits)  # [N, S], -inf on empty slots
        return class_lp + tf.gather(word_lp, tf.gather(self._word_slot, targets), batch_dims=1)

    def _huffman_log_prob(self, hidden, targets):
        nodes = tf.gather(self._paths, targets)  # [N, D]; padding steps have sign 0
        z = tf.einsum("nh,ndh->nd", hidden, tf.gather(self.node_kernel, nodes))
        z += tf.gather(self.node_bias, nodes)
        signs = tf.gather(self._signs, targets)
        return tf.reduce_sum(tf.math.log_sigmoid(signs * z) * tf.abs(signs), -1)

    # --- exact log P(w) for every w ---
    def log_probs(self, hidden):
        self._ensure_built(hidden)
        self._require_counts()
        flat = _flatten(hidden)
        if self.tree == "classes":
            out = self._class_log_probs(flat)
        else:
            out = self._huffman_log_probs(flat)
        return _with_columns(out, hidden, self.vocab_size)

    def _class_log_probs(self, hidden):
        class_logits = tf.matmul(hidden, self.class_kernel, transpose_b=True) + self.class_bias
        class_lp = tf.nn.log_softmax(class_logits)  # [N, C]
        slots = self.num_classes * self.class_size
        kernel = tf.reshape(self.node_kernel, [slots, -1])  # [C S, H]
        logits = tf.matmul(hidden, kernel, transpose_b=True)  # [N, C S]
        logits = tf.reshape(logits, [-1, self.num_classes, self.class_size])  # [N, C, S]
        word_lp = tf.nn.log_softmax(logits + self.node_bias + self._slot_mask)  # within each class
        by_slot = tf.reshape(word_lp + class_lp[:, :, None], [-1, slots])  # [N, C S]
        return tf.gather(by_slot, self._word_position, axis=1)  # [N, V]

    def _huffman_log_probs(self, hidden):
        z = tf.matmul(hidden, self.node_kernel, transpose_b=True) + self.node_bias  # [N, V-1]
        branch_lp = tf.concat([tf.math.log_sigmoid(z), tf.math.log_sigmoid(-z)], 1)  # [N, 2(V-1)]
        # Sum of each word's branch log-probabilities: O(N |V| log|V|) without an [N, V, D] tensor.
        paths = tf.SparseTensor(
            self._path_indices,
            tf.ones(tf.shape(self._path_indices)[:1], tf.float32),
            [self.vocab_size, 2 * (self.vocab_size - 1)],
        )
        return tf.transpose(tf.sparse.sparse_dense_matmul(paths, branch_lp, adjoint_b=True))

    def get_config(self):
        return {**super().get_config(), "tree": self.tree, "num_classes": self.num_classes}


# === Sampled training objectives, exact evaluation ===
class _SampledOutput(_UnigramCounts, FullSoftmax):
    """A FullSoftmax trained on the target plus `num_samples` words drawn from a proposal q.

    q(w) is proportional to count(w) ** proposal_power (1: the unigram; 0.75: word2vec's flatter
    choice; 0: uniform). The m samples are drawn with replacement and shared by the whole batch,
    so a step gathers N + m rows of W instead of multiplying by all |V|. Evaluation (`log_probs`,
    `log_prob`) is the exact full softmax of the same weights.

    The bias starts at the smoothed log unigram distribution log(c_w / sum c) (`log_unigram`, the
    counts smoothed as for q), not at 0: these losses only move the rows of the targets and the
    sampled words, so a word that is rarely either keeps its initial score. With zeros it would
    score 0 where trained words score about their log-probability (-5 to -15), and the exact
    softmax would hand those words most of the mass (1-epoch KJV test perplexity of NCE: 5.2
    million, BENCHMARKS.md). Starting from the unigram model, an untrained layer's exact
    perplexity is the unigram model's, and exp(score) is already a normalized probability, which
    is what NCE's self-normalization asks of it. A layer built before it has counts (`from_config`)
    starts at zeros; its weights are then meant to be loaded.
    """

    def __init__(self, vocab_size, counts, num_samples, proposal_power=1.0, **kwargs):
        super().__init__(vocab_size, **kwargs)
        if int(num_samples) != num_samples or not 1 <= num_samples < self.vocab_size:
            raise ValueError(
                f"num_samples must be an integer in [1, vocab_size={self.vocab_size}), got "
                f"{num_samples}: sampling is meant to look at fewer words than the full softmax."
            )
        if not np.isfinite(proposal_power) or proposal_power < 0:
            raise ValueError(f"proposal_power must be finite and >= 0, got {proposal_power}.")
        self.num_samples, self.proposal_power = int(num_samples), float(proposal_power)
        self.supports_jit = False  # the candidate sampler has no XLA kernel
        self.counts = None
        if counts is not None:
            self.set_counts(counts)

    def _use_counts(self):
        smoothed = _smoothed(self.counts)
        # q in float64 from the largest count down, so that a high power cannot overflow.
        with np.errstate(under="ignore"):
            weights = (smoothed / smoothed.max()) ** self.proposal_power
        proposal = weights / weights.sum()
        unsampled = int(np.sum(proposal.astype(np.float32) == 0))
        if unsampled:
            raise ValueError(
                f"the proposal gives {unsampled} of {self.vocab_size} words probability 0 "
                f"(q proportional to count ** proposal_power={self.proposal_power:g} underflows): "
                "they could never be sampled and their -log(m q) correction is infinite. "
                "Use a smaller proposal_power (0.75 and 1.0 are the usual ones)."
            )
        self.proposal = proposal  # q, for inspection and tests
        self._proposal_list = proposal.tolist()  # the sampler's weights (normalized already)
        self.log_unigram = np.log(smoothed / smoothed.sum())  # [V], the bias's initial value

    def _bias_initializer(self):
        if self.counts is None:
            return "zeros"
        log_unigram = self.log_unigram
        return lambda shape, dtype=None: tf.constant(log_unigram, dtype or tf.float32)

    def sample(self, targets):
        """m words from q for flat targets [N]: (sampled [m], expected counts of the targets [N, 1]
        and of the samples [m]), the `sampled_values` triple of `tf.nn.sampled_softmax_loss`.

        unique=False draws i.i.d. with replacement, so the expected count of w is exactly m q(w)
        and the -log(expected count) correction is eq. 12.18's -log(m q).
        """
        self._require_counts()
        return tf.random.fixed_unigram_candidate_sampler(
            true_classes=tf.cast(tf.reshape(targets, [-1, 1]), tf.int64),
            num_true=1,
            num_sampled=self.num_samples,
            unique=False,
            range_max=self.vocab_size,
            distortion=1.0,  # the power is in q already
            unigrams=self._proposal_list,
        )

    def training_loss(self, hidden, targets):
        self._ensure_built(hidden)
        flat, flat_targets = _flatten(hidden, targets)
        loss = self.sampled_loss(flat, flat_targets, self.sample(flat_targets))
        return _like_targets(loss, targets)

    def sampled_loss(self, hidden, targets, sampled_values):
        """The per-token objective for flat hidden [N, H], targets [N] and given samples."""
        raise NotImplementedError

    def _tensorflow_loss(self, loss_fn, hidden, targets, sampled_values, remove_accidental_hits):
        """Calls tf.nn.sampled_softmax_loss or tf.nn.nce_loss with this layer's weights."""
        return loss_fn(
            weights=self.kernel,
            biases=self.bias,
            labels=tf.cast(targets[:, None], tf.int64),
            inputs=hidden,
            num_sampled=self.num_samples,
            num_classes=self.vocab_size,
            sampled_values=sampled_values,
            remove_accidental_hits=remove_accidental_hits,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_samples": self.num_samples,
            "proposal_power": self.proposal_power,
        }


@keras.saving.register_keras_serializable(package="dlsuite")
class SampledSoftmax(_SampledOutput):
    """Importance-sampled softmax, eqs. 12.13-12.18; evaluated with the exact full softmax.

    The log-likelihood gradient is da_y/dθ - sum_i P(i | C) da_i/dθ (12.13-12.16); its negative
    phase is estimated with m words n_i ~ q and biased importance sampling (12.17-12.18): weights
    w_i = (p_{n_i} / q_{n_i}) / sum_j (p_{n_j} / q_{n_j}), p = exp(a). That is the gradient of a
    softmax cross-entropy over the target and the sampled logits, each corrected by -log(m q).

    `tf.nn.sampled_softmax_loss` computes exactly this (with `unique=False` samples, see
    `sample`), so we use the library rather than hand-written code; the tests check it against a
    NumPy version of the formula and check that its gradient, averaged over draws, approaches the
    exact one. It differs from 12.18 in keeping the target's own corrected logit
    a_y - log(m q_y) in the normalizer (as Jean et al. 2015 do). With `remove_accidental_hits=True`
    (used here) samples equal to the target are dropped and that one term stands in for them: the
    expected normalizer is sum_{i != y} p_i + p_y / (m q_y), exact when m q_y = 1. It is not wrong,
    but it is biased for very frequent targets (m q_y >> 1), whose weight in the negative phase
    tends to 0 instead of P(y | C). Keeping the hits removes that limit bias but double-counts
    the target at small m; in our measurements (|V| = 30-100, m = 5-50) dropping them gave the
    averaged gradient closer to the exact one, so we keep the library default.

    Args:
        vocab_size: int >= 2. |V|.
        counts: unigram count per word id, length |V| (None: set later, see `set_counts`).
        num_samples: int in [1, |V|). m, drawn with replacement and shared by the batch.
        proposal_power: float >= 0. q proportional to count ** power. Defaults to 1.0.

    Example:
    >>> output = SampledSoftmax(200_000, counts, num_samples=512, proposal_power=0.75)
    >>> loss = output.training_loss(hidden, targets)   # [B, T], cost O(n_h (N + m))
    >>> log_probs = output(hidden)                     # exact, [B, T, 200000]
    """

    def sampled_loss(self, hidden, targets, sampled_values):
        return self._tensorflow_loss(
            tf.nn.sampled_softmax_loss, hidden, targets, sampled_values, True
        )


@keras.saving.register_keras_serializable(package="dlsuite")
class NoiseContrastiveSoftmax(_SampledOutput):
    """Noise-contrastive estimation (Gutmann & Hyvärinen; Mnih & Teh 2012 for language models).

    A logistic regression tells the data word from m noise words drawn from q:
    L = -log σ(a_y - log(m q_y)) - sum_i log(1 - σ(a_{n_i} - log(m q_{n_i}))). This is the
    self-normalized NCE of Mnih & Teh (2012, sec. 3): the model's P(w | C) is exp(a_w) itself,
    the per-context normalizer fixed at Z = 1 (log Z = 0) rather than learned, which they found did
    not hurt, so σ(a_w - log(m q_w)) is the posterior that w came from the data and not from the m
    noise draws. No normalizer is learned here either: `tf.nn.nce_loss` computes exactly these
    logits (scores minus log of the expected count m q) with a sigmoid cross-entropy, so we use
    it. The scores so learn to be normalized on their own; evaluation still normalizes exactly.
    With the log-unigram bias (see `_SampledOutput`) they start normalized. Noise words equal to
    the target stay in the loss (remove_accidental_hits=False), as in the NCE objective: they are
    genuine noise draws.

    Args:
        vocab_size: int >= 2. |V|.
        counts: unigram count per word id, length |V| (None: set later, see `set_counts`).
        num_samples: int in [1, |V|). m noise words per step, shared by the batch.
        proposal_power: float >= 0. The noise q proportional to count ** power. Defaults to 1.0.

    Example:
    >>> output = NoiseContrastiveSoftmax(50_000, counts, num_samples=100)
    """

    def sampled_loss(self, hidden, targets, sampled_values):
        return self._tensorflow_loss(tf.nn.nce_loss, hidden, targets, sampled_values, False)


PAIRWISE_LOSSES = ("hinge", "squared_hinge", "logistic")


@keras.saving.register_keras_serializable(package="dlsuite")
class RankingSoftmax(_SampledOutput):
    """Ranking (hinge) loss, eq. 12.19: L = sum_i max(0, margin - a_y + a_i) over sampled negatives.

    The negatives i are m words drawn from q, the target excluded (a sample equal to the target
    contributes nothing). The scores a = h W^T + b are trained only to put the target above the
    sampled words by the margin: their scale is arbitrary, and a word's score stays relative to
    how often it is drawn as a negative (like other sampled losses, the scores learn something
    closer to log P(w | h) - log q(w) than to log P(w | h)). So the exact probabilities are a
    calibrated softmax of the scores,

        P(w | h) = softmax_w(beta a_w + gamma log u_w)       u: the smoothed unigram distribution

    with two scalars fitted on held-out data by `calibrate` (minimizing the exact NLL): beta
    rescales the scores, gamma puts back the unigram prior that the comparison with q-drawn
    negatives removed. Before calibration beta = 1, gamma = 0 (the plain softmax of the scores).
    They are non-trainable weights (`score_scale`, `prior_scale`), so a `.keras` file and a
    SavedModel keep them, and graphs traced before `calibrate` read the new values. Training
    ignores them. Hand-written: neither Keras nor TensorFlow provides a sampled ranking loss.

    Why calibration cannot fix everything: per pair (w, v), with r = (P(w)/q(w)) / (P(v)/q(v)),
    the expected loss is minimized at a score gap d = a_w - a_v of
        hinge (eq. 12.19):        d = margin * sign(log r)      (a rank, no probability left)
        squared_hinge, [.]_+^2:   d = margin * tanh(log(r) / 2)  (graded, saturating)
        logistic, softplus(-d):   d = log r                      (a proper loss: a = log P/q + c)
    so only the smooth forms keep probabilities in the scores. Measured on the KJV
    (BENCHMARKS.md), the hinge with margin 3 still gives the best perplexity at our budgets.

    Args:
        vocab_size: int >= 2. |V|.
        counts: unigram count per word id, length |V| (None: set later, see `set_counts`).
        num_samples: int in [1, |V|). m negatives per step, shared by the batch.
        margin: float > 0. The score gap asked for (not used by "logistic"). Defaults to 1.0.
        proposal_power: float >= 0. q proportional to count ** power. Defaults to 1.0.
        pairwise: "hinge" (eq. 12.19, the default), "squared_hinge" or "logistic": the loss of
            each (target, negative) pair.

    Example:
    >>> output = RankingSoftmax(50_000, counts, num_samples=64, margin=1.0)
    >>> output.calibrate(validation_hidden, validation_targets)   # {"beta": ..., "gamma": ...}
    >>> log_probs = output(hidden)                                 # calibrated, exact
    """

    def __init__(self, vocab_size, counts, num_samples, margin=1.0, proposal_power=1.0, pairwise="hinge",
                 **kwargs):
        super().__init__(vocab_size, counts, num_samples, proposal_power, **kwargs)
        if not np.isfinite(margin) or margin <= 0:
            raise ValueError(f"margin must be finite and > 0, got {margin}.")
        if pairwise not in PAIRWISE_LOSSES:
            raise ValueError(f"pairwise must be one of {', '.join(PAIRWISE_LOSSES)}, got {pairwise!r}.")
        self.margin = float(margin)
        self.pairwise = pairwise

    def _use_counts(self):
        super()._use_counts()
        self._log_unigram = _eager_constant(self.log_unigram, tf.float32)

    def build(self, input_shape):
        if self.built:
            return
        super().build(input_shape)
        self.score_scale = self.add_weight(
            name="score_scale", shape=(), initializer="ones", trainable=False
        )
        self.prior_scale = self.add_weight(
            name="prior_scale", shape=(), initializer="zeros", trainable=False
        )

    def _logits(self, flat):
        self._require_counts()
        return self.score_scale * super()._logits(flat) + self.prior_scale * self._log_unigram

    @property
    def calibration(self) -> dict:
        """The calibration in use: {"beta": score scale, "gamma": weight of log u}."""
        return {"beta": float(self.score_scale.numpy()), "gamma": float(self.prior_scale.numpy())}

    def set_calibration(self, beta=1.0, gamma=0.0) -> None:
        """Sets P(w | h) = softmax(beta a + gamma log u); (1, 0) is the uncalibrated softmax."""
        self.score_scale.assign(float(beta))
        self.prior_scale.assign(float(gamma))

    def calibrate(self, hidden, targets, prior=True, max_iterations=30, chunk_size=4096) -> dict:
        """Fits (beta, gamma) to minimize the exact mean NLL of softmax(beta a + gamma log u) on
        held-out hidden states [..., H] and their targets [...], sets them and returns them.
        `prior=False` fits beta alone (one temperature, 1 / beta), with gamma = 0.

        The NLL is convex in theta = (beta, gamma): with features f_w = (a_w, log u_w), its
        gradient is E_p[f] - f_y and its Hessian Cov_p[f] (p the calibrated softmax), so Newton
        steps find it, halved back whenever the NLL rises. Each step is one pass over the data,
        `chunk_size` tokens of [chunk, V] scores at a time.
        """
        self._ensure_built(hidden)
        self._require_counts()
        flat, flat_targets = _flatten(hidden, targets)
        theta = np.array([1.0, 0.0]) if prior else np.array([1.0])
        best = (np.inf, theta)
        for _ in range(max_iterations):
            nll, gradient, hessian = self._calibration_terms(flat, flat_targets, theta, chunk_size)
            if nll > best[0]:  # overshot: back half way to the best point
                theta = (theta + best[1]) / 2
                continue
            best = (nll, theta)
            step = np.linalg.solve(hessian + 1e-9 * np.eye(len(theta)), gradient)
            theta = theta - step
            if np.max(np.abs(step)) < 1e-6 * (1 + np.max(np.abs(theta))):
                break
        beta, gamma = (*best[1], 0.0)[:2]
        self.set_calibration(beta, gamma)
        return self.calibration

    def _calibration_terms(self, flat, targets, theta, chunk_size):
        """Mean NLL, gradient [K] and Hessian [K, K] of softmax(theta . f) over the data."""
        k = len(theta)
        nll, gradient, hessian = 0.0, np.zeros(k), np.zeros((k, k))
        for start in range(0, int(flat.shape[0]), chunk_size):
            scores = super()._logits(flat[start : start + chunk_size])  # [n, V], uncalibrated a
            features = [scores, tf.broadcast_to(self._log_unigram, tf.shape(scores))][:k]
            logits = sum(float(t) * f for t, f in zip(theta, features, strict=True))  # [n, V]
            p = tf.nn.softmax(logits)
            chunk_targets = targets[start : start + chunk_size]
            nll += float(
                tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(chunk_targets, logits))
            )
            means = [tf.reduce_sum(p * f, -1) for f in features]  # E_p[f_i], [n] each
            centred = [f - mean[:, None] for f, mean in zip(features, means, strict=True)]
            for i in range(k):
                target = tf.gather(features[i], chunk_targets, batch_dims=1)
                gradient[i] += float(tf.reduce_sum(means[i] - target))
                for j in range(i, k):
                    hessian[i, j] = hessian[j, i] = hessian[i, j] + float(
                        tf.reduce_sum(p * centred[i] * centred[j])
                    )
        n = int(flat.shape[0])
        return nll / n, gradient / n, hessian / n

    def sampled_loss(self, hidden, targets, sampled_values):
        negatives = tf.cast(sampled_values[0], tf.int32)  # [m]
        target_score = tf.reduce_sum(hidden * tf.gather(self.kernel, targets), -1)
        target_score += tf.gather(self.bias, targets)  # [N]
        scores = tf.matmul(hidden, tf.gather(self.kernel, negatives), transpose_b=True)
        scores += tf.gather(self.bias, negatives)  # [N, m]
        if self.pairwise == "hinge":
            pair_loss = tf.nn.relu(self.margin - target_score[:, None] + scores)
        elif self.pairwise == "squared_hinge":
            pair_loss = tf.square(tf.nn.relu(self.margin - target_score[:, None] + scores))
        else:  # "logistic": softplus(a_i - a_y), a proper pairwise loss (class docstring)
            pair_loss = tf.nn.softplus(scores - target_score[:, None])
        is_target = tf.equal(negatives[None, :], targets[:, None])
        return tf.reduce_sum(tf.where(is_target, tf.zeros_like(pair_loss), pair_loss), -1)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "pairwise": self.pairwise}


# === Factory ===
DEFAULT_NUM_SAMPLES = 256


def make_vocabulary_output(kind: str, vocab_size: int, counts=None, hidden_size=None, **options):
    """The output layer called `kind` (one of OUTPUT_KINDS), named "vocabulary_output".

    Args:
        kind: "full", "shortlist", "hierarchical_classes", "huffman", "sampled", "nce" or
            "ranking".
        vocab_size: int. |V|.
        counts: unigram count per word id (needed by every kind but "full" and "shortlist"), or
            None: such a layer then waits for them (`set_counts`, or a `.keras` file's assets) and
            says so if used before.
        hidden_size: int or None. When given, the layer is built now for hidden states
            [..., hidden_size], so its weights exist before the first call.
        **options: constructor arguments: shortlist_size (default |V| // 10), num_classes,
            num_samples (default min(256, |V| - 1)), proposal_power, margin.

    Example:
    >>> output = make_vocabulary_output("huffman", len(vocab), counts, hidden_size=256)
    """
    if kind not in OUTPUT_KINDS:
        raise ValueError(
            f"unknown vocabulary output {kind!r}; valid kinds: {', '.join(OUTPUT_KINDS)}."
        )
    options.setdefault("name", "vocabulary_output")
    if kind == "full":
        layer = FullSoftmax(vocab_size, **options)
    elif kind == "shortlist":
        options.setdefault("shortlist_size", max(1, int(vocab_size) // 10))
        layer = ShortlistSoftmax(vocab_size, **options)
    elif kind in ("hierarchical_classes", "huffman"):
        tree = "classes" if kind == "hierarchical_classes" else "huffman"
        layer = HierarchicalSoftmax(vocab_size, counts, tree=tree, **options)
    else:
        options.setdefault("num_samples", min(DEFAULT_NUM_SAMPLES, int(vocab_size) - 1))
        sampled = {
            "sampled": SampledSoftmax,
            "nce": NoiseContrastiveSoftmax,
            "ranking": RankingSoftmax,
        }
        layer = sampled[kind](vocab_size, counts, **options)
    if hidden_size is not None:
        if int(hidden_size) < 1:
            raise ValueError(f"hidden_size must be >= 1, got {hidden_size}.")
        layer.build((None, int(hidden_size)))
    return layer
