"""Pinned Debian packages and their gettext catalogs, read without installing anything.

`AptDownloader` fetches the .deb files of `PACKAGES` with `apt-get download` (the candidate
version, with a PinnedVersionWarning, where the pinned one is gone from the mirror);
`read_deb_catalogs` reads a .deb's `usr/share/locale/<lang>/LC_MESSAGES/*.mo` catalogs in place
(both from shared/debian.py). What the machine has in /usr/share/locale
never matters.
"""

from __future__ import annotations

import re
from pathlib import Path

from dlsuite.apps.translation.gettext_catalogs import Catalog, read_mo
from dlsuite.apps.translation.pairs import TranslationDataError
from dlsuite.shared import debian
from dlsuite.shared.debian import PinnedVersionWarning  # noqa: F401  (re-exported for callers)

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

_LOCALE_MO = re.compile(r"^usr/share/locale/([^/]+)/LC_MESSAGES/[^/]+\.mo$")


def parse_pin(pin: str) -> tuple[str, str]:
    """'coreutils=9.1-1' -> ("coreutils", "9.1-1")."""
    return debian.parse_pin(pin, TranslationDataError)


class AptDownloader(debian.AptDownloader):
    """shared.debian's downloader raising TranslationDataError."""

    def __init__(self, deb_dir: Path, cache_hint: str):
        super().__init__(deb_dir, cache_hint, TranslationDataError)


def read_deb_catalogs(deb: Path, lang: str) -> tuple[list[Catalog], set[str]]:
    """The `usr/share/locale/<lang>/LC_MESSAGES/*.mo` catalogs of a .deb (sorted by path), and every
    language the .deb has catalogs for.

    Streamed (shared.debian.read_deb_files): gimp-data's 86 MB are not written to disk to read
    0.3 MB (4x faster here). Only regular files count; a catalog that is a link to another
    language's is that language's.
    """
    languages = set()

    def wanted(path: str) -> bool:
        match = _LOCALE_MO.match(path)
        if match:
            languages.add(match.group(1))
        return bool(match) and match.group(1) == lang

    files = debian.read_deb_files(deb, wanted, TranslationDataError)
    return [read_mo(files[path], f"{deb.name}:{path}") for path in sorted(files)], languages
