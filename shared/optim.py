"""Optimizers and learning-rate schedules from config, using Keras' own classes.

Nothing here reimplements an optimizer: the config names a Keras optimizer, a
schedule, gradient clipping (`clipnorm` / `global_clipnorm`) and Polyak/EMA weight
averaging (`use_ema`, `ema_momentum`, equation 8.39 of the notes' optimization
chapter: theta_hat <- alpha * theta_hat + (1 - alpha) * theta).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

import keras

from dlsuite.shared.config import Config, option, require

OptimizerName = Literal["sgd", "rmsprop", "adam", "adamw", "lazy_adam"]
ScheduleName = Literal["constant", "warmup_cosine", "exponential"]
OPTIMIZERS = typing.get_args(OptimizerName)
SCHEDULES = typing.get_args(ScheduleName)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig(Config):
    """The optimizer part of every app's config (fields are copied into each app config)."""

    optimizer: OptimizerName = option("adamw", "Keras optimizer (lazy_adam: sparse rows only, for large vocabularies)")
    learning_rate: float = option(3e-3, "peak learning rate")
    momentum: float = option(0.9, "SGD/RMSprop momentum")
    nesterov: bool = option(True, "Nesterov momentum for SGD")
    weight_decay: float = option(1e-4, "decoupled weight decay (adamw, sgd)")
    schedule: ScheduleName = option("warmup_cosine", "learning-rate schedule over all training steps")
    warmup_fraction: float = option(0.05, "share of steps spent warming up (warmup_cosine)")
    decay_rate: float = option(0.5, "exponential: factor per quarter of the training steps")
    clipnorm: float = option(0.0, "clip each gradient to this norm (0 = off)")
    global_clipnorm: float = option(0.0, "clip all gradients jointly to this norm (0 = off)")
    ema_momentum: float = option(0.0, "Polyak/EMA weight averaging momentum (0 = off)")
    gradient_accumulation_steps: int = option(1, "update once per this many batches with their mean gradient (1 = off)")

    def validate(self) -> None:
        require([(self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be >= 1 (1 = off)")])


def make_schedule(
    schedule: str, learning_rate: float, total_steps: int, warmup_fraction: float = 0.05,
    decay_rate: float = 0.5, decay_steps: int | None = None,
):
    """A Keras learning-rate schedule (or a float for "constant")."""
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule '{schedule}'. Choose one of {', '.join(SCHEDULES)}.")
    total_steps = max(1, int(total_steps))
    if schedule == "constant":
        return learning_rate
    if schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=decay_steps or max(1, total_steps // 4),
            decay_rate=decay_rate,
        )
    warmup_steps = int(total_steps * warmup_fraction)
    # Keras' CosineDecay warms up linearly from initial_learning_rate to warmup_target.
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=max(1, total_steps - warmup_steps),
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def make_optimizer(config, total_steps: int, learning_rate: float | None = None):
    """Builds the Keras optimizer described by an app config's optimizer fields.

    Args:
        config: any object with the fields of `OptimizerConfig`.
        total_steps: int. Training steps, for the schedule.
        learning_rate: float or None. Overrides `config.learning_rate` (fine-tuning).
    """
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer '{config.optimizer}'. Choose one of {', '.join(OPTIMIZERS)}."
        )
    lr = make_schedule(
        config.schedule, learning_rate or config.learning_rate, total_steps,
        config.warmup_fraction, config.decay_rate,
    )
    common = {
        "learning_rate": lr,
        "clipnorm": config.clipnorm or None,
        "global_clipnorm": config.global_clipnorm or None,
        "use_ema": config.ema_momentum > 0,
        "ema_momentum": config.ema_momentum or 0.99,
        # Keras' own accumulation: k batches' mean gradient per update, k x the batch in memory of one.
        "gradient_accumulation_steps": config.gradient_accumulation_steps if config.gradient_accumulation_steps > 1 else None,
    }
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            momentum=config.momentum, nesterov=config.nesterov,
            weight_decay=config.weight_decay or None, **common,
        )
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(momentum=config.momentum, **common)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(**common)
    if config.optimizer == "lazy_adam":
        return LazyAdam(**common)
    return keras.optimizers.AdamW(weight_decay=config.weight_decay, **common)


@keras.saving.register_keras_serializable(package="dlsuite")
class LazyAdam(keras.optimizers.Adam):
    """Adam that, for a sparse gradient (tf.IndexedSlices: embedding lookups, sampled and
    hierarchical outputs), updates the moments and weights of the touched rows only.

    Keras' Adam densifies such gradients, so its update costs O(|V| H) per step however few rows
    the step used: at |V| = 200k it dominates a sampled-softmax step (BENCHMARKS.md). Hand-written
    because Keras 3 has no lazy variant and TF Addons' LazyAdam is no longer maintained. Dense
    gradients get Adam's own update; on the first step the two agree exactly. Rows listed twice
    in one sparse gradient are summed first (Keras' Adam squares the slices before summing them).
    """

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        indices, position = tf.unique(gradient.indices)  # repeated rows: sum their gradients
        values = tf.math.unsorted_segment_sum(tf.cast(gradient.values, variable.dtype), position, tf.shape(indices)[0])
        step = tf.cast(self.iterations + 1, variable.dtype)
        alpha = tf.cast(learning_rate, variable.dtype) * tf.sqrt(1 - self.beta_2**step) / (1 - self.beta_1**step)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        m_rows = self.beta_1 * tf.gather(m.value, indices) + (1 - self.beta_1) * values
        v_rows = self.beta_2 * tf.gather(v.value, indices) + (1 - self.beta_2) * tf.square(values)
        self.assign(m, tf.IndexedSlices(m_rows, indices))
        self.assign(v, tf.IndexedSlices(v_rows, indices))
        self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), indices))
