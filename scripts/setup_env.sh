#!/usr/bin/env bash
# Create .venv and install MetaInspect with everything it needs, from the project's own files.
# The pinned CPU build of torch goes in first so that the project's `torch>=` range installs nothing more.
# GPU users pick another build, e.g.:  TORCH_SPEC="torch==2.13.0 --index-url <your CUDA wheel index>" make run
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-dev}
stamp=.venv/.setup-stamp
want="$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16) $TORCH_SPEC $EXTRAS"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q $TORCH_SPEC
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
echo "$want" > "$stamp"
