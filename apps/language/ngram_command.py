"""`dlsuite language ngram`: KenLM's job alone, text files in, an ARPA file out (no run folder).

    dlsuite language ngram corpus.txt order=5 output=model.arpa
    dlsuite language ngram part1.txt part2.txt order=3 output=lm.arpa test=held_out.txt

Each line of the UTF-8 corpus files is one sentence, normalized as the app normalizes user text
(`pipelines.text.normalize`). The model is modified Kneser-Ney, interpolated, as `lmplz -o N`
builds it (shared/ngram; KenLM's fallback discounts where a small corpus gives none), over the
corpus words plus <unk>, <s>, </s>. The ARPA file is written through a temporary file and a
rename, so an existing file is replaced whole or not at all. With `test=`, the result adds the
perplexity of that file (OOVs included, as KenLM's `query` reports it) and its OOV count.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np

from dlsuite.pipelines.text import normalize
from dlsuite.shared.config import Config, ConfigError, load_config, option, require
from dlsuite.shared.ngram import count_ngrams, write_arpa
from dlsuite.shared.ngram.smoothing import kneser_ney

MODEL_SPECIALS = ["<unk>", "<s>", "</s>"]  # lmplz's vocabulary: these, then the words
MAX_ORDER = 10  # shared/ngram's limit; lmplz's default build stops at 6


@dataclasses.dataclass(frozen=True)
class NGramCommandConfig(Config):
    """The ngram command's settings: `key=value` after the corpus files, or a `--config` YAML file."""

    order: int = option(5, "n-gram order N (lmplz -o N), 1..10")
    output: str = option("", "the ARPA file to write (its folder must exist); required")
    test: str = option("", "optional held-out text file: its perplexity and OOV count")

    def validate(self) -> None:
        require([(1 <= self.order <= MAX_ORDER, f"order must be between 1 and {MAX_ORDER}, got {self.order}.")])


def resolve_config(source, config_file, overrides, quick: bool) -> NGramCommandConfig:
    """The command's settings; `--from` and `--quick` belong to the commands on neural models."""
    if source or quick:
        raise ConfigError("'ngram' builds a model from text files; it takes no --from or --quick.")
    return load_config(NGramCommandConfig(), config_file, overrides)


def read_sentences(path: Path) -> list[str]:
    """The normalized, non-empty lines of a UTF-8 text file."""
    if not path.exists():
        raise FileNotFoundError(f"No such file: '{path}'.")
    if not path.is_file():
        raise ValueError(f"'{path}' is not a file; give the text files themselves (e.g. {path}/*.txt).")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"'{path}' is not UTF-8 text ({err.reason} at byte {err.start}); "
                         "convert it to UTF-8 (e.g. iconv -t utf-8).") from None
    return [s for s in map(normalize, text.splitlines()) if s]


def check_paths(corpus: list[Path], config: NGramCommandConfig) -> tuple[Path, Path | None]:
    """The output and test paths, refused before any work if they cannot be what the user meant."""
    if not corpus:
        raise ValueError("'dlsuite language ngram' needs corpus text files after the command "
                         "(e.g. dlsuite language ngram corpus.txt order=5 output=model.arpa).")
    if not config.output:
        raise ValueError("'dlsuite language ngram' needs output=<file.arpa>: where to write the model.")
    output, test = Path(config.output).expanduser(), Path(config.test).expanduser() if config.test else None
    if not output.parent.is_dir():
        raise FileNotFoundError(f"The output folder '{output.parent}' does not exist; create it or choose another output=.")
    if output.is_dir():
        raise ValueError(f"output='{output}' is a folder; give a file name, e.g. {output / 'model.arpa'}.")
    for path in [*corpus, *([test] if test else [])]:
        if path.resolve() == output.resolve() or (path.exists() and output.exists() and path.samefile(output)):
            raise ValueError(f"output='{output}' is also an input ({path}); writing it would destroy the text. "
                             "Choose another output=.")
    return output, test


def encode(sentences: list[str]) -> tuple[list[np.ndarray], list[str]]:
    """Sentences -> arrays of ids into MODEL_SPECIALS + the corpus words (sorted)."""
    split = [s.split() for s in sentences]
    tokens = MODEL_SPECIALS + sorted({w for words in split for w in words})
    ids = {t: i for i, t in enumerate(tokens)}
    return [np.array([ids[w] for w in words], np.int64) for words in split], tokens


def check_corpus(corpus: list[Path], sentences: list[str], tokens: list[str], order: int) -> None:
    """An empty corpus, a single word or sentences too short for the order make no model."""
    names = ", ".join(map(str, corpus))
    if not sentences:
        raise ValueError(f"{names}: no words after normalization (empty corpus). Give text with words in it.")
    words = tokens[len(MODEL_SPECIALS):]
    if len(words) < 2:
        raise ValueError(f"{names}: the corpus has one distinct word ('{words[0]}'); an n-gram model needs "
                         "text with at least two different words.")
    longest = max(len(s.split()) for s in sentences)
    if longest + 2 < order:  # a sentence of L words holds L + 2 tokens with <s> and </s>
        raise ValueError(f"{names}: the longest sentence has {longest} word(s), too short for {order}-grams "
                         f"(with <s> and </s> it spans {longest + 2}); use order={longest + 2} or less, "
                         "or longer sentences.")


def build_arpa(corpus: list[str | Path], config: NGramCommandConfig, progress: bool | None = None) -> dict:
    """Reads the corpus files, builds the model, writes `config.output`; returns what it built.

    Args:
        corpus: list of paths. UTF-8 text files, one sentence per line.
        config: NGramCommandConfig. Order, output file and optional test file.
        progress: bool or None. Show a tqdm bar of the steps; None: only on a terminal.
    """
    from tqdm import tqdm

    corpus = [Path(p).expanduser() for p in corpus]
    output, test = check_paths(corpus, config)
    steps = ["read", "count", "smooth", "write ARPA"] + (["score test"] if test else [])
    seconds, start = {}, time.perf_counter()
    with tqdm(total=len(steps), desc="ngram", unit="step", disable=None if progress is None else not progress) as bar:

        def step(name: str, fn):
            bar.set_postfix_str(name)
            began = time.perf_counter()
            result = fn()
            seconds[name] = round(time.perf_counter() - began, 3)
            bar.update()
            return result

        sentences = step("read", lambda: [s for path in corpus for s in read_sentences(path)])
        ids, tokens = encode(sentences)
        check_corpus(corpus, sentences, tokens, config.order)
        test_sentences = read_sentences(test) if test else []
        if test and not test_sentences:
            raise ValueError(f"{test}: no words after normalization (empty test file).")
        bos, eos = tokens.index("<s>"), tokens.index("</s>")
        counts = step("count", lambda: count_ngrams(ids, config.order, len(tokens), bos, eos, np.arange(len(tokens))))
        with warnings.catch_warnings():  # the fallback is reported in the result instead
            warnings.filterwarnings("ignore", message="Kneser-Ney: .* using fallback", category=UserWarning)
            model, discounts = step("smooth", lambda: kneser_ney(counts, tokens))
        step("write ARPA", lambda: write_arpa(model, output))
        build_seconds = time.perf_counter() - start
        result = {"output": str(output), "order": config.order, "ngrams": model.size(),
                  "vocabulary_size": len(tokens), "sentences": len(sentences), "words": int(sum(map(len, ids))),
                  "discount_fallback_orders": [n + 1 for n, d in enumerate(discounts) if d.fallback],
                  "build_seconds": round(build_seconds, 3), "step_seconds": seconds}
        if test:
            result |= step("score test", lambda: score(model, test, test_sentences))
    return result


def score(model, test: Path, sentences: list[str]) -> dict:
    """Perplexity of the test sentences (OOVs as <unk>, counted) over their words and </s>."""
    encoded = model.encode(sentences)
    oov = sum(int(np.sum(s == model.unk_id)) for s in encoded)
    return {"test": str(test), "test_sentences": len(sentences), "test_words": int(sum(map(len, encoded))),
            "test_oov": oov, "test_perplexity": model.perplexity(encoded)}
