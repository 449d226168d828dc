"""The embedded speech corpus: King James Bible clauses spoken by espeak-ng, no download needed.

Train, valid and test use different voice variants *and* different sentences, so the test error
measures new speakers saying new word sequences; `extra["adapt"]` holds a few minutes of the test
voices saying training sentences, for the fine-tuning demo. Built once into
`<cache_dir>/espeak-<hash>/` (wav/ + manifest.json) and reused: same arguments, same corpus.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from dlsuite.apps.speech.audio import SAMPLE_RATE
from dlsuite.apps.speech.kjv_clauses import choose_sentences
from dlsuite.apps.speech.transcripts import SpeechDataError
from dlsuite.apps.speech.utterances import SpeechCorpus, Utterance
from dlsuite.shared.runs import atomic_write_json, build_cache_folder

CORPUS_FORMAT = 2  # bump when synthesis changes, so old caches are not reused
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-029", "en-us-nyc")
# Voice variants (`espeak-ng --voices=variant`): whisper, croak, demonic, robot, klatt and other
# odd voices are left out; each variant is one "speaker". Test voices never occur in training.
TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m6", "f1", "f2", "f4", "Andy", "Annie", "adam",
                  "belinda", "john", "steph")
VALID_VARIANTS = ("m7", "f5", "Alex")
TEST_VARIANTS = ("m5", "f3", "linda", "max")
RATE_WPM = (130, 200)
PITCH = (30, 70)
AMPLITUDE = 75  # espeak-ng's default (100) clips a few of the louder variants
TRIM_TOP_DB, PAD_SECONDS = 40, 0.05


def espeak_version() -> str:
    """The espeak-ng version, part of the corpus settings: another version speaks differently."""
    if shutil.which("espeak-ng") is None:
        raise SpeechDataError("espeak-ng is not installed (needed for the embedded corpus). Run "
                              "`apt-get install espeak-ng`, or give your own data (folder:, table:, tfds:).")
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("Data at")[0].strip()  # the data path differs between machines; the version does not


def _plan(num_sentences, variants_per_sentence, adapt_sentences, seed) -> list[dict]:
    """Every utterance to synthesize, with its voice, rate and pitch, drawn from one seeded RNG."""
    rng = np.random.default_rng(seed)
    sentences = choose_sentences(num_sentences, rng)
    train = sentences["train"]
    adapt = sorted(rng.choice(len(train), min(adapt_sentences, len(train)), replace=False))
    sentences["adapt"] = [train[i] for i in adapt]  # training sentences, spoken by the test voices
    voices = {"train": TRAIN_VARIANTS, "valid": VALID_VARIANTS, "test": TEST_VARIANTS, "adapt": TEST_VARIANTS}
    jobs = []
    for split in ("train", "valid", "test", "adapt"):
        speakers = voices[split]
        for i, text in enumerate(sentences[split]):
            for variant in rng.choice(speakers, min(variants_per_sentence, len(speakers)), replace=False):
                jobs.append({"key": f"{split}-{i:04d}-{variant}", "split": split, "transcript": text,
                             "speaker": str(variant), "accent": str(rng.choice(ACCENTS)),
                             "rate": int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1)),
                             "pitch": int(rng.integers(PITCH[0], PITCH[1] + 1))})
    return jobs


def _trim(x: np.ndarray) -> np.ndarray:
    """Cuts espeak's silence (mostly trailing: its speech starts at once), then pads PAD_SECONDS
    of silence on both sides, so every utterance starts and ends the same way."""
    import librosa

    _, (start, end) = librosa.effects.trim(x, top_db=TRIM_TOP_DB, frame_length=512, hop_length=128)
    return np.pad(x[start:end], int(PAD_SECONDS * SAMPLE_RATE))


def _add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    noise_power = np.mean(x.astype(np.float64) ** 2) / 10 ** (snr_db / 10)
    return x + rng.normal(0.0, np.sqrt(noise_power), len(x)).astype(np.float32)


def _synthesize(job: dict, index: int, folder: Path, noise_snr_db: float | None, seed: int) -> float:
    """espeak-ng -> 16 kHz, trimmed, optionally noisy 16-bit wav; returns its duration in seconds."""
    raw = folder / "raw" / f"{job['key']}.wav"
    command = ["espeak-ng", "-v", f"{job['accent']}+{job['speaker']}", "-s", str(job["rate"]),
               "-p", str(job["pitch"]), "-a", str(AMPLITUDE), "-w", str(raw), job["transcript"]]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not raw.is_file():
        raise SpeechDataError(f"`{' '.join(command)}` failed ({result.returncode}): {result.stderr.strip()}")
    x, rate = sf.read(str(raw), dtype="float32")
    raw.unlink()
    x = _trim(soxr.resample(x, rate, SAMPLE_RATE, quality="HQ"))
    if noise_snr_db is not None:
        # One generator per utterance, so the noise does not depend on which thread ran first.
        x = _add_noise(x, noise_snr_db, np.random.default_rng([seed, index]))
    sf.write(str(folder / job["path"]), np.clip(x, -1.0, 32767 / 32768), SAMPLE_RATE, subtype="PCM_16")
    return len(x) / SAMPLE_RATE


def _corpus_from_manifest(folder: Path, manifest: dict) -> SpeechCorpus:
    splits = {"train": [], "valid": [], "test": [], "adapt": []}
    for entry in manifest["utterances"]:
        splits[entry["split"]].append(Utterance(str(folder / entry["path"]), entry["transcript"],
                                                entry["speaker"], entry["duration"], entry["key"]))
    return SpeechCorpus(f"espeak-{manifest['corpus_id']}", splits["train"], splits["valid"],
                        splits["test"], {"adapt": splits["adapt"], "manifest": str(folder / "manifest.json")})


def _finished_manifest(folder: Path) -> dict | None:
    """The manifest of a complete corpus in `folder`, or None (absent, unreadable, files missing)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("format") != CORPUS_FORMAT:
        return None
    if not all((folder / e["path"]).is_file() for e in manifest["utterances"]):
        return None
    return manifest


def _settings(num_sentences, variants_per_sentence, noise_snr_db, seed, adapt_sentences) -> dict:
    """Everything the corpus depends on; its hash names the cache folder."""
    return {"format": CORPUS_FORMAT, "num_sentences": num_sentences,
            "variants_per_sentence": variants_per_sentence, "noise_snr_db": noise_snr_db,
            "seed": seed, "adapt_sentences": adapt_sentences, "accents": ACCENTS,
            "train_variants": TRAIN_VARIANTS, "valid_variants": VALID_VARIANTS,
            "test_variants": TEST_VARIANTS, "rate_wpm": RATE_WPM, "pitch": PITCH,
            "amplitude": AMPLITUDE, "sample_rate": SAMPLE_RATE, "trim_top_db": TRIM_TOP_DB,
            "pad_seconds": PAD_SECONDS, "espeak_version": espeak_version()}


def build_espeak_corpus(cache_dir, num_sentences: int = 1200, variants_per_sentence: int = 2,
                        noise_snr_db: float | None = None, seed: int = 0, workers: int = 4,
                        adapt_sentences: int = 60, progress: bool = True) -> SpeechCorpus:
    """Synthesizes (or loads from `cache_dir`) the embedded corpus; same arguments, same corpus.

    Built into a temporary folder and renamed into place when finished, with manifest.json
    written last, so a killed build is never mistaken for a finished one.
    """
    settings = _settings(num_sentences, variants_per_sentence, noise_snr_db, seed, adapt_sentences)
    corpus_id = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    final_dir = Path(cache_dir) / f"espeak-{corpus_id}"
    manifest = _finished_manifest(final_dir)
    if manifest is not None:
        return _corpus_from_manifest(final_dir, manifest)

    jobs = _plan(num_sentences, variants_per_sentence, adapt_sentences, seed)
    with build_cache_folder(final_dir, _finished_manifest) as tmp_dir:
        for sub in ("wav", "raw"):
            (tmp_dir / sub).mkdir()
        for job in jobs:
            job["path"] = f"wav/{job['key']}.wav"  # relative: the cache folder can be moved
        durations = _run_jobs(jobs, tmp_dir, noise_snr_db, seed, workers, progress)
        for job, seconds in zip(jobs, durations, strict=True):
            job["duration"] = seconds
        (tmp_dir / "raw").rmdir()
        counts = {s: sum(j["split"] == s for j in jobs) for s in ("train", "valid", "test", "adapt")}
        manifest = {**settings, "corpus_id": corpus_id, "counts": counts, "utterances": jobs}
        atomic_write_json(tmp_dir / "manifest.json", manifest)
    return _corpus_from_manifest(final_dir, _finished_manifest(final_dir) or manifest)


def _run_jobs(jobs, folder, noise_snr_db, seed, workers, progress) -> list[float]:
    from tqdm import tqdm

    # espeak-ng runs as a subprocess, so threads synthesize in parallel despite the GIL.
    with ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(jobs), desc="espeak-ng", unit="utt", disable=not progress) as bar:
        futures = [pool.submit(_synthesize, job, i, folder, noise_snr_db, seed) for i, job in enumerate(jobs)]
        durations = []
        try:
            for future in futures:
                durations.append(future.result())
                bar.update()
        except BaseException:
            for future in futures:  # on an error or Ctrl-C, stop now rather than after every job
                future.cancel()
            raise
    return durations

