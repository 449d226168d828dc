"""The language app's n-gram side: the word model, the class-based model, and shortlist tails.

The estimator itself lives in shared/ngram (the speech decoder uses it too); this file connects
it to the app's vocabulary and run folder.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dlsuite.pipelines.text import BOS_ID, EOS_ID, PAD_ID, SPECIALS
from dlsuite.shared.ngram import BackoffNGramModel, build_ngram_model, read_arpa, write_arpa
from dlsuite.shared.runs import atomic_write_json

LN10 = math.log(10.0)


def all_but_pad(vocab_size: int) -> np.ndarray:
    """The ids an n-gram gives unigrams to: every one but <pad>."""
    return np.delete(np.arange(vocab_size), PAD_ID)


def build_and_save(config, vocab, train_ids, run_dir: Path) -> AlignedNGram:
    """Word n-gram on the training split, written as `ngram.arpa` (loadable by KenLM)."""
    model = build_ngram_model(train_ids, vocab.tokens, config.ngram_order, config.ngram_smoothing,
                              config.additive_k, unigram_ids=all_but_pad(len(vocab)))
    write_arpa(model, run_dir / "ngram.arpa")
    return AlignedNGram(model, vocab.tokens)


def build_trigram(config, vocab, train_ids) -> AlignedNGram:
    """A 3-gram with the same smoothing, reported beside the main order for comparison."""
    model = build_ngram_model(train_ids, vocab.tokens, 3, config.ngram_smoothing, config.additive_k,
                              unigram_ids=all_but_pad(len(vocab)))
    return AlignedNGram(model, vocab.tokens)


def load(run_dir: Path, tokens) -> AlignedNGram:
    path = Path(run_dir) / "ngram.arpa"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the run folder must come from `dlsuite language train`.")
    return AlignedNGram(read_arpa(path), tokens)


class AlignedNGram:
    """An n-gram model seen through the app's vocabulary ids (an ARPA file orders words its own way)."""

    def __init__(self, model: BackoffNGramModel, tokens):
        self.model, self.order = model, model.order
        self.mapping = model.ids(list(tokens))  # vocabulary id -> the model's id

    def size(self) -> dict:
        return self.model.size()

    def token_log_probs(self, sentences) -> np.ndarray:
        """Natural-log P(w_t | history) for every word and </s>, in corpus order."""
        return self.model.token_log10_probs([self.mapping[np.asarray(s, np.int64)] for s in sentences])[0] * LN10

    def history_orders(self, sentences) -> np.ndarray:
        """Per scored token (as `token_log_probs`): words of its history the n-gram knows (1..N-1)."""
        return self.model.history_orders([self.mapping[np.asarray(s, np.int64)] for s in sentences])

    def tail_log_probs(self, inputs: np.ndarray, targets: np.ndarray, shortlist_size: int) -> np.ndarray:
        """log P_ngram(w | C, w in tail) for targets outside the shortlist (eq. 12.10), 0 elsewhere.

        P(w | C, tail) = P(w | C) / (1 - sum_{v in shortlist} P(v | C)); the n-gram state is advanced
        word by word along each row (rows of `inputs` start with <s>, which the state already holds).
        """
        out = np.zeros(targets.shape, np.float64)
        shortlist = np.unique(self.mapping[:shortlist_size])
        for row in range(targets.shape[0]):
            state = self.model.begin_state()
            for t in range(targets.shape[1]):
                target = int(targets[row, t])
                if target == PAD_ID:
                    break
                word = int(self.mapping[target])
                if target >= shortlist_size:
                    dist = self.model.next_word_log10_probs(state)
                    in_shortlist = np.sum(10.0 ** dist[shortlist])
                    out[row, t] = (dist[word] - math.log10(max(1.0 - in_shortlist, 1e-12))) * LN10
                _, state = self.model.score(state, word)
        return out


# === Class-based n-gram: P(w | h) = P(w | c(w)) P(c(w) | c(h)) (Brown et al. 1992) ===
def word_classes(train_ids, vocab_size: int, num_classes: int, seed: int = 0) -> np.ndarray:
    """Clusters words by their neighbours: k-means on an SVD of the PPMI matrix of (word, left/right
    word) counts. Hand-written glue over scikit-learn; the exchange algorithm that Brown clustering
    uses would need a per-word Python loop over the corpus. Specials keep a class of their own."""
    from scipy.sparse import coo_matrix, hstack
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD

    stream = np.concatenate([np.concatenate([[BOS_ID], s, [EOS_ID]]) for s in train_ids]).astype(np.int64)
    left = coo_matrix((np.ones(len(stream) - 1), (stream[1:], stream[:-1])), shape=(vocab_size, vocab_size)).tocsr()
    cooc = hstack([left, left.T]).tocsr()
    total = cooc.sum()
    rows = np.asarray(cooc.sum(axis=1)).ravel() + 1e-9
    cols = np.asarray(cooc.sum(axis=0)).ravel() + 1e-9
    cooc = cooc.tocoo()
    pmi = np.log(cooc.data * total / (rows[cooc.row] * cols[cooc.col]))
    ppmi = coo_matrix((np.maximum(pmi, 0), (cooc.row, cooc.col)), shape=cooc.shape).tocsr()
    vectors = TruncatedSVD(min(64, vocab_size - 2), random_state=seed).fit_transform(ppmi)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
    words = np.arange(len(SPECIALS), vocab_size)
    k = min(num_classes, len(words))
    labels = KMeans(k, n_init=2, random_state=seed).fit_predict(vectors[words])
    classes = np.arange(vocab_size)  # each special is a class of its own, with its id
    classes[words] = labels + len(SPECIALS)
    return classes


class ClassNGram:
    """Class n-gram (KN over class ids) times the in-class word distribution P(w | c)."""

    def __init__(self, classes: np.ndarray, class_model: BackoffNGramModel, counts: np.ndarray):
        self.classes, self.class_model = classes, class_model
        class_totals = np.bincount(classes, weights=counts, minlength=classes.max() + 1)
        with np.errstate(divide="ignore"):
            self.log_in_class = np.log(counts + 0.5) - np.log(class_totals[classes] + 0.5 * np.bincount(classes)[classes])

    def token_log_probs(self, sentences) -> np.ndarray:
        class_lp = self.class_model.token_log10_probs([self.classes[s] for s in sentences])[0] * LN10
        words = np.concatenate([np.concatenate([s, [EOS_ID]]) for s in sentences]).astype(np.int64)
        return class_lp + np.where(words == EOS_ID, 0.0, self.log_in_class[words])


def build_class_model(config, vocab, splits, run_dir: Path) -> ClassNGram:
    classes = word_classes(splits["train"], len(vocab), config.class_ngram_classes, config.seed)
    first = len(SPECIALS)  # the first word class
    class_tokens = list(SPECIALS) + [f"C{i}" for i in range(classes.max() + 1 - first)]
    class_model = build_ngram_model([classes[s] for s in splits["train"]], class_tokens, config.ngram_order,
                                    "kneser_ney", unigram_ids=all_but_pad(len(class_tokens)))
    counts = vocab.counts.astype(np.float64).copy()
    counts[:first] = 0
    atomic_write_json(run_dir / "word_classes.json", {
        f"C{c - first}": [vocab.tokens[i] for i in np.flatnonzero(classes == c)[:12]]
        for c in range(first, min(classes.max() + 1, 40))})
    return ClassNGram(classes, class_model, counts)


def evaluate_class_mixture(class_ngram: ClassNGram, ngram: AlignedNGram, splits) -> dict:
    from dlsuite.apps.language.mixture import mix, perplexity, tune_mixture

    valid_c, test_c = (class_ngram.token_log_probs(splits[s]) for s in ("valid", "test"))
    valid_w, test_w = (ngram.token_log_probs(splits[s]) for s in ("valid", "test"))
    weight = tune_mixture(valid_c, valid_w)
    return {"test_ppl_class_ngram": perplexity(test_c), "class_mixture_weight": weight,
            "test_ppl_class_word_mixture": perplexity(mix(test_c, test_w, weight))}
