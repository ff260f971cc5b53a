#!/usr/bin/env bash
# Build the one-folder bundle (dist/metainspect/) and, on Linux, a tarball of it.
# Windows: run the same PyInstaller step, then compile packaging/windows/metainspect.iss with Inno Setup.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "run ./scripts/setup_env.sh first (EXTRAS=dev,package)"; exit 2; }
"$PY" -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/metainspect.spec
# Smoke test: the frozen CLI starts and lists its learners without Qt or a network.
dist/metainspect/metainspect-lab list
if [ "$(uname -s)" = "Linux" ]; then
    tar -C dist -czf dist/metainspect-linux-x86_64.tar.gz metainspect
    echo "bundle: dist/metainspect-linux-x86_64.tar.gz"
fi
