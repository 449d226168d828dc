"""tf.data pipelines for the speech app: utterances -> (features, labels) batches bucketed by length.

    splits = load_splits(config)                       # corpus.py: the data source
    train = make_dataset(examples(splits.train, config), batch, shuffle=True)
    train = make_augmented_dataset(examples(splits.train, config, keep_waveforms=True), batch,
                                   augment.Augmentation.from_config(config), "log_mel", 3)

Features are computed once per utterance (features.py, the same graph the export uses) and kept
in memory; batches group utterances of similar length (`bucket_by_sequence_length`) so padding
stays small. With waveform augmentation (augment.py) the training batches are instead computed
every epoch from the kept waveforms: augmented, then featurized in the `Dataset.map`.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings

import numpy as np
import tensorflow as tf

from dlsuite.apps.speech import augment, corpus, features
from dlsuite.apps.speech.audio import load_audio
from dlsuite.apps.speech.model import output_lengths
from dlsuite.apps.speech.transcripts import ALPHABET, SpeechDataError
from dlsuite.apps.speech.utterances import SpeechCorpus
from dlsuite.pipelines.batching import bucket_by_length, padding_bounded_boundaries

CHAR_IDS = {c: i for i, c in enumerate(ALPHABET)}


def encode(transcript: str) -> np.ndarray:
    return np.array([CHAR_IDS[c] for c in transcript], np.int32)


def decode_ids(ids) -> str:
    return "".join(ALPHABET[i] for i in ids)


def load_splits(config) -> SpeechCorpus:
    """The corpus `config.data` names."""
    return _load_corpus(config, config.data)


def extra_train_utterances(config) -> list:
    """Every utterance of `extra_train_data`'s corpora (all their splits): training data only, kept
    apart from the corpus's `train` split, whose transcripts are LM text."""
    utterances = []
    for name in config.extra_train_data:
        extra = _load_corpus(config, name)
        utterances += extra.train + extra.valid + extra.test
    return utterances


def _load_corpus(config, name: str) -> SpeechCorpus:
    options = {}
    if name in ("espeak", "synthetic"):
        options = dict(num_sentences=config.num_sentences, variants_per_sentence=config.variants_per_sentence,
                       noise_snr_db=config.noise_snr_db or None, seed=config.seed, engines=config.engines,
                       text_sources=config.text_sources, gettext_dir=config.gettext_dir)
    elif name.startswith("tfds:"):
        options = dict(data_dir=config.tfds_data_dir or None)
    return corpus.load_speech_corpus(name, config.cache_dir, **options)


@dataclasses.dataclass
class Examples:
    """One split in memory: normalized features per utterance and the encoded transcripts (and, for
    on-the-fly augmentation, the 16 kHz float32 waveforms)."""

    utterances: list
    features: list[np.ndarray]
    labels: list[np.ndarray]
    waveforms: list[np.ndarray] | None = None

    def __len__(self):
        return len(self.utterances)


def join_examples(first: Examples, second: Examples) -> Examples:
    """Both splits' utterances as one (with waveforms only if both kept theirs)."""
    waveforms = first.waveforms + second.waveforms if first.waveforms is not None and second.waveforms is not None else None
    return Examples(first.utterances + second.utterances, first.features + second.features,
                    first.labels + second.labels, waveforms)


_FEATURE_GRAPHS: dict = {}  # one traced graph per feature kind


def compute_features(waveform: np.ndarray, kind: str) -> np.ndarray:
    """features.features for one waveform (16 kHz float32) as NumPy, through a traced graph."""
    if kind not in _FEATURE_GRAPHS:
        _FEATURE_GRAPHS[kind] = tf.function(lambda w: features.features(w, kind),
                                            input_signature=[tf.TensorSpec([None], tf.float32)])
    return _FEATURE_GRAPHS[kind](tf.constant(waveform, tf.float32)).numpy()


def examples(utterances, config, split: str = "train", keep_waveforms: bool = False) -> Examples:
    """Loads audio, computes features, encodes transcripts. Skips, with a warning, utterances
    longer than max_seconds and those too short for their transcript (CTC cannot align them;
    the loss would be infinite). keep_waveforms=True also keeps the audio (make_augmented_dataset)."""
    from tqdm import tqdm

    too_long = [u.key for u in utterances if u.duration > config.max_seconds]
    if too_long:  # training data: skip and say so; `predict` on such a file is an error instead
        warnings.warn(f"{split}: skipped {len(too_long)} utterances longer than max_seconds={config.max_seconds} "
                      f"(e.g. {too_long[:3]}); raise max_seconds to keep them.", stacklevel=2)
        utterances = [u for u in utterances if u.duration <= config.max_seconds]
    kept, feats, labels, waveforms, too_short = [], [], [], [], []
    for utt in tqdm(utterances, desc=f"features ({split})", disable=len(utterances) < 200, leave=False):
        waveform = load_audio(utt, max_seconds=config.max_seconds)
        values = compute_features(waveform, config.features)
        label = encode(utt.transcript)
        if int(output_lengths(len(values), config.time_stride)) < min_frames(label):
            too_short.append(utt.key)
            continue
        kept.append(utt), feats.append(values), labels.append(label)
        if keep_waveforms:
            waveforms.append(waveform)
    if too_short:
        warnings.warn(f"{split}: skipped {len(too_short)} utterances whose audio is too short for their transcript "
                      f"(CTC needs a frame per character and between repeats), e.g. {too_short[:3]}.", stacklevel=2)
    if not kept:
        raise SpeechDataError(f"The {split} split has no usable utterances.")
    return Examples(kept, feats, labels, waveforms if keep_waveforms else None)


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
        return _inputs_and_targets(ds)
    return _bucketed(ds, lambda f, n, y, m: n, [len(f) for f in data.features], dim, batch_size,
                     full_batches)


def make_augmented_dataset(data: Examples, batch_size: int, augmentation: augment.Augmentation, kind: str,
                           time_stride: int, seed: int = 0, full_batches: bool = False) -> tf.data.Dataset:
    """make_dataset's shuffled training batches, computed afresh every epoch: each waveform goes
    through `augment.augment_waveform`, then `features.features(., kind)` with the filterbank of
    `augment.random_mel_matrix` (VTLP), in a parallel map.

    One NumPy generator seeded with (seed, epoch) draws the epoch's order and every utterance's
    augmentation seed, so a run is reproducible from its seed (a resumed run starts again at epoch
    0's draws). Batches are bucketed by the unaugmented frame count, from which bucket_by_length
    knows the number of batches (speed and reverberation change a length by ~10% and < 1 s). A
    speed-up that would leave an utterance too few CTC frames for its transcript plays it at speed 1.
    """
    if data.waveforms is None:
        raise ValueError("make_augmented_dataset needs the waveforms: examples(..., keep_waveforms=True).")
    samples = np.array([len(w) for w in data.waveforms], np.int32)
    frames = np.asarray(features.num_frames(samples)).tolist()  # unaugmented, the bucketing key
    max_speeds = fastest_feasible_speeds(samples, data.labels, augmentation.speed_factors, time_stride)
    epochs = itertools.count()

    def generate():
        rng = np.random.default_rng([seed, next(epochs)])
        for i in rng.permutation(len(data)):
            yield data.waveforms[i], data.labels[i], max_speeds[i], frames[i], rng.integers(0, 2**62, 2)

    ds = tf.data.Dataset.from_generator(generate, output_signature=(
        tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.float32),
        tf.TensorSpec([], tf.int32), tf.TensorSpec([2], tf.int64)))

    def featurize(waveform, label, max_speed, key, element_seed):
        augmented = augment.augment_waveform(waveform, element_seed, augmentation, max_speed)
        # VTLP's own seed, folded from the element's: the waveform steps draw what they drew without it
        mel = augment.random_mel_matrix(tf.random.experimental.stateless_fold_in(element_seed, 1), augmentation)
        values = features.features(augmented, kind, mel)
        return values, tf.shape(values)[0], label, tf.shape(label)[0], key  # values: (T, F)

    ds = ds.map(featurize, num_parallel_calls=tf.data.AUTOTUNE)
    return _bucketed(ds, lambda f, n, y, m, key: key, frames, features.feature_dim(kind), batch_size,
                     full_batches)


def fastest_feasible_speeds(samples, labels, factors, time_stride: int) -> np.ndarray:
    """Per utterance, the largest of `factors` (or 1) that still leaves it min_frames(label)
    output frames: float32, the largest speed `augment.augment_waveform` may apply to it."""
    need = np.array([min_frames(y) for y in labels])
    fastest = np.ones(len(samples), np.float32)
    for factor in sorted(f for f in factors if f > 1):  # faster is shorter: a factor fits only if the slower ones do
        frames = np.asarray(features.num_frames(augment.sped_up_length(samples, factor)))
        fastest = np.where(output_lengths(frames, time_stride) >= need, np.float32(factor), fastest)
    return fastest


def _bucketed(ds, length_of, lengths, dim: int, batch_size: int, full_batches: bool) -> tf.data.Dataset:
    """Length-bucketed batches of (features, frames, labels, label length, ...) elements. Labels
    are padded to the batch's longest, not the corpus's: the CTC loss's cost grows with the padded
    label length (tf.nn.ctc_loss runs its recursion over every padded label position), and one
    long prompt in the corpus made every batch pay for it."""
    extra = [[]] * (len(ds.element_spec) - 4)  # e.g. the bucketing key
    # Edges that bound the padding: recordings range from 1 s prompts to max_seconds (quantile
    # buckets padded a mixed corpus to 1.7x its frames). At least a batch per bucket, so the
    # full batches of multi_worker are there too.
    boundaries = padding_bounded_boundaries(lengths, min_bucket=batch_size)  # [] when one bucket does
    ds = bucket_by_length(ds, length_of, lengths, batch_size, boundaries, drop_remainder=full_batches,
                          padded_shapes=([None, dim], [], [None], [], *extra))
    return _inputs_and_targets(ds)


def _inputs_and_targets(ds) -> tf.data.Dataset:
    ds = ds.map(lambda f, n, y, m, *_: ({"features": f, "lengths": n}, {"labels": y, "label_lengths": m}))
    return ds.prefetch(tf.data.AUTOTUNE)
