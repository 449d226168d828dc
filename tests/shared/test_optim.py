"""Optimizers and schedules are Keras' own, configured from the shared fields."""

import dataclasses

import keras
import numpy as np
import pytest

from dlsuite.shared import optim
from dlsuite.shared.optim import OptimizerConfig, make_optimizer, make_schedule


def test_warmup_cosine_rises_then_decays():
    schedule = make_schedule("warmup_cosine", 1.0, total_steps=100, warmup_fraction=0.1)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    assert values[0] == pytest.approx(0.0)
    assert values[1] == pytest.approx(0.5, abs=1e-6)
    assert values[2] == pytest.approx(1.0, abs=1e-6)
    assert values[3] == pytest.approx(0.5, abs=1e-2)
    assert values[4] == pytest.approx(0.0, abs=1e-6)


def test_exponential_decay_and_constant():
    schedule = make_schedule("exponential", 1.0, total_steps=40, decay_rate=0.5)
    assert float(schedule(10)) == pytest.approx(0.5)
    assert make_schedule("constant", 0.3, 10) == 0.3
    with pytest.raises(ValueError, match="warmup_cosine"):
        make_schedule("linear", 0.1, 10)


@pytest.mark.parametrize(
    "name,cls", [("sgd", keras.optimizers.SGD), ("rmsprop", keras.optimizers.RMSprop),
                 ("adam", keras.optimizers.Adam), ("adamw", keras.optimizers.AdamW)],
)
def test_each_optimizer_is_the_keras_class(name, cls):
    config = dataclasses.replace(OptimizerConfig(), optimizer=name, global_clipnorm=1.0, ema_momentum=0.9)
    optimizer = make_optimizer(config, total_steps=10)
    assert type(optimizer) is cls
    assert optimizer.global_clipnorm == 1.0 and optimizer.use_ema and optimizer.ema_momentum == 0.9


def test_sgd_nesterov_momentum_and_unknown_name():
    config = dataclasses.replace(OptimizerConfig(), optimizer="sgd", momentum=0.8, nesterov=True)
    optimizer = make_optimizer(config, 10)
    assert optimizer.momentum == 0.8 and optimizer.nesterov
    with pytest.raises(ValueError, match="adamw"):
        make_optimizer(dataclasses.replace(config, optimizer="lion"), 10)


def test_ema_weights_average_the_trajectory():
    """With EMA on, finalize_variable_values swaps in the averaged weights (Polyak)."""
    config = dataclasses.replace(OptimizerConfig(), optimizer="sgd", momentum=0.0, schedule="constant",
                                 learning_rate=0.1, weight_decay=0.0, ema_momentum=0.5)
    optimizer = make_optimizer(config, 10)
    w = keras.Variable(np.array([1.0], np.float32))
    for _ in range(3):
        optimizer.apply_gradients([(np.array([1.0], np.float32), w)])
    # Weights: 0.9, 0.8, 0.7. Keras EMA: the first step copies, then 0.5*ema + 0.5*w.
    assert float(w.numpy()[0]) == pytest.approx(0.7)
    optimizer.finalize_variable_values([w])
    assert float(w.numpy()[0]) > 0.7


def _sparse_steps(optimizer, steps):
    import tensorflow as tf

    table = keras.Variable(np.ones((6, 3), np.float32))
    optimizer.build([table])
    for rows in steps:
        grad = tf.IndexedSlices(tf.ones((len(rows), 3)) * 0.5, tf.constant(rows), dense_shape=tf.constant([6, 3]))
        optimizer.apply([grad], [table])
    return np.asarray(table)


def test_lazy_adam_matches_adam_then_leaves_untouched_rows_alone():
    first_lazy = _sparse_steps(optim.LazyAdam(learning_rate=0.1), [[1, 3]])
    first_adam = _sparse_steps(keras.optimizers.Adam(learning_rate=0.1), [[1, 3]])
    np.testing.assert_allclose(first_lazy, first_adam, atol=1e-6)  # step 1: identical
    assert not np.allclose(first_lazy[1], 1.0) and np.allclose(first_lazy[0], 1.0)
    # A row listed twice is one gradient of the summed values (Keras' Adam squares the slices
    # before summing them; a dense gradient of the sum is the reference).
    repeated = _sparse_steps(optim.LazyAdam(learning_rate=0.1), [[3, 3]])
    table = keras.Variable(np.ones((6, 3), np.float32))
    dense = np.zeros((6, 3), np.float32)
    dense[3] = 1.0
    keras.optimizers.Adam(learning_rate=0.1).apply([dense], [table])
    np.testing.assert_allclose(repeated, np.asarray(table), atol=1e-6)
    lazy = _sparse_steps(optim.LazyAdam(learning_rate=0.1), [[1], [2]])
    adam = _sparse_steps(keras.optimizers.Adam(learning_rate=0.1), [[1], [2]])
    assert np.allclose(lazy[1], _sparse_steps(optim.LazyAdam(learning_rate=0.1), [[1]])[1])  # row 1 not moved at step 2
    assert not np.allclose(adam[1], lazy[1])  # dense Adam keeps moving it with its momentum
    np.testing.assert_allclose(lazy[2], adam[2], atol=1e-6)
