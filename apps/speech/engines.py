"""The synthesizers of the synthetic speech corpus, their voices, and which split each voice is in.

- `espeak-ng` (formant synthesis): each voice variant (`espeak-ng --voices=variant`) is one
  speaker, said with one of several English accents, a random rate and pitch; whisper, croak,
  klatt and other odd variants are left out;
- `flite` 2.2 (Debian `flite`, `flite -lv`): kal and kal16 (diphones of one speaker, 8 and 16 kHz),
  awb, rms and slt (clustergen voices trained on the CMU ARCTIC recordings of three speakers);
  awb_time only says the time and is left out;
- `festival` 2.5 (`festival` + the voice packages in INSTALL): kal_diphone, ked_diphone (diphone
  voices, 16 kHz) and cmu_us_slt_arctic_hts (an HTS voice, 32 kHz); flite and festival rates vary
  by a random duration stretch.

Test and validation voices never occur in training, and neither does their recorded person:
flite's kal/kal16 and festival's kal_diphone are one speaker, as are the two slt voices, so they
are all training voices. Debian's festival voices have three English speakers (kal, ked, slt),
so festival has no validation voice. An engine that is asked for but not installed (or lacks a voice) is an error naming the
`apt-get install` that fixes it: skipping it would build a corpus other than the one the settings
name. Leave an engine out with `engines=` instead.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

import numpy as np

from dlsuite.apps.speech.transcripts import SpeechDataError

ENGINES = ("espeak-ng", "flite", "festival")
SPLITS = ("train", "valid", "test")
VOICES = {
    "espeak-ng": {"train": ("m1", "m2", "m3", "m4", "m6", "f1", "f2", "f4", "Andy", "Annie", "adam", "belinda",
                            "john", "steph"),
                  "valid": ("m7", "f5", "Alex"),
                  "test": ("m5", "f3", "linda", "max")},
    "flite": {"train": ("kal", "kal16", "slt"), "valid": ("rms",), "test": ("awb",)},
    "festival": {"train": ("kal_diphone", "cmu_us_slt_arctic_hts"), "valid": (), "test": ("ked_diphone",)},
}
# The recorded person behind each flite/festival voice, where the voice name does not say it.
PERSON = {"kal16": "kal", "kal_diphone": "kal", "cmu_us_slt_arctic_hts": "slt", "ked_diphone": "ked"}
# What `apt-get install` gives each engine (scripts/setup.sh installs them all).
INSTALL = {"espeak-ng": {"espeak-ng": "espeak-ng"}, "flite": {"flite": "flite"},
           "festival": {"festival": "festival", "kal_diphone": "festvox-kallpc16k",
                        "ked_diphone": "festvox-kdlpc16k", "cmu_us_slt_arctic_hts": "festvox-us-slt-hts"}}
PROGRAMS = {"espeak-ng": ("espeak-ng",), "flite": ("flite",), "festival": ("festival",)}
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
                  "en-us-nyc")
ESPEAK_RATE_WPM = (130, 200)
ESPEAK_PITCH = (30, 70)
ESPEAK_AMPLITUDE = 75  # espeak-ng's default (100) clips a few of the louder variants
STRETCH = (0.85, 1.2)  # flite and festival: durations times this (their default pace is 1.0)


def person(engine: str, voice: str) -> str:
    """Who is heard: the recorded speaker of a flite/festival voice, or the espeak-ng variant."""
    return f"espeak-ng:{voice}" if engine == "espeak-ng" else PERSON.get(voice, voice)


def draw_prosody(engine: str, rng: np.random.Generator) -> dict:
    """An utterance's accent, rate and pitch (espeak-ng) or duration stretch (flite, festival)."""
    if engine == "espeak-ng":
        return {"accent": str(rng.choice(ESPEAK_ACCENTS)),
                "rate": int(rng.integers(ESPEAK_RATE_WPM[0], ESPEAK_RATE_WPM[1] + 1)),
                "pitch": int(rng.integers(ESPEAK_PITCH[0], ESPEAK_PITCH[1] + 1))}
    return {"stretch": round(float(rng.uniform(*STRETCH)), 2)}


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synthesis_command(jobs: list[dict], wavs: list[str]) -> tuple[list[str], str | None]:
    """The command that speaks `jobs` (engine, voice, transcript, prosody) into `wavs`, and its stdin.

    espeak-ng and flite speak one job per call; festival any number, as one Scheme script on
    stdin (its start-up costs about ten times the synthesis of a short sentence)."""
    job, wav = jobs[0], wavs[0]
    if job["engine"] != "festival" and len(jobs) != 1:
        raise ValueError(f"{job['engine']} speaks one job per call, got {len(jobs)}")
    if job["engine"] == "espeak-ng":
        return (["espeak-ng", "-v", f"{job['accent']}+{job['voice']}", "-s", str(job["rate"]), "-p",
                 str(job["pitch"]), "-a", str(ESPEAK_AMPLITUDE), "-w", wav, job["transcript"]], None)
    if job["engine"] == "flite":
        return (["flite", "-voice", job["voice"], "--setf", f"duration_stretch={job['stretch']}", "-t",
                 job["transcript"], "-o", wav], None)
    lines = []
    for job, wav in zip(jobs, wavs, strict=True):
        lines.append(f"(voice_{job['voice']})")
        if job["voice"].endswith("_hts"):  # HTS voices ignore Duration_Stretch; hts_engine's -r is a speed factor
            lines.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {1 / job["stretch"]:.3f}))))')
        else:
            lines.append(f"(Parameter.set 'Duration_Stretch {job['stretch']})")
        lines.append(f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(job['transcript'])})) "
                     f"{_scheme_string(wav)} 'riff)")
    return ["festival", "--pipe"], "\n".join(lines) + "\n"


def _output(command: list[str], stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SpeechDataError(f"`{' '.join(command)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout + result.stderr


def _package_version(package: str) -> str:
    """The Debian package's version ('' where dpkg is absent): voice data change between versions."""
    if shutil.which("dpkg-query") is None:
        return ""
    result = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def _missing(engine: str, what: str, packages: list[str], engines) -> SpeechDataError:
    others = ",".join(e for e in engines if e != engine) or "espeak-ng"
    return SpeechDataError(f"{what} (needed for the synthetic corpus's {engine} voices). Run `apt-get install "
                           f"{' '.join(packages)}` (scripts/setup.sh does), or leave {engine} out: engines={others}.")


@functools.cache
def _installed_voices(engine: str) -> frozenset[str]:
    if engine == "flite":
        return frozenset(_output(["flite", "-lv"]).split(":", 1)[-1].split())
    # festival prints (voice_a voice_b ...) for this Scheme expression
    return frozenset(re.findall(r"[\w-]+", _output(["festival", "--pipe"], "(print (voice.list))")))


@functools.cache
def _versions(engine: str) -> dict[str, str]:
    if engine == "espeak-ng":
        out = _output(["espeak-ng", "--version"])
        version = out.split("Data at")[0].strip()  # the data path differs between machines; the version does not
    elif engine == "flite":
        out = _output(["flite", "--version"], check=False)  # flite exits with 1 after printing it
        version = re.search(r"version:\s*(\S+)", out).group(1)
    else:
        version = "festival " + _output(["festival", "--version"]).rsplit("System:", 1)[-1].strip()
    return {voice: version + (f" ({INSTALL[engine][voice]} {_package_version(INSTALL[engine][voice])})"
                              if voice in INSTALL[engine] else "")
            for split in SPLITS for voice in VOICES[engine][split]}


def voice_versions(engines) -> dict[str, dict[str, str]]:
    """{engine: {voice: version}} for the corpus settings (another version speaks differently);
    an engine or voice that is missing is an error saying what to install."""
    for engine in engines:
        if any(shutil.which(program) is None for program in PROGRAMS[engine]):
            raise _missing(engine, f"{engine} is not installed", list(dict.fromkeys(INSTALL[engine].values())),
                           engines)
        if engine != "espeak-ng":
            wanted = [v for split in SPLITS for v in VOICES[engine][split]]
            absent = [v for v in wanted if v not in _installed_voices(engine)]
            if absent:
                packages = sorted({INSTALL[engine].get(v, engine) for v in absent})
                raise _missing(engine, f"{engine} lacks the voice(s) {', '.join(absent)}", packages, engines)
    return {engine: _versions(engine) for engine in engines}
