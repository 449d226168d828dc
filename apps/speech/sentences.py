"""Sentences for the synthetic speech corpus and its fusion LM, from two text sources:

- `kjv`: clauses of 3-8 words cut from King James Bible verses (kjv_clauses.py), split by chapter;
- `gettext`: English user-interface messages of the translation app's gettext corpus (built by
  `bash scripts/fetch_gettext.sh de` into data_cache/translation), in its train/valid/test split:
  messages of 2-15 words that a synthesizer reads as written, so no digits, placeholders, symbols,
  file names, acronyms (two capitals in a word), option flags, lone letters but a/i, vowel-less
  abbreviations (ctrl, tty), or words found in fewer than 3 messages (readpsffont).

The held-out domain is the translation app's fine-tuning packages (gnucash, gnumeric: accounting
and spreadsheets): their messages, minus any sentence of the other pools, are the `ood` pool, in
neither the speech training text nor the LM text. Pools are disjoint across splits *and* sources:
no valid, test or ood sentence is a training sentence of any source.

A gettext corpus that is not built is a warning, not an error: `gettext` falls back to the KJV
and there is no out-of-domain split, so a machine set up with scripts/setup.sh alone still
trains. The corpus's manifest names the sources it used.

    python -c "from dlsuite.apps.speech.sentences import *; print(sentence_pools(('kjv', 'gettext'), 'data_cache/translation').sizes())"
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import re
import warnings
from pathlib import Path

import numpy as np

from dlsuite.apps.speech.kjv_clauses import kjv_sentence_pools
from dlsuite.apps.speech.transcripts import SpeechDataError, normalize_transcript

TEXT_SOURCES = ("kjv", "gettext")
GETTEXT_LANG = "de"  # the corpus fetch_gettext.sh builds by default; only its English side is used
GETTEXT_WORDS = (2, 15)
MIN_WORD_MESSAGES = 3
SPLITS = ("train", "valid", "test")
_UNSPOKEN = re.compile(r"[^A-Za-z\s',.!?:;()\"-]")  # digits, %s {0} $1 <b> & _ /, other scripts
_JOINED = re.compile(r"\w[.:]+\w|(^|\s)-|--")  # file.txt, e.g., http://, 10:30; --flags
# Words without a, e, i, o, u that are words (the rest are abbreviations: tty, pty, sysfs, ctrl).
_Y_WORDS = frozenset("by my thy why try dry cry fly fry ply pry shy sky sly spy sty wry gym hymn lynx myth myrrh "
                     "crypt rhythm sync".split())
_ACRONYM = re.compile(r"\b\w*[A-Z]\w*[A-Z]")  # URL, GnuCash, mIRC: spelled out, or said another way


@dataclasses.dataclass(frozen=True)
class SentencePools:
    """Candidate sentences: `splits[source][split]`, and `ood` (the held-out domain, () without it).

    `sources` are the sources used (gettext is dropped when not built); `origin` says where the
    gettext text came from (its corpus folders and ids), for the speech corpus's manifest."""

    sources: tuple[str, ...]
    splits: dict
    ood: tuple[str, ...]
    origin: dict

    def sizes(self) -> dict:
        return {**{s: {k: len(v) for k, v in p.items()} for s, p in self.splits.items()}, "ood": len(self.ood)}


def speakable(message: str) -> str | None:
    """The normalized message if a synthesizer reads it as written and it has 2-15 words, else None."""
    if _UNSPOKEN.search(message) or _JOINED.search(message) or _ACRONYM.search(message):
        return None
    try:
        text = normalize_transcript(message)
    except SpeechDataError:
        return None
    words = text.split()
    if not GETTEXT_WORDS[0] <= len(words) <= GETTEXT_WORDS[1]:
        return None
    if any((len(w) == 1 and w not in "ai") or not (re.search("[aeiou]", w) or w in _Y_WORDS) for w in words):
        return None
    return text


def _common_words_only(splits: dict[str, list[str]]) -> dict[str, list[str]]:
    """Speakable messages per split whose every word is in >= MIN_WORD_MESSAGES messages (all splits)."""
    spoken = {split: [t for t in map(speakable, messages) if t] for split, messages in splits.items()}
    counts = collections.Counter(w for texts in spoken.values() for t in texts for w in set(t.split()))
    return {split: list(dict.fromkeys(t for t in texts if min(counts[w] for w in t.split()) >= MIN_WORD_MESSAGES))
            for split, texts in spoken.items()}


def find_gettext_corpora(gettext_dir) -> dict | None:
    """{"general": folder, "domain": folder} of the built gettext corpora (the translation app's
    general packages and its held-out domain), or None when either is missing. Found by their
    manifests, so nothing is built or downloaded here."""
    # imported here: the translation app loads TensorFlow
    from dlsuite.apps.translation import gettext_corpus
    from dlsuite.apps.translation.data import DOMAIN_PACKAGES, GENERAL_PACKAGES
    from dlsuite.apps.translation.debian_packages import PACKAGES, parse_pin

    wanted = {"general": sorted(GENERAL_PACKAGES),
              "domain": sorted(p for p in PACKAGES if parse_pin(p)[0] in DOMAIN_PACKAGES)}
    found = {}
    for manifest_path in sorted(Path(gettext_dir).glob(f"gettext-{GETTEXT_LANG}-*/manifest.json")):
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("format") != gettext_corpus.CORPUS_FORMAT:
            continue
        if not all((manifest_path.parent / f"{split}.tsv").is_file() for split in SPLITS):
            continue
        for name, packages in wanted.items():
            if manifest.get("packages") == packages:
                found[name] = manifest_path.parent
    return found if len(found) == 2 else None


def _english(folder: Path) -> dict[str, list[str]]:
    from dlsuite.apps.translation.user_data import read_pairs_table

    return {split: [source for source, _ in read_pairs_table(folder / f"{split}.tsv")] for split in SPLITS}


def available_sources(sources, gettext_dir) -> tuple[tuple[str, ...], dict]:
    """The sources that can be used, and the gettext corpora (for the manifest; {} without them).
    A missing gettext corpus is a warning: the KJV alone is used."""
    corpora = find_gettext_corpora(gettext_dir) or {}
    if "gettext" in sources and not corpora:
        warnings.warn(f"text_sources includes gettext, but no built gettext corpus ({GETTEXT_LANG}) is in "
                      f"{gettext_dir}: the synthetic corpus speaks KJV text only and has no out-of-domain test "
                      "split. Run `bash scripts/fetch_gettext.sh de` to add it (or set text_sources=kjv).",
                      stacklevel=2)
        sources = tuple(s for s in sources if s != "gettext") or ("kjv",)
    origin = {name: {"folder": folder.name, "corpus_id": json.loads((folder / "manifest.json").read_text())["corpus_id"]}
              for name, folder in corpora.items()}
    return tuple(sources), origin


@functools.lru_cache(maxsize=4)
def sentence_pools(sources: tuple[str, ...], gettext_dir: str) -> SentencePools:
    """Candidate sentences per source and split, disjoint across splits and sources, and the ood pool."""
    used, origin = available_sources(sources, gettext_dir)
    raw = {"kjv": dict(kjv_sentence_pools())}
    ood: list[str] = []
    if origin:
        corpora = find_gettext_corpora(gettext_dir)
        raw["gettext"] = _common_words_only(_english(corpora["general"]))
        ood = [t for texts in _common_words_only(_english(corpora["domain"])).values() for t in texts]
    seen: set[str] = set()
    splits = {source: {} for source in raw}
    for split in SPLITS:  # train first: a sentence any source trains on is no source's valid/test sentence
        for source, pools in raw.items():
            splits[source][split] = tuple(s for s in dict.fromkeys(pools[split]) if s not in seen)
        seen.update(s for source in raw for s in splits[source][split])
    return SentencePools(used, {s: splits[s] for s in used}, tuple(s for s in dict.fromkeys(ood) if s not in seen),
                         origin)


def _shares(n: int, k: int) -> list[int]:
    """n split into k near-equal parts, the larger ones first."""
    return [n // k + (i < n % k) for i in range(k)]


def _draw(pool: tuple[str, ...], n: int, rng: np.random.Generator, what: str) -> list[str]:
    if n > len(pool):
        raise SpeechDataError(f"{what}: {n} sentences asked for, but the pool has {len(pool)}; lower num_sentences.")
    return [pool[i] for i in sorted(rng.choice(len(pool), n, replace=False))]


def choose_sentences(num_sentences: int, pools: SentencePools, rng: np.random.Generator) -> dict[str, list]:
    """(sentence, source) pairs per split: 10% (at least one) each for valid and test, an equal share
    of each split from every source; and as many `ood` sentences as test ones when there is a domain."""
    if num_sentences < 3:
        raise SpeechDataError(f"num_sentences={num_sentences}: need at least 3 (one per split).")
    n_valid = n_test = max(1, round(0.1 * num_sentences))
    counts = {"train": num_sentences - n_valid - n_test, "valid": n_valid, "test": n_test}
    chosen = {}
    for split, n in counts.items():
        chosen[split] = [(text, source) for source, share in zip(pools.sources, _shares(n, len(pools.sources)), strict=True)
                         for text in _draw(pools.splits[source][split], share, rng, f"{source} {split}")]
    if pools.ood:
        chosen["ood"] = [(text, "gettext-domain") for text in _draw(pools.ood, n_test, rng, "out-of-domain")]
    return chosen


def training_text(sources, gettext_dir) -> list[str]:
    """LM text of the training side of `sources`: the KJV's training chapters (whole verses) and the
    gettext training messages; never a valid, test or out-of-domain sentence."""
    pools = sentence_pools(tuple(sources), str(gettext_dir))
    held_out = {s for source in pools.splits.values() for split in ("valid", "test") for s in source[split]}
    held_out.update(pools.ood)
    sentences = []
    if "kjv" in pools.sources:
        # imported here: pipelines.text loads TensorFlow
        from dlsuite.pipelines.text import load_kjv

        for verse in load_kjv().train:
            try:
                sentences.append(normalize_transcript(verse))
            except SpeechDataError:
                continue  # a verse with characters we cannot spell (none in the KJV, but be safe)
    if "gettext" in pools.sources:
        sentences.extend(pools.splits["gettext"]["train"])
    return [s for s in sentences if s not in held_out]
