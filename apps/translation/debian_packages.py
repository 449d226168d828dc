"""Pinned Debian packages and their gettext catalogs, read without installing anything.

`AptDownloader` fetches the .deb files of `PACKAGES` with `apt-get download` (the candidate
version, with a PinnedVersionWarning, where the pinned one is gone from the mirror);
`read_deb_catalogs` streams a .deb's files through `dpkg-deb --fsys-tarfile` and parses its
`usr/share/locale/<lang>/LC_MESSAGES/*.mo` catalogs. What the machine has in /usr/share/locale
never matters.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import tempfile
import warnings
from pathlib import Path

from dlsuite.apps.translation.gettext_catalogs import Catalog, read_mo
from dlsuite.apps.translation.pairs import TranslationDataError


class PinnedVersionWarning(UserWarning):
    """A pinned package version is gone from the mirror; the candidate version was used instead."""


# The versions in bookworm's apt index of 2026-07-11: the same pins give the same corpus
# on every bookworm machine. Debian replaces point-release and security versions on the mirror;
# then the candidate version is used with a PinnedVersionWarning, and the manifest says which
# version went in. Most (the desktop, -l10n and -locales packages) are Architecture: all, so
# their versions and files are the same on every architecture; an arch-specific version with a
# rebuild suffix (bash's +b13) may differ off amd64 and then falls back the same way, with the
# same catalogs (a rebuild does not change translations). Left out: iso-codes (30k country and
# language names would swamp the sentences), inkscape (20 MB, amd64 only).
PACKAGES: tuple[str, ...] = (
    # Command-line tools and libraries: error messages and help lines.
    "apt=2.6.2", "aptitude-common=0.8.13-5", "bash=5.2.15-2+b13", "binutils-common=2.40-2",
    "bison=2:3.8.2+dfsg-1+b1", "coreutils=9.1-1", "cpio=2.13+dfsg-7.1", "diffutils=1:3.8-4",
    "dpkg=1.21.23", "e2fsprogs-l10n=1.47.0-2", "findutils=4.9.0-4", "gawk=1:5.2.1-2",
    "gcc-12-locales=12.2.0-14+deb12u1", "gettext=0.21-12", "gnupg-l10n=2.2.40-1.1+deb12u2",
    "grep=3.8-5", "kbd=2.5.1-1+b1", "libc-l10n=2.36-9+deb12u14", "libgpg-error-l10n=1.46-1",
    "libparted-i18n=3.5-3+deb12u1", "login=1:4.13+dfsg1-1+deb12u2", "lynx-common=2.9.0dev.12-1",
    "make=4.3-4.1", "man-db=2.11.2-2", "mc-data=3:4.8.29-2", "nano=7.2-1+deb12u1",
    "procps=2:4.0.2-3", "psmisc=23.6-1", "sed=4.9-1+deb12u1", "sharutils=1:4.15.2-9",
    "sudo=1.9.13p3-1+deb12u4", "tar=1.34+dfsg-1.2+deb12u1", "texinfo=6.8-6+b1",
    "util-linux-locales=2.38.1-5+deb12u3", "wget=1.21.3-1+deb12u1",
    # Desktop applications: menus, dialogs, settings descriptions.
    "brasero-common=3.12.3-2", "cheese-common=43.0-1", "claws-mail-i18n=4.1.1-2",
    "evince-common=43.1-2+deb12u1", "evolution-common=3.46.4-2+deb12u1",
    "evolution-data-server-common=3.46.4-2+deb12u1", "filezilla-common=3.63.0-1+deb12u3",
    "geany-common=1.38-1", "gimp-data=2.10.34-1+deb12u10",
    "gnome-control-center-data=1:43.6-2~deb12u1", "gnome-settings-daemon-common=43.0-4",
    "gnome-shell-common=43.9-0+deb12u2", "gnome-software-common=43.5-1~deb12u2",
    "gnome-terminal-data=3.46.8-1", "gnucash-common=1:4.13-1", "gnumeric-common=1.12.55-1",
    "gparted-common=1.3.1-1", "gramps=5.1.5-1", "hexchat-common=2.16.1-1",
    "libglib2.0-data=2.74.6-2+deb12u9", "libgtk-3-common=3.24.38-2~deb12u3",
    "mutter-common=43.8-0+deb12u1", "nautilus-data=43.2-1", "orca=43.1-1", "pidgin-data=2.14.12-1",
    "poedit-common=3.2.2-1", "remmina-common=1.4.29+dfsg-1", "rhythmbox-data=3.4.6-2",
    "shotwell-common=0.30.17-1", "sylpheed-i18n=3.8.0~beta1-1+deb12u1", "thunar-data=4.18.4-1",
    "totem-common=43.0-2", "vlc-l10n=3.0.24-0+deb12u1",
)

_LOCALE_MO = re.compile(r"^\.?/?usr/share/locale/([^/]+)/LC_MESSAGES/[^/]+\.mo$")


def parse_pin(pin: str) -> tuple[str, str]:
    """'coreutils=9.1-1' -> ("coreutils", "9.1-1")."""
    name, sep, version = pin.partition("=")
    if not sep or not name or not version:
        raise TranslationDataError(f"package pin {pin!r} is not 'name=version' (e.g. 'coreutils=9.1-1'); "
                                   "`apt-cache policy <name>` shows the versions.")
    return name, version


class AptDownloader:
    """Downloads pinned .deb files into a folder, running `apt-get update` at most once."""

    def __init__(self, deb_dir: Path, cache_hint: str):
        self.deb_dir = deb_dir
        self.cache_hint = cache_hint  # said in errors: what a finished cache would have saved
        self.updated = False

    def cached(self, name: str, version: str) -> Path | None:
        quoted = version.replace(":", "%3a")  # apt-get download's file name for the epoch
        found = sorted(self.deb_dir.glob(f"{name}_{quoted}_*.deb"))
        return found[0] if found else None

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True,
                                  env={**os.environ, "LC_ALL": "C"})  # English errors to match
        except FileNotFoundError as error:
            raise TranslationDataError(
                f"`{args[0]}` not found: the gettext corpus is built from Debian packages and needs "
                f"apt-get and dpkg-deb (Debian or Ubuntu). {self.cache_hint}") from error

    def fetch(self, name: str, version: str) -> tuple[Path, str]:
        """The .deb for name=version (the pinned one, or the candidate when that is gone)."""
        deb = self.cached(name, version)
        if deb is not None:
            return deb, version
        result = self.download(name, version)
        if result.returncode != 0 and _not_found(result.stderr) and self.update():
            result = self.download(name, version)  # the local index may be older than the pin
        if result.returncode != 0 and _not_found(result.stderr):
            candidate = self.candidate(name)
            if candidate is None:
                raise TranslationDataError(
                    f"package {name!r} is not in apt's index ({result.stderr.strip()}); remove it from "
                    "`packages`, or check that /etc/apt/sources.list names bookworm main and that "
                    f"`apt-get update` works. {self.cache_hint}")
            warnings.warn(f"{name}={version} is no longer on the Debian mirror; using {name}={candidate} "
                          "instead (recorded in the manifest). Update the pin in PACKAGES to match.",
                          PinnedVersionWarning, stacklevel=4)
            deb = self.cached(name, candidate)
            if deb is not None:
                return deb, candidate
            version, result = candidate, self.download(name, candidate)
        if result.returncode != 0:
            raise TranslationDataError(
                f"`apt-get download {name}={version}` failed: {result.stderr.strip()[-500:]}. Check the "
                f"network and the Debian mirror in /etc/apt/sources.list. {self.cache_hint}")
        deb = self.cached(name, version)
        if deb is None:
            raise TranslationDataError(f"`apt-get download {name}={version}` succeeded but left no "
                                       f"{name}_*.deb in {self.deb_dir}: {result.stdout.strip()[-300:]}")
        return deb, version

    def download(self, name: str, version: str) -> subprocess.CompletedProcess:
        """apt-get download into a scratch folder, then a rename: a killed download never leaves a
        half-written .deb under the final name."""
        self.deb_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=self.deb_dir) as scratch:
            # As root, apt warns that _apt cannot write here and downloads as root: harmless.
            result = self.run("apt-get", "download", "-q", f"{name}={version}", cwd=Path(scratch))
            for deb in Path(scratch).glob("*.deb"):
                os.replace(deb, self.deb_dir / deb.name)
        return result

    def update(self) -> bool:
        if self.updated:
            return False
        self.updated = True
        result = self.run("apt-get", "update", "-q")
        if result.returncode != 0:
            warnings.warn(f"`apt-get update` failed ({result.stderr.strip()[-300:]}); using the index as "
                          "it is.", stacklevel=5)
        return result.returncode == 0

    def candidate(self, name: str) -> str | None:
        policy = self.run("apt-cache", "policy", name).stdout
        match = re.search(r"^\s*Candidate:\s*(\S+)", policy, re.MULTILINE)
        return match.group(1) if match and match.group(1) != "(none)" else None


def _not_found(stderr: str) -> bool:
    """apt's words for a package or version it cannot get from the index it has."""
    return any(text in stderr for text in ("Unable to locate package", "was not found",
                                           "Can't find a source to download"))


def _locale_catalogs(tar: tarfile.TarFile, lang: str, deb_name: str) -> tuple[dict, set[str]]:
    catalogs, languages = {}, set()
    for member in tar:
        match = _LOCALE_MO.match(member.name)
        if not (match and member.isfile()):
            continue
        languages.add(match.group(1))
        if match.group(1) == lang:
            path = member.name.lstrip("./")
            catalogs[path] = read_mo(tar.extractfile(member).read(), f"{deb_name}:{path}")
    return catalogs, languages


def read_deb_catalogs(deb: Path, lang: str) -> tuple[list[Catalog], set[str]]:
    """The `usr/share/locale/<lang>/LC_MESSAGES/*.mo` catalogs of a .deb (sorted by path), and every
    language the .deb has catalogs for.

    Streams `dpkg-deb --fsys-tarfile` through tarfile instead of `dpkg-deb -x` into a folder: the
    same files without writing e.g. gimp-data's 86 MB to disk to read 0.3 MB (4x faster here). Only
    regular files count; a catalog that is a link to another language's is that language's.
    """
    retry = "delete the file so it is downloaded again"
    try:
        process = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
    except FileNotFoundError as error:
        raise TranslationDataError("`dpkg-deb` not found: the gettext corpus reads Debian packages and "
                                   "needs dpkg (Debian or Ubuntu).") from error
    try:
        with tarfile.open(fileobj=process.stdout, mode="r|") as tar:
            catalogs, languages = _locale_catalogs(tar, lang, deb.name)
        process.stdout.read()  # the archive's end padding, so dpkg-deb exits cleanly
    except BaseException as error:
        process.kill()  # rather than reading the rest of a large package to let it finish
        stderr = process.communicate()[1].decode(errors="replace").strip()
        if isinstance(error, tarfile.TarError):
            raise TranslationDataError(f"{deb}: cannot read the package ({stderr or error}); {retry}.") from error
        raise
    stderr = process.communicate()[1].decode(errors="replace").strip()
    if process.returncode != 0:
        raise TranslationDataError(f"`dpkg-deb --fsys-tarfile {deb}` failed: {stderr}; {retry}.")
    return [catalogs[path] for path in sorted(catalogs)], languages
