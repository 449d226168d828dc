"""Mixture of experts against dense heads of the same active and the same total parameters, on digits.

    .venv/bin/python benchmarks/moe_vs_dense.py              # ~10 minutes on 2 shared CPU cores
    .venv/bin/python benchmarks/moe_vs_dense.py --quick      # 2 epochs, few repeats: checks the script

The vision app in-process (`APPS["vision"]`), every run in a temporary folder, one training budget
for all (the quick setting: 30 epochs, batch 64, lr 3e-3, seed 0, so one train/validation/test
split). The heads, between the ResNet backbone (128 features) and the softmax:

- `moe, dense dispatch`: head=moe, E experts 128 -> h -> 128, the top k per image
  (shared/layers/mixture_of_experts.py, Shazeer et al. 2017 eqs. 1-5), every expert computed;
- `moe, capacity dispatch`: the same, each expert on ceil(1.25 k B / E) slots of a batch of B only
  (GShard / Switch Transformer capacity); choices past the slots are dropped;
- `same active (1 expert, hidden k h)`: moe_experts=1, moe_top_k=1, hidden k h: a dense block
  128 -> k h -> 128 (its 1-way gate is exactly 1), as many parameters as one image uses in the MoE;
- `same total (1 expert, hidden E h)`: hidden E h, as many parameters as the whole MoE holds;
- `plain dense head`: head=dense, the softmax on the backbone's features, for reference.

Reported per head: its parameters (the expert layer plus the softmax Dense; "active" = the gate and
the k experts an image uses), test accuracy (metrics.json, scored at batch 64), for capacity
dispatch the share of top-k choices dropped on the test split and the test accuracy with the same
experts run densely (nothing dropped); the train step time, measured here: one step's forward
and backward pass of the whole trained model (augmentation included, gradients not applied) on a
batch of 64; and inference latency per image at batch 256 of the whole inference model and of the
head alone (the expert layer + softmax on that run's backbone features). Each is a `tf.function`
of a fixed batch, all models interleaved call by call (benchmarks/latency.py), median of
`--repeats`. The runs' own step times (median of loss_curve.json's step-to-step seconds) are
reported too, but the runs follow each other, so the shared machine's load drifts between them.

The digits head is small next to the backbone, so the layers are also timed alone on random
features of `--features` (512) at batch `--batch` (1024): forward, and forward + backward, same
interleaving. Only ratios within one run mean something on a shared machine.

Writes benchmarks/results/moe_vs_dense.json (settings, rows, timing samples) and moe_vs_dense.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from latency import interleaved_seconds  # benchmarks/latency.py, beside this script

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).resolve().parent / "results"
LATENCY_BATCH = 256


def head_variants(experts: int, top_k: int, hidden: int) -> dict[str, dict]:
    """name -> the vision config overrides of that head."""
    moe = dict(head="moe", moe_experts=experts, moe_top_k=top_k, moe_hidden_units=hidden)
    return {
        "moe, dense dispatch": dict(moe, moe_dispatch="dense"),
        "moe, capacity dispatch": dict(moe, moe_dispatch="capacity"),
        f"same active (1 expert, hidden {top_k * hidden})":
            dict(head="moe", moe_experts=1, moe_top_k=1, moe_hidden_units=top_k * hidden),
        f"same total (1 expert, hidden {experts * hidden})":
            dict(head="moe", moe_experts=1, moe_top_k=1, moe_hidden_units=experts * hidden),
        "plain dense head": dict(head="dense"),
    }


# === Training ===
def train_runs(app, base, variants: dict, root: Path) -> dict:
    """name -> run folder, every head trained at the same budget."""
    return {name: app.run("train", dataclasses.replace(base, run_root=str(root), **overrides))["run_dir"]
            for name, overrides in variants.items()}


def step_seconds(run_dir: str) -> float:
    """Median seconds between consecutive steps of the run's loss curve: the epochs' validation and
    the first step's tracing fall in a few gaps, which the median ignores."""
    seconds = json.loads((Path(run_dir) / "loss_curve.json").read_text())["seconds"]
    return statistics.median(b - a for a, b in zip(seconds, seconds[1:], strict=False))


# === Heads ===
def experts_layer(model):
    """The trained model's MixtureOfExperts layer (head=moe), or None (head=dense)."""
    return model.get_layer("experts") if any(layer.name == "experts" for layer in model.layers) else None


def head_parameters(model) -> dict:
    """Parameters of the expert layer (if any) plus the softmax Dense: total, and used per image."""
    softmax = model.get_layer("head").count_params()
    if experts_layer(model) is None:
        return {"total": softmax, "active": softmax}
    counts = experts_layer(model).parameter_counts()
    return {"total": counts["total"] + softmax, "active": counts["active"] + softmax}


def head_call(model):
    """features (B, 128) -> probabilities: the expert layer (if any) and the softmax."""
    experts = experts_layer(model)
    softmax = model.get_layer("head")
    return lambda features: softmax(experts(features) if experts is not None else features)


def dropped_share(model, features_batches) -> float | None:
    """Share of the top-k (image, expert) choices that find no slot, over the given batches."""
    import numpy as np

    experts = experts_layer(model)
    if experts is None or experts.dispatch != "capacity":
        return None
    kept = sum(float(np.sum(experts.dispatch_mask(f))) for f in features_batches)
    return 1.0 - kept / (experts.top_k * sum(len(f) for f in features_batches))


def accuracy_without_drops(model, features_batches, labels) -> float | None:
    """A capacity-dispatch model's test accuracy with its experts run densely (same weights,
    nothing dropped): what the drops at test time cost."""
    import numpy as np

    from dlsuite.shared.layers.mixture_of_experts import MixtureOfExperts

    experts = experts_layer(model)
    if experts is None or experts.dispatch != "capacity":
        return None
    dense = MixtureOfExperts.from_config(dict(experts.get_config(), dispatch="dense"))
    dense.build((None, features_batches[0].shape[-1]))
    dense.set_weights(experts.get_weights())
    predictions = np.concatenate([np.argmax(model.get_layer("head")(dense(f)), -1) for f in features_batches])
    return float(np.mean(predictions == labels))


def test_arrays(app, base):
    """Test images and labels of the split every run was scored on."""
    import numpy as np

    from dlsuite.apps.vision import train

    _, (_, _, test_ds) = train.load_datasets(base, base.batch_size, evaluation=True)
    batches = list(test_ds.as_numpy_iterator())
    return [x for x, _ in batches], np.concatenate([y for _, y in batches])


def fixed_batch_function(call, batch_shape):
    """`call` as a tf.function traced once for a fixed batch (static shapes, as XLA/JAX see them)."""
    import tensorflow as tf

    return tf.function(call, input_signature=[tf.TensorSpec(batch_shape, tf.float32)])


def latency_batches(images, size, count=2):
    """`count` batches of `size` test images (cycled through the split), as float32 arrays."""
    import numpy as np

    flat = np.concatenate(images)
    starts = np.linspace(0, len(flat) - size, count).astype(int) if len(flat) >= size else [0] * count
    return [np.resize(flat[s:], (size,) + flat.shape[1:]).astype("float32") for s in starts]


def train_step_call(model, batch_shape):
    """(images, labels) -> one training step's forward and backward pass (the loss with the
    model's own losses, gradients for every weight, not applied), a tf.function of a fixed batch."""
    import keras
    import tensorflow as tf

    cross_entropy = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(input_signature=[tf.TensorSpec(batch_shape, tf.float32), tf.TensorSpec(batch_shape[:1], tf.int64)])
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = cross_entropy(labels, model(images, training=True)) + sum(model.losses)
        gradients = tape.gradient(loss, model.trainable_weights)
        return tf.add_n([tf.reduce_sum(g) for g in gradients if g is not None])  # keeps them all

    return step


def run_row(name: str, model, run_dir: str, test_features: list, labels) -> dict:
    """A run's parameters, accuracies, drops and its own step times (from its metrics files)."""
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    steps = metrics["epochs_run"] * metrics["steps_per_epoch"]
    return {"head": name, "parameters": head_parameters(model), "test_accuracy": metrics["test_accuracy"],
            "dropped_share_test": dropped_share(model, test_features),
            "test_accuracy_without_drops": accuracy_without_drops(model, test_features, labels),
            "step_ms_median": 1e3 * step_seconds(run_dir), "step_ms_mean": 1e3 * metrics["train_seconds"] / steps,
            "train_seconds": metrics["train_seconds"]}


def measure_runs(app, runs: dict, base, repeats: int) -> tuple[list[dict], dict]:
    """Per run: parameters, accuracy, drops, step times; and interleaved latencies at batch 256 of
    the whole inference model (on test images) and of the head alone (on that run's own backbone
    features of the same images). The timed calls get a batch index, each run its own batch."""
    from dlsuite.apps.vision import model as vision_model

    images, labels = test_arrays(app, base)
    batches = latency_batches(images, LATENCY_BATCH)
    step_batches = [(images[i], labels[i * len(images[0]):(i + 1) * len(images[0])].astype("int64")) for i in (0, 1)]
    rows, whole, heads, train_steps = [], {}, {}, {}
    for name, run_dir in runs.items():
        model = app.load_model(run_dir)
        features_of = model.get_layer("backbone")  # images -> normalize -> backbone
        own = [features_of(model.get_layer("normalize")(x)).numpy() for x in batches]
        rows.append(run_row(name, model, run_dir, [features_of(model.get_layer("normalize")(x)).numpy()
                                                    for x in images], labels))
        step = train_step_call(model, step_batches[0][0].shape)
        inference = fixed_batch_function(vision_model.inference_model(model), batches[0].shape)
        head = fixed_batch_function(head_call(model), own[0].shape)
        train_steps[name] = lambda i, f=step: f(*step_batches[i]).numpy()
        whole[name] = lambda i, f=inference: f(batches[i]).numpy()
        heads[name] = lambda i, f=head, own=own: f(own[i]).numpy()
    indices = list(range(len(batches)))
    samples = {"train_step_s": interleaved_seconds(train_steps, indices, repeats),
               "whole_model_s": interleaved_seconds(whole, indices, repeats),
               "head_s": interleaved_seconds(heads, indices, repeats)}
    for row in rows:
        row["train_step_ms_measured"] = 1e3 * statistics.median(samples["train_step_s"][row["head"]])
        for key, timed in (("model_ms_per_image_b256", "whole_model_s"), ("head_ms_per_image_b256", "head_s")):
            row[key] = 1e3 * statistics.median(samples[timed][row["head"]]) / LATENCY_BATCH
    return rows, samples


# === The layers alone ===
def isolated_layers(variants: dict, features: int, classes: int = 10):
    """name -> (expert layer or None, softmax Dense), built on `features` random features."""
    import keras

    from dlsuite.shared.layers.mixture_of_experts import MixtureOfExperts

    layers = {}
    for name, overrides in variants.items():
        experts = None
        if overrides["head"] == "moe":
            experts = MixtureOfExperts(overrides["moe_experts"], units=features,
                                       hidden_units=overrides["moe_hidden_units"], top_k=overrides["moe_top_k"],
                                       dispatch=overrides.get("moe_dispatch", "dense"))
            experts.build((None, features))
        layers[name] = (experts, keras.layers.Dense(classes, activation="softmax"))
    return layers


def head_functions(experts, softmax, example):
    """(features -> probabilities, features -> a sum over the gradients of a cross-entropy with
    respect to every weight): summed so that the graph computes, and keeps, all of them."""
    import tensorflow as tf

    def head(x):
        return softmax(experts(x) if experts is not None else x)

    head(example)  # builds the softmax
    weights = (experts.trainable_weights if experts is not None else []) + softmax.trainable_weights

    def gradients(x):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(tf.math.log(head(x)[:, 0] + 1e-6))
        return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(loss, weights) if g is not None])  # 1-way gate: none

    return head, gradients


def time_isolated(variants: dict, features: int, batch: int, repeats: int, seed: int = 0) -> dict:
    """Forward and forward + backward seconds of each head alone on random (batch, features) inputs,
    interleaved; and its parameters."""
    import numpy as np

    inputs = [np.random.default_rng(seed + i).normal(size=(batch, features)).astype("float32") for i in range(2)]
    forward, backward, parameters = {}, {}, {}
    for name, (experts, softmax) in isolated_layers(variants, features).items():
        head, gradients = head_functions(experts, softmax, inputs[0])
        forward[name] = fixed_batch_function(head, inputs[0].shape)
        backward[name] = fixed_batch_function(gradients, inputs[0].shape)
        counts = experts.parameter_counts() if experts is not None else {"total": 0, "active": 0}
        parameters[name] = {k: counts[k] + softmax.count_params() for k in ("total", "active")}
    samples = {"forward_s": interleaved_seconds({n: lambda x, f=f: f(x).numpy() for n, f in forward.items()},
                                                inputs, repeats),
               "forward_backward_s": interleaved_seconds(
                   {n: lambda x, f=f: f(x).numpy() for n, f in backward.items()}, inputs, repeats)}
    rows = [{"head": name, "parameters": parameters[name],
             "forward_ms": 1e3 * statistics.median(samples["forward_s"][name]),
             "forward_backward_ms": 1e3 * statistics.median(samples["forward_backward_s"][name])}
            for name in variants]
    return {"rows": rows, "samples": samples}


# === Report ===
def ratio(value, reference):
    return f"{value / reference:.2f}x" if reference else ""


def digits_table(rows: list[dict]) -> str:
    reference = rows[0]
    lines = ["| head | params total | params active / image | test acc | dropped choices (test) "
             "| test acc, experts run densely | train step ms, measured | vs MoE dense | train ms/step in its run "
             "| model ms/image, b256 | vs MoE dense | head ms/image, b256 | vs MoE dense |", "|---" * 13 + "|"]
    for r in rows:
        dropped = "" if r["dropped_share_test"] is None else f"{100 * r['dropped_share_test']:.1f}%"
        undropped = r["test_accuracy_without_drops"]
        undropped = "" if undropped is None else f"{undropped:.4f}"
        lines.append(
            f"| {r['head']} | {r['parameters']['total']:,} | {r['parameters']['active']:,} | {r['test_accuracy']:.4f} "
            f"| {dropped} | {undropped} | {r['train_step_ms_measured']:.1f} "
            f"| {ratio(r['train_step_ms_measured'], reference['train_step_ms_measured'])} "
            f"| {r['step_ms_median']:.0f} | {r['model_ms_per_image_b256']:.4f} "
            f"| {ratio(r['model_ms_per_image_b256'], reference['model_ms_per_image_b256'])} "
            f"| {r['head_ms_per_image_b256']:.5f} "
            f"| {ratio(r['head_ms_per_image_b256'], reference['head_ms_per_image_b256'])} |")
    return "\n".join(lines)


def isolated_table(rows: list[dict]) -> str:
    reference = rows[0]
    lines = ["| head | params total | params active / input | forward ms | vs MoE dense | forward+backward ms "
             "| vs MoE dense |", "|---" * 7 + "|"]
    for r in rows:
        lines.append(f"| {r['head']} | {r['parameters']['total']:,} | {r['parameters']['active']:,} "
                     f"| {r['forward_ms']:.2f} | {ratio(r['forward_ms'], reference['forward_ms'])} "
                     f"| {r['forward_backward_ms']:.2f} "
                     f"| {ratio(r['forward_backward_ms'], reference['forward_backward_ms'])} |")
    return "\n".join(lines)


def report(command: str, settings: dict, digits: list[dict], isolated: dict, total: float) -> str:
    import keras
    import tensorflow as tf

    s = settings
    return "\n".join([
        command, "",
        f"{os.cpu_count()} CPU cores (shared), TensorFlow {tf.__version__}, Keras {keras.__version__}; "
        f"{total:.0f} s for the whole benchmark. Only same-run ratios count.", "",
        f"### Digits, vision app: {s['epochs']} epochs, batch {s['batch_size']}, lr {s['learning_rate']:g}, "
        f"seed {s['seed']}; MoE E={s['experts']}, k={s['top_k']}, h={s['hidden']} on 128 backbone features; "
        f"latency at batch {LATENCY_BATCH}, median of {s['repeats']} interleaved calls", "",
        digits_table(digits), "",
        f"### The heads alone: random features of {s['features']} at batch {s['batch']} "
        f"(expert layers {s['features']} -> h -> {s['features']}, then a 10-way softmax), "
        f"median of {s['repeats']} interleaved calls", "",
        isolated_table(isolated["rows"]), "",
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64, help="hidden units of each expert")
    parser.add_argument("--features", type=int, default=512, help="the heads alone: input features")
    parser.add_argument("--batch", type=int, default=1024, help="the heads alone: batch")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per model")
    parser.add_argument("--epochs", type=int, default=0, help="0: the quick setting's")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 5 repeats, nothing written")
    args = parser.parse_args()
    command = f"$ .venv/bin/python {' '.join(shlex.quote(a) for a in sys.argv)}"
    print(f"{command}  ({os.cpu_count()} cores, {platform.processor() or platform.machine()})", flush=True)

    from dlsuite.apps.cli import APPS

    app = APPS["vision"]
    base = app.quick()
    epochs = 2 if args.quick else args.epochs or base.epochs
    repeats = 5 if args.quick else args.repeats
    base = dataclasses.replace(base, epochs=epochs)
    variants = head_variants(args.experts, args.top_k, args.hidden)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="moe-vs-dense-") as root:
        runs = train_runs(app, base, variants, Path(root))
        digits, digit_samples = measure_runs(app, runs, base, repeats)
    isolated = time_isolated(variants, args.features, args.batch, repeats)
    total = time.perf_counter() - start
    settings = {"epochs": base.epochs, "batch_size": base.batch_size, "learning_rate": base.learning_rate,
                "seed": base.seed, "experts": args.experts, "top_k": args.top_k, "hidden": args.hidden,
                "features": args.features, "batch": args.batch, "repeats": repeats,
                "latency_batch": LATENCY_BATCH, "variants": variants}
    text = report(command, settings, digits, isolated, total)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "moe_vs_dense.md").write_text(text)
        (RESULTS / "moe_vs_dense.json").write_text(json.dumps(
            {"command": command, "cores": os.cpu_count(), "total_seconds": round(total, 1), "settings": settings,
             "digits": digits, "isolated": isolated["rows"],
             "samples_s": {"digits": digit_samples, "isolated": isolated["samples"]}}, indent=1))
        print(f"wrote {RESULTS / 'moe_vs_dense.json'} and moe_vs_dense.md")


if __name__ == "__main__":
    main()
