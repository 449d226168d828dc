"""Synchronous data parallelism across machines: `model.fit` under MultiWorkerMirroredStrategy.

    dlsuite launch --workers 2 -- vision train --quick       # two workers on this machine
    TF_CONFIG='{"cluster": {"worker": ["h1:2222", "h2:2222"]}, "task": {"type": "worker", "index": 0}}' \
        dlsuite vision train strategy=multi_worker             # on each node of a cluster

Every worker runs the same command; the cluster comes from `TF_CONFIG`, the contract Kubeflow's
TFJob, Vertex AI custom training and SageMaker set on each node. Each step all-reduces the
gradients of the global batch (`batch_size x replicas`), so the workers hold identical weights
and the run equals one machine training on the global batch. The chief (the "chief" task, else
worker 0) owns the run folder; the other workers write theirs under `<run_root>/.workers/` (so a
restarted job resumes there too) and remove it when the command has finished.

Why a compatibility layer and not a custom training loop: Keras 3.15's TensorFlow trainer fails
in exactly two calls under this strategy (keras-team/keras#20585), and with those two mended,
`fit` keeps everything the apps rely on (their own `compute_loss`, BackupAndRestore, TensorBoard,
checkpoints, the NaN guard) without a second training loop to keep in step with Keras:

1. `TensorFlowTrainer._maybe_symbolic_build` builds the model from the first distributed batch
   reduced with `strategy.reduce("MEAN", batch, axis=None)`: a cross-worker collective on the
   data itself (integer token ids, batches whose padded shapes differ between workers), which
   fails. Building needs only one replica's shapes, so we take the local first replica's batch.
2. `reduce_per_replica(logs, strategy, "auto")` reduces each scalar metric with
   `strategy.reduce("MEAN", value, axis=0)`, an axis a scalar does not have. We reduce across
   replicas with `axis=None` (the mean of per-replica values; the loss is already all-reduced).

`enable_multi_worker_fit()` installs both (once, only for Keras 3.15, the pinned version: a newer
Keras must be checked before the guard is widened).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import tensorflow as tf

TESTED_KERAS = "3.15."
_installed = False


class ClusterConfigError(ValueError):
    """TF_CONFIG that does not describe a cluster this process can join."""


# === TF_CONFIG ===
def read_tf_config(text: str | None = None) -> dict:
    """TF_CONFIG, parsed and checked: a cluster with workers, this task in it, a chief or worker 0.

    Raises ClusterConfigError naming what is wrong (the variable every node of the job sets).
    """
    text = os.environ.get("TF_CONFIG", "") if text is None else text
    if not text.strip():
        raise ClusterConfigError(
            'strategy=multi_worker needs the TF_CONFIG environment variable, e.g. {"cluster": {"worker": '
            '["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}; `dlsuite launch` sets it.')
    try:
        tf_config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ClusterConfigError(f"TF_CONFIG is not valid JSON ({err.msg} at character {err.pos}): {text[:80]!r}") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise ClusterConfigError(f"TF_CONFIG has no cluster with 'worker' (or 'chief') addresses: {text[:120]!r}")
    if not isinstance(task, dict) or "type" not in task:
        raise ClusterConfigError("TF_CONFIG has no task {'type': ..., 'index': ...} saying which node this is.")
    kind, index = task["type"], task.get("index", 0)
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ClusterConfigError(f"TF_CONFIG's task {kind}:{index} is not in its cluster "
                                 f"({ {k: len(v) for k, v in cluster.items()} } addresses).")
    if len(cluster.get("chief", [])) > 1:
        raise ClusterConfigError("TF_CONFIG lists more than one chief; a cluster has one (or none: then worker 0).")
    return tf_config


def make_multi_worker_strategy(timeout_seconds: float = 300) -> tf.distribute.MultiWorkerMirroredStrategy:
    """The strategy of TF_CONFIG's cluster; if the cluster has not formed after `timeout_seconds`
    (a worker that never starts, or cannot be reached), the process ends with a message naming the
    workers that did not answer, instead of TensorFlow's endless wait."""
    tf_config = read_tf_config()
    # No CommunicationOptions(timeout_seconds=...): measured, it starts a thread per collective that
    # never ends (1,600 per epoch on the vision smoke run; the workers died at ~16k threads). A worker
    # that dies mid-training is caught by TensorFlow's coordination-service heartbeats instead: the
    # others stop with UNAVAILABLE ("tasks are unhealthy"), and `dlsuite launch` stops the job.
    watchdog = start_watchdog(tf_config, timeout_seconds)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        watchdog.kill()
        watchdog.wait()
    enable_multi_worker_fit()
    return strategy


# TensorFlow waits for every worker inside the strategy's constructor with no timeout of its own,
# holding the GIL and deaf to SIGTERM, so neither a Python thread nor a signal handler can end the
# wait: a small watchdog process does (measured: a lone worker of a 2-worker cluster waited > 10 min).
_WATCHDOG = """
import os, signal, socket, sys, time
pid, seconds, peers = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
time.sleep(seconds)
def answers(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except (OSError, ValueError):
        return False
silent = [a for a in peers if not answers(a)]
why = "not answering: " + ", ".join(silent) if silent else "every worker answers, but not all joined"
sys.stderr.write(f"error: the cluster did not form within {seconds:g} s (worker_timeout_seconds): "
                 f"{why}. Start every worker with the same TF_CONFIG cluster, or use `dlsuite launch`.\\n")
sys.stderr.flush()
os.kill(pid, signal.SIGKILL)
"""


def start_watchdog(tf_config: dict, timeout_seconds: float) -> subprocess.Popen:
    """Kills this process after `timeout_seconds` unless the caller kills the watchdog first."""
    me = tf_config["task"]
    peers = [address for kind, addresses in tf_config["cluster"].items() for i, address in enumerate(addresses)
             if (kind, i) != (me["type"], me.get("index", 0))]
    return subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(timeout_seconds), *peers])


def worker_run_root(run_root: str | Path) -> Path:
    """Where a non-chief worker keeps its copy of the run folder (the same on every restart)."""
    task = read_tf_config()["task"]
    return Path(run_root) / ".workers" / f"{task['type']}-{task.get('index', 0)}"


# === The compatibility layer over Keras' TensorFlow trainer (see the module docstring) ===
def enable_multi_worker_fit() -> None:
    global _installed
    if _installed:
        return
    if not keras.__version__.startswith(TESTED_KERAS):
        raise RuntimeError(f"strategy=multi_worker is tested with Keras {TESTED_KERAS}x (keras-team/keras#20585), "
                           f"found {keras.__version__}; check the two calls in shared/multi_worker.py first.")
    from keras.src.backend.tensorflow import trainer as tf_trainer

    keras_reduce = tf_trainer.reduce_per_replica

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(lambda v: _local_first(v, self.distribute_strategy), next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or reduction not in ("auto", "mean", "sum"):
            return keras_reduce(values, strategy, reduction)
        how = tf.distribute.ReduceOp.SUM if reduction == "sum" else tf.distribute.ReduceOp.MEAN
        return tf.nest.map_structure(
            lambda v: strategy.reduce(how, v, axis=None) if isinstance(v, tf.distribute.DistributedValues) else v,
            values)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    _installed = True


def _local_first(value, strategy):
    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value
