"""Translation pairs from user data: a table of pairs (`table:`), two line-aligned text files
(`files:`), a folder of train/valid/test tables (`folder:`), or a TFDS dataset (`tfds:`).

Pairs are Unicode NFC with whitespace collapsed. A pair with an empty side in a file is an error
naming the file and line, never dropped in silence.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

from dlsuite.apps.translation.pairs import (
    LANGUAGE_CODE,
    ParallelCorpus,
    TranslationDataError,
    carve_missing,
    normalize_text,
)
from dlsuite.shared.user_files import read_user_text

_HEADER_NAMES = {"source", "target", "src", "tgt", "input", "output"}


def _is_header(row: list[str]) -> bool:
    """source/target (src/tgt, input/output) or two language codes (en/de, pt_BR/en)."""
    cells = [cell.strip() for cell in row]
    if len(cells) != 2 or cells[0].lower() == cells[1].lower():
        return False
    return all(c.lower() in _HEADER_NAMES for c in cells) or all(LANGUAGE_CODE.match(c) for c in cells)


def _read_text(path: Path, what: str) -> str:
    text = read_user_text(path, what, TranslationDataError)
    if not text.strip():
        raise TranslationDataError(f"{path}: the file is empty; give one sentence pair per line.")
    return text


def _table_rows(path: Path, text: str):
    """(line number, cells). TSV (.tsv, .txt, other): split on tabs, no quoting, so quotes in
    sentences stay as they are. CSV (.csv): standard quoting, a quoted cell may span lines."""
    if path.suffix.lower() == ".csv":
        reader = csv.reader(text.splitlines(keepends=True))
        for row in reader:
            yield reader.line_num, row
    else:
        for number, line in enumerate(text.split("\n"), 1):
            yield number, line.rstrip("\r").split("\t")


def _checked_pair(source: str, target: str, where: str) -> tuple[str, str]:
    source, target = normalize_text(source), normalize_text(target)
    for side, text in (("source", source), ("target", target)):
        if not text:
            raise TranslationDataError(f"{where}: the {side} sentence is empty. Every pair needs both "
                                       "sides; remove the line or fill it in.")
    return source, target


def read_pairs_table(path) -> list[tuple[str, str]]:
    """A two-column table of (source, target): .tsv (tab-separated, no quoting) or .csv.

    The first row is a header when it names the columns (source/target, src/tgt) or the languages
    (en/de). Blank lines are skipped; a row without exactly two fields, or with an empty side, is
    an error naming the line.
    """
    path = Path(path)
    text = _read_text(path, "pairs table")
    pairs, first = [], True
    for number, row in _table_rows(path, text):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        where = f"{path}:{number}"
        if len(row) != 2:
            separator = "comma" if path.suffix.lower() == ".csv" else "tab"
            raise TranslationDataError(
                f"{where}: {len(row)} field(s), expected 2 (source and target separated by one "
                f"{separator}). {'Quote cells that contain commas.' if separator == 'comma' else ''}".rstrip())
        if first and _is_header(row):
            first = False
            continue
        first = False
        pairs.append(_checked_pair(*row, where))
    if not pairs:
        raise TranslationDataError(f"{path}: only a header, no pairs. Add one pair per line.")
    return pairs


def _lines(path: Path, what: str) -> list[str]:
    lines = _read_text(path, what).split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [line.rstrip("\r") for line in lines]


def read_aligned_files(source_path, target_path) -> list[tuple[str, str]]:
    """Two text files, line i of one the translation of line i of the other.

    Lines blank in both files are skipped (paragraph breaks); blank on one side only is an error.
    """
    source_path, target_path = Path(source_path), Path(target_path)
    sources, targets = _lines(source_path, "source file"), _lines(target_path, "target file")
    if len(sources) != len(targets):
        raise TranslationDataError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}; the files must "
            "be line-aligned (line i of one translates line i of the other).")
    pairs = []
    for number, (source, target) in enumerate(zip(sources, targets, strict=True), 1):
        if not source.strip() and not target.strip():
            continue
        pairs.append(_checked_pair(source, target, f"{source_path}:{number} / {target_path}:{number}"))
    return pairs


_SPLIT_FILES = {"train": ("train",), "valid": ("valid", "dev", "validation"), "test": ("test",)}


def load_folder(path, source_lang: str = "en", target_lang: str = "de") -> ParallelCorpus:
    """train/valid/test tables (.tsv or .csv; valid may be dev/validation) as given; a missing
    valid or test table is carved from train by hash."""
    folder = Path(path)
    if not folder.is_dir():
        raise TranslationDataError(f"{folder}: not a folder. Use folder:<dir> with train.tsv, valid.tsv and "
                                   "test.tsv, or table:<file.tsv>.")
    given = {}
    for split, names in _SPLIT_FILES.items():
        table = next((folder / f"{n}{ext}" for n in names for ext in (".tsv", ".csv")
                      if (folder / f"{n}{ext}").is_file()), None)
        if table is not None:
            given[split] = read_pairs_table(table)
    if "train" not in given:
        raise TranslationDataError(f"{folder}: no train.tsv (or train.csv); give train.tsv, valid.tsv and "
                                   "test.tsv with one 'source<TAB>target' pair per line.")
    given |= carve_missing(given, str(folder / "train"))
    return ParallelCorpus(f"folder:{folder.name}", source_lang, target_lang,
                          given["train"], given["valid"], given["test"])


def _tfds_split_names(builder) -> dict[str, str | None]:
    """train / validation / test; under tfds.testing.mock_data the splits are unknown, so assume them."""
    available = list(builder.info.splits) or ["train", "validation", "test"]
    first = lambda prefixes: next((s for s in available if s.startswith(prefixes)), None)  # noqa: E731
    return {"train": first(("train",)), "valid": first(("valid", "dev")), "test": first(("test",))}


def load_tfds_translation(name, data_dir=None, source_lang="en", target_lang="de",
                          max_examples=0) -> ParallelCorpus:
    """A TFDS translation dataset whose features are language keys ({"en": ..., "de": ...}).

    `max_examples` caps each split. Pairs with an empty side (a few in web-crawled data) are
    dropped with a warning; a missing validation or test split is carved from train by hash.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    splits = _tfds_split_names(builder)
    if splits["train"] is None:
        raise TranslationDataError(f"tfds:{name} has no split starting with 'train' ({list(builder.info.splits)}).")

    def read(split: str) -> list[tuple[str, str]]:
        data = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=False)
        if max_examples:
            data = data.take(max_examples)
        pairs, empty = [], 0
        for example in tfds.as_numpy(data):
            missing = [lang for lang in (source_lang, target_lang) if lang not in example]
            if missing:
                raise TranslationDataError(
                    f"tfds:{name} has no language {missing[0]!r}; its features are {sorted(example)}. Set "
                    "source_lang / target_lang to two of them.")
            source, target = (normalize_text(example[lang].decode("utf-8")) for lang in (source_lang, target_lang))
            if source and target:
                pairs.append((source, target))
            else:
                empty += 1
        if empty:
            warnings.warn(f"tfds:{name}[{split}]: dropped {empty} pair(s) with an empty side.", stacklevel=3)
        return pairs

    given = {key: read(split) for key, split in splits.items() if split is not None}
    given |= carve_missing(given, f"tfds:{name}[{splits['train']}]")
    return ParallelCorpus(f"tfds:{name}", source_lang, target_lang, given["train"], given["valid"], given["test"])
