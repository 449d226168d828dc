#!/usr/bin/env bash
# Builds KenLM's lmplz and query (C++) into .kenlm/bin, only for the comparison benchmark and the
# slow compatibility test: dlsuite itself never needs KenLM. The source is PyPI's kenlm 0.3.0
# sdist (PyPI is reachable where GitHub is not); Boost comes from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="$PWD/.kenlm"
[ -x "$PREFIX/bin/lmplz" ] && [ -x "$PREFIX/bin/query" ] && { echo "KenLM already built in $PREFIX/bin"; exit 0; }
if command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q cmake g++ libboost-program-options-dev \
    libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev >/dev/null
fi
URL="https://files.pythonhosted.org/packages/02/6e/f4e159cef39ea4ef2244b4aa32857d447d60a5d0ee269e1b1f8d3723c03e/kenlm-0.3.0.tar.gz"
SHA256="c4628bb9fb63c8a6f9240035b8b037385cfc404cb72e933cf48878291edac1e8"
mkdir -p "$PREFIX/src" && cd "$PREFIX/src"
curl -sSLo kenlm.tar.gz "$URL"
echo "$SHA256  kenlm.tar.gz" | sha256sum -c - >/dev/null
tar xzf kenlm.tar.gz && mkdir -p kenlm-0.3.0/build && cd kenlm-0.3.0/build
cmake .. -DCMAKE_BUILD_TYPE=Release >/dev/null
make -j"$(nproc)" lmplz query >/dev/null
mkdir -p "$PREFIX/bin" && cp bin/lmplz bin/query "$PREFIX/bin/"
echo "KenLM built: $PREFIX/bin/lmplz"
