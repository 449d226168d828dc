"""Speech corpora: transcript normalization, the espeak-ng corpus, audio loading, user data, TFDS."""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # before TensorFlow is imported

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dlsuite.apps.speech import espeak_corpus, kjv_clauses
from dlsuite.apps.speech.audio import SAMPLE_RATE, ClippingWarning, load_audio
from dlsuite.apps.speech.corpus import load_speech_corpus
from dlsuite.apps.speech.espeak_corpus import TEST_VARIANTS, TRAIN_VARIANTS, build_espeak_corpus
from dlsuite.apps.speech.transcripts import ALPHABET, SpeechDataError, normalize_transcript
from dlsuite.apps.speech.user_data import load_tfds_speech, read_librispeech, read_transcript_table
from dlsuite.apps.speech.utterances import Utterance, split_utterances

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("bible") is None,
                                  reason="needs espeak-ng and bible-kjv (scripts/setup.sh)")
TINY = {"num_sentences": 30, "workers": 2, "adapt_sentences": 4, "progress": False}
SMALLEST = {**TINY, "num_sentences": 10, "adapt_sentences": 1}  # 8/1/1 sentences, 22 utterances


def write_tone(path, seconds=0.5, rate=SAMPLE_RATE, channels=1, amplitude=0.5, freq=440.0, **kwargs):
    """A sine wave file; `channels` copies (each a little quieter, so stereo is not trivial)."""
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    data = np.stack([wave * (1 - 0.2 * c) for c in range(channels)], axis=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, **kwargs)
    return Path(path)


# 1. Transcripts ----------------------------------------------------------------------------------

NORMALIZED = {
    "Hello, World!": "hello world",
    "The LORD's house.": "the lord's house",
    "Café CRÈME brûlée": "cafe creme brulee",
    "O’Brien’s “pub” — closed": "o'brien's pub closed",
    "'quoted' words' end": "quoted words end",  # quotes go, contractions stay
    "a-b—c (d) [e]; f: g? \"h\" i...": "a b c d e f g h i",
    "  many   spaces\t\tand\nlines ": "many spaces and lines",
    "ﬁne İstanbul": "fine istanbul",
}


@pytest.mark.parametrize("text, expected", list(NORMALIZED.items()))
def test_normalize_transcript_examples(text, expected):
    assert normalize_transcript(text) == expected


def test_normalized_transcripts_use_only_the_alphabet():
    assert ALPHABET[0] == "" and ALPHABET[1] == " " and len(ALPHABET) == 29
    assert all(set(normalize_transcript(t)) <= set(ALPHABET[1:]) for t in NORMALIZED)


def test_normalize_transcript_rejects_digits_naming_them():
    with pytest.raises(SpeechDataError, match=r"lines\.csv:7: .*'1', '2'.*Spell numbers as words"):
        normalize_transcript("Chapter 12", "lines.csv:7")


@pytest.mark.parametrize("text, bad", [("日本語", "'日'"), ("AT&T", "'&'"), ("straße", "'ß'"), ("50 %", "'%'")])
def test_normalize_transcript_rejects_other_scripts_and_symbols(text, bad):
    with pytest.raises(SpeechDataError, match=f"here: .*{bad}"):
        normalize_transcript(text, "here")


def test_normalize_transcript_rejects_empty():
    with pytest.raises(SpeechDataError, match="x.tsv:2: .*empty"):
        normalize_transcript(" ... !", "x.tsv:2")


# 2. The espeak-ng corpus ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_espeak(tmp_path_factory):
    cache = tmp_path_factory.mktemp("espeak")
    return cache, build_espeak_corpus(cache, **TINY)


def manifest_entries(corpus):
    return json.loads(Path(corpus.extra["manifest"]).read_text())["utterances"]


@needs_espeak
def test_kjv_sentence_pools_are_disjoint_clauses():
    """Valid/test candidates never occur in training verses (common clauses like 'and it was so'
    recur across chapters), so the test split measures new word sequences."""
    pools = kjv_clauses.kjv_sentence_pools()
    assert len(pools["train"]) > 10000 and len(pools["valid"]) > 1000 and len(pools["test"]) > 1000
    assert not set(pools["train"]) & set(pools["test"]) and not set(pools["train"]) & set(pools["valid"])
    assert "and it was so" in pools["train"] and "let there be light" in pools["test"]  # Genesis 1 is a test chapter
    for pool in pools.values():
        assert len(set(pool)) == len(pool)
        assert all(3 <= len(s.split()) <= 8 and s == normalize_transcript(s) for s in pool)


@needs_espeak
def test_espeak_splits_hold_out_speakers_and_sentences(tiny_espeak):
    _, corpus = tiny_espeak
    assert corpus.train and corpus.valid and corpus.test and corpus.extra["adapt"]
    speakers = {s: {u.speaker for u in getattr(corpus, s)} for s in ("train", "valid", "test")}
    assert speakers["train"] <= set(TRAIN_VARIANTS) and speakers["test"] <= set(TEST_VARIANTS)
    assert not speakers["train"] & speakers["test"] and not speakers["train"] & speakers["valid"]
    texts = {s: {u.transcript for u in getattr(corpus, s)} for s in ("train", "valid", "test")}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["valid"]
    # Adaptation data: the held-out voices on training sentences only.
    adapt = corpus.extra["adapt"]
    assert {u.speaker for u in adapt} <= set(TEST_VARIANTS)
    assert {u.transcript for u in adapt} <= texts["train"]
    assert len({u.key for u in corpus.train + corpus.valid + corpus.test + adapt}) == \
        len(corpus.train) + len(corpus.valid) + len(corpus.test) + len(adapt)
    assert all(3 <= len(u.transcript.split()) <= 8 for u in corpus.train)
    summary = corpus.summary()
    assert summary["train"]["utterances"] == len(corpus.train) == 48  # 24 sentences x 2 voices
    assert summary["test"]["speakers"] == len(speakers["test"]) and summary["adapt"]["utterances"] == 8
    json.dumps(summary)


@needs_espeak
def test_espeak_audio_loads_and_durations_match_files(tiny_espeak):
    _, corpus = tiny_espeak
    for u in corpus.train[:5] + corpus.test[:3]:
        x = load_audio(u)
        assert x.dtype == np.float32 and x.ndim == 1 and np.abs(x).max() > 0.05
        info = sf.info(u.audio)
        assert info.samplerate == SAMPLE_RATE and info.channels == 1
        assert u.duration > 0.3 and u.duration == pytest.approx(len(x) / SAMPLE_RATE, abs=1e-9)
        assert info.frames == len(x)


@needs_espeak
def test_espeak_build_is_deterministic(tiny_espeak, tmp_path):
    _, first = tiny_espeak
    second = build_espeak_corpus(tmp_path, **TINY)
    assert second.name == first.name
    assert manifest_entries(second) == manifest_entries(first)  # paths in the manifest are relative
    a, b = first.train[0], second.train[0]
    assert a.audio != b.audio and np.array_equal(load_audio(a), load_audio(b))


@needs_espeak
def test_espeak_cache_is_reused_without_synthesis(tiny_espeak, monkeypatch):
    cache, first = tiny_espeak
    mtimes = {u.audio: os.stat(u.audio).st_mtime_ns for u in first.train}
    real_run = subprocess.run

    def no_synthesis(command, *args, **kwargs):
        assert "-w" not in command, "espeak-ng was called although the corpus is cached"
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(espeak_corpus.subprocess, "run", no_synthesis)
    again = build_espeak_corpus(cache, **TINY)
    assert again.train == first.train and again.extra["adapt"] == first.extra["adapt"]
    assert {u.audio: os.stat(u.audio).st_mtime_ns for u in again.train} == mtimes


@needs_espeak
def test_espeak_killed_build_is_not_taken_for_finished(tmp_path, monkeypatch):
    """A build that dies midway leaves no corpus folder; the next build starts over and finishes."""
    real = espeak_corpus._synthesize
    calls = []

    def dies_after_ten(job, index, *args):
        calls.append(index)
        if len(calls) > 10:
            raise KeyboardInterrupt  # like Ctrl-C during synthesis
        return real(job, index, *args)

    monkeypatch.setattr(espeak_corpus, "_synthesize", dies_after_ten)
    with pytest.raises(KeyboardInterrupt):
        build_espeak_corpus(tmp_path, **SMALLEST)
    assert not list(tmp_path.glob("espeak-*")), "a half-built corpus was left under the final name"
    assert not list(tmp_path.iterdir()), "the temporary build folder was not cleaned up"
    monkeypatch.setattr(espeak_corpus, "_synthesize", real)
    corpus = build_espeak_corpus(tmp_path, **SMALLEST)
    assert len(corpus.train) == 16 and all(Path(u.audio).is_file() for u in corpus.train)


@needs_espeak
def test_espeak_cache_with_missing_files_is_rebuilt(tmp_path):
    corpus = build_espeak_corpus(tmp_path, **SMALLEST)
    Path(corpus.test[0].audio).unlink()
    rebuilt = build_espeak_corpus(tmp_path, **SMALLEST)
    assert Path(rebuilt.test[0].audio).is_file() and rebuilt.test == corpus.test


@needs_espeak
def test_espeak_noise_changes_audio_but_not_plan(tiny_espeak, tmp_path):
    _, clean = tiny_espeak
    noisy = build_espeak_corpus(tmp_path, noise_snr_db=10.0, **TINY)
    assert noisy.name != clean.name
    strip = lambda entries: [{k: v for k, v in e.items() if k != "duration"} for e in entries]  # noqa: E731
    assert strip(manifest_entries(noisy)) == strip(manifest_entries(clean))
    x, y = load_audio(clean.train[0]), load_audio(noisy.train[0])
    assert len(x) == len(y)
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert 8.5 < snr < 11.5


# 3. Audio loading ---------------------------------------------------------------------------------


def test_load_audio_stereo_44k_to_mono_16k(tmp_path):
    path = write_tone(tmp_path / "stereo.wav", seconds=1.5, rate=44100, channels=2, amplitude=0.5)
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 1.5 * SAMPLE_RATE) <= 1
    assert np.abs(x).max() == pytest.approx(0.45, abs=0.01)  # mean of 0.5 and 0.4 amplitude channels
    assert abs(len(load_audio(path, sample_rate=8000)) - 12000) <= 1


def test_load_audio_flac_and_ogg(tmp_path):
    for name in ("a.flac", "a.ogg"):
        x = load_audio(write_tone(tmp_path / name, seconds=0.5, rate=22050))
        assert abs(len(x) - 8000) <= 1


def test_load_audio_missing_and_corrupt_files(tmp_path):
    with pytest.raises(SpeechDataError, match="nothere.wav: audio file not found"):
        load_audio(tmp_path / "nothere.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(SpeechDataError, match="corrupt.wav: cannot read the audio"):
        load_audio(corrupt)


def test_load_audio_empty_and_silent(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), SAMPLE_RATE)
    with pytest.raises(SpeechDataError, match="empty.wav: the audio is empty"):
        load_audio(empty)
    with pytest.raises(SpeechDataError, match="silent.wav: the audio is silent"):
        load_audio(write_tone(tmp_path / "silent.wav", amplitude=0.0))


def test_load_audio_too_long(tmp_path):
    path = write_tone(tmp_path / "long.wav", seconds=3.0)
    with pytest.raises(SpeechDataError, match="long.wav: 3.0 s .*max_seconds=2"):
        load_audio(path, max_seconds=2)
    assert len(load_audio(path, max_seconds=3.5)) == 3 * SAMPLE_RATE


def test_load_audio_warns_on_clipping(tmp_path, recwarn):
    clipped = write_tone(tmp_path / "clipped.wav", amplitude=1.5, subtype="FLOAT")
    with pytest.warns(ClippingWarning, match="clipped.wav: .* clipped"):
        x = load_audio(clipped)
    assert np.abs(x).max() <= 1.0
    load_audio(write_tone(tmp_path / "fine.wav", amplitude=0.9))
    assert not [w for w in recwarn if issubclass(w.category, ClippingWarning)]


def test_load_audio_in_memory_int16():
    samples = (np.sin(np.arange(8000) / 5) * 16384).astype(np.int16)
    utt = Utterance("mem", "a b", "s", 1.0, "k1", samples, 8000)
    x = load_audio(utt)
    assert len(x) == SAMPLE_RATE and np.abs(x).max() == pytest.approx(0.5, abs=0.02)
    with pytest.raises(SpeechDataError, match="k2 \\(in memory\\): the audio is silent"):
        load_audio(Utterance("mem", "a", "s", 1.0, "k2", np.zeros(100, np.int16)))


# 4. User data -------------------------------------------------------------------------------------


def write_table(path, rows, delimiter=","):
    path.write_text("\n".join(delimiter.join(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_read_transcript_table_csv(tmp_path):
    write_tone(tmp_path / "audio" / "one.wav", seconds=0.5)
    write_tone(tmp_path / "audio" / "two.flac", seconds=1.25, rate=8000)
    table = write_table(tmp_path / "list.csv", [("Path", "Transcript", "Speaker"),
                                               ("audio/one.wav", '"Hello, world!"', "ann"),
                                               ("", "", ""),
                                               ("audio/two.flac", "It's two.", "bob")])
    utts = read_transcript_table(table)
    assert [u.transcript for u in utts] == ["hello world", "it's two"]
    assert [u.speaker for u in utts] == ["ann", "bob"] and [u.key for u in utts] == ["audio/one", "audio/two"]
    assert [u.duration for u in utts] == [0.5, 1.25]
    assert Path(utts[0].audio).is_absolute() and Path(utts[0].audio).is_file()


def test_read_transcript_table_tsv_sniffed_without_speaker(tmp_path):
    write_tone(tmp_path / "a.wav")
    table = write_table(tmp_path / "list.txt", [("file", "sentence"), ("a.wav", "some words, here")], "\t")
    (utt,) = read_transcript_table(table)
    assert (utt.transcript, utt.speaker, utt.key) == ("some words here", "unknown", "a")


def test_read_transcript_table_errors(tmp_path):
    write_tone(tmp_path / "a.wav")
    bad_header = write_table(tmp_path / "h.csv", [("wav", "words"), ("a.wav", "hi")])
    with pytest.raises(SpeechDataError, match=r"h.csv: no audio path column. The header is \['wav', 'words'\]; "
                                              r"name the column one of \['path', 'file', 'audio', 'filename'\]"):
        read_transcript_table(bad_header)
    no_text = write_table(tmp_path / "t.csv", [("path", "words"), ("a.wav", "hi")])
    with pytest.raises(SpeechDataError, match=r"no transcript column.*\['transcript', 'text', 'sentence'\]"):
        read_transcript_table(no_text)
    missing = write_table(tmp_path / "m.csv", [("path", "text")] + [(f"gone{i}.wav", "hi") for i in range(7)]
                          + [("a.wav", "hi")])
    with pytest.raises(SpeechDataError, match=r"m.csv: 7 audio file\(s\) not found: .*gone0.wav.*gone4.wav and 2 more"):
        read_transcript_table(missing)
    with pytest.raises(SpeechDataError, match="e.csv: the table has no rows"):
        read_transcript_table(write_table(tmp_path / "e.csv", [("path", "text")]))
    with pytest.raises(SpeechDataError, match=r"d.csv:3: .*'4'"):
        read_transcript_table(write_table(tmp_path / "d.csv", [("path", "text"), ("a.wav", "ok"), ("a.wav", "4 you")]))
    with pytest.raises(SpeechDataError, match=r"twice.csv: audio listed more than once: \['a'\]"):
        read_transcript_table(write_table(tmp_path / "twice.csv", [("path", "text"), ("a.wav", "x"), ("a.wav", "y")]))


def write_librispeech(root, speakers=("19", "26"), chapters=("198",), per_chapter=2):
    for speaker in speakers:
        for chapter in chapters:
            folder = root / speaker / chapter
            lines = []
            for i in range(per_chapter):
                utt_id = f"{speaker}-{chapter}-{i:04d}"
                write_tone(folder / f"{utt_id}.flac", seconds=0.25 + 0.25 * i)
                lines.append(f"{utt_id} THE WORD NUMBER {'ONE TWO THREE'.split()[i % 3]}")
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_read_librispeech(tmp_path):
    utts = read_librispeech(write_librispeech(tmp_path / "LibriSpeech"))
    assert [u.key for u in utts] == ["19-198-0000", "19-198-0001", "26-198-0000", "26-198-0001"]
    assert [u.speaker for u in utts] == ["19", "19", "26", "26"]
    assert utts[1].transcript == "the word number two" and utts[1].duration == 0.5
    assert utts[0].audio.endswith("19/198/19-198-0000.flac")


def test_read_librispeech_errors(tmp_path):
    root = write_librispeech(tmp_path / "ls")
    (root / "26" / "198" / "26-198-0001.flac").unlink()
    with pytest.raises(SpeechDataError, match=r"1 audio file\(s\) not found: .*26-198-0001.flac"):
        read_librispeech(root)
    with pytest.raises(SpeechDataError, match="no LibriSpeech transcripts"):
        read_librispeech(tmp_path / "empty")
    trans = write_librispeech(tmp_path / "digits", speakers=("7",)) / "7" / "198" / "7-198.trans.txt"
    trans.write_text("7-198-0000 CHAPTER 1\n")
    with pytest.raises(SpeechDataError, match=r"7-198.trans.txt:1: .*'1'"):
        read_librispeech(tmp_path / "digits")


def test_folder_with_transcripts_splits_by_speaker(tmp_path):
    rows = [("path", "text", "speaker")]
    for s in range(10):
        for i in range(3):
            write_tone(tmp_path / f"s{s}_{i}.wav", seconds=0.2)
            rows.append((f"s{s}_{i}.wav", "some words", f"spk{s}"))
    write_table(tmp_path / "transcripts.csv", rows)
    corpus = load_speech_corpus(f"folder:{tmp_path}", tmp_path / "cache")
    speakers = [{u.speaker for u in getattr(corpus, s)} for s in ("train", "valid", "test")]
    assert [len(s) for s in speakers] == [8, 1, 1]
    assert not (speakers[0] & speakers[1] or speakers[0] & speakers[2] or speakers[1] & speakers[2])
    assert len(corpus.train) + len(corpus.valid) + len(corpus.test) == 30
    # The same data splits the same way every time (hashes, not hash()).
    again = load_speech_corpus(f"table:{tmp_path / 'transcripts.csv'}", tmp_path / "cache")
    assert again.test == corpus.test and again.valid == corpus.valid


def test_few_speakers_split_by_utterance():
    utts = [Utterance(f"{i}.wav", "a", "one" if i % 2 else "two", 1.0, f"k{i}") for i in range(20)]
    train, valid, test = split_utterances(utts)
    assert (len(train), len(valid), len(test)) == (16, 2, 2)
    assert {u.speaker for u in test} <= {"one", "two"} and not {u.key for u in train} & {u.key for u in test}
    with pytest.raises(SpeechDataError, match="give at least 3 utterances"):
        split_utterances(utts[:2])


def test_folder_with_given_split_tables(tmp_path):
    for split, n in (("train", 4), ("valid", 2), ("test", 3)):
        rows = [("audio", "text")]
        for i in range(n):
            write_tone(tmp_path / split / f"{i}.wav", seconds=0.2)
            rows.append((f"{split}/{i}.wav", split))
        write_table(tmp_path / f"{split}.csv", rows)
    corpus = load_speech_corpus(f"folder:{tmp_path}", None)
    assert [len(corpus.train), len(corpus.valid), len(corpus.test)] == [4, 2, 3]
    assert {u.transcript for u in corpus.test} == {"test"}


def test_folder_with_librispeech_split_subfolders(tmp_path):
    write_librispeech(tmp_path / "train-clean-100", speakers=("1", "2", "3"))
    write_librispeech(tmp_path / "dev-clean", speakers=("4",))
    write_librispeech(tmp_path / "test-clean", speakers=("5", "6"))
    corpus = load_speech_corpus(f"folder:{tmp_path}", None)
    assert [{u.speaker for u in getattr(corpus, s)} for s in ("train", "valid", "test")] == \
        [{"1", "2", "3"}, {"4"}, {"5", "6"}]


def test_folder_errors(tmp_path):
    with pytest.raises(SpeechDataError, match="found no speech data"):
        load_speech_corpus(f"folder:{tmp_path}", None)
    with pytest.raises(SpeechDataError, match="not a folder"):
        load_speech_corpus(f"folder:{tmp_path / 'nope'}", None)
    with pytest.raises(SpeechDataError, match="unknown speech corpus 'mp3:x'"):
        load_speech_corpus("mp3:x", None)


# 5. TFDS (mocked) ---------------------------------------------------------------------------------


def test_tfds_librispeech_mocked(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        corpus = load_tfds_speech("librispeech", data_dir=str(tmp_path))
        capped = load_speech_corpus("tfds:librispeech", None, data_dir=str(tmp_path), max_examples=2)
    assert corpus.name == "tfds:librispeech"
    assert [len(corpus.train), len(corpus.valid), len(corpus.test)] == [6, 6, 6]
    assert [len(capped.train), len(capped.valid), len(capped.test)] == [2, 2, 2]
    utt = corpus.train[0]
    assert utt.samples is not None and utt.duration == len(utt.samples) / SAMPLE_RATE
    assert set(utt.transcript) <= set(ALPHABET[1:]) and utt.transcript == normalize_transcript(utt.transcript)
    x = load_audio(utt)
    assert x.dtype == np.float32 and len(x) == len(utt.samples)
    assert np.allclose(x, utt.samples / 32768.0)


def test_tfds_unknown_feature(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(SpeechDataError, match="tfds:librispeech has no feature 'audio'"):
            load_tfds_speech("librispeech", data_dir=str(tmp_path), audio_key="audio")
