"""Reading the inspection log for people: filtered lists, the review queue and counts over a shift.

Queries only; writing stays in :mod:`core.storage.inspections`.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.storage import Workspace
from core.storage.inspections import BUCKET_S, _row
from core.storage.records import Inspection

_COLUMNS = (
    "id, time, part_id, frame_id, model_id, predicted, probabilities, verdict, low_confidence, override, "
    "image_hash"
)


def find_inspections(
    ws: Workspace,
    *,
    verdict: str | None = None,
    predicted: str | None = None,
    since: float | None = None,
    until: float | None = None,
    unreviewed: bool = False,
    limit: int = 500,
) -> list[Inspection]:
    """Logged verdicts, newest first, filtered by verdict, predicted class and time ``[since, until)``.

    ``unreviewed`` keeps only rows without an operator override (the review queue of CHECK parts).
    """
    where, params = [], []
    for column, value in (("verdict", verdict), ("predicted", predicted)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("time >= ?")
        params.append(float(since))
    if until is not None:
        where.append("time < ?")
        params.append(float(until))
    if unreviewed:
        where.append("override IS NULL")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = ws.query(f"SELECT {_COLUMNS} FROM inspections{clause} ORDER BY id DESC LIMIT ?", (*params, limit))
    return [_row(r) for r in rows]


def review_queue(ws: Workspace, limit: int = 200) -> list[Inspection]:
    """CHECK parts nobody has confirmed or relabelled yet, oldest first (the order a person works through)."""
    return list(reversed(find_inspections(ws, verdict="CHECK", unreviewed=True, limit=limit)))


@dataclass(frozen=True)
class ShiftSeries:
    """Parts per time bucket: ``times`` are bucket starts (epoch s); ``counts[cls][i]`` parts of class ``cls``
    in bucket ``i``; ``defect_rate[i]`` the share of REJECT verdicts in bucket ``i``."""

    times: list[float]
    counts: dict[str, list[int]]
    defect_rate: list[float]
    totals: dict[str, int]


def shift_series(ws: Workspace, since: float, bucket_s: int = BUCKET_S) -> ShiftSeries:
    """Counts per class and the defect rate over time since ``since``, from the per-minute count table
    (so it is cheap for a long shift and survives a restart)."""
    step = max(1, bucket_s // BUCKET_S)
    rows = ws.query(
        "SELECT bucket, predicted, verdict, n FROM inspection_counts WHERE bucket >= ? ORDER BY bucket",
        (int(since // BUCKET_S),),
    )
    buckets = sorted({int(b) // step for b, *_ in rows})
    index = {b: i for i, b in enumerate(buckets)}
    counts: dict[str, list[int]] = {}
    rejects = [0] * len(buckets)
    totals_per_bucket = [0] * len(buckets)
    totals: dict[str, int] = {}
    for b, predicted, verdict, n in rows:
        i = index[int(b) // step]
        counts.setdefault(str(predicted), [0] * len(buckets))[i] += int(n)
        totals[str(predicted)] = totals.get(str(predicted), 0) + int(n)
        totals_per_bucket[i] += int(n)
        if verdict == "REJECT":
            rejects[i] += int(n)
    rate = [r / t if t else 0.0 for r, t in zip(rejects, totals_per_bucket, strict=True)]
    return ShiftSeries([float(b * step * BUCKET_S) for b in buckets], counts, rate, totals)
