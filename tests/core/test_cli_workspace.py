"""metainspect-lab workspace check/export/import, and one-line errors for damaged data zips and a full disk."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.data import ImageFolderDataset
from core.imaging.preprocess import Preprocess
from core.storage import Workspace
from tests.conftest import REPO_ROOT
from tests.core.data.helpers import write_image_tree
from tests.core.storage.conftest import part_image


def _one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("metainspect-lab ") and all(n in err for n in needles), err
    return err


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    root = tmp_path / "ws"
    with Workspace.open(root) as ws:
        ws.classes.add("ok")
        ws.classes.add("dent", is_defect=True)
        for name in ("ok", "ok", "dent"):
            ws.examples.add(part_image(rng), name)
        (tmp_path / "m.pt").write_bytes(b"weights")
        ws.models.register(tmp_path / "m.pt", algorithm="protonet", class_names=["ok", "dent"], activate=True)
    return root


def test_check_reports_a_healthy_workspace_and_exits_0(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["workspace", "check", "--workspace", str(filled)]) == 0
    out = capsys.readouterr().out
    assert "2 classes, 3 examples, 1 model versions, 0 verdicts" in out and "ok:" in out


def test_check_finds_a_changed_file_and_exits_1(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = next((filled / "images").glob("??/*.png"))
    png.write_bytes(png.read_bytes() + b"x")
    assert main(["workspace", "check", "--workspace", str(filled)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED: refusing" in out and png.name in out and "1 problem(s) found" in out
    assert png.is_file()  # check reports, it never repairs or removes


def test_check_of_a_folder_that_is_no_workspace_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["workspace", "check", "--workspace", str(tmp_path / "nowhere")]) == 2
    _one_line_error(capsys, "is not a MetaInspect workspace")
    assert not (tmp_path / "nowhere").exists()


def test_export_then_import_into_a_new_folder(
    filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "out.zip"
    assert main(["workspace", "export", "--workspace", str(filled), "--out", str(archive)]) == 0
    target = tmp_path / "copy"
    assert main(["workspace", "import", str(archive), "--workspace", str(target)]) == 0
    assert "2 classes, 3 examples, 1 model versions" in capsys.readouterr().out
    assert main(["workspace", "check", "--workspace", str(target)]) == 0
    # A second import into the now-used workspace is refused; so is a folder holding other files.
    assert main(["workspace", "import", str(archive), "--workspace", str(target)]) == 2
    _one_line_error(capsys, "already holds data")
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    assert main(["workspace", "import", str(archive), "--workspace", str(home)]) == 2
    _one_line_error(capsys, "neither empty nor a workspace", "notes.txt")
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("kind", ["escape", "not-a-zip", "truncated"])
def test_import_of_a_bad_archive_is_one_line_exit_2(
    filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    archive = tmp_path / "a.zip"
    assert main(["workspace", "export", "--workspace", str(filled), "--out", str(archive)]) == 0
    if kind == "escape":
        with zipfile.ZipFile(archive, "a") as zf:
            zf.writestr("../../evil.pth", b"import os")
        needle = "outside the archive"
    elif kind == "not-a-zip":
        archive.write_text("hello")
        needle = "not a readable MetaInspect archive"
    else:
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
        needle = "not a readable MetaInspect archive"
    assert main(["workspace", "import", str(archive), "--workspace", str(tmp_path / "t")]) == 2
    _one_line_error(capsys, needle)
    assert not list(tmp_path.rglob("evil.pth"))


def _corrupt_deflated_zip(tmp_path: Path) -> tuple[Path, str]:
    tree = write_image_tree(tmp_path / "tree", {"a": 4, "b": 4}, size=28)
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(tree.rglob("*.png")):
            zf.write(p, p.relative_to(tree).as_posix())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("a/img001.png")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start, start + info.compress_size):
        data[i] ^= 0x5A  # garbage deflate stream: zlib.error on read
    path.write_bytes(bytes(data))
    return path, info.filename


def test_a_corrupt_entry_in_a_data_zip_is_skipped_and_named(tmp_path: Path) -> None:
    path, name = _corrupt_deflated_zip(tmp_path)
    data = ImageFolderDataset.from_path(path, Preprocess(image_size=28, channels=1))
    assert data.counts == [3, 4]
    (skipped,) = data.skipped
    assert skipped.name.endswith(name) and "cannot read" in skipped.reason


def test_disk_full_during_adapt_is_one_line_exit_2(tmp_path: Path) -> None:
    """A real kernel limit on file size (RLIMIT_FSIZE, EFBIG like a full disk) while writing --out."""
    write_image_tree(tmp_path / "tree", {"a": 3, "b": 3}, size=28)
    out = tmp_path / "adapted.pt"

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "adapt", "--checkpoint", "default", "--data", str(tmp_path / "tree"),
         "--shots", "1", "--out", str(out), "--device", "cpu", "--quiet"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False, preexec_fn=limit_file_size,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    err = result.stderr.strip()
    assert result.returncode == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "could not write" in err and str(out) in err
    assert not out.exists() and not list(tmp_path.glob(".adapted.pt.*"))
