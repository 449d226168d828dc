"""The speech app: CTC speech recognition with n-gram LM fusion in beam search.

    dlsuite speech train                        # -> runs/speech/<time>-train/
    dlsuite speech train data=folder:my_audio/ lm=my.arpa
    dlsuite speech finetune --from runs/speech/<run>          # adapt to the held-out voices
    dlsuite speech evaluate --from runs/speech/<run>
    dlsuite speech predict --from runs/speech/<run> a.wav b.flac
    dlsuite speech export --from runs/speech/<run>
    dlsuite speech distill --from runs/speech/<a>,runs/speech/<b> rnn_units=64   # a smaller student

`train_and_evaluate` is the whole story: corpus, features, CTC training, then test CER/WER of
greedy decoding, beam search, and beam search fused with an n-gram LM whose weights (alpha, beta)
are tuned on the validation split. `SpeechApp` fills the app contract (apps/app.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import soundfile as sf

from dlsuite.apps.app import App, ExportProbe, run_folder
from dlsuite.apps.speech import data, distill, export, inference, train
from dlsuite.apps.speech.audio import SAMPLE_RATE
from dlsuite.apps.speech.config import NO_AUGMENTATION, SpeechConfig, quick
from dlsuite.apps.speech.model import build_speech_model
from dlsuite.apps.speech.transcripts import ALPHABET
from dlsuite.shared.training import set_up


class SpeechApp(App):
    name = "speech"
    config_class = SpeechConfig
    inputs_are = "files"
    kept_files = (inference.WORD_LM_FILE, inference.CHAR_LM_FILE, "fusion.json")

    def quick(self) -> SpeechConfig:
        return quick()

    def smoke_config(self, workdir: Path) -> SpeechConfig:
        return dataclasses.replace(SpeechConfig(), run_root=str(Path(workdir) / "runs"),
                                   cache_dir=str(Path(workdir) / "cache"), num_sentences=20, epochs=1, batch_size=8,
                                   rnn_units=16, rnn_layers=1, conv_filters=4, lm_text="none", beam_width=4,
                                   adapt_minutes=0.2, **NO_AUGMENTATION)  # augment.py has its own end-to-end test

    def smoke_inputs(self, workdir: Path) -> list[str]:
        path = Path(workdir) / "probe.wav"
        sf.write(path, probe_waveform(), SAMPLE_RATE)
        return [str(path)]

    def finetune_defaults(self, trained: SpeechConfig) -> dict:
        """Fine-tuning defaults for minutes of audio, not hours. The training run's own 25 epochs at
        batch 64 make about 100 updates on the 9 minutes of the real-speech set's adaptation part.
        Batch 16 at 1e-3 cut its beam CER from 0.547 to 0.249 in 30 epochs and to 0.221 in 60, whose
        validation loss had stopped falling (BENCHMARKS.md, "Speech: ... human voices")."""
        return {"batch_size": min(trained.batch_size, 16), "learning_rate": min(trained.learning_rate, 1e-3),
                "epochs": 60}

    # === Commands ===
    def train_and_evaluate(self, config: SpeechConfig, run_dir: Path) -> dict:
        strategy, batch = set_up(config)
        splits, examples = train.prepare(config, run_dir)
        lms = train.build_lm(config, splits, run_dir)
        with strategy.scope():
            model = build_speech_model(config, examples["train"].features[0].shape[1], len(ALPHABET))
        metrics = train.fit(model, config, examples["train"], examples["valid"], batch, run_dir)
        fusion, fusion_figures = inference.tune_and_save(model, examples["valid"], config, lms, run_dir)
        metrics |= fusion_figures
        metrics |= inference.evaluate_split(model, examples["test"], config, lms, fusion, run_dir)
        return metrics | out_of_domain_metrics(model, splits, config, lms, fusion, run_dir, metrics)

    def evaluate(self, config: SpeechConfig, run_dir: Path, source: Path) -> dict:
        """Test CER/WER of a trained run (its model and LM) on `config.data`; alpha and beta are tuned
        again on that data's validation split (beam_width, lexicon or open vocabulary, or no LM: inference.tune)."""
        set_up(config)
        splits, examples = train.prepare(config, run_dir, ("valid", "test"))
        lms, model = inference.load_lm(run_folder(source)), self.load_model(source, config.export_precision)
        fusion, metrics = inference.tune_and_save(model, examples["valid"], config, lms, run_dir)
        metrics |= inference.evaluate_split(model, examples["test"], config, lms, fusion, run_dir)
        return metrics | out_of_domain_metrics(model, splits, config, lms, fusion, run_dir, metrics)

    def finetune(self, config: SpeechConfig, run_dir: Path, source: Path) -> dict:
        """Adapts a trained model to new voices (train.adaptation_set) and its fusion LMs to their
        transcripts (train.adapted_lm); test CER/WER before (with the source run's LMs and weights)
        and after (with the weights tuned again on this data's validation split: a new domain may
        want other weights, or none)."""
        strategy, batch = set_up(config)
        splits, examples = train.prepare(config, run_dir, ("valid", "test"))
        source_config = self.trained_config(source)
        adaptation = train.adaptation_set(splits, config)
        adapt_figures = {"adapt_utterances": len(adaptation), "adapt_minutes": minutes_of(adaptation)}
        adapt = adaptation  # what fit trains on: the adaptation set, with rehearsal the source's data too
        if config.rehearsal_minutes:
            rehearsal = train.rehearsal_set(source_config, config)
            adapt_figures |= {"rehearsal_utterances": len(rehearsal), "rehearsal_minutes": minutes_of(rehearsal)}
            adapt = data.join_examples(adaptation, rehearsal)
        lms, fusion = inference.load_lm(run_dir), inference.read_fusion(run_dir)
        with strategy.scope():
            model = self.load_model(source)
        before = inference.evaluate_split(model, examples["test"], config, lms, fusion, run_dir, prefix="before")
        metrics = before | train.fit(model, config, adapt, examples["valid"], batch, run_dir)
        lms = train.adapted_lm(source_config, config, adaptation, lms, run_dir)
        fusion, fusion_figures = inference.tune_and_save(model, examples["valid"], config, lms, run_dir)
        metrics |= fusion_figures
        metrics |= inference.evaluate_split(model, examples["test"], config, lms, fusion, run_dir)
        return metrics | adapt_figures

    def distill(self, config: SpeechConfig, run_dir: Path, teachers: list[Path]) -> dict:
        """The model `config` describes (e.g. rnn_units=64), taught by the teachers' averaged per-frame
        character distributions and the transcripts (apps/speech/distill.py); the first teacher's LM,
        with alpha and beta tuned again for the student; test CER/WER as train reports them."""
        strategy, batch = set_up(config)
        with strategy.scope():
            teacher_models = [self.load_model(t) for t in teachers]
        distill.check_teachers(teachers, teacher_models, [self.trained_config(t) for t in teachers], config)
        self._copy_kept_files(teachers[0], run_dir)
        _, examples = train.prepare(config, run_dir)
        with strategy.scope():
            student = build_speech_model(config, examples["train"].features[0].shape[1], len(ALPHABET))
        metrics = distill.fit(student, teacher_models, config, examples["train"], examples["valid"], batch, run_dir,
                              strategy)
        lms = inference.load_lm(run_dir)
        fusion, fusion_figures = inference.tune_and_save(student, examples["valid"], config, lms, run_dir)
        metrics |= fusion_figures
        metrics |= inference.evaluate_split(student, examples["test"], config, lms, fusion, run_dir)
        return metrics | distill.teacher_figures(teacher_models, metrics["parameters"])

    def predict(self, config: SpeechConfig, source: Path, inputs: list[str]) -> list[dict]:
        lms, fusion = inference.load_lm(run_folder(source)), inference.read_fusion(run_folder(source))
        return inference.transcribe_files(self.load_model(source), lms, fusion, config, inputs)

    def export(self, config: SpeechConfig, source: Path, model, export_dir: Path) -> None:
        export.export_serving_model(model, config, export_dir)

    def export_probe(self, config: SpeechConfig, source: Path, model) -> ExportProbe:
        return export.probe(model, config, probe_waveform())

    def summary(self, metrics: dict) -> dict:
        return {k: v for k, v in metrics.items() if k.startswith(("test_", "lm_"))}


def out_of_domain_metrics(model, splits, config: SpeechConfig, lms, fusion, run_dir: Path, test_metrics: dict) -> dict:
    """test_ood_* CER/WER on the synthetic corpus's held-out text domain (the test voices saying
    sentences in neither the training nor the LM text; {} for other data), and per decoder
    test_ood_cer_ratio_<decoder>: that CER over the in-domain test CER (the target: at most 1.5)."""
    if not splits.extra.get("test_ood"):
        return {}
    examples = data.examples(splits.extra["test_ood"], config, "test_ood")
    metrics = inference.evaluate_split(model, examples, config, lms, fusion, run_dir, prefix="test_ood")
    for key in [k for k in metrics if k.startswith("test_ood_cer_")]:
        in_domain = test_metrics[key.replace("test_ood_", "test_")]
        metrics[key.replace("_cer_", "_cer_ratio_")] = round(metrics[key] / in_domain, 3) if in_domain else None
    return metrics


def probe_waveform(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """A fixed 16 kHz test signal (a chirp in noise) for checking exports without any data."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    chirp = 0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t)
    return (chirp + 0.02 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


def minutes_of(examples: data.Examples) -> float:
    """Minutes of audio in a split."""
    return round(sum(u.duration for u in examples.utterances) / 60, 2)
