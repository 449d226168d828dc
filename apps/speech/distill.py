"""Distillation steps of the speech app: a smaller CTC acoustic model taught by the per-frame
character posteriors of trained runs (one, or an ensemble: averaged probabilities).

    dlsuite speech distill --from runs/speech/<a>,runs/speech/<b> rnn_units=64 conv_filters=8

Frame-level distillation of CTC models (Takashima et al. 2018, "frame-level KD"): at every real
output frame the teachers answer P(c | frame) over blank + the alphabet, and the student learns
from it and from the transcript (shared/distillation.py):
`w CTC(transcript, student) + (1 - w) T^2 KL(teacher_T || student_T)`, the KL averaged over the
real frames only (the wrappers answer rows of 0 at the padding frames). That needs one frame of the
teachers for each frame of the student, so all share `time_stride` and the input `features`.

The labels' term is the student's CTC loss, given to the Distiller as an ordinary Keras loss
(`PaddedCTCLoss`) on (labels, the student wrapper's output): CTC needs both lengths, and both
are in those two tensors exactly. A transcript's padding id is the blank (0), which no
transcript contains, and the padding frames are the rows of 0 (no distribution over two or more
classes has log-probability 0 for every class). So no custom train step is needed.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import ops

from dlsuite.apps.speech import data
from dlsuite.apps.speech.train import training_dataset
from dlsuite.apps.speech.transcripts import ALPHABET
from dlsuite.shared.distillation import PaddedLogProbabilities, fit_sequence_student


@keras.saving.register_keras_serializable(package="dlsuite")
class FrameLogProbabilities(PaddedLogProbabilities):
    """{"features": [B, T, F], "lengths": [B]} -> log P(c | frame), [B, ceil(T / s), C]: the log of
    the mean of `members`' per-frame probabilities (SpeechRecognizers of apps/speech/model.py,
    sharing the time stride s), with rows of 0 at the padding frames (shared/distillation.py).

    Args:
        members: list of SpeechRecognizer. The models averaged (one: the model itself).
        padding_id: int. The id `positions` gives padding frames. Defaults to 0.
    """

    def member_log_probs(self, member, inputs, training=False):
        return ops.log_softmax(ops.cast(member(inputs, training=training), "float32"), axis=-1)  # (B, T', C)

    def positions(self, inputs):
        member = self.members[0]
        stride = member.time_stride
        frames = (ops.shape(inputs["features"])[1] + stride - 1) // stride  # T' = ceil(T / s), as the model pads
        real = ops.arange(frames, dtype="int32")[None, :] < member.output_lengths(inputs["lengths"])[:, None]
        return ops.where(real, self.padding_id + 1, self.padding_id)  # (B, T')


@keras.saving.register_keras_serializable(package="dlsuite")
class PaddedCTCLoss(keras.losses.Loss):
    """CTC loss per utterance (natural log; Keras averages it over the batch) of labels [B, L]
    padded with the blank (0) and log-probabilities [B, T', C] with rows of 0 at padding frames:
    the lengths are read from the padding (see the module docstring)."""

    def __init__(self, name="ctc", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        labels = ops.cast(y_true, "int32")  # (B, L)
        label_lengths = ops.sum(ops.cast(ops.not_equal(labels, 0), "int32"), axis=-1)  # (B,)
        frame_lengths = ops.sum(ops.cast(ops.any(ops.not_equal(y_pred, 0.0), axis=-1), "int32"), axis=-1)  # (B,)
        return ops.ctc_loss(labels, y_pred, label_lengths, frame_lengths, mask_index=0)  # (B,)


def check_teachers(teachers: list[Path], teacher_models: list, teacher_configs: list, config) -> None:
    """Every teacher answers the alphabet's classes on the student's input features, one frame per
    student frame (the same `time_stride`)."""
    for source, model, teacher_config in zip(teachers, teacher_models, teacher_configs, strict=True):
        if model.num_classes != len(ALPHABET):
            raise ValueError(f"Teacher {source} answers {model.num_classes} classes per frame, the student's alphabet "
                             f"has {len(ALPHABET)} (blank, space, apostrophe, a-z): distill needs teachers trained on "
                             "this alphabet (train them again with this dlsuite).")
        if model.time_stride != config.time_stride:
            raise ValueError(f"'time_stride' sets the output frames, and frame-level distillation needs one teacher "
                             f"frame per student frame: teacher {source} has time_stride={model.time_stride}, the "
                             f"student {config.time_stride}. Give the student time_stride={model.time_stride}.")
        if teacher_config.features != config.features:
            raise ValueError(f"'features' are the inputs teacher and student read together: teacher {source} has "
                             f"features={teacher_config.features}, the student {config.features}. Give the student "
                             f"features={teacher_config.features}.")


def fit(student, teacher_models: list, config, train: data.Examples, valid: data.Examples, batch: int,
        run_dir: Path, strategy) -> dict:
    """Fits the student in a Distiller on train.fit's length-bucketed batches (targets: the padded
    labels), augmented as train.fit's are: the teachers answer on the same augmented features as
    the student, in the step; saves the student as model.keras."""
    full_batches = config.strategy == "multi_worker"  # see data.make_dataset
    train_ds = training_dataset(config, train, batch).map(lambda x, y: (x, y["labels"]))
    valid_ds = data.make_dataset(valid, batch, full_batches=full_batches).map(lambda x, y: (x, y["labels"]))
    figures = fit_sequence_student(FrameLogProbabilities, teacher_models, student, config, train_ds, valid_ds, run_dir,
                                   strategy, labels_loss=PaddedCTCLoss())
    audio_seconds = sum(u.duration for u in train.utterances) * figures["epochs_run"]
    return figures | {"train_audio_seconds_per_second": round(audio_seconds / figures["train_seconds"], 1)}


def teacher_figures(teacher_models: list, student_parameters: int) -> dict:
    """The teachers' parameters and the compression."""
    parameters = sum(m.count_params() for m in teacher_models)
    return {"teacher_parameters": int(parameters), "compression": round(parameters / student_parameters, 2)}
