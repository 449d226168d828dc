"""The embedded real-speech set (apps/speech/asterisk_corpus.py): text rules, the sentence-disjoint
split, and a build from fake Debian packages (no network), cached on the second call."""

import gzip
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dlsuite.apps.speech import asterisk_corpus as asterisk
from dlsuite.apps.speech.corpus import load_speech_corpus
from dlsuite.apps.speech.transcripts import SpeechDataError
from dlsuite.shared import debian
from tests.fake_debs import build_deb, needs_dpkg

EN = asterisk.PROMPT_SETS["en"]


@pytest.mark.parametrize(("text", "expected"), [
    ("Please press 1 to mute, or 8 to exit.", ("please press one to mute or eight to exit", "kept")),
    ("You have 42 new messages", ("you have forty two new messages", "kept")),
    ("Call-Forward on No Answer.", ("call forward on no answer", "kept")),
    ("[ascending tones]", (None, "not_speech")),
    ("(10 seconds of silence)", (None, "not_speech")),
    ("<beep ascending>", (None, "not_speech")),
    ("dial 1234 now", (None, "numerals")),  # digit by digit, or "twelve thirty four"? unknown
    ("a 28.8 kilobit modem", (None, "numerals")),
    ("3D audio enabled", (None, "numerals")),
    ("H.323 connection", (None, "numerals")),
    ("press * to pause, # to exit", (None, "symbols")),
])
def test_prompt_transcript_spells_small_numbers_and_drops_the_ambiguous(text, expected):
    assert asterisk.prompt_transcript(text) == expected


def test_spell_number():
    assert [asterisk.spell_number(n) for n in (0, 7, 13, 20, 58, 99)] == [
        "zero", "seven", "thirteen", "twenty", "fifty eight", "ninety nine"]
    with pytest.raises(ValueError, match="0..99"):
        asterisk.spell_number(100)


def test_sentence_groups_keep_prompts_sharing_a_sentence_together():
    texts = {"a": "Login incorrect. Please enter your number.", "b": "Please enter your number.",
             "c": "Thank you.", "d": "Goodbye. Thank you!", "e": "Hello."}
    groups = sorted(sorted(g) for g in asterisk.sentence_groups(texts))
    assert groups == [["a", "b"], ["c", "d"], ["e"]]


def test_split_is_sentence_disjoint_with_the_asked_fractions():
    rng = np.random.default_rng(0)
    texts = {f"p{i}": f"sentence {i % 150}. ending {i % 150 // 3}" if i % 3 else f"alone {i}"
             for i in range(600)}
    seconds = {name: float(rng.uniform(1, 5)) for name in texts}
    split_of = asterisk.split_prompts(texts, seconds)
    sentences = {s: {split_of[n] for n in texts if s in asterisk._sentences(texts[n])}
                 for n in texts for s in asterisk._sentences(texts[n])}
    assert all(len(splits) == 1 for splits in sentences.values())
    share = {s: sum(seconds[n] for n in texts if split_of[n] == s) / sum(seconds.values())
             for s in ("train", "valid", "test")}
    assert share["train"] > 0.3 and share["test"] > 0.1 and share["valid"] > 0.0


def _wav(seconds: float, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    sf.write(out, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


PROMPTS = {f"prompt-{i}": f"Please say the word number {i}." for i in range(30)}
PROMPTS |= {"beep": "[this is a simple beep tone]", "digits/7": "seven", "star": "press * now", "no-audio": "gone"}


def build_prompt_debs(cache: Path, prompts: asterisk.PromptSet, texts: dict[str, str], monkeypatch) -> Path:
    """A prompt set's two pinned packages, built locally into the cache's debs/ folder (apt never called)."""
    text = "\ufeff; Core Asterisk Sounds\n\n" + "".join(f"{n}: {t}\n" for n, t in texts.items())
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    build_deb(debs, *debian.parse_pin(prompts.text_package), {prompts.text_file: gzip.compress(text.encode())})
    audio = {f"{prompts.audio_folder}{name}.wav": _wav(1.0 + i / 10)
             for i, name in enumerate(texts) if name != "no-audio"}
    build_deb(debs, *debian.parse_pin(prompts.audio_package), audio)

    def no_apt(*args, **kwargs):
        raise AssertionError(f"apt called: {args}")
    monkeypatch.setattr(debian.subprocess, "run", no_apt)
    return cache


@pytest.fixture
def fake_asterisk_debs(tmp_path, monkeypatch):
    return build_prompt_debs(tmp_path / "cache", EN, PROMPTS, monkeypatch)


@needs_dpkg
def test_build_from_packages_then_from_the_cache(fake_asterisk_debs, monkeypatch):
    corpus = load_speech_corpus("asterisk", fake_asterisk_debs)
    everything = corpus.train + corpus.valid + corpus.test
    assert {u.transcript for u in everything} == {asterisk.prompt_transcript(t)[0] for t in PROMPTS.values()} - {None, "gone"}
    assert corpus.test and corpus.train and {u.speaker for u in everything} == {"allison"}
    assert {u.transcript for u in corpus.train}.isdisjoint(u.transcript for u in corpus.test)
    manifest = json.loads(open(corpus.extra["manifest"]).read())
    assert manifest["versions"] == {"asterisk-core-sounds-en": "1.6.1-1", "asterisk-core-sounds-en-wav": "1.6.1-1"}
    assert manifest["dropped"] == {"not_speech": ["beep"], "symbols": ["star"], "no_audio": ["no-audio"]}
    first = everything[0]
    assert sf.info(first.audio).samplerate == 8000 and first.duration == pytest.approx(sf.info(first.audio).duration)

    monkeypatch.setattr(debian.subprocess, "Popen", lambda *a, **k: pytest.fail("read the packages again"))
    again = load_speech_corpus("asterisk", fake_asterisk_debs)
    assert [u.key for u in again.test] == [u.key for u in corpus.test]


@needs_dpkg
def test_a_package_without_the_text_file_is_a_clear_error(tmp_path, monkeypatch):
    debs = tmp_path / "debs"
    debs.mkdir()
    build_deb(debs, *debian.parse_pin(EN.text_package), {"usr/share/doc/other.txt": b"x"})
    build_deb(debs, *debian.parse_pin(EN.audio_package), {f"{EN.audio_folder}a.wav": _wav(1)})
    monkeypatch.setattr(debian.subprocess, "run", lambda *a, **k: pytest.fail("apt called"))
    with pytest.raises(SpeechDataError, match="has no .*core-sounds-en.txt.gz"):
        asterisk.build_asterisk_corpus(tmp_path)


def test_without_apt_the_error_says_what_to_do(tmp_path, monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError(args[0][0])
    monkeypatch.setattr(debian.subprocess, "run", missing)
    with pytest.raises(SpeechDataError, match="needs apt-get and dpkg-deb .*reused without any download"):
        asterisk.build_asterisk_corpus(tmp_path)


def test_a_corrupt_package_is_a_clear_error(tmp_path, monkeypatch):
    debs = tmp_path / "debs"
    debs.mkdir()
    for pin in (EN.text_package, EN.audio_package):
        name, version = debian.parse_pin(pin)
        (debs / f"{name}_{version}_all.deb").write_bytes(b"not a deb")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("apt called"))
    with pytest.raises(SpeechDataError, match="delete the file so it is downloaded again"):
        asterisk.build_asterisk_corpus(tmp_path)


def test_other_languages_keep_their_accents_off_and_drop_every_numeral():
    assert asterisk.prompt_transcript("Appuyez sur 1 pour écouter.", "fr") == (None, "numerals")
    assert asterisk.prompt_transcript("Press 1 to listen.", "en") == ("press one to listen", "kept")
    assert asterisk.prompt_transcript("Vous n'êtes plus en ligne.", "fr") == ("vous n'etes plus en ligne", "kept")


@needs_dpkg
def test_a_french_prompt_set_is_its_speakers_own_corpus(tmp_path, monkeypatch):
    texts = {"agent-loggedoff": "Vous n'êtes plus en ligne.", "press-1": "Appuyez sur 1.",
             **{f"p-{i}": f"Message numéro {'un deux trois quatre cinq six sept huit neuf dix'.split()[i]}."
                for i in range(10)}}
    cache = build_prompt_debs(tmp_path / "cache", asterisk.PROMPT_SETS["fr"], texts, monkeypatch)
    corpus = load_speech_corpus("asterisk:fr", cache)
    everything = corpus.train + corpus.valid + corpus.test
    assert {u.speaker for u in everything} == {"june"} and "vous n'etes plus en ligne" in {u.transcript for u in everything}
    manifest = json.loads(open(corpus.extra["manifest"]).read())
    assert manifest["language"] == "fr" and manifest["dropped"] == {"numerals": ["press-1"]}
    assert "June Wallack" in manifest["license"]
    with pytest.raises(SpeechDataError, match="no Asterisk prompt set for language 'de'"):
        load_speech_corpus("asterisk:de", cache)
