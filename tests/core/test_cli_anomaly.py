"""``metainspect-lab evaluate-anomaly`` end to end on a small real image folder; bad input is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.camera.synthetic import render_part
from core.cli import main
from core.lab.anomaly_eval import AnomalyDraw, AnomalyEvalResult


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
    at = out["at_scorer_threshold"]
    assert 0.0 <= at["false_reject_rate"] <= 1.0 and 0.0 <= at["escape_rate"] <= 1.0
    sweep = out["sweep"]
    assert [r["max_false_reject"] for r in sweep] == [0.01, 0.02, 0.05, 0.1]
    assert all(r["false_reject_rate"] <= r["max_false_reject"] for r in sweep)
    escapes = [r["escape_rate"] for r in sweep]
    assert escapes == sorted(escapes, reverse=True)  # a larger false-reject budget never lets more escape


def test_evaluate_anomaly_plain_output_says_auroc_threshold_and_sweep(
    labelled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate-anomaly", "--checkpoint", "default", "--data", str(labelled), "--ok-class", "good",
            "--shots", "5", "--draws", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "image AUROC" in lines[0] and "scorer's own threshold" in lines[1]
    assert sum("escape" in line for line in lines[3:]) == 4


def test_sweep_and_threshold_figures_follow_from_the_scores() -> None:
    draw = AnomalyDraw(0, 0.75, 2.0, (1.0, 1.5, 2.5, 0.5), (3.0, 1.8, 2.2, 4.0), 0.1)
    assert draw.at_threshold == (0.25, 0.25)  # OK 2.5 rejected; defective 1.8 escapes
    result = AnomalyEvalResult(0.75, 0.75, 4, 1, "ok", ("bad",), 4, 4, (draw,))
    rows = {r.budget: r for r in result.sweep((0.0, 0.25, 0.5))}
    assert (rows[0.0].false_reject_rate, rows[0.0].escape_rate) == (0.0, 0.5)  # above 2.5: 1.8, 2.2 escape
    assert (rows[0.25].false_reject_rate, rows[0.25].escape_rate) == (0.25, 0.0)  # above 1.5: 2.5 and all bad
    assert (rows[0.5].false_reject_rate, rows[0.5].escape_rate) == (0.25, 0.0)  # no escape costs no more FR


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
