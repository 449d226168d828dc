"""Distillation steps of the language app: a smaller LSTM or window MLP taught by the next-word
distributions of trained runs (one, or an ensemble: averaged probabilities).

    dlsuite language distill --from runs/language/<a>,runs/language/<b> hidden_dim=64 embedding_dim=32

At every position t of a sentence the teachers answer P(w | w_<=t) over the whole vocabulary, and
the student learns from it and from the next word (shared/distillation.py; Hinton et al. 2015):
`w CE(next word, student) + (1 - w) T^2 KL(teacher_T || student_T)`, both terms averaged over the
real tokens. Both sides need that whole distribution (any output layer but the shortlist gives it
exactly); the student reads the teachers' vocabulary, so that word ids mean the same to all.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import ops

from dlsuite.apps.app import run_folder
from dlsuite.apps.language import data, inference
from dlsuite.apps.language.mixture import perplexity
from dlsuite.pipelines.text import PAD_ID
from dlsuite.shared.distillation import log_mean_exp, make_sequence_distiller
from dlsuite.shared.training import fit_model

# Every output layer's `log_probs` is the exact, normalized distribution over V (sampled, NCE and ranking
# outputs train on samples but answer a full softmax; the trees multiply their branch probabilities),
# except the shortlist, whose last column lumps every word outside the list together.
PARTIAL_OUTPUTS = ("shortlist",)


@keras.saving.register_keras_serializable(package="dlsuite")
class NextWordLogProbabilities(keras.Model):
    """tokens (B, T) -> log P(next word | tokens_<=t), (B, T, V): the log of the mean of
    `members`' probabilities (language models of apps/language/model.py), with rows of 0 at the
    padding positions (what `SequenceLogitsDistillation` skips).

    Args:
        members: list of LanguageModel. The models averaged (one: the model itself), sharing |V|.
    """

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        self.members = list(members)

    def call(self, tokens, training=False):
        log_probs = [m.vocabulary_output.log_probs(m(tokens, training=training)) for m in self.members]  # (B, T, V) each
        real = ops.expand_dims(ops.not_equal(tokens, PAD_ID), -1)  # (B, T, 1)
        return ops.where(real, log_mean_exp(log_probs), 0.0)

    def get_config(self):
        return {**super().get_config(), "members": [keras.saving.serialize_keras_object(m) for m in self.members]}

    @classmethod
    def from_config(cls, config):
        members = [keras.saving.deserialize_keras_object(m) for m in config.pop("members")]
        return cls(members, **config)


def check_teachers(teachers: list[Path], models: list, student_output: str) -> None:
    """All teachers and the student answer the whole next-word distribution, over one vocabulary."""
    if student_output in PARTIAL_OUTPUTS:
        raise ValueError(f"distill trains the student on the whole next-word distribution; output={student_output} "
                         "answers only part of it. Choose another output for the student (e.g. output=full).")
    for source, model in zip(teachers, models, strict=True):
        if model.output_kind in PARTIAL_OUTPUTS:
            raise ValueError(f"Teacher {source} has output={model.output_kind}, which answers only part of the "
                             "next-word distribution; distill needs teachers with any other output (e.g. full).")
    check_same_vocabulary(teachers, [data.load_vocabulary(run_folder(t)) for t in teachers])


def check_same_vocabulary(teachers: list[Path], vocabularies: list) -> None:
    """Word id i must be the same word for every teacher: their vocabularies' tokens are equal."""
    first = list(vocabularies[0].tokens)
    for source, vocab in zip(teachers[1:], vocabularies[1:], strict=True):
        tokens = list(vocab.tokens)
        if tokens != first:
            differ = next((i for i, (a, b) in enumerate(zip(tokens, first, strict=False)) if a != b), min(len(tokens), len(first)))
            raise ValueError(f"Teacher {source} has another vocabulary than the first teacher {teachers[0]} "
                             f"({len(tokens)} and {len(first)} entries, first difference at id {differ}): an ensemble "
                             "teacher needs runs trained with the same vocabulary (fine-tuned runs keep their source's).")


def fit(student, teacher_models: list, config, splits, batch: int, run_dir: Path, strategy) -> dict:
    """Fits the student in a Distiller on the sentences train.fit uses; saves it as model.keras."""
    train_ds = data.sentence_dataset(splits["train"], batch, config.max_length, shuffle=True, seed=config.seed)
    valid_ds = data.sentence_dataset(splits["valid"], batch, config.max_length, shuffle=False)
    with strategy.scope():
        distiller = make_sequence_distiller(NextWordLogProbabilities(teacher_models, name="teacher"),
                                            NextWordLogProbabilities([student], name="student"),
                                            config.distill_temperature, config.distill_label_weight,
                                            next(iter(valid_ds))[0])
    # The student's log-probabilities are its logits up to a per-position constant; padding targets are skipped.
    labels_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID)
    return fit_model(distiller, config, train_ds, valid_ds, run_dir, saved=student, loss=labels_loss)


def teacher_figures(teacher_models: list, student_parameters: int, test_sentences) -> dict:
    """The teachers' parameters, the compression and the ensemble's own test perplexity."""
    per_teacher = [inference.neural_token_log_probs(m, test_sentences) for m in teacher_models]
    ensemble = np.logaddexp.reduce(np.stack(per_teacher), axis=0) - np.log(len(per_teacher))
    parameters = sum(m.count_params() for m in teacher_models)
    return {"teacher_parameters": int(parameters), "compression": round(parameters / student_parameters, 2),
            "test_ppl_teacher": perplexity(ensemble)}
