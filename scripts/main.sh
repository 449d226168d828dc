#!/usr/bin/env bash
# The main job: set up, then every app end to end on embedded data (quick settings).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch_gettext.sh de   # the translation app's embedded corpus (skipped when built)
exec .venv/bin/dlsuite all "$@"
