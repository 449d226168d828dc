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

import io
import math
from pathlib import Path

import numpy as np

from dlsuite.shared.ngram.counts import NGramError, NGramTable
from dlsuite.shared.ngram.model import BackoffNGramModel

_MISSING = -99.0  # what SRILM writes for log10(0), e.g. for <s>


def _ngram_words(model: BackoffNGramModel, n: int) -> list[np.ndarray]:
    """The word ids of every entry of order n+1, as n+1 columns."""
    columns = [model.tables[n].word]
    index = model.tables[n].context
    for m in range(n - 1, -1, -1):
        columns.insert(0, model.tables[m].word[index])
        index = model.tables[m].context[index]
    return columns


def write_arpa(model: BackoffNGramModel, path: str | Path) -> Path:
    """Writes the model as an ARPA file (atomically: a temporary file, then a rename)."""
    from dlsuite.shared.runs import atomic_write_text

    out = io.StringIO()
    out.write("\\data\\\n")
    for n, table in enumerate(model.tables):
        out.write(f"ngram {n + 1}={len(table)}\n")
    tokens = np.array(model.tokens, dtype=object)
    for n in range(model.order):
        out.write(f"\n\\{n + 1}-grams:\n")
        text = tokens[_ngram_words(model, n)[0]]
        for column in _ngram_words(model, n)[1:]:
            text = text + " " + tokens[column]
        probs = [f"{p:.7g}" for p in np.maximum(model.log_probs[n], _MISSING)]
        if n < model.order - 1:
            backoffs = [f"{b:.7g}" for b in model.log_backoffs[n]]
            out.writelines(f"{p}\t{w}\t{b}\n" for p, w, b in zip(probs, text, backoffs, strict=False))
        else:
            out.writelines(f"{p}\t{w}\n" for p, w in zip(probs, text, strict=False))
    out.write("\n\\end\\\n")
    return atomic_write_text(path, out.getvalue())


def _parse_header(lines, path) -> list[int]:
    counts = []
    for number, line in lines:
        if not line.strip():
            if counts:
                return counts
            continue
        if not line.startswith("ngram "):
            break
        try:
            order, count = line[6:].split("=")
            if int(order) != len(counts) + 1:
                raise ValueError
            counts.append(int(count))
        except ValueError:
            raise NGramError(f"{path}:{number}: bad ARPA header line {line!r}; expected 'ngram {len(counts) + 1}=<count>'.") from None
    if not counts:
        raise NGramError(f"{path}: ARPA header has no 'ngram N=count' lines after \\data\\.")
    return counts


def read_arpa(path: str | Path) -> BackoffNGramModel:
    """Loads an ARPA file (KenLM, SRILM or ours) into a BackoffNGramModel."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    lines = iter(enumerate(text.splitlines(), start=1))
    for number, line in lines:
        if line.strip() == "\\data\\":
            break
        if line.strip():
            raise NGramError(f"{path}:{number}: not an ARPA file: expected '\\data\\' before {line!r}.")
    else:
        raise NGramError(f"{path}: not an ARPA file: no '\\data\\' header.")
    expected = _parse_header(lines, path)
    sections = [_read_section(lines, n + 1, count, path) for n, count in enumerate(expected)]
    for number, line in lines:
        if line.strip() == "\\end\\":
            break
        if line.strip():
            raise NGramError(f"{path}:{number}: expected '\\end\\' after the {len(expected)}-grams, got {line!r}.")
    else:
        raise NGramError(f"{path}: missing '\\end\\': the file is truncated.")
    return _build_model(sections, path)


def _read_section(lines, n: int, count: int, path):
    for number, line in lines:
        if not line.strip():
            continue
        if line.strip() != f"\\{n}-grams:":
            raise NGramError(f"{path}:{number}: expected '\\{n}-grams:', got {line!r}.")
        break
    rows = []
    for number, line in lines:
        if not line.strip():
            break
        fields = line.split()
        if len(fields) not in (n + 1, n + 2) or fields[0].startswith("\\"):
            raise NGramError(f"{path}:{number}: the {n}-grams section holds {len(rows)} entries but the header "
                             f"says {count}, or the line {line!r} is malformed.")
        rows.append(fields)
    if len(rows) != count:
        raise NGramError(f"{path}: the header says {count} {n}-grams but the section holds {len(rows)}; "
                         "the file is truncated or was edited. Re-create it.")
    return rows


def _build_model(sections, path) -> BackoffNGramModel:
    tokens = [row[1] for row in sections[0]]
    ids = {t: i for i, t in enumerate(tokens)}
    if len(ids) != len(tokens):
        raise NGramError(f"{path}: duplicate unigrams.")
    vocab = len(tokens)
    tables, log_probs, log_backoffs = [], [], []
    for n, rows in enumerate(sections):
        words = [[ids.get(w, -1) for w in row[1 : n + 2]] for row in rows]
        words = np.array(words, np.int64).reshape(len(rows), n + 1)
        if (words < 0).any():
            raise NGramError(f"{path}: a {n + 1}-gram uses a word that has no unigram entry.")
        context = np.zeros(len(rows), np.int64) if n == 0 else _context_ids(tables, words[:, :-1])
        if (context < 0).any():
            bad = " ".join(tokens[i] for i in words[np.flatnonzero(context < 0)[0]])
            raise NGramError(f"{path}: the {n + 1}-gram '{bad}' has no prefix {n}-gram; the model is not a valid back-off model.")
        order = np.argsort(context * vocab + words[:, -1], kind="stable")
        tables.append(NGramTable(context[order], words[order, -1], vocab))
        prob = np.array([float(r[0]) for r in rows])[order]
        backoff = np.array([float(r[n + 2]) if len(r) == n + 3 else 0.0 for r in rows])[order]
        log_probs.append(np.where(prob <= _MISSING, -math.inf, prob))
        log_backoffs.append(backoff)
    if "<s>" in ids:  # SRILM writes -99 for <s>: it is never predicted, only a context
        log_probs[0][tables[0].word == ids["<s>"]] = 0.0
    return BackoffNGramModel(tokens, tables, log_probs, log_backoffs)


def _context_ids(tables, prefix_words: np.ndarray) -> np.ndarray:
    index = tables[0].lookup(np.zeros(len(prefix_words), np.int64), prefix_words[:, 0])
    for m in range(1, prefix_words.shape[1]):
        index = tables[m].lookup(index, prefix_words[:, m])
    return index
