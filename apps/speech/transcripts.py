"""Transcripts for character CTC: the 28-symbol alphabet (a-z, space, apostrophe) plus the CTC
blank, `normalize_transcript` into it, and SpeechDataError, the error for unusable speech data.

Anything that cannot be spelled with the alphabet is an error naming the file and line, never
dropped in silence.
"""

from __future__ import annotations

import re
import unicodedata

ALPHABET = ("", " ", "'", *"abcdefghijklmnopqrstuvwxyz")  # index 0 = CTC blank


class SpeechDataError(ValueError):
    """Speech data that cannot be used as given; the message names the file and the fix."""


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u200b": " "})
# Punctuation that stands for a word ("50 %", "AT&T", "a/b") must be spelled out, not erased.
_SPOKEN_SYMBOLS = set("#%&@/\\")
_LOOSE_APOSTROPHE = re.compile(r"(?<![a-z])'|'(?![a-z])")  # quotes, not contractions
_LETTERS = set(ALPHABET[1:])


def _map_char(char: str) -> str:
    """Accents and invisible format characters go, punctuation and controls become spaces."""
    category = unicodedata.category(char)
    if unicodedata.combining(char) or category == "Cf":  # é = e + U+0301; zero-width space, soft hyphen
        return ""
    if char.isspace() or category == "Cc":
        return " "
    if category.startswith("P") and char != "'" and char not in _SPOKEN_SYMBOLS:
        return " "
    return char


class _CharTable(dict):
    """A str.translate table filled on first sight of each character: translate runs in C,
    so normalizing the whole KJV takes a fraction of a second instead of seconds."""

    def __missing__(self, codepoint: int) -> str:
        self[codepoint] = _map_char(chr(codepoint))
        return self[codepoint]


_CHAR_TABLE = _CharTable()


def normalize_transcript(text: str, where: str = "") -> str:
    """'Café, O’Brien’s “pub” — “Hello!”' -> "cafe o'brien's pub hello"; errors name `where`."""
    prefix = f"{where}: " if where else ""
    # Lower-case first: "İ".lower() is "i" + a combining dot, which NFKD then lets us drop.
    decomposed = unicodedata.normalize("NFKD", text.lower().translate(_QUOTES))
    spaced = decomposed.translate(_CHAR_TABLE)
    normalized = " ".join(_LOOSE_APOSTROPHE.sub(" ", spaced).split())
    bad = sorted(set(normalized) - _LETTERS)
    if bad:
        hint = " Spell numbers as words ('twenty one')." if any(c.isdigit() for c in bad) else ""
        raise SpeechDataError(
            f"{prefix}transcript {text!r} has characters outside the alphabet (a-z, space, "
            f"apostrophe): {', '.join(repr(c) for c in bad)}.{hint} Write symbols as words, "
            "transliterate other scripts to a-z, or remove the utterance.")
    if not normalized:
        raise SpeechDataError(f"{prefix}transcript {text!r} is empty after normalization; "
                              "give the spoken words or remove the utterance.")
    return normalized

