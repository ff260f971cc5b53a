"""Make a real lab report and photograph it in a real browser: docs/screenshots/lab-report.png (issue 12).

Adapts the shipped model to 5 magnetic-tile images per class (3 classes, 24 images each, from
../shared/datasets/magnetic_tile.zip), writes the report with ``metainspect-lab report``, and opens
report.html in headless Chromium from the system packages (``apt-get install chromium``), offline, to a PNG of
the whole page. Exits 2 with one line when the data set or a browser is missing.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/report_screenshot.py [--out docs/screenshots/lab-report.png]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "magnetic_tile.zip"
CLASSES = ("MT_Blowhole", "MT_Crack", "MT_Free")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome-headless-shell")


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def extract(dest: Path, per_class: int) -> Path:
    with zipfile.ZipFile(DATASET) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".jpg") and "/images/" in n)
        for cls in CLASSES:
            for n in [x for x in names if f"/images/{cls}/" in x][:per_class]:
                target = dest / cls / Path(n).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(n))
    return dest


def screenshot(browser: str, html: Path, png: Path, width: int, height: int) -> None:
    """Headless Chromium, no network, no GPU: the page as a user's browser draws it."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run",
            "--no-proxy-server", "--proxy-bypass-list=*", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", f"--screenshot={png}", html.resolve().as_uri(),
        ]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots" / "lab-report.png")
    ap.add_argument("--per-class", type=int, default=24)
    ap.add_argument("--width", type=int, default=1120)
    ap.add_argument("--height", type=int, default=4600)
    args = ap.parse_args()
    browser = find_browser()
    if browser is None:
        print(
            f"report_screenshot: no browser found ({', '.join(BROWSERS)}); apt-get install chromium",
            file=sys.stderr,
        )
        return 2
    if not DATASET.is_file():
        print(f"report_screenshot: {DATASET} not found", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from core.cli import main as lab

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = extract(work / "data", args.per_class)
        model = work / "adapted.pt"
        if (
            lab(["adapt", "--model", "default", "--support", str(data), "--shots", "5", "--out", str(model)])
            != 0
        ):
            return 1
        report = work / "report"
        argv = ["report", "--model", str(model), "--data", str(data), "--out", str(report),
                "--shots-list", "1,2,5,10", "--repeats", "5"]  # fmt: skip
        if lab(argv) != 0:
            return 1
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(browser, report / "report.html", args.out, args.width, args.height)
    print(f"{args.out} ({args.out.stat().st_size // 1024} KiB) from {browser}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
