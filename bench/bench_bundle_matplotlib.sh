#!/usr/bin/env bash
# What matplotlib + Jinja2 add to the installer bundle, with packaging/trim_matplotlib.py applied (issue 12).
#
#   bench/bench_bundle_matplotlib.sh      two tiny one-folder PyInstaller builds in a temp folder: numpy only,
#                                         and numpy + jinja2 + a matplotlib Agg PNG (the report's path); prints
#                                         both sizes, the difference, and whether the frozen plot renders.
# The full bundle (torch, Qt) is not built: the difference is what `metainspect-lab report` costs on disk.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/base.py" <<'PYEOF'
import numpy
print("ok", numpy.__version__)
PYEOF
cat > "$work/plot.py" <<'PYEOF'
import sys
import jinja2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
fig = Figure(figsize=(5, 3), dpi=100, layout="constrained")
FigureCanvasAgg(fig)
ax = fig.add_subplot()
ax.errorbar([1, 2, 5, 10], [0.5, 0.6, 0.8, 0.9], yerr=0.05, marker="o")
ax.set_xscale("log")
ax.bar([0.25, 0.75], [0.3, 0.7], width=0.4)
ax.set(xlabel="support images per class (K)", ylabel="accuracy", title="frozen Agg")
fig.savefig(sys.argv[1], format="png")
print("ok", jinja2.Template("{{ x }}").render(x="jinja2"))
PYEOF
cat > "$work/mini.spec" <<PYEOF
import sys
from fnmatch import fnmatch
sys.path.insert(0, "$PWD/packaging")
import trim_matplotlib as T
import shutil, subprocess
from pathlib import Path
def keep(e):
    return not any(fnmatch(e[0].replace("\\\\", "/"), p) for p in T.DROP)
def stripped(entry):
    name, source, kind = entry
    if not any(fnmatch(name.replace("\\\\", "/"), p) for p in T.STRIP) or not shutil.which("strip"):
        return entry
    target = Path(workpath) / "stripped" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["strip", "--strip-unneeded", "-o", str(target), source], check=True)
    return (name, str(target), kind)
for name in ("base", "plot"):
    a = Analysis(["$work/%s.py" % name], excludes=T.EXCLUDES + ["torch", "PySide6", "cv2"], hooksconfig=T.HOOKSCONFIG)
    a.binaries = [stripped(e) for e in a.binaries if keep(e)]
    a.datas = [e for e in a.datas if keep(e)]
    exe = EXE(PYZ(a.pure), a.scripts, [], exclude_binaries=True, name=name, upx=False)
    COLLECT(exe, a.binaries, a.datas, name=name, upx=False)
PYEOF
"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath "$work/dist" --workpath "$work/build" "$work/mini.spec" >/dev/null
base=$(du -sm "$work/dist/base" | cut -f1)
plot=$(du -sm "$work/dist/plot" | cut -f1)
"$work/dist/plot/plot" "$work/frozen.png"
file "$work/frozen.png" | grep -q "PNG image" && rendered=yes || rendered=no
echo "| build | MB on disk |"
echo "|---|---|"
echo "| numpy only | $base |"
echo "| numpy + jinja2 + matplotlib Agg (trimmed) | $plot |"
echo "| added by the report's plotting and templating | **$((plot - base))** |"
echo "frozen plot renders: $rendered"
du -sm "$work/dist/plot/_internal/"* | sort -n | tail -8
