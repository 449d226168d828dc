"""What a person would rather look at or listen to: CTC alignments over spectrograms, WER by
utterance length, per-utterance results and the worst errors, audio samples in TensorBoard."""

from __future__ import annotations

from pathlib import Path

import jiwer
import keras
import numpy as np

from dlsuite.apps.speech.audio import SAMPLE_RATE, load_audio
from dlsuite.apps.speech.transcripts import ALPHABET
from dlsuite.shared import plots
from dlsuite.shared.runs import atomic_write_text


def write_results(utterances, hypotheses: dict[str, list[str]], run_dir: Path, prefix: str, worst: int = 25) -> None:
    """<prefix>_results.tsv (every utterance, every decoder) and <prefix>_worst_errors.txt."""
    methods = list(hypotheses)
    best = methods[-1]  # beam_lm when there is an LM
    rows = ["key\tspeaker\tseconds\treference\t" + "\t".join(methods) + f"\twer_{best}"]
    errors = []
    for i, utt in enumerate(utterances):
        wer = jiwer.wer(utt.transcript, hypotheses[best][i] or "<empty>")
        errors.append((wer, i))
        rows.append(f"{utt.key}\t{utt.speaker}\t{utt.duration:.2f}\t{utt.transcript}\t"
                    + "\t".join(hypotheses[m][i] for m in methods) + f"\t{wer:.3f}")
    atomic_write_text(run_dir / f"{prefix}_results.tsv", "\n".join(rows) + "\n")
    lines = [f"The {worst} worst {prefix} utterances by WER of '{best}':\n"]
    for wer, i in sorted(errors, reverse=True)[:worst]:
        utt = utterances[i]
        lines.append(f"{utt.key} ({utt.speaker}, {utt.duration:.1f} s) WER {wer:.2f}\n  ref: {utt.transcript}\n"
                     + "".join(f"  {m}: {hypotheses[m][i]}\n" for m in methods))
    atomic_write_text(run_dir / f"{prefix}_worst_errors.txt", "\n".join(lines))


def wer_by_length_figure(utterances, hypotheses: dict[str, list[str]], run_dir: Path, prefix: str):
    """WER of each decoder by reference length in words."""
    import matplotlib.pyplot as plt

    lengths = np.array([len(u.transcript.split()) for u in utterances])
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, texts in hypotheses.items():
        xs, ys = [], []
        for n in np.unique(lengths):
            chosen = np.flatnonzero(lengths == n)
            xs.append(n)
            ys.append(100 * jiwer.wer([utterances[i].transcript for i in chosen], [texts[i] or "<empty>" for i in chosen]))
        ax.plot(xs, ys, marker="o", label=method)
    ax.set_xlabel("reference length (words)")
    ax.set_ylabel("WER (%)")
    ax.set_title(f"WER by utterance length ({prefix})")
    ax.legend()
    return plots.save_figure(fig, run_dir, f"{prefix}_wer_by_length")


def alignment_figure(examples, log_probs: list[np.ndarray], run_dir: Path, prefix: str, stride: int = 2, count: int = 3):
    """Spectrograms with the CTC alignment: the best label of every output frame written along the
    time axis over the `stride` feature frames it covers (blanks left out)."""
    import matplotlib.pyplot as plt

    count = min(count, len(log_probs))
    fig, axes = plt.subplots(count, 1, figsize=(12, 3 * count), squeeze=False)
    for ax, features, lp, utt in zip(axes[:, 0], examples.features, log_probs, examples.utterances, strict=False):
        ax.imshow(features.T, origin="lower", aspect="auto", cmap="magma")
        for t, label in enumerate(np.argmax(lp, axis=1)):
            if label != 0:
                ax.text(stride * t + stride / 2, features.shape[1] * 0.85, ALPHABET[label] if label != 1 else "_",
                        color="white", fontsize=8, ha="center")
        ax.set_title(f"{utt.key} ({utt.speaker}): {utt.transcript}", fontsize=9)
        ax.set_ylabel("mel band")
    axes[-1, 0].set_xlabel("frame (10 ms); letters: the per-frame best CTC label (blanks not shown, _ = space)")
    return plots.save_figure(fig, run_dir, f"{prefix}_ctc_alignment")


class AudioSamples(keras.callbacks.Callback):
    """TensorBoard: a few validation utterances as audio (once), and their greedy transcripts
    after every epoch, to hear and read what the model gets wrong as it learns."""

    def __init__(self, examples, run_dir: Path, count: int = 3):
        super().__init__()
        self.examples, self.count = examples, min(count, len(examples))
        self.writer_dir = str(Path(run_dir) / "tb" / "samples")

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(self.writer_dir)
        with self.writer.as_default():
            for i, utt in enumerate(self.examples.utterances[: self.count]):
                audio = load_audio(utt, max_seconds=600)
                tf.summary.audio(f"valid_{i}", audio[None, :, None], SAMPLE_RATE, step=0)
                tf.summary.text(f"valid_{i}/reference", utt.transcript, step=0)

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        from dlsuite.apps.speech.decode import greedy_decode

        with self.writer.as_default():
            for i in range(self.count):
                features = self.examples.features[i]
                text = greedy_decode(self.model.utterance_log_probs(features), ALPHABET)
                tf.summary.text(f"valid_{i}/greedy", text or "(empty)", step=epoch + 1)
        self.writer.flush()
