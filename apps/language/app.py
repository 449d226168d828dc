"""The language app: n-gram and neural language models with the chapter's large-vocabulary outputs.

    dlsuite language train                       # -> runs/language/<time>-train/
    dlsuite language train model=mlp output=huffman
    dlsuite language finetune --from runs/language/<run> corpus=text:my.txt
    dlsuite language evaluate --from runs/language/<run>
    dlsuite language predict --from runs/language/<run> "in the beginning" "and god said"
    dlsuite language generate --from runs/language/<run> "and the lord"
    dlsuite language export --from runs/language/<run>
    dlsuite language distill --from runs/language/<a>,runs/language/<b> hidden_dim=64   # a smaller student
    dlsuite language ngram corpus.txt order=5 output=model.arpa test=held_out.txt   # KenLM's job alone

`train_and_evaluate` is the whole story: vocabulary, n-gram model, neural model, then the test
perplexity of each and of their mixture. `LanguageApp` fills the app contract (apps/app.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from dlsuite.apps.app import App, ExportProbe, run_folder
from dlsuite.apps.language import (
    data,
    distill,
    export,
    inference,
    ngram_command,
    ngrams,
    report,
    train,
)
from dlsuite.apps.language.config import LanguageConfig, quick
from dlsuite.apps.language.mixture import perplexity
from dlsuite.apps.language.model import build_language_model
from dlsuite.shared.training import set_up

PROBE_SENTENCES = ("In the beginning God created the heaven.", "And the LORD spake unto Moses, saying,",
                   "xyzzy unknown words", "")


class LanguageApp(App):
    name = "language"
    config_class = LanguageConfig
    inputs_are = "text"
    kept_files = data.VOCABULARY_FILES
    extra_commands = ("generate", "ngram")

    def quick(self) -> LanguageConfig:
        return quick()

    def smoke_config(self, workdir: Path) -> LanguageConfig:
        folder = Path(workdir) / "corpus"
        folder.mkdir(parents=True, exist_ok=True)
        words = "the lord god said unto moses and israel land water light day night king people".split()
        rng = np.random.default_rng(0)
        for split, n in (("train", 300), ("valid", 40), ("test", 40)):
            lines = [" ".join(rng.choice(words, rng.integers(3, 9))) for _ in range(n)]
            (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
        return dataclasses.replace(LanguageConfig(), run_root=str(Path(workdir) / "runs"), corpus=f"text:{folder}",
                                   epochs=1, batch_size=32, embedding_dim=8, hidden_dim=8, ngram_order=3,
                                   output="full")

    def smoke_inputs(self, workdir: Path) -> list[str]:
        return ["the lord said unto moses", "an unknown word"]

    # === Commands ===
    def train_and_evaluate(self, config: LanguageConfig, run_dir: Path) -> dict:
        strategy, batch = set_up(config)
        vocab, splits, _ = train.prepare(config, run_dir)
        metrics, (ngram, class_ngram, trigram) = train.build_ngrams(config, vocab, splits, run_dir)
        with strategy.scope():
            model = build_language_model(config, len(vocab), vocab.counts)
        metrics |= train.fit(model, config, splits, batch, run_dir)
        metrics |= inference.evaluate_all(config, model, ngram, splits, run_dir, class_ngram, trigram)
        report.embedding_map(model, vocab, run_dir)
        report.save_samples(model, vocab, config, run_dir)
        return metrics

    def finetune(self, config: LanguageConfig, run_dir: Path, source: Path) -> dict:
        """Continues training on `config.corpus` with the run's vocabulary (new words -> <unk>) at
        `learning_rate` (usually lower than the original); the n-gram is rebuilt on the new text."""
        strategy, batch = set_up(config)
        vocab, splits, _ = train.prepare(config, run_dir, vocab=data.load_vocabulary(run_folder(source)))
        ngram = ngrams.build_and_save(config, vocab, splits["train"], run_dir)
        with strategy.scope():
            model = self.load_model(source)
        before = perplexity(inference.neural_token_log_probs(model, splits["test"], ngram))
        metrics = train.fit(model, config, splits, batch, run_dir)
        metrics |= inference.evaluate_all(config, model, ngram, splits, run_dir)
        return metrics | {"test_ppl_before_finetune": before}

    def distill(self, config: LanguageConfig, run_dir: Path, teachers: list[Path]) -> dict:
        """The model `config` describes (e.g. hidden_dim=64, or model=mlp), taught by the teachers'
        averaged next-word distributions and the next words (apps/language/distill.py), on the
        teachers' vocabulary; the n-gram is built again on `config.corpus`, as train does."""
        strategy, batch = set_up(config)
        with strategy.scope():
            teacher_models = [self.load_model(t) for t in teachers]
        distill.check_teachers(teachers, teacher_models, config.output)
        self._copy_kept_files(teachers[0], run_dir)
        vocab, splits, _ = train.prepare(config, run_dir, vocab=data.load_vocabulary(run_dir))
        metrics, (ngram, class_ngram, trigram) = train.build_ngrams(config, vocab, splits, run_dir)
        with strategy.scope():
            student = build_language_model(config, len(vocab), vocab.counts)
        metrics |= distill.fit(student, teacher_models, config, splits, batch, run_dir, strategy)
        metrics |= inference.evaluate_all(config, student, ngram, splits, run_dir, class_ngram, trigram)
        return metrics | distill.teacher_figures(teacher_models, metrics["parameters"], splits["test"])

    def evaluate(self, config: LanguageConfig, run_dir: Path, source: Path) -> dict:
        """Test perplexities of a trained run (its model, n-gram and vocabulary) on `config.corpus`."""
        set_up(config)
        vocab, splits, _ = train.prepare(config, run_dir, vocab=data.load_vocabulary(run_folder(source)))
        ngram = ngrams.load(run_folder(source), vocab.tokens)
        return inference.evaluate_all(config, self.load_model(source, config.export_precision), ngram, splits, run_dir)

    def predict(self, config: LanguageConfig, source: Path, inputs: list[str]) -> list[dict]:
        vocab = data.load_vocabulary(run_folder(source))
        ngram = ngrams.load(run_folder(source), vocab.tokens)
        return inference.score_sentences(self.load_model(source), vocab, ngram, inputs)

    def export(self, config: LanguageConfig, source: Path, model, export_dir: Path) -> None:
        export.export_serving_model(model, data.load_vocabulary(run_folder(source)), export_dir)

    def export_probe(self, config: LanguageConfig, source: Path, model) -> ExportProbe:
        return export.probe(model, data.load_vocabulary(run_folder(source)), list(PROBE_SENTENCES))

    def summary(self, metrics: dict) -> dict:
        return {f"test ppl, {k[9:]}": v for k, v in metrics.items() if k.startswith("test_ppl_")}

    # === The app's own commands ===
    def resolve_config(self, command: str, source=None, config_file=None, overrides=(), quick=False):
        """`ngram` has settings of its own (apps/language/ngram_command.py), not the neural models'."""
        if command == "ngram":
            return ngram_command.resolve_config(source, config_file, overrides, quick)
        return super().resolve_config(command, source, config_file, overrides, quick)

    def run(self, command: str, config, source=None, inputs=()):
        """`generate` is predict's sibling: prompts in, sampled text out; `ngram` is KenLM's lmplz:
        text files in, an ARPA file out. Neither writes a run folder."""
        if command == "ngram":
            return ngram_command.build_arpa(list(inputs), config)
        if command != "generate":
            return super().run(command, config, source, inputs)
        source = self.checked_source(command, source)
        vocab = data.load_vocabulary(run_folder(source))
        return inference.generate(self.load_model(source), vocab, list(inputs) or [""], config)
