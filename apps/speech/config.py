"""Speech app configuration: one dataclass, a quick preset, validation.

    dlsuite speech train --quick epochs=40 rnn=lstm
    dlsuite speech train data=folder:my_recordings/ max_seconds=30
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from dlsuite.apps.speech.asterisk_corpus import PROMPT_SETS
from dlsuite.apps.speech.engines import ENGINES
from dlsuite.apps.speech.sentences import TEXT_SOURCES
from dlsuite.shared.config import option, require
from dlsuite.shared.training import TrainConfig


@dataclasses.dataclass(frozen=True)
class SpeechConfig(TrainConfig):
    # Settings a trained model fixes: `--from` commands refuse to change them.
    MODEL_FIELDS: ClassVar[tuple[str, ...]] = (
        "features", "time_masks", "time_mask_frames", "freq_masks", "freq_mask_bins", "time_stride", "conv_filters",
        "rnn", "rnn_units", "rnn_layers", "dropout")
    epochs: int = option(25, "passes over the training data")
    # Recurrent nets with CTC have occasional gradient spikes; clip them by default.
    global_clipnorm: float = option(5.0, "clip all gradients jointly to this norm (0 = off)")
    # === Data ===
    data: str = option("espeak", "espeak or synthetic (the same embedded corpus: KJV and UI text spoken by espeak-ng, flite, festival) | asterisk (embedded, human telephone prompts; asterisk:fr, :it, :es the same prompts in other languages) | folder:<path> | table:<csv/tsv> | tfds:<name>")
    # Human voices for a synthetic corpus: all of these corpora's utterances (every split) join the
    # training split only, never the LM text, validation or test (train.prepare).
    extra_train_data: tuple[str, ...] = option((), "more corpora (same forms as data) whose every utterance joins the training split, e.g. asterisk:fr,asterisk:it (other people reading the prompts in French and Italian)")
    cache_dir: str = option("data_cache/speech", "where the synthesized corpus is kept between runs")
    num_sentences: int = option(2400, "synthetic: sentences to speak (80/10/10 train/valid/test), plus as many out-of-domain test sentences as test ones")
    variants_per_sentence: int = option(2, "synthetic: voices speaking each sentence")
    noise_snr_db: float = option(0.0, "synthetic: add white noise at this SNR in dB (0 = clean)")
    engines: tuple[str, ...] = option(ENGINES, "synthetic: synthesizers, about an equal share of the utterances each (engines.py; scripts/setup.sh installs them)")
    text_sources: tuple[str, ...] = option(TEXT_SOURCES, "synthetic: sentence sources, an equal share each: kjv (Bible clauses), gettext (English UI messages; KJV only, with a warning, until scripts/fetch_gettext.sh built them)")
    gettext_dir: str = option("data_cache/translation", "synthetic: where scripts/fetch_gettext.sh built the gettext corpus; its gnucash/gnumeric messages are the out-of-domain test (test_ood_*)")
    tfds_data_dir: str = option("", "TFDS data_dir (empty: TFDS default)")
    max_seconds: float = option(20.0, "longest training utterance (longer ones are skipped); predict and export cut longer files into segments this long")
    # === Features, augmentation ===
    features: Literal["log_mel", "mfcc"] = option("log_mel", "log-mel (80 bands) or MFCC (13) features")
    time_masks: int = option(2, "SpecAugment: time masks per training utterance")
    time_mask_frames: int = option(20, "SpecAugment: longest time mask (frames of 10 ms)")
    freq_masks: int = option(2, "SpecAugment: frequency masks per training utterance")
    freq_mask_bins: int = option(10, "SpecAugment: widest frequency mask (bands)")
    # === Waveform augmentation ===
    # Training only (augment.py), so not in MODEL_FIELDS: a finetune may change it. Each step is
    # applied to an utterance with its probability (0 = off), drawn again every epoch; all 0 keeps
    # the features computed once. On by default: espeak speech alone transfers badly to recordings.
    speed_probability: float = option(0.5, "augmentation: chance an utterance is resampled by one of speed_factors")
    speed_factors: tuple[float, ...] = option((0.9, 1.1), "augmentation: speed factors, tempo and pitch (> 1 faster)")
    noise_probability: float = option(0.5, "augmentation: chance of added white, pink or babble-like noise")
    noise_snr_db_range: tuple[float, float] = option((5.0, 25.0), "augmentation: SNR of that noise in dB, low,high")
    reverb_probability: float = option(0.3, "augmentation: chance of a synthetic room's reverberation")
    reverb_rt60_range: tuple[float, float] = option((0.2, 0.8), "augmentation: RT60 of those rooms in seconds, low,high")
    gain_probability: float = option(0.5, "augmentation: chance of a gain change (clipped at full scale)")
    gain_db_range: tuple[float, float] = option((-18.0, 6.0), "augmentation: that gain in dB, low,high")
    telephone_probability: float = option(0.3, "augmentation: chance of a telephone channel (8 kHz, 300-3400 Hz, mu-law)")
    vtlp_probability: float = option(0.0, "augmentation: chance of vocal tract length perturbation, the features' mel filterbank read at warped frequencies")
    vtlp_warp_range: tuple[float, float] = option((0.9, 1.1), "augmentation: VTLP's frequency warp factor, low,high (> 1: formants up)")
    # === Model ===
    time_stride: int = option(3, "output frames every time_stride x 10 ms (3: 33 frames/s, enough for espeak's fastest speech)")
    conv_filters: int = option(32, "filters of the two time-frequency convolutions")
    rnn: Literal["lstm", "gru"] = option("lstm", "recurrent layer type")
    rnn_units: int = option(160, "units per direction of each bidirectional layer")
    rnn_layers: int = option(2, "bidirectional recurrent layers")
    dropout: float = option(0.1, "dropout between recurrent layers")
    # === Long audio ===
    # predict and the export's transcribe_long cut files longer than max_seconds at pauses (segment.py).
    vad_threshold_db: float = option(35.0, "long audio: frames this many dB below the file's loud frames are silence (in noise the noise floor sets a higher level)")
    vad_min_pause_seconds: float = option(0.3, "long audio: silences this long are cut points (shorter ones stay inside speech)")
    max_file_minutes: float = option(60.0, "longest recording predict and transcribe_long accept")
    # === Decoding ===
    beam_width: int = option(16, "beam search width")
    lm: str = option("train", "n-gram LM for fusion: train (KN on the training transcripts + lm_text) | none | <path.arpa>")
    lm_order: int = option(4, "order of the word n-gram built when lm=train")
    char_lm_order: int = option(6, "order of the character n-gram of the same text, the open-vocabulary fusion LM tune tries when the word LM does not help (0 = none)")
    # Tuning decodes the validation split once per grid point and candidate LM (25 points, up to 3
    # LMs: about 17 min on 480 utterances at the default size); an even sample of them ranks the
    # points nearly as well.
    fusion_tune_utterances: int = option(200, "beam + LM: tune alpha, beta on an even sample of at most this many validation utterances (0 = all)")
    lm_lexicon: bool = option(True, "beam + LM: only spell words the LM knows (false for open vocabularies)")
    lm_text: Literal["sources", "kjv", "none"] = option("sources", "extra LM text when lm=train, synthetic corpus: the training side of its text_sources (KJV training chapters, gettext training messages; never a valid/test/ood sentence), the KJV's only, or none")
    # === Fine-tuning ===
    adapt_minutes: float = option(3.0, "finetune on the embedded corpus: minutes of the held-out voices' audio")
    adapt_lm_weight: int = option(10, "finetune with lm=train: rebuild the fusion LMs from the source run's LM text plus the adaptation transcripts counted this many times, so they know the new data's words (0 = keep the source run's LMs)")
    rehearsal_minutes: float = option(0.0, "finetune: also train on this many minutes of the source run's own training data, so the model keeps what it knew (0 = off)")

    def validate(self) -> None:
        super().validate()
        checks = [
            *[check for name in (self.data, *self.extra_train_data) for check in _data_checks(name)],
            (self.data not in self.extra_train_data and len(set(self.extra_train_data)) == len(self.extra_train_data),
             f"extra_train_data must be distinct corpora other than data ({self.data}), got {','.join(self.extra_train_data)}"),
            (bool(self.engines) and set(self.engines) <= set(ENGINES) and len(set(self.engines)) == len(self.engines),
             f"engines must be distinct names from {','.join(ENGINES)}, got {','.join(self.engines)}"),
            (bool(self.text_sources) and set(self.text_sources) <= set(TEXT_SOURCES) and len(set(self.text_sources)) == len(self.text_sources),
             f"text_sources must be distinct names from {','.join(TEXT_SOURCES)}, got {','.join(self.text_sources)}"),
            (self.num_sentences >= 10, "num_sentences must be >= 10"),
            (self.variants_per_sentence >= 1, "variants_per_sentence must be >= 1"),
            (self.noise_snr_db >= 0, "noise_snr_db must be >= 0 (0 = no noise)"),
            (self.max_seconds > 0, "max_seconds must be > 0"),
            (self.vad_threshold_db > 0 and self.vad_min_pause_seconds > 0 and self.max_file_minutes * 60 >= self.max_seconds,
             "vad_threshold_db and vad_min_pause_seconds must be > 0, max_file_minutes at least max_seconds"),
            (min(self.time_masks, self.time_mask_frames, self.freq_masks, self.freq_mask_bins) >= 0, "SpecAugment settings must be >= 0"),
            *[(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1] (0 = off), got {getattr(self, name)}")
              for name in ("speed_probability", "noise_probability", "reverb_probability", "gain_probability", "telephone_probability",
                           "vtlp_probability")],
            (len(self.speed_factors) >= 1 and all(0.5 <= f <= 2 for f in self.speed_factors),
             f"speed_factors must be one or more factors between 0.5 and 2, got {self.speed_factors}"),
            (len(self.noise_snr_db_range) == 2 and self.noise_snr_db_range[0] <= self.noise_snr_db_range[-1],
             f"noise_snr_db_range must be low,high in dB with low <= high, got {self.noise_snr_db_range}"),
            # >= 0.05 s: a room impulse response of a few samples is no room; <= 2 s: a cathedral
            (len(self.reverb_rt60_range) == 2 and 0.05 <= self.reverb_rt60_range[0] <= self.reverb_rt60_range[-1] <= 2,
             f"reverb_rt60_range must be low,high in seconds with 0.05 <= low <= high <= 2, got {self.reverb_rt60_range}"),
            # 0.8-1.2 spans adult talkers' vocal tract lengths (VTLN's usual search range)
            (len(self.vtlp_warp_range) == 2 and 0.8 <= self.vtlp_warp_range[0] <= self.vtlp_warp_range[-1] <= 1.2,
             f"vtlp_warp_range must be low,high with 0.8 <= low <= high <= 1.2, got {self.vtlp_warp_range}"),
            (len(self.gain_db_range) == 2 and self.gain_db_range[0] <= self.gain_db_range[-1],
             f"gain_db_range must be low,high in dB with low <= high, got {self.gain_db_range}"),
            (self.time_stride in (1, 2, 3, 4), "time_stride must be 1..4"),
            (min(self.conv_filters, self.rnn_units, self.rnn_layers) >= 1, "conv_filters, rnn_units, rnn_layers must be >= 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.beam_width >= 1, "beam_width must be >= 1"),
            (self.fusion_tune_utterances >= 0, "fusion_tune_utterances must be >= 0 (0 = every validation utterance)"),
            (2 <= self.lm_order <= 10, "lm_order must be between 2 and 10"),
            (self.char_lm_order == 0 or 2 <= self.char_lm_order <= 10, "char_lm_order must be 0 (none) or between 2 and 10"),
            (self.adapt_minutes > 0, "adapt_minutes must be > 0"),
            (self.adapt_lm_weight >= 0, "adapt_lm_weight must be >= 0 (0 = keep the source run's LMs)"),
            (self.rehearsal_minutes >= 0, "rehearsal_minutes must be >= 0 (0 = no rehearsal)"),
        ]
        require(checks)


def _data_checks(data: str) -> list[tuple[bool, str]]:
    source, _, rest = data.partition(":")
    return [(source in ("espeak", "synthetic", "asterisk", "folder", "table", "tfds"),
             f"data must be espeak (= synthetic), asterisk[:<language>], folder:<path>, table:<file> or tfds:<name>, got '{data}'"),
            (source in ("espeak", "synthetic", "asterisk") or bool(rest), f"data '{data}' needs a path or name after ':'"),
            (source != "asterisk" or rest in ("", *PROMPT_SETS),
             f"data '{data}': the Asterisk prompts exist in {', '.join(PROMPT_SETS)} (asterisk:<language>; plain asterisk is en)")]


# Every waveform augmentation step off: the features are computed once (quick, smoke runs).
NO_AUGMENTATION = dict(speed_probability=0.0, noise_probability=0.0, reverb_probability=0.0, gain_probability=0.0,
                       telephone_probability=0.0, vtlp_probability=0.0)


def quick() -> SpeechConfig:
    """The main job's setting: a third of the corpus, a smaller model, 8 epochs of batch 32 (more
    updates than batch 64 in the same time); about 8 minutes on 2 CPU cores. No waveform
    augmentation: its per-epoch features would compete with training for the 2 cores."""
    return dataclasses.replace(SpeechConfig(), num_sentences=800, epochs=8, batch_size=32, conv_filters=16,
                               rnn_units=128, beam_width=8, **NO_AUGMENTATION)

