"""metainspect-lab adapt -> run -> report on a few real magnetic-tile images; bad input is one line, exit 2."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.config import DEFAULT_ADAPT_STEPS
from core.storage.checkpoint import load_checkpoint
from core.storage.model_ref import load_model
from core.storage.workspace import Workspace

DATASET = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "magnetic_tile.zip"
CLASSES = ("MT_Blowhole", "MT_Crack", "MT_Free")
PER_CLASS, SHOTS = 6, 2
SECTIONS = (
    "summary", "data", "per-class", "confusion", "calibration", "thresholds", "mistakes", "shots-curve",
    "definitions", "provenance",
)  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real images (6 per class) in ``clean/``; ``eval/`` adds a broken image and a class the model lacks;
    the model is adapted once, on 2 per class, and recorded in a workspace."""
    if not DATASET.is_file():
        pytest.skip(f"{DATASET} not available")
    root = tmp_path_factory.mktemp("lab")
    with zipfile.ZipFile(DATASET) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".jpg") and "/images/" in n)
        for cls in (*CLASSES, "MT_Fray"):
            wanted = [n for n in names if f"/images/{cls}/" in n][: PER_CLASS if cls != "MT_Fray" else 2]
            for n in wanted:
                target = root / ("clean" if cls != "MT_Fray" else "extra") / cls / Path(n).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(n))
    shutil.copytree(root / "clean", root / "eval")
    shutil.copytree(root / "extra" / "MT_Fray", root / "eval" / "MT_Fray")
    (root / "eval" / "MT_Free" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    model = root / "adapted.pt"
    argv = ["adapt", "--model", "default", "--support", str(root / "clean"), "--shots", str(SHOTS), "--out",
            str(model), "--workspace", str(root / "ws"), "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    return {"root": root, "model": model, "clean": root / "clean", "eval": root / "eval", "ws": root / "ws"}


def test_adapt_records_support_hashes_and_a_workspace_version(lab: dict[str, Path]) -> None:
    ck = load_checkpoint(lab["model"])
    support = ck.provenance["support_images"]
    assert ck.class_names == list(CLASSES) and len(support) == SHOTS * len(CLASSES)
    assert ck.adapt_steps is DEFAULT_ADAPT_STEPS is None  # the app's default: the model's own steps
    with Workspace.open(lab["ws"]) as ws:
        version = ws.models.active()
        assert version is not None and version.sha256 == ck.sha256
        assert len(ws.models.training_examples(version.id)) == SHOTS * len(CLASSES)
        assert {c.name: c.is_defect for c in ws.classes.list()} == {
            "MT_Blowhole": True, "MT_Crack": True, "MT_Free": False
        }  # fmt: skip
    assert load_model("active", workspace=lab["ws"]).sha256 == ck.sha256


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[str] = []
        self.images = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key == "id" and value:
                self.ids.add(value)
            if key in ("src", "href", "srcset", "action", "data") and value is not None:
                self.refs.append(value)
        self.images += tag == "img"


def test_report_has_every_section_references_nothing_outside_and_excludes_support(
    lab: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    argv = ["report", "--model", str(lab["model"]), "--data", str(lab["eval"]), "--out", str(out),
            "--shots-list", "1,2", "--repeats", "2", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(html)
    parser.close()
    assert set(SECTIONS) <= parser.ids
    assert parser.images >= 4  # reliability, thresholds, shots curve, at least one mistake or more
    assert all(r.startswith(("data:", "#")) for r in parser.refs), [r[:40] for r in parser.refs]
    assert "http://" not in html and "https://" not in html and "@import" not in html

    m = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "per_class", "confusion", "thresholds", "shots_curve", "provenance"} <= set(m)
    data = m["data"]
    assert data["support_excluded"] == SHOTS * len(CLASSES)
    assert data["scored"] == (PER_CLASS - SHOTS) * len(CLASSES)
    assert [u["class"] for u in data["unknown_classes"]] == ["MT_Fray"]
    assert [Path(u["file"]).name for u in data["unreadable"]] == ["broken.jpg"]
    assert m["accuracy"]["total"] == data["scored"] and 0 <= m["accuracy"]["value"] <= 1
    assert (
        len(m["per_class"]) == 3
        and np.array(m["confusion"]["rows_true_columns_predicted"]).sum() == data["scored"]
    )
    assert m["thresholds"]["ok_class"] == "MT_Free" and m["thresholds"]["suggested"] is not None
    assert [p["shots"] for p in m["shots_curve"]] == [1, 2]
    assert m["provenance"]["model_sha256"] == load_checkpoint(lab["model"]).sha256

    support = {Path(s["file"]).name for s in load_checkpoint(lab["model"]).provenance["support_images"]}
    with (out / "predictions.csv").open() as f:
        scored = {Path(r["file"]).name for r in csv.DictReader(f)}
    assert len(scored) == data["scored"] and not scored & support
    for name in ("per_class.csv", "confusion.csv", "thresholds.csv", "shots_curve.csv"):
        assert (out / name).stat().st_size > 0


def test_run_csv_round_trips_and_matches_the_report(lab: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    argv = ["run", "--model", str(lab["model"]), "--data", str(lab["eval"]), "--out", str(out), "--batch", "4",
            "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == PER_CLASS * len(CLASSES) + 2 + 1  # + MT_Fray + broken.jpg, in name order
    assert [r["file"] for r in rows] == sorted(r["file"] for r in rows)
    broken = [r for r in rows if r["error"]]
    assert [Path(r["file"]).name for r in broken] == ["broken.jpg"] and broken[0]["verdict"] == ""
    for r in rows:
        if r["error"]:
            continue
        probs = np.array([float(r[f"p_{c}"]) for c in CLASSES])
        assert probs.sum() == pytest.approx(1.0, abs=1e-4)
        assert r["predicted"] == CLASSES[int(probs.argmax())] and float(r["confidence"]) == pytest.approx(
            probs.max()
        )
        assert r["verdict"] in {"OK", "REJECT", "CHECK"}
        assert (r["verdict"] == "OK") <= (r["predicted"] == "MT_Free")


@pytest.mark.parametrize(
    ("command", "case", "message"),
    [
        ("report", "empty", "no image folders"),
        ("run", "empty", "no images found"),
        ("report", "not_a_model", "not a readable checkpoint"),
        ("run", "not_a_model", "not a readable checkpoint"),
        ("report", "unwritable", "cannot write to"),
        ("run", "unwritable", "cannot write to"),
        ("adapt", "unwritable", "cannot write to"),
        ("report", "version_without_workspace", "add --workspace"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    command: str,
    case: str,
    message: str,
    lab: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.pt").write_text("not a model")
    (tmp_path / "afile").write_text("x")
    model = {"not_a_model": str(tmp_path / "notes.pt"), "version_without_workspace": "active"}.get(
        case, str(lab["model"])
    )
    data = str(tmp_path / "empty") if case == "empty" else str(lab["clean"])
    out = tmp_path / ("afile/sub/out.csv" if case == "unwritable" else "out.csv")
    if command == "adapt":
        argv = ["adapt", "--model", "default", "--support", data, "--shots", "1", "--out", str(out)]
    else:
        argv = [
            command,
            "--model",
            model,
            "--data",
            data,
            "--out",
            str(out.with_suffix("") if command == "report" else out),
        ]
    assert main([*argv, "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert message in err and err.startswith(f"metainspect-lab {command}: error:"), err


def test_run_on_a_video_classifies_each_triggered_part(lab: dict[str, Path], tmp_path: Path) -> None:
    from core.camera.source import open_source
    from tests.core.camera.media import write_video

    with open_source("synthetic:seed=1,defect_rate=0.5") as line:
        frames = [frame.image for _, frame in zip(range(60), line, strict=False)]
    video = write_video(tmp_path / "line.avi", frames)
    out = tmp_path / "parts.csv"
    assert (
        main(["run", "--model", str(lab["model"]), "--data", str(video), "--out", str(out), "--quiet"]) == 0
    )
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["file"].startswith("line.avi#frame=") and r["verdict"] for r in rows)


def test_run_on_a_bad_video_or_one_without_parts_says_so(
    lab: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.core.camera.media import write_video

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(1000))
    argv = ["run", "--model", str(lab["model"]), "--out", str(tmp_path / "out.csv"), "--quiet"]
    assert main([*argv, "--data", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1].startswith("metainspect-lab run: error: could not open source") and "Traceback" not in err[0]
    )

    # an empty belt: frames, but no part passes
    video = write_video(tmp_path / "belt.avi", [np.full((64, 96, 3), 90, np.uint8) for _ in range(12)])
    assert main([*argv, "--data", str(video)]) == 0
    err = capsys.readouterr().err
    assert "0 rows" in err and "(0.0 images/s)" in err
    assert "no part found" in err and "12 frame(s)" in err, err


def test_model_names_resolve_or_say_what_is_wrong(tmp_path: Path) -> None:
    assert load_model("default").path is not None
    with pytest.raises(ValueError, match="add --workspace"):
        load_model("3")
    with pytest.raises(ValueError, match="not a MetaInspect workspace"):
        load_model("active", workspace=tmp_path)
    assert not any(tmp_path.iterdir())  # reading never creates a workspace
