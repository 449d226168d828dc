"""Model compression by distillation (the source text's section 12.1.4; Hinton et al. 2015): a
small student learns from a large teacher's (or an ensemble's) output distribution.

    dlsuite vision distill --from runs/vision/<a>,runs/vision/<b>,runs/vision/<c> widths=8,16,32

Keras' own `keras.distillation.Distiller` with `LogitsDistillation` does the training: the loss is
`w * CE(labels, student) + (1 - w) * T^2 * KL(softmax(t / T) || softmax(s / T))`. Our classifiers
end in a softmax (their exports answer probabilities), while `LogitsDistillation` takes logits,
so both sides are given as log-probabilities, which are logits up to a per-example constant that
the softmax ignores: softmax(log p / T) is exactly the tempered distribution of p. An ensemble
teacher is the average of its members' probabilities (the source text's model averaging).

Sequence models (the language app: a next-word distribution at every position, (B, T, V)) use
`make_sequence_distiller`: the models' wrappers answer log-probabilities with rows of 0 at the
padding positions, where `SequenceLogitsDistillation` finds them, so that the teacher's term is
averaged over the real tokens only, like the labels' term (SparseCategoricalCrossentropy with
`ignore_class` set to the padding id).
"""

from __future__ import annotations

import math

import keras
from keras import ops

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


def make_sequence_distiller(teacher: keras.Model, student: keras.Model, temperature: float, label_weight: float,
                            example_inputs) -> keras.distillation.Distiller:
    """A Distiller for sequence models: `teacher` and `student` map inputs to (B, T, V)
    log-probabilities (an ensemble teacher through `log_mean_exp`) with rows of 0 at padding.
    Compile it with `SparseCategoricalCrossentropy(from_logits=True, ignore_class=<padding id>)`
    so that the labels' term skips the padding too."""
    teacher.trainable = False
    return _built_distiller(teacher, student, _kl_distillation(SequenceLogitsDistillation, temperature), label_weight,
                            example_inputs)


def check_same_classes(class_lists: list[list[str]], sources: list) -> list[str]:
    """The teachers must answer over the same classes, in the same order."""
    for names, source in zip(class_lists[1:], sources[1:], strict=True):
        if names != class_lists[0]:
            raise ValueError(f"Teacher {source} has classes {names}, the first teacher {class_lists[0]}: an ensemble "
                             "teacher needs runs trained on the same labels.")
    return class_lists[0]
