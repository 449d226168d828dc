"""ARPA back-off files, the format KenLM's lmplz and SRILM's ngram-count write.

    \\data\\
    ngram 1=<count>          one line per order
    \\1-grams:
    <log10 p>\\t<w>\\t<log10 b>   back-off column optional (and absent at the highest order)
    ...
    \\end\\

Reading checks the header, that each section holds as many n-grams as the header says, and
that every n-gram's prefix is present (it is the context the back-off weight belongs to).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np

from dlsuite.shared.ngram.counts import NGramError, NGramTable
from dlsuite.shared.ngram.model import BackoffNGramModel

_MISSING = -99.0  # what SRILM writes for log10(0), e.g. for <s>
_ROWS_PER_FORMAT = 1 << 20  # rows formatted at once: bounds the pattern and field tuple (~100 bytes a row)


def write_arpa(model: BackoffNGramModel, path: str | Path) -> Path:
    """Writes the model as an ARPA file (atomically: a temporary file, then a rename).

    Numbers have 7 significant digits (`%.7g`, the digits KenLM writes). Each section is built
    by one `%` operation per chunk of rows: a row pattern repeated once per row, applied to the
    flat tuple of the rows' fields, so the float formatting and joining run in C rather than in
    a Python loop per n-gram (2.3x less CPU time on the KJV 5-gram, BENCHMARKS.md). An n-gram's words
    are its context's words (the previous section's text, picked by `context`) plus its own.
    """
    from dlsuite.shared.runs import atomic_write_text

    parts = ["\\data\\\n", *(f"ngram {n + 1}={len(table)}\n" for n, table in enumerate(model.tables))]
    words = np.array(model.tokens, dtype=object)
    spaced = np.array([" " + token for token in model.tokens], dtype=object)
    text = words[model.tables[0].word]  # each n-gram's words, one str per row
    for n, table in enumerate(model.tables):
        if n > 0:
            text = text[table.context] + spaced[table.word]
        last = n == model.order - 1  # the highest order has no back-off column
        fields = np.empty((len(table), 2 if last else 3), dtype=object)  # Python floats and strs
        fields[:, 0] = np.maximum(model.log_probs[n], _MISSING)  # log10(0) = -inf is written -99, as SRILM does
        fields[:, 1] = text
        if not last:
            fields[:, 2] = model.log_backoffs[n]
        row = "%.7g\t%s\n" if last else "%.7g\t%s\t%.7g\n"
        parts.append(f"\n\\{n + 1}-grams:\n")
        for start in range(0, len(table), _ROWS_PER_FORMAT):
            chunk = fields[start : start + _ROWS_PER_FORMAT]
            parts.append(row * len(chunk) % tuple(chunk.ravel().tolist()))
    parts.append("\n\\end\\\n")
    return atomic_write_text(path, "".join(parts))


class _Lines:
    """A cursor over the lines of an ARPA file (bytes split at '\\n'), counting line numbers."""

    def __init__(self, data: bytes):
        self.data, self.pos, self.number = data, 0, 0

    def next_bytes(self) -> bytes | None:
        """The next line, or None at the end of the file."""
        if self.pos >= len(self.data):
            return None
        end = self.data.find(b"\n", self.pos)
        end = len(self.data) if end < 0 else end
        line = self.data[self.pos : end]
        self.pos, self.number = end + 1, self.number + 1
        return line

    def next(self) -> str | None:
        line = self.next_bytes()
        return None if line is None else line.decode("utf-8", errors="replace")

    def skip_blank(self) -> tuple[int, str | None]:
        """Skips blank lines; returns (number, line) of the next other one (line None at the end)."""
        while (line := self.next()) is not None:
            if line.strip():
                return self.number, line
        return self.number, None


@dataclasses.dataclass
class _Section:
    """One parsed '\\n-grams:' section, rows in file order."""

    words: np.ndarray  # int64 [rows, n]: each word's unigram row, -1 for a word without one
    prob: np.ndarray  # log10 p
    backoff: np.ndarray  # log10 b (0 where the row has none)
    first_line: int  # line number of the first row, for messages
    unigrams: list[bytes] | None = None  # the words themselves, for the 1-gram section


def _parse_header(lines: _Lines, path) -> list[int]:
    """The 'ngram N=count' lines after \\data\\, up to a blank line or the first other line."""
    counts = []
    while True:
        pos, number = lines.pos, lines.number
        line = lines.next()
        if line is None:
            break
        if not line.strip():
            if counts:
                return counts
            continue
        if not line.startswith("ngram "):
            lines.pos, lines.number = pos, number  # not a header line: the section reader reports it
            break
        try:
            order, count = line[6:].split("=")
            if int(order) != len(counts) + 1 or int(count) < 0:
                raise ValueError
            counts.append(int(count))
        except ValueError:
            raise NGramError(f"{path}:{lines.number}: bad ARPA header line {line!r}; expected 'ngram {len(counts) + 1}=<count>'.") from None
    if not counts:
        raise NGramError(f"{path}: ARPA header has no 'ngram N=count' lines after \\data\\.")
    return counts


def read_arpa(path: str | Path) -> BackoffNGramModel:
    """Loads an ARPA file (KenLM, SRILM or ours) into a BackoffNGramModel.

    Fields are split at ASCII whitespace, as KenLM does (a word may hold any other character).
    Sections are parsed with whole-section operations (see `_read_section`); line-by-line Python
    runs only for a section laid out unusually or holding an error, to name the bad line.
    """
    path = Path(path)
    data = path.read_bytes()
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = _Lines(data)
    number, line = lines.skip_blank()
    if line is None:
        raise NGramError(f"{path}: not an ARPA file: no '\\data\\' header.")
    if line.strip() != "\\data\\":
        raise NGramError(f"{path}:{number}: not an ARPA file: expected '\\data\\' before {line!r}.")
    expected = _parse_header(lines, path)
    sections, tokens, ids = [], [], {}
    for n, count in enumerate(expected, start=1):
        sections.append(_read_section(lines, n, count, path, ids))
        if n == 1:
            tokens, ids = _unigram_tokens(sections[0].unigrams, path)
    number, line = lines.skip_blank()
    if line is None:
        raise NGramError(f"{path}: missing '\\end\\': the file is truncated.")
    if line.strip() != "\\end\\":
        raise NGramError(f"{path}:{number}: expected '\\end\\' after the {len(expected)}-grams, got {line!r}.")
    return _build_model(sections, tokens, path, lambda line, n: _row_error(data, line, n, ids, path))


def _unigram_tokens(words: list[bytes], path) -> tuple[list[str], dict[bytes, int]]:
    """The unigram words as the model's tokens, and the word -> row map for the higher orders."""
    ids = dict(zip(words, range(len(words)), strict=True))
    if len(ids) != len(words):
        seen: set[bytes] = set()
        duplicate = next(w for w in words if w in seen or seen.add(w))
        raise NGramError(f"{path}: duplicate unigram {duplicate.decode('utf-8', 'replace')!r}; "
                         "every word must have exactly one 1-gram entry.")
    try:
        tokens = [w.decode("utf-8") for w in words]
    except UnicodeDecodeError as error:
        raise NGramError(f"{path}: a unigram is not UTF-8 ({error}); write the file as UTF-8.") from None
    return tokens, ids


def _read_section(lines: _Lines, n: int, count: int, path, ids: dict[bytes, int]) -> _Section:
    """The '\\n-grams:' section at the cursor: its rows, checked against the header's count.

    The fast path (`_parse_rows_fast`) covers files as KenLM, SRILM and `write_arpa` lay them
    out; anything else, or any error, goes through `_parse_rows_slow`, which names the line.
    """
    number, line = lines.skip_blank()
    if line is None or line.strip() != f"\\{n}-grams:":
        got = "the end of the file" if line is None else repr(line)
        raise NGramError(f"{path}:{number}: expected '\\{n}-grams:', got {got}.")
    parsed = _parse_rows_fast(lines.data, lines.pos, n, count, ids)
    if parsed is None:
        return _parse_rows_slow(lines, n, count, path, ids)
    section, lines.pos = parsed
    section.first_line = lines.number + 1
    lines.number += count
    return section


def _parse_rows_fast(data: bytes, start: int, n: int, count: int, ids: dict[bytes, int]):
    """Parses `count` rows from byte `start` with whole-section operations, or returns None.

    Rows are the lines up to the first empty one, each `p w1 .. wn [b]` (KenLM and SRILM put
    tabs around the words). NumPy finds every separator at once and checks that each row holds
    n + 1 or n + 2 fields and that no two separators touch (so no field is empty); one `split`
    then cuts the whole section, strided slices give the columns, `float` reads the numbers and
    a dict maps the words to unigram rows in C. Returns (section, byte offset after the rows).
    """
    end = data.find(b"\n\n", start - 1)  # from start - 1: an empty section ends right away
    end = len(data) - data.endswith(b"\n") if end < 0 else end
    block = data[start:end]
    if count == 0 or not block or any(c in block for c in (b"\x00", b"\x0b", b"\x0c")):
        return None
    raw = np.frombuffer(block, np.uint8)
    newlines = np.flatnonzero(raw == 10)
    separators = np.flatnonzero((raw == 9) | (raw == 32) | (raw == 10))
    if (len(newlines) + 1 != count or len(separators) < count * n or separators[0] == 0
            or separators[-1] == len(raw) - 1 or (np.diff(separators) == 1).any()):
        return None  # another number of rows, or whitespace runs (the slow path reads those)
    width = np.diff(np.searchsorted(separators, newlines), prepend=-1, append=len(separators))
    if width.min() < n + 1 or width.max() > n + 2:
        return None  # fields per row, counting the newline ending it (none after the last row)
    tokens = block.split()
    if width.min() == width.max():  # every row has a back-off, or none has: the columns are strides
        w = int(width[0])
        prob_text, backoff_text = tokens[0::w], tokens[n + 1 :: w] if w == n + 2 else []
        backoff_rows = slice(None) if w == n + 2 else slice(0, 0)
    else:  # SRILM leaves out back-offs of 0
        row_start = np.cumsum(width) - width
        prob_text = _pick(tokens, row_start)
        backoff_rows = np.flatnonzero(width == n + 2)
        backoff_text = _pick(tokens, row_start[backoff_rows] + n + 1)
    try:
        prob, backoff = _floats(prob_text), np.zeros(count)
        backoff[backoff_rows] = _floats(backoff_text)
    except ValueError:
        return None
    if width.min() == width.max():  # drop the number columns in place: the words remain, row-major
        if w == n + 2:
            del tokens[n + 1 :: w]
        del tokens[0 :: n + 1]
        if n == 1:
            return _Section(np.arange(count)[:, None], prob, backoff, 0, tokens), end + 1
        words = np.fromiter(map(ids.get, tokens, itertools.repeat(-1)), np.int64, len(tokens))
        return _Section(words.reshape(count, n), prob, backoff, 0), end + 1
    columns = (np.cumsum(width) - width + 1)[:, None] + np.arange(n)
    if n == 1:
        return _Section(np.arange(count)[:, None], prob, backoff, 0, _pick(tokens, columns[:, 0])), end + 1
    token_ids = np.fromiter(map(ids.get, tokens, itertools.repeat(-1)), np.int64, len(tokens))
    return _Section(token_ids[columns], prob, backoff, 0), end + 1


def _floats(texts: list[bytes]) -> np.ndarray:
    return np.fromiter(map(float, texts), np.float64, len(texts))


def _pick(items: list, index: np.ndarray) -> list:
    return list(map(items.__getitem__, index.tolist()))


def _parse_rows_slow(lines: _Lines, n: int, count: int, path, ids: dict[bytes, int]) -> _Section:
    """Line-by-line parse of one section's rows (any whitespace), naming the first bad line."""
    first_line = lines.number + 1
    words, probs, backoffs = [], [], []
    while (line := lines.next_bytes()) is not None and line.strip():
        fields, shown = line.split(), line.decode("utf-8", "replace")
        if len(fields) not in (n + 1, n + 2) or fields[0].startswith(b"\\"):
            raise NGramError(f"{path}:{lines.number}: the {n}-grams section holds {len(words)} entries but the header "
                             f"says {count}, or the line {shown!r} is malformed.")
        try:
            probs.append(float(fields[0]))
            backoffs.append(float(fields[n + 1]) if len(fields) == n + 2 else 0.0)
        except ValueError:
            raise NGramError(f"{path}:{lines.number}: bad number in the {n}-gram line {shown!r}; the first "
                             "field (and the optional last one) must be log10 values.") from None
        words.append(fields[1] if n == 1 else [ids.get(w, -1) for w in fields[1 : n + 1]])
    if len(words) != count:
        raise NGramError(f"{path}: the header says {count} {n}-grams but the section holds {len(words)}; "
                         "the file is truncated or was edited. Re-create it.")
    prob, backoff = np.array(probs, np.float64), np.array(backoffs, np.float64)
    if n == 1:
        return _Section(np.arange(count)[:, None], prob, backoff, first_line, words)
    return _Section(np.array(words, np.int64).reshape(count, n), prob, backoff, first_line)


def _row_error(data: bytes, line_number: int, n: int, ids: dict[bytes, int], path) -> NGramError:
    """Names the row's word that has no unigram, or else its missing prefix."""
    line = data.split(b"\n", line_number)[line_number - 1]
    fields, shown = line.split(), line.decode("utf-8", "replace")
    unknown = [w for w in fields[1 : n + 1] if w not in ids]
    if unknown:
        return NGramError(f"{path}:{line_number}: the {n}-gram line {shown!r} uses "
                          f"{unknown[0].decode('utf-8', 'replace')!r}, a word with no 1-gram entry; "
                          "every word of an ARPA file must also be a 1-gram.")
    gram = b" ".join(fields[1 : n + 1]).decode("utf-8", "replace")
    prefix = b" ".join(fields[1:n]).decode("utf-8", "replace")
    return NGramError(f"{path}:{line_number}: the {n}-gram '{gram}' has no prefix {n - 1}-gram "
                      f"'{prefix}'; the model is not a valid back-off model.")


def _build_model(sections: list[_Section], tokens: list[str], path, row_error) -> BackoffNGramModel:
    """Tables sorted by (context, word); checks words, prefixes and repeats, naming the line.

    `row_error(line, n)` makes the error for an n-gram line with an unknown word or prefix.
    """
    vocab = len(tokens)
    tables, log_probs, log_backoffs = [], [], []
    for n, section in enumerate(sections):
        words = section.words
        context = np.zeros(len(words), np.int64) if n == 0 else _context_ids(tables, words[:, :-1])
        bad = np.flatnonzero((context < 0) | (words < 0).any(axis=1))
        if len(bad):
            raise row_error(section.first_line + int(bad[0]), n + 1)
        keys = context * vocab + words[:, -1]
        order = _sorting(keys)
        repeated = np.flatnonzero(np.diff(keys[order]) == 0)
        if len(repeated):
            rows = sorted(order[repeated[0] : repeated[0] + 2])
            raise NGramError(f"{path}:{section.first_line + rows[1]}: the {n + 1}-gram "
                             f"'{' '.join(tokens[w] for w in words[rows[1]])}' is listed twice (first on line "
                             f"{section.first_line + rows[0]}); each n-gram needs exactly one entry.")
        tables.append(NGramTable(context[order], words[order, -1], vocab))
        prob = section.prob[order]
        log_probs.append(np.where(prob <= _MISSING, -math.inf, prob))
        log_backoffs.append(section.backoff[order])
    if "<s>" in tokens:  # SRILM writes -99 for <s>: it is never predicted, only a context
        log_probs[0][tables[0].word == tokens.index("<s>")] = 0.0
    return BackoffNGramModel(tokens, tables, log_probs, log_backoffs)


def _context_ids(tables: list[NGramTable], prefix_words: np.ndarray) -> np.ndarray:
    """Row of each (n-1)-word prefix in the order n-1 table, or -1 where it is missing.

    Walks down the orders one word at a time; each lookup's queries are sorted first, so
    `searchsorted` sweeps the table once instead of jumping around it (several times faster).
    """
    index = np.zeros(len(prefix_words), np.int64)
    for m in range(prefix_words.shape[1]):
        table, word = tables[m], prefix_words[:, m]
        order = _sorting(index * table.vocab_size + word)
        found = np.empty_like(index)
        found[order] = table.lookup(index[order], word[order])
        index = found
    return index


def _sorting(keys: np.ndarray) -> np.ndarray:
    """The permutation that sorts `keys` (checked first: files `write_arpa` wrote are sorted)."""
    return np.arange(len(keys)) if np.all(keys[1:] >= keys[:-1]) else np.argsort(keys)
