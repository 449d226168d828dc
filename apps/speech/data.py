"""tf.data pipelines for the speech app: utterances -> (features, labels) batches bucketed by length.

    splits = load_splits(config)                       # corpus.py: the data source
    train = make_dataset(examples(splits.train, config), batch, shuffle=True)

Features are computed once per utterance (features.py, the same graph the export uses) and kept
in memory; batches group utterances of similar length (`bucket_by_sequence_length`) so padding
stays small.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import tensorflow as tf

from dlsuite.apps.speech import corpus, features
from dlsuite.apps.speech.audio import load_audio
from dlsuite.apps.speech.model import output_lengths
from dlsuite.apps.speech.transcripts import ALPHABET, SpeechDataError
from dlsuite.apps.speech.utterances import SpeechCorpus
from dlsuite.pipelines.batching import bucket_by_length

CHAR_IDS = {c: i for i, c in enumerate(ALPHABET)}


def encode(transcript: str) -> np.ndarray:
    return np.array([CHAR_IDS[c] for c in transcript], np.int32)


def decode_ids(ids) -> str:
    return "".join(ALPHABET[i] for i in ids)


def load_splits(config) -> SpeechCorpus:
    options = {}
    if config.data == "espeak":
        options = dict(num_sentences=config.num_sentences, variants_per_sentence=config.variants_per_sentence,
                       noise_snr_db=config.noise_snr_db or None, seed=config.seed)
    elif config.data.startswith("tfds:"):
        options = dict(data_dir=config.tfds_data_dir or None)
    return corpus.load_speech_corpus(config.data, config.cache_dir, **options)


@dataclasses.dataclass
class Examples:
    """One split in memory: normalized features per utterance and the encoded transcripts."""

    utterances: list
    features: list[np.ndarray]
    labels: list[np.ndarray]

    def __len__(self):
        return len(self.utterances)


_FEATURE_GRAPHS: dict = {}  # one traced graph per feature kind


def compute_features(waveform: np.ndarray, kind: str) -> np.ndarray:
    """features.features for one waveform (16 kHz float32) as NumPy, through a traced graph."""
    if kind not in _FEATURE_GRAPHS:
        _FEATURE_GRAPHS[kind] = tf.function(lambda w: features.features(w, kind),
                                            input_signature=[tf.TensorSpec([None], tf.float32)])
    return _FEATURE_GRAPHS[kind](tf.constant(waveform, tf.float32)).numpy()


def examples(utterances, config, split: str = "train") -> Examples:
    """Loads audio, computes features, encodes transcripts. Skips, with a warning, utterances
    longer than max_seconds and those too short for their transcript (CTC cannot align them;
    the loss would be infinite)."""
    from tqdm import tqdm

    too_long = [u.key for u in utterances if u.duration > config.max_seconds]
    if too_long:  # training data: skip and say so; `predict` on such a file is an error instead
        warnings.warn(f"{split}: skipped {len(too_long)} utterances longer than max_seconds={config.max_seconds} "
                      f"(e.g. {too_long[:3]}); raise max_seconds to keep them.", stacklevel=2)
        utterances = [u for u in utterances if u.duration <= config.max_seconds]
    kept, feats, labels, too_short = [], [], [], []
    for utt in tqdm(utterances, desc=f"features ({split})", disable=len(utterances) < 200, leave=False):
        values = compute_features(load_audio(utt, max_seconds=config.max_seconds), config.features)
        label = encode(utt.transcript)
        if int(output_lengths(len(values), config.time_stride)) < min_frames(label):
            too_short.append(utt.key)
            continue
        kept.append(utt), feats.append(values), labels.append(label)
    if too_short:
        warnings.warn(f"{split}: skipped {len(too_short)} utterances whose audio is too short for their transcript "
                      f"(CTC needs a frame per character and between repeats), e.g. {too_short[:3]}.", stacklevel=2)
    if not kept:
        raise SpeechDataError(f"The {split} split has no usable utterances.")
    return Examples(kept, feats, labels)


def min_frames(label: np.ndarray) -> int:
    """Fewest CTC frames that can emit `label`: one per character plus a blank between repeats."""
    return len(label) + int(np.sum(label[1:] == label[:-1]))


def make_dataset(data: Examples, batch_size: int, shuffle: bool = False, seed: int = 0,
                 ordered: bool = False, full_batches: bool = False) -> tf.data.Dataset:
    """(inputs, targets) batches: inputs {"features", "lengths"}, targets {"labels", "label_lengths"}.

    ordered=True keeps the utterances' order (padded batches, no bucketing), for inference.
    full_batches=True drops each bucket's partial last batch: under strategy=multi_worker a
    partial batch can leave a worker 0 utterances, and TensorFlow's convolution of an empty batch
    returns a wrongly shaped tensor (measured) on which the model fails."""
    dim = data.features[0].shape[1]

    def generate():
        yield from zip(data.features, data.labels, strict=True)

    ds = tf.data.Dataset.from_generator(generate, output_signature=(
        tf.TensorSpec([None, dim], tf.float32), tf.TensorSpec([None], tf.int32)))
    ds = ds.map(lambda f, y: (f, tf.shape(f)[0], y, tf.shape(y)[0])).cache()
    if shuffle:
        ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    if ordered:  # inference order; a known number of batches, like the bucketed training batches
        ds = ds.padded_batch(batch_size).apply(tf.data.experimental.assert_cardinality(-(-len(data) // batch_size)))
    else:
        longest_label = max(len(y) for y in data.labels)
        ds = bucket_by_length(ds, lambda f, n, y, m: n, [len(f) for f in data.features], batch_size,
                              drop_remainder=full_batches, padded_shapes=([None, dim], [], [longest_label], []))
    ds = ds.map(lambda f, n, y, m: ({"features": f, "lengths": n}, {"labels": y, "label_lengths": m}))
    return ds.prefetch(tf.data.AUTOTUNE)
