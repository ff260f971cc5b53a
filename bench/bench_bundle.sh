#!/usr/bin/env bash
# Benchmark of the installer bundle: size, build time, cold start (launch to first live frame; launch to
# self-test pass). Prints a markdown table for docs/benchmarks.md.
#
#   bench/bench_bundle.sh            measure the existing dist/metainspect (build it first: make package)
#   bench/bench_bundle.sh --build    time a fresh build too (packaging/build.sh, smoke test included)
#
# Start-up runs the bundle as a fresh user would (no venv on PATH, empty HOME), RUNS times each (default 3),
# and reports the first run and the median. The first run follows dropping the page cache where the kernel
# allows it (root on a real machine); elsewhere it is marked "page cache warm". Display: Xvfb with the xcb
# plugin when xvfb-run exists (the real desktop path), else Qt's offscreen plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=dist/metainspect
RUNS=${RUNS:-3}
build_s="${BUILD_S:--}"
if [ "${1:-}" = --build ]; then
    start=$(date +%s.%N)
    ./packaging/build.sh > build/bench-build.log 2>&1
    build_s=$(echo "$(date +%s.%N) - $start" | bc)
fi
[ -x "$BUNDLE/metainspect" ] || { echo "no bundle in $BUNDLE: run make package first" >&2; exit 2; }
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT

frozen() { env -i PATH=/usr/bin:/bin HOME="$home" LANG=C.UTF-8 "$@"; }
if command -v xvfb-run >/dev/null; then
    display="Xvfb, xcb plugin"
    gui() { frozen xvfb-run -a -s "-screen 0 1280x800x24" "$@"; }
else
    display="offscreen plugin"
    gui() { frozen QT_QPA_PLATFORM=offscreen "$@"; }
fi
drop_caches() { sync; { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null && echo cold || echo "page cache warm"; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

first_frame() {  # seconds from exec to the first live frame drawn in the main window
    local ws t0 shown
    ws=$(mktemp -d)
    t0=$(date +%s.%N)
    shown=$(gui "$BUNDLE/metainspect" --workspace "$ws" --exit-after-first-frame 2>/dev/null \
        | sed -n 's/^first frame at //p')
    rm -rf "$ws"
    [ -n "$shown" ] || { echo "no first frame" >&2; exit 1; }
    echo "$shown - $t0" | bc
}
self_test() {  # seconds from exec to the self-test's exit (every check passed)
    local t0
    t0=$(date +%s.%N)
    frozen "$BUNDLE/metainspect" --self-test > build/bench-selftest.txt 2>/dev/null \
        || { echo "self-test failed:" >&2; cat build/bench-selftest.txt >&2; exit 1; }
    echo "$(date +%s.%N) - $t0" | bc
}

cache=$(drop_caches)
frame_first=$(first_frame)
frames=("$frame_first")
for _ in $(seq 2 "$RUNS"); do frames+=("$(first_frame)"); done
cache_st=$(drop_caches)
st_first=$(self_test)
sts=("$st_first")
for _ in $(seq 2 "$RUNS"); do sts+=("$(self_test)"); done

size_mb=$(du -sm "$BUNDLE" | cut -f1)
tarball=$(ls dist/metainspect-*-linux-x86_64.tar.gz 2>/dev/null | head -1 || true)
tar_mb=$([ -n "$tarball" ] && du -m "$tarball" | cut -f1 || echo "-")
mb() { du -sm "$BUNDLE/_internal/$1" 2>/dev/null | cut -f1 || echo 0; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); display: $display"
echo "date: $(date -u +%Y-%m-%d); command: bench/bench_bundle.sh ${1:-}"
echo
echo "| measure | value |"
echo "|---|---|"
echo "| bundle size (dist/metainspect) | $size_mb MB |"
echo "| tarball | $tar_mb MB |"
echo "| torch / of it libtorch_cpu.so | $(mb torch) MB / $(mb torch/lib/libtorch_cpu.so) MB |"
echo "| OpenCV (cv2 + its libs) | $(( $(mb cv2) + $(mb opencv_python_headless.libs) )) MB |"
echo "| PySide6 + shiboken6 | $(( $(mb PySide6) + $(mb shiboken6) )) MB |"
echo "| numpy (+ OpenBLAS) | $(( $(mb numpy) + $(mb numpy.libs) )) MB |"
echo "| lab report: matplotlib, Pillow (+ its libs), kiwisolver, contourpy, Jinja2, MarkupSafe | $(( $(mb matplotlib) + $(mb PIL) + $(mb pillow.libs) + $(mb kiwisolver) + $(mb contourpy) + $(mb jinja2) + $(mb markupsafe) )) MB |"
programs=$(for f in "$BUNDLE"/metainspect "$BUNDLE"/metainspect-lab "$BUNDLE"/metainspect.exe "$BUNDLE"/metainspect-lab.exe; do
    if [ -L "$f" ]; then printf '%s -> %s; ' "${f##*/}" "$(readlink "$f")"
    elif [ -f "$f" ]; then printf '%s %s MB; ' "${f##*/}" "$(du -m "$f" | cut -f1)"; fi
done)
echo "| executables (each embeds the compiled Python archive) | ${programs%; } |"
echo "| build (PyInstaller + smoke test) | ${build_s} s |"
echo "| launch to first live frame: first run ($cache) / median of $RUNS | $(printf '%.2f' "$frame_first") s / $(printf '%.2f' "$(printf '%s\n' "${frames[@]}" | median)") s |"
echo "| launch to self-test pass: first run ($cache_st) / median of $RUNS | $(printf '%.1f' "$st_first") s / $(printf '%.1f' "$(printf '%s\n' "${sts[@]}" | median)") s |"
