"""Minimal .deb files for tests of the data built from Debian packages (shared/debian.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian/Ubuntu)")


def build_deb(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """An Architecture: all package holding `files` ({path under /: bytes}), named as apt-get
    download names it (epoch ':' -> '%3a')."""
    root = folder / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
                                             "Maintainer: Test <test@example.org>\nDescription: test\n")
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    deb = folder / f"{name}_{version.replace(':', '%3a')}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    shutil.rmtree(root)
    return deb
