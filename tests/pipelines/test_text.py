"""Text pipelines: normalization (Python = graph), KJV, text files, TFDS (mocked), vocabularies."""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # before TensorFlow is imported

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf
import tensorflow_datasets as tfds

from dlsuite.pipelines.images import DataError
from dlsuite.pipelines.text import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    SubwordVocabulary,
    WordVocabulary,
    load_corpus,
    load_kjv,
    load_text_files,
    normalize,
    normalize_in_graph,
)

KJV_EXCERPT = Path(__file__).parents[1] / "data" / "kenlm" / "kjv_excerpt.txt"
needs_bible = pytest.mark.skipif(shutil.which("bible") is None, reason="needs Debian's bible-kjv (scripts/setup.sh)")

# 1. Normalization --------------------------------------------------------------------------

NORMALIZED = {
    "The LORD's house.": "the lords house",
    "In the beginning God created the heaven and the earth.": "in the beginning god created the heaven and the earth",
    "Über ÉCOLE": "über école",
    "rock'n'roll O'Brien": "rocknroll obrien",
    "don’t": "don t",  # only the ASCII apostrophe is dropped; ’ separates like punctuation
    "3.14 is pi; 2nd of 10,000!": "3 14 is pi 2nd of 10 000",
    "snake_case_name": "snake case name",
    "  many   spaces\t\tand\ttabs\n": "many spaces and tabs",
    "a-b—c–d (e) [f] {g} \"h\"": "a b c d e f g h",
    "ÀÉÎÕÜ Straße": "àéîõü straße",
    "x² y½ Ⅻ": "x² y½ ⅻ",  # superscripts, fractions and Roman numerals are numbers
    "日本語のテキスト": "日本語のテキスト",
    "emoji 🙂 ok": "emoji ok",
    "'''": "",
    "": "",
}

# Inputs where a Python and a TensorFlow implementation could easily disagree: case mappings
# that are not one-to-one, combining marks, other scripts, Unicode spaces and digits.
TRICKY = [
    *NORMALIZED, "İstanbul", "ΟΔΟΣ ΟΔΟΣ.", "STRASSE ẞ", "cafe\u0301 café", "ǅemal ǈ", "ﬁne",
    "KELVIN \u212a Ω", "\u00a0nbsp\u2009thin\u200bzero\u3000wide", "ℌilbert", "٣٤ arabic digits",
    "Ǆ ǅ ǆ", "ᾼ ᾳ", "ΣΑΣ", "I\u0307", "tab\x0bvertical\x0cfeed", "line\u2028separator", "ⓐⓑ",
]


@pytest.mark.parametrize("text, expected", list(NORMALIZED.items()))
def test_normalize_examples(text, expected):
    assert normalize(text) == expected


def test_normalize_in_graph_gives_the_same_strings():
    """The exported graph normalizes exactly as training did, on every tricky input."""
    graph = [s.decode("utf-8") for s in normalize_in_graph(tf.constant(TRICKY)).numpy()]
    assert graph == [normalize(t) for t in TRICKY]


def test_normalize_in_graph_works_inside_tf_function():
    """It is usable in a traced function on a batch (how export uses it)."""
    fn = tf.function(normalize_in_graph, input_signature=[tf.TensorSpec([None], tf.string)])
    out = fn(tf.constant(["The LORD's house.", "Über ÉCOLE"])).numpy()
    assert [s.decode() for s in out] == ["the lords house", "über école"]


# 2. The King James Bible -------------------------------------------------------------------


def all_verses():
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True).stdout
    return [normalize(m.group(1)) for m in re.finditer(r"^\w+?\d+:\d+ (.*)$", out, re.MULTILINE)]


@needs_bible
def test_kjv_splits():
    """31,102 verses; train/valid/test are a deterministic partition of them, by chapter
    (Genesis 1 is test, Genesis 11 valid); a verse text in two splits occurs twice in the Bible."""
    corpus = load_kjv()
    verses = all_verses()
    sizes = [len(corpus.train), len(corpus.valid), len(corpus.test)]
    assert sum(sizes) == len(verses) == 31102
    assert 28000 < sizes[0] < 28200 and 1400 < sizes[1] < 1600 and 1400 < sizes[2] < 1600
    assert Counter(corpus.train) + Counter(corpus.valid) + Counter(corpus.test) == Counter(verses)
    everywhere = Counter(verses)
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        shared = set(getattr(corpus, a)) & set(getattr(corpus, b))
        assert all(everywhere[s] >= 2 for s in shared), (a, b)
    assert corpus.test[0] == "in the beginning god created the heaven and the earth"  # Genesis 1:1
    assert corpus.test[30].startswith("and god saw every thing that he had made")  # Genesis 1:31
    assert corpus.valid[0] == "and the whole earth was of one language and of one speech"  # Genesis 11:1
    assert corpus.train[0] == KJV_EXCERPT.read_text().splitlines()[0]  # Genesis 2:1, the fixtures' source
    again = load_corpus("kjv")
    assert (again.train, again.valid, again.test) == (corpus.train, corpus.valid, corpus.test)
    assert corpus.summary()["train_words"] > 700_000


def test_kjv_without_bible_command(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="apt-get install bible-kjv"):
        load_kjv()


# 3. Text files -----------------------------------------------------------------------------


def numbered_lines(n):
    return [f"Line number {i}, with Punctuation!" for i in range(n)]


def test_text_file_one_sentence_per_line(tmp_path):
    """Every 20th line is test, the 10th of every 20 valid, the rest train, in file order."""
    path = tmp_path / "book.txt"
    path.write_text("\n".join(numbered_lines(45)) + "\n\n\n")  # blank lines are dropped
    corpus = load_text_files(path)
    assert corpus.name == "book.txt"
    assert corpus.test == ["line number 0 with punctuation", "line number 20 with punctuation",
                           "line number 40 with punctuation"]
    assert corpus.valid == ["line number 10 with punctuation", "line number 30 with punctuation"]
    assert len(corpus.train) == 40 and corpus.train[0] == "line number 1 with punctuation"
    assert load_corpus(f"text:{path}").train == corpus.train


def test_text_file_running_text(tmp_path):
    """text_format=running: sentences end at . ! or ?, whatever the line breaks."""
    path = tmp_path / "story.txt"
    sentences = [f"Sentence {i} goes on\nover a line break{'.!?'[i % 3]}" for i in range(30)]
    path.write_text("  ".join(sentences))
    corpus = load_text_files(path, text_format="running")
    assert corpus.test == ["sentence 0 goes on over a line break", "sentence 20 goes on over a line break"]
    assert len(corpus.train) + len(corpus.valid) + len(corpus.test) == 30
    lines = load_text_files(path, text_format="lines")  # the same file read as its 31 lines
    assert len(lines.train) + len(lines.valid) + len(lines.test) == 31
    assert lines.test[0] == "sentence 0 goes on"


def test_text_folder_with_splits_is_used_as_given(tmp_path):
    for split, n in (("train", 7), ("valid", 2), ("test", 3)):
        (tmp_path / f"{split}.txt").write_text("\n".join(f"{split} sentence {i}" for i in range(n)))
    (tmp_path / "notes.txt").write_text("not part of any split")
    corpus = load_corpus(f"text:{tmp_path}")
    assert corpus.train == [f"train sentence {i}" for i in range(7)]
    assert corpus.valid == ["valid sentence 0", "valid sentence 1"]
    assert corpus.test == [f"test sentence {i}" for i in range(3)]


def test_text_folder_of_files_is_pooled(tmp_path):
    """Without train/valid/test.txt, all .txt files (sorted, in subfolders too) are one corpus."""
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "second.txt").write_text("\n".join(numbered_lines(30)[15:]))
    (tmp_path / "a.txt").write_text("\n".join(numbered_lines(15)))
    (tmp_path / "ignored.md").write_text("# not text")
    corpus = load_text_files(tmp_path)
    assert sorted(corpus.train + corpus.valid + corpus.test) == sorted(normalize(s) for s in numbered_lines(30))
    assert corpus.test[1] == "line number 20 with punctuation"


def test_text_file_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n...!!!\n")
    with pytest.raises(DataError, match="no words after normalization \\(empty corpus\\)"):
        load_text_files(empty)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Übermut tut selten gut\n".encode("latin-1") * 30)
    with pytest.raises(DataError, match="not UTF-8 text .* Convert it to UTF-8"):
        load_text_files(latin1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_text_files(tmp_path / "missing.txt")
    few = tmp_path / "few.txt"
    few.write_text("\n".join(numbered_lines(5)))
    with pytest.raises(DataError, match="the valid split is empty; give more sentences"):
        load_text_files(few)
    one = tmp_path / "one.txt"
    one.write_text("a single sentence")
    with pytest.raises(DataError, match="the train split is empty"):
        load_text_files(one)
    with pytest.raises(DataError, match="text_format must be 'lines' or 'running'"):
        load_text_files(few, text_format="paragraphs")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no .txt files found"):
        load_text_files(tmp_path / "nothing")
    with pytest.raises(DataError, match="unknown corpus 'gutenberg'"):
        load_corpus("gutenberg")


# 4. TFDS text (mocked) -----------------------------------------------------------------------


def test_tfds_lm1b_mocked(tmp_path):
    """lm1b under tfds.testing.mock_data: max_sentences caps each split; validation is carved
    from train (every 20th from 10), test is lm1b's test split."""
    with tfds.testing.mock_data(num_examples=50):
        corpus = load_corpus("tfds:lm1b", data_dir=str(tmp_path), max_sentences=30)
    assert corpus.name == "tfds:lm1b"
    assert len(corpus.train) + len(corpus.valid) <= 30 and len(corpus.test) <= 30
    assert len(corpus.valid) >= 1 and len(corpus.train) > 20 and len(corpus.test) > 20
    assert not set(corpus.valid) & set(corpus.train)
    assert all(s == normalize(s) and s for s in corpus.train + corpus.valid + corpus.test)


def test_tfds_unknown_text_key(tmp_path):
    with tfds.testing.mock_data(num_examples=5):
        with pytest.raises(DataError, match="tfds:lm1b has no feature 'sentence'; it has \\['text'\\]"):
            load_corpus("tfds:lm1b", data_dir=str(tmp_path), text_key="sentence")


# 5. Word vocabularies ------------------------------------------------------------------------


def test_vocabulary_order_and_counts():
    """Specials first; then words by count, ties alphabetical; </s> counts sentences."""
    vocab = WordVocabulary.build(["b a c a", "c a", "", "e d"])
    assert vocab.tokens == ["<pad>", "<unk>", "<s>", "</s>", "a", "c", "b", "d", "e"]
    assert vocab.counts.tolist() == [0, 0, 0, 4, 3, 2, 1, 1, 1]
    assert (vocab.unk_id, vocab.bos_id, vocab.eos_id) == (1, 2, 3)
    assert tuple(vocab.tokens[:4]) == SPECIALS and len(vocab) == 9


def test_vocabulary_min_count_and_max_size():
    sentences = ["a a a b b c", "a b d"]
    by_count = WordVocabulary.build(sentences, min_count=2)
    assert by_count.tokens[4:] == ["a", "b"]
    assert by_count.counts[1] == 2  # <unk> stands for c and d
    by_size = WordVocabulary.build(sentences, max_size=6)
    assert by_size.tokens == ["<pad>", "<unk>", "<s>", "</s>", "a", "b"]
    assert by_size.counts.tolist() == [0, 2, 0, 2, 4, 3]


def test_vocabulary_encode_decode():
    vocab = WordVocabulary.build(["the cat sat", "the dog"])
    ids = vocab.encode(["the dog sat on the mat", "", "cat"])
    assert [x.dtype for x in ids] == [np.int32] * 3
    assert [vocab.decode(x) for x in ids] == ["the dog sat <unk> the <unk>", "", "cat"]
    assert ids[0][3] == vocab.unk_id and len(ids[1]) == 0
    assert vocab.decode([vocab.bos_id, *ids[2], vocab.eos_id, 0]) == "cat"
    assert vocab.encode([]) == []


def test_vocabulary_save_load(tmp_path):
    vocab = WordVocabulary.build(KJV_EXCERPT.read_text().splitlines(), min_count=2)
    vocab.save(tmp_path / "vocab.tsv")
    loaded = WordVocabulary.load(tmp_path / "vocab.tsv")
    assert loaded.tokens == vocab.tokens
    np.testing.assert_array_equal(loaded.counts, vocab.counts)


@pytest.mark.parametrize("content", [
    "",
    "hello\t1\nworld\t2\n",
    "<pad>\t0\n<unk>\t0\n<s>\t0\n</s>\t0\nonly\t1\n",  # fewer than 2 words
    "<pad>\t0\n<unk>\t0\n<s>\t0\n</s>\t0\na\t1\nb\n",
    "<pad>\t0\n<unk>\t0\n<s>\t0\n</s>\t0\na\t1\nb\tmany\n",
], ids=["empty", "no specials", "one word", "no tab", "count not a number"])
def test_vocabulary_load_bad_file(tmp_path, content):
    path = tmp_path / "vocab.tsv"
    path.write_text(content)
    with pytest.raises(DataError, match="not a dlsuite vocabulary"):
        WordVocabulary.load(path)


def test_vocabulary_too_small():
    with pytest.raises(DataError, match="would hold 1 word\\(s\\).*needs at least 2"):
        WordVocabulary.build(["a a a"])
    with pytest.raises(DataError, match="would hold 0 word\\(s\\) \\(min_count=3"):
        WordVocabulary.build(["a b a b"], min_count=3)
    with pytest.raises(DataError, match="empty corpus"):
        WordVocabulary.build(["", " "])


# 6. Subword vocabularies ---------------------------------------------------------------------


def test_special_ids_are_the_positions_of_the_specials():
    assert [SPECIALS[i] for i in (PAD_ID, UNK_ID, BOS_ID, EOS_ID)] == ["<pad>", "<unk>", "<s>", "</s>"]


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_subword_vocabulary_trains_with_the_special_ids(tmp_path, model_type):
    """200 pieces on the KJV excerpt: the specials at PAD_ID.. EOS_ID (WordVocabulary's), in the
    model file itself (what tensorflow-text reads), and sentences, seen or not, encode and decode back."""
    lines = KJV_EXCERPT.read_text().splitlines()
    path = tmp_path / f"{model_type}.model"
    vocab = SubwordVocabulary.train(lines, path, vocab_size=200, model_type=model_type)
    assert vocab.model_file == path and path.stat().st_size > 0
    sp = spm.SentencePieceProcessor(model_file=str(path))
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    assert tuple(vocab.tokens[: len(SPECIALS)]) == SPECIALS and len(vocab) == sp.get_piece_size() == 200
    for sentence in (lines[7], "and god said let the waters bring forth"):
        ids = vocab.encode([sentence])[0]
        assert ids.dtype == np.int32 and min(ids) >= len(SPECIALS) and vocab.decode(ids) == sentence
        assert len(ids) < len(sentence)  # pieces longer than single characters
        assert vocab.pieces(ids) == sp.encode(sentence, out_type=str)


def test_subword_vocabulary_decode_pieces_and_counts(tmp_path):
    lines = KJV_EXCERPT.read_text().splitlines()
    vocab = SubwordVocabulary.train(lines, tmp_path / "m.model", vocab_size=200)
    ids = vocab.encode(["and god said"])[0]
    # up to the first </s>, specials dropped
    assert vocab.decode([BOS_ID, *ids, UNK_ID, EOS_ID, *ids, PAD_ID]) == "and god said"
    assert vocab.pieces([PAD_ID, BOS_ID, EOS_ID]) == ["<pad>", "<s>", "</s>"]
    counts = vocab.count(lines)
    assert counts[EOS_ID] == len(lines) and counts[PAD_ID] == counts[BOS_ID] == 0
    assert counts.sum() == sum(len(x) for x in vocab.encode(lines)) + len(lines)
    loaded = SubwordVocabulary(tmp_path / "m.model", counts)
    assert loaded.tokens == vocab.tokens and loaded.counts.tolist() == counts.tolist()
    assert SubwordVocabulary(tmp_path / "m.model").counts.tolist() == [0] * len(vocab)


def test_subword_vocabulary_refuses_other_special_ids(tmp_path):
    """A sentencepiece model trained elsewhere (its defaults: no <pad>, <unk> at 0) would shift
    every id against the models and the exported graphs."""
    model = tmp_path / "other.model"
    spm.SentencePieceTrainer.train(sentence_iterator=iter(KJV_EXCERPT.read_text().splitlines()),
                                   model_prefix=str(tmp_path / "other"), vocab_size=200, minloglevel=2)
    with pytest.raises(DataError, match=r"special ids \(pad, unk, bos, eos\) are \(-1, 0, 1, 2\)"):
        SubwordVocabulary(model)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SubwordVocabulary(tmp_path / "missing.model")


def test_subword_vocabulary_training_errors(tmp_path):
    with pytest.raises(DataError, match="empty corpus"):
        SubwordVocabulary.train([], tmp_path / "m.model", 200)
    with pytest.raises(DataError, match="model_type must be unigram or bpe, got 'word'"):
        SubwordVocabulary.train(["a b"], tmp_path / "m.model", 200, model_type="word")
    with pytest.raises(DataError, match="could not train a 10-piece unigram model") as error:
        SubwordVocabulary.train(KJV_EXCERPT.read_text().splitlines(), tmp_path / "m.model", 10)
    assert "Lower the subword vocabulary size" not in str(error.value)
    assert not (tmp_path / "m.model").exists()


def test_folder_with_only_some_split_files_is_refused(tmp_path):
    """A test.txt must never be pooled into training because valid.txt is missing."""
    (tmp_path / "train.txt").write_text("a b c\n" * 30)
    (tmp_path / "test.txt").write_text("a b\n" * 5)
    with pytest.raises(DataError, match="not all of train.txt, valid.txt, test.txt"):
        load_text_files(tmp_path)
