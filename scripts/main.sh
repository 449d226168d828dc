#!/usr/bin/env bash
# The main job: set up, then every app end to end on embedded data (quick settings).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/dlsuite all "$@"
