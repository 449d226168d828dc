"""Speech corpora for character CTC recognition: lists of (audio, transcript) utterances.

Sources (`load_speech_corpus(source, cache_dir)`):
- `synthetic` (or `espeak`, its old name): an embedded corpus of King James Bible clauses and
  English UI messages spoken by espeak-ng, flite and festival voices, no download needed
  (synthetic_corpus.py). Train, valid and test use different voices *and* different sentences,
  so the test error measures new speakers saying new word sequences. `extra["test_ood"]` holds
  the test voices saying sentences of a domain absent from training, `extra["adapt"]` a few
  minutes of the test voices saying training sentences, for the fine-tuning demo;
- `asterisk`: the embedded real-speech set, Asterisk's telephone prompts read by one human
  speaker (8 kHz), from pinned Debian packages (asterisk_corpus.py); its train part is for
  fine-tuning, its test part shares no sentence with it; `asterisk:fr`, `asterisk:it`,
  `asterisk:es`: the same prompts in other languages (other speakers, but Spanish is hers too);
- `folder:<path>`: a LibriSpeech tree (`<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`) or a
  folder with `transcripts.csv`/`.tsv`; `train`/`valid`/`test` tables or LibriSpeech split
  subfolders (`train-clean-100`, `dev-clean`, `test-clean`) are used as given;
- `table:<file.csv|tsv>`: one table of audio paths and transcripts;
- `tfds:<name>`: a TFDS speech dataset (e.g. `tfds:librispeech`), audio kept in memory.

Transcripts are normalized to the 28-symbol alphabet (a-z, space, apostrophe) plus the CTC blank;
anything that cannot be spelled with it is an error naming the file and line, never dropped in
silence. Audio is decoded by `load_audio`: float32 mono at 16 kHz.

The pieces: `transcripts` (ALPHABET, normalize_transcript, SpeechDataError), `audio` (reading and
checking audio files, load_audio), `utterances` (Utterance, SpeechCorpus, split_utterances),
`engines`, `sentences`, `kjv_clauses` and `synthetic_corpus` (the embedded corpus), `user_data` (tables, LibriSpeech,
folders, TFDS). This module picks one by the source's name.

    python -c "from dlsuite.apps.speech.corpus import *; print(load_speech_corpus('synthetic', 'cache').summary())"
"""

from __future__ import annotations

from pathlib import Path

from dlsuite.apps.speech.asterisk_corpus import build_asterisk_corpus
from dlsuite.apps.speech.synthetic_corpus import build_synthetic_corpus
from dlsuite.apps.speech.transcripts import SpeechDataError
from dlsuite.apps.speech.user_data import load_folder, load_tfds_speech, read_transcript_table
from dlsuite.apps.speech.utterances import SpeechCorpus, split_utterances


def load_speech_corpus(source: str, cache_dir, **options) -> SpeechCorpus:
    """`synthetic` (`espeak`) | `asterisk[:<language>]` | `folder:<path>` | `table:<file>` | `tfds:<name>` -> SpeechCorpus.

    `options` go to build_synthetic_corpus (synthetic) or load_tfds_speech (tfds); the other
    sources ignore them (their splits come from the data).
    """
    kind, _, rest = source.partition(":")
    if kind in ("synthetic", "espeak") and not rest:
        return build_synthetic_corpus(cache_dir, **options)
    if kind == "asterisk":
        return build_asterisk_corpus(cache_dir, rest or "en")
    if kind == "folder" and rest:
        return load_folder(rest)
    if kind == "table" and rest:
        return SpeechCorpus(f"table:{Path(rest).stem}", *split_utterances(read_transcript_table(rest)))
    if kind == "tfds" and rest:
        return load_tfds_speech(rest, **options)
    raise SpeechDataError(f"unknown speech corpus {source!r}: use synthetic (or espeak), asterisk[:<language>], folder:<path>, "
                          "table:<file.csv|tsv> or tfds:<name>.")
