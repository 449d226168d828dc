"""The KJV text source of the synthetic speech corpus (sentences.py): clauses of 3-8 words cut
from King James Bible verses (Debian's bible-kjv), in the chapter split of pipelines/text.py's
`load_kjv`, so valid and test sentences never occur in a training verse."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

from dlsuite.apps.speech.transcripts import SpeechDataError, normalize_transcript

_CLAUSE_END = re.compile(r"[,;:.?!()]")


def _kjv_verses() -> dict[str, list[str]]:
    """Raw KJV verses (with punctuation) in load_kjv's chapter split: train/valid/test."""
    # load_kjv() returns verses already normalized, without the punctuation we cut clauses at,
    # so read `bible` here and reuse its chapter split (imported here: pipelines.text loads TensorFlow).
    from dlsuite.pipelines.text import KJV_RANGE, KJV_VERSE, split_every

    if shutil.which("bible") is None:
        raise SpeechDataError("The `bible` command (Debian package bible-kjv) is not installed. "
                              "Run `apt-get install bible-kjv`.")
    out = subprocess.run(["bible", "-f", KJV_RANGE], capture_output=True, text=True, check=True).stdout
    verses, chapters, previous, chapter = [], [], None, -1
    for line in out.splitlines():
        match = KJV_VERSE.match(line)
        if match:
            if match.group(1, 2) != previous:  # (book, chapter number)
                previous, chapter = match.group(1, 2), chapter + 1
            verses.append(match.group(4))
            chapters.append(chapter)
    return dict(zip(("train", "valid", "test"), split_every(verses, chapters), strict=True))


def _clauses(verses: list[str], min_words: int = 3, max_words: int = 8) -> list[str]:
    """Unique normalized clauses of `min_words` to `max_words` words, in order of appearance."""
    out = {}
    for verse in verses:
        for clause in _CLAUSE_END.split(verse):
            try:
                text = normalize_transcript(clause)
            except SpeechDataError:
                continue  # empty, or characters a synthesizer would read but the alphabet cannot spell
            if min_words <= len(text.split()) <= max_words:
                out[text] = None
    return list(out)


@functools.lru_cache(maxsize=1)
def kjv_sentence_pools() -> dict[str, tuple[str, ...]]:
    """Candidate sentences per split; valid and test clauses never occur in a training verse."""
    verses = _kjv_verses()
    train = _clauses(verses["train"])
    seen = set(train)
    valid = [s for s in _clauses(verses["valid"]) if s not in seen]
    seen.update(valid)
    test = [s for s in _clauses(verses["test"]) if s not in seen]
    return {"train": tuple(train), "valid": tuple(valid), "test": tuple(test)}
