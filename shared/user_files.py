"""Reading the text files users give (tables of pairs or transcripts): UTF-8 with or without a
byte-order mark, and errors that name the file and say what to do."""

from __future__ import annotations

from pathlib import Path


def read_user_text(path: str | Path, what: str, error: type[Exception]) -> str:
    """The text of `path`. A leading BOM is dropped (files saved by Excel start with one); a
    missing file or one that is not UTF-8 raises `error`, naming the file and calling it `what`."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found.")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as decode_error:
        raise error(f"{path}: not UTF-8 text ({decode_error}). Save it as UTF-8.") from decode_error
