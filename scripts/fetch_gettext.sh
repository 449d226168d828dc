#!/usr/bin/env bash
# Builds the translation app's embedded gettext corpora (default: de; e.g. `fetch_gettext.sh de fr`)
# into data_cache/translation: the general corpus and the held-out fine-tuning domain. The pinned
# .deb files are fetched with `apt-get download` (about 115 MB, kept in data_cache/translation/debs
# for other languages; delete them once the corpora exist). A second run finds the corpora and
# downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.." && .venv/bin/python -m dlsuite.apps.translation.data --cache-dir data_cache/translation "${@:-de}"
