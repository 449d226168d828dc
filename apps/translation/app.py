"""The translation app: encoder-decoder NMT with Bahdanau attention, beam search, BLEU, alignments.

    dlsuite translation train                               # -> runs/translation/<time>-train/
    dlsuite translation train compare_baseline=true         # + the no-attention model, BLEU by length
    dlsuite translation train target_lang=fr                # the same commands for en-fr
    dlsuite translation finetune --from runs/translation/<run>   # the held-out accounting domain
    dlsuite translation evaluate --from runs/translation/<run>
    dlsuite translation predict --from runs/translation/<run> "Open the file" sentences.txt
    dlsuite translation export --from runs/translation/<run>
    dlsuite translation distill --from runs/translation/<a>,runs/translation/<b> encoder_units=64 decoder_units=96

`train_and_evaluate` is the whole story: corpus, sentencepiece vocabulary, teacher-forced
training, then test BLEU/chrF (sacrebleu) of greedy and beam search, BLEU by source length,
sample translations and attention alignments. `TranslationApp` fills the app contract
(apps/app.py).
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from dlsuite.apps.app import App, ExportProbe, run_folder
from dlsuite.apps.translation import data, distill, export, inference, train
from dlsuite.apps.translation.config import TranslationConfig, quick
from dlsuite.apps.translation.model import build_translator
from dlsuite.shared.runs import atomic_write_json
from dlsuite.shared.training import set_up

PROBE_SENTENCES = ("Open the file", "Save the document as a new file", "", "Unknown characters: ✓ Ω")
# A toy language pair for smoke runs: word-by-word translation of random word strings.
TOY_WORDS = {"one": "eins", "two": "zwei", "three": "drei", "red": "rot", "blue": "blau", "house": "Haus",
             "car": "Auto", "tree": "Baum", "open": "öffnen", "file": "Datei"}


class TranslationApp(App):
    name = "translation"
    config_class = TranslationConfig
    inputs_are = "text"
    kept_files = ("source.model", "target.model")

    def quick(self) -> TranslationConfig:
        return quick()

    def smoke_config(self, workdir: Path) -> TranslationConfig:
        rng = random.Random(0)
        lines = []
        for _ in range(300):
            words = [rng.choice(list(TOY_WORDS)) for _ in range(rng.randint(1, 5))]
            lines.append(" ".join(words) + "\t" + " ".join(TOY_WORDS[w] for w in words))
        table = Path(workdir) / "pairs.tsv"
        table.write_text("source\ttarget\n" + "\n".join(lines) + "\n", encoding="utf-8")
        return dataclasses.replace(TranslationConfig(), run_root=str(Path(workdir) / "runs"), data=f"table:{table}",
                                   vocab_size=40, embedding_dim=8, encoder_units=8, decoder_units=8,
                                   attention_units=8, epochs=1, batch_size=32, beam_width=2)

    def smoke_inputs(self, workdir: Path) -> list[str]:
        return ["one red car", "open the blue file"]

    # === Commands ===
    def train_and_evaluate(self, config: TranslationConfig, run_dir: Path) -> dict:
        corpus = data.load_corpus(config)
        atomic_write_json(run_dir / "corpus.json", corpus.summary() | {"extra": corpus.extra})
        vocab = data.build_vocabulary(config, corpus, run_dir)
        strategy, batch = set_up(config)
        with strategy.scope():
            model = build_translator(config, vocab)
        metrics, by_length = train.fit_and_score(model, config, corpus, vocab, batch, run_dir)
        if config.compare_baseline and config.attention:
            metrics |= train.compare_with_baseline(config, corpus, vocab, run_dir, by_length)
        return metrics

    def distill(self, config: TranslationConfig, run_dir: Path, teachers: list[Path]) -> dict:
        """The model `config` describes (e.g. encoder_units=64 decoder_units=96), taught by the
        teachers' averaged next-token distributions and the reference tokens (apps/translation/
        distill.py), on the teachers' vocabularies; test BLEU/chrF as train reports them."""
        distill.check_teachers(teachers, config, self.trained_config(teachers[0]))
        self._copy_kept_files(teachers[0], run_dir)
        corpus = data.load_corpus(config)
        atomic_write_json(run_dir / "corpus.json", corpus.summary() | {"extra": corpus.extra})
        vocab = data.load_vocabulary(run_dir)
        strategy, batch = set_up(config)
        with strategy.scope():
            teacher_models = [self.load_model(t) for t in teachers]
            student = build_translator(config, vocab)
        encoded = [data.encode_pairs(vocab, getattr(corpus, split), config.max_tokens, split)
                   for split in ("train", "valid")]
        metrics = distill.fit(student, teacher_models, config, *encoded, batch, run_dir, strategy)
        scores, _ = inference.evaluate_pairs(student, vocab, corpus.test, config, run_dir)
        return metrics | scores | distill.teacher_figures(teacher_models, metrics["parameters"])

    def evaluate(self, config: TranslationConfig, run_dir: Path, source: Path) -> dict:
        """Test BLEU/chrF of a trained run on `config.data` (its vocabulary and model, this config's decoding)."""
        set_up(config)
        corpus = data.load_corpus(config)
        vocab, model = data.load_vocabulary(run_folder(source)), self.load_model(source, config.export_precision)
        metrics, _ = inference.evaluate_pairs(model, vocab, corpus.test, config, run_dir)
        return metrics

    def finetune(self, config: TranslationConfig, run_dir: Path, source: Path) -> dict:
        """Continues training on a new domain's pairs: the embedded corpus's held-out accounting and
        spreadsheet packages (data=gettext), or the pairs in `config.data`. Test BLEU on that domain
        before and after; the vocabulary stays the trained one (ids must not change)."""
        strategy, batch = set_up(config)
        domain = data.load_domain_corpus(config)
        atomic_write_json(run_dir / "corpus.json", domain.summary())
        vocab = data.load_vocabulary(run_dir)  # copied from the source run (kept_files)
        with strategy.scope():
            model = self.load_model(source)
        before, _ = inference.evaluate_pairs(model, vocab, domain.test, config, run_dir, prefix="before")
        encoded = [data.encode_pairs(vocab, pairs, config.max_tokens, f"finetune {split}")
                   for split, pairs in (("train", domain.train), ("valid", domain.valid))]
        metrics = train.fit(model, config, *encoded, batch, run_dir)
        after, _ = inference.evaluate_pairs(model, vocab, domain.test, config, run_dir)
        return metrics | before | after | {"domain": domain.name, "domain_train_pairs": len(encoded[0])}

    def predict(self, config: TranslationConfig, source: Path, inputs: list[str]) -> list[dict]:
        vocab = data.load_vocabulary(run_folder(source))
        return inference.translate_sentences(self.load_model(source), vocab, inputs, config)

    def export(self, config: TranslationConfig, source: Path, model, export_dir: Path) -> None:
        export.export_serving_model(model, run_folder(source), config, export_dir)

    def export_probe(self, config: TranslationConfig, source: Path, model) -> ExportProbe:
        return export.probe(model, data.load_vocabulary(run_folder(source)), config, list(PROBE_SENTENCES))

    def summary(self, metrics: dict) -> dict:
        return {k: v for k, v in metrics.items() if k.startswith(("test_bleu", "test_chrf"))}
