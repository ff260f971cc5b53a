"""``metainspect --self-test`` from source: every check passes, the report has one line per check."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.selftest import SELF_TEST_CHECKS, run_self_test
from core.selftest import check_registry, check_restore
from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_self_test_passes_from_source_and_touches_nothing_of_the_user(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "QT_QPA_PLATFORM": "xcb",  # the self-test must switch to offscreen by itself
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.main", "--self-test"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    names = [name for name, _ in SELF_TEST_CHECKS]
    assert [line.split()[:2] for line in lines[:-1]] == [["PASS", name] for name in names]
    assert lines[-1].startswith(f"self-test: {len(names)} passed, 0 failed")
    assert not list(home.rglob("*MetaInspect*")), "the self-test wrote into the user's folders"


def test_a_failing_check_fails_the_run_and_is_reported(qtbot: QtBot) -> None:
    out = io.StringIO()
    code = run_self_test(out, checks=(("registry", check_registry), ("restore", check_restore)))
    lines = out.getvalue().splitlines()
    assert code == 1
    assert lines[0].startswith("PASS  registry")
    assert lines[1].startswith("FAIL  restore") and "needs the teach check" in lines[1]
    assert lines[2].startswith("self-test: 1 passed, 1 failed")


@pytest.mark.slow
def test_exit_after_first_frame_prints_when_the_live_view_first_drew(tmp_path: Path) -> None:
    # What bench/bench_bundle.sh times: the app starts, shows a live frame, prints its wall-clock time, quits.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    args = ["--workspace", str(tmp_path / "ws"), "--exit-after-first-frame"]
    done = subprocess.run(
        [sys.executable, "-m", "app.main", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [line] = [ln for ln in done.stdout.splitlines() if ln.startswith("first frame at ")]
    assert float(line.removeprefix("first frame at ")) > 0
