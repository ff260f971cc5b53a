"""Several threads writing at once (GUI labels, capture verdicts, adaptation models): nothing lost, no lock errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.storage import NewInspection, Workspace
from tests.core.storage.conftest import part_image


def test_concurrent_writers_lose_nothing(ws: Workspace, tmp_path: Path) -> None:
    stop_at = time.monotonic() + 2.5
    errors: list[BaseException] = []
    labels: dict[str, list[int]] = {}
    verdicts: list[int] = []
    models: list[int] = []
    model_file = tmp_path / "model.bin"

    def labeller(name: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        mine = labels.setdefault(name, [])
        while time.monotonic() < stop_at:
            ex = ws.examples.add(part_image(rng, size=16), "ok" if rng.random() < 0.5 else "scratch")
            mine.append(ex.id)
            if rng.random() < 0.3:
                ws.examples.relabel(ex.id, "scratch")

    def capture() -> None:
        with ws.inspections.buffered_writer(max_rows=20, max_delay_s=0.1) as writer:
            part = 0
            while time.monotonic() < stop_at:
                writer.add(NewInspection("ok", "OK", (0.8, 0.2), part_id=part))
                verdicts.append(part)
                part += 1
                time.sleep(0.002)

    def adapter() -> None:
        n = 0
        while time.monotonic() < stop_at:
            model_file.write_bytes(b"weights %d" % n)
            mv = ws.models.register(
                model_file, algorithm="protonet", class_names=["ok", "scratch"], activate=True
            )
            models.append(mv.id)
            n += 1
            time.sleep(0.05)

    def reader() -> None:
        while time.monotonic() < stop_at:
            ws.inspections.counts_by_class(time.time() - 3600)
            ws.examples.counts()

    def guarded(fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [
        threading.Thread(target=guarded, args=(labeller, "gui", 1)),
        threading.Thread(target=guarded, args=(labeller, "batch-import", 2)),
        threading.Thread(target=guarded, args=(capture,)),
        threading.Thread(target=guarded, args=(adapter,)),
        threading.Thread(target=guarded, args=(reader,)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    all_labels = labels["gui"] + labels["batch-import"]
    assert len(all_labels) > 20 and len(verdicts) > 100 and len(models) > 5
    stored = {e.id for e in ws.examples.list()}
    assert stored == set(all_labels)
    assert ws.inspections.count() == len(verdicts)
    assert [m.id for m in ws.models.list()] == models
    assert sum(m.is_active for m in ws.models.list()) == 1
    assert ws.integrity_check() == ["ok"]
