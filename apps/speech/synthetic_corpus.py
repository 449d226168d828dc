"""The embedded speech corpus: sentences from the KJV and from English user-interface messages,
spoken by the voices of three synthesizers (espeak-ng, flite, festival), no download needed.

Train, valid and test use different voices of every engine *and* different sentences, so the test
error measures new speakers saying new word sequences (engines.py holds the voices, sentences.py
the text). `extra["test_ood"]` holds the test voices saying sentences of a domain that is in
neither the training text nor the LM text (accounting and spreadsheet messages), and
`extra["adapt"]` a few minutes of the test voices saying training sentences, for the fine-tuning
demo. Built once into `<cache_dir>/synthetic-<hash>/` (wav/ + manifest.json, which records the
engine, voice and engine version of every utterance) and reused: same arguments, same corpus.

    python -c "from dlsuite.apps.speech.synthetic_corpus import *; print(build_synthetic_corpus('data_cache/speech').summary())"
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from dlsuite.apps.speech import engines as engine_voices
from dlsuite.apps.speech.audio import SAMPLE_RATE
from dlsuite.apps.speech.sentences import (
    TEXT_SOURCES,
    available_sources,
    choose_sentences,
    sentence_pools,
)
from dlsuite.apps.speech.transcripts import SpeechDataError
from dlsuite.apps.speech.utterances import SpeechCorpus, Utterance, finished_manifest
from dlsuite.shared.runs import atomic_write_json, build_cache_folder

CORPUS_FORMAT = 4  # bump when synthesis or the sentence rules (sentences.py) change: old caches go unused
TRIM_TOP_DB, PAD_SECONDS = 40, 0.05
FESTIVAL_BATCH = 16  # utterances per festival process
PEAK = 0.7  # every utterance is scaled to this peak: the engines' levels differ (flite's kal16 peaks at 0.35)
SPLITS = ("train", "valid", "test", "adapt", "ood")
VOICE_GROUP = {"train": "train", "valid": "valid", "test": "test", "adapt": "test", "ood": "test"}


def parse_names(spec, choices: tuple[str, ...], field: str) -> tuple[str, ...]:
    """'a,b' (or a sequence of names) -> ('a', 'b'); unknown or repeated names are an error."""
    names = tuple(n.strip() for n in spec.split(",")) if isinstance(spec, str) else tuple(spec)
    if not names or not set(names) <= set(choices) or len(set(names)) != len(names):
        raise SpeechDataError(f"{field}={spec!r}: give distinct names from {', '.join(choices)}, comma-separated.")
    return names


def _pick_voices(voices: dict[str, tuple[str, ...]], count: int, rng) -> list[tuple[str, str]]:
    """`count` distinct (engine, voice) pairs: engines taken in a random order (each once before any
    twice), a random voice of each, so every engine gets an equal share of the utterances."""
    left = {engine: list(names) for engine, names in voices.items() if names}
    order = [list(left)[i] for i in rng.permutation(len(left))]
    chosen = []
    while len(chosen) < count and any(left.values()):
        for engine in order:
            if left[engine] and len(chosen) < count:
                chosen.append((engine, left[engine].pop(int(rng.integers(len(left[engine]))))))
    return chosen


def _plan(sentences: dict, engines: tuple[str, ...], variants_per_sentence: int, rng) -> list[dict]:
    """Every utterance to synthesize: each sentence said by `variants_per_sentence` voices of its
    split (of different engines while there are enough), prosody drawn from the same seeded RNG."""
    jobs = []
    for split in SPLITS:
        voices = {engine: engine_voices.VOICES[engine][VOICE_GROUP[split]] for engine in engines}
        if not any(voices.values()) and sentences.get(split):
            raise SpeechDataError(f"engines={','.join(engines)} have no {VOICE_GROUP[split]} voice; add espeak-ng "
                                  "or flite (festival has no validation voice).")
        for i, (text, source) in enumerate(sentences.get(split, [])):
            for engine, voice in _pick_voices(voices, variants_per_sentence, rng):
                jobs.append({"key": f"{split}-{i:04d}-{engine}-{voice}", "split": split, "transcript": text,
                             "text_source": source, "engine": engine, "voice": voice,
                             "speaker": f"{engine}:{voice}", **engine_voices.draw_prosody(engine, rng)})
    return jobs


def _trim(x: np.ndarray) -> np.ndarray:
    """Cuts the engines' leading and trailing silence, then pads PAD_SECONDS of silence on both
    sides, so every utterance starts and ends the same way."""
    import librosa

    _, (start, end) = librosa.effects.trim(x, top_db=TRIM_TOP_DB, frame_length=512, hop_length=128)
    return np.pad(x[start:end], int(PAD_SECONDS * SAMPLE_RATE))


def _add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    noise_power = np.mean(x.astype(np.float64) ** 2) / 10 ** (snr_db / 10)
    return x + rng.normal(0.0, np.sqrt(noise_power), len(x)).astype(np.float32)


def _synthesize(jobs: list[dict], indices: list[int], folder: Path, noise_snr_db: float | None,
                seed: int) -> list[float]:
    """One engine call for `jobs[indices]`, then each wav -> 16 kHz (soxr), trimmed, scaled to PEAK,
    optionally noisy 16-bit wav; returns their durations in seconds."""
    raws = [folder / "raw" / f"{jobs[i]['key']}.wav" for i in indices]
    command, stdin = engine_voices.synthesis_command([jobs[i] for i in indices], [str(r) for r in raws])
    result = subprocess.run(command, input=stdin, capture_output=True, text=True)
    # festival reports errors ("SIOD ERROR: ...") in its output and exits with 0
    if result.returncode != 0 or "SIOD ERROR" in result.stdout + result.stderr or not all(r.is_file() for r in raws):
        said = (result.stderr + result.stdout).strip()[-2000:]
        raise SpeechDataError(f"`{' '.join(command)}` failed ({result.returncode}) for "
                              f"{[jobs[i]['key'] for i in indices][:3]}: {said}")
    return [_finish(jobs[i], i, raw, folder, noise_snr_db, seed) for i, raw in zip(indices, raws, strict=True)]


def _finish(job: dict, index: int, raw: Path, folder: Path, noise_snr_db: float | None, seed: int) -> float:
    x, rate = sf.read(str(raw), dtype="float32")
    raw.unlink()
    x = _trim(soxr.resample(x, rate, SAMPLE_RATE, quality="HQ"))
    if not np.any(x):
        raise SpeechDataError(f"{job['engine']} voice {job['voice']} wrote silence for {job['transcript']!r}.")
    x *= PEAK / np.abs(x).max()
    if noise_snr_db is not None:
        # One generator per utterance, so the noise does not depend on which thread ran first.
        x = _add_noise(x, noise_snr_db, np.random.default_rng([seed, index]))
    sf.write(str(folder / job["path"]), np.clip(x, -1.0, 32767 / 32768), SAMPLE_RATE, subtype="PCM_16")
    return len(x) / SAMPLE_RATE


def _engine_calls(jobs: list[dict]) -> list[list[int]]:
    """Job indices per engine call: one job for espeak-ng and flite, up to FESTIVAL_BATCH of one voice
    for festival (a festival process takes ~0.2 s to start, about 10x a short sentence's synthesis)."""
    calls, festival = [], {}
    for i, job in enumerate(jobs):
        if job["engine"] == "festival":
            festival.setdefault(job["voice"], []).append(i)
        else:
            calls.append([i])
    for indices in festival.values():
        calls += [indices[k:k + FESTIVAL_BATCH] for k in range(0, len(indices), FESTIVAL_BATCH)]
    return calls


def _corpus_from_manifest(folder: Path, manifest: dict) -> SpeechCorpus:
    splits = {split: [] for split in SPLITS}
    for entry in manifest["utterances"]:
        splits[entry["split"]].append(Utterance(str(folder / entry["path"]), entry["transcript"],
                                                entry["speaker"], entry["duration"], entry["key"]))
    # text_sources is a tuple: SpeechCorpus.summary() counts the lists in `extra` as utterance lists
    extra = {"adapt": splits["adapt"], "manifest": str(folder / "manifest.json"),
             "text_sources": tuple(manifest["text_sources"])}
    if splits["ood"]:
        extra["test_ood"] = splits["ood"]
    return SpeechCorpus(f"synthetic-{manifest['corpus_id']}", splits["train"], splits["valid"], splits["test"], extra)


def _finished_manifest(folder: Path) -> dict | None:
    return finished_manifest(folder, CORPUS_FORMAT)


def _settings(num_sentences, variants_per_sentence, noise_snr_db, seed, adapt_sentences, engines,
              text_sources, text_origin) -> dict:
    """Everything the corpus depends on; its hash names the cache folder."""
    return {"format": CORPUS_FORMAT, "num_sentences": num_sentences,
            "variants_per_sentence": variants_per_sentence, "noise_snr_db": noise_snr_db,
            "seed": seed, "adapt_sentences": adapt_sentences, "engines": list(engines),
            "voices": {e: engine_voices.VOICES[e] for e in engines},
            "versions": engine_voices.voice_versions(engines), "espeak_accents": engine_voices.ESPEAK_ACCENTS,
            "espeak_rate_wpm": engine_voices.ESPEAK_RATE_WPM, "espeak_pitch": engine_voices.ESPEAK_PITCH,
            "espeak_amplitude": engine_voices.ESPEAK_AMPLITUDE, "stretch": engine_voices.STRETCH,
            "text_sources": list(text_sources), "text_origin": text_origin, "sample_rate": SAMPLE_RATE,
            "trim_top_db": TRIM_TOP_DB, "pad_seconds": PAD_SECONDS, "peak": PEAK}


def build_synthetic_corpus(cache_dir, num_sentences: int = 1200, variants_per_sentence: int = 2,
                           noise_snr_db: float | None = None, seed: int = 0, workers: int = 4,
                           adapt_sentences: int = 60, engines="espeak-ng,flite,festival",
                           text_sources="kjv,gettext", gettext_dir="data_cache/translation",
                           progress: bool = True) -> SpeechCorpus:
    """Synthesizes (or loads from `cache_dir`) the embedded corpus; same arguments, same corpus.

    `engines` and `text_sources` are comma-separated names (engines.ENGINES, sentences.TEXT_SOURCES);
    `gettext_dir` is where scripts/fetch_gettext.sh built the gettext corpus. Built into a temporary
    folder and renamed into place when finished, with manifest.json written last, so a killed
    build is never mistaken for a finished one.
    """
    engines = parse_names(engines, engine_voices.ENGINES, "engines")
    sources, origin = available_sources(parse_names(text_sources, TEXT_SOURCES, "text_sources"), gettext_dir)
    settings = _settings(num_sentences, variants_per_sentence, noise_snr_db, seed, adapt_sentences, engines,
                         sources, origin)
    corpus_id = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    final_dir = Path(cache_dir) / f"synthetic-{corpus_id}"
    manifest = _finished_manifest(final_dir)
    if manifest is not None:
        return _corpus_from_manifest(final_dir, manifest)

    rng = np.random.default_rng(seed)
    sentences = choose_sentences(num_sentences, sentence_pools(sources, str(gettext_dir)), rng)
    train = sentences["train"]
    adapt = sorted(rng.choice(len(train), min(adapt_sentences, len(train)), replace=False))
    sentences["adapt"] = [train[i] for i in adapt]  # training sentences, spoken by the test voices
    jobs = _plan(sentences, engines, variants_per_sentence, rng)
    with build_cache_folder(final_dir, _finished_manifest) as tmp_dir:
        for sub in ("wav", "raw"):
            (tmp_dir / sub).mkdir()
        for job in jobs:
            job["path"] = f"wav/{job['key']}.wav"  # relative: the cache folder can be moved
            job["engine_version"] = settings["versions"][job["engine"]][job["voice"]]
        durations = _run_jobs(jobs, tmp_dir, noise_snr_db, seed, workers, progress)
        for job, seconds in zip(jobs, durations, strict=True):
            job["duration"] = seconds
        (tmp_dir / "raw").rmdir()
        counts = {s: sum(j["split"] == s for j in jobs) for s in SPLITS}
        manifest = {**settings, "corpus_id": corpus_id, "counts": counts, "utterances": jobs}
        atomic_write_json(tmp_dir / "manifest.json", manifest)
    return _corpus_from_manifest(final_dir, _finished_manifest(final_dir) or manifest)


def _run_jobs(jobs, folder, noise_snr_db, seed, workers, progress) -> list[float]:
    from tqdm import tqdm

    # The engines run as subprocesses, so threads synthesize in parallel despite the GIL.
    calls = _engine_calls(jobs)
    with ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(jobs), desc="synthesis", unit="utt", disable=not progress) as bar:
        futures = [pool.submit(_synthesize, jobs, indices, folder, noise_snr_db, seed) for indices in calls]
        durations = [0.0] * len(jobs)
        try:
            for indices, future in zip(calls, futures, strict=True):
                for i, seconds in zip(indices, future.result(), strict=True):
                    durations[i] = seconds
                bar.update(len(indices))
        except BaseException:
            for future in futures:  # on an error or Ctrl-C, stop now rather than after every job
                future.cancel()
            raise
    return durations
