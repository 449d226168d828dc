"""Model compression by distillation (the source text's section 12.1.4; Hinton et al. 2015): a
small student learns from a large teacher's (or an ensemble's) output distribution.

    dlsuite vision distill --from runs/vision/<a>,runs/vision/<b>,runs/vision/<c> widths=8,16,32

Keras' own `keras.distillation.Distiller` with `LogitsDistillation` does the training: the loss is
`w * CE(labels, student) + (1 - w) * T^2 * KL(softmax(t / T) || softmax(s / T))`. Our classifiers
end in a softmax (their exports answer probabilities), while `LogitsDistillation` takes logits,
so both sides are given as log-probabilities, which are logits up to a per-example constant that
the softmax ignores: softmax(log p / T) is exactly the tempered distribution of p. An ensemble
teacher is the average of its members' probabilities (the source text's model averaging).
"""

from __future__ import annotations

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
    distiller = keras.distillation.Distiller(
        teacher=log_probabilities(teachers, "teacher"),
        student=log_probabilities([student], "student"),
        # The KLDivergence *instance*: with its default loss="kl_divergence", Keras 3.15 turns the name
        # into the plain function, skips the softmax it applies only for the class, and computes the
        # KL of the raw logits clipped to [1e-7, 1] (measured: 0.0 on log-probabilities).
        distillation_losses=keras.distillation.LogitsDistillation(temperature=temperature,
                                                                  loss=keras.losses.KLDivergence()),
        student_loss_weight=label_weight,
    )
    distiller(example_inputs)
    return distiller


def check_same_classes(class_lists: list[list[str]], sources: list) -> list[str]:
    """The teachers must answer over the same classes, in the same order."""
    for names, source in zip(class_lists[1:], sources[1:], strict=True):
        if names != class_lists[0]:
            raise ValueError(f"Teacher {source} has classes {names}, the first teacher {class_lists[0]}: an ensemble "
                             "teacher needs runs trained on the same labels.")
    return class_lists[0]
