"""Pairs -> sentencepiece ids -> length-bucketed tf.data batches for the translation app.

    corpus = load_corpus(config)                      # corpus.py: gettext, tables, files, TFDS
    vocab = build_vocabulary(config, corpus, run_dir) # sentencepiece model(s) in the run folder
    train = make_dataset(encode_pairs(vocab, corpus.train, config.max_tokens), batch, shuffle=True)

Each example is ({"source": x1..xn, "target_in": <s> y1..ym}, y1..ym </s>), padded with id 0.
Ids 0 <pad>, 1 <unk>, 2 <s>, 3 </s> in every vocabulary (pipelines/text.py's train_sentencepiece),
so the exported graph can use tensorflow-text's sentencepiece op with the same model file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from dlsuite.apps.translation import corpus as corpora
from dlsuite.pipelines.batching import bucket_boundaries
from dlsuite.pipelines.text import train_sentencepiece

PAD, UNK, BOS, EOS = 0, 1, 2, 3

# The fine-tuning domain of the embedded corpus: accounting and spreadsheets (about 6.5k en-de
# pairs). Held out of the default training corpus, so `finetune` shows adaptation to a new domain.
DOMAIN_PACKAGES = ("gnucash-common", "gnumeric-common")


def _package_name(pin: str) -> str:
    return corpora.parse_pin(pin)[0]


GENERAL_PACKAGES = tuple(p for p in corpora.PACKAGES if _package_name(p) not in DOMAIN_PACKAGES)


# === Corpora ===
def load_corpus(config) -> corpora.ParallelCorpus:
    """The training corpus of `config.data`; for gettext, every pinned package but the domain's."""
    options = {"source_lang": config.source_lang}
    if config.data == "gettext":
        options["packages"] = GENERAL_PACKAGES
    elif config.data.startswith("tfds:"):
        options["data_dir"] = config.tfds_data_dir or None
    corpus = corpora.load_parallel_corpus(config.data, config.cache_dir, config.target_lang, **options)
    return limit_pairs(corpus, config)


def load_domain_corpus(config) -> corpora.ParallelCorpus:
    """Fine-tuning data: `config.data` as given, or for gettext the held-out domain's packages, minus
    any pair whose source the general corpus already has (those would not be new to the model)."""
    if config.data != "gettext":
        return load_corpus(config)
    general = load_corpus(dataclasses.replace(config, max_train_pairs=0, max_eval_pairs=0))
    seen = {s for split in corpora.SPLITS for s, _ in getattr(general, split)}
    pins = tuple(p for p in corpora.PACKAGES if _package_name(p) in DOMAIN_PACKAGES)
    domain = corpora.build_gettext_corpus(config.cache_dir, config.target_lang, packages=pins)
    splits = {split: [p for p in getattr(domain, split) if p[0] not in seen] for split in corpora.SPLITS}
    named = corpora.ParallelCorpus(f"{domain.name} ({', '.join(DOMAIN_PACKAGES)})", "en", config.target_lang,
                                   **splits, extra=domain.extra)
    return limit_pairs(named, config)


def limit_pairs(corpus: corpora.ParallelCorpus, config) -> corpora.ParallelCorpus:
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
    """The source and target sentencepiece models of a run (the same file when shared)."""

    source_model: Path
    target_model: Path

    def __post_init__(self):
        import sentencepiece as spm

        self.source = spm.SentencePieceProcessor(model_file=str(self.source_model))
        self.target = spm.SentencePieceProcessor(model_file=str(self.target_model))

    @property
    def source_size(self) -> int:
        return self.source.get_piece_size()

    @property
    def target_size(self) -> int:
        return self.target.get_piece_size()

    def encode_source(self, sentences) -> list[np.ndarray]:
        return [np.array(ids, np.int32) for ids in self.source.encode(list(sentences))]

    def encode_target(self, sentences) -> list[np.ndarray]:
        return [np.array(ids, np.int32) for ids in self.target.encode(list(sentences))]

    def decode_target(self, ids) -> str:
        """Ids up to the first </s>, specials dropped, pieces joined back into text."""
        ids = [int(i) for i in ids]
        ids = ids[: ids.index(EOS)] if EOS in ids else ids
        return self.target.decode([i for i in ids if i > EOS])

    def source_pieces(self, ids) -> list[str]:
        return [self.source.id_to_piece(int(i)) for i in ids]

    def target_pieces(self, ids) -> list[str]:
        return ["</s>" if int(i) == EOS else self.target.id_to_piece(int(i)) for i in ids]


def build_vocabulary(config, corpus: corpora.ParallelCorpus, run_dir: Path) -> Vocabulary:
    """Sentencepiece on the training pairs: one model for both sides (shared_vocabulary) or one each;
    written as source.model / target.model in the run folder."""
    if not corpus.train:
        raise corpora.TranslationDataError(f"{corpus.name}: the training split is empty; nothing to build a "
                                           "vocabulary from. Give more pairs.")
    sources, targets = [s for s, _ in corpus.train], [t for _, t in corpus.train]
    if config.shared_vocabulary:
        shared = train_sentencepiece(sources + targets, run_dir / "shared", config.vocab_size, config.subword_model)
        for side in ("source", "target"):
            shutil.copyfile(shared, run_dir / f"{side}.model")
        shared.unlink()
    else:
        train_sentencepiece(sources, run_dir / "source", config.vocab_size, config.subword_model)
        train_sentencepiece(targets, run_dir / "target", config.vocab_size, config.subword_model)
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
        raise corpora.TranslationDataError(f"{split}: no pair left after the max_tokens={max_tokens} limit.")
    return EncodedPairs([sources[i] for i in keep], [targets[i] for i in keep])


def make_dataset(data: EncodedPairs, batch_size: int, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Teacher-forcing batches bucketed by the longer side's length."""
    def examples():
        for source, target in zip(data.sources, data.targets, strict=True):
            yield source, np.concatenate([[BOS], target]), np.concatenate([target, [EOS]])

    spec = tf.TensorSpec([None], tf.int32)
    ds = tf.data.Dataset.from_generator(examples, output_signature=(spec, spec, spec)).cache()
    if shuffle:
        ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    lengths = [max(len(s), len(t) + 1) for s, t in zip(data.sources, data.targets, strict=True)]
    boundaries = bucket_boundaries(lengths)
    ds = ds.bucket_by_sequence_length(
        lambda s, t_in, t_out: tf.maximum(tf.shape(s)[0], tf.shape(t_in)[0]), boundaries,
        [batch_size] * (len(boundaries) + 1))
    # A known length: the schedule covers every step, Keras shows a total and stops warning that
    # the input "ran out of data" at each epoch's end. Each bucket gives ceil(n / batch) batches.
    buckets = np.digitize(lengths, boundaries)
    ds = ds.apply(tf.data.experimental.assert_cardinality(int(sum(-(-n // batch_size) for n in np.bincount(buckets)))))
    ds = ds.map(lambda s, t_in, t_out: ({"source": s, "target_in": t_in}, t_out))
    return ds.prefetch(tf.data.AUTOTUNE)


def padded(sequences: list[np.ndarray]) -> np.ndarray:
    """[len(sequences), longest] int32, right-padded with <pad>."""
    out = np.zeros((len(sequences), max(1, max(len(s) for s in sequences))), np.int32)
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
