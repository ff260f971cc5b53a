#!/usr/bin/env bash
# Build the one-folder bundle (dist/metainspect/), smoke-test it as a user without Python would run it, and, on
# Linux, pack it with its desktop entry, icon and install script into dist/metainspect-<version>-linux-x86_64.tar.gz.
# Windows: run the same PyInstaller step, then compile packaging/windows/metainspect.iss with Inno Setup.
#
# Variables: METAINSPECT_DATASETS (folder of the shared data-set zips; default ../shared/datasets),
# MAX_BUNDLE_MB (size budget of dist/metainspect, default 800), SKIP_SMOKE=1 (build only; not for releases).
# Any failure (build, self-test, evaluation, size budget) exits non-zero: a broken bundle fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=.venv/bin/python
[ -x "$PY" ] || { echo "run ./scripts/setup_env.sh first (EXTRAS=dev,package)"; exit 2; }
DATASETS=${METAINSPECT_DATASETS:-$ROOT/../shared/datasets}
MAX_BUNDLE_MB=${MAX_BUNDLE_MB:-800}
VERSION=$("$PY" -c "import importlib.metadata as m; print(m.version('metainspect'))")
BUNDLE=dist/metainspect

start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
    packaging/metainspect.spec
echo "build: $(( $(date +%s) - start )) s"

# ---- size budget ---------------------------------------------------------------------------------------------
size_mb=$(du -sm "$BUNDLE" | cut -f1)
echo "bundle: $size_mb MB in $BUNDLE (budget $MAX_BUNDLE_MB MB); largest parts:"
du -am "$BUNDLE" | sort -rn | sed -n '2,9p' | sed 's/^/    /'
if [ "$size_mb" -gt "$MAX_BUNDLE_MB" ]; then
    echo "FAIL: the bundle is over its size budget"; exit 1
fi

# ---- smoke test: the frozen programs, with no Python on PATH and a fresh HOME ------------------------------
if [ "${SKIP_SMOKE:-0}" != 1 ]; then
    home=$(mktemp -d) work=$(mktemp -d)
    trap 'rm -rf "$home" "$work"' EXIT
    frozen() {  # run a bundled program as a fresh user of an offline PC would: no venv, no user files
        env -i PATH=/usr/bin:/bin HOME="$home" LANG=C.UTF-8 TMPDIR="${TMPDIR:-/tmp}" "$@"
    }
    if frozen sh -c 'command -v python3 python' | grep -q "$ROOT/.venv"; then
        echo "FAIL: the smoke test would see the build venv"; exit 1
    fi
    echo "smoke: frozen metainspect-lab list = source list"
    want=$(.venv/bin/metainspect-lab list)
    got=$(frozen "$BUNDLE/metainspect-lab" list)
    if [ "$want" != "$got" ]; then
        printf 'FAIL: the bundle knows other names than the source tree\nsource:\n%s\nfrozen:\n%s\n' "$want" "$got"
        exit 1
    fi
    echo "$got" | sed 's/^/    /'
    # One executable serves both programs (metainspect.spec): metainspect-lab is a link to it, or metainspect --lab.
    if [ "$(frozen "$BUNDLE/metainspect" --lab list)" != "$want" ]; then
        echo "FAIL: frozen metainspect --lab list differs from metainspect-lab list"; exit 1
    fi
    echo "smoke: frozen metainspect --self-test"
    frozen "$BUNDLE/metainspect" --self-test 2> build/selftest.stderr \
        || { echo "FAIL: frozen self-test (stderr in build/selftest.stderr)"; tail -20 build/selftest.stderr; exit 1; }
    data="$DATASETS/x_sdd.zip"
    if [ -f "$data" ]; then
        echo "smoke: frozen metainspect-lab evaluate --checkpoint default on $(basename "$data")"
        result=$(frozen "$BUNDLE/metainspect-lab" evaluate --checkpoint default --data "$(realpath "$data")" \
            --ways 5 --shots 5 --episodes 20 --json --quiet)
        echo "    $result"
        # 5-way: chance is 20%; the shipped model scores far above it on steel defects it never saw.
        echo "$result" | "$PY" -c "import json,sys; r=json.load(sys.stdin); sys.exit(0 if r['accuracy'] > 0.4 else 1)" \
            || { echo "FAIL: frozen evaluation accuracy too low"; exit 1; }
        # metainspect-lab report is the only path that draws with matplotlib and renders Jinja2: prove it frozen on
        # 3 classes x 5 images (adapt on 2 shots, then the report without the shots curve).
        echo "smoke: frozen metainspect-lab adapt + report (matplotlib, Jinja2) on 3 x 5 images of $(basename "$data")"
        "$PY" - "$data" "$work/data" <<'PY'
import sys, zipfile
from collections import defaultdict
src, out = sys.argv[1], sys.argv[2]
by_class = defaultdict(list)
with zipfile.ZipFile(src) as z:
    for name in sorted(z.namelist()):
        parts = name.split("/")
        if len(parts) == 3 and parts[2].lower().endswith((".jpg", ".png")):
            by_class[parts[1]].append(name)
    for cls in sorted(by_class)[:3]:
        for name in by_class[cls][:5]:
            z.extract(name, out)
PY
        labelled="$work/data/$(ls "$work/data")"
        t0=$(date +%s)
        frozen "$BUNDLE/metainspect-lab" adapt --model default --data "$labelled" --shots 2 --out "$work/m.pt" \
            --quiet > "$work/adapt.log" 2>&1 || { echo "FAIL: frozen adapt"; tail -20 "$work/adapt.log"; exit 1; }
        frozen "$BUNDLE/metainspect-lab" report --model "$work/m.pt" --data "$labelled" --out "$work/report" \
            --repeats 0 --quiet > "$work/report.log" 2>&1 \
            || { echo "FAIL: frozen report"; tail -20 "$work/report.log"; exit 1; }
        grep -q 'data:image/png;base64' "$work/report/report.html" \
            || { echo "FAIL: the frozen report has no plot"; exit 1; }
        echo "    report.html $(du -k "$work/report/report.html" | cut -f1) KB with plots, $(ls "$work/report" | wc -l) files, $(( $(date +%s) - t0 )) s"
    else
        echo "FAIL: $data not found (set METAINSPECT_DATASETS)"; exit 1
    fi
    if [ -n "$(ls -A "$home")" ]; then
        echo "note: the frozen programs wrote into HOME:"; (cd "$home" && find . -maxdepth 3 | sed 's/^/    /')
    fi
fi

# ---- Linux tarball -------------------------------------------------------------------------------------------
if [ "$(uname -s)" = "Linux" ]; then
    cp packaging/linux/install.sh packaging/linux/metainspect.desktop packaging/linux/metainspect.svg "$BUNDLE/"
    chmod +x "$BUNDLE/install.sh"
    tarball="dist/metainspect-$VERSION-linux-x86_64.tar.gz"
    tar -C dist -czf "$tarball" metainspect
    echo "tarball: $tarball ($(du -m "$tarball" | cut -f1) MB)"
fi
echo "build and smoke test: $(( $(date +%s) - start )) s"
