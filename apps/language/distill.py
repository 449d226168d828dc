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

from dlsuite.apps.app import run_folder
from dlsuite.apps.language import data, inference
from dlsuite.apps.language.mixture import perplexity
from dlsuite.pipelines.text import PAD_ID
from dlsuite.shared.distillation import (
    PaddedLogProbabilities,
    check_same_vocabulary,
    fit_sequence_student,
)

# Every output layer's `log_probs` is the exact, normalized distribution over V (sampled, NCE and ranking
# outputs train on samples but answer a full softmax; the trees multiply their branch probabilities),
# except the shortlist, whose last column lumps every word outside the list together.
PARTIAL_OUTPUTS = ("shortlist",)


@keras.saving.register_keras_serializable(package="dlsuite")
class NextWordLogProbabilities(PaddedLogProbabilities):
    """tokens (B, T) -> log P(next word | tokens_<=t), (B, T, V): the log of the mean of
    `members`' probabilities (language models of apps/language/model.py), with rows of 0 at the
    padding positions (shared/distillation.py).

    Args:
        members: list of LanguageModel. The models averaged (one: the model itself), sharing |V|.
        padding_id: int. The id of padding. Defaults to PAD_ID.
    """

    def __init__(self, members, padding_id=PAD_ID, **kwargs):
        super().__init__(members, padding_id=padding_id, **kwargs)

    def member_log_probs(self, member, tokens, training=False):
        return member.vocabulary_output.log_probs(member(tokens, training=training))  # (B, T, V)


def check_teachers(teachers: list[Path], models: list, student_output: str) -> None:
    """All teachers and the student answer the whole next-word distribution, over one vocabulary."""
    if student_output in PARTIAL_OUTPUTS:
        raise ValueError(f"distill trains the student on the whole next-word distribution; output={student_output} "
                         "answers only part of it. Choose another output for the student (e.g. output=full).")
    for source, model in zip(teachers, models, strict=True):
        if model.output_kind in PARTIAL_OUTPUTS:
            raise ValueError(f"Teacher {source} has output={model.output_kind}, which answers only part of the "
                             "next-word distribution; distill needs teachers with any other output (e.g. full).")
    check_same_vocabulary([data.load_vocabulary(run_folder(t)).tokens for t in teachers], teachers)


def fit(student, teacher_models: list, config, splits, batch: int, run_dir: Path, strategy) -> dict:
    """Fits the student in a Distiller on the sentences train.fit uses; saves it as model.keras."""
    train_ds = data.sentence_dataset(splits["train"], batch, config.max_length, shuffle=True, seed=config.seed)
    valid_ds = data.sentence_dataset(splits["valid"], batch, config.max_length, shuffle=False)
    return fit_sequence_student(NextWordLogProbabilities, teacher_models, student, config, train_ds, valid_ds, run_dir,
                                strategy, PAD_ID)


def teacher_figures(teacher_models: list, student_parameters: int, test_sentences) -> dict:
    """The teachers' parameters, the compression and the ensemble's own test perplexity."""
    per_teacher = [inference.neural_token_log_probs(m, test_sentences) for m in teacher_models]
    ensemble = np.logaddexp.reduce(np.stack(per_teacher), axis=0) - np.log(len(per_teacher))
    parameters = sum(m.count_params() for m in teacher_models)
    return {"teacher_parameters": int(parameters), "compression": round(parameters / student_parameters, 2),
            "test_ppl_teacher": perplexity(ensemble)}
