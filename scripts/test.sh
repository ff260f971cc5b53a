#!/usr/bin/env bash
# The whole check: lint, format, layering contract, then every test (headless Qt).
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"
