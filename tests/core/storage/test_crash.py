"""Crash safety: SIGKILL a writer at random moments, many times; every confirmed label survives."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.storage import Workspace
from tests.conftest import REPO_ROOT

KILLS = 18

pytestmark = pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")


def _run_and_kill(root: Path, seed: int, delay: float, wait_ready: bool) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.core.storage.crash_writer", str(root), str(seed)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("ready"):
                ready.set()

    reader = threading.Thread(target=read)
    reader.start()
    if wait_ready:
        assert ready.wait(timeout=60), "crash writer did not start"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    reader.join(timeout=30)
    proc.stdout.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL, f"writer ended on its own ({proc.returncode}) before the kill"
    return lines


@pytest.mark.slow
def test_sigkilled_writer_never_loses_a_confirmed_label(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    chooser = random.Random(20261127)
    confirmed: set[int] = set()
    last_inspection = 0
    for kill in range(KILLS):
        # Most kills land mid-loop; a few land during start-up (opening, recovery, migration).
        wait_ready = kill % 6 != 0
        delay = chooser.uniform(0.0, 0.5) if wait_ready else chooser.uniform(0.2, 1.0)
        lines = _run_and_kill(root, seed=kill + 1, delay=delay, wait_ready=wait_ready)
        confirmed |= {int(x.split()[1]) for x in lines if x.startswith("label ")}
        last_inspection = max(
            [last_inspection, *(int(x.split()[1]) for x in lines if x.startswith("inspection "))]
        )
        if not (root / "workspace.sqlite").exists():
            continue
        with Workspace.open(root) as ws:
            assert ws.integrity_check() == ["ok"], f"after kill {kill}"
            stored = {e.id: e for e in ws.examples.list(include_deleted=True)}
            missing = confirmed - set(stored)
            assert not missing, f"after kill {kill}: confirmed labels lost: {sorted(missing)}"
            for ex_id in confirmed:
                ws.images.read_bytes(stored[ex_id].image_hash)  # present and matching its hash
            assert ws.inspections.count() >= last_inspection
            unreferenced = set(ws.images_dir.glob("??/*.png")) - {
                ws.images.path_for(e.image_hash) for e in stored.values()
            }
            assert not unreferenced, "orphan image files survived the recovery on open"
    assert len(confirmed) >= KILLS, f"only {len(confirmed)} labels confirmed: kills came too early"


def test_a_sigkill_while_teaching_saves_leaves_nothing_the_next_open_keeps(tmp_path: Path) -> None:
    """Teaching writes the adapted model into ``tempfile.TemporaryDirectory(dir=ws.root)`` before registering
    it; a kill at that moment left the folder behind for good. Reproduced with the same calls, then killed."""
    root = tmp_path / "ws"
    Workspace.open(root).close()
    code = f"""
import os, signal, tempfile
from pathlib import Path
from core.imaging import Preprocess
from core.meta import create_learner
from core.models import create_model
from core.storage import Workspace
from core.storage.checkpoint import save_checkpoint
ws = Workspace.open({str(root)!r})
tmp = tempfile.TemporaryDirectory(dir=ws.root)
learner = create_learner("protonet", create_model("conv4", in_channels=1, n_way=2, image_size=28, width=8), n_way=2)
save_checkpoint(Path(tmp.name) / "adapted.pt", learner, preprocess=Preprocess(28, 1), class_names=["a", "b"],
                provenance={{}})
print(tmp.name, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = Path(proc.stdout.strip())
    assert left.parent == root and (left / "adapted.pt").is_file()
    with Workspace.open(root) as ws:
        assert ws.recovery.temp_files_removed == (left.name,)
    assert not left.exists()
