"""``metainspect-lab evaluate-anomaly`` end to end on a small real image folder; bad input is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.camera.synthetic import render_part
from core.cli import main


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """good/ (10 OK synthetic parts) and crack/, dent/ (3 each) as PNG files."""
    root = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    for cls, folder, n in (("ok", "good", 10), ("crack", "crack", 3), ("dent", "dent", 3)):
        (root / folder).mkdir()
        for i in range(n):
            assert cv2.imwrite(str(root / folder / f"{i:02d}.png"), render_part(rng, cls, size=96)[0])
    return root


def test_evaluate_anomaly_json_gives_the_agreed_keys(
    labelled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate-anomaly", "--checkpoint", "default", "--data", str(labelled), "--ok-class", "good",
            "--shots", "6", "--draws", "2", "--seed", "1", "--json", "--quiet", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"auroc", "auroc_min", "shots", "draws"} <= set(out)
    assert (out["shots"], out["draws"]) == (6, 2)
    assert 0.0 <= out["auroc_min"] <= out["auroc"] <= 1.0
    assert out["auroc"] == pytest.approx(float(np.mean(out["aurocs"])))
    assert (out["ok_tested"], out["defects_tested"]) == (4, 6)
    assert out["defect_classes"] == ["crack", "dent"]


def test_evaluate_anomaly_plain_output_is_one_readable_line(
    labelled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate-anomaly", "--checkpoint", "default", "--data", str(labelled), "--ok-class", "good",
            "--shots", "5", "--draws", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "image AUROC" in lines[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--ok-class": "nothing"}, "class 'nothing' not found"),
        ({"--shots": "10"}, "leaves none to test"),
        ({"--shots": "1"}, "at least 2"),
        ({"--draws": "0"}, "at least 1"),
        ({"--data": "/no/such/folder"}, "data path not found"),
        ({"--checkpoint": "/no/such/model.pt"}, "no/such/model.pt"),
    ],
)
def test_bad_input_is_one_line_on_stderr_with_exit_2(
    change: dict[str, str], message: str, labelled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = {"--checkpoint": "default", "--data": str(labelled), "--ok-class": "good", "--shots": "4",
            "--draws": "1"}  # fmt: skip
    opts.update(change)
    argv = ["evaluate-anomaly", *[x for kv in opts.items() for x in kv], "--quiet", "--json"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == ""
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert message in err


def test_a_folder_with_only_the_ok_class_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ok").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(tmp_path / "ok" / f"{i}.png"), render_part(rng, "ok", size=64)[0])
    argv = ["evaluate-anomaly", "--checkpoint", "default", "--data", str(tmp_path), "--ok-class", "ok",
            "--shots", "2", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert "at least one other class" in capsys.readouterr().err
