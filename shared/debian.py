"""Pinned Debian packages read without installing them: `apt-get download` into a cache folder,
then `dpkg-deb --fsys-tarfile` streamed through tarfile.

Embedded corpora (the translation app's gettext catalogs, the speech app's telephone prompts) come
from Debian packages: the same pins give the same data on every bookworm machine, and nothing is
installed, so what the machine has in /usr/share never matters.

    apt = AptDownloader(Path("data_cache/debs"), "what a finished cache would have saved", MyDataError)
    deb, version = apt.fetch("asterisk-core-sounds-en", "1.6.1-1")
    files = read_deb_files(deb, lambda name: name.endswith(".wav"), MyDataError)   # {path: bytes}
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path


class PinnedVersionWarning(UserWarning):
    """A pinned package version is gone from the mirror; the candidate version was used instead."""


def parse_pin(pin: str, error: type[Exception] = ValueError) -> tuple[str, str]:
    """'coreutils=9.1-1' -> ("coreutils", "9.1-1")."""
    name, sep, version = pin.partition("=")
    if not sep or not name or not version:
        raise error(f"package pin {pin!r} is not 'name=version' (e.g. 'coreutils=9.1-1'); "
                                   "`apt-cache policy <name>` shows the versions.")
    return name, version


class AptDownloader:
    """Downloads pinned .deb files into a folder, running `apt-get update` at most once."""

    def __init__(self, deb_dir: Path, cache_hint: str, error: type[Exception] = ValueError):
        self.deb_dir = deb_dir
        self.cache_hint = cache_hint  # said in errors: what a finished cache would have saved
        self.error = error  # the caller's data error, so its command-line handling applies
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
            raise self.error(
                f"`{args[0]}` not found: the data is built from Debian packages and needs "
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
                raise self.error(
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
            raise self.error(
                f"`apt-get download {name}={version}` failed: {result.stderr.strip()[-500:]}. Check the "
                f"network and the Debian mirror in /etc/apt/sources.list. {self.cache_hint}")
        deb = self.cached(name, version)
        if deb is None:
            raise self.error(f"`apt-get download {name}={version}` succeeded but left no "
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




def read_deb_files(deb: Path, wanted: Callable[[str], bool], error: type[Exception] = ValueError) -> dict[str, bytes]:
    """The regular files of a .deb whose path (without the leading './') `wanted` accepts, by path.

    Streams `dpkg-deb --fsys-tarfile` through tarfile instead of `dpkg-deb -x` into a folder: the
    same files without writing a whole package to disk to read a part of it.
    """
    retry = "delete the file so it is downloaded again"
    try:
        process = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
    except FileNotFoundError as err:
        raise error("`dpkg-deb` not found: this data is read from Debian packages and needs dpkg "
                    "(Debian or Ubuntu).") from err
    files = {}
    try:
        with tarfile.open(fileobj=process.stdout, mode="r|") as tar:
            for member in tar:
                path = member.name.lstrip("./")
                if member.isfile() and wanted(path):
                    files[path] = tar.extractfile(member).read()
        process.stdout.read()  # the archive's end padding, so dpkg-deb exits cleanly
    except BaseException as err:
        process.kill()  # rather than reading the rest of a large package to let it finish
        stderr = process.communicate()[1].decode(errors="replace").strip()
        if isinstance(err, tarfile.TarError):
            raise error(f"{deb}: cannot read the package ({stderr or err}); {retry}.") from err
        raise
    stderr = process.communicate()[1].decode(errors="replace").strip()
    if process.returncode != 0:
        raise error(f"`dpkg-deb --fsys-tarfile {deb}` failed: {stderr}; {retry}.")
    return files
