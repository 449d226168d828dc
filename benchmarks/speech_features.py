"""Speech: feature-extraction throughput (in-graph tf.signal vs librosa) and the exported model's
real-time factor on CPU, as ratios in one run.

    .venv/bin/python benchmarks/speech_features.py [--utterances 200] [--export runs/speech/<run>/export]

Audio: espeak-ng sentences from the embedded corpus' voices (synthesized into a temporary folder).
  * features, seconds of audio per second of compute (best of 3):
      - librosa: `librosa.feature.melspectrogram` + log, one utterance at a time (NumPy);
      - ours, eager: `features.log_mel_spectrogram` called per utterance;
      - ours, tf.data: the same function mapped with `num_parallel_calls=AUTOTUNE`, as training does;
  * exported SavedModel (--export): real-time factor = compute seconds / audio seconds for
    `serving_default` (one utterance, beam search in the graph) and `transcribe_batch` (16 at once).
Prints a Markdown table and writes it to benchmarks/results/speech_features.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dlsuite.apps.speech import engines, features  # noqa: E402
from dlsuite.apps.speech.audio import load_audio  # noqa: E402

SENTENCES = ["in the beginning god created the heaven and the earth", "and the earth was without form and void",
             "and god said let there be light", "and there was light", "and god saw the light that it was good"]


def synthesize(folder: Path, n: int) -> list[np.ndarray]:
    voices = [f"en-us+{v}" for v in engines.VOICES["espeak-ng"]["train"]]
    clips = []
    for i in range(n):
        path = folder / f"{i}.wav"
        subprocess.run(["espeak-ng", "-v", voices[i % len(voices)], "-s", str(130 + 7 * (i % 10)), "-w", str(path),
                        SENTENCES[i % len(SENTENCES)]], check=True)
        clips.append(load_audio(str(path)))
    return clips


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def librosa_features(clips):
    for x in clips:
        mel = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=512, hop_length=160, center=False, htk=True,
                                             norm=None, fmin=20, fmax=7600, n_mels=80)
        np.log(mel + features.LOG_FLOOR)


def eager_features(clips):
    for x in clips:
        features.log_mel_spectrogram(tf.constant(x)).numpy()


def dataset_features(clips):
    ds = tf.data.Dataset.from_generator(lambda: iter(clips), output_signature=tf.TensorSpec([None], tf.float32))
    for _ in ds.map(features.log_mel_spectrogram, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE):
        pass


def export_rtf(export_dir: str, clips) -> dict:
    asr = tf.saved_model.load(export_dir)
    single = asr.signatures["serving_default"]
    audio_seconds = sum(len(x) for x in clips) / 16000
    single(waveform=tf.constant(clips[0]), sample_rate=tf.constant(16000))  # trace/warm up

    def one_by_one():
        for x in clips:
            single(waveform=tf.constant(x), sample_rate=tf.constant(16000))

    def batched(size=16):
        for i in range(0, len(clips), size):
            chunk = clips[i : i + size]
            padded = np.zeros((len(chunk), max(len(x) for x in chunk)), np.float32)
            for row, x in enumerate(chunk):
                padded[row, : len(x)] = x
            asr.transcribe_batch(tf.constant(padded), tf.constant([len(x) for x in chunk]), tf.constant(16000))

    batched()
    return {"single": best_of(one_by_one, 2) / audio_seconds, "batch16": best_of(batched, 2) / audio_seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=200)
    parser.add_argument("--export", help="an exported speech model folder, for the real-time factor")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clips = synthesize(Path(tmp), args.utterances)
    audio_seconds = sum(len(x) for x in clips) / 16000
    eager_features(clips[:2])  # warm up
    rates = {name: audio_seconds / best_of(lambda f=fn: f(clips)) for name, fn in
             [("librosa (NumPy, per utterance)", librosa_features), ("ours, eager tf.signal", eager_features),
              ("ours, tf.data map (AUTOTUNE)", dataset_features)]}
    base = rates["librosa (NumPy, per utterance)"]
    lines = [f"Speech features: {len(clips)} utterances, {audio_seconds:.0f} s of audio, {os.cpu_count()} CPU cores",
             "", "| log-mel (80 bands, 32 ms / 10 ms) | audio s per s | vs librosa |", "|---|---:|---:|"]
    lines += [f"| {name} | {rate:,.0f} | {rate / base:.2f}x |" for name, rate in rates.items()]
    if args.export:
        rtf = export_rtf(args.export, clips)
        lines += ["", f"Exported model `{args.export}` (CPU; real-time factor = compute s / audio s, lower is faster)", "",
                  "| signature | real-time factor | x faster than real time |", "|---|---:|---:|"]
        lines += [f"| {name} | {value:.4f} | {1 / value:,.0f}x |" for name, value in
                  [("serving_default (one utterance, beam 16 in graph)", rtf["single"]),
                   ("transcribe_batch (16 per call)", rtf["batch16"])]]
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(__file__).parent / "results" / "speech_features.md"
    out.write_text(table)


if __name__ == "__main__":
    main()
