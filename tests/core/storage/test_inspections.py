"""The inspection log: batched appends, time-window counts, overrides, the buffered writer."""

from __future__ import annotations

import time

import numpy as np
import pytest

from core.storage import NewInspection, RecordNotFoundError, StorageError, Workspace
from tests.core.storage.conftest import part_image


def _verdict(cls: str, t: float, part: int) -> NewInspection:
    p = 0.9 if cls == "ok" else 0.2
    return NewInspection(
        cls, "OK" if cls == "ok" else "REJECT", (p, 1 - p), time=t, part_id=part, frame_id=part * 3
    )


def test_batch_append_returns_ids_and_counts_follow_the_time_window(ws: Workspace) -> None:
    now = time.time()
    old = [_verdict("scratch", now - 7200 + i, i) for i in range(5)]
    recent = [_verdict("ok" if i % 3 else "scratch", now - 600 + i, 100 + i) for i in range(30)]
    ids = ws.inspections.append_many(old + recent)
    assert ids == list(range(1, 36))
    assert ws.inspections.counts_by_class(now - 3600) == {"ok": 20, "scratch": 10}
    assert ws.inspections.counts_by_class(now - 3 * 3600, now - 3600) == {"scratch": 5}
    assert ws.inspections.counts_by_verdict(now - 3600) == {"OK": 20, "REJECT": 10}
    latest = ws.inspections.recent(3)
    assert [r.part_id for r in latest] == [129, 128, 127]
    assert latest[0].probabilities == pytest.approx((0.9, 0.1))
    assert [r.part_id for r in ws.inspections.recent(100, since=now - 60)] == []
    assert ws.inspections.append_many([]) == []


def test_inspection_with_image_and_operator_override_is_auditable(
    ws: Workspace, rng: np.random.Generator
) -> None:
    img = part_image(rng)
    iid = ws.inspections.append(
        NewInspection("ok", "OK", (0.55, 0.45), part_id=123, low_confidence=True), img
    )
    ws.inspections.set_override(iid, "scratch", who="inspector-2")
    (row,) = ws.inspections.for_part(123)
    assert row.override == "scratch" and row.low_confidence and row.image_hash is not None
    assert np.array_equal(ws.images.load(row.image_hash), img)
    entry = ws.audit.entries(entity="inspection", entity_id=iid)[0]
    assert (entry.actor, entry.details["to"], entry.details["predicted"]) == ("inspector-2", "scratch", "ok")


def test_bad_inspection_records_are_rejected_whole(ws: Workspace) -> None:
    with pytest.raises(ValueError, match="predicted class and a verdict"):
        ws.inspections.append_many([_verdict("ok", time.time(), 1), NewInspection("", "OK")])
    with pytest.raises(ValueError, match="one per record"):
        ws.inspections.append_many([_verdict("ok", time.time(), 1)], [None, None])
    assert ws.inspections.count() == 0


def test_buffered_writer_flushes_by_size_by_time_and_on_close(ws: Workspace) -> None:
    writer = ws.inspections.buffered_writer(max_rows=10, max_delay_s=0.2)
    for i in range(10):
        writer.add(NewInspection("ok", "OK", (1.0, 0.0), part_id=i))
    assert ws.inspections.count() == 10 and writer.pending == 0  # size-triggered flush
    writer.add(NewInspection("ok", "OK", (1.0, 0.0), part_id=10))
    deadline = time.monotonic() + 5
    while ws.inspections.count() < 11 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ws.inspections.count() == 11  # time-triggered flush by the background thread
    second = ws.inspections.buffered_writer(max_rows=1000, max_delay_s=60)
    second.add_many(NewInspection("scratch", "REJECT", (0.1, 0.9)) for _ in range(5))
    writer.close()
    with pytest.raises(StorageError, match="closed"):
        writer.add(NewInspection("ok", "OK"))
    root = ws.root
    ws.close()  # flushes the still-open second writer
    with Workspace.open(root) as again:
        assert again.inspections.count() == 16
        assert all(r.time is not None for r in again.inspections.recent(16))


def test_minute_rollup_counts_match_counting_the_rows(ws: Workspace) -> None:
    rng = np.random.default_rng(7)
    t0 = 1_700_000_000.0
    times = np.sort(t0 + rng.uniform(0, 4 * 3600, 3000))
    names = ("ok", "scratch", "dent")
    recs = [_verdict(names[int(rng.integers(3))], float(t), i) for i, t in enumerate(times)]
    ws.inspections.append_many(recs[:1000])
    ws.inspections.append_many(recs[1000:])  # the second batch adds to buckets the first one started
    for lo, hi in [(t0, t0 + 3600), (t0 + 59.5, t0 + 60.5), (t0 + 1234.56, None), (t0 - 10, t0 + 99999), *(
        tuple(sorted(rng.uniform(t0 - 100, t0 + 4 * 3600 + 100, 2))) for _ in range(20)
    )]:  # fmt: skip
        expected: dict[str, int] = {}
        for r in recs:
            if r.time >= lo and (hi is None or r.time < hi):  # type: ignore[operator]
                expected[r.predicted] = expected.get(r.predicted, 0) + 1
        assert ws.inspections.counts_by_class(lo, hi) == expected, (lo, hi)


def test_unknown_model_version_is_refused_at_add_time(ws: Workspace) -> None:
    with pytest.raises(RecordNotFoundError, match="model version 42"):
        ws.inspections.append(NewInspection("ok", "OK", model_id=42))
    with ws.inspections.buffered_writer() as writer:
        with pytest.raises(RecordNotFoundError, match="model version 42"):
            writer.add(NewInspection("ok", "OK", model_id=42))
        writer.add(NewInspection("ok", "OK"))  # the writer is not blocked by the refused row
    assert ws.inspections.count() == 1
