"""The embedded gettext corpus: English user-interface messages and their human translations from
the catalogs of the pinned Debian packages, filtered, deduplicated, split, and cached as
`<cache_dir>/gettext-<lang>-<hash>/` (train/valid/test.tsv + manifest.json)."""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path

from dlsuite.apps.translation.debian_packages import (
    PACKAGES,
    AptDownloader,
    parse_pin,
    read_deb_catalogs,
)
from dlsuite.apps.translation.message_filters import (
    CLEAN_RULES,
    MAX_LENGTH_RATIO,
    MAX_WORDS,
    MIN_LENGTH_RATIO,
    RAW_RULES,
    filter_pairs,
)
from dlsuite.apps.translation.pairs import (
    LANGUAGE_CODE,
    SPLITS,
    TEST_PERCENT,
    VALID_PERCENT,
    ParallelCorpus,
    TranslationDataError,
    split_pairs,
)
from dlsuite.apps.translation.user_data import read_pairs_table
from dlsuite.shared.runs import atomic_write_json, build_cache_folder

CORPUS_FORMAT = 1  # bump when parsing, cleaning or splitting changes, so old caches are not reused


def _settings(target_lang: str, packages) -> dict:
    return {"format": CORPUS_FORMAT, "source_lang": "en", "target_lang": target_lang,
            "packages": sorted(packages), "max_words": MAX_WORDS,
            "length_ratio": [MIN_LENGTH_RATIO, MAX_LENGTH_RATIO],
            "split_percent": {"valid": VALID_PERCENT, "test": TEST_PERCENT}}


def _finished_manifest(folder: Path) -> dict | None:
    """The manifest of a complete corpus in `folder`, or None (absent, unreadable, files missing)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("format") != CORPUS_FORMAT or not all((folder / f"{s}.tsv").is_file() for s in SPLITS):
        return None
    return manifest


def _corpus_from_folder(folder: Path, manifest: dict) -> ParallelCorpus:
    splits = {split: read_pairs_table(folder / f"{split}.tsv") for split in SPLITS}
    return ParallelCorpus(folder.name, manifest["source_lang"], manifest["target_lang"], **splits,
                          extra={"manifest": str(folder / "manifest.json")})


def _write_tsv(path: Path, pairs, source_lang: str, target_lang: str) -> None:
    """A header naming the languages, then one `source<TAB>target` line per pair (no quoting:
    the filters guarantee neither side holds a tab or a newline)."""
    lines = [f"{source_lang}\t{target_lang}"] + [f"{s}\t{t}" for s, t in pairs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _collect_messages(packages, target_lang: str, apt: AptDownloader, progress: bool):
    """(package, msgid, msgstr) in sorted-package, sorted-catalog, catalog order; per-package info;
    parse skip counts; and every language seen (for the error when `target_lang` has none)."""
    from tqdm import tqdm

    messages, used, skipped, languages = [], {}, collections.Counter(), set()
    pins = sorted(parse_pin(pin) for pin in packages)
    for name, version in tqdm(pins, desc=f"gettext {target_lang}", unit="pkg", disable=not progress):
        deb, version_used = apt.fetch(name, version)
        catalogs, package_languages = read_deb_catalogs(deb, target_lang)
        languages |= package_languages
        count = 0
        for catalog in catalogs:
            skipped.update(catalog.skipped)
            messages.extend((name, msgid, msgstr) for msgid, msgstr in catalog.messages)
            count += len(catalog.messages)
        used[name] = {"pinned": version, "version": version_used, "deb": deb.name,
                      "sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
                      "catalogs": [c.path.rsplit("/", 1)[-1] for c in catalogs],
                      "messages": count}
    return messages, used, skipped, languages


def _first_copies(filtered, counts: collections.Counter, used: dict) -> list[tuple[str, str]]:
    """The first pair of each source (packages sorted by name, then catalog order); counts the
    others as `counts["duplicate"]` and each package's pairs as `used[package]["pairs"]`."""
    pairs, seen, per_package = [], set(), collections.Counter()
    for package, source, target in filtered:
        if source in seen:
            counts["duplicate"] += 1
            continue
        seen.add(source)
        pairs.append((source, target))
        per_package[package] += 1
    for name in used:
        used[name]["pairs"] = per_package[name]
    return pairs


def _check_arguments(cache_dir, target_lang: str) -> None:
    if cache_dir is None:
        raise TranslationDataError("the gettext corpus needs a cache_dir to build into (e.g. "
                                   "'data_cache/translation').")
    if not LANGUAGE_CODE.match(target_lang):
        raise TranslationDataError(f"target_lang {target_lang!r} is not a gettext language code such as "
                                   "'de', 'fr', 'pt_BR' or 'sr@latin'.")


def build_gettext_corpus(cache_dir, target_lang: str = "de", packages=PACKAGES,
                         progress: bool = True) -> ParallelCorpus:
    """English -> `target_lang` pairs from the pinned packages' catalogs, built once into
    `<cache_dir>/gettext-<lang>-<hash>/` (train/valid/test.tsv + manifest.json) and reused.

    Built into a temporary folder and renamed into place with manifest.json written last, so a
    killed build is never mistaken for a finished one. The .deb files stay in `<cache_dir>/debs/`
    for the next language.
    """
    _check_arguments(cache_dir, target_lang)
    settings = _settings(target_lang, packages)
    corpus_id = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    final_dir = Path(cache_dir) / f"gettext-{target_lang}-{corpus_id}"
    manifest = _finished_manifest(final_dir)
    if manifest is not None:
        return _corpus_from_folder(final_dir, manifest)

    apt = AptDownloader(Path(cache_dir) / "debs", f"A finished corpus in {final_dir} would be reused "
                        "without any download: build it where the mirror is reachable "
                        "(scripts/fetch_gettext.sh) and copy the folder.")
    messages, used, skipped, languages = _collect_messages(packages, target_lang, apt, progress)
    if not messages:
        raise TranslationDataError(
            f"no {target_lang!r} catalogs in the {len(used)} pinned packages. Languages with catalogs: "
            f"{', '.join(sorted(languages)) or 'none'}.")
    counts = collections.Counter()
    pairs = _first_copies(filter_pairs(messages, counts), counts, used)
    splits = split_pairs(pairs, f"gettext {target_lang}")
    filters = {name: counts[name] for name, _ in RAW_RULES + CLEAN_RULES}
    manifest = {**settings, "corpus_id": corpus_id, "packages_used": used,
                "messages": len(messages), "skipped": dict(sorted(skipped.items())),
                "removed": {**filters, "duplicate": counts["duplicate"]},
                "accelerators_stripped": counts["accelerators_stripped"], "pairs": len(pairs),
                "split_sizes": {split: len(p) for split, p in splits.items()}}
    with build_cache_folder(final_dir, _finished_manifest) as tmp_dir:
        for split, split_pairs_ in splits.items():
            _write_tsv(tmp_dir / f"{split}.tsv", split_pairs_, "en", target_lang)
        atomic_write_json(tmp_dir / "manifest.json", manifest)
    return _corpus_from_folder(final_dir, _finished_manifest(final_dir) or manifest)
