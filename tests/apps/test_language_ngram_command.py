"""`dlsuite language ngram`: text in, a valid ARPA file out, its test perplexity, clear errors."""

import importlib.util
import math
import re
import subprocess
import sys
import textwrap
import warnings

import pytest

from dlsuite.apps import cli
from dlsuite.apps.language.ngram_command import NGramCommandConfig, build_arpa
from dlsuite.pipelines.text import normalize
from dlsuite.shared.config import ConfigError
from dlsuite.shared.ngram import read_arpa

CORPUS = """In the beginning God created the heaven and the earth.
And the earth was without form, and void; and darkness was upon the face of the deep.
And the Spirit of God moved upon the face of the waters.
And God said, Let there be light: and there was light.

And God saw the light, that it was good: and God divided the light from the darkness.
And God called the light Day, and the darkness he called Night.
"""
HELD_OUT = "And God saw the waters, that they were good.\nzebra and unicorn\n"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    (tmp_path / "test.txt").write_text(HELD_OUT, encoding="utf-8")
    return tmp_path


def parse_arpa(path):
    """{order: [(log10 p, words)]} and the header's counts, by a reader independent of shared/ngram."""
    header, sections, current = {}, {}, None
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := re.fullmatch(r"ngram (\d+)=(\d+)", line):
            header[int(m[1])] = int(m[2])
        elif m := re.fullmatch(r"\\(\d+)-grams:", line):
            current = sections.setdefault(int(m[1]), [])
        elif line == "\\end\\":
            current = None
        elif line and current is not None:
            fields = line.split("\t")
            current.append((float(fields[0]), fields[1].split()))
    return header, sections


def build(files, order=3, **kwargs):
    config = NGramCommandConfig(order=order, output=str(files / "model.arpa"), **kwargs)
    return build_arpa([files / "corpus.txt"], config, progress=False)


def test_text_in_arpa_out_with_the_scorers_perplexity(files):
    result = build(files, order=3, test=str(files / "test.txt"))
    header, sections = parse_arpa(files / "model.arpa")
    assert header == {n: len(sections[n]) for n in sections} == {n: result["ngrams"][f"{n}-grams"] for n in (1, 2, 3)}
    assert all(math.isfinite(p) and p <= 0 and len(words) == n for n in sections for p, words in sections[n])
    words = {w for line in CORPUS.splitlines() for w in normalize(line).split()}
    assert {w for _, (w,) in sections[1]} == words | {"<unk>", "<s>", "</s>"}
    assert result["vocabulary_size"] == len(words) + 3 and result["sentences"] == 6 and result["order"] == 3
    assert set(result["discount_fallback_orders"]) <= {1, 2, 3}
    model = read_arpa(files / "model.arpa")  # the shared reader loads it; its scorer agrees
    held_out = [normalize(line) for line in HELD_OUT.splitlines()]
    assert math.isfinite(result["test_perplexity"]) and result["test_perplexity"] > 1
    assert result["test_perplexity"] == pytest.approx(model.perplexity(model.encode(held_out)), rel=1e-5)
    assert result["test_oov"] == 4  # they, were, zebra, unicorn
    assert result["build_seconds"] >= 0 and set(result["step_seconds"]) >= {"count", "write ARPA"}


def test_the_progress_bar_names_the_steps_and_shows_only_on_a_terminal(files, capsys):
    config = NGramCommandConfig(order=3, output=str(files / "model.arpa"), test=str(files / "test.txt"))
    build_arpa([files / "corpus.txt"], config, progress=True)
    shown = capsys.readouterr().err
    assert "5/5" in shown and all(step in shown for step in ("count", "smooth", "write ARPA", "score test"))
    build_arpa([files / "corpus.txt"], config)  # default: stderr here is not a terminal, so no bar
    assert capsys.readouterr().err == ""


def test_a_tiny_corpus_uses_the_fallback_discounts_and_says_so(tmp_path):
    (tmp_path / "tiny.txt").write_text("a b\nb a\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported in the result, not as a warning
        result = build_arpa([tmp_path / "tiny.txt"], NGramCommandConfig(order=2, output=str(tmp_path / "m.arpa")),
                            progress=False)
    assert result["discount_fallback_orders"] == [1, 2]
    assert read_arpa(tmp_path / "m.arpa").size() == result["ngrams"] == {"1-grams": 5, "2-grams": 6}


@pytest.mark.skipif(importlib.util.find_spec("kenlm") is None, reason="the kenlm Python module is not installed")
def test_kenlm_loads_the_file_and_agrees(files):
    import kenlm

    result = build(files, order=3, test=str(files / "test.txt"))
    lm = kenlm.Model(str(files / "model.arpa"))
    held_out = [normalize(line) for line in HELD_OUT.splitlines()]
    log10 = sum(lm.score(s) for s in held_out)
    tokens = sum(len(s.split()) + 1 for s in held_out)
    assert 10 ** (-log10 / tokens) == pytest.approx(result["test_perplexity"], rel=1e-4)


def test_the_command_line_prints_the_result_and_exits_2_on_bad_input(files, capsys):
    assert cli.main(["language", "ngram", str(files / "corpus.txt"), "order=2", f"output={files / 'lm.arpa'}"]) == 0
    assert '"order": 2' in capsys.readouterr().out and (files / "lm.arpa").is_file()
    assert cli.main(["language", "ngram", str(files / "missing.txt"), f"output={files / 'lm.arpa'}"]) == 2
    assert "No such file" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):  # settings are key=value, as in every command: no -o flag
        cli.main(["language", "ngram", str(files / "corpus.txt"), "order=2", "-o", "x.arpa"])


def test_the_command_runs_without_importing_tensorflow(files):
    """The command builds no neural model: a fresh `dlsuite language ngram` never imports
    TensorFlow (4.8 s of the command's 5.8 s before), and bad settings still exit 2 there."""
    script = textwrap.dedent(f"""
        import sys
        from dlsuite.apps import cli
        ok = cli.main(["language", "ngram", {str(files / 'corpus.txt')!r}, "order=3", "output={files / 'lm.arpa'}"])
        bad = cli.main(["language", "ngram", {str(files / 'corpus.txt')!r}, "order=0", "output={files / 'lm.arpa'}"])
        print(ok, bad, "tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-4:] == ["0", "2", "False", "False"], done.stdout[-500:]
    assert "order must be between 1 and 10" in done.stderr
    assert read_arpa(files / "lm.arpa").order == 3


# (files written, then options ("{d}" = the folder), message)
BAD_INPUTS = [
    ({}, {"corpus": ["{d}/nope.txt"]}, "No such file: '.*nope.txt'"),
    ({}, {"corpus": ["{d}"]}, "is not a file"),
    ({"latin1.txt": "caf\xe9 au lait\n".encode("latin-1")}, {"corpus": ["{d}/latin1.txt"]},
     "latin1.txt' is not UTF-8 text .* at byte 3"),
    ({"empty.txt": b"\n  \n...\n"}, {"corpus": ["{d}/empty.txt"]}, "empty corpus"),
    ({"one.txt": b"Hello.\nhello\n"}, {"corpus": ["{d}/one.txt"]}, "one distinct word \\('hello'\\)"),
    ({"short.txt": b"a b\nb a\n"}, {"corpus": ["{d}/short.txt"], "order": 5},
     "longest sentence has 2 word.*use order=4 or less"),
    ({}, {"output": "{d}/no_folder/m.arpa"}, "output folder .*no_folder' does not exist"),
    ({}, {"output": "{d}"}, "is a folder"),
    ({}, {"output": "{d}/corpus.txt"}, "is also an input"),
    ({}, {"output": "{d}/./test.txt", "test": "{d}/test.txt"}, "is also an input"),
    ({}, {"output": ""}, "needs output="),
    ({}, {"corpus": []}, "needs corpus text files"),
    ({"e.txt": b"\n"}, {"test": "{d}/e.txt"}, "empty test file"),
]


@pytest.mark.parametrize(("written", "changes", "message"), BAD_INPUTS)
def test_bad_input_is_a_clear_error_and_leaves_the_output_intact(files, written, changes, message):
    for name, data in written.items():
        (files / name).write_bytes(data)
    (files / "model.arpa").write_text("an older model\n")
    options = {"corpus": ["{d}/corpus.txt"], "order": 3, "output": "{d}/model.arpa", "test": ""} | changes
    fill = lambda text: text.format(d=files)  # noqa: E731
    corpus = [fill(p) for p in options.pop("corpus")]
    config = NGramCommandConfig(order=options["order"], output=fill(options["output"]), test=fill(options["test"]))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        build_arpa(corpus, config, progress=False)
    assert (files / "model.arpa").read_text() == "an older model\n"
    assert (files / "corpus.txt").read_text() == CORPUS and not list(files.glob(".model.arpa.*"))


@pytest.mark.parametrize(("override", "message"), [
    ("order=0", "order must be between 1 and 10, got 0"), ("order=1000", "between 1 and 10"),
    ("order=five", "'order' must be int"), ("smoothing=additive", "Unknown config key 'smoothing'.*order, output, test"),
])
def test_bad_settings_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        cli.parse_command_line(cli.APPS["language"], ["ngram", "c.txt", override, "output=m.arpa"])
