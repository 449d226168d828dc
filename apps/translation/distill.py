"""Distillation steps of the translation app: a smaller encoder-decoder taught by the next-token
distributions of trained runs (one, or an ensemble: averaged probabilities).

    dlsuite translation distill --from runs/translation/<a>,runs/translation/<b> embedding_dim=32 encoder_units=32 decoder_units=48 attention_units=32

Word-level knowledge distillation (Kim & Rush 2016, section 3.1): on the teacher-forced batches
train.fit uses, ({"source": x, "target_in": <s> y}, y </s>), the teachers answer
P(y_i | y_<i, x) over the whole target vocabulary at every position i, and the student learns from
it and from the reference token (shared/distillation.py):
`w CE(y_i, student) + (1 - w) T^2 KL(teacher_T || student_T)`, both terms averaged over the real
target positions (`target_in` is <pad> exactly where the targets are). The student reads the
teachers' sentencepiece models, so that ids mean the same to all.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import ops

from dlsuite.apps.app import run_folder
from dlsuite.apps.translation import data
from dlsuite.pipelines.text import PAD_ID
from dlsuite.shared.distillation import (
    PaddedLogProbabilities,
    check_same_vocabulary,
    fit_sequence_student,
)

# The settings that make the vocabulary: the student reads the teachers' sentencepiece models.
VOCABULARY_FIELDS = ("shared_vocabulary", "subword_model", "vocab_size")


@keras.saving.register_keras_serializable(package="dlsuite")
class NextTokenLogProbabilities(PaddedLogProbabilities):
    """{"source": [B, S], "target_in": [B, T]} -> log P(y_i | y_<i, x), [B, T, V]: the log of the
    mean of `members`' probabilities (Translators of apps/translation/model.py), with rows of 0
    where `target_in` is padding (shared/distillation.py).

    Args:
        members: list of Translator. The models averaged (one: the model itself), sharing both vocabularies.
        padding_id: int. The id of padding. Defaults to PAD_ID.
    """

    def __init__(self, members, padding_id=PAD_ID, **kwargs):
        super().__init__(members, padding_id=padding_id, **kwargs)

    def member_log_probs(self, member, inputs, training=False):
        return ops.log_softmax(member(inputs, training=training), axis=-1)  # (B, T, V)

    def positions(self, inputs):
        return inputs["target_in"]  # (B, T)


def check_teachers(teachers: list[Path], config, teacher_config) -> None:
    """The teachers share their source and target vocabularies, and the student asks for no other."""
    for key in VOCABULARY_FIELDS:
        if getattr(config, key) != getattr(teacher_config, key):
            raise ValueError(f"'{key}' makes the vocabulary, and the student reads the teachers' "
                             f"({getattr(teacher_config, key)!r} in {run_folder(teachers[0])}); distill cannot change "
                             f"it to {getattr(config, key)!r}.")
    vocabularies = [data.load_vocabulary(run_folder(t)) for t in teachers]
    check_same_vocabulary([v.source.tokens for v in vocabularies], teachers, name="source.model")
    check_same_vocabulary([v.target.tokens for v in vocabularies], teachers, name="target.model")


def fit(student, teacher_models: list, config, train: data.EncodedPairs, valid: data.EncodedPairs, batch: int,
        run_dir: Path, strategy) -> dict:
    """Fits the student in a Distiller on train.fit's teacher-forced batches; saves it as model.keras."""
    train_ds = data.make_dataset(train, batch, shuffle=True, seed=config.seed)
    valid_ds = data.make_dataset(valid, batch)
    figures = fit_sequence_student(NextTokenLogProbabilities, teacher_models, student, config, train_ds, valid_ds,
                                   run_dir, strategy, PAD_ID)
    target_tokens = sum(len(t) + 1 for t in train.targets) * figures["epochs_run"]
    return figures | {"train_target_tokens_per_second": round(target_tokens / figures["train_seconds"], 1)}


def teacher_figures(teacher_models: list, student_parameters: int) -> dict:
    """The teachers' parameters and the compression."""
    parameters = sum(m.count_params() for m in teacher_models)
    return {"teacher_parameters": int(parameters), "compression": round(parameters / student_parameters, 2)}
