"""Pairs -> sentencepiece ids -> length-bucketed tf.data batches for the translation app.

    corpus = load_corpus(config)                      # corpus.py: gettext, tables, files, TFDS
    vocab = build_vocabulary(config, corpus, run_dir) # sentencepiece model(s) in the run folder
    train = make_dataset(encode_pairs(vocab, corpus.train, config.max_tokens), batch, shuffle=True)

Each example is ({"source": x1..xn, "target_in": <s> y1..ym}, y1..ym </s>), padded with <pad>.
Every vocabulary is a pipelines/text.py SubwordVocabulary, with the suite's special ids (PAD_ID,
UNK_ID, BOS_ID, EOS_ID), so the exported graph can use tensorflow-text's sentencepiece op with the
same model file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from dlsuite.apps.translation.corpus import load_parallel_corpus
from dlsuite.apps.translation.debian_packages import PACKAGES, parse_pin
from dlsuite.apps.translation.gettext_corpus import build_gettext_corpus
from dlsuite.apps.translation.pairs import SPLITS, ParallelCorpus, TranslationDataError
from dlsuite.pipelines.batching import bucket_by_length
from dlsuite.pipelines.text import BOS_ID, EOS_ID, PAD_ID, SubwordVocabulary

# The fine-tuning domain of the embedded corpus: accounting and spreadsheets (about 6.5k en-de
# pairs). Held out of the default training corpus, so `finetune` shows adaptation to a new domain.
DOMAIN_PACKAGES = ("gnucash-common", "gnumeric-common")


def _package_name(pin: str) -> str:
    return parse_pin(pin)[0]


GENERAL_PACKAGES = tuple(p for p in PACKAGES if _package_name(p) not in DOMAIN_PACKAGES)


# === Corpora ===
def load_corpus(config) -> ParallelCorpus:
    """The training corpus of `config.data`; for gettext, every pinned package but the domain's."""
    options = {"source_lang": config.source_lang}
    if config.data == "gettext":
        options["packages"] = GENERAL_PACKAGES
    elif config.data.startswith("tfds:"):
        options["data_dir"] = config.tfds_data_dir or None
    corpus = load_parallel_corpus(config.data, config.cache_dir, config.target_lang, **options)
    return limit_pairs(corpus, config)


def load_domain_corpus(config) -> ParallelCorpus:
    """Fine-tuning data: `config.data` as given, or for gettext the held-out domain's packages, minus
    any pair whose source the general corpus already has (those would not be new to the model)."""
    if config.data != "gettext":
        return load_corpus(config)
    general = load_corpus(dataclasses.replace(config, max_train_pairs=0, max_eval_pairs=0))
    seen = {s for split in SPLITS for s, _ in getattr(general, split)}
    pins = tuple(p for p in PACKAGES if _package_name(p) in DOMAIN_PACKAGES)
    domain = build_gettext_corpus(config.cache_dir, config.target_lang, packages=pins)
    splits = {split: [p for p in getattr(domain, split) if p[0] not in seen] for split in SPLITS}
    named = ParallelCorpus(f"{domain.name} ({', '.join(DOMAIN_PACKAGES)})", "en", config.target_lang,
                                   **splits, extra=domain.extra)
    return limit_pairs(named, config)


def limit_pairs(corpus: ParallelCorpus, config) -> ParallelCorpus:
    """At most max_train_pairs / max_eval_pairs per split, picked by a hash of the source: the
    splits are in package order, so their first N pairs would come from a few packages only."""
    def pick(pairs, limit):
        if not limit or len(pairs) <= limit:
            return pairs
        return sorted(pairs, key=lambda pair: hashlib.sha256(f"subset|{pair[0]}".encode()).hexdigest())[:limit]

    return dataclasses.replace(corpus, train=pick(corpus.train, config.max_train_pairs),
                               valid=pick(corpus.valid, config.max_eval_pairs),
                               test=pick(corpus.test, config.max_eval_pairs))


# === Vocabulary ===
@dataclasses.dataclass
class Vocabulary:
    """The source and target sentencepiece models of a run (the same file when shared): `source`
    and `target` are pipelines/text.py SubwordVocabulary objects."""

    source_model: Path
    target_model: Path

    def __post_init__(self):
        self.source = SubwordVocabulary(self.source_model)
        self.target = SubwordVocabulary(self.target_model)

    @property
    def source_size(self) -> int:
        return len(self.source)

    @property
    def target_size(self) -> int:
        return len(self.target)

    def encode_source(self, sentences) -> list[np.ndarray]:
        return self.source.encode(sentences)

    def encode_target(self, sentences) -> list[np.ndarray]:
        return self.target.encode(sentences)

    def decode_target(self, ids) -> str:
        """Ids up to the first </s>, specials dropped, pieces joined back into text."""
        return self.target.decode(ids)

    def source_pieces(self, ids) -> list[str]:
        return self.source.pieces(ids)

    def target_pieces(self, ids) -> list[str]:
        return self.target.pieces(ids)


def build_vocabulary(config, corpus: ParallelCorpus, run_dir: Path) -> Vocabulary:
    """Sentencepiece on the training pairs: one model for both sides (shared_vocabulary) or one each;
    written as source.model / target.model in the run folder."""
    if not corpus.train:
        raise TranslationDataError(f"{corpus.name}: the training split is empty; nothing to build a "
                                           "vocabulary from. Give more pairs.")
    sources, targets = [s for s, _ in corpus.train], [t for _, t in corpus.train]
    if config.shared_vocabulary:
        SubwordVocabulary.train(sources + targets, run_dir / "source.model", config.vocab_size, config.subword_model)
        shutil.copyfile(run_dir / "source.model", run_dir / "target.model")  # the same model for both sides
    else:
        for side, sentences in (("source", sources), ("target", targets)):
            SubwordVocabulary.train(sentences, run_dir / f"{side}.model", config.vocab_size, config.subword_model)
    return load_vocabulary(run_dir)


def load_vocabulary(run_dir: Path) -> Vocabulary:
    run_dir = Path(run_dir)
    if not (run_dir / "source.model").is_file() or not (run_dir / "target.model").is_file():
        raise FileNotFoundError(f"{run_dir} holds no source.model/target.model; is it a translation run folder?")
    return Vocabulary(run_dir / "source.model", run_dir / "target.model")


def copy_vocabulary(from_dir: Path, to_dir: Path) -> None:
    """A run that continues another (fine-tuning, the baseline) keeps its sentencepiece models."""
    for side in ("source", "target"):
        shutil.copyfile(Path(from_dir) / f"{side}.model", Path(to_dir) / f"{side}.model")


# === Examples and batches ===
@dataclasses.dataclass
class EncodedPairs:
    sources: list[np.ndarray]
    targets: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.sources)


def encode_pairs(vocab: Vocabulary, pairs, max_tokens: int, split: str = "train") -> EncodedPairs:
    """Ids for each pair; pairs with more than `max_tokens` pieces on a side are skipped with a count
    (a warning, never in silence)."""
    sources = vocab.encode_source(s for s, _ in pairs)
    targets = vocab.encode_target(t for _, t in pairs)
    keep = [i for i in range(len(pairs)) if 0 < len(sources[i]) <= max_tokens and 0 < len(targets[i]) <= max_tokens]
    if len(keep) < len(pairs):
        warnings.warn(f"{split}: skipped {len(pairs) - len(keep)} of {len(pairs)} pairs with an empty side or more "
                      f"than max_tokens={max_tokens} pieces.", stacklevel=2)
    if not keep:
        raise TranslationDataError(f"{split}: no pair left after the max_tokens={max_tokens} limit.")
    return EncodedPairs([sources[i] for i in keep], [targets[i] for i in keep])


def make_dataset(data: EncodedPairs, batch_size: int, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Teacher-forcing batches bucketed by the longer side's length."""
    def examples():
        for source, target in zip(data.sources, data.targets, strict=True):
            yield source, np.concatenate([[BOS_ID], target]), np.concatenate([target, [EOS_ID]])

    spec = tf.TensorSpec([None], tf.int32)
    ds = tf.data.Dataset.from_generator(examples, output_signature=(spec, spec, spec)).cache()
    if shuffle:
        ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    lengths = [max(len(s), len(t) + 1) for s, t in zip(data.sources, data.targets, strict=True)]
    ds = bucket_by_length(ds, lambda s, t_in, t_out: tf.maximum(tf.shape(s)[0], tf.shape(t_in)[0]), lengths,
                          batch_size)
    ds = ds.map(lambda s, t_in, t_out: ({"source": s, "target_in": t_in}, t_out))
    return ds.prefetch(tf.data.AUTOTUNE)


def padded(sequences: list[np.ndarray]) -> np.ndarray:
    """[len(sequences), longest] int32, right-padded with <pad>."""
    out = np.full((len(sequences), max(1, max(len(s) for s in sequences))), PAD_ID, np.int32)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = seq
    return out


def main(argv=None) -> None:
    """Builds (or finds) the translation app's embedded corpora for each language given (default: de):
    the general corpus and the held-out fine-tuning domain, as `dlsuite translation` reads them."""
    import argparse
    import json

    from dlsuite.apps.translation.config import TranslationConfig

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("languages", nargs="*", default=["de"])
    parser.add_argument("--cache-dir", default=TranslationConfig.cache_dir)
    args = parser.parse_args(argv)
    for lang in args.languages:
        config = TranslationConfig(target_lang=lang, cache_dir=args.cache_dir)
        print(json.dumps(load_corpus(config).summary()))
        print(json.dumps(load_domain_corpus(config).summary()))


if __name__ == "__main__":
    main()
