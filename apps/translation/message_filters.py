"""Cleaning and filtering rules for user-interface messages as translation pairs.

Each rule is a predicate on a (source, target) pair that says "drop it"; `filter_pairs` counts
how many pairs each one removes (the first rule that fires gets the count). The raw rules look at
the message as the catalog has it, the clean rules at the text after `strip_accelerators` and
`normalize_text`.
"""

from __future__ import annotations

import collections
import re

from dlsuite.apps.translation.pairs import normalize_text

MAX_WORDS = 25
MIN_LENGTH_RATIO, MAX_LENGTH_RATIO = 0.3, 3.0

# printf/Python: %s %d %.*s %1$s %-10s %(name)s, gcc's %qs %<...%>; not "50%", "50% done", "50%.".
_PRINTF = r"%(?!$|[\s,;:!?)\]]|\.(?![\d*]))"
_BRACES = r"\{[^{}\s]*\}"  # str.format, ICU, Qt: {0} {name} {} {0:.2f}
_DOLLAR = r"\$\{?\w+\}?"  # shell and positional: $1 ${name} $HOME
_PLACEHOLDER = re.compile(f"{_PRINTF}|{_BRACES}|{_DOLLAR}")
_MARKUP = re.compile(r"<[A-Za-z/!?][^<>]*>|&(?:#\d+|#x[0-9A-Fa-f]+|[A-Za-z]\w*);")
_OPTION = re.compile(r"^-|(?<![\w-])--?[A-Za-z]")  # "-v, --verbose ...", "use --force", "try -f"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # newline, tab, escape sequences, ...


def is_multiline(source: str, target: str) -> bool:
    """Newlines, tabs or other control characters inside a message: help screens and tables, not
    sentences (the ends are stripped before, translators keep a trailing newline as layout)."""
    return bool(_CONTROL.search(source) or _CONTROL.search(target))


def has_placeholder(source: str, target: str) -> bool:
    """Format placeholders: the model would learn to copy `%s` rather than to translate."""
    return bool(_PLACEHOLDER.search(source) or _PLACEHOLDER.search(target))


def has_markup(source: str, target: str) -> bool:
    """Pango/HTML tags or entities (`<b>`, `&amp;`)."""
    return bool(_MARKUP.search(source) or _MARKUP.search(target))


def is_option_text(source: str, target: str) -> bool:
    """Command-line option descriptions (`-v, --verbose  explain what is done`): half code."""
    return bool(_OPTION.search(source))


def is_empty(source: str, target: str) -> bool:
    return not source or not target


def is_identical(source: str, target: str) -> bool:
    """Untranslated (copied) messages, names and acronyms teach nothing about translation."""
    return source.casefold() == target.casefold()


def is_too_short(source: str, target: str) -> bool:
    """Shorter than one word: no letter at all ("...", "100%", "1.0")."""
    return not any(char.isalpha() for char in source)


def is_too_long(source: str, target: str) -> bool:
    return len(source.split()) > MAX_WORDS


def has_bad_length_ratio(source: str, target: str) -> bool:
    """Target/source length in characters outside [0.3, 3]: likely a partial or padded translation.
    Characters, not words, so languages written without spaces are measured the same way."""
    return not MIN_LENGTH_RATIO <= len(target) / len(source) <= MAX_LENGTH_RATIO


RAW_RULES = (("multiline", is_multiline), ("placeholder", has_placeholder), ("markup", has_markup),
             ("option", is_option_text))
CLEAN_RULES = (("empty", is_empty), ("identical", is_identical), ("too_short", is_too_short),
               ("too_long", is_too_long), ("length_ratio", has_bad_length_ratio))

# Keyboard accelerators: GTK marks the mnemonic letter with "_" ("_File", "Sa_ve"), Qt/KDE/Windows
# with "&" ("&Open"); Chinese and Japanese catalogs append it in brackets ("文件(_F)").
_BRACKETED_MNEMONIC = re.compile(r"\s*\([_&][^\W_]\)")
_MNEMONIC = re.compile(r"(?<![_&])[_&](?=[^\W_])")  # before a letter or digit; "__"/"&&" are literal
_IDENTIFIER_JOINT = re.compile(r"[A-Z0-9][_&][A-Z0-9]")  # LC_ALL, AT&T, R&D: not mnemonics


def _mnemonics(text: str) -> list[int]:
    return [m.start() for m in _MNEMONIC.finditer(text)
            if not (m.start() and _IDENTIFIER_JOINT.match(text, m.start() - 1))]


def _strip_lone_mnemonic(text: str) -> str:
    marks = _mnemonics(text)
    return text[:marks[0]] + text[marks[0] + 1:] if len(marks) == 1 else text


def strip_accelerators(source: str, target: str) -> tuple[str, str]:
    """'_File' -> 'File', '&Open' -> 'Open', 'Sa_ve' -> 'Save', '文件(_F)' -> '文件'.

    A mnemonic is a `_` or `&` before a letter or digit, outside identifiers like LC_ALL, and a
    message has at most one. Several on either side mean names (skip_bytes ->
    zu_überspringende_Bytes) or menu paths (/_File/_Edit): then both sides stay as they are, so
    they keep the same spelling.
    """
    target = _BRACKETED_MNEMONIC.sub("", target)
    if len(_mnemonics(source)) > 1 or len(_mnemonics(target)) > 1:
        return source, target
    return _strip_lone_mnemonic(source), _strip_lone_mnemonic(target)


def filter_pairs(pairs, counts: collections.Counter | None = None):
    """Yields the cleaned pairs that pass every rule; `counts[rule]` += 1 for each one dropped.

    `pairs` yields (source, target) or (tag, source, target); the tag (e.g. the package) is passed
    through. Deduplication is left to the caller: it decides which copy is the first.
    """
    counts = collections.Counter() if counts is None else counts
    for item in pairs:
        *tag, source, target = item
        source, target = source.strip(), target.strip()
        rejected = next((name for name, rule in RAW_RULES if rule(source, target)), None)
        if rejected is None:
            stripped = strip_accelerators(source, target)
            if stripped != (source, target):
                counts["accelerators_stripped"] += 1  # changed, not dropped
            source, target = normalize_text(stripped[0]), normalize_text(stripped[1])
            rejected = next((name for name, rule in CLEAN_RULES if rule(source, target)), None)
        if rejected is not None:
            counts[rejected] += 1
            continue
        yield (*tag, source, target)
