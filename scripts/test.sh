#!/usr/bin/env bash
# The test command: set up, lint, then the default test run (slow tests: add -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check apps shared pipelines tests benchmarks
exec .venv/bin/python -m pytest "$@"
