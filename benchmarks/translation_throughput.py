"""Translation: training and decoding throughput of our NMT app against a plain keras-io-style
attention GRU, on the same pairs and the same sentencepiece vocabulary, as ratios in one run.

    .venv/bin/python benchmarks/translation_throughput.py [--train-pairs 8000] [--epochs 3]
        [--test-sentences 300] [--repeats 3] [--quick] [--keep DIR]

Data: the first --train-pairs en->de pairs of the embedded gettext corpus (`data.load_corpus`) and
one sentencepiece vocabulary (`data.build_vocabulary`) shared by both models; sizes and optimizer
from `config.quick()` (embedding_dim, encoder_units, decoder_units, batch_size, AdamW with
warm-up/cosine and clipping), so the two differ only in what is being compared.

  * training, target tokens per second (real tokens incl. </s>, never padding), with model.fit,
    both for --epochs epochs on the same encoded pairs; the two models' epochs alternate (ours,
    keras-io, ours, ...) so load from other processes hits both; best epoch after the first (the
    first traces the step function and fills the tf.data cache):
      - ours: `model.Translator` on `data.make_dataset` (length-bucketed batches, padding only
        up to the bucket's longest pair);
      - keras-io style: a functional model as in the keras.io / tensorflow.org NMT-with-attention
        and English-to-Spanish examples: Embedding(mask_zero) -> Bidirectional GRU (sequences and
        states) -> Dense bridge to the decoder's first state; Embedding(mask_zero) -> GRU decoder
        (teacher forcing) -> keras.layers.AdditiveAttention over the encoder outputs -> Dense
        softmax on [decoder output; context], factored through a linear embedding_dim-wide Dense
        like our readout so both output layers cost the same (the tensorflow.org tutorial's tanh
        there slows learning; model.py's docstring); sparse categorical cross-entropy, <pad> ignored;
        every batch padded to one fixed length (the longest pair, as keras-io's
        TextVectorization(output_sequence_length=...) does), from_tensor_slices + shuffle + batch.
  * decoding, sentences per second on the first --test-sentences test pairs (best of --repeats,
    the decoders alternating each round; one warm-up call each first):
      - ours: the SavedModel of `dlsuite translation export` on our trained run; its `greedy` and
        `serving_default` (beam search, config.beam_width) signatures on batches of 64 raw strings
        in test order (tokenization, search and detokenization in the graph);
      - keras-io style: keras-io's `decode_sequence` loop: tokenize one sentence in Python, pad it
        to the fixed length, run an encoder model once, then a one-step decoder model (the trained
        layers) per output token with argmax until </s>; greedy only (keras-io has no beam search).
        The one-step decoder carries the GRU state (keras-io's character-level seq2seq loop; the
        English-to-Spanish one re-runs the whole model on the prefix each step), and the models are
        called with `predict_on_batch` (compiled, little per-call overhead). Also reported: the
        same loop with eager `model(...)` calls (English-to-Spanish's way) timed once on 20
        sentences, and the cost of one decoder-step call each way (and with `predict()`, the
        character-level example's way).
    Both stop at the same length limit (max_length_ratio x source tokens + 10).
  * corpus BLEU and chrF (sacrebleu, `report.corpus_scores`) of each decoder's translations of the
    same test sentences, so the speed is not bought with quality.
Prints a Markdown table (ours, keras-io style, ours / keras-io) with the settings and the command,
and writes it to benchmarks/results/translation_throughput.md (--out).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

from dlsuite.apps.translation import config as translation_config  # noqa: E402
from dlsuite.apps.translation import data, report  # noqa: E402
from dlsuite.apps.translation.app import TranslationApp  # noqa: E402
from dlsuite.apps.translation.model import build_translator  # noqa: E402
from dlsuite.pipelines.text import BOS_ID, EOS_ID, PAD_ID  # noqa: E402
from dlsuite.shared.optim import make_optimizer  # noqa: E402
from dlsuite.shared.runs import create_run_dir  # noqa: E402
from dlsuite.shared.training import save_model_atomic  # noqa: E402

EXPORT_BATCH = 64
EAGER_SENTENCES = 20  # keras-io's loop with eager model calls is slow: timed once on this many

# Keras warns on every fit() over a dataset of unknown length (each epoch here is its own fit call),
# and that tf.data input is not reshuffled by fit (both datasets shuffle themselves).
warnings.filterwarnings("ignore", message="Your input ran out of data")
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
# The encoder's outputs carry Keras masks; the one-step decoder takes the mask as an input instead.
warnings.filterwarnings("ignore", message=".*does not support masking and will therefore destroy the mask")


# === The keras-io-style model ===
@dataclasses.dataclass
class KerasIO:
    """The teacher-forcing model and, sharing its layers, the encoder and one-step decoder that
    keras-io's inference loop calls."""

    model: keras.Model
    encoder: keras.Model
    step: keras.Model


def build_keras_io(config, vocab: data.Vocabulary) -> KerasIO:
    embed, enc, dec = config.embedding_dim, config.encoder_units, config.decoder_units
    source_embedding = layers.Embedding(vocab.source_size, embed, mask_zero=True)
    encoder_rnn = layers.Bidirectional(layers.GRU(enc, return_sequences=True, return_state=True))
    bridge = layers.Dense(dec, activation="tanh")
    keys = layers.Dense(dec, use_bias=False)  # AdditiveAttention adds query and key: same width
    target_embedding = layers.Embedding(vocab.target_size, embed, mask_zero=True)
    decoder_rnn = layers.GRU(dec, return_sequences=True, return_state=True)
    attention = layers.AdditiveAttention()
    readout_layer = layers.Dense(embed)  # linear, as our readout
    probabilities = layers.Dense(vocab.target_size, activation="softmax")
    dropout = layers.Dropout(config.dropout)

    def readout(decoder_outputs, encoder_outputs, encoder_keys, query_mask, source_mask):
        context = attention([decoder_outputs, encoder_outputs, encoder_keys], mask=[query_mask, source_mask])
        hidden = readout_layer(layers.Concatenate()([decoder_outputs, context]))
        return probabilities(dropout(hidden))

    source = keras.Input((None,), dtype="int32", name="source")
    target_in = keras.Input((None,), dtype="int32", name="target_in")
    source_mask, target_mask = ops.not_equal(source, PAD_ID), ops.not_equal(target_in, PAD_ID)
    encoder_outputs, forward, backward = encoder_rnn(dropout(source_embedding(source)))
    first_state = bridge(layers.Concatenate()([forward, backward]))
    encoder_keys = keys(encoder_outputs)
    decoder_outputs, _ = decoder_rnn(dropout(target_embedding(target_in)), initial_state=first_state)
    outputs = readout(decoder_outputs, encoder_outputs, encoder_keys, target_mask, source_mask)
    model = keras.Model({"source": source, "target_in": target_in}, outputs, name="keras_io_nmt")
    encoder = keras.Model(source, [encoder_outputs, encoder_keys, first_state, source_mask], name="keras_io_encoder")

    previous = keras.Input((1,), dtype="int32")
    state = keras.Input((dec,))
    memory = keras.Input((None, 2 * enc))
    memory_keys = keras.Input((None, dec))
    memory_mask = keras.Input((None,), dtype="bool")
    step_outputs, new_state = decoder_rnn(target_embedding(previous), initial_state=state)
    step_probabilities = readout(step_outputs, memory, memory_keys, None, memory_mask)
    step = keras.Model([previous, state, memory, memory_keys, memory_mask], [step_probabilities, new_state],
                       name="keras_io_decoder_step")
    return KerasIO(model, encoder, step)


def fixed_length(sequences, length: int, prefix=(), suffix=()) -> np.ndarray:
    """[n, length] int32: each sequence (with prefix/suffix ids) cut or right-padded with <pad>."""
    out = np.full((len(sequences), length), PAD_ID, np.int32)
    for row, seq in enumerate(sequences):
        ids = np.concatenate([prefix, seq, suffix]).astype(np.int32)[:length]
        out[row, : len(ids)] = ids
    return out


def keras_io_dataset(train: data.EncodedPairs, length: int, batch: int, seed: int) -> tf.data.Dataset:
    inputs = {"source": fixed_length(train.sources, length),
              "target_in": fixed_length(train.targets, length, prefix=[BOS_ID])}
    labels = fixed_length(train.targets, length, suffix=[EOS_ID])
    ds = tf.data.Dataset.from_tensor_slices((inputs, labels)).shuffle(len(train), seed=seed)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def keras_io_translate(nmt: KerasIO, vocab: data.Vocabulary, sentences, length: int, config,
                       eager: bool = False) -> list[str]:
    """keras-io's decode_sequence: one sentence at a time, one model call per output token, argmax.
    Calls go through `predict_on_batch` (the model's compiled predict step), or with eager=True
    through `model(...)` as keras-io's English-to-Spanish loop does (each op run from Python)."""
    if eager:
        encode, step = (lambda x: nmt.encoder(x, training=False)), (lambda x: nmt.step(x, training=False))
    else:
        encode, step = nmt.encoder.predict_on_batch, nmt.step.predict_on_batch
    translations = []
    for sentence in sentences:
        ids = vocab.encode_source([sentence])[0]
        memory, memory_keys, state, mask = encode(fixed_length([ids], length))
        token, output = BOS_ID, []
        for _ in range(int(min(len(ids), length) * config.max_length_ratio) + 10):
            probabilities, state = step([ops.convert_to_tensor([[token]], "int32"), state, memory, memory_keys, mask])
            token = int(np.argmax(ops.convert_to_numpy(probabilities)[0, -1]))
            if token == EOS_ID:
                break
            output.append(token)
        translations.append(vocab.decode_target(output))
    return translations


def step_call_ms(nmt: KerasIO, length: int, config) -> dict:
    """Milliseconds per one-step-decoder call (one token of one sentence), best of 3 x 10 calls, for
    the three ways keras-io examples call a model."""
    memory, memory_keys, state, mask = nmt.encoder.predict_on_batch(fixed_length([np.arange(4, 14)], length))
    inputs = [np.array([[BOS_ID]], np.int32), state, memory, memory_keys, mask]
    tensors = [ops.convert_to_tensor(x) for x in inputs]
    ways = {"predict_on_batch": lambda: nmt.step.predict_on_batch(inputs),
            "eager model(...)": lambda: nmt.step(tensors, training=False),
            "predict()": lambda: nmt.step.predict(inputs, verbose=0)}
    costs = {}
    for name, fn in ways.items():
        fn()
        costs[name] = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(10):
                fn()
            costs[name].append((time.perf_counter() - start) * 100)
    return {name: min(ms) for name, ms in costs.items()}


# === Training ===
class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.losses: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
        self.losses.append(float((logs or {}).get("loss", float("nan"))))


def target_positions(ds: tf.data.Dataset) -> int:
    """Target positions the model computes per epoch (real tokens plus padding)."""
    return sum(int(np.prod(labels.shape)) for _, labels in ds)


def train_alternating(models: dict, datasets: dict, epochs: int) -> dict:
    """One epoch of each model in turn; returns each model's EpochTimer."""
    timers = {name: EpochTimer() for name in models}
    for epoch in range(epochs):
        for name, model in models.items():
            model.fit(datasets[name], initial_epoch=epoch, epochs=epoch + 1, callbacks=[timers[name]], verbose=0)
            print(f"  epoch {epoch + 1}/{epochs} {name}: {timers[name].seconds[-1]:.1f} s, "
                  f"loss {timers[name].losses[-1]:.3f}", flush=True)
    return timers


# === Decoding ===
def export_translate(signature, sentences) -> list[str]:
    out = []
    for start in range(0, len(sentences), EXPORT_BATCH):
        result = signature(sentences=tf.constant(sentences[start : start + EXPORT_BATCH]))
        out += [t.decode("utf-8") for t in result["translations"].numpy()]
    return out


def best_rates(decoders: dict, count: int, repeats: int) -> tuple[dict, dict]:
    """Sentences per second of each decoder (best of `repeats` rounds, decoders alternating within
    a round) and its translations from the last round."""
    for fn in decoders.values():
        fn(1)  # warm-up: the first call traces or loads kernels
    times = {name: [] for name in decoders}
    outputs = {}
    for round_ in range(repeats):
        for name, fn in decoders.items():
            start = time.perf_counter()
            outputs[name] = fn(count)
            times[name].append(time.perf_counter() - start)
            print(f"  round {round_ + 1}/{repeats} {name}: {count / times[name][-1]:.1f} sentences/s", flush=True)
    return {name: count / min(t) for name, t in times.items()}, outputs


# === The benchmark ===
def run(args, root: Path) -> str:
    wall_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    config = dataclasses.replace(translation_config.quick(), max_train_pairs=args.train_pairs,
                                 max_eval_pairs=args.test_sentences, epochs=args.epochs, max_tokens=args.max_tokens)
    run_dir = create_run_dir(root, "translation", "train", config, resume=False)
    corpus = data.load_corpus(config)
    vocab = data.build_vocabulary(config, corpus, run_dir)
    train = data.encode_pairs(vocab, corpus.train, config.max_tokens, "train")
    length = max(max(len(s), len(t) + 1) for s, t in zip(train.sources, train.targets, strict=True))
    real_tokens = sum(len(t) + 1 for t in train.targets)
    batch = config.batch_size
    print(f"{len(train)} training pairs, {real_tokens} target tokens per epoch, keras-io fixed length {length}",
          flush=True)

    datasets = {"ours": data.make_dataset(train, batch, shuffle=True, seed=config.seed),
                "keras-io": keras_io_dataset(train, length, batch, config.seed)}
    keras.utils.set_random_seed(config.seed)
    ours = build_translator(config, vocab)
    # The same compile as `shared.training.fit_model` (the schedule spans our dataset's batches).
    ours.compile(optimizer=make_optimizer(config, config.epochs * int(datasets["ours"].cardinality())),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID))
    keras.utils.set_random_seed(config.seed)
    theirs = build_keras_io(config, vocab)
    theirs.model.compile(optimizer=make_optimizer(config, config.epochs * max(1, len(train) // batch)),
                         loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=PAD_ID))
    positions = {name: target_positions(ds) for name, ds in datasets.items()}
    print("training (epochs alternate):", flush=True)
    timers = train_alternating({"ours": ours, "keras-io": theirs.model}, datasets, config.epochs)
    timed = {name: t.seconds[1:] or t.seconds for name, t in timers.items()}  # after the first epoch
    epoch_seconds = {name: min(s) for name, s in timed.items()}
    save_model_atomic(ours, run_dir / "model.keras")
    if args.keep:
        save_model_atomic(theirs.model, run_dir / "keras_io.keras")

    export_dir = TranslationApp().run("export", config, run_dir)["export_dir"]
    import tensorflow_text  # noqa: F401  (registers the sentencepiece ops of the SavedModel)

    nmt = tf.saved_model.load(str(export_dir))
    sources = [s for s, _ in corpus.test]
    references = [t for _, t in corpus.test]
    decoders = {
        "ours greedy": lambda n: export_translate(nmt.signatures["greedy"], sources[:n]),
        f"ours beam {config.beam_width}": lambda n: export_translate(nmt.signatures["serving_default"], sources[:n]),
        "keras-io greedy": lambda n: keras_io_translate(theirs, vocab, sources[:n], length, config),
    }
    print(f"decoding {len(sources)} test sentences:", flush=True)
    rates, outputs = best_rates(decoders, len(sources), args.repeats)
    few = sources[:EAGER_SENTENCES]
    keras_io_translate(theirs, vocab, few[:1], length, config, eager=True)  # warm-up
    start = time.perf_counter()
    eager_outputs = keras_io_translate(theirs, vocab, few, length, config, eager=True)
    eager_rate = len(few) / (time.perf_counter() - start)
    eager_same = sum(a == b for a, b in zip(eager_outputs, outputs["keras-io greedy"], strict=False))
    print(f"  keras-io greedy, eager calls: {eager_rate:.1f} sentences/s on {len(few)} sentences", flush=True)
    call_ms = step_call_ms(theirs, length, config)
    scores = {name: report.corpus_scores(hyp, references) for name, hyp in outputs.items()}
    empty = {name: sum(not h.strip() for h in hyp) for name, hyp in outputs.items()}
    out_tokens = {name: float(np.mean([len(ids) for ids in vocab.encode_target(hyp)])) for name, hyp in outputs.items()}
    wall = time.perf_counter() - wall_start

    ours_beam = f"ours beam {config.beam_width}"
    tokens = {name: real_tokens / epoch_seconds[name] for name in epoch_seconds}
    per_token = {name: positions[name] / real_tokens for name in positions}
    params = {"ours": ours.count_params(), "keras-io": theirs.model.count_params()}

    def row(label, a, b, fmt="{:,.1f}"):
        ratio = f"{a / b:.2f}x" if b else "n/a"
        return f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |"

    command = shlex.join([".venv/bin/python", "benchmarks/translation_throughput.py", *sys.argv[1:]])
    lines = [
        "# Translation throughput: ours vs a keras-io-style attention GRU",
        "",
        "```", command, "```", "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPU cores ({platform.machine()}, load average "
        f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end: shared with other jobs), "
        f"TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}; total {wall / 60:.1f} min.",
        "",
        f"Data: {len(train):,} en->de training pairs of the embedded gettext corpus ({real_tokens:,} target tokens "
        f"per epoch incl. </s>), {len(sources)} test sentences; one shared sentencepiece {config.subword_model} "
        f"vocabulary of {vocab.target_size:,} pieces. Sizes: embedding {config.embedding_dim}, encoder "
        f"2x{config.encoder_units} GRU, decoder {config.decoder_units} GRU, batch {batch}, dropout {config.dropout}; "
        f"{config.optimizer} lr {config.learning_rate} {config.schedule}, global clipnorm {config.global_clipnorm}; "
        f"{config.epochs} epochs each, epochs alternating between the two models; training rate = real target "
        f"tokens / best epoch time after the first. keras-io style pads every batch to {length} tokens "
        f"(the longest pair). Decoding: best of {args.repeats} alternating rounds; ours = the exported SavedModel "
        f"on batches of {EXPORT_BATCH} raw strings in test order, keras-io = one sentence at a time: tokenized in "
        f"Python, padded to {length}, one encoder call, then one call of the one-step decoder per output token "
        f"(`predict_on_batch`, the fastest of the ways keras-io's examples call a model; see below).",
        "",
        "| measurement | ours | keras-io style | ours / keras-io |",
        "|---|---:|---:|---:|",
        row("training: target tokens/s", tokens["ours"], tokens["keras-io"], "{:,.0f}"),
        row("training: seconds per epoch (best after the first; lower is better)", epoch_seconds["ours"],
            epoch_seconds["keras-io"]),
        row("training: target positions computed per real token (padding; lower is better)", per_token["ours"],
            per_token["keras-io"], "{:.2f}"),
        row("training: loss after the last epoch", timers["ours"].losses[-1], timers["keras-io"].losses[-1],
            "{:.3f}"),
        row("parameters", params["ours"], params["keras-io"], "{:,.0f}"),
        row("decoding greedy: sentences/s (keras-io: predict_on_batch calls)", rates["ours greedy"],
            rates["keras-io greedy"]),
        row(f"decoding beam {config.beam_width}: sentences/s (keras-io: greedy, it has no beam search)",
            rates[ours_beam], rates["keras-io greedy"]),
        row("decoding greedy: mean output length, subword tokens", out_tokens["ours greedy"],
            out_tokens["keras-io greedy"], "{:.1f}"),
        row("BLEU, greedy", scores["ours greedy"]["bleu"], scores["keras-io greedy"]["bleu"], "{:.2f}"),
        row(f"BLEU, ours beam {config.beam_width} / keras-io greedy", scores[ours_beam]["bleu"],
            scores["keras-io greedy"]["bleu"], "{:.2f}"),
        row("chrF, greedy", scores["ours greedy"]["chrf"], scores["keras-io greedy"]["chrf"], "{:.2f}"),
        row(f"chrF, ours beam {config.beam_width} / keras-io greedy", scores[ours_beam]["chrf"],
            scores["keras-io greedy"]["chrf"], "{:.2f}"),
        "",
        f"keras-io's loop with eager `model(...)` calls (its English-to-Spanish example) instead of "
        f"`predict_on_batch`: {eager_rate:.2f} sentences/s on the first {len(few)} test sentences (one timed pass, "
        f"{eager_same}/{len(few)} translations identical to the predict_on_batch loop's), "
        f"(our greedy export decodes {rates['ours greedy'] / eager_rate:,.0f}x as many). Milliseconds per call of the "
        "one-step decoder (one token of one sentence): "
        + ", ".join(f"{name} {ms:.1f}" for name, ms in call_ms.items())
        + " (`predict()` per call is keras-io's character-level seq2seq example).",
        "",
        f"Empty translations of the {len(sources)} test sentences: "
        + ", ".join(f"{name} {n}" for name, n in empty.items()) + "."
        + (" Most are empty: the models are undertrained and the decoding rates mean little; train on more "
           "pairs or epochs." if max(empty.values()) > len(sources) // 2 else "")
        + (" At this training budget both models are early in training (BLEU under 5): the quality rows "
           "compare the two after the same training, not usable translators; decoding rates also depend on "
           "output length (an undertrained model repeats pieces up to the length limit)."
           if max(v["bleu"] for v in scores.values()) < 5 else ""),
        "",
        "Epoch seconds (first epoch traces and fills caches): "
        + "; ".join(f"{name} " + ", ".join(f"{s:.1f}" for s in t.seconds) for name, t in timers.items()) + ".",
        "",
        "First test sentences:",
        "",
        "| source | reference | ours greedy | keras-io greedy |",
        "|---|---|---|---|",
    ]
    for i in range(min(5, len(sources))):
        cells = [sources[i], references[i], outputs["ours greedy"][i], outputs["keras-io greedy"][i]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-pairs", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per model (the first is not timed)")
    parser.add_argument("--test-sentences", type=int, default=300)
    parser.add_argument("--max-tokens", type=int, default=32,
                        help="training pairs longer than this (subword tokens, either side) are skipped for both "
                             "models; bounds keras-io's fixed length")
    parser.add_argument("--repeats", type=int, default=3, help="decoding rounds (best of)")
    parser.add_argument("--quick", action="store_true", help="tiny settings (about 2 minutes), to check the script")
    parser.add_argument("--keep", help="keep the run folder (model, vocabulary, export) under this folder")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "translation_throughput.md"))
    args = parser.parse_args()
    if args.quick:
        args.train_pairs, args.epochs = min(args.train_pairs, 1500), min(args.epochs, 2)
        args.test_sentences, args.repeats = min(args.test_sentences, 40), min(args.repeats, 2)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch traces and is not timed)")
    if args.keep:
        table = run(args, Path(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="translation-throughput-") as tmp:
            table = run(args, Path(tmp))
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
