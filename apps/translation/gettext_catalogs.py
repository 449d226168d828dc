"""A parser for gettext .mo catalogs: the singular, context-free (msgid, msgstr) messages.

Our own struct parser rather than gettext.GNUTranslations: GNUTranslations decodes the header as
UTF-8 before it has read the charset (an ISO-8859-1 catalog with "Jürgen" in its header, like
enscript's, makes it raise), folds plural forms into the same dict, and `_catalog` is private.
The format is small: magic, revision, count, offsets of two tables of (length, offset) pairs.
"""

from __future__ import annotations

import codecs
import collections
import dataclasses
import re
import struct

from dlsuite.apps.translation.pairs import TranslationDataError

_MO_MAGIC = 0x950412DE


@dataclasses.dataclass
class Catalog:
    """The singular, context-free messages of one .mo file, in file order (sorted by msgid)."""

    path: str
    messages: list[tuple[str, str]]
    skipped: collections.Counter


def read_mo(data: bytes, path: str = "<bytes>") -> Catalog:
    """Parses a .mo file; skips the header (msgid ""), plurals (msgid\\0plural) and msgctxt\\x04msgid."""
    if len(data) < 20:
        raise TranslationDataError(f"{path}: {len(data)} bytes, too short for a gettext .mo file.")
    for order in "<>":  # .mo files are written in the byte order of the machine that made them
        if struct.unpack(f"{order}I", data[:4])[0] == _MO_MAGIC:
            break
    else:
        raise TranslationDataError(f"{path}: not a gettext .mo file (magic {data[:4].hex()}).")
    _, count, originals, translations = struct.unpack(f"{order}4I", data[4:20])
    table = struct.Struct(f"{order}2I")

    def string(table_offset: int, index: int) -> bytes:
        try:
            length, offset = table.unpack_from(data, table_offset + 8 * index)
        except struct.error as error:
            raise TranslationDataError(f"{path}: truncated .mo file ({error}).") from error
        if offset + length > len(data):
            raise TranslationDataError(f"{path}: truncated .mo file (string {index} ends past the end).")
        return data[offset:offset + length]

    raw = [(string(originals, i), string(translations, i)) for i in range(count)]
    charset = _charset(dict(raw).get(b"", b""))
    messages, skipped = [], collections.Counter()
    for msgid, msgstr in raw:
        kind = ("header" if not msgid else "plural" if b"\x00" in msgid
                else "context" if b"\x04" in msgid else None)
        if kind:
            skipped[kind] += 1
            continue
        try:
            messages.append((msgid.decode(charset), msgstr.decode(charset)))
        except UnicodeDecodeError as error:
            raise TranslationDataError(f"{path}: message {msgid[:40]!r} is not valid {charset} "
                                       f"({error}).") from error
    return Catalog(path, messages, skipped)


def _charset(header: bytes) -> str:
    """The charset named in the header's Content-Type line; UTF-8 where it is missing or unknown."""
    match = re.search(rb"charset=([\w.:-]+)", header)
    name = match.group(1).decode("ascii") if match else "utf-8"
    try:
        return codecs.lookup(name).name
    except LookupError:  # "CHARSET" in an unfilled template header
        return "utf-8"
