"""Translation report: sacrebleu scores, length buckets, alignment heat maps, TSV tables."""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # before TensorFlow is imported

import csv

import numpy as np
import pytest
import sacrebleu

from dlsuite.apps.translation import report
from dlsuite.apps.translation.report import (
    LENGTH_EDGES,
    alignment_figure,
    corpus_scores,
    length_bucket_figure,
    save_alignments,
    scores_by_length,
    write_samples,
    write_scores_table,
)

REFERENCES = [
    "the cat sat on a mat",
    "a dog runs in the park today",
    "we like green tea with milk",
]
HYPOTHESES = [
    "the cat sat on the mat",
    "the dog runs in a park today",
    "we like tea with milk",
]


def read_tsv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f, delimiter="\t"))


def sentence(words: int, word: str = "w") -> str:
    return " ".join(f"{word}{i}" for i in range(words))


def test_identical_hypotheses_score_100():
    scores = corpus_scores(REFERENCES, REFERENCES)
    assert scores == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0), "sentences": 3}


def test_hypotheses_sharing_nothing_score_near_zero():
    scores = corpus_scores(["xyz qqq vvv"] * 3, REFERENCES)
    assert scores["bleu"] == pytest.approx(0.0, abs=1e-6)
    assert scores["chrf"] < 5


def test_bleu_matches_hand_computed_precisions():
    # n-gram precisions 5/6, 3/5, 2/4, 1/3; same length, so no brevity penalty.
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    scores = corpus_scores([HYPOTHESES[0]], [REFERENCES[0]])
    assert scores["bleu"] == pytest.approx(expected, abs=1e-6)
    direct = sacrebleu.sentence_bleu(HYPOTHESES[0], [REFERENCES[0]]).score
    assert scores["bleu"] == pytest.approx(direct)


def test_corpus_scores_are_sacrebleu_corpus_scores():
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score)
    # Corpus BLEU pools n-gram counts: it is not the mean of the sentence scores.
    pairs = zip(HYPOTHESES, REFERENCES, strict=True)
    mean = np.mean([sacrebleu.sentence_bleu(h, [r]).score for h, r in pairs])
    assert abs(scores["bleu"] - mean) > 0.1


def test_corpus_scores_rejects_mismatched_or_empty_lists():
    with pytest.raises(ValueError, match="hypotheses: 2, references: 3"):
        corpus_scores(HYPOTHESES[:2], REFERENCES)
    with pytest.raises(ValueError, match="empty"):
        corpus_scores([], [])


def test_scores_by_length_counts_and_scores_each_bucket():
    lengths = [1, 5, 6, 10, 11, 15, 21, 25]  # nothing in 16-20
    sources = [sentence(n) for n in lengths]
    references = [sentence(n, "r") for n in lengths]
    # Right everywhere except for the 11-15 bucket, which shares no word with its references.
    hypotheses = [sentence(n, "x") if 11 <= n <= 15 else sentence(n, "r") for n in lengths]
    rows = scores_by_length(sources, hypotheses, references)
    assert [r["bucket"] for r in rows] == ["1-5", "6-10", "11-15", "16-20", "21+"]
    assert [(r["min_words"], r["max_words"]) for r in rows] == [
        (1, 5), (6, 10), (11, 15), (16, 20), (21, None)]
    assert [r["sentences"] for r in rows] == [2, 2, 2, 0, 2]
    assert rows[3]["bleu"] is None and rows[3]["chrf"] is None
    for i in (0, 1, 4):
        assert rows[i]["bleu"] == pytest.approx(100.0) and rows[i]["chrf"] == pytest.approx(100.0)
    assert rows[2]["bleu"] == pytest.approx(0.0, abs=1e-6)
    assert rows[2]["chrf"] < 20


def test_scores_by_length_with_other_edges():
    rows = scores_by_length(["a b", "a b c d"], ["x y", "y"], ["x y", "y"], edges=(3,))
    assert [(r["bucket"], r["sentences"]) for r in rows] == [("1-3", 1), ("4+", 1)]
    # Corpus BLEU needs 4-grams: right words in a bucket of 2-word sentences still score 0.
    assert rows[0]["bleu"] == pytest.approx(0.0) and rows[0]["chrf"] == pytest.approx(100.0)
    assert LENGTH_EDGES == (5, 10, 15, 20)
    with pytest.raises(ValueError, match="increasing"):
        scores_by_length(["a"], ["a"], ["a"], edges=(10, 5))


def test_scores_by_length_rejects_mismatched_lists():
    with pytest.raises(ValueError, match="sources: 2, hypotheses: 3, references: 3"):
        scores_by_length(["a", "b"], HYPOTHESES, REFERENCES)


def test_alignment_figure_draws_targets_as_rows_and_sources_as_columns():
    source, target = ["the", "cat", "sat", "<eos>"], ["die", "Katze", "<eos>"]
    weights = np.eye(3, 4)
    fig = alignment_figure(source, target, weights, title="one")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == source
    assert all(t.get_rotation() == 90 for t in ax.get_xticklabels())
    assert [t.get_text() for t in ax.get_yticklabels()] == target
    image = ax.images[0]
    np.testing.assert_array_equal(image.get_array(), weights)
    assert image.get_cmap().name == "gray" and image.get_clim() == (0.0, 1.0)
    long = alignment_figure(source * 3, target * 3, np.zeros((9, 12)))
    assert all(long.get_size_inches() > fig.get_size_inches())


def test_alignment_figure_rejects_wrongly_shaped_weights():
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(3, 4\)"):
        alignment_figure(["a", "b", "c", "d"], ["x", "y", "z"], np.zeros((4, 3)))


def test_save_alignments_writes_pngs_and_tensorboard_images(tmp_path):
    rng = np.random.default_rng(0)
    examples = [(["a", "b", "c"], ["x", "y"], rng.dirichlet(np.ones(3), size=2)),
                (["a", "b"], ["x", "y", "z", "w"], rng.dirichlet(np.ones(2), size=4))]
    paths = save_alignments(examples, tmp_path)
    assert [p.name for p in paths] == ["attention_alignments_0.png", "attention_alignments_1.png"]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 2000
    events = list((tmp_path / "tb" / "plots").glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)


def test_length_bucket_figure_groups_bars_by_bucket(tmp_path, monkeypatch):
    figures = []
    original = report.plots.save_figure

    def keep_figure(fig, run_dir, name, step=0):
        figures.append(fig)
        return original(fig, run_dir, name, step)

    monkeypatch.setattr(report.plots, "save_figure", keep_figure)
    sources = [sentence(n) for n in (3, 4, 8, 22)]
    results = {"attention beam": scores_by_length(sources, sources, sources),
               "no attention beam": scores_by_length(sources, ["z"] * 4, sources)}
    path = length_bucket_figure(results, tmp_path)
    assert path == tmp_path / "plots" / "bleu_by_source_length.png"
    assert path.stat().st_size > 2000
    ax = figures[0].axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["1-5\n(n=2)", "6-10\n(n=1)", "11-15\n(n=0)", "16-20\n(n=0)", "21+\n(n=1)"]
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 10 and sum(np.isnan(heights)) == 4  # no bar for empty buckets
    with pytest.raises(ValueError, match="metric"):
        length_bucket_figure(results, tmp_path, metric="ter")


def test_write_samples_round_trips_through_csv(tmp_path):
    sources = ['say "hi"', "two\tcolumns", "two\nlines"]
    references = ['sag "hallo"', "zwei Spalten", "zwei Zeilen"]
    hypotheses = {"attention": ["sag hallo", "zwei", "Zeilen"], "no attention": ["a", "b", "c"]}
    rows = read_tsv(write_samples(tmp_path / "samples.tsv", sources, references, hypotheses))
    assert rows == [
        ["source", "reference", "attention", "no attention"],
        ['say "hi"', 'sag "hallo"', "sag hallo", "a"],
        ["two columns", "zwei Spalten", "zwei", "b"],
        ["two lines", "zwei Zeilen", "Zeilen", "c"],
    ]
    few = write_samples(tmp_path / "few.tsv", sources, references, hypotheses, limit=1)
    limited = read_tsv(few)
    assert len(limited) == 2
    with pytest.raises(ValueError, match="no attention"):
        write_samples(tmp_path / "bad.tsv", sources, references, {"no attention": ["a"]})


def test_write_scores_table_writes_dash_for_empty_buckets(tmp_path):
    sources = [sentence(n) for n in (4, 8, 22)]
    results = {"attention": scores_by_length(sources, sources, sources),
               "plain": scores_by_length(sources, ["z"] * 3, sources)}
    rows = read_tsv(write_scores_table(tmp_path / "scores.tsv", results))
    assert rows[0] == ["bucket", "sentences", "attention BLEU", "attention chrF",
                       "plain BLEU", "plain chrF"]
    assert rows[1] == ["1-5", "1", "100.00", "100.00", "0.00", rows[1][5]]
    assert rows[3] == ["11-15", "0", "-", "-", "-", "-"]
    assert [r[0] for r in rows[1:]] == ["1-5", "6-10", "11-15", "16-20", "21+"]
    other = {"short": scores_by_length(sources, sources, sources, edges=(3,))}
    with pytest.raises(ValueError, match="buckets"):
        write_scores_table(tmp_path / "bad.tsv", {**results, **other})
