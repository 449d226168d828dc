"""Parallel corpora for translation: lists of (source, target) sentence pairs, English -> German
by default.

Sources (`load_parallel_corpus(source, cache_dir, target_lang)`):
- `gettext`: an embedded corpus of English user-interface messages and their human translations,
  from the gettext catalogs (`usr/share/locale/<lang>/LC_MESSAGES/*.mo`) inside the pinned Debian
  bookworm packages `PACKAGES`. The .deb files are downloaded with `apt-get download` and read
  without installing them, so what the machine has in /usr/share/locale never matters. Any
  language with catalogs works (`target_lang="fr"`, `"pt_BR"`, ...);
- `table:<file.tsv|csv>`: one table of pairs, split into train/valid/test by a hash of the source;
- `files:<source.txt>,<target.txt>`: two line-aligned text files, split the same way;
- `folder:<dir>`: train/valid/test tables (.tsv or .csv) used as given; a missing valid or test
  table is carved from train by hash;
- `tfds:<name>`: a TFDS translation dataset, e.g. `tfds:wmt14_translate/de-en` or
  `tfds:ted_hrlr_translate/pt_to_en` (with source_lang="pt", target_lang="en").

Pairs are Unicode NFC with whitespace collapsed. In user data a pair with an empty side is an error
naming the file and line, never dropped in silence.

The pieces: `pairs` (ParallelCorpus, TranslationDataError, hash splits), `gettext_catalogs` (.mo
parsing), `debian_packages` (the pins, apt-get download, reading .deb files), `message_filters`
(cleaning rules), `gettext_corpus` (building and caching the embedded corpus), `user_data`
(tables, files, folders, TFDS). This module picks one by the source's name.

    python -m dlsuite.apps.translation.corpus de fr     # builds (or finds) the gettext corpora
"""

from __future__ import annotations

import json
from pathlib import Path

from dlsuite.apps.translation.gettext_corpus import build_gettext_corpus
from dlsuite.apps.translation.pairs import ParallelCorpus, TranslationDataError, split_pairs
from dlsuite.apps.translation.user_data import (
    load_folder,
    load_tfds_translation,
    read_aligned_files,
    read_pairs_table,
)


def load_parallel_corpus(source: str, cache_dir, target_lang="de", **options) -> ParallelCorpus:
    """`gettext` | `table:<file>` | `files:<src>,<tgt>` | `folder:<dir>` | `tfds:<name>` -> ParallelCorpus.

    `options`: packages/progress for gettext; source_lang for table/files/folder/tfds (default "en");
    data_dir/max_examples for tfds.
    """
    kind, _, rest = source.partition(":")
    source_lang = options.pop("source_lang", "en")
    if kind == "gettext" and not rest:
        if source_lang != "en":
            raise TranslationDataError(f"the gettext corpus translates from English (its message ids); "
                                       f"got source_lang={source_lang!r}.")
        return build_gettext_corpus(cache_dir, target_lang, **options)
    if kind == "table" and rest:
        splits = split_pairs(read_pairs_table(rest), rest)
        return ParallelCorpus(f"table:{Path(rest).stem}", source_lang, target_lang, **splits)
    if kind == "files" and rest:
        if rest.count(",") != 1:
            raise TranslationDataError(f"{source!r}: files: takes two paths separated by one comma, "
                                       "files:<source.txt>,<target.txt>.")
        source_file, target_file = rest.split(",")
        splits = split_pairs(read_aligned_files(source_file, target_file), rest)
        return ParallelCorpus(f"files:{Path(source_file).stem}", source_lang, target_lang, **splits)
    if kind == "folder" and rest:
        return load_folder(rest, source_lang, target_lang)
    if kind == "tfds" and rest:
        return load_tfds_translation(rest, source_lang=source_lang, target_lang=target_lang, **options)
    raise TranslationDataError(f"unknown translation corpus {source!r}: use gettext, table:<file.tsv>, "
                               "files:<source.txt>,<target.txt>, folder:<dir> or tfds:<name>.")


def main(argv=None) -> None:
    """Builds (or finds) the gettext corpus for each language given (default: de)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("languages", nargs="*", default=["de"])
    parser.add_argument("--cache-dir", default="data_cache/translation")
    args = parser.parse_args(argv)
    for lang in args.languages:
        print(json.dumps(build_gettext_corpus(args.cache_dir, lang).summary()))


if __name__ == "__main__":
    main()
