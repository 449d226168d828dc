"""Sentence pairs, the ground every translation data module stands on: the ParallelCorpus type,
the error for unusable data, NFC text normalization, language codes, and the hash split into
train/valid/test."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import unicodedata

SPLITS = ("train", "valid", "test")
VALID_PERCENT = TEST_PERCENT = 5
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?(@[a-z]+)?$")  # de, pt_BR, sr@latin, ast


class TranslationDataError(ValueError):
    """Translation data that cannot be used as given; the message names the file and the fix."""


@dataclasses.dataclass
class ParallelCorpus:
    """(source, target) pairs per split; `extra` holds e.g. the manifest path of a built corpus."""

    name: str
    source_lang: str
    target_lang: str
    train: list[tuple[str, str]]
    valid: list[tuple[str, str]]
    test: list[tuple[str, str]]
    extra: dict = dataclasses.field(default_factory=dict)

    def summary(self) -> dict:
        """Pairs and words (whitespace-separated, each side) per split."""
        out = {"corpus": self.name, "source_lang": self.source_lang, "target_lang": self.target_lang}
        for split in SPLITS:
            pairs = getattr(self, split)
            out[f"{split}_pairs"] = len(pairs)
            out[f"{split}_source_words"] = sum(len(s.split()) for s, _ in pairs)
            out[f"{split}_target_words"] = sum(len(t.split()) for _, t in pairs)
        return out


def normalize_text(text: str) -> str:
    """Unicode NFC (one code point for 'ä', whatever the catalog used) and single spaces."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def split_key(source: str) -> str:
    """What decides the split: the source's words, case-folded, so "Open File…" and "open file"
    land in the same split and a near-copy never sits in train while its twin is in test."""
    return " ".join(re.findall(r"\w+", source.casefold())) or source


def split_of(source: str) -> str:
    """"train" | "valid" | "test" from sha256 of the split key: the same on every machine and
    Python run (unlike hash()), and a pair keeps its split when the corpus grows."""
    bucket = int(hashlib.sha256(split_key(source).encode("utf-8")).hexdigest()[:8], 16) % 100
    if bucket < TEST_PERCENT:
        return "test"
    return "valid" if bucket < TEST_PERCENT + VALID_PERCENT else "train"


def split_pairs(pairs: list[tuple[str, str]], where: str = "the corpus",
                into: tuple[str, ...] = SPLITS) -> dict[str, list]:
    """About 90/5/5 by hash of the source; order within each split is kept.

    `into` names the splits to make: ("train", "test") carves only a test split, the pairs hashed
    to valid stay in train (for data whose valid split is given).
    """
    splits = {name: [] for name in into}
    for pair in pairs:
        split = split_of(pair[0])
        splits[split if split in into else "train"].append(pair)
    empty = [name for name in into if not splits[name]]
    if empty:
        raise TranslationDataError(
            f"{where}: {len(pairs)} pair(s) leave the {', '.join(empty)} split(s) empty (about 5% of "
            "the sources go to each of valid and test). Give more pairs (hundreds), or give the splits "
            "yourself with folder:<dir> holding train.tsv, valid.tsv and test.tsv.")
    return splits


def carve_missing(given: dict[str, list], where: str) -> dict[str, list]:
    """The valid/test splits missing from `given`, carved from its train split by hash."""
    missing = tuple(split for split in SPLITS[1:] if split not in given)
    return split_pairs(given["train"], where, ("train", *missing)) if missing else {}
