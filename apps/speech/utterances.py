"""Utterances and speech corpora: the Utterance record (an audio file or in-memory waveform and
its transcript), SpeechCorpus (utterances per split), and `split_utterances`, the deterministic
split of one list into train/valid/test."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from dlsuite.apps.speech.audio import SAMPLE_RATE
from dlsuite.apps.speech.transcripts import SpeechDataError


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One recording and its normalized transcript.

    `audio` is a file path, or for in-memory data (TFDS) a label while `samples` holds the
    waveform at `sample_rate` (int16 as stored by TFDS, or float in [-1, 1]).
    """

    audio: str
    transcript: str
    speaker: str
    duration: float
    key: str
    samples: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    sample_rate: int = SAMPLE_RATE


def _split_summary(utterances: list[Utterance]) -> dict:
    return {"utterances": len(utterances),
            "hours": round(sum(u.duration for u in utterances) / 3600, 3),
            "speakers": len({u.speaker for u in utterances})}


@dataclasses.dataclass
class SpeechCorpus:
    """Utterances per split; `extra` holds e.g. the espeak corpus' adaptation set and manifest path."""

    name: str
    train: list[Utterance]
    valid: list[Utterance]
    test: list[Utterance]
    extra: dict = dataclasses.field(default_factory=dict)

    def summary(self) -> dict:
        """Utterances, hours and speakers per split (and per utterance list in `extra`)."""
        splits = {"train": self.train, "valid": self.valid, "test": self.test,
                  **{k: v for k, v in self.extra.items() if isinstance(v, list)}}
        return {"corpus": self.name, **{k: _split_summary(v) for k, v in splits.items()}}


def stable_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()  # unlike hash(), the same in every process


def split_utterances(utterances: list[Utterance], valid_fraction: float = 0.1,
                     test_fraction: float = 0.1) -> tuple[list, list, list]:
    """Deterministic train/valid/test split: by speaker (>= 3 speakers), else by utterance key.

    Splitting by speaker keeps a voice out of training when it is used for testing. Groups are
    ordered by a hash of their id; the first ones go to test, the next to valid, at least one each
    when the fraction is non-zero.
    """
    by_speaker = len({u.speaker for u in utterances}) >= 3
    group = (lambda u: u.speaker) if by_speaker else (lambda u: u.key)  # noqa: E731
    groups = sorted({group(u) for u in utterances}, key=stable_hash)
    n_test = max(1, round(test_fraction * len(groups))) if test_fraction else 0
    n_valid = max(1, round(valid_fraction * len(groups))) if valid_fraction else 0
    if len(groups) - n_test - n_valid < 1:
        raise SpeechDataError(f"{len(utterances)} utterance(s) cannot be split into train/valid/test; "
                              "give at least 3 utterances (better: hundreds).")
    test, valid = set(groups[:n_test]), set(groups[n_test:n_test + n_valid])
    pick = lambda chosen: [u for u in utterances if group(u) in chosen]  # noqa: E731
    train = [u for u in utterances if group(u) not in test and group(u) not in valid]
    return train, pick(valid), pick(test)



def finished_manifest(folder: Path, corpus_format: int) -> dict | None:
    """The manifest.json of a complete cached corpus in `folder` (written last, so its presence
    means the build finished), or None: absent, unreadable, another format, or files missing."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("format") != corpus_format:
        return None
    return manifest if all((folder / e["path"]).is_file() for e in manifest["utterances"]) else None
