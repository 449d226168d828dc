"""Speech corpora from user data: transcript tables (`table:<file.csv|tsv>`), LibriSpeech trees
and folders of split tables (`folder:<path>`), and TFDS speech datasets (`tfds:<name>`).

Layouts of `folder:`: a LibriSpeech tree (`<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`) or
a folder with `transcripts.csv`/`.tsv`; `train`/`valid`/`test` tables or LibriSpeech split
subfolders (`train-clean-100`, `dev-clean`, `test-clean`) are used as given, a missing valid or
test split is carved from train. Every transcript is normalized (transcripts.py); a missing audio
file or a transcript the alphabet cannot spell is an error naming the file and line.
"""

from __future__ import annotations

import collections
import csv
import os
from pathlib import Path

import numpy as np

from dlsuite.apps.speech.audio import SAMPLE_RATE, audio_duration
from dlsuite.apps.speech.transcripts import SpeechDataError, normalize_transcript
from dlsuite.apps.speech.utterances import SpeechCorpus, Utterance, split_utterances
from dlsuite.shared.user_files import read_user_text

AUDIO_COLUMNS = ("path", "file", "audio", "filename")
TEXT_COLUMNS = ("transcript", "text", "sentence")
SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id")


def _delimiter(path: Path, head: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    if path.suffix.lower() == ".csv":
        return ","
    try:
        return csv.Sniffer().sniff(head, delimiters=",\t;|").delimiter
    except csv.Error as error:
        raise SpeechDataError(f"{path}: cannot tell the column separator; name the file .csv or .tsv.") from error


def _pick_column(path: Path, header: list[str], accepted: tuple[str, ...], what: str, required=True):
    lowered = [h.strip().lower() for h in header]
    for name in accepted:
        if name in lowered:
            return header[lowered.index(name)]
    if required:
        raise SpeechDataError(f"{path}: no {what} column. The header is {header}; name the column one "
                              f"of {list(accepted)}.")
    return None


def _missing_audio_error(source, missing: list[str]) -> SpeechDataError:
    listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return SpeechDataError(f"{source}: {len(missing)} audio file(s) not found: {listed}. Fix the paths "
                           "(relative paths are read from the table's folder) or remove those rows.")


def _check_unique_keys(source, utterances: list[Utterance]) -> None:
    counts = collections.Counter(u.key for u in utterances)
    twice = sorted(k for k, n in counts.items() if n > 1)[:5]
    if twice:
        raise SpeechDataError(f"{source}: audio listed more than once: {twice}. Keep one row per file.")


def read_transcript_table(path) -> list[Utterance]:
    """A CSV/TSV with a header: audio path + transcript columns, optional speaker column."""
    path = Path(path)
    text = read_user_text(path, "transcript table", SpeechDataError)
    # keepends: a quoted transcript may span lines
    reader = csv.DictReader(text.splitlines(keepends=True), delimiter=_delimiter(path, text[:4096]))
    header = reader.fieldnames or []
    audio_col = _pick_column(path, header, AUDIO_COLUMNS, "audio path")
    text_col = _pick_column(path, header, TEXT_COLUMNS, "transcript")
    speaker_col = _pick_column(path, header, SPEAKER_COLUMNS, "speaker", required=False)
    rows = []
    for row in reader:
        if not any((v or "").strip() for v in row.values()):
            continue  # blank line
        where = f"{path}:{reader.line_num}"
        if not (row[audio_col] or "").strip():
            raise SpeechDataError(f"{where}: the {audio_col!r} column is empty; give the audio file's path.")
        # Absolute but not resolved: a symlinked file keeps its own name (and key).
        audio = Path(os.path.normpath(path.parent.absolute() / row[audio_col].strip()))
        speaker = (row[speaker_col] or "").strip() if speaker_col else ""
        rows.append((audio, normalize_transcript(row[text_col] or "", where), speaker or "unknown"))
    if not rows:
        raise SpeechDataError(f"{path}: the table has no rows. Add one row per utterance under the header.")
    missing = [str(audio) for audio, _, _ in rows if not audio.is_file()]
    if missing:
        raise _missing_audio_error(path, missing)
    folder = Path(os.path.normpath(path.parent.absolute()))
    key = lambda audio: (audio.relative_to(folder) if audio.is_relative_to(folder) else audio).with_suffix("")  # noqa: E731
    utterances = [Utterance(str(audio), transcript, speaker, audio_duration(audio), key(audio).as_posix())
                  for audio, transcript, speaker in rows]
    _check_unique_keys(path, utterances)
    return utterances


def read_librispeech(root) -> list[Utterance]:
    """`<root>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt` with `<utt-id> TEXT` lines."""
    root = Path(root)
    transcript_files = sorted(root.rglob("*.trans.txt"))
    if not transcript_files:
        raise SpeechDataError(f"{root}: no LibriSpeech transcripts (<speaker>/<chapter>/*.trans.txt) found.")
    entries, missing = [], []
    for trans in transcript_files:
        for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, words = line.strip().partition(" ")
            audio = trans.parent / f"{utt_id}.flac"
            if not audio.is_file() and (trans.parent / f"{utt_id}.wav").is_file():
                audio = trans.parent / f"{utt_id}.wav"
            if not audio.is_file():
                missing.append(str(audio))
            entries.append((audio, normalize_transcript(words, f"{trans}:{number}"), utt_id.split("-")[0], utt_id))
    if missing:
        raise _missing_audio_error(root, missing)
    utterances = [Utterance(str(a), t, s, audio_duration(a), k) for a, t, s, k in entries]
    _check_unique_keys(root, utterances)
    return utterances


def _carve_missing(train, valid, test) -> tuple[list, list, list]:
    """A missing (None) test, then valid split carved from train, the same way as for a single table."""
    if test is None:
        train, _, test = split_utterances(train, valid_fraction=0.0)
    if valid is None:
        train, valid, _ = split_utterances(train, test_fraction=0.0)
    return train, valid, test


_SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "dev", "validation"), "test": ("test",)}


def _given_splits(folder: Path) -> dict[str, list[Utterance]]:
    """train/valid/test tables, or LibriSpeech split subfolders (train-clean-100, dev-clean, ...)."""
    given = {}
    for split, names in _SPLIT_NAMES.items():
        tables = [folder / f"{n}{ext}" for n in names for ext in (".csv", ".tsv")]
        subfolders = sorted(d for d in folder.iterdir() if d.is_dir() and d.name.lower().startswith(names)
                            and next(d.rglob("*.trans.txt"), None) is not None)
        table = next((t for t in tables if t.is_file()), None)
        if table is not None:
            given[split] = read_transcript_table(table)
        elif subfolders:
            given[split] = [u for d in subfolders for u in read_librispeech(d)]
    return given


def load_folder(path) -> SpeechCorpus:
    """A folder of user data (see the module docstring for the layouts)."""
    folder = Path(path)
    if not folder.is_dir():
        raise SpeechDataError(f"{folder}: not a folder. Use folder:<path to a folder> or table:<file.csv>.")
    given = _given_splits(folder)
    if given:
        if "train" not in given:
            raise SpeechDataError(f"{folder}: has {sorted(given)} splits but no train split; add train.csv "
                                  "(or a train-* LibriSpeech folder).")
        splits = _carve_missing(given["train"], given.get("valid"), given.get("test"))
        return SpeechCorpus(f"folder:{folder.name}", *splits)
    table = next((folder / f"transcripts{ext}" for ext in (".csv", ".tsv")
                  if (folder / f"transcripts{ext}").is_file()), None)
    if table is not None:
        utterances = read_transcript_table(table)
    elif next(folder.rglob("*.trans.txt"), None) is not None:
        utterances = read_librispeech(folder)
    else:
        raise SpeechDataError(f"{folder}: found no speech data. Give a transcripts.csv/.tsv (columns "
                              f"{AUDIO_COLUMNS[0]}, {TEXT_COLUMNS[0]}[, speaker]), train/valid/test.csv, "
                              "or a LibriSpeech tree.")
    return SpeechCorpus(f"folder:{folder.name}", *split_utterances(utterances))


# Split names for datasets whose builder info is not known before download (and under mocking).
_TFDS_SPLITS = {"librispeech": ("train_clean100", "dev_clean", "test_clean")}


def _pick_tfds_splits(name: str, available: list[str]) -> dict[str, str | None]:
    available = available or list(_TFDS_SPLITS.get(name.split("/")[0], ("train", "validation", "test")))
    first = lambda prefixes: next((s for s in available if s.startswith(prefixes)), None)  # noqa: E731
    return {"train": first(("train",)), "valid": first(("dev", "valid")), "test": first(("test",))}


def load_tfds_speech(name, data_dir=None, audio_key="speech", text_key="text", max_examples=0,
                     speaker_key="speaker_id") -> SpeechCorpus:
    """A TFDS speech dataset, audio held in memory (`max_examples` caps each split).

    Memory: 100 hours of 16 kHz int16 audio take 11.5 GB; cap it with max_examples for a try-out.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    splits = _pick_tfds_splits(name, list(builder.info.splits))
    if splits["train"] is None:
        raise SpeechDataError(f"tfds:{name} has no split starting with 'train' ({list(builder.info.splits)}).")
    feature = builder.info.features[audio_key] if audio_key in builder.info.features else None
    rate = getattr(feature, "sample_rate", None) or SAMPLE_RATE

    def read(split: str) -> list[Utterance]:
        data = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=False)
        if max_examples:
            data = data.take(max_examples)
        out = []
        for i, example in enumerate(tfds.as_numpy(data)):
            missing = [k for k in (audio_key, text_key) if k not in example]
            if missing:
                raise SpeechDataError(f"tfds:{name} has no feature {missing[0]!r}; it has {sorted(example)}. "
                                      "Set audio_key / text_key to its audio and transcript features.")
            key = example["id"].decode("utf-8") if "id" in example else f"{split}-{i:07d}"
            speaker = example.get(speaker_key, b"unknown")
            speaker = speaker.decode("utf-8") if isinstance(speaker, bytes) else str(speaker)
            samples = np.asarray(example[audio_key])
            transcript = normalize_transcript(example[text_key].decode("utf-8"), f"tfds:{name}[{split}] {key}")
            out.append(Utterance(f"tfds:{name}/{split}/{key}", transcript, speaker, len(samples) / rate,
                                 key, samples, rate))
        return out

    train = read(splits["train"])
    valid = read(splits["valid"]) if splits["valid"] else None
    test = read(splits["test"]) if splits["test"] else None
    return SpeechCorpus(f"tfds:{name}", *_carve_missing(train, valid, test))
