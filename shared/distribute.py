"""Distribution strategy and numeric-precision set-up, shared by every app.

`make_strategy("auto")` picks MirroredStrategy when several GPUs are visible and the
default strategy otherwise; "tpu", "multi_worker" and "parameter_server" read their cluster
from flags/environment (TPU name, TF_CONFIG) exactly as TensorFlow documents. The global
batch is always `per_replica_batch_size * strategy.num_replicas_in_sync`.
"""

from __future__ import annotations

import json
import os
import typing
from typing import Literal

import keras
import tensorflow as tf

StrategyName = Literal["auto", "default", "mirrored", "tpu", "multi_worker", "parameter_server"]
PrecisionName = Literal["float32", "mixed_float16", "mixed_bfloat16"]
STRATEGIES = typing.get_args(StrategyName)
PRECISIONS = typing.get_args(PrecisionName)


def make_strategy(name: str = "auto", tpu: str | None = None, timeout_seconds: float = 300) -> tf.distribute.Strategy:
    """Returns the tf.distribute strategy a user asked for by name.

    Args:
        name: str. One of "auto", "default", "mirrored", "tpu", "multi_worker", "parameter_server".
        tpu: str or None. TPU name or grpc address for "tpu"; falls back to the
            `TPU_NAME` environment variable, then to a local TPU.
        timeout_seconds: float. multi_worker, parameter_server: how long to wait for the cluster to form before
            ending with an error naming the workers that did not answer (not a hang).
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy '{name}'. Choose one of {', '.join(STRATEGIES)}.")
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # Mirror over the GPUs if there are any, else over the (logical) CPUs,
        # which is how the tests check that replicas agree.
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu or os.environ.get("TPU_NAME", "")
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "parameter_server":  # asynchronous SGD; cluster from TF_CONFIG (shared/parameter_server.py)
        from dlsuite.shared.parameter_server import make_parameter_server_strategy

        return make_parameter_server_strategy(timeout_seconds)
    # multi_worker: the cluster comes from TF_CONFIG, which every worker sets (shared/multi_worker.py).
    from dlsuite.shared.multi_worker import make_multi_worker_strategy

    return make_multi_worker_strategy(timeout_seconds)


def global_batch_size(per_replica_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    return per_replica_batch_size * strategy.num_replicas_in_sync


def set_precision(policy: str) -> None:
    """Sets Keras' global dtype policy: float32, mixed_float16 or mixed_bfloat16.

    Under mixed precision the model's last layer should compute in float32
    (our models build their heads with `dtype="float32"`), and Keras' optimizers
    apply loss scaling for float16 on their own.
    """
    if policy not in PRECISIONS:
        raise ValueError(f"Unknown precision '{policy}'. Choose one of {', '.join(PRECISIONS)}.")
    keras.mixed_precision.set_global_policy(policy)


def is_chief() -> bool:
    """True for the process that writes run-folder files: the chief, else worker 0."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = tf_config.get("task")
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    has_chief = "chief" in tf_config.get("cluster", {})
    return not has_chief and task.get("type") == "worker" and task.get("index", 0) == 0
