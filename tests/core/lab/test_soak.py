"""A short soak of the headless station: verdicts flow, adaptations repeat, nothing grows without bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.lab.soak import run_soak


@pytest.mark.slow
def test_a_short_soak_keeps_threads_files_and_memory_flat(tmp_path: Path) -> None:
    report = run_soak(tmp_path / "ws", 30.0, adapt_every_s=6.0, sample_every_s=2.0)
    last = report.samples[-1]
    assert report.errors == ()
    assert last.adaptations >= 2 and last.verdicts > 0 and last.frames > 300
    assert report.latency_p99_ms is not None and report.latency_p99_ms < 5000
    # After a 10 s warm-up (first adaptation, allocator pools): no new threads or file handles per adaptation.
    assert report.thread_growth(10.0) <= 1
    growth = report.file_growth(10.0)
    assert growth is None or growth <= 2
    rss = report.rss_growth_mb(10.0)
    assert rss is None or rss < 80.0, [s.rss_mb for s in report.samples]
