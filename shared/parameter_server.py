"""Asynchronous SGD with parameter servers (Dean et al. 2012, "Downpour SGD"): `strategy=parameter_server`.

    dlsuite launch --workers 2 --ps 1 -- language train        # chief + 2 workers + 1 parameter server here
    TF_CONFIG='{"cluster": {"chief": ["c:2222"], "worker": ["w0:2222", "w1:2222"], "ps": ["p0:2222"]},
                "task": {"type": "worker", "index": 0}}' dlsuite language train strategy=parameter_server

Every node runs the same command (as TFJob and Vertex AI start them). The "worker" and "ps" tasks
start a TensorFlow server and serve until the job ends; the chief runs the app. The model's
variables live on the parameter servers, each larger than `PARTITION_BYTES` split across them
(`MinSizePartitioner`: a 200k-word output matrix is not held by one server). The chief schedules
training steps with a `ClusterCoordinator`; whichever worker is free runs the next one: it reads
the current variables, computes the gradient of its own batch and pushes the update, without
waiting for the other workers, so a gradient may be computed from variables that other workers
have updated since (its *staleness*, counted per step and reported). Validation runs on the chief.

Why a coordinator loop of our own: Keras 3's `fit` has no ParameterServerStrategy support (only
tf_keras, Keras 2, had it). The loop is the train step of Keras' TensorFlow trainer (forward,
`model.compute_loss`, `optimizer.scale_loss`, `optimizer.apply`), so the apps' own losses,
gradient clipping, accumulation and EMA work unchanged.

Data: the chief reads the app's batches once and ships them to the workers as constants
(`shipped_batches`): the apps' pipelines read Python generators, which a remote worker cannot
run. Each worker draws its own shard, reshuffled every pass. This bounds the training set by a
TensorFlow graph (2 GB); a larger corpus needs a pipeline that each worker reads from files.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.distribute.sharded_variable import ShardedVariable

from dlsuite.shared.multi_worker import ClusterConfigError, read_tf_config, start_watchdog

PARTITION_BYTES = 256 << 10  # variables above this are split across the parameter servers
SERVING_TASKS = ("worker", "ps")


# === The cluster ===
def check_cluster(tf_config: dict) -> dict:
    """A parameter-server cluster needs one chief, workers and parameter servers."""
    cluster = tf_config["cluster"]
    missing = [kind for kind in ("chief", "worker", "ps") if not cluster.get(kind)]
    if missing:
        raise ClusterConfigError(
            f"strategy=parameter_server needs a TF_CONFIG cluster with 'chief', 'worker' and 'ps' tasks; "
            f"{', '.join(missing)} missing. `dlsuite launch --workers 2 --ps 1 -- <app> train` sets one up here.")
    return tf_config


def is_serving_task() -> bool:
    """True on a worker or parameter server of a parameter-server job (they run no app code)."""
    return read_tf_config()["task"]["type"] in SERVING_TASKS


def serve() -> None:
    """Starts this task's TensorFlow server and serves until the process is stopped (by the
    launcher or the cluster manager once the chief has finished)."""
    tf_config = check_cluster(read_tf_config())
    task = tf_config["task"]
    server = tf.distribute.Server(tf.train.ClusterSpec(tf_config["cluster"]), job_name=task["type"],
                                  task_index=task.get("index", 0), protocol="grpc", start=True)
    print(f"[{task['type']} {task.get('index', 0)}] serving the parameter-server job at {server.target}", flush=True)
    server.join()


def make_parameter_server_strategy(timeout_seconds: float = 300) -> tf.distribute.ParameterServerStrategy:
    """The chief's strategy; ends with a message naming the silent tasks if the cluster has not
    answered after `timeout_seconds` (instead of TensorFlow's wait without end)."""
    tf_config = check_cluster(read_tf_config())
    # Workers that fail fast let the coordinator reschedule their steps (TensorFlow's guide).
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")
    watchdog = start_watchdog(tf_config, timeout_seconds)
    try:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        servers = len(tf_config["cluster"]["ps"])
        partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
            min_shard_bytes=PARTITION_BYTES, max_shards=servers)
        strategy = tf.distribute.ParameterServerStrategy(resolver, variable_partitioner=partitioner)
        tf.distribute.coordinator.ClusterCoordinator(strategy)  # one per strategy: later calls return it
    finally:
        watchdog.kill()
        watchdog.wait()
    return strategy


# === Data for the workers ===
def shipped_batches(dataset: tf.data.Dataset) -> list:
    """The dataset's batches as arrays that become constants of the workers' input graph: one
    pass on the chief, batches stacked by shape (bucketed pipelines pad each bucket to its own
    length). A dataset built here could not be used there: its handle belongs to this process."""
    groups: dict[tuple, list] = {}
    for batch in dataset.as_numpy_iterator():
        key = tuple(np.shape(part) for part in tf.nest.flatten(batch))
        groups.setdefault(key, []).append(batch)
    if not groups:
        raise ValueError("The training dataset is empty; check the data source and its split.")
    return [tf.nest.map_structure(lambda *parts: np.stack(parts), *group) for group in groups.values()]


def batch_count(batch_groups: list) -> int:
    return sum(len(tf.nest.flatten(group)[0]) for group in batch_groups)


def per_worker_iterator(strategy, batch_groups: list, seed: int):
    """An endless, reshuffled stream of each worker's own shard of the batches."""
    count = batch_count(batch_groups)

    def worker_dataset(context: tf.distribute.InputContext):
        batches = tf.data.Dataset.from_tensor_slices(batch_groups[0])
        for group in batch_groups[1:]:
            batches = batches.concatenate(tf.data.Dataset.from_tensor_slices(group))
        shard = batches.shard(context.num_input_pipelines, context.input_pipeline_id)
        return shard.shuffle(count, seed=seed + context.input_pipeline_id).repeat().prefetch(2)

    @tf.function
    def distributed():
        return strategy.distribute_datasets_from_function(worker_dataset)

    return iter(tf.distribute.coordinator.ClusterCoordinator(strategy).create_per_worker_dataset(distributed))


# === Training ===
def fit_asynchronously(model: keras.Model, train_ds, valid_ds, epochs: int, run_dir: Path, seed: int = 0):
    """Asynchronous SGD for `epochs x batches` steps; returns a History-like object (`.history`,
    `.epoch`, `.curve`). Resumes from `<run>/checkpoints/async` after a restart; writes
    TensorBoard logs and the per-step loss curve."""
    strategy = model.distribute_strategy
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    batch_groups = shipped_batches(train_ds)
    steps = batch_count(batch_groups)
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    _update_sharded_variables_in_place(model.optimizer)
    train_step = _make_train_step(model, strategy)
    iterator = per_worker_iterator(strategy, batch_groups, seed)
    checkpoint = AsyncCheckpoint(Path(run_dir) / "checkpoints" / "async", model)
    history, curve = checkpoint.restore()
    writer = tf.summary.create_file_writer(str(Path(run_dir) / "tb"))
    start = time.time() - (curve["seconds"][-1] if curve["seconds"] else 0.0)
    for epoch in range(len(history["loss"]), epochs):
        results = [coordinator.schedule(train_step, args=(iterator,)) for _ in range(steps)]
        coordinator.join()
        stale = _record_steps(curve, history, [r.fetch() for r in results], start, epoch)
        if valid_ds is not None:
            history["val_loss"].append(validation_loss(model, valid_ds))
        _log_epoch(writer, epoch, epochs, history, stale)
        checkpoint.save(history, curve)
    if getattr(model.optimizer, "use_ema", False):
        model.optimizer.finalize_variable_values(model.trainable_variables)  # as Keras' fit ends
    localize(model)
    return types.SimpleNamespace(history={k: v for k, v in history.items() if v},
                                 epoch=list(range(len(history["loss"]))), curve=curve)


def _record_steps(curve: dict, history: dict, results: list, start: float, epoch: int) -> np.ndarray:
    """Adds an epoch's steps to the curve in the order their updates landed; returns their staleness."""
    losses, starts, ends = (np.array(v) for v in zip(*results, strict=True))
    _check_finite(losses, epoch)
    stale = staleness(starts, ends)
    order = np.argsort(ends)
    done = len(curve["loss"])
    curve["step"] += list(range(done + 1, done + len(losses) + 1))
    curve["seconds"] += [round(float(t - start), 3) for t in ends[order]]
    curve["loss"] += [float(x) for x in losses[order]]
    curve["staleness"] += [int(s) for s in stale[order]]
    history["loss"].append(float(losses.mean()))
    return stale


def _make_train_step(model, strategy):
    """One worker step of Keras' TensorFlow train step; returns (loss, start, end) in seconds."""

    def replica_step(data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        start = tf.timestamp()
        weights = model.trainable_variables
        # Gradients of a partitioned variable are taken per shard (a ShardedVariable has no single
        # handle for the tape), then joined: Keras' optimizer updates the whole variable.
        sources = [_shards(w) for w in weights]
        # The forward pass (and its reads of the variables) starts after `start`.
        with tf.control_dependencies([start]), tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = model.compute_loss(x, y, y_pred, sample_weight, training=True)
            scaled = model.optimizer.scale_loss(loss)
        gradients = [tf.concat([tf.convert_to_tensor(g) for g in grad], axis=0) if isinstance(grad, list) else grad
                     for grad in tape.gradient(scaled, sources)]
        model.optimizer.apply(gradients, weights)
        # Own control inputs: two Timestamp ops without them are merged into one by Grappler.
        with tf.control_dependencies([loss, model.optimizer.iterations.value]):
            return loss, start, tf.timestamp()

    @tf.function
    def train_step(iterator):
        return strategy.run(replica_step, args=(next(iterator),))

    return train_step


def staleness(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per step: the updates other workers pushed while it ran (between its start and its own
    update), so its gradient was computed on variables that many updates old at most."""
    landed = np.sort(ends)
    return np.searchsorted(landed, ends, side="left") - np.searchsorted(landed, starts, side="right")


def _shards(weight):
    value = weight.value
    return list(value.variables) if isinstance(value, ShardedVariable) else value


def _update_sharded_variables_in_place(optimizer) -> None:
    """Keras' TensorFlow optimizer runs each update through `strategy.extended.update(variable)`,
    which colocates the update with the variable: a ShardedVariable (several devices) cannot be
    colocated with. For those we apply the optimizer's own update step directly; its reads and
    assignments still go to each shard's parameter server."""

    def distributed_update_step(self, distribution, grads_and_vars, learning_rate):
        for grad, var in grads_and_vars:
            if isinstance(var, ShardedVariable):
                self.update_step(grad, var, learning_rate)
            else:
                distribution.extended.update(var, lambda v, g, lr: self.update_step(g, v, lr),
                                             args=(grad, learning_rate), group=False)

    optimizer._distributed_tf_update_step = types.MethodType(distributed_update_step, optimizer)


def validation_loss(model, valid_ds) -> float:
    """Mean exact loss over the validation batches, computed on the chief."""

    @tf.function
    def batch_loss(data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return model.compute_loss(x, y, model(x, training=False), sample_weight, training=False)

    return float(np.mean([batch_loss(batch).numpy() for batch in valid_ds]))


def _check_finite(losses: np.ndarray, epoch: int) -> None:
    from dlsuite.shared.training import NaNLossError

    if not np.all(np.isfinite(losses)):
        raise NaNLossError(f"Loss became {losses[~np.isfinite(losses)][0]} in epoch {epoch + 1}. Lower learning_rate "
                           "or set global_clipnorm (e.g. 1.0); the last good epoch's checkpoint is kept.")


def _log_epoch(writer, epoch: int, epochs: int, history: dict, stale: np.ndarray) -> None:
    """The epoch's line (as Keras' fit prints it, with the staleness) and its TensorBoard scalars."""
    line = f"Epoch {epoch + 1}/{epochs} - loss: {history['loss'][-1]:.4f}"
    if history["val_loss"]:
        line += f" - val_loss: {history['val_loss'][-1]:.4f}"
    print(f"{line} - staleness: mean {stale.mean():.2f}, max {stale.max()}", flush=True)
    with writer.as_default(step=epoch):
        for name, values in history.items():
            if values:
                tf.summary.scalar(f"epoch_{name}", values[-1])
        tf.summary.scalar("epoch_staleness_mean", float(stale.mean()))
        tf.summary.histogram("staleness", stale)


class AsyncCheckpoint:
    """The chief's checkpoint of an asynchronous run, written after each epoch through temporary
    names: every variable of the model and its optimizer (read from the parameter servers, in
    their fixed order; Keras' `save_weights` cannot read a partitioned variable), the history and
    the per-step curve."""

    def __init__(self, folder: Path, model: keras.Model):
        self.folder, self.model = folder, model
        self.variables = list(model.variables) + list(model.optimizer.variables)

    def save(self, history: dict, curve: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".tmp-state.npz", "wb") as file:
            np.savez(file, *[tf.convert_to_tensor(v.value).numpy() for v in self.variables])
        os.replace(self.folder / ".tmp-state.npz", self.folder / "state.npz")
        progress = self.folder / ".tmp-progress.json"
        progress.write_text(json.dumps({"history": history, "curve": curve}))
        os.replace(progress, self.folder / "progress.json")

    def restore(self) -> tuple[dict, dict]:
        history = {"loss": [], "val_loss": []}
        curve = {"step": [], "seconds": [], "loss": [], "staleness": []}
        if not (self.folder / "progress.json").is_file():
            return history, curve
        with np.load(self.folder / "state.npz") as state:
            for i, variable in enumerate(self.variables):
                variable.assign(state[f"arr_{i}"])
        saved = json.loads((self.folder / "progress.json").read_text())
        print(f"Resuming asynchronous training after epoch {len(saved['history']['loss'])} "
              f"(checkpoint {self.folder})", file=sys.stderr)
        return saved["history"], saved["curve"]


def localize(model: keras.Model) -> None:
    """Moves the trained variables from the parameter servers into the chief's memory, so that
    the app evaluates, saves and exports a plain model. Keras variables have no public way to
    change placement; each holds its tf.Variable as `_value` (Keras 3.15, multi_worker.TESTED_KERAS).
    Called outside the strategy's scope: the new variables are the chief's own."""
    variables = list(model.variables) + (list(model.optimizer.variables) if model.optimizer else [])
    for variable in variables:
        value = tf.convert_to_tensor(variable.value)  # a ShardedVariable's shards, joined
        variable._value = tf.Variable(value, trainable=variable.trainable, name=variable.name)
    model._distribute_strategy = None
    if model.optimizer is not None:
        model.optimizer._distribution_strategy = tf.distribute.get_strategy()
