"""A model's own `compute_loss` under a tf.distribute strategy with several replicas.

Keras sums the gradients of the replicas and reports `loss x replicas` (it undoes the division its
built-in losses make). A model that computes its own loss (the language model's output layers,
CTC) must divide by the replicas too, or N replicas take N-times-too-large steps and report
N-times the loss. Keras' helper for this is private (`keras.src.losses.loss`), so here is the same
rule; backend-neutral: TensorFlow is imported only when Keras runs on it.
"""

from __future__ import annotations

import keras


def scale_loss_for_replicas(loss):
    """loss / replicas in sync under a TensorFlow strategy; unchanged otherwise."""
    if keras.backend.backend() != "tensorflow":
        return loss
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss
