"""Training steps of the speech app: corpus and features, the fusion LM, CTC fitting, the
fine-tuning set.

    dlsuite speech train                        # apps/speech/app.py tells the story with these steps
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from dlsuite.apps.speech import augment, data, decode, inference, report
from dlsuite.apps.speech.config import SpeechConfig
from dlsuite.apps.speech.sentences import training_text
from dlsuite.apps.speech.utterances import SpeechCorpus
from dlsuite.shared.ngram import build_ngram_model, read_arpa, write_arpa
from dlsuite.shared.runs import atomic_write_json
from dlsuite.shared.training import fit_model


def prepare(config: SpeechConfig, run_dir: Path, names=("train", "valid", "test")):
    """The corpus and the features of the named splits (evaluate needs no training features); the
    training split (with extra_train_data's utterances) keeps its waveforms when augmentation is
    on (training_dataset)."""
    splits = data.load_splits(config)
    if "train" in names and config.extra_train_data:
        splits.extra["extra_train"] = data.extra_train_utterances(config)
    atomic_write_json(run_dir / "corpus.json", splits.summary())
    augmenting = augment.Augmentation.from_config(config).enabled
    utterances = {name: getattr(splits, name) + (splits.extra.get("extra_train", []) if name == "train" else [])
                  for name in names}
    examples = {name: data.examples(utterances[name], config, name, keep_waveforms=augmenting and name == "train")
                for name in names}
    return splits, examples


# === Language model for fusion ===
def lm_sentences(config: SpeechConfig, splits: SpeechCorpus) -> list[str]:
    """LM text: the training transcripts, plus (synthetic corpus, lm_text) the training side of the
    text it speaks: the KJV's training chapters and the gettext training messages, never a valid,
    test or out-of-domain sentence (sentences.training_text)."""
    sentences = [u.transcript for u in splits.train]
    if "text_sources" in splits.extra and config.lm_text != "none":
        sources = splits.extra["text_sources"] if config.lm_text == "sources" else ("kjv",)
        sentences += training_text(sources, config.gettext_dir)
    return sentences


def build_lm(config: SpeechConfig, splits: SpeechCorpus, run_dir: Path) -> inference.FusionLMs | None:
    """The fusion LMs: none, or a word LM (a given ARPA file: KenLM/SRILM/the language app's
    ngram.arpa; or a Kneser-Ney n-gram built here) and a character n-gram of the LM text
    (char_lm_order > 0), written to <run>/lm.arpa and <run>/char_lm.arpa so later commands reuse them."""
    if config.lm == "none":
        return None
    sentences = lm_sentences(config, splits)
    if config.lm != "train":
        path = Path(config.lm)
        path = path / "ngram.arpa" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"lm='{config.lm}': no ARPA file there. Give a .arpa file, a language run folder, 'train' or 'none'.")
        shutil.copy2(path, run_dir / inference.WORD_LM_FILE)
        word_lm = decode.WordLM(read_arpa(path))
    else:
        word_lm = _word_lm(sentences, config, run_dir)
    return inference.FusionLMs(word_lm, _char_lm(sentences, config, run_dir))


def adapted_lm(source_config: SpeechConfig, config: SpeechConfig, adaptation: data.Examples,
               source_lms: inference.FusionLMs | None, run_dir: Path) -> inference.FusionLMs | None:
    """finetune's fusion LMs. With lm=train and adapt_lm_weight > 0 they are rebuilt (over the
    copies of the source run's in run_dir) from the source run's LM text plus the adaptation
    transcripts, each counted adapt_lm_weight times: count merging (Bacchiani & Roark 2003,
    in-domain counts scaled up before estimation). So the LMs know the new data's words, which a
    lexicon-constrained beam could not spell before, and its phrases. Otherwise `source_lms`, the
    source run's LMs as finetune already loaded them."""
    if config.lm != "train" or config.adapt_lm_weight == 0:
        return source_lms
    sentences = lm_sentences(source_config, data.load_splits(source_config))
    sentences += [u.transcript for u in adaptation.utterances] * config.adapt_lm_weight
    return inference.FusionLMs(_word_lm(sentences, config, run_dir), _char_lm(sentences, config, run_dir))


def _word_lm(sentences: list[str], config: SpeechConfig, run_dir: Path) -> decode.WordLM:
    """A Kneser-Ney word n-gram of `sentences` (order lm_order), written to <run>/lm.arpa."""
    words = sorted({w for s in sentences for w in s.split()})
    tokens = ["<unk>", "<s>", "</s>", *words]
    ids = {w: i for i, w in enumerate(tokens)}
    model = build_ngram_model([np.array([ids[w] for w in s.split()]) for s in sentences], tokens, config.lm_order)
    write_arpa(model, run_dir / inference.WORD_LM_FILE)
    return decode.WordLM(model)


def _char_lm(sentences: list[str], config: SpeechConfig, run_dir: Path) -> decode.CharLM | None:
    """The character n-gram of `sentences` (order char_lm_order, 0 = none), written to <run>/char_lm.arpa."""
    if not config.char_lm_order:
        return None
    char_lm = decode.CharLM.build(sentences, config.char_lm_order)
    write_arpa(char_lm.model, run_dir / inference.CHAR_LM_FILE)
    return char_lm


def training_dataset(config: SpeechConfig, train: data.Examples, batch: int):
    """The shuffled, length-bucketed training batches: augmented and featurized every epoch when any
    augmentation probability is > 0 (data.make_augmented_dataset), else the features computed once."""
    full_batches = config.strategy == "multi_worker"  # see data.make_dataset
    augmentation = augment.Augmentation.from_config(config)
    if augmentation.enabled:
        return data.make_augmented_dataset(train, batch, augmentation, config.features, config.time_stride,
                                           seed=config.seed, full_batches=full_batches)
    return data.make_dataset(train, batch, shuffle=True, seed=config.seed, full_batches=full_batches)


def fit(model, config: SpeechConfig, train: data.Examples, valid: data.Examples, batch: int, run_dir: Path) -> dict:
    """CTC training on length-bucketed batches; TensorBoard gets audio and greedy transcripts."""
    full_batches = config.strategy == "multi_worker"  # see data.make_dataset
    train_ds = training_dataset(config, train, batch)
    valid_ds = data.make_dataset(valid, batch, full_batches=full_batches)
    if int(valid_ds.cardinality()) == 0:
        print(f"warning: the validation split ({len(valid)} utterances) fills no global batch of {batch} under "
              "strategy=multi_worker; training without a validation loss.")
        valid_ds = None
    figures = fit_model(model, config, train_ds, valid_ds, run_dir,
                        callbacks=[report.AudioSamples(valid, run_dir)])
    audio_seconds = sum(u.duration for u in train.utterances) * figures["epochs_run"]
    return figures | {"train_audio_seconds_per_second": round(audio_seconds / figures["train_seconds"], 1)}


def adaptation_set(splits: SpeechCorpus, config: SpeechConfig) -> data.Examples:
    """Fine-tuning data: `adapt_minutes` of the embedded corpus's held-out voices (speaking training
    sentences, never the test ones), or the training split of the user's data."""
    augmenting = augment.Augmentation.from_config(config).enabled
    if "adapt" not in splits.extra:
        return data.examples(splits.train, config, "train", keep_waveforms=augmenting)
    return data.examples(first_minutes(splits.extra["adapt"], config.adapt_minutes), config, "adapt",
                         keep_waveforms=augmenting)


def rehearsal_set(source_config: SpeechConfig, config: SpeechConfig) -> data.Examples:
    """`rehearsal_minutes` of the source run's own training split (its corpus, loaded as it was
    trained on; seeded order), mixed into fine-tuning so that adapting to new voices does not
    erase the old ones (rehearsal: the old task's data kept in the new task's batches)."""
    training = list(data.load_splits(source_config).train)
    np.random.default_rng(config.seed).shuffle(training)
    chosen = first_minutes(training, config.rehearsal_minutes)
    return data.examples(chosen, config, "rehearsal", keep_waveforms=augment.Augmentation.from_config(config).enabled)


def first_minutes(utterances, minutes: float) -> list:
    """The leading utterances that make up `minutes` of audio (the last one may run over)."""
    chosen, total = [], 0.0
    for utt in utterances:
        if total >= minutes * 60:
            break
        chosen.append(utt)
        total += utt.duration
    return chosen
