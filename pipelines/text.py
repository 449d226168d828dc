"""Text corpora and vocabularies for language models (and, later, translation).

A corpus is three lists of normalized sentences (train / valid / test), from:
- `kjv`: the King James Bible from Debian's `bible-kjv` (`bible -f "Gen1:1-Rev22:21"`), one
  verse per sentence, split by chapter (every 20th chapter to test, the 10th of every 20 to
  validation) so near-duplicate neighbouring verses do not leak across splits;
- `text:<path>`: a file or a folder of `.txt` files, one sentence per line or running text
  (`text_format=running` splits on . ! ?); a folder with train.txt / valid.txt / test.txt is used
  as given;
- `tfds:<name>`: a TFDS text dataset through `tfds.load` (e.g. `tfds:lm1b`).

Normalization is the same in Python and in the exported graph (`normalize_in_graph`):
Unicode lower-case, apostrophes dropped, everything but letters and digits becomes a space.

    python -c "from dlsuite.pipelines.text import load_corpus; c = load_corpus('kjv'); print(c.summary())"
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dlsuite.pipelines.images import DataError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
KJV_RANGE = "Gen1:1-Rev22:21"
_NOT_WORD = re.compile(r"[^\w]|_")  # Python's Unicode \w = letters, digits (and _, removed too)
_VERSE = re.compile(r"^(\w+?)(\d+):(\d+) (.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def normalize(text: str) -> str:
    """Lower-case, drop apostrophes, keep letters and digits: 'The LORD's house.' -> 'the lords house'."""
    return " ".join(_NOT_WORD.sub(" ", text.lower().replace("'", "")).split())


def normalize_in_graph(text):
    """The same normalization as `normalize`, as TensorFlow ops on a string tensor (for exports)."""
    import tensorflow as tf

    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, "'", "")
    text = tf.strings.regex_replace(text, r"[^\pL\pN]+", " ")
    return tf.strings.strip(text)


@dataclasses.dataclass
class TextCorpus:
    """Normalized sentences (each a space-joined string of words) per split."""

    name: str
    train: list[str]
    valid: list[str]
    test: list[str]

    def summary(self) -> dict:
        words = {split: sum(len(s.split()) for s in getattr(self, split)) for split in ("train", "valid", "test")}
        return {"corpus": self.name, **{f"{k}_sentences": len(getattr(self, k)) for k in words},
                **{f"{k}_words": v for k, v in words.items()}}


def _clean(sentences, source: str) -> list[str]:
    cleaned = [s for s in (normalize(line) for line in sentences) if s]
    if not cleaned:
        raise DataError(f"{source}: no words after normalization (empty corpus). Give text with words in it.")
    return cleaned


def _check_splits(corpus: TextCorpus) -> TextCorpus:
    for split in ("train", "valid", "test"):
        if not getattr(corpus, split):
            raise DataError(f"{corpus.name}: the {split} split is empty; give more sentences "
                            f"(at least a few per split) or a {split}.txt file.")
    return corpus


def _split_every(items: Sequence, keys: Sequence[int], period: int = 20):
    """Deterministic split on an integer key: key % period == 0 -> test, == period // 2 -> valid."""
    keys = np.asarray(keys)
    pick = lambda mask: [items[i] for i in np.flatnonzero(mask)]  # noqa: E731
    return pick((keys % period != 0) & (keys % period != period // 2)), pick(keys % period == period // 2), pick(keys % period == 0)


def load_kjv() -> TextCorpus:
    """The King James Bible, one verse per sentence, split by chapter."""
    if shutil.which("bible") is None:
        raise DataError("The `bible` command (Debian package bible-kjv) is not installed. "
                        "Run `bash scripts/setup.sh` or `apt-get install bible-kjv`.")
    out = subprocess.run(["bible", "-f", KJV_RANGE], capture_output=True, text=True, check=True).stdout
    verses, chapters, previous = [], [], None
    chapter_index = -1
    for line in out.splitlines():
        match = _VERSE.match(line)
        if not match:
            continue
        book, chapter = match.group(1), match.group(2)
        if (book, chapter) != previous:
            chapter_index, previous = chapter_index + 1, (book, chapter)
        verses.append(match.group(4))
        chapters.append(chapter_index)
    if len(verses) < 30000:
        raise DataError(f"`bible -f {KJV_RANGE}` printed only {len(verses)} verses; reinstall bible-kjv.")
    train, valid, test = _split_every(verses, chapters)
    return TextCorpus("kjv", _clean(train, "kjv"), _clean(valid, "kjv"), _clean(test, "kjv"))


def _read_lines(path: Path, text_format: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error}). Convert it to UTF-8.") from error
    if text_format == "running":
        return _SENTENCE_END.split(" ".join(text.split()))
    return text.splitlines()


def load_text_files(path: str | Path, text_format: str = "lines") -> TextCorpus:
    """A text file or folder; train/valid/test.txt in a folder are used as the splits."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"text corpus {path} does not exist.")
    if text_format not in ("lines", "running"):
        raise DataError(f"text_format must be 'lines' or 'running', got {text_format!r}.")
    present = [s for s in ("train", "valid", "test") if path.is_dir() and (path / f"{s}.txt").exists()]
    if present and len(present) < 3:
        raise DataError(f"{path} has {', '.join(p + '.txt' for p in present)} but not all of train.txt, valid.txt, "
                        "test.txt; give all three, or rename the files to pool and re-split them.")
    if len(present) == 3:
        splits = [_clean(_read_lines(path / f"{s}.txt", text_format), str(path / f"{s}.txt"))
                  for s in ("train", "valid", "test")]
        return _check_splits(TextCorpus(path.name, *splits))
    files = sorted(path.glob("**/*.txt")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no .txt files found.")
    sentences = _clean([line for f in files for line in _read_lines(f, text_format)], str(path))
    train, valid, test = _split_every(sentences, np.arange(len(sentences)))
    return _check_splits(TextCorpus(path.name, train, valid, test))


def load_tfds_text(name: str, data_dir: str | None = None, text_key: str = "text",
                   max_sentences: int = 0) -> TextCorpus:
    """A TFDS text dataset (train + test splits; validation is carved from train)."""
    import tensorflow_datasets as tfds

    def sentences(split):
        data = tfds.load(name, split=split, data_dir=data_dir or None, shuffle_files=False)
        if max_sentences:
            data = data.take(max_sentences)
        out = []
        for example in tfds.as_numpy(data):
            if text_key not in example:
                raise DataError(f"tfds:{name} has no feature {text_key!r}; it has {sorted(example)}. "
                                "Set text_key to the text feature.")
            out.append(example[text_key].decode("utf-8"))
        return _clean(out, f"tfds:{name}[{split}]")

    pool = sentences("train")
    train, valid, _ = _split_every(pool, np.arange(len(pool)), period=20)
    return _check_splits(TextCorpus(f"tfds:{name}", train + _split_every(pool, np.arange(len(pool)))[2],
                                    valid, sentences("test")))


def load_corpus(source: str, text_format: str = "lines", data_dir: str = "",
                text_key: str = "text", max_sentences: int = 0) -> TextCorpus:
    """`kjv` | `text:<path>` | `tfds:<name>` -> TextCorpus."""
    kind, _, rest = source.partition(":")
    if kind == "kjv":
        return load_kjv()
    if kind == "text" and rest:
        return load_text_files(rest, text_format)
    if kind == "tfds" and rest:
        return load_tfds_text(rest, data_dir or None, text_key, max_sentences)
    raise DataError(f"unknown corpus {source!r}: use kjv, text:<path> or tfds:<name>.")


@dataclasses.dataclass
class WordVocabulary:
    """Words by decreasing training frequency after the specials <pad> <unk> <s> </s>.

    Ids are positions in `tokens`; `counts` are training counts (</s> counts sentences), which
    the large-vocabulary output layers use as their unigram proposal and tree.
    """

    tokens: list[str]
    counts: np.ndarray

    @classmethod
    def build(cls, sentences: Sequence[str], min_count: int = 1, max_size: int = 0) -> WordVocabulary:
        """Vectorized: np.unique over the token array, then a stable sort by count."""
        words = np.array(" ".join(sentences).split())
        if words.size == 0:
            raise DataError("cannot build a vocabulary from an empty corpus; give sentences with words.")
        unique, counts = np.unique(words, return_counts=True)
        order = np.lexsort((unique, -counts))  # by count, ties alphabetical: deterministic
        unique, counts = unique[order], counts[order]
        keep = counts >= min_count
        if max_size:
            keep &= np.arange(len(unique)) < max_size - len(SPECIALS)
        if keep.sum() < 2:
            raise DataError(f"the vocabulary would hold {int(keep.sum())} word(s) (min_count={min_count}, "
                            f"max_size={max_size}); a language model needs at least 2. "
                            "Lower min_count, raise max_size or give more text.")
        unk = counts[~keep].sum()
        special_counts = [0, unk, 0, len(sentences)]
        return cls(list(SPECIALS) + unique[keep].tolist(),
                   np.concatenate([special_counts, counts[keep]]).astype(np.int64))

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def unk_id(self) -> int:
        return 1

    @property
    def bos_id(self) -> int:
        return 2

    @property
    def eos_id(self) -> int:
        return 3

    def encode(self, sentences: Sequence[str]) -> list[np.ndarray]:
        """Sentences -> int32 id arrays (unknown words -> <unk>), vectorized with searchsorted."""
        words = np.array(" ".join(sentences).split())
        ids = self.encode_words(words)
        lengths = np.array([len(s.split()) for s in sentences])
        return np.split(ids, np.cumsum(lengths)[:-1]) if len(sentences) else []

    def encode_words(self, words: np.ndarray) -> np.ndarray:
        table = np.array(self.tokens[len(SPECIALS):])
        order = np.argsort(table)
        sorted_table = table[order]
        pos = np.clip(np.searchsorted(sorted_table, words), 0, len(sorted_table) - 1)
        found = sorted_table[pos] == words if words.size else np.zeros(0, bool)
        return np.where(found, order[pos] + len(SPECIALS), self.unk_id).astype(np.int32)

    def decode(self, ids) -> str:
        return " ".join(self.tokens[i] for i in ids if i not in (0, self.bos_id, self.eos_id))

    def save(self, path: str | Path) -> None:
        from dlsuite.shared.runs import atomic_write_text

        atomic_write_text(Path(path), "".join(f"{t}\t{c}\n" for t, c in zip(self.tokens, self.counts, strict=False)))

    @classmethod
    def load(cls, path: str | Path) -> WordVocabulary:
        rows = [line.split("\t") for line in Path(path).read_text(encoding="utf-8").splitlines()]
        bad = next((i for i, r in enumerate(rows, 1) if len(r) != 2 or not r[1].strip().isdigit()), None)
        if len(rows) < len(SPECIALS) + 2 or tuple(r[0] for r in rows[:4]) != SPECIALS or bad:
            where = f" (line {bad} is not '<token><TAB><count>')" if bad else ""
            raise DataError(f"{path}: not a dlsuite vocabulary{where}; it needs {SPECIALS} then >= 2 words, "
                            "one '<token><TAB><count>' per line.")
        return cls([r[0] for r in rows], np.array([int(r[1]) for r in rows], np.int64))


def train_sentencepiece(sentences: Sequence[str], model_prefix: str | Path, vocab_size: int,
                        model_type: str = "unigram") -> Path:
    """Trains a sentencepiece model (unigram or BPE) on the sentences; returns the .model path.

    Ids: 0 <pad>, 1 <unk>, 2 <s>, 3 </s>, matching WordVocabulary's specials.
    """
    import io

    import sentencepiece as spm

    if model_type not in ("unigram", "bpe"):
        raise DataError(f"subword model_type must be unigram or bpe, got {model_type!r}.")
    if not sentences:
        raise DataError("cannot train a subword vocabulary on an empty corpus.")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size,
            model_type=model_type, pad_id=0, unk_id=1, bos_id=2, eos_id=3, character_coverage=1.0,
            hard_vocab_limit=False, minloglevel=2, num_threads=2)
    except RuntimeError as error:
        raise DataError(f"sentencepiece could not train a {vocab_size}-piece {model_type} model: {error}. "
                        "The size must cover every distinct character and not exceed what the text can "
                        "supply: adjust subword_vocab_size as the message above says, or give more text.") from error
    path = Path(f"{model_prefix}.model")
    from dlsuite.shared.runs import atomic_write_bytes

    atomic_write_bytes(path, model.getvalue())
    return path
