"""Model compression by distillation (the source text's section 12.1.4; Hinton et al. 2015): a
small student learns from a large teacher's (or an ensemble's) output distribution.

    dlsuite vision distill --from runs/vision/<a>,runs/vision/<b>,runs/vision/<c> widths=8,16,32

Keras' own `keras.distillation.Distiller` with `LogitsDistillation` does the training: the loss is
`w * CE(labels, student) + (1 - w) * T^2 * KL(softmax(t / T) || softmax(s / T))`. Our classifiers
end in a softmax (their exports answer probabilities), while `LogitsDistillation` takes logits,
so both sides are given as log-probabilities, which are logits up to a per-example constant that
the softmax ignores: softmax(log p / T) is exactly the tempered distribution of p. An ensemble
teacher is the average of its members' probabilities (the source text's model averaging).

Sequence models (a next-word distribution at every position, (B, T, V): the language app, and
the translation app's decoder, Kim & Rush 2016's word-level distillation) use
`make_sequence_distiller`: the models' wrappers (`PaddedLogProbabilities`) answer log-probabilities
with rows of 0 at the padding positions, where `SequenceLogitsDistillation` finds them, so that the
teacher's term is averaged over the real tokens only, like the labels' term
(SparseCategoricalCrossentropy with `ignore_class` set to the padding id). Frame-level CTC
distillation (the speech app: a distribution over characters + blank at every output frame) is the
same (B, T, V) case, with the CTC loss as the labels' term (`fit_sequence_student(labels_loss=)`).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from dlsuite.shared.training import fit_model

EPSILON = 1e-7  # log(0) guard: a softmax output can underflow to 0 in float32


def log_probabilities(models: list[keras.Model], name: str) -> keras.Model:
    """log of the mean of `models`' probability outputs, as one model on their shared input."""
    inputs = keras.Input(models[0].inputs[0].shape[1:], dtype=models[0].inputs[0].dtype)
    for i, model in enumerate(models):
        if [m.name for m in models].count(model.name) > 1:  # two runs of one architecture: unique names
            model.name = f"{name}_{i}"
    outputs = [ops.cast(model(inputs), "float32") for model in models]
    mean = outputs[0] if len(outputs) == 1 else ops.mean(ops.stack(outputs, axis=0), axis=0)
    return keras.Model(inputs, ops.log(ops.maximum(mean, EPSILON)), name=name)


def make_distiller(teachers: list[keras.Model], student: keras.Model, temperature: float,
                   label_weight: float, example_inputs) -> keras.distillation.Distiller:
    """A Distiller training `student` (its own layers: the returned model shares them) on the
    labels with weight `label_weight` and on the teachers' tempered distribution with the rest;
    built on `example_inputs` (BackupAndRestore needs a built model)."""
    for teacher in teachers:
        teacher.trainable = False
    return _built_distiller(log_probabilities(teachers, "teacher"), log_probabilities([student], "student"),
                            _kl_distillation(keras.distillation.LogitsDistillation, temperature), label_weight,
                            example_inputs)


def _kl_distillation(loss_class, temperature: float):
    # The KLDivergence *instance*: with its default loss="kl_divergence", Keras 3.15 turns the name
    # into the plain function, skips the softmax it applies only for the class, and computes the
    # KL of the raw logits clipped to [1e-7, 1] (measured: 0.0 on log-probabilities).
    return loss_class(temperature=temperature, loss=keras.losses.KLDivergence())


def _built_distiller(teacher, student, distillation_loss, label_weight: float, example_inputs):
    distiller = keras.distillation.Distiller(teacher=teacher, student=student, distillation_losses=distillation_loss,
                                             student_loss_weight=label_weight)
    distiller(example_inputs)  # BackupAndRestore needs a built model
    return distiller


def log_mean_exp(log_probs: list):
    """The ensemble of members' log-probabilities: log of their mean probability, in log space
    (log sum_i exp(l_i) - log n), so that no probability underflows on the way."""
    if len(log_probs) == 1:
        return log_probs[0]
    return ops.logsumexp(ops.stack(log_probs, axis=0), axis=0) - math.log(len(log_probs))


@keras.saving.register_keras_serializable(package="dlsuite")
class SequenceLogitsDistillation(keras.distillation.LogitsDistillation):
    """`LogitsDistillation` on (B, T, V) log-probabilities of padded sequences, averaged over the
    real positions only.

    Padding positions are the rows that both models answer as all 0 (`make_sequence_distiller`):
    no distribution has log-probability 0 for every class, and there both tempered softmaxes are
    the same uniform distribution, so their KL is exactly 0. Keras' mean over all B x T positions
    is then divided by the share of real ones: the mean over the real tokens.
    """

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        real = ops.any(ops.not_equal(teacher_outputs, 0.0), axis=-1)  # (B, T)
        share = ops.mean(ops.cast(real, "float32"))
        mean_over_all = super().compute_loss(teacher_outputs, student_outputs, **kwargs)
        return mean_over_all / ops.maximum(share, EPSILON)


class PaddedLogProbabilities(keras.Model):
    """inputs -> log of the mean of `members`' next-token probabilities, (B, T, V), with rows of 0
    at the padding positions (what `SequenceLogitsDistillation` skips). An app subclasses it with
    `member_log_probs` (one member's (B, T, V) log-probabilities) and, where the inputs are not the
    token ids themselves, `positions` (the (B, T) ids whose `padding_id` marks padding).

    Args:
        members: list of keras.Model. The models averaged (one: the model itself), sharing |V|.
        padding_id: int. The id of padding positions. Defaults to 0.
    """

    def __init__(self, members, padding_id=0, **kwargs):
        super().__init__(**kwargs)
        self.members = list(members)
        self.padding_id = padding_id

    def member_log_probs(self, member, inputs, training=False):
        raise NotImplementedError

    def positions(self, inputs):
        return inputs

    def call(self, inputs, training=False):
        log_probs = [self.member_log_probs(m, inputs, training=training) for m in self.members]  # (B, T, V) each
        real = ops.expand_dims(ops.not_equal(self.positions(inputs), self.padding_id), -1)  # (B, T, 1)
        return ops.where(real, log_mean_exp(log_probs), 0.0)

    def get_config(self):
        return {**super().get_config(), "padding_id": self.padding_id,
                "members": [keras.saving.serialize_keras_object(m) for m in self.members]}

    @classmethod
    def from_config(cls, config):
        members = [keras.saving.deserialize_keras_object(m) for m in config.pop("members")]
        return cls(members, **config)


def make_sequence_distiller(teacher: keras.Model, student: keras.Model, temperature: float, label_weight: float,
                            example_inputs) -> keras.distillation.Distiller:
    """A Distiller for sequence models: `teacher` and `student` map inputs to (B, T, V)
    log-probabilities (an ensemble teacher through `log_mean_exp`) with rows of 0 at padding.
    Compile it with `SparseCategoricalCrossentropy(from_logits=True, ignore_class=<padding id>)`
    so that the labels' term skips the padding too."""
    teacher.trainable = False
    return _built_distiller(teacher, student, _kl_distillation(SequenceLogitsDistillation, temperature), label_weight,
                            example_inputs)


def fit_sequence_student(wrapper: type[PaddedLogProbabilities], teacher_models: list, student, config, train_ds,
                         valid_ds, run_dir, strategy, padding_id: int = 0, labels_loss=None) -> dict:
    """Fits `student` in a sequence Distiller (`wrapper` makes the teachers' ensemble and the
    student answer (B, T, V) log-probabilities) at `config.distill_temperature` and
    `config.distill_label_weight`; saves the student as model.keras, returns fit_model's figures.
    `labels_loss`: the labels' term on (targets, the student wrapper's output); None: the
    next-token cross-entropy skipping `padding_id` (speech gives its CTC loss)."""
    with strategy.scope():
        distiller = make_sequence_distiller(wrapper(teacher_models, padding_id=padding_id, name="teacher"),
                                            wrapper([student], padding_id=padding_id, name="student"),
                                            config.distill_temperature, config.distill_label_weight,
                                            next(iter(valid_ds))[0])
    # The student's log-probabilities are its logits up to a per-position constant; padding targets are skipped.
    if labels_loss is None:
        labels_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=padding_id)
    return fit_model(distiller, config, train_ds, valid_ds, run_dir, saved=student, loss=labels_loss)


def check_same_classes(class_lists: list[list[str]], sources: list) -> list[str]:
    """The teachers must answer over the same classes, in the same order."""
    for names, source in zip(class_lists[1:], sources[1:], strict=True):
        if names != class_lists[0]:
            raise ValueError(f"Teacher {source} has classes {names}, the first teacher {class_lists[0]}: an ensemble "
                             "teacher needs runs trained on the same labels.")
    return class_lists[0]


def check_same_vocabulary(vocabularies: list[list[str]], sources: list, name: str = "vocabulary") -> None:
    """Token id i must be the same token for every teacher: their vocabularies' tokens are equal.
    `name`: what the error calls the vocabulary (a run's file, e.g. target.model)."""
    first = list(vocabularies[0])
    for source, tokens in zip(sources[1:], vocabularies[1:], strict=True):
        tokens = list(tokens)
        if tokens != first:
            differ = next((i for i, (a, b) in enumerate(zip(tokens, first, strict=False)) if a != b), min(len(tokens), len(first)))
            raise ValueError(f"Teacher {source} has another {name} than the first teacher {sources[0]} "
                             f"({len(tokens)} and {len(first)} entries, first difference at id {differ}): an ensemble "
                             f"teacher needs runs trained with the same {name} (fine-tuned runs keep their source's).")
