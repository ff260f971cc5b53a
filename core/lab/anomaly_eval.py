"""Lab evaluation of the anomaly scorer: teach from K random OK images, score the rest, image AUROC.

The protocol of ``metainspect-lab evaluate-anomaly`` and ``bench/bench_anomaly.py``: for each of R draws,
teach an :class:`~core.inference.anomaly.AnomalyScorer` (the app's scorer, the app's defaults) from K random
images of the OK class, score every other image (the remaining OK ones, and every image of the other classes,
which count as defective) and compute the image AUROC.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.data.folder import RawImageFolders
from core.inference.anomaly import AnomalyConfig, AnomalyScorer
from core.lab.anomaly_metrics import auroc, detection_at_false_reject
from core.models.efficientnet_lite import LiteTrunk
from core.training.progress import Cancellable, is_cancelled

#: False-reject budgets of the threshold sweep reported beside the AUROC.
SWEEP_BUDGETS = (0.01, 0.02, 0.05, 0.10)


@dataclass(frozen=True)
class AnomalyDraw:
    """One draw's outcome, with the scores behind it (for sweeps and plots)."""

    draw: int
    auroc: float
    threshold: float  # the scorer's own calibrated threshold
    ok_scores: tuple[float, ...]
    defect_scores: tuple[float, ...]
    seconds: float
    bank_bytes: int = 0

    @property
    def at_threshold(self) -> tuple[float, float]:
        """``(false-reject rate, escape rate)`` at the scorer's own threshold (what the app would do)."""
        ok, bad = np.asarray(self.ok_scores), np.asarray(self.defect_scores)
        return float((ok > self.threshold).mean()), float((bad <= self.threshold).mean())


@dataclass(frozen=True)
class SweepRow:
    """The best threshold of each draw that rejects at most ``budget`` of the OK parts, averaged over draws."""

    budget: float
    false_reject_rate: float
    escape_rate: float


@dataclass(frozen=True)
class AnomalyEvalResult:
    """Summary over draws."""

    auroc: float
    auroc_min: float
    shots: int
    draws: int
    ok_class: str
    defect_classes: tuple[str, ...]
    ok_tested: int
    defects_tested: int
    per_draw: tuple[AnomalyDraw, ...] = field(repr=False)

    @property
    def at_threshold(self) -> tuple[float, float]:
        """Mean ``(false-reject rate, escape rate)`` over draws at each scorer's own calibrated threshold."""
        pairs = np.array([d.at_threshold for d in self.per_draw])
        return float(pairs[:, 0].mean()), float(pairs[:, 1].mean())

    def sweep(self, budgets: Sequence[float] = SWEEP_BUDGETS) -> list[SweepRow]:
        """The false-reject / escape trade-off of the threshold: per budget, the mean over draws of the
        threshold that lets the fewest defective parts escape while rejecting at most that share of OK ones."""
        rows = []
        for b in budgets:
            points = [detection_at_false_reject(d.ok_scores, d.defect_scores, b) for d in self.per_draw]
            rows.append(
                SweepRow(
                    b,
                    float(np.mean([p.false_reject_rate for p in points])),
                    float(np.mean([p.escape_rate for p in points])),
                )
            )
        return rows

    def to_dict(self) -> dict[str, object]:
        fr, esc = self.at_threshold
        return {
            "auroc": self.auroc,
            "auroc_min": self.auroc_min,
            "shots": self.shots,
            "draws": self.draws,
            "ok_class": self.ok_class,
            "defect_classes": list(self.defect_classes),
            "ok_tested": self.ok_tested,
            "defects_tested": self.defects_tested,
            "aurocs": [d.auroc for d in self.per_draw],
            "at_scorer_threshold": {"false_reject_rate": fr, "escape_rate": esc},
            "sweep": [
                {
                    "max_false_reject": r.budget,
                    "false_reject_rate": r.false_reject_rate,
                    "escape_rate": r.escape_rate,
                }
                for r in self.sweep()
            ],
        }


def split_ok_defective(
    data: RawImageFolders, ok_class: str, defect_classes: Sequence[str] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray], tuple[str, ...]]:
    """OK images, defective images (every other class, or only ``defect_classes``) and the defect names.

    Raises
    ------
    ValueError
        ``ok_class`` or a named defect class is absent, or no defect class remains.
    """
    ok = data.images[data.index(ok_class)]
    names = [n for n in data.class_names if n != ok_class] if defect_classes is None else list(defect_classes)
    if not names:
        raise ValueError(
            f"{data.source} has only the OK class {ok_class!r}; AUROC needs images of at least one other class"
        )
    bad = [im for n in names for im in data.images[data.index(n)]]
    return ok, bad, tuple(names)


def iter_evaluate_anomaly(
    trunk: LiteTrunk,
    ok_images: Sequence[np.ndarray],
    defect_images: Sequence[np.ndarray],
    *,
    shots: int,
    draws: int = 5,
    seed: int = 0,
    config: AnomalyConfig | None = None,
    weights_sha256: str = "",
    max_ok_tested: int | None = None,
    max_defects_tested: int | None = None,
    cancel: Cancellable | None = None,
) -> Generator[AnomalyDraw, None, tuple[int, int]]:
    """Yield one :class:`AnomalyDraw` per draw; returns ``(ok_tested, defects_tested)`` per draw.

    ``max_ok_tested`` / ``max_defects_tested`` cap the test images per draw (a random subset; benchmark use on a
    slow machine); by default every other image is scored.

    Raises
    ------
    ValueError
        ``shots < 2``, no OK image left to test, no defective image, or ``draws < 1``.
    """
    if shots < 2:
        raise ValueError(
            f"--shots must be at least 2 (the threshold is calibrated leave-one-out), got {shots}"
        )
    if draws < 1:
        raise ValueError(f"--draws must be at least 1, got {draws}")
    if len(ok_images) <= shots:
        raise ValueError(
            f"the OK class has {len(ok_images)} images; --shots {shots} leaves none to test (use fewer shots)"
        )
    if not defect_images:
        raise ValueError("no defective images to test")
    rng = np.random.default_rng(seed)
    n_ok = n_bad = 0
    for r in range(draws):
        if is_cancelled(cancel):
            break
        t0 = time.perf_counter()
        perm = rng.permutation(len(ok_images))
        taught, tested = perm[:shots], perm[shots:]
        if max_ok_tested is not None:
            tested = tested[:max_ok_tested]
        bad_idx = np.arange(len(defect_images))
        if max_defects_tested is not None and len(bad_idx) > max_defects_tested:
            bad_idx = np.sort(rng.permutation(len(defect_images))[:max_defects_tested])
        scorer = AnomalyScorer.fit(
            [ok_images[i] for i in taught], trunk, config, weights_sha256=weights_sha256
        )
        ok_scores = scorer.scores([ok_images[i] for i in tested])
        bad_scores = scorer.scores([defect_images[i] for i in bad_idx])
        n_ok, n_bad = len(tested), len(bad_idx)
        yield AnomalyDraw(
            r,
            auroc(ok_scores, bad_scores),
            scorer.threshold,
            tuple(float(s) for s in ok_scores),
            tuple(float(s) for s in bad_scores),
            time.perf_counter() - t0,
            scorer.bank_bytes,
        )
    return n_ok, n_bad


def evaluate_anomaly(
    trunk: LiteTrunk,
    data: RawImageFolders,
    ok_class: str,
    *,
    shots: int,
    draws: int = 5,
    seed: int = 0,
    config: AnomalyConfig | None = None,
    weights_sha256: str = "",
    defect_classes: Sequence[str] | None = None,
    max_ok_tested: int | None = None,
    max_defects_tested: int | None = None,
) -> AnomalyEvalResult:
    """Run every draw of :func:`iter_evaluate_anomaly` on a labelled folder and summarise."""
    ok, bad, names = split_ok_defective(data, ok_class, defect_classes)
    gen = iter_evaluate_anomaly(
        trunk, ok, bad, shots=shots, draws=draws, seed=seed, config=config, weights_sha256=weights_sha256,
        max_ok_tested=max_ok_tested, max_defects_tested=max_defects_tested,
    )  # fmt: skip
    return summarise(gen, shots=shots, ok_class=ok_class, defect_classes=names)


def summarise(
    gen: Generator[AnomalyDraw, None, tuple[int, int]],
    *,
    shots: int,
    ok_class: str,
    defect_classes: Sequence[str],
) -> AnomalyEvalResult:
    """Drain a draw generator into an :class:`AnomalyEvalResult`."""
    per_draw: list[AnomalyDraw] = []
    while True:
        try:
            per_draw.append(next(gen))
        except StopIteration as stop:
            n_ok, n_bad = stop.value
            break
    if not per_draw:
        raise ValueError("no draw finished")
    values = [d.auroc for d in per_draw]
    return AnomalyEvalResult(
        auroc=float(np.mean(values)),
        auroc_min=float(np.min(values)),
        shots=shots,
        draws=len(per_draw),
        ok_class=ok_class,
        defect_classes=tuple(defect_classes),
        ok_tested=n_ok,
        defects_tested=n_bad,
        per_draw=tuple(per_draw),
    )
