"""Using a trained translator: beam search over batches of sentences, BLEU/chrF of greedy and
beam search on test pairs (with BLEU by source length and attention maps), and translating text.

    dlsuite translation evaluate --from runs/translation/<run>
    dlsuite translation predict --from runs/translation/<run> "Open the file" sentences.txt
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from dlsuite.apps.translation import data, decode, report
from dlsuite.apps.translation.config import TranslationConfig
from dlsuite.apps.translation.pairs import TranslationDataError

ALIGNMENT_EXAMPLES = 4


def _searcher(model, beam_width: int, config: TranslationConfig):
    """beam_search traced once per model and setting (tf.function: a graph, not Python, per step)."""
    key = (beam_width, config.length_penalty, config.max_length_ratio)
    cache = model.__dict__.setdefault("_dlsuite_searchers", {})
    if key not in cache:
        cache[key] = tf.function(
            lambda source: decode.beam_search(model, source, beam_width, config.length_penalty, config.max_length_ratio),
            input_signature=[tf.TensorSpec([None, None], tf.int32)])
    return cache[key]


def translate_ids(model, sources: list[np.ndarray], config: TranslationConfig, beam_width: int,
                  batch_size: int = 64) -> list[dict]:
    """Beam search over id sentences, batched by length; per sentence: tokens (up to </s>),
    score and attention [len(tokens), len(source)]. An empty source gives an empty result."""
    search = _searcher(model, beam_width, config)
    results: list[dict] = [{"tokens": np.zeros(0, np.int32), "score": 0.0, "attention": np.zeros((0, 0))}] * len(sources)
    order = [i for i in sorted(range(len(sources)), key=lambda i: len(sources[i])) if len(sources[i])]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out = {k: v.numpy() for k, v in search(tf.constant(data.padded([sources[i] for i in chunk]))).items()}
        for row, i in enumerate(chunk):
            n = int(out["lengths"][row])
            results[i] = {"tokens": out["tokens"][row, :n], "score": float(out["scores"][row]),
                          "attention": out["attention"][row, :n, : len(sources[i])]}
    return results


def check_inputs(sentences: list[str], vocab: data.Vocabulary, config: TranslationConfig) -> list[np.ndarray]:
    """Ids of the sentences; too long ones are an error naming the sentence (empty ones translate to "")."""
    ids = vocab.encode_source(sentences)
    for i, seq in enumerate(ids):
        if len(seq) > config.max_input_tokens:
            raise TranslationDataError(
                f"input {i + 1} has {len(seq)} subword tokens, more than max_input_tokens={config.max_input_tokens}: "
                f"{sentences[i][:60]!r}... Split the text into sentences first.")
    return ids


def translate(model, vocab: data.Vocabulary, sentences: list[str], config: TranslationConfig,
              beam_width: int | None = None) -> list[str]:
    ids = check_inputs(sentences, vocab, config)
    width = config.beam_width if beam_width is None else beam_width
    return [vocab.decode_target(r["tokens"]) for r in translate_ids(model, ids, config, width)]


def evaluate_pairs(model, vocab: data.Vocabulary, pairs, config: TranslationConfig, run_dir: Path,
                   prefix: str = "test") -> tuple[dict, dict]:
    """BLEU/chrF of greedy and beam search on `pairs`; samples, BLEU by source length and attention
    alignments in the run folder. Returns (metrics, per-bucket scores by decoder)."""
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    ids = check_inputs(sources, vocab, config)
    hypotheses, by_length, metrics = {}, {}, {}
    decoders = {"greedy": 1, "beam": config.beam_width} if config.beam_width > 1 else {"greedy": 1}
    for name, width in decoders.items():
        start = time.perf_counter()
        results = translate_ids(model, ids, config, width)
        seconds = time.perf_counter() - start
        hypotheses[name] = [vocab.decode_target(r["tokens"]) for r in results]
        scores = report.corpus_scores(hypotheses[name], references)
        metrics.update({f"{prefix}_bleu_{name}": round(scores["bleu"], 2), f"{prefix}_chrf_{name}": round(scores["chrf"], 2),
                        f"{prefix}_sentences_per_second_{name}": round(len(pairs) / seconds, 1)})
        by_length[name] = report.scores_by_length(sources, hypotheses[name], references)
    report.write_samples(run_dir / f"{prefix}_translations.tsv", sources, references, hypotheses)
    report.write_scores_table(run_dir / f"{prefix}_bleu_by_length.tsv", by_length)
    report.length_bucket_figure(by_length, run_dir, name=f"{prefix}_bleu_by_source_length")
    if model.attention:  # the last decoder's results (beam search when there is one)
        save_alignment_figures(vocab, ids, results, run_dir, f"{prefix}_attention")
    return metrics, by_length


def save_alignment_figures(vocab, ids: list[np.ndarray], results: list[dict], run_dir: Path, name: str) -> None:
    """Source x target attention heat maps (like Bahdanau et al.'s figure 3) for a few mid-length
    sentences, from search results already computed."""
    lengths = [len(s) for s in ids]
    chosen = [i for i in np.argsort(lengths)[len(ids) // 2 :] if 6 <= lengths[i] <= 20][:ALIGNMENT_EXAMPLES]
    examples = [(vocab.source_pieces(ids[i]), vocab.target_pieces(results[i]["tokens"]), results[i]["attention"])
                for i in chosen]
    report.save_alignments(examples, run_dir, name=name)


def translate_sentences(model, vocab: data.Vocabulary, sentences: list[str], config: TranslationConfig) -> list[dict]:
    """predict's answer: each sentence with its beam-search translation and score."""
    ids = check_inputs(sentences, vocab, config)
    results = translate_ids(model, ids, config, config.beam_width)
    return [{"input": s, "translation": vocab.decode_target(r["tokens"]), "score": r["score"]}
            for s, r in zip(sentences, results, strict=True)]
