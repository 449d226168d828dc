"""n-gram language models: KenLM agreement, normalization, scoring, ARPA files, counting, errors."""

import dataclasses
import itertools
import math
import random
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from dlsuite.shared.ngram import NGramError, build_ngram_model, count_ngrams, read_arpa, write_arpa
from dlsuite.shared.ngram.model import State

DATA = Path(__file__).parents[1] / "data" / "kenlm"
ROOT = Path(__file__).parents[2]
QUERY = ROOT / ".kenlm" / "bin" / "query"
SMOOTHINGS = ("kneser_ney", "kneser_ney_backoff", "additive")
SPECIALS = ["<unk>", "<s>", "</s>"]

# Sentences the fixtures never saw: unknown words, an empty sentence, a one-word sentence.
HELD_OUT = [
    "in the beginning god created the heaven and the earth",
    "and the serpent said unto the woman ye shall not surely die",
    "the lord god made the quick brown fox",
    "",
    "zebra",
    "and god saw the light that it was good and god divided the light from the darkness",
]


def read_lines(name):
    return (DATA / name).read_text().splitlines()


def vocabulary(lines):
    """The words of the text, plus <unk>, <s>, </s> (as the fixtures' lmplz runs saw them)."""
    return SPECIALS + sorted({w for line in lines for w in line.split()})


def encode(lines, tokens):
    ids = {t: i for i, t in enumerate(tokens)}
    return [np.array([ids.get(w, 0) for w in line.split()], np.int64) for line in lines]


def build(lines, order, smoothing="kneser_ney", **kwargs):
    tokens = vocabulary(lines)
    return build_ngram_model(encode(lines, tokens), tokens, order, smoothing, **kwargs)


def entries(model):
    """{(w1, .., wn): (log10 p, log10 b)} for every n-gram of the model."""
    out = {}
    for n, table in enumerate(model.tables):
        columns, index = [table.word], table.context
        for m in range(n - 1, -1, -1):
            columns.insert(0, model.tables[m].word[index])
            index = model.tables[m].context[index]
        for i, gram in enumerate(zip(*columns, strict=True)):
            out[tuple(model.tokens[w] for w in gram)] = (model.log_probs[n][i], model.log_backoffs[n][i])
    return out


def assert_same_entries(ours, theirs, atol):
    a, b = entries(ours), entries(theirs)
    assert set(a) == set(b), f"n-grams only in ours: {sorted(set(a) - set(b))[:5]}, only in theirs: {sorted(set(b) - set(a))[:5]}"
    worst_p = max(abs(a[g][0] - b[g][0]) for g in a)
    worst_b = max(abs(a[g][1] - b[g][1]) for g in a)
    assert worst_p < atol and worst_b < atol, (worst_p, worst_b)


def random_corpus(seed, n_sentences=40, n_words=8, max_len=9):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(n_words)]
    return [" ".join(rng.choices(words, k=rng.randint(0, max_len))) for _ in range(n_sentences)]


# 1. The same model as KenLM's lmplz -----------------------------------------------------------


def test_kneser_ney_matches_kenlm_on_the_kjv_excerpt():
    """Order 4 on 150 KJV verses: the n-gram set, every log10 p and back-off as lmplz wrote them
    (the fixture has 7-9 significant digits, hence 1e-5)."""
    lines = read_lines("kjv_excerpt.txt")
    ours = build(lines, 4)
    kenlm = read_arpa(DATA / "kjv_excerpt.4.arpa")
    assert ours.size() == kenlm.size() == {"1-grams": 565, "2-grams": 2016, "3-grams": 2767, "4-grams": 3028}
    assert_same_entries(ours, kenlm, atol=1e-5)


def test_kneser_ney_matches_kenlm_with_fallback_discounts():
    """tiny.txt is too small for Chen-Goodman discounts: we warn and use KenLM's
    --discount_fallback values, and match lmplz's ARPA file."""
    with pytest.warns(UserWarning, match=r"fallback D = \(0.5, 1.0, 1.5\)"):
        ours = build(read_lines("tiny.txt"), 3)
    assert_same_entries(ours, read_arpa(DATA / "tiny.3.arpa"), atol=1e-5)


@pytest.mark.parametrize("name, order", [("kjv_excerpt", 4), ("tiny", 3)])
def test_held_out_token_log_probs_match_kenlm(name, order, recwarn):
    """Per-token log10 P of unseen sentences (unknown words -> <unk>, empty sentence -> </s>)
    from our model equal those of lmplz's model loaded with read_arpa."""
    ours = build(read_lines(f"{name}.txt"), order)
    kenlm = read_arpa(DATA / f"{name}.{order}.arpa")
    a, sa = ours.token_log10_probs(ours.encode(HELD_OUT))
    b, sb = kenlm.token_log10_probs(kenlm.encode(HELD_OUT))
    assert len(a) == sum(len(s.split()) + 1 for s in HELD_OUT)
    np.testing.assert_array_equal(sa, sb)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.isfinite(a).all()


def test_kenlm_fixture_scores_as_kenlm_query_prints():
    """Values printed by KenLM's `query` for 'in the beginning' on the fixture (recorded once):
    our scorer on the loaded file gives the same per-word log10 probs."""
    kenlm = read_arpa(DATA / "kjv_excerpt.4.arpa")
    logp, _ = kenlm.token_log10_probs(kenlm.encode(["in the beginning"]))
    np.testing.assert_allclose(logp, [-1.9989386, -0.12229031, -3.7791884, -1.3799968], atol=1e-6)


# 2. Probabilities sum to one; Kneser-Ney by hand -------------------------------------------


def states_to_check(model, rng):
    """The empty history, <s>, and states reached by scoring random word sequences."""
    states = [model.null_state(), model.begin_state()]
    words = [i for i, t in enumerate(model.tokens) if t != "<s>"]
    for _ in range(6):
        state = model.begin_state() if rng.random() < 0.5 else model.null_state()
        for w in rng.choices(words, k=rng.randint(1, 6)):
            _, state = model.score(state, w)
        states.append(state)
    return states


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_next_word_distribution_sums_to_one(smoothing, order, recwarn):
    """For every smoothing and several histories, 10**log P(w | history) sums to 1 over the
    vocabulary (<s> excluded: never predicted), and agrees with score() word by word."""
    lines = read_lines("kjv_excerpt.txt")[:60]
    model = build(lines, order, smoothing)
    rng = random.Random(0)
    for state in states_to_check(model, rng):
        logp = model.next_word_log10_probs(state)
        assert logp[model.bos_id] == -np.inf
        assert abs(np.sum(10.0**logp) - 1.0) < 1e-6, (smoothing, state)
        for w in rng.sample(range(len(model.tokens)), 20):
            if w != model.bos_id:
                assert model.score(state, w)[0] == pytest.approx(logp[w], abs=1e-12)


def reference_kneser_ney(sentences, order, vocab, interpolate=True):
    """Modified Kneser-Ney straight from smoothing.py's docstring, with dicts and loops.

    <s> is never predicted, so as a unigram it has no count (KenLM's convention).
    Returns {gram: (log10 p, log10 b)}.
    """
    raw = [Counter() for _ in range(order)]
    for sentence in sentences:
        padded = ["<s>", *sentence.split(), "</s>"]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                raw[n - 1][tuple(padded[i : i + n])] += 1
    for w in vocab:
        raw[0].setdefault((w,), 0)
    left = defaultdict(set)  # the distinct words seen right before each gram
    for n in range(1, order):
        for gram in raw[n]:
            left[gram[1:]].add(gram[0])
    adjusted = []
    for n in range(order):
        a = {}
        for gram, count in raw[n].items():
            if gram == ("<s>",):
                a[gram] = 0
            elif n == order - 1 or (n > 0 and gram[0] == "<s>"):
                a[gram] = count
            else:
                a[gram] = len(left[gram])
        adjusted.append(a)
    u, gamma = {}, {}
    for a in adjusted:
        nk = Counter(min(v, 5) for v in a.values())
        d = None
        if min(nk[1], nk[2], nk[3]) > 0:
            y = nk[1] / (nk[1] + 2 * nk[2])
            d = [k - (k + 1) * y * nk[k + 1] / nk[k] for k in (1, 2, 3)]
            if not all(0 <= dk <= k and (interpolate or dk < k) for k, dk in zip((1, 2, 3), d, strict=True)):
                d = None
        d1, d2, d3 = d or (0.5, 1.0, 1.5)
        disc = lambda v, d1=d1, d2=d2, d3=d3: 0.0 if v == 0 else d1 if v == 1 else d2 if v == 2 else d3  # noqa: E731
        total, mass = defaultdict(float), defaultdict(float)
        for gram, v in a.items():
            total[gram[:-1]] += v
            mass[gram[:-1]] += disc(v)
        gamma.update({context: mass[context] / total[context] for context in total})
        u.update({gram: (v - disc(v)) / total[gram[:-1]] for gram, v in a.items()})
    size = len(adjusted[0]) - 1  # |V| without <s>
    prob = {}
    for n, a in enumerate(adjusted):
        for gram in a:
            if n == 0:
                prob[gram] = u[gram] + gamma[()] / size
            else:
                prob[gram] = u[gram] + (gamma[gram[:-1]] * prob[gram[1:]] if interpolate else 0.0)
    seen = defaultdict(list)
    for n in range(1, order):
        for gram in adjusted[n]:
            seen[gram[:-1]].append(gram)
    out = {}
    for n, a in enumerate(adjusted):
        for gram in a:
            if n == order - 1 or gram not in seen:
                backoff = 1.0
            elif interpolate:
                backoff = gamma[gram]
            else:  # whatever mass the seen words leave, spread like the lower order
                followers = seen[gram]
                backoff = ((1 - sum(prob[g] for g in followers))
                           / (1 - sum(prob[g[1:]] if len(g) > 2 else prob[g[-1:]] for g in followers)))
            logp = 0.0 if gram == ("<s>",) else math.log10(max(prob[gram], 1e-300))  # 1e-300: as the model
            out[gram] = (logp, math.log10(backoff))
    return out


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("smoothing", ["kneser_ney", "kneser_ney_backoff"])
@pytest.mark.parametrize("corpus", ["tiny", "random", "kjv"])
def test_kneser_ney_equals_the_docstring_equations(corpus, smoothing, order, recwarn):
    """Every log10 p and back-off of our vectorized estimator equals a dict-and-loop
    implementation of the equations in smoothing.py's docstring, to 1e-9 (interpolated and
    back-off; tiny and random corpora need fallback discounts at some orders)."""
    lines = {"tiny": read_lines("tiny.txt"), "random": random_corpus(3, 60),
             "kjv": read_lines("kjv_excerpt.txt")[:40]}[corpus]
    model = build(lines, order, smoothing)
    expected = reference_kneser_ney(lines, order, vocabulary(lines), interpolate=smoothing == "kneser_ney")
    got = entries(model)
    assert set(got) == set(expected)
    for gram, (logp, logb) in expected.items():
        assert got[gram][0] == pytest.approx(logp, abs=1e-9), gram
        assert got[gram][1] == pytest.approx(logb, abs=1e-9), gram


def test_kneser_ney_by_hand_on_tiny():
    """tiny.txt, order 2, worked out on paper (all discounts fall back to D = 0.5, 1, 1.5).

    Unigram adjusted counts are continuation counts: a 3 ({<s>, c, a} precede it), b 2, c 2,
    d 2, </s> 3; their sum is 12; N1 = 0, N2 = 3, N3+ = 2 so gamma = (1*3 + 1.5*2)/12 = 1/2;
    |V| = 6 (a b c d </s> <unk>). p(w) = (a(w) - D(a(w)))/12 + gamma/|V|.
    Bigrams after 'a': a b 3, a a 1, a </s> 1 (sum 5): gamma(a) = (0.5*2 + 1.5*1)/5 = 1/2,
    p(b|a) = (3 - 1.5)/5 + 1/2 p(b); p(c|a) = b(a) p(c) since 'a c' was never seen.
    """
    with pytest.warns(UserWarning, match="fallback"):
        model = build(read_lines("tiny.txt"), 2)
    p = {w: 10 ** model.score(model.null_state(), model.ids([w])[0])[0] for w in ("a", "b", "<unk>", "</s>")}
    assert p["a"] == pytest.approx(1.5 / 12 + 0.5 / 6)
    assert p["b"] == pytest.approx(1 / 12 + 0.5 / 6)
    assert p["</s>"] == pytest.approx(1.5 / 12 + 0.5 / 6)
    assert p["<unk>"] == pytest.approx(0.5 / 6)
    after_a = model.score(model.null_state(), model.ids(["a"])[0])[1]
    b, c = model.ids(["b", "c"])
    assert 10 ** model.score(after_a, b)[0] == pytest.approx(1.5 / 5 + 0.5 * (1 / 12 + 0.5 / 6))
    assert 10 ** model.score(after_a, c)[0] == pytest.approx(0.5 * (1 / 12 + 0.5 / 6))


def test_backoff_kneser_ney_gives_seen_ngrams_probability(recwarn):
    """Back-off Kneser-Ney on tiny.txt: no seen n-gram is impossible, and the training text
    itself has a modest perplexity."""
    lines = read_lines("tiny.txt")
    model = build(lines, 3, "kneser_ney_backoff")
    assert min(p.min() for p in model.log_probs) > -10
    assert model.perplexity(model.encode(lines)) < 10


@pytest.mark.parametrize("smoothing", ["kneser_ney", "kneser_ney_backoff", "additive"])
def test_order_one_sums_to_one(smoothing, recwarn):
    """A unigram model is a distribution over the vocabulary without <s>."""
    model = build(read_lines("kjv_excerpt.txt")[:60], 1, smoothing)
    assert abs(np.sum(10.0 ** model.next_word_log10_probs(model.null_state())) - 1.0) < 1e-6


# 3. One word at a time (the speech decoder) equals whole-corpus scoring ----------------------


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_score_chain_equals_corpus_scoring(order, smoothing, recwarn):
    """Chaining score(state, word) from begin_state() over each sentence (and </s>) gives
    token_log10_probs token by token and sentence_log10_probs in total, unknown words included."""
    lines = read_lines("kjv_excerpt.txt")[:30]
    model = build(lines, order, smoothing)
    sentences = model.encode(lines[20:] + HELD_OUT)
    logp, which = model.token_log10_probs(sentences)
    totals = model.sentence_log10_probs(sentences)
    for i, sentence in enumerate(sentences):
        state, chained = model.begin_state(), []
        for word in [*sentence.tolist(), model.eos_id]:
            lp, state = model.score(state, word)
            chained.append(lp)
            assert isinstance(state, State) and state.order <= max(order - 1, 1)
        np.testing.assert_allclose(chained, logp[which == i], atol=1e-9)
        assert sum(chained) == pytest.approx(totals[i], abs=1e-9)


@pytest.mark.parametrize("order", [2, 3, 5])
def test_history_orders_are_the_decoder_states_history(order):
    """history_orders gives, per scored token, the length of the history that score()'s state
    holds before that token: the longest history suffix the model knows, whatever the token."""
    lines = read_lines("kjv_excerpt.txt")[:30]
    model = build(lines, order)
    sentences = model.encode(lines[20:] + HELD_OUT)
    orders = model.history_orders(sentences)
    expected = []
    for sentence in sentences:
        state = model.begin_state()
        for word in [*sentence.tolist(), model.eos_id]:
            expected.append(state.order)
            state = model.score(state, word)[1]
    np.testing.assert_array_equal(orders, expected)
    assert orders.max() == order - 1 and orders.min() >= 1
    # the same history followed by another word: the same order
    swapped = [np.concatenate([s[:-1], [model.eos_id if s[-1] != model.eos_id else model.unk_id]]) for s in sentences if len(s)]
    kept = [len(s) for s in sentences if len(s)]
    ends = np.cumsum([n + 1 for n in kept]) - 2  # each sentence's last word
    np.testing.assert_array_equal(model.history_orders([s for s in sentences if len(s)])[ends],
                                  model.history_orders(swapped)[ends])


@pytest.mark.parametrize("order", [1, 3])
def test_null_state_scores_unigrams(order):
    """From null_state() (no history, not even <s>) every word gets its unigram log10 p."""
    model = build(read_lines("kjv_excerpt.txt")[:30], order)
    for w in range(len(model.tokens)):
        if w != model.bos_id:
            lp, state = model.score(model.null_state(), w)
            entry = int(np.flatnonzero(model.tables[0].word == w)[0])
            assert lp == model.log_probs[0][entry] and state == State(1, entry)
    unknown = model.ids(["no-such-word"])[0]
    unk_entry = int(np.flatnonzero(model.tables[0].word == model.unk_id)[0])
    assert unknown == model.unk_id
    assert model.score(model.null_state(), unknown)[0] == model.log_probs[0][unk_entry]


# 4. ARPA files -------------------------------------------------------------------------------


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_arpa_round_trip(tmp_path, smoothing):
    """write_arpa then read_arpa: same tokens, same tables, same log10 p and back-offs (to the
    7 significant digits written), same held-out scores."""
    model = build(read_lines("kjv_excerpt.txt"), 4, smoothing)
    path = write_arpa(model, tmp_path / "model.arpa")
    loaded = read_arpa(path)
    assert loaded.tokens == model.tokens
    for n in range(model.order):
        np.testing.assert_array_equal(loaded.tables[n].context, model.tables[n].context)
        np.testing.assert_array_equal(loaded.tables[n].word, model.tables[n].word)
        np.testing.assert_allclose(loaded.log_probs[n], model.log_probs[n], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(loaded.log_backoffs[n], model.log_backoffs[n], rtol=1e-6, atol=1e-9)
    a, _ = model.token_log10_probs(model.encode(HELD_OUT))
    b, _ = loaded.token_log10_probs(loaded.encode(HELD_OUT))
    np.testing.assert_allclose(a, b, atol=1e-5)
    # And once more: a re-written file reads back to the same model.
    again = read_arpa(write_arpa(loaded, tmp_path / "again.arpa"))
    assert entries(again) == entries(loaded)


def arpa_one_line_at_a_time(model):
    """The ARPA text as write_arpa first built it: an f-string per n-gram, its words found by
    walking its contexts down to the unigrams (the reference the faster writer must equal)."""
    lines = ["\\data\\", *(f"ngram {n + 1}={len(table)}" for n, table in enumerate(model.tables))]
    for n, table in enumerate(model.tables):
        lines += ["", f"\\{n + 1}-grams:"]
        for i in range(len(table)):
            words, row = [], i
            for m in range(n, -1, -1):
                words.insert(0, model.tokens[model.tables[m].word[row]])
                row = model.tables[m].context[row]
            line = f"{np.maximum(model.log_probs[n][i], -99.0):.7g}\t{' '.join(words)}"
            lines.append(line + (f"\t{model.log_backoffs[n][i]:.7g}" if n < model.order - 1 else ""))
    return "\n".join([*lines, "", "\\end\\", ""])


# Numbers whose 7-digit forms are easy to get wrong: signed zeros, the switch to exponents at
# 1e-4 and 1e7, subnormals, -inf (written -99), exact binary ties (rounded half to even).
AWKWARD = [-0.0, 0.0, -99.0, -math.inf, -1e-5, -9.9999995e-05, -0.0001, -0.00010000005, 5e-324, -1e-300,
           1234567.5, 1234568.5, 9999999.5, 12345675.0, 1e16, -123456789.0, 0.5, -2.5e-7, -0.1, 1 / 3]


def test_write_arpa_is_byte_identical_to_one_line_at_a_time(tmp_path, monkeypatch):
    """The bulk `%` formatting writes exactly the bytes of the per-n-gram f-strings: on a real
    model, and on one with awkward values (float32 columns too), odd tokens ('%s', '{0}', UTF-8)
    and sections cut into several formatting chunks."""
    from dlsuite.shared.ngram import arpa

    lines = read_lines("kjv_excerpt.txt")[:40] + ["100% of %s {0} naïve 日本 a\\b", "%s {0} 100% naïve"]
    model = build(lines, 4)
    rng = np.random.default_rng(0)

    def awkward(size, dtype):  # AWKWARD first, then values from 1e-320 to 1e20, mostly negative
        magnitudes = -(10.0 ** rng.uniform(-320, 20, size)) * rng.choice([1, -1], size, p=[0.9, 0.1])
        values = np.where(rng.random(size) < 0.5, rng.choice(AWKWARD, size), magnitudes)
        values[: len(AWKWARD)] = AWKWARD[:size]
        return values.astype(dtype)

    dtypes = [np.float64, np.float32, np.float64, np.float32]
    odd = dataclasses.replace(model, log_probs=[awkward(len(t), d) for t, d in zip(model.tables, dtypes, strict=True)],
                              log_backoffs=[awkward(len(t), d) for t, d in zip(model.tables, dtypes[::-1], strict=True)])
    monkeypatch.setattr(arpa, "_ROWS_PER_FORMAT", 7)  # so every section spans several chunks
    for name, each in (("real", model), ("awkward", odd)):
        path = tmp_path / f"{name}.arpa"
        path.write_text("an older file\n")
        assert write_arpa(each, path) == path
        assert path.read_bytes() == arpa_one_line_at_a_time(each).encode("utf-8"), name
    text = (tmp_path / "awkward.arpa").read_text()
    assert [p for p in ("-99", "-0", "0", "4.940656e-324", "1234568", "1e+16", "-0.0001", "-1e-05") if f"\n{p}\t" not in text] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["awkward.arpa", "real.arpa"]  # no temporary files left


def reformatted(text, how):
    """The same ARPA content laid out differently (all of it must read the same)."""
    if how == "spaces":  # one space instead of each tab
        return text.replace("\t", " ")
    if how == "srilm":  # SRILM leaves out zero back-offs
        return "\n".join(line[:-2] if line.endswith("\t0") else line for line in text.split("\n"))
    if how == "crlf":
        return text.replace("\n", "\r\n")
    if how == "ragged":  # runs of whitespace, trailing blanks, extra blank lines
        return text.replace("\t", " \t ").replace("\n\n", "\n \n\n")
    if how == "shuffled":  # rows in any order within a section
        rng, out = random.Random(0), []
        for block in text.split("\n\n"):
            head, *rows = block.split("\n")
            if head.endswith("-grams:"):
                rng.shuffle(rows)
            out.append("\n".join([head, *rows]))
        return "\n\n".join(out)
    raise ValueError(how)


@pytest.mark.parametrize("how", ["spaces", "srilm", "crlf", "ragged", "shuffled"])
def test_read_arpa_accepts_other_layouts(tmp_path, how):
    """KenLM's file laid out as SRILM and hand edits do reads to exactly the same model."""
    text = (DATA / "kjv_excerpt.4.arpa").read_text()
    path = tmp_path / "other.arpa"
    path.write_bytes(reformatted(text, how).encode())
    expected, got = read_arpa(DATA / "kjv_excerpt.4.arpa"), read_arpa(path)
    assert entries(got) == entries(expected)  # exactly: the same numbers were written
    held_out = got.encode(HELD_OUT), expected.encode(HELD_OUT)
    np.testing.assert_array_equal(got.token_log10_probs(held_out[0])[0], expected.token_log10_probs(held_out[1])[0])


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_read_arpa_reads_kenlm_and_our_files_section_at_a_time(tmp_path, monkeypatch, smoothing):
    """Files as lmplz and write_arpa lay them out never fall back to the line-by-line reader
    (which is several times slower on large models)."""
    from dlsuite.shared.ngram import arpa

    def refuse(lines, n, *args):
        raise AssertionError(f"the {n}-grams section went through the line-by-line reader")

    path = write_arpa(build(read_lines("kjv_excerpt.txt"), 4, smoothing), tmp_path / "ours.arpa")
    monkeypatch.setattr(arpa, "_parse_rows_slow", refuse)
    for file in (DATA / "kjv_excerpt.4.arpa", DATA / "tiny.3.arpa", path):
        assert read_arpa(file).order >= 3


def test_read_arpa_srilm_minus_99_for_start(tmp_path):
    """SRILM writes -99 as <s>'s log10 p: it is only a context, so it reads as 0."""
    path = tmp_path / "srilm.arpa"
    path.write_text((DATA / "tiny.3.arpa").read_text().replace("0\t<s>\t", "-99\t<s>\t"))
    model = read_arpa(path)
    assert model.log_probs[0][model.tables[0].word == model.bos_id] == 0.0
    assert model.sentence_log10_probs(model.encode(["a b"]))[0] == pytest.approx(
        read_arpa(DATA / "tiny.3.arpa").sentence_log10_probs(model.encode(["a b"]))[0])


@pytest.mark.slow
@pytest.mark.skipif(not QUERY.exists(), reason="KenLM not built (bash scripts/build_kenlm.sh)")
@pytest.mark.parametrize("smoothing", ["kneser_ney", "additive"])
def test_kenlm_query_reads_our_arpa(tmp_path, smoothing):
    """KenLM's `query` loads our ARPA file and gives each sentence the log10 P we compute."""
    lines = read_lines("kjv_excerpt.txt")
    model = build(lines, 4, smoothing)
    path = write_arpa(model, tmp_path / "ours.arpa")
    sentences = lines[:20] + [s for s in HELD_OUT if s]
    out = subprocess.run([str(QUERY), "-v", "sentence", str(path)], input="\n".join(sentences) + "\n",
                         capture_output=True, text=True, check=True).stdout
    totals = [float(line.split()[1]) for line in out.splitlines() if line.startswith("Total:")]
    ours = model.sentence_log10_probs(model.encode(sentences))
    assert len(totals) == len(sentences)
    np.testing.assert_allclose(totals, ours, atol=1e-4)
    assert sum(totals) == pytest.approx(ours.sum(), abs=1e-3)


# 5. Bad input fails with a message that says what to do --------------------------------------


def test_build_refuses_bad_input():
    tokens = ["<unk>", "<s>", "</s>", "a", "b"]
    good = [np.array([3, 4, 3])]
    with pytest.raises(NGramError, match="corpus is empty"):
        build_ngram_model([], tokens, 3)
    for special in SPECIALS:
        with pytest.raises(NGramError, match=f"lacks '{special}'; add <s>, </s> and <unk>"):
            build_ngram_model(good, [t for t in tokens if t != special], 2)
    with pytest.raises(NGramError, match="no words besides"):
        build_ngram_model([np.array([], np.int64)], SPECIALS, 2)
    with pytest.raises(NGramError, match="unknown smoothing 'witten_bell'; choose one of"):
        build_ngram_model(good, tokens, 3, smoothing="witten_bell")
    with pytest.raises(NGramError, match="order must be between 1 and 10, got 0"):
        build_ngram_model(good, tokens, 0)
    with pytest.raises(NGramError, match="token ids must lie in"):
        build_ngram_model([np.array([3, 9])], tokens, 2)
    with pytest.raises(NGramError, match="needs k > 0"):
        build_ngram_model(good, tokens, 2, smoothing="additive", additive_k=0.0)


def drop_line(text, line, header_from, header_to):
    assert line + "\n" in text
    return text.replace(line + "\n", "", 1).replace(header_from, header_to)


# case: (edit of tiny.3.arpa, message regex). The regexes hold for either layout of the test
# below: quoted lines show tabs as \t and words separated by one or more spaces.
ARPA_ERRORS = {
    "not arpa": (lambda t: "hello\n" + t, r"model\.arpa:1: not an ARPA file: expected '\\data\\' before 'hello'"),
    "empty file": (lambda t: "\n\n", r"not an ARPA file: no '\\data\\' header"),
    "no ngram lines": (lambda t: "\\data\\\n\n\\1-grams:\n", r"header has no 'ngram N=count' lines after \\data\\"),
    "bad count": (lambda t: t.replace("ngram 2=12", "ngram 2=twelve"),
                  r":3: bad ARPA header line 'ngram\s+2=twelve'; expected 'ngram 2=<count>'"),
    "orders skip": (lambda t: t.replace("ngram 2=12", "ngram 3=12"),
                    r":3: bad ARPA header line 'ngram\s+3=12'; expected 'ngram 2=<count>'"),
    "header says more": (lambda t: t.replace("ngram 1=7", "ngram 1=8"),
                         r"the header says 8 1-grams but the section holds 7; the file is truncated or was edited"),
    "header says fewer": (lambda t: t.replace("ngram 3=13", "ngram 3=12"), r"the header says 12 3-grams but the section holds 13"),
    "truncated mid-section": (lambda t: t[: t.index("-0.22361162\t<s> c d")],
                              r"the header says 13 3-grams but the section holds 11; the file is truncated"),
    "truncated before end": (lambda t: t.replace("\\end\\\n", ""), r"missing '\\end\\': the file is truncated"),
    "junk instead of end": (lambda t: t.replace("\\end\\", "\\4-grams:"), r":44: expected '\\end\\' after the 3-grams, got '\\\\4-grams:'"),
    "misnamed section": (lambda t: t.replace("\\2-grams:", "\\two-grams:"), r":15: expected '\\2-grams:', got '\\\\two-grams:'"),
    "no blank line": (lambda t: t.replace("\n\n\\2-grams:", "\n\\2-grams:"),
                      r":14: the 1-grams section holds 7 entries but the header says 7, or the line '\\\\2-grams:' is malformed"),
    "too many words": (lambda t: t.replace("-0.57205653\ta a\t-0.30103", "-0.57205653\ta a b\t-0.30103"),
                       r":20: the 2-grams section holds 4 entries but the header says 12, or the line "
                       r"'-0\.57205653\\ta\s+a\s+b\\t-0\.30103' is malformed"),
    "bad number": (lambda t: t.replace("-0.57205653\ta a\t-0.30103", "-0.57205653\ta a\tminus"),
                   r":20: bad number in the 2-gram line '-0\.57205653\\ta\s+a\\tminus'; the first field"),
    "missing prefix": (lambda t: drop_line(t, "-0.6238287\t<s> c\t-0.30103", "ngram 2=12", "ngram 2=11"),
                       r":40: the 3-gram '<s> c d' has no prefix 2-gram '<s> c'; the model is not a valid back-off model"),
    "unknown word": (lambda t: t.replace("\tb d </s>", "\tb e </s>"),
                     r":32: the 3-gram line '-0\.17170271\\tb\s+e\s+</s>' uses 'e', a word with no 1-gram entry"),
    "duplicate unigram": (lambda t: t.replace("\tc\t", "\tb\t"), r"duplicate unigram 'b'; every word must have exactly one"),
    "duplicate bigram": (lambda t: t.replace("\tc a\t", "\ta a\t"), r":21: the 2-gram 'a a' is listed twice \(first on line 20\)"),
}


@pytest.mark.parametrize("layout", ["tabs", "ragged"])
@pytest.mark.parametrize("case", list(ARPA_ERRORS))
def test_read_arpa_errors_name_the_problem(tmp_path, case, layout):
    """Each broken file fails with NGramError naming the line and the problem, both when its
    sections go through the whole-section parser (tabs, as KenLM writes) and the line-by-line
    one (ragged: two spaces between words)."""
    edit, message = ARPA_ERRORS[case]
    text = edit((DATA / "tiny.3.arpa").read_text())
    if layout == "ragged":
        text = text.replace(" ", "  ")
    path = tmp_path / "model.arpa"
    path.write_text(text)
    with pytest.raises(NGramError, match=message):
        read_arpa(path)


def test_read_arpa_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_arpa(tmp_path / "missing.arpa")


# 6. Counting equals a brute-force Counter ------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_count_ngrams_equals_brute_force(seed):
    """Random small corpora (empty sentences included), orders 1..4: every n-gram count inside
    <s> .. </s> is the Counter's, and each table is sorted by (context, word) without repeats."""
    rng = np.random.default_rng(seed)
    vocab_size = int(rng.integers(4, 12))  # ids 0, 1 are <s>, </s>; words are 2..vocab_size-1
    sentences = [rng.integers(2, vocab_size, size=int(rng.integers(0, 8))) for _ in range(int(rng.integers(1, 30)))]
    for order in range(1, 5):
        counts = count_ngrams(sentences, order, vocab_size, bos_id=0, eos_id=1)
        brute = Counter()
        for sentence in sentences:
            padded = [0, *sentence.tolist(), 1]
            for n in range(1, order + 1):
                brute.update(tuple(padded[i : i + n]) for i in range(len(padded) - n + 1))
        got = {}
        for n, (table, raw) in enumerate(zip(counts.tables, counts.counts, strict=True)):
            assert np.all(np.diff(table.keys) > 0)
            columns, index = [table.word], table.context
            for m in range(n - 1, -1, -1):
                columns.insert(0, counts.tables[m].word[index])
                index = counts.tables[m].context[index]
            got.update({tuple(int(w) for w in g): int(c) for g, c in zip(zip(*columns, strict=True), raw, strict=True)})
        assert got == dict(brute)


def test_count_ngrams_unigram_words_get_zero_counts():
    counts = count_ngrams([np.array([2, 3])], 2, 6, 0, 1, unigram_words=np.arange(6))
    np.testing.assert_array_equal(counts.tables[0].word, np.arange(6))
    np.testing.assert_array_equal(counts.counts[0], [1, 1, 1, 1, 0, 0])


# 7. Perplexity: more context helps, Kneser-Ney beats additive ----------------------------------


def test_perplexity_improves_with_order_and_kneser_ney_beats_additive():
    """Trained on verses 0..119 of the excerpt, tested on 120..149 (unknown words -> <unk>)."""
    lines = read_lines("kjv_excerpt.txt")
    train, test = lines[:120], lines[120:150]
    ppl = {}
    for smoothing, order in itertools.product(("kneser_ney", "additive"), (1, 2, 3)):
        model = build(train, order, smoothing)
        ppl[smoothing, order] = model.perplexity(model.encode(test))
    assert ppl["kneser_ney", 1] > ppl["kneser_ney", 2] > ppl["kneser_ney", 3], ppl
    for order in (2, 3):
        assert ppl["kneser_ney", order] < ppl["additive", order], ppl
    assert 10 < ppl["kneser_ney", 3] < 300, ppl  # a sane range for 120 verses of the KJV
