"""``metainspect-lab station`` end to end: demo teaching on the synthetic line, then a recorded video."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.camera.source import SOURCES
from core.cli import main
from tests.core.camera.media import write_video
from tests.core.station.conftest import FAST_LINE


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object], str]:
    code = main(["station", *args, "--json", "--device", "cpu", "--threads", "1", "--timeout", "60"])
    out, err = capsys.readouterr()
    return code, (json.loads(out.strip().splitlines()[-1]) if out.strip() else {}), err


def test_station_teaches_from_the_demo_line_then_judges_a_recorded_video(
    tmp_path: Path, small_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = str(tmp_path / "ws")
    code, result, err = _run(
        capsys, "--source", FAST_LINE, "--workspace", ws, "--model", str(small_checkpoint),
        "--demo-teach", "1", "--parts", "8", "--capture-mode", "every",
    )  # fmt: skip
    assert code == 0, err
    assert result["parts"] == 8 and result["with_truth"] == 8
    assert isinstance(result["accuracy"], float) and 0.0 <= result["accuracy"] <= 1.0
    assert sum(result["verdicts"].values()) == 8 and sum(result["classes"].values()) == 8
    assert result["latency_p50_ms"] is not None and result["latency_p99_ms"] >= result["latency_p50_ms"]
    assert result["fps"] > 0 and result["model_version"] == 1 and result["examples"] >= 6

    # A video of the same line, written with cv2.VideoWriter: no ground truth, the workspace's model judges it.
    line = SOURCES.create(FAST_LINE.replace("seed=3", "seed=9")).open()
    frames = [line.read().image for _ in range(120)]  # type: ignore[union-attr]
    line.release()
    video = write_video(tmp_path / "line.avi", frames, fps=30)
    code, result, err = _run(capsys, "--source", f"file:{video}", "--workspace", ws, "--parts", "3")
    assert code == 0, err
    assert result["parts"] == 3 and result["accuracy"] is None and result["model_version"] == 1
    assert result["logged"] >= 8 + 3

    # A file OpenCV cannot decode fails at once with the reason (a recorded source does not come back)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(1000))
    code, result, err = _run(capsys, "--source", f"file:{broken}", "--workspace", ws, "--parts", "3")
    assert code == 2 and not result
    assert (
        err.strip().splitlines()[-1].startswith("metainspect-lab station: error: the source cannot be read")
    )


def test_station_without_a_model_or_truth_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "--source", FAST_LINE, "--workspace", str(tmp_path / "ws"), "--parts", "1")
    assert code == 2 and "no live model" in err and "--demo-teach" in err
    code, _, err = _run(
        capsys, "--source", "camera:0", "--workspace", str(tmp_path / "ws"), "--demo-teach", "1"
    )
    assert code == 2 and "synthetic demo line" in err and len(err.strip().splitlines()) == 1, err  # once
    code, _, err = _run(
        capsys, "--source", "nosuchscheme:", "--workspace", str(tmp_path / "ws2"), "--model", "7"
    )
    assert code == 2 and "model version 7" in err.lower()
