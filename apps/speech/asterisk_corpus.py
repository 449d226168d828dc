"""The embedded real-speech set: Asterisk's telephone prompts, read by human speakers.

Debian's `asterisk-core-sounds-en-wav` (CC-BY-SA 3.0) holds 560+ prompts recorded by Allison
Smith (`en_US_f_Allison/*.wav`, 8 kHz telephone audio); `asterisk-core-sounds-en` holds their
texts (`core-sounds-en.txt.gz`, `name: text` lines). Both are fetched with `apt-get download`
at pinned versions and read in place (shared/debian.py, nothing installed), then kept as
`<cache_dir>/asterisk-<hash>/` (the wav files unchanged + manifest.json).

The same prompts exist in other languages, read by other people (PROMPT_SETS): French by June
Wallack, Italian by Carlo Flora, Spanish by Allison Smith again. `data=asterisk:fr` loads one;
as `extra_train_data=asterisk:fr,asterisk:it` they add human voices to an English training
corpus (their spelling without accents, in the same a-z alphabet) without adding the English
test speaker. Spanish is the English test speaker's voice: never train on it before a zero-shot
evaluation on `asterisk`.

    dlsuite speech evaluate --from runs/speech/<run> data=asterisk    # zero-shot on human speech
    dlsuite speech finetune --from runs/speech/<run> data=asterisk    # adapt on its train part

Texts: prompts that are not speech (`[beep]`, `<beep ascending>`, `(10 seconds of silence)`) are
skipped; in English whole numbers up to 99 are spelled out ("press 1" -> "press one", as she
reads them); prompts with other numerals (1234, 28.8, 3D, H.323: read digit by digit or not at
all, we cannot know which; in the other languages every numeral) or with symbols she may say in
several ways (*, #, $, @, /, quotes) are dropped. The manifest counts every reason.

Splits: prompts sharing a sentence ("Please enter your password followed by the pound key.")
are kept together, so the test part has no sentence the adaptation part has. About half the
audio is the adaptation part (train + valid for `finetune`), 40% the test part.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import re
from pathlib import Path

import soundfile as sf

from dlsuite.apps.speech.transcripts import SpeechDataError, normalize_transcript
from dlsuite.apps.speech.utterances import SpeechCorpus, Utterance, finished_manifest, stable_hash
from dlsuite.shared import debian
from dlsuite.shared.runs import atomic_write_json, build_cache_folder

CORPUS_FORMAT = 1  # bump when the text rules or the split change, so old caches are not reused
VERSION = "1.6.1-1"  # bookworm's versions (unchanged since 2018); the candidate is used, with a warning, if they go
TEST_FRACTION, VALID_FRACTION = 0.4, 0.1


@dataclasses.dataclass(frozen=True)
class PromptSet:
    """One language's prompts: its two Debian packages, the folder of its recordings, who reads them."""

    language: str
    voice_folder: str  # en_US_f_Allison: <language>_<country>_<sex>_<name>, the packages' own naming
    speaker: str
    license: str

    @property
    def text_package(self) -> str:
        return f"asterisk-core-sounds-{self.language}={VERSION}"

    @property
    def audio_package(self) -> str:
        return f"asterisk-core-sounds-{self.language}-wav={VERSION}"

    @property
    def text_file(self) -> str:
        return f"usr/share/doc/asterisk-core-sounds-{self.language}/core-sounds-{self.language}.txt.gz"

    @property
    def audio_folder(self) -> str:
        return f"usr/share/asterisk/sounds/{self.voice_folder}/"


# From the packages' copyright file. Russian is left out: its Cyrillic texts need a transliteration.
PROMPT_SETS = {
    "en": PromptSet("en", "en_US_f_Allison", "allison", "CC-BY-SA 3.0 (Digium, Inc.; voice: Allison Smith)"),
    "es": PromptSet("es", "es_MX_f_Allison", "allison", "CC-BY-SA 3.0 (Digium, Inc.; voice: Allison Smith)"),
    "fr": PromptSet("fr", "fr_CA_f_June", "june", "CC-BY-SA 3.0 (Digium, Inc.; voice: June Wallack)"),
    "it": PromptSet("it", "it_IT_m_Carlo", "carlo", "CC-BY 3.0 (Carlo Flora)"),
}

_NOT_SPEECH = re.compile(r"^\s*[\[<(].*[\]>)]\s*$")  # [ascending tones], <beep>, (1 second of silence)
_NUMERAL = re.compile(r"\d+")
_UNSAID_SYMBOLS = set("*#$@/=+<>()[]\"")  # each has several spoken forms ("star"/"asterisk", "pound"/"hash")
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell_number(n: int) -> str:
    """0..99 in words ("forty two"). Written here: two lines do what a library would for this range."""
    if not 0 <= n <= 99:
        raise ValueError(f"spell_number covers 0..99, got {n}")
    return _ONES[n] if n < 20 else " ".join([_TENS[n // 10 - 2]] + ([_ONES[n % 10]] if n % 10 else []))


def prompt_transcript(text: str, language: str = "en") -> tuple[str | None, str]:
    """A prompt's text -> (normalized transcript, "kept"), or (None, the reason it is dropped).
    Numbers are spelled out in English only."""
    if _NOT_SPEECH.match(text):
        return None, "not_speech"
    if set(text) & _UNSAID_SYMBOLS:
        return None, "symbols"
    numerals = _NUMERAL.findall(text)
    # A numeral counts as a word only when it stands alone ("press 1,"), not in "28.8", "3D", "H.323".
    standalone = re.findall(r"(?<![\w.])\d+(?![\w.]\w|\w)", text)
    if numerals and (language != "en" or len(standalone) != len(numerals) or any(int(n) > 99 for n in numerals)):
        return None, "numerals"
    spelled = re.sub(r"(?<![\w.])\d+(?![\w.]\w|\w)", lambda m: spell_number(int(m.group())), text)
    try:
        return normalize_transcript(spelled), "kept"
    except SpeechDataError:
        return None, "unspellable"


def read_prompt_texts(data: bytes) -> dict[str, str]:
    """core-sounds-<language>.txt.gz -> {prompt name: text}; `;` lines are comments (utf-8-sig:
    the Italian file starts with a byte order mark)."""
    texts = {}
    for line in gzip.decompress(data).decode("utf-8-sig", errors="replace").splitlines():
        name, sep, text = line.partition(":")
        if sep and not line.startswith(";") and name.strip():
            texts[name.strip()] = text.strip()
    return texts


def _sentences(text: str) -> set[str]:
    return {" ".join(s.lower().split()) for s in re.split(r"[.?!]+", text) if s.strip()}


def sentence_groups(texts: dict[str, str]) -> list[list[str]]:
    """Prompt names grouped so that no two groups share a sentence (union-find over sentences)."""
    parent = {name: name for name in texts}

    def root(name):
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    first_with = {}
    for name in sorted(texts):
        for sentence in _sentences(texts[name]):
            other = first_with.setdefault(sentence, name)
            parent[root(name)] = root(other)
    groups = {}
    for name in sorted(texts):
        groups.setdefault(root(name), []).append(name)
    return sorted(groups.values(), key=lambda g: stable_hash(g[0]))


def split_prompts(texts: dict[str, str], seconds: dict[str, float]) -> dict[str, str]:
    """{name: "test"|"valid"|"train"}: whole sentence groups, in hash order, until each split has
    its fraction of the audio."""
    total, filled, split_of = sum(seconds.values()), {"test": 0.0, "valid": 0.0}, {}
    for group in sentence_groups(texts):
        audio = sum(seconds[n] for n in group)
        split = next((s for s, f in (("test", TEST_FRACTION), ("valid", VALID_FRACTION))
                      if filled[s] + audio / 2 <= f * total), "train")
        filled[split] = filled.get(split, 0.0) + audio
        split_of.update({name: split for name in group})
    return split_of


def _fetch(prompts: PromptSet, cache_dir: Path, final_dir: Path) -> tuple[dict[str, bytes], bytes, dict, dict]:
    hint = (f"A finished set in {final_dir} is reused without any download: build it where Debian's mirror "
            "is reachable and copy the folder.")
    apt = debian.AptDownloader(cache_dir / "debs", hint, SpeechDataError)
    versions, debs = {}, {}
    for pin in (prompts.text_package, prompts.audio_package):
        name, version = debian.parse_pin(pin, SpeechDataError)
        debs[name], versions[name] = apt.fetch(name, version)
    text_deb, audio_deb = debs.values()
    text_files = debian.read_deb_files(text_deb, lambda p: p == prompts.text_file, SpeechDataError)
    if prompts.text_file not in text_files:
        raise SpeechDataError(f"{text_deb} has no {prompts.text_file}; the package changed. "
                              f"Pin {prompts.text_package} (apt-cache policy {next(iter(debs))}).")
    folder = prompts.audio_folder
    wavs = debian.read_deb_files(audio_deb, lambda p: p.startswith(folder) and p.endswith(".wav"), SpeechDataError)
    wavs = {p[len(folder):-len(".wav")]: data for p, data in wavs.items()}
    return wavs, text_files[prompts.text_file], versions, {n: str(p.name) for n, p in debs.items()}


def _finished_manifest(folder: Path) -> dict | None:
    return finished_manifest(folder, CORPUS_FORMAT)


def _corpus_from_manifest(folder: Path, manifest: dict) -> SpeechCorpus:
    splits = {"train": [], "valid": [], "test": []}
    speaker = manifest.get("speaker", "allison")
    for e in manifest["utterances"]:
        splits[e["split"]].append(Utterance(str(folder / e["path"]), e["transcript"], speaker, e["duration"],
                                            e["key"]))
    return SpeechCorpus(f"asterisk-{manifest['corpus_id']}", splits["train"], splits["valid"], splits["test"],
                        {"manifest": str(folder / "manifest.json")})


def build_asterisk_corpus(cache_dir, language: str = "en") -> SpeechCorpus:
    """One language's prompt set (fetched and cached on first use; later calls read the cache only)."""
    if language not in PROMPT_SETS:
        raise SpeechDataError(f"no Asterisk prompt set for language {language!r}: use asterisk (English) or "
                              f"asterisk:<{'|'.join(PROMPT_SETS)}>.")
    prompts = PROMPT_SETS[language]
    settings = {"format": CORPUS_FORMAT, "packages": [prompts.text_package, prompts.audio_package],
                "test_fraction": TEST_FRACTION, "valid_fraction": VALID_FRACTION}
    corpus_id = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    cache_dir = Path(cache_dir)
    final_dir = cache_dir / f"asterisk-{corpus_id}"
    manifest = _finished_manifest(final_dir)
    if manifest is not None:
        return _corpus_from_manifest(final_dir, manifest)
    wavs, text_data, versions, deb_files = _fetch(prompts, cache_dir, final_dir)
    texts = read_prompt_texts(text_data)
    reasons, kept = {"no_audio": sorted(set(texts) - set(wavs)), "no_text": sorted(set(wavs) - set(texts))}, {}
    for name in sorted(set(texts) & set(wavs)):
        transcript, reason = prompt_transcript(texts[name], language)
        if transcript is None:
            reasons.setdefault(reason, []).append(name)
        else:
            kept[name] = transcript
    infos = {name: sf.info(io.BytesIO(wavs[name])) for name in kept}
    seconds = {name: float(info.duration) for name, info in infos.items()}
    split_of = split_prompts({n: texts[n] for n in kept}, seconds)
    with build_cache_folder(final_dir, _finished_manifest) as tmp_dir:
        entries = []
        for name in sorted(kept):
            path = Path("wav") / f"{name}.wav"  # digits/1 -> wav/digits/1.wav: names stay readable
            (tmp_dir / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_dir / path).write_bytes(wavs[name])
            entries.append({"key": name, "path": str(path), "split": split_of[name], "transcript": kept[name],
                            "text": texts[name], "duration": seconds[name],
                            "sample_rate": int(infos[name].samplerate)})
        counts = {s: {"utterances": sum(e["split"] == s for e in entries),
                      "minutes": round(sum(e["duration"] for e in entries if e["split"] == s) / 60, 2)}
                  for s in ("train", "valid", "test")}
        manifest = {**settings, "corpus_id": corpus_id, "versions": versions, "debs": deb_files,
                    "language": language, "speaker": prompts.speaker, "license": prompts.license, "counts": counts,
                    "dropped": {r: names for r, names in reasons.items() if names}, "utterances": entries}
        atomic_write_json(tmp_dir / "manifest.json", manifest)
    return _corpus_from_manifest(final_dir, _finished_manifest(final_dir) or manifest)
