"""What a person would rather look at for a translation model: corpus BLEU and chrF (sacrebleu),
scores by source-sentence length, attention alignments as heat maps, and the test sentences
with every model's translation side by side.

The length plot is there to check the textbook claim (Cho et al. 2014, Bahdanau et al. 2015,
Goodfellow et al. section 12.4.5.1) that an encoder squeezing the whole source into one
fixed-size vector gets worse as sentences grow, while attention holds up.
"""

from __future__ import annotations

import bisect
import csv
import io
from pathlib import Path

import numpy as np
import sacrebleu

from dlsuite.shared import plots
from dlsuite.shared.runs import atomic_write_text

# Upper ends of the source-length buckets in whitespace words: 1-5, 6-10, 11-15, 16-20, 21+.
LENGTH_EDGES = (5, 10, 15, 20)

METRIC_LABELS = {"bleu": "BLEU", "chrf": "chrF"}


def _check_parallel(**lists) -> int:
    """The common length of the named lists; ValueError naming them if they differ or are empty."""
    lengths = {name: len(items) for name, items in lists.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}: {n}" for name, n in lengths.items())
        raise ValueError(f"need one entry per sentence in every list, got {described}")
    count = next(iter(lengths.values()))
    if count == 0:
        raise ValueError(f"no sentences given ({', '.join(lengths)} are empty)")
    return count


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus BLEU and chrF (0-100) with one reference per sentence, sacrebleu defaults (13a)."""
    count = _check_parallel(hypotheses=hypotheses, references=references)
    # sacrebleu takes a list of reference *streams*: one stream = one reference per sentence.
    bleu = sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize="13a")
    chrf = sacrebleu.corpus_chrf(list(hypotheses), [list(references)])
    return {"bleu": float(bleu.score), "chrf": float(chrf.score), "sentences": count}


def _bucket_bounds(edges) -> list[tuple[int, int | None]]:
    """(min_words, max_words) per bucket; the last one is open-ended (max None)."""
    edges = [int(e) for e in edges]
    if not edges or edges[0] < 1 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"length edges must be positive and strictly increasing, got {edges}")
    lows = [1] + [e + 1 for e in edges]
    return list(zip(lows, [*edges, None], strict=True))


def _bucket_name(low: int, high: int | None) -> str:
    return f"{low}+" if high is None else f"{low}-{high}"


def scores_by_length(sources, hypotheses, references, edges=LENGTH_EDGES) -> list[dict]:
    """Corpus BLEU and chrF within each source-length bucket (whitespace words), in bucket order.

    Empty buckets keep their row with 0 sentences and None scores, so a missing bar is visibly
    missing rather than drawn as a 0. A source with no words counts in the first bucket.
    Scores are sacrebleu corpus scores over the bucket's sentences, so a bucket whose hypotheses
    all have fewer than 4 words has no 4-grams and gets BLEU 0 even when every word is right
    (chrF does not have this problem).
    """
    _check_parallel(sources=sources, hypotheses=hypotheses, references=references)
    bounds = _bucket_bounds(edges)
    members: list[list[int]] = [[] for _ in bounds]
    for i, source in enumerate(sources):
        # bisect_left: a length equal to an edge belongs to the bucket that edge closes.
        members[bisect.bisect_left(edges, len(source.split()))].append(i)
    rows = []
    for (low, high), chosen in zip(bounds, members, strict=True):
        row = {"bucket": _bucket_name(low, high), "min_words": low, "max_words": high,
               "sentences": len(chosen), "bleu": None, "chrf": None}
        if chosen:
            scores = corpus_scores([hypotheses[i] for i in chosen], [references[i] for i in chosen])
            row.update(bleu=scores["bleu"], chrf=scores["chrf"])
        rows.append(row)
    return rows


def _common_buckets(results: dict[str, list[dict]]) -> list[str]:
    """The bucket names every entry of `results` shares; ValueError when they disagree."""
    if not results:
        raise ValueError("no results to show")
    buckets = {name: [row["bucket"] for row in rows] for name, rows in results.items()}
    first_name, first = next(iter(buckets.items()))
    for name, names in buckets.items():
        if names != first:
            raise ValueError(f"'{name}' has buckets {names} but '{first_name}' has {first}")
    return first


def _sentence_counts(results: dict[str, list[dict]], index: int) -> str:
    """The sentence count of one bucket; several joined by '/' when the models saw different
    subsets (e.g. beam search run on fewer sentences), rather than hiding that."""
    counts = list(dict.fromkeys(rows[index]["sentences"] for rows in results.values()))
    return "/".join(str(n) for n in counts)


def length_bucket_figure(results: dict[str, list[dict]], run_dir, name="bleu_by_source_length",
                         metric="bleu") -> Path:
    """Grouped bars: one group per source-length bucket, one bar per model or decoder."""
    import matplotlib.pyplot as plt

    if metric not in METRIC_LABELS:
        raise ValueError(f"metric must be one of {sorted(METRIC_LABELS)}, got '{metric}'")
    buckets = _common_buckets(results)
    positions = np.arange(len(buckets))
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(buckets) * max(1, len(results) / 2)), 4))
    for k, (label, rows) in enumerate(results.items()):
        xs = positions - 0.4 + width * (k + 0.5)
        # Empty buckets stay without a bar: NaN draws nothing, a 0 would claim a score.
        heights = [np.nan if row[metric] is None else row[metric] for row in rows]
        bars = ax.bar(xs, heights, width, label=label)
        for bar, height in zip(bars, heights, strict=True):
            if not np.isnan(height):
                ax.annotate(f"{height:.1f}", (bar.get_x() + bar.get_width() / 2, height),
                            ha="center", va="bottom", fontsize=7)
    labels = [f"{b}\n(n={_sentence_counts(results, i)})" for i, b in enumerate(buckets)]
    ax.set_xticks(positions, labels)
    ax.set_xlabel("source length (words)")
    ax.set_ylabel(f"{METRIC_LABELS[metric]} (corpus, per bucket)")
    ax.set_title(f"{METRIC_LABELS[metric]} by source sentence length")
    ax.set_ylim(0, 108)  # scores are 0-100; the headroom keeps the value labels inside
    # Below the axes: inside, it would cover the bars it explains.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22),
              ncol=min(3, len(results)))
    return plots.save_figure(fig, run_dir, name)


def alignment_figure(source_tokens: list[str], target_tokens: list[str], weights, title: str = ""):
    """Attention weights as a gray-scale heat map (white = 1), as in Bahdanau et al. 2015 fig. 3:
    target tokens down the rows, source tokens along the columns (labels on top, rotated)."""
    import matplotlib.pyplot as plt

    weights = np.asarray(weights, dtype=np.float32)
    expected = (len(target_tokens), len(source_tokens))
    if weights.shape != expected:
        raise ValueError(f"attention weights have shape {weights.shape}, but the tokens need "
                         f"{expected} (target tokens x source tokens)")
    if weights.size == 0:
        raise ValueError(f"nothing to draw: {expected[0]} target and {expected[1]} source tokens")
    # About a third of an inch per token, so labels stay readable at any sentence length.
    size = (1.5 + 0.32 * len(source_tokens), 1.2 + 0.32 * len(target_tokens))
    fig, ax = plt.subplots(figsize=size)
    # Fixed 0..1 scale: weights are probabilities, and the shade must mean the same in every plot.
    image = ax.imshow(weights, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.xaxis.tick_top()
    ax.set_xticks(range(len(source_tokens)), source_tokens, rotation=90)
    ax.set_yticks(range(len(target_tokens)), target_tokens)
    ax.tick_params(length=0, labelsize=8)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    if title:
        ax.set_title(title, fontsize=9, pad=12)
    return fig


def save_alignments(examples, run_dir, name="attention_alignments") -> list[Path]:
    """Each (source_tokens, target_tokens, weights) as plots/<name>_<i>.png and in TensorBoard."""
    paths = []
    for i, (source_tokens, target_tokens, weights) in enumerate(examples):
        fig = alignment_figure(source_tokens, target_tokens, weights, title=f"example {i}")
        paths.append(plots.save_figure(fig, run_dir, f"{name}_{i}"))
    return paths


def _cell(text) -> str:
    """One TSV field: tabs and line breaks would shift columns or rows, so they become spaces."""
    return " ".join(str(text).replace("\t", " ").splitlines())


def _write_tsv(path, rows: list[list[str]]) -> Path:
    # csv quotes a field that holds '"', so the table reads back exactly with csv or pandas.
    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t", lineterminator="\n").writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def write_samples(path, sources, references, hypotheses: dict[str, list[str]], limit=None) -> Path:
    """A TSV of source, reference and every model's translation, one row per sentence."""
    _check_parallel(sources=sources, references=references,
                    **{f"hypotheses['{name}']": texts for name, texts in hypotheses.items()})
    count = len(sources) if limit is None else min(limit, len(sources))
    rows = [["source", "reference", *hypotheses]]
    for i in range(count):
        row = [sources[i], references[i], *(texts[i] for texts in hypotheses.values())]
        rows.append([_cell(text) for text in row])
    return _write_tsv(path, rows)


def _score_cell(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def write_scores_table(path, results: dict[str, list[dict]]) -> Path:
    """A TSV: bucket, sentences, then '<name> BLEU' and '<name> chrF' per model; '-' = no score."""
    buckets = _common_buckets(results)
    header = ["bucket", "sentences"]
    for name in results:
        header += [f"{_cell(name)} BLEU", f"{_cell(name)} chrF"]
    rows = [header]
    for i, bucket in enumerate(buckets):
        row = [bucket, _sentence_counts(results, i)]
        for bucket_rows in results.values():
            row += [_score_cell(bucket_rows[i]["bleu"]), _score_cell(bucket_rows[i]["chrf"])]
        rows.append(row)
    return _write_tsv(path, rows)
