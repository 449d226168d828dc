"""Translation corpora: cleaning rules, .mo parsing, the gettext corpus build, user data, TFDS."""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # before TensorFlow is imported

import collections
import json
import shutil
import struct
import subprocess
import unicodedata
import warnings
from pathlib import Path

import pytest

from dlsuite.apps.translation import debian_packages
from dlsuite.apps.translation.corpus import load_parallel_corpus
from dlsuite.apps.translation.debian_packages import PACKAGES, PinnedVersionWarning
from dlsuite.apps.translation.gettext_catalogs import read_mo
from dlsuite.apps.translation.gettext_corpus import build_gettext_corpus
from dlsuite.apps.translation.message_filters import (
    filter_pairs,
    has_bad_length_ratio,
    has_markup,
    has_placeholder,
    is_multiline,
    is_option_text,
    strip_accelerators,
)
from dlsuite.apps.translation.pairs import (
    ParallelCorpus,
    TranslationDataError,
    split_key,
    split_of,
    split_pairs,
)
from dlsuite.apps.translation.user_data import (
    load_tfds_translation,
    read_aligned_files,
    read_pairs_table,
)
from dlsuite.shared import debian
from tests.fake_debs import build_deb, needs_dpkg


def write_mo(entries: dict[bytes, bytes], byte_order: str = "<") -> bytes:
    """A gettext .mo file: header, two tables of (length, offset), then the strings (sorted ids,
    as msgfmt writes them; no hash table, which readers do not need)."""
    keys = sorted(entries)
    start = 28 + 16 * len(keys)
    blob, originals, translations = b"", [], []
    for table, strings in ((originals, keys), (translations, [entries[k] for k in keys])):
        for s in strings:
            table.append((len(s), start + len(blob)))
            blob += s + b"\0"
    header = struct.pack(f"{byte_order}7I", 0x950412DE, 0, len(keys), 28, 28 + 8 * len(keys), 0, 0)
    tables = b"".join(struct.pack(f"{byte_order}2I", *entry) for entry in originals + translations)
    return header + tables + blob


def mo_header(charset: str = "UTF-8") -> bytes:
    return f"Content-Type: text/plain; charset={charset}\nPlural-Forms: nplurals=2; plural=n != 1;\n".encode()


# 1. Cleaning rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["%s", "Copied %d files", "%1$s of %2$s", "%(name)s is missing", "{0} items",
                                  "Hello {name}", "{}", "Argument $1", "%.*s", "'%.250s' is corrupt",
                                  "invalid %qs", "%-10s|"])
def test_placeholders_are_found(text):
    assert has_placeholder(text, "x") and has_placeholder("x", text)


@pytest.mark.parametrize("text", ["50% done", "100%", "Zoom to 50%.", "(% used)", "Save {a b}", "US $ 5"])
def test_percent_signs_in_text_are_not_placeholders(text):
    assert not has_placeholder(text, "x")


def test_markup_and_entities_but_not_comparisons():
    for text in ("<b>Bold</b> text", "Tom &amp; Jerry", "&#169; 2020", "<span weight='bold'>x</span>", "<file>"):
        assert has_markup(text, "x") and has_markup("x", text)
    for text in ("a < b and c > d", "Tom & Jerry", "Q&A"):
        assert not has_markup(text, "x")


@pytest.mark.parametrize("source, target, expected", [
    ("_File", "_Datei", ("File", "Datei")),
    ("Sa_ve", "_Speichern", ("Save", "Speichern")),  # mid-word mnemonic
    ("&Open", "Ö&ffnen", ("Open", "Öffnen")),
    ("_Open", "打开(_O)", ("Open", "打开")),  # CJK catalogs put the key in brackets
    ("Set LC_ALL=C", "Setzen Sie LC_ALL=C", ("Set LC_ALL=C", "Setzen Sie LC_ALL=C")),  # identifier
    ("Tom & Jerry", "Tom & Jerry", ("Tom & Jerry", "Tom & Jerry")),  # & before a space
    ("skip_bytes is bad", "zu_überspringende_Bytes ist schlecht",  # names: same spelling both sides
     ("skip_bytes is bad", "zu_überspringende_Bytes ist schlecht")),
    ("/_File/_Edit", "/_Datei/_Bearbeiten", ("/_File/_Edit", "/_Datei/_Bearbeiten")),
    ("A__B", "A__B", ("A__B", "A__B")),  # a doubled underscore is literal
])
def test_accelerators_are_stripped_not_dropped(source, target, expected):
    assert strip_accelerators(source, target) == expected


def test_option_text():
    for text in ("-v, --verbose  explain what is being done", "use --force to overwrite", "try -f"):
        assert is_option_text(text, "x")
    for text in ("e-mail address", "Read-only file system", "Non-interactive mode"):
        assert not is_option_text(text, "x")


def test_length_ratio_and_multiline():
    assert has_bad_length_ratio("Open the file", "Ö")  # 1/13 < 0.3
    assert has_bad_length_ratio("Hi", "Hallo Welt, wie geht es dir")  # > 3
    assert not has_bad_length_ratio("Open the file", "Die Datei öffnen")
    assert is_multiline("first line\nsecond line", "x") and is_multiline("x", "a\tb")
    assert not is_multiline("one line", "eine Zeile")


def test_filter_pairs_counts_each_rule_and_normalizes():
    decomposed = unicodedata.normalize("NFD", "Datei öffnen")
    pairs = [("Open file\n", decomposed + "\n"),  # trailing newlines are layout: stripped, kept
             ("Copy  _all   files", "_Alle Dateien kopieren"),
             ("Copied %d files", "%d Dateien kopiert"), ("<b>Bold</b>", "<b>Fett</b>"),
             ("Usage:\n  run it", "Aufruf:\n  starten"), ("--help shows help", "--help zeigt Hilfe"),
             ("OK", "ok"), ("...", "…"), (" ".join(["word"] * 26), "Wort"),
             ("Open the selected file now", "Ö"), ("Quit", "")]
    counts = collections.Counter()
    kept = list(filter_pairs(pairs, counts))
    assert kept == [("Open file", "Datei öffnen"), ("Copy all files", "Alle Dateien kopieren")]
    assert kept[0][1] == unicodedata.normalize("NFC", "Datei öffnen")
    assert dict(counts) == {"placeholder": 1, "markup": 1, "multiline": 1, "option": 1, "identical": 1,
                            "too_short": 1, "too_long": 1, "length_ratio": 1, "empty": 1,
                            "accelerators_stripped": 1}


def test_filter_pairs_passes_tags_through():
    assert list(filter_pairs([("pkg", "Open", "Öffnen")])) == [("pkg", "Open", "Öffnen")]


# 2. .mo catalogs -----------------------------------------------------------------------------------


def test_read_mo_skips_header_plurals_and_contexts():
    data = write_mo({b"": mo_header(), b"Open": "Öffnen".encode(), b"Close": b"Schlie\xc3\x9fen",
                     b"%d file\x00%d files": b"%d Datei\x00%d Dateien", b"menu\x04Open": b"\xc3\x96ffnen"})
    catalog = read_mo(data, "test.mo")
    assert catalog.messages == [("Close", "Schließen"), ("Open", "Öffnen")]  # sorted, as written
    assert dict(catalog.skipped) == {"header": 1, "plural": 1, "context": 1}


def test_read_mo_latin1_and_big_endian():
    """Old catalogs are ISO-8859-1 (gettext.GNUTranslations fails on those headers); .mo files can
    be big-endian (written on such a machine)."""
    data = write_mo({b"": mo_header("ISO-8859-1") + "Last-Translator: Jürgen\n".encode("latin-1"),
                     b"Size": "Größe".encode("latin-1")}, byte_order=">")
    assert read_mo(data).messages == [("Size", "Größe")]


def test_read_mo_errors():
    with pytest.raises(TranslationDataError, match="bad.mo: not a gettext .mo file"):
        read_mo(b"\x00" * 40, "bad.mo")
    with pytest.raises(TranslationDataError, match="short.mo: 3 bytes"):
        read_mo(b"abc", "short.mo")
    truncated = write_mo({b"Open": b"Offnen"})[:-10]
    with pytest.raises(TranslationDataError, match="cut.mo: truncated"):
        read_mo(truncated, "cut.mo")


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="msgfmt (Debian package gettext) not installed")
def test_read_mo_agrees_with_msgfmt(tmp_path):
    """Cross-check of the parser (and of write_mo's format) on a catalog msgfmt compiled."""
    po = tmp_path / "x.po"
    po.write_text('msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
                  'msgid "Open"\nmsgstr "Öffnen"\n\nmsgctxt "menu"\nmsgid "Close"\nmsgstr "Schließen"\n\n'
                  'msgid "%d file"\nmsgid_plural "%d files"\nmsgstr[0] "%d Datei"\nmsgstr[1] "%d Dateien"\n',
                  encoding="utf-8")
    subprocess.run(["msgfmt", "-o", str(tmp_path / "x.mo"), str(po)], check=True)
    catalog = read_mo((tmp_path / "x.mo").read_bytes())
    assert catalog.messages == [("Open", "Öffnen")]
    assert dict(catalog.skipped) == {"header": 1, "plural": 1, "context": 1}


# 3. The gettext corpus, from .deb files built here (no network) -------------------------------------

NOUNS = ["file", "folder", "window", "image", "layer", "message", "account", "printer", "device",
         "network", "project", "table", "calendar", "contact", "document", "archive", "playlist", "tab",
         "disk", "filter"]
VERBS = {"Open": "öffnen", "Close": "schließen", "Delete": "löschen", "Rename": "umbenennen",
         "Copy": "kopieren", "Move": "verschieben", "Print": "drucken", "Share": "teilen",
         "Export": "exportieren", "Import": "importieren", "Select": "auswählen", "Save": "speichern"}


def catalog_messages(package: str) -> dict[bytes, bytes]:
    """240 clean messages (verb x noun), a few for each rule, and one message both packages have."""
    messages = {f"{verb} the {noun} ({package})".encode(): f"Den {noun} ({package}) {german}".encode()
                for verb, german in VERBS.items() for noun in NOUNS}
    messages |= {b"": mo_header(), b"Copied %d files": b"%d Dateien kopiert", b"<b>Bold</b>": b"<b>Fett</b>",
                 b"_Quit the program": b"Programm _beenden", b"OK": b"OK",
                 b"Shared message": f"Gemeinsame Nachricht {package}".encode()}
    return messages


def make_deb(folder: Path, name: str, version: str, languages=("de", "fr")) -> Path:
    """A package with one catalog per language."""
    return build_deb(folder, name, version, {f"usr/share/locale/{lang}/LC_MESSAGES/{name}.mo":
                                             write_mo(catalog_messages(name)) for lang in languages})


FAKE_PINS = ("pkgb=2:1.0-1", "pkga=1.0")


@pytest.fixture(scope="module")
def fake_debs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("debs")
    return [make_deb(folder, *pin.split("=")) for pin in FAKE_PINS]


def cache_with(tmp_path: Path, debs) -> Path:
    (tmp_path / "debs").mkdir(parents=True)
    for deb in debs:
        shutil.copy(deb, tmp_path / "debs" / deb.name)
    return tmp_path


def no_subprocess(monkeypatch):
    """Any apt-get / dpkg-deb call fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"subprocess called: {args}")
    monkeypatch.setattr(debian.subprocess, "run", refuse)
    monkeypatch.setattr(debian.subprocess, "Popen", refuse)


@needs_dpkg
def test_gettext_build_is_deterministic_filtered_and_cached(tmp_path, fake_debs, monkeypatch):
    monkeypatch.setattr(debian.subprocess, "run", lambda *a, **k: pytest.fail(f"apt called: {a}"))
    first = build_gettext_corpus(cache_with(tmp_path / "a", fake_debs), "de", FAKE_PINS, progress=False)
    again = build_gettext_corpus(cache_with(tmp_path / "b", fake_debs), "de", FAKE_PINS[::-1], progress=False)
    folder = Path(first.extra["manifest"]).parent
    assert folder.name == Path(again.extra["manifest"]).parent.name and folder.name.startswith("gettext-de-")
    for split in ("train", "valid", "test"):  # the same bytes on disk, whatever the order of the pins
        assert (folder / f"{split}.tsv").read_bytes() == (tmp_path / "b" / folder.name / f"{split}.tsv").read_bytes()
    assert (first.source_lang, first.target_lang) == ("en", "de")

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["removed"] == {"placeholder": 2, "markup": 2, "identical": 2, "duplicate": 2,
                                   "multiline": 0, "option": 0, "empty": 0, "too_short": 0, "too_long": 0,
                                   "length_ratio": 0}
    assert manifest["skipped"] == {"header": 2} and manifest["accelerators_stripped"] == 2
    used = manifest["packages_used"]
    assert used["pkgb"]["version"] == "2:1.0-1" and used["pkgb"]["deb"] == "pkgb_2%3a1.0-1_all.deb"
    # Messages both packages have are kept once, from pkga: packages are read in sorted order.
    assert used["pkga"]["pairs"] == 242 and used["pkgb"]["pairs"] == 240
    pairs = first.train + first.valid + first.test
    assert len(pairs) == manifest["pairs"] == 482
    assert ("Shared message", "Gemeinsame Nachricht pkga") in pairs
    assert ("Quit the program", "Programm beenden") in pairs
    assert manifest["split_sizes"] == {s: len(getattr(first, s)) for s in ("train", "valid", "test")}
    assert all(len(getattr(first, s)) >= 5 for s in ("valid", "test")) and len(first.train) > 400
    for split in ("train", "valid", "test"):
        assert all(split_of(source) == split for source, _ in getattr(first, split))
    assert first.summary()["train_pairs"] == len(first.train)

    no_subprocess(monkeypatch)  # a finished corpus is read back without apt-get or dpkg-deb
    cached = build_gettext_corpus(tmp_path / "a", "de", FAKE_PINS, progress=False)
    assert (cached.train, cached.valid, cached.test) == (first.train, first.valid, first.test)


@needs_dpkg
def test_gettext_other_language_and_unknown_language(tmp_path, fake_debs, monkeypatch):
    monkeypatch.setattr(debian.subprocess, "run", lambda *a, **k: pytest.fail(f"apt called: {a}"))
    cache = cache_with(tmp_path, fake_debs)
    french = load_parallel_corpus("gettext", cache, "fr", packages=FAKE_PINS, progress=False)
    assert french.target_lang == "fr" and Path(french.extra["manifest"]).parent.name.startswith("gettext-fr-")
    with pytest.raises(TranslationDataError, match="no 'it' catalogs in the 2 pinned packages. Languages "
                                                   "with catalogs: de, fr"):
        build_gettext_corpus(cache, "it", FAKE_PINS, progress=False)
    with pytest.raises(TranslationDataError, match="not a gettext language code"):
        build_gettext_corpus(cache, "../de", FAKE_PINS, progress=False)
    with pytest.raises(TranslationDataError, match="'pkga' is not 'name=version'"):
        build_gettext_corpus(cache, "de", ("pkga",), progress=False)


def completed(args, returncode=0, stdout="", stderr=""):
    return subprocess.CompletedProcess(args, returncode, stdout, stderr)


@needs_dpkg
def test_gone_pinned_version_falls_back_to_the_candidate(tmp_path, fake_debs, monkeypatch):
    """Debian replaced the pinned version: apt-get update once, then the candidate, with a warning."""
    calls, replacement = [], fake_debs[1]  # pkga=1.0's deb stands in for the candidate's
    cache = cache_with(tmp_path, fake_debs[:1])  # pkgb only

    def fake_run(args, cwd=None, **kwargs):
        calls.append(" ".join(args[:2] + args[-1:]))
        if args[:2] == ["apt-get", "download"] and args[-1] == "pkga=1.0":
            return completed(args, 100, stderr="E: Can't find a source to download version '1.0' of 'pkga:amd64'")
        if args[:2] == ["apt-get", "download"] and args[-1] == "pkga=1.1":
            shutil.copy(replacement, Path(cwd) / "pkga_1.1_all.deb")
            return completed(args)
        if args[:2] == ["apt-cache", "policy"]:
            return completed(args, stdout="pkga:\n  Installed: (none)\n  Candidate: 1.1\n")
        return completed(args)  # apt-get update

    monkeypatch.setattr(debian.subprocess, "run", fake_run)
    with pytest.warns(PinnedVersionWarning, match=r"pkga=1.0 is no longer on the Debian mirror; using pkga=1.1"):
        built = build_gettext_corpus(cache, "de", FAKE_PINS, progress=False)
    assert calls == ["apt-get download pkga=1.0", "apt-get update -q", "apt-get download pkga=1.0",
                     "apt-cache policy pkga", "apt-get download pkga=1.1"]
    used = json.loads(Path(built.extra["manifest"]).read_text())["packages_used"]["pkga"]
    assert (used["pinned"], used["version"], used["deb"]) == ("1.0", "1.1", "pkga_1.1_all.deb")
    assert not list((cache / "debs").glob(".download-*"))  # scratch folders are removed


@needs_dpkg
def test_corrupt_deb_names_the_file(tmp_path):
    (tmp_path / "debs").mkdir()
    (tmp_path / "debs" / "pkga_1.0_all.deb").write_bytes(b"!<arch>\nnot really a package")
    with pytest.raises(TranslationDataError, match=r"pkga_1.0_all.deb.*delete the file so it is downloaded again"):
        build_gettext_corpus(tmp_path, "de", ("pkga=1.0",), progress=False)


def test_apt_failure_says_what_failed_and_that_a_cache_would_do(tmp_path, monkeypatch):
    monkeypatch.setattr(debian.subprocess, "run", lambda args, **k: completed(
        args, 100, stderr="E: Failed to fetch http://deb.debian.org/... Temporary failure resolving"))
    with pytest.raises(TranslationDataError, match=r"`apt-get download pkga=1.0` failed: E: Failed to fetch.*"
                                                   r"Temporary failure resolving.*would be reused"):
        build_gettext_corpus(tmp_path, "de", ("pkga=1.0",), progress=False)
    assert not list(tmp_path.glob("gettext-*"))  # nothing half-built is left


def test_default_packages_are_pinned():
    assert len(PACKAGES) >= 30 and len(set(PACKAGES)) == len(PACKAGES)
    assert all(debian_packages.parse_pin(pin)[1][0].isdigit() for pin in PACKAGES)


@pytest.mark.slow
def test_gettext_build_from_debian_packages(tmp_path, monkeypatch):
    """Real packages from the Debian mirror (network): a small corpus, then read back offline."""
    pins = ("grep=3.8-5", "sed=4.9-1+deb12u1", "nano=7.2-1+deb12u1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PinnedVersionWarning)  # fine if Debian moved on
        built = build_gettext_corpus(tmp_path, "de", pins, progress=False)
    manifest = json.loads(Path(built.extra["manifest"]).read_text())
    assert manifest["pairs"] > 300 and set(manifest["packages_used"]) == {"grep", "sed", "nano"}
    assert ("Save modified buffer?", "Geänderten Puffer speichern?") in built.train + built.valid + built.test
    no_subprocess(monkeypatch)
    assert build_gettext_corpus(tmp_path, "de", pins, progress=False).train == built.train


# 4. Splits -------------------------------------------------------------------------------------------


def test_split_by_hash_keeps_each_source_in_one_split():
    pairs = [(f"{verb} the {noun} number {i}", f"x{i}") for verb in VERBS for noun in NOUNS for i in range(5)]
    pairs += [("Open File…", "Datei öffnen …"), ("open file", "datei öffnen"), ("OPEN FILE.", "DATEI ÖFFNEN.")]
    assert split_key("Open File…") == split_key("open file") == split_key("OPEN FILE.") == "open file"
    splits = split_pairs(pairs)
    where = {}
    for name, split in splits.items():
        for source, _ in split:
            assert where.setdefault(split_key(source), name) == name  # case/punctuation variants together
    assert sum(len(s) for s in splits.values()) == len(pairs)
    assert 0.85 < len(splits["train"]) / len(pairs) < 0.95 and len(splits["test"]) > 40
    assert split_pairs(pairs) == splits  # deterministic
    with pytest.raises(TranslationDataError, match="3 pair.* empty"):
        split_pairs(pairs[:3])


# 5. User data ------------------------------------------------------------------------------------------


def test_read_pairs_table_tsv_and_csv(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text('en\tde\nOpen "file"\tDatei »öffnen«\n\n  Close   it \tSchließen\r\n', encoding="utf-8")
    assert read_pairs_table(tsv) == [('Open "file"', "Datei »öffnen«"), ("Close it", "Schließen")]
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text('source,target\n"Hello, world","Hallo, Welt"\nBye,Tschüss\n', encoding="utf-8-sig")
    assert read_pairs_table(csv_file) == [("Hello, world", "Hallo, Welt"), ("Bye", "Tschüss")]
    headerless = tmp_path / "plain.tsv"
    headerless.write_text("Yes\tJa\n")
    assert read_pairs_table(headerless) == [("Yes", "Ja")]


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    ("source\ttarget\n", "only a header, no pairs"),
    ("Open\tÖffnen\nClose\tSchließen\textra\n", r"bad.tsv:2: 3 field\(s\), expected 2"),
    ("Open\tÖffnen\nClose\n", r"bad.tsv:2: 1 field\(s\), expected 2"),
    ("Open\tÖffnen\n\nClose\t  \n", r"bad.tsv:3: the target sentence is empty"),
    ("\tÖffnen\n", r"bad.tsv:1: the source sentence is empty"),
])
def test_read_pairs_table_errors(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TranslationDataError, match=message):
        read_pairs_table(path)


def test_read_pairs_table_missing_and_not_utf8(tmp_path):
    with pytest.raises(TranslationDataError, match="nope.tsv: pairs table not found"):
        read_pairs_table(tmp_path / "nope.tsv")
    (tmp_path / "latin.tsv").write_bytes("Größe\tsize\n".encode("latin-1"))
    with pytest.raises(TranslationDataError, match="latin.tsv: not UTF-8"):
        read_pairs_table(tmp_path / "latin.tsv")


def test_read_aligned_files(tmp_path):
    (tmp_path / "en.txt").write_text("Open\n\nClose it\n")
    (tmp_path / "de.txt").write_text("Öffnen\n\nSchließen\n")
    assert read_aligned_files(tmp_path / "en.txt", tmp_path / "de.txt") == [("Open", "Öffnen"),
                                                                             ("Close it", "Schließen")]
    (tmp_path / "short.txt").write_text("Öffnen\n")
    with pytest.raises(TranslationDataError, match=r"en.txt has 3 lines but .*short.txt has 1"):
        read_aligned_files(tmp_path / "en.txt", tmp_path / "short.txt")
    (tmp_path / "gap.txt").write_text("Öffnen\nLücke\n\n")
    with pytest.raises(TranslationDataError, match=r"en.txt:2 / .*gap.txt:2: the source sentence is empty"):
        read_aligned_files(tmp_path / "en.txt", tmp_path / "gap.txt")


def many_pairs(n=300):
    return [(f"{verb} the {noun} {i}", f"Den {noun} {i} {german}")
            for i in range(n // 240 + 1) for verb, german in VERBS.items() for noun in NOUNS][:n]


def test_load_parallel_corpus_table_files_and_folder(tmp_path):
    pairs = many_pairs()
    (tmp_path / "all.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    table = load_parallel_corpus(f"table:{tmp_path / 'all.tsv'}", None)
    assert table.name == "table:all" and (table.source_lang, table.target_lang) == ("en", "de")
    assert sorted(table.train + table.valid + table.test) == sorted(pairs)
    (tmp_path / "en.txt").write_text("".join(s + "\n" for s, _ in pairs))
    (tmp_path / "fr.txt").write_text("".join(t + "\n" for _, t in pairs))
    files = load_parallel_corpus(f"files:{tmp_path / 'en.txt'},{tmp_path / 'fr.txt'}", None, "fr")
    assert (files.train, files.test, files.target_lang) == (table.train, table.test, "fr")

    given = tmp_path / "given"
    given.mkdir()
    for split, chunk in (("train", pairs[:200]), ("valid", pairs[200:250]), ("test", pairs[250:])):
        (given / f"{split}.tsv").write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in chunk))
    folder = load_parallel_corpus(f"folder:{given}", None)
    assert (folder.train, folder.valid, folder.test) == (pairs[:200], pairs[200:250], pairs[250:])
    (given / "test.tsv").unlink()  # a missing test split is carved from train, valid stays as given
    carved = load_parallel_corpus(f"folder:{given}", None)
    assert carved.valid == pairs[200:250] and carved.test and sorted(carved.train + carved.test) == sorted(pairs[:200])
    assert all(split_of(s) == "test" for s, _ in carved.test)


def test_load_parallel_corpus_errors(tmp_path):
    with pytest.raises(TranslationDataError, match="unknown translation corpus 'europarl'"):
        load_parallel_corpus("europarl", tmp_path)
    with pytest.raises(TranslationDataError, match="two paths separated by one comma"):
        load_parallel_corpus("files:a.txt", tmp_path)
    with pytest.raises(TranslationDataError, match="no train.tsv"):
        load_parallel_corpus(f"folder:{tmp_path}", tmp_path)
    with pytest.raises(TranslationDataError, match="translates from English"):
        load_parallel_corpus("gettext", tmp_path, source_lang="fr")


# 6. TFDS (mocked) ----------------------------------------------------------------------------------------


def test_tfds_translation_mocked(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        wmt = load_tfds_translation("wmt14_translate/de-en", data_dir=str(tmp_path))
        ted = load_parallel_corpus("tfds:ted_hrlr_translate/pt_to_en", None, "en", source_lang="pt",
                                   data_dir=str(tmp_path), max_examples=2)
        with pytest.raises(TranslationDataError, match=r"has no language 'fr'; its features are \['de', 'en'\]"):
            load_tfds_translation("wmt14_translate/de-en", data_dir=str(tmp_path), target_lang="fr")
    assert isinstance(wmt, ParallelCorpus) and wmt.name == "tfds:wmt14_translate/de-en"
    assert [len(wmt.train), len(wmt.valid), len(wmt.test)] == [6, 6, 6]
    assert [len(ted.train), len(ted.valid), len(ted.test)] == [2, 2, 2]
    assert (ted.source_lang, ted.target_lang) == ("pt", "en")
    for source, target in wmt.train + ted.train:  # mock text is random letters and spaces, normalized
        assert source == " ".join(source.split()) and target == " ".join(target.split())
