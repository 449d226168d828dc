"""Text corpora for the language models, and the vocabularies of the language and translation apps.

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

from dlsuite.pipelines.errors import DataError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
# The specials' ids in every vocabulary of the suite: a word vocabulary lists them first, and every
# sentencepiece model (language and translation alike) is trained with them (`SubwordVocabulary`).
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(len(SPECIALS))
KJV_RANGE = "Gen1:1-Rev22:21"
_NOT_WORD = re.compile(r"[^\w]|_")  # Python's Unicode \w = letters, digits (and _, removed too)
# A line of `bible -f` output: book, chapter, verse, text ("Gen1:1 In the beginning God ...").
KJV_VERSE = re.compile(r"^(\w+?)(\d+):(\d+) (.*)$")
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


def split_every(items: Sequence, keys: Sequence[int], period: int = 20):
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
        match = KJV_VERSE.match(line)
        if not match:
            continue
        book, chapter = match.group(1), match.group(2)
        if (book, chapter) != previous:
            chapter_index, previous = chapter_index + 1, (book, chapter)
        verses.append(match.group(4))
        chapters.append(chapter_index)
    if len(verses) < 30000:
        raise DataError(f"`bible -f {KJV_RANGE}` printed only {len(verses)} verses; reinstall bible-kjv.")
    train, valid, test = split_every(verses, chapters)
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
    train, valid, test = split_every(sentences, np.arange(len(sentences)))
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
    train, valid, _ = split_every(pool, np.arange(len(pool)), period=20)
    return _check_splits(TextCorpus(f"tfds:{name}", train + split_every(pool, np.arange(len(pool)))[2],
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
        special_counts = np.zeros(len(SPECIALS), np.int64)
        special_counts[UNK_ID], special_counts[EOS_ID] = counts[~keep].sum(), len(sentences)
        return cls(list(SPECIALS) + unique[keep].tolist(),
                   np.concatenate([special_counts, counts[keep]]).astype(np.int64))

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def unk_id(self) -> int:
        return UNK_ID

    @property
    def bos_id(self) -> int:
        return BOS_ID

    @property
    def eos_id(self) -> int:
        return EOS_ID

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
        return " ".join(self.tokens[i] for i in ids if i not in (PAD_ID, BOS_ID, EOS_ID))

    def save(self, path: str | Path) -> None:
        from dlsuite.shared.runs import atomic_write_text

        atomic_write_text(Path(path), "".join(f"{t}\t{c}\n" for t, c in zip(self.tokens, self.counts, strict=False)))

    @classmethod
    def load(cls, path: str | Path) -> WordVocabulary:
        rows = [line.split("\t") for line in Path(path).read_text(encoding="utf-8").splitlines()]
        bad = next((i for i, r in enumerate(rows, 1) if len(r) != 2 or not r[1].strip().isdigit()), None)
        if len(rows) < len(SPECIALS) + 2 or tuple(r[0] for r in rows[: len(SPECIALS)]) != SPECIALS or bad:
            where = f" (line {bad} is not '<token><TAB><count>')" if bad else ""
            raise DataError(f"{path}: not a dlsuite vocabulary{where}; it needs {SPECIALS} then >= 2 words, "
                            "one '<token><TAB><count>' per line.")
        return cls([r[0] for r in rows], np.array([int(r[1]) for r in rows], np.int64))


class SubwordVocabulary:
    """A sentencepiece model (unigram or BPE), the one subword vocabulary of the language and
    translation apps, with WordVocabulary's interface (tokens, counts, encode, decode, len).

    Every model is trained (`train`) and checked on loading with <pad> <unk> <s> </s> at PAD_ID,
    UNK_ID, BOS_ID, EOS_ID, so ids mean the same in word and subword runs of either app, and the
    exported graphs can read the same model file with tensorflow-text's sentencepiece op.
    `tokens[i]` is piece i; `counts` are training counts when the language app sets them
    (`count`), else zeros.
    """

    def __init__(self, model_file: str | Path, counts: np.ndarray | None = None):
        import sentencepiece as spm

        self.model_file = Path(model_file)
        if not self.model_file.is_file():
            raise FileNotFoundError(f"sentencepiece model {self.model_file} does not exist.")
        self.processor = processor = spm.SentencePieceProcessor(model_file=str(self.model_file))
        ids = (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id())
        if ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise DataError(f"{self.model_file}: its special ids (pad, unk, bos, eos) are {ids}, not dlsuite's "
                            f"{(PAD_ID, UNK_ID, BOS_ID, EOS_ID)}; train it with SubwordVocabulary.train.")
        self.tokens = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        self.tokens[: len(SPECIALS)] = SPECIALS
        self.counts = np.zeros(len(self.tokens), np.int64) if counts is None else np.asarray(counts, np.int64)

    @classmethod
    def train(cls, sentences: Sequence[str], model_file: str | Path, vocab_size: int,
              model_type: str = "unigram") -> SubwordVocabulary:
        """Trains a `vocab_size`-piece model on the sentences and writes it to `model_file`."""
        import io

        import sentencepiece as spm

        from dlsuite.shared.runs import atomic_write_bytes

        if model_type not in ("unigram", "bpe"):
            raise DataError(f"subword model_type must be unigram or bpe, got {model_type!r}.")
        if not sentences:
            raise DataError("cannot train a subword vocabulary on an empty corpus.")
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size,
                model_type=model_type, pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                character_coverage=1.0, hard_vocab_limit=False, minloglevel=2, num_threads=2)
        except RuntimeError as error:
            raise DataError(f"sentencepiece could not train a {vocab_size}-piece {model_type} model: {error}. "
                            "The size must cover every distinct character and not exceed what the text can "
                            "supply: adjust the vocabulary size as the message above says, or give more "
                            "text.") from error
        atomic_write_bytes(Path(model_file), model.getvalue())
        return cls(model_file)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, sentences: Sequence[str]) -> list[np.ndarray]:
        """Sentences -> int32 piece id arrays (no <s> or </s>)."""
        return [np.array(ids, np.int32) for ids in self.processor.encode(list(sentences))]

    def decode(self, ids) -> str:
        """Ids up to the first </s>, specials dropped, pieces joined back into text."""
        ids = [int(i) for i in ids]
        ids = ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids
        return self.processor.decode([i for i in ids if i >= len(SPECIALS)])

    def pieces(self, ids) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def count(self, sentences: Sequence[str]) -> np.ndarray:
        """Training counts per id: each piece of the sentences, and </s> once per sentence."""
        encoded = self.encode(sentences)
        counts = np.bincount(np.concatenate([np.zeros(0, np.int32), *encoded]), minlength=len(self))
        counts[EOS_ID] = len(sentences)
        return counts.astype(np.int64)
