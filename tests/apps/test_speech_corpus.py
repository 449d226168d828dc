"""Speech corpora: transcript normalization, the synthetic corpus (espeak-ng, flite, festival;
KJV and gettext text), audio loading, user data, TFDS."""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # before TensorFlow is imported

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dlsuite.apps.speech import engines, kjv_clauses, sentences, synthetic_corpus
from dlsuite.apps.speech.audio import SAMPLE_RATE, ClippingWarning, load_audio
from dlsuite.apps.speech.config import SpeechConfig
from dlsuite.apps.speech.corpus import load_speech_corpus
from dlsuite.apps.speech.engines import ENGINES, INSTALL, STRETCH, VOICES
from dlsuite.apps.speech.sentences import TEXT_SOURCES
from dlsuite.apps.speech.synthetic_corpus import PEAK, build_synthetic_corpus
from dlsuite.apps.speech.transcripts import ALPHABET, SpeechDataError, normalize_transcript
from dlsuite.apps.speech.user_data import load_tfds_speech, read_librispeech, read_transcript_table
from dlsuite.apps.speech.utterances import Utterance, split_utterances
from dlsuite.shared.config import ConfigError

TINY = {"num_sentences": 30, "workers": 2, "adapt_sentences": 4, "progress": False}
SMALLEST = {**TINY, "num_sentences": 10, "adapt_sentences": 1}  # 8/1/1 (+1 adapt, 1 ood) sentences, 24 utterances


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


# 2. The synthetic corpus -------------------------------------------------------------------------

needs_synthesizers = pytest.mark.skipif(
    any(shutil.which(p) is None for p in ("espeak-ng", "flite", "festival", "bible")),
    reason="needs espeak-ng, flite, festival (+ festvox voices) and bible-kjv (scripts/setup.sh)")
# A stand-in for scripts/fetch_gettext.sh's corpora: every word is in >= 3 messages; the last
# messages of each list are ones a synthesizer would not read as written, so they must be dropped.
GENERAL = {
    "train": [f"{verb} the {noun}" for verb in ("open", "close", "save", "delete")
              for noun in ("file", "window", "folder", "message", "picture")]
             + ["Save %s as", "Open file.txt now", "URL of the file", "Press Y to open", "open the tty"],
    "valid": [f"could not {verb} the {noun}" for verb in ("open", "save") for noun in ("file", "folder")],
    "test": [f"{noun} cannot be {verb}" for verb in ("opened", "saved") for noun in ("file", "message")]
            + ["opened the file", "saved the file", "opened the folder", "saved the folder"],
}
DOMAIN = {"train": [f"{verb} the {noun}" for verb in ("post", "void", "open") for noun in ("invoice", "account", "file")],
          "valid": ["reconcile the invoice", "reconcile the account"], "test": ["reconcile the file"]}


def write_gettext_corpus(folder: Path, packages, messages: dict) -> None:
    from dlsuite.apps.translation.gettext_corpus import CORPUS_FORMAT

    folder.mkdir(parents=True)
    for split, lines in messages.items():
        (folder / f"{split}.tsv").write_text("en\tde\n" + "".join(f"{m}\tDE {m}\n" for m in lines), encoding="utf-8")
    manifest = {"format": CORPUS_FORMAT, "packages": sorted(packages), "corpus_id": folder.name[-10:]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def gettext_dir(tmp_path_factory):
    from dlsuite.apps.translation.data import DOMAIN_PACKAGES, GENERAL_PACKAGES
    from dlsuite.apps.translation.debian_packages import PACKAGES, parse_pin

    root = tmp_path_factory.mktemp("translation")
    write_gettext_corpus(root / "gettext-de-general001", GENERAL_PACKAGES, GENERAL)
    write_gettext_corpus(root / "gettext-de-domain00001",
                         [p for p in PACKAGES if parse_pin(p)[0] in DOMAIN_PACKAGES], DOMAIN)
    write_gettext_corpus(root / "gettext-fr-general001", GENERAL_PACKAGES, {s: ["nope the file"] for s in GENERAL})
    return root


@pytest.fixture(scope="module")
def tiny(gettext_dir):
    return {**TINY, "gettext_dir": gettext_dir}


@pytest.fixture(scope="module")
def smallest(gettext_dir):
    return {**SMALLEST, "gettext_dir": gettext_dir}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory, tiny):
    cache = tmp_path_factory.mktemp("synthetic")
    return cache, build_synthetic_corpus(cache, **tiny)


def manifest_entries(corpus):
    return json.loads(Path(corpus.extra["manifest"]).read_text())["utterances"]


def test_speakable_keeps_plain_messages_only():
    assert sentences.speakable("Could not open the file.") == "could not open the file"
    assert sentences.speakable("Don't save (yet)") == "don't save yet"
    for message in ("Open %s", "Save {0}", "Page 2 of 3", "file.txt missing", "see e.g. this", "URL not found",
                    "GnuCash file", "use --force here", "Press Y now", "the tty name", "Über alles", "A/B test",
                    "Quit", " ".join(["word"] * 16)):
        assert sentences.speakable(message) is None, message


@needs_synthesizers
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


@needs_synthesizers
def test_sentence_pools_are_disjoint_across_splits_and_sources(gettext_dir):
    pools = sentences.sentence_pools(TEXT_SOURCES, str(gettext_dir))
    assert pools.sources == ("kjv", "gettext") and set(pools.origin) == {"general", "domain"}
    gettext = pools.splits["gettext"]
    assert set(gettext["train"]) == {normalize_transcript(m) for m in GENERAL["train"][:20]}  # the odd ones dropped
    # "opened the file" is no training message, but "open the file" is: different sentences, both kept;
    # the domain's "open the file" is a general training sentence, so it is no out-of-domain one.
    assert "opened the file" in gettext["test"] and "open the file" not in pools.ood
    assert set(pools.ood) == {normalize_transcript(m) for split in DOMAIN.values() for m in split} - {"open the file"}
    train = {s for source in pools.splits.values() for s in source["train"]}
    valid = {s for source in pools.splits.values() for s in source["valid"]}
    test = {s for source in pools.splits.values() for s in source["test"]}
    assert not train & valid and not train & test and not valid & test
    assert not set(pools.ood) & (train | valid | test)


@needs_synthesizers
def test_synthetic_splits_hold_out_voices_of_every_engine(tiny_corpus):
    _, corpus = tiny_corpus
    assert corpus.train and corpus.valid and corpus.test and corpus.extra["adapt"] and corpus.extra["test_ood"]
    entries = manifest_entries(corpus)
    voices = {s: {(e["engine"], e["voice"]) for e in entries if e["split"] == s} for s in synthetic_corpus.SPLITS}
    for engine in ENGINES:  # every engine speaks in training and in the test split
        assert any(e == engine for e, _ in voices["train"]) and any(e == engine for e, _ in voices["test"])
    by_sentence = {}
    for e in entries:
        by_sentence.setdefault((e["split"], e["transcript"]), []).append(e["engine"])
    assert all(len(set(said)) == len(said) == 2 for said in by_sentence.values())  # two engines each
    assert voices["train"] <= {(e, v) for e in ENGINES for v in VOICES[e]["train"]}
    for split in ("test", "adapt", "ood"):
        assert voices[split] <= {(e, v) for e in ENGINES for v in VOICES[e]["test"]}
    assert voices["valid"] <= {(e, v) for e in ENGINES for v in VOICES[e]["valid"]}
    # No voice, and no recorded person (flite's and festival's kal are one), in two splits.
    people = {s: {engines.person(e, v) for e, v in voices[s]} for s in ("train", "valid", "test")}
    assert not people["train"] & people["test"] and not people["train"] & people["valid"]
    assert not people["valid"] & people["test"]
    speakers = {s: {u.speaker for u in getattr(corpus, s)} for s in ("train", "valid", "test")}
    assert not speakers["train"] & speakers["test"] and not speakers["train"] & speakers["valid"]
    texts = {s: {u.transcript for u in getattr(corpus, s)} for s in ("train", "valid", "test")}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["valid"]
    # Adaptation data: the held-out voices on training sentences only.
    adapt = corpus.extra["adapt"]
    assert {u.transcript for u in adapt} <= texts["train"]
    everything = corpus.train + corpus.valid + corpus.test + adapt + corpus.extra["test_ood"]
    assert len({u.key for u in everything}) == len(everything)
    summary = corpus.summary()
    assert summary["train"]["utterances"] == len(corpus.train) == 48  # 24 sentences x 2 voices
    assert summary["test_ood"]["utterances"] == 6 and summary["adapt"]["utterances"] == 8  # 3 and 4 sentences
    json.dumps(summary)


@needs_synthesizers
def test_manifest_records_engine_voice_and_version(tiny_corpus):
    _, corpus = tiny_corpus
    manifest = json.loads(Path(corpus.extra["manifest"]).read_text())
    assert manifest["engines"] == list(ENGINES)
    espeak = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    festival = subprocess.run(["festival", "--version"], capture_output=True, text=True).stdout
    for entry in manifest["utterances"]:
        version = manifest["versions"][entry["engine"]][entry["voice"]]
        assert entry["engine_version"] == version and entry["speaker"] == f"{entry['engine']}:{entry['voice']}"
        if entry["engine"] == "espeak-ng":
            assert version in espeak and {"accent", "rate", "pitch"} <= set(entry)
        elif entry["engine"] == "flite":
            assert version.startswith("flite-2.") and STRETCH[0] <= entry["stretch"] <= STRETCH[1]
        else:
            assert version.split(" (")[0].removeprefix("festival ") in festival
            assert INSTALL["festival"][entry["voice"]] in version  # the voice package and its version


@needs_synthesizers
def test_texts_come_from_both_sources(tiny_corpus, gettext_dir):
    _, corpus = tiny_corpus
    pools = sentences.sentence_pools(TEXT_SOURCES, str(gettext_dir))
    assert corpus.extra["text_sources"] == ("kjv", "gettext")
    for split in ("train", "valid", "test"):
        by_source = {}
        for e in manifest_entries(corpus):
            if e["split"] == split:
                assert e["transcript"] in pools.splits[e["text_source"]][split]
                by_source.setdefault(e["text_source"], set()).add(e["transcript"])
        assert set(by_source) == {"kjv", "gettext"}
    train_sentences = {e["transcript"]: e["text_source"] for e in manifest_entries(corpus) if e["split"] == "train"}
    assert sum(s == "gettext" for s in train_sentences.values()) == 12  # an equal share of 24


@needs_synthesizers
def test_ood_sentences_are_in_neither_training_nor_lm_text(tiny_corpus, gettext_dir):
    from dlsuite.apps.speech.train import lm_sentences
    from dlsuite.pipelines.text import load_kjv

    _, corpus = tiny_corpus
    ood = {u.transcript for u in corpus.extra["test_ood"]}
    assert ood <= {normalize_transcript(m) for split in DOMAIN.values() for m in split}
    assert not ood & {u.transcript for u in corpus.train + corpus.extra["adapt"]}
    config = SpeechConfig(gettext_dir=str(gettext_dir))
    lm_text = set(lm_sentences(config, corpus))
    assert {normalize_transcript(m) for m in GENERAL["train"][:20]} <= lm_text  # all gettext training text
    assert normalize_transcript(load_kjv().train[0]) in lm_text  # and the KJV's training verses
    assert not ood & lm_text
    assert not {u.transcript for u in corpus.valid + corpus.test} & lm_text
    # gettext training messages the corpus does not speak are LM text, unless lm_text=kjv
    unspoken = {normalize_transcript(m) for m in GENERAL["train"][:20]} - {u.transcript for u in corpus.train}
    kjv_only = set(lm_sentences(dataclasses.replace(config, lm_text="kjv"), corpus))
    assert unspoken and not unspoken & kjv_only and kjv_only < lm_text
    assert set(lm_sentences(dataclasses.replace(config, lm_text="none"), corpus)) == {u.transcript for u in corpus.train}


@needs_synthesizers
def test_missing_engine_or_voice_is_an_error_naming_the_install(tmp_path, smallest, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(engines.shutil, "which", lambda p: None if p == "flite" else real_which(p))
    with pytest.raises(SpeechDataError, match=r"flite is not installed.*apt-get install flite`.*"
                                              r"engines=espeak-ng,festival"):
        build_synthetic_corpus(tmp_path, **smallest)
    monkeypatch.setattr(engines.shutil, "which", real_which)
    with pytest.raises(SpeechDataError, match="festival has no validation voice"):
        build_synthetic_corpus(tmp_path, **smallest, engines="festival")
    monkeypatch.setattr(engines, "_installed_voices", lambda e: frozenset({"kal_diphone", "cmu_us_slt_arctic_hts"}))
    with pytest.raises(SpeechDataError, match=r"festival lacks the voice\(s\) ked_diphone.*festvox-kdlpc16k"):
        build_synthetic_corpus(tmp_path, **smallest, engines="festival,espeak-ng")
    with pytest.raises(SpeechDataError, match="engines='espeak,flite': give distinct names from espeak-ng"):
        build_synthetic_corpus(tmp_path, **smallest, engines="espeak,flite")
    with pytest.raises(ConfigError, match="engines must be distinct names"):
        SpeechConfig(engines=("espeak-ng", "espeak-ng"))
    assert not list(tmp_path.iterdir())


@needs_synthesizers
def test_failed_synthesis_is_an_error_naming_the_command(tmp_path):
    """festival exits with 0 after a Scheme error; the error is found in its output."""
    (tmp_path / "raw").mkdir()
    jobs = [{"engine": "festival", "voice": voice, "transcript": "hello there", "stretch": 1.0, "key": f"k{i}",
             "path": f"k{i}.wav"} for i, voice in enumerate(("kal_diphone", "nobody_diphone"))]
    with pytest.raises(SpeechDataError, match=r"`festival --pipe` failed \(0\) for \['k0', 'k1'\]: .*voice_nobody"):
        synthetic_corpus._synthesize(jobs, [0, 1], tmp_path, None, 0)
    jobs[1]["voice"] = "ked_diphone"
    assert len(synthetic_corpus._synthesize(jobs, [0, 1], tmp_path, None, 0)) == 2
    assert (tmp_path / "k1.wav").is_file() and not list((tmp_path / "raw").iterdir())


@needs_synthesizers
def test_missing_gettext_corpus_falls_back_to_kjv_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match=r"no built gettext corpus.*KJV text only.*scripts/fetch_gettext.sh de"):
        corpus = build_synthetic_corpus(tmp_path / "cache", **{**SMALLEST, "gettext_dir": tmp_path / "nothing"},
                                        engines="espeak-ng")
    assert corpus.extra["text_sources"] == ("kjv",) and "test_ood" not in corpus.extra
    assert {e["text_source"] for e in manifest_entries(corpus)} == {"kjv"}
    assert {e["engine"] for e in manifest_entries(corpus)} == {"espeak-ng"}


@needs_synthesizers
def test_synthetic_audio_loads_and_durations_match_files(tiny_corpus):
    _, corpus = tiny_corpus
    by_engine = {}
    for u in corpus.train + corpus.test:
        by_engine.setdefault(u.speaker.split(":")[0], []).append(u)
    for engine in ENGINES:
        for u in by_engine[engine][:3]:
            x = load_audio(u)
            assert x.dtype == np.float32 and x.ndim == 1 and np.abs(x).max() == pytest.approx(PEAK, abs=1e-3)
            info = sf.info(u.audio)
            assert info.samplerate == SAMPLE_RATE and info.channels == 1
            assert u.duration > 0.3 and u.duration == pytest.approx(len(x) / SAMPLE_RATE, abs=1e-9)
            assert info.frames == len(x)


@needs_synthesizers
def test_synthetic_build_is_deterministic(tiny_corpus, tiny, tmp_path):
    _, first = tiny_corpus
    second = build_synthetic_corpus(tmp_path, **tiny)
    assert second.name == first.name
    assert manifest_entries(second) == manifest_entries(first)  # paths in the manifest are relative
    for engine in ENGINES:  # every engine speaks the same samples again
        a = next(u for u in first.train if u.speaker.startswith(engine))
        b = next(u for u in second.train if u.key == a.key)
        assert a.audio != b.audio and np.array_equal(load_audio(a), load_audio(b))


@needs_synthesizers
def test_synthetic_cache_is_reused_without_synthesis(tiny_corpus, tiny, monkeypatch):
    cache, first = tiny_corpus
    mtimes = {u.audio: os.stat(u.audio).st_mtime_ns for u in first.train}
    real_run = subprocess.run

    def no_synthesis(command, *args, **kwargs):
        synthesis = command[0] in ("espeak-ng", "flite") or "utt.save.wave" in (kwargs.get("input") or "")
        assert not synthesis, "synthesis ran although the corpus is cached"
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(synthetic_corpus.subprocess, "run", no_synthesis)
    again = build_synthetic_corpus(cache, **tiny)
    assert again.train == first.train and again.extra["adapt"] == first.extra["adapt"]
    assert again.extra["test_ood"] == first.extra["test_ood"]
    assert {u.audio: os.stat(u.audio).st_mtime_ns for u in again.train} == mtimes


@needs_synthesizers
def test_synthetic_killed_build_is_not_taken_for_finished(tmp_path, smallest, monkeypatch):
    """A build that dies midway leaves no corpus folder; the next build starts over and finishes."""
    real = synthetic_corpus._synthesize
    calls = []

    def dies_after_ten(jobs, indices, *args):
        calls.append(indices)
        if len(calls) > 10:
            raise KeyboardInterrupt  # like Ctrl-C during synthesis
        return real(jobs, indices, *args)

    monkeypatch.setattr(synthetic_corpus, "_synthesize", dies_after_ten)
    with pytest.raises(KeyboardInterrupt):
        build_synthetic_corpus(tmp_path, **smallest)
    assert not list(tmp_path.glob("synthetic-*")), "a half-built corpus was left under the final name"
    assert not list(tmp_path.iterdir()), "the temporary build folder was not cleaned up"
    monkeypatch.setattr(synthetic_corpus, "_synthesize", real)
    corpus = build_synthetic_corpus(tmp_path, **smallest)
    assert len(corpus.train) == 16 and all(Path(u.audio).is_file() for u in corpus.train)


@needs_synthesizers
def test_synthetic_cache_with_missing_files_is_rebuilt(tmp_path, smallest):
    corpus = load_speech_corpus("espeak", tmp_path, **smallest)  # the old name of the source
    Path(corpus.test[0].audio).unlink()
    rebuilt = load_speech_corpus("synthetic", tmp_path, **smallest)
    assert Path(rebuilt.test[0].audio).is_file() and rebuilt.test == corpus.test


@needs_synthesizers
def test_synthetic_noise_changes_audio_but_not_plan(tiny_corpus, tiny, tmp_path):
    _, clean = tiny_corpus
    noisy = build_synthetic_corpus(tmp_path, noise_snr_db=10.0, **tiny)
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
