#!/usr/bin/env bash
# One set-up for README, Dockerfile and CI: system packages for the embedded data,
# then a virtual environment (.venv) with dlsuite and its pinned dependencies.
# Safe to re-run: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
# bible-kjv: KJV text (language, speech); espeak-ng, flite, festival: the speech corpus's three
# synthesizers; festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts: festival's English
# voices (kal and ked diphones, slt HTS; apps/speech/engines.py splits them by speaker).
APT_PACKAGES="bible-kjv espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"

missing=""
for pkg in $APT_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if ! "$PYTHON" -m venv --help >/dev/null 2>&1; then
  missing="$missing python3-venv python3-pip"
fi
if [ -n "$missing" ]; then
  echo "[setup] apt-get install$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.dlsuite-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing dlsuite and pinned dependencies into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
echo "[setup] ready: $(.venv/bin/python -c 'import tensorflow as tf, keras; print("tensorflow", tf.__version__, "keras", keras.__version__)' 2>/dev/null)"
