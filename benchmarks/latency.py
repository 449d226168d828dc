"""Timing exports the same way in every benchmark: calls interleaved, warm-up first, medians.

    from latency import interleaved_seconds, vision_export_calls    # benchmarks/ is the script's folder

Interleaving (model A, B, C, A, B, C, ...) makes drift in a shared machine's load hit every model
alike, so ratios measured in one run mean something even when absolute times wander.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

WARMUP_CALLS = 5


def interleaved_seconds(calls: dict[str, Callable], inputs: Sequence, repeats: int,
                        warmup: int = WARMUP_CALLS) -> dict[str, list[float]]:
    """Seconds of each `calls[name](x)`, over `repeats` rounds; round i gives every call the input
    `inputs[i % len(inputs)]` (cycling through a split instead of one cached batch)."""
    for call in calls.values():
        for i in range(warmup):
            call(inputs[i % len(inputs)])
    samples = {name: [] for name in calls}
    for i in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call(inputs[i % len(inputs)])
            samples[name].append(time.perf_counter() - start)
    return samples


def vision_export_calls(exports: dict[str, str | Path], image_size: int = 16, channels: int = 1) -> dict:
    """name -> a call of that SavedModel's `serving_default(image_bytes=...)`, plus "decode only":
    the exports' own map_fn of decode_image without a model, the floor every export shares."""
    import tensorflow as tf

    from dlsuite.pipelines.images import decode_image

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def decode_only(image_bytes):
        return tf.map_fn(lambda b: decode_image(b, image_size, channels), image_bytes,
                         fn_output_signature=tf.TensorSpec((image_size, image_size, channels), tf.float32))

    calls = {}
    for name, export_dir in exports.items():
        signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
        calls[name] = lambda b, s=signature: s(image_bytes=b)["probabilities"].numpy()
    calls["decode only"] = lambda b: decode_only(b).numpy()
    return calls
