"""``metainspect-lab report``: score an adapted model on a labelled folder and write what an engineer files.

:func:`build_report` does the work (a generator of ``(stage, done, total)`` progress, returning a
:class:`LabReport`); :func:`write_report` writes ``report.html`` (one self-contained file), ``metrics.json``
and CSVs. Images the model was adapted on (by content hash, recorded by ``metainspect-lab adapt``) are left
out of the scoring; unreadable images and class folders the model does not know are listed, never fatal.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from core.config import DEFAULT_ADAPT_STEPS, DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_MARGIN
from core.data import ImageFolderDataset
from core.imaging.preprocess import Preprocess
from core.lab import metrics as M
from core.lab.scoring import BATCH, embed_in_batches, embeds_once
from core.lab.shots import ShotsPoint, iter_shots_curve
from core.storage.checkpoint import LoadedCheckpoint

Progress = tuple[str, int, int]


@dataclass(frozen=True)
class ReportOptions:
    """Choices of one report (the CLI flags)."""

    costs: M.Costs = field(default_factory=M.Costs)
    ok_class: str | None = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    min_margin: float = DEFAULT_MIN_MARGIN
    shots: tuple[int, ...] = (1, 2, 5, 10, 20)
    repeats: int = 5
    seed: int = 0
    mistakes: int = 12


@dataclass(frozen=True)
class Prediction:
    """One scored image."""

    file: str
    true_class: str
    predicted: str
    probabilities: tuple[float, ...]
    verdict: str
    confidence: float
    margin: float


@dataclass
class LabReport:
    """Everything the report shows; :meth:`metrics` is the JSON form."""

    class_names: list[str]
    ok_class: str | None
    options: ReportOptions
    provenance: dict[str, Any]
    data: dict[str, Any]
    accuracy: M.Proportion
    per_class: list[M.ClassMetrics]
    confusion: np.ndarray
    calibration: list[M.CalibrationBin]
    ece: float | None
    thresholds: list[M.ThresholdPoint]
    current: M.ThresholdPoint | None
    suggested: M.ThresholdPoint | None
    mistakes: list[tuple[M.Mistake, Prediction, bytes]]
    shots_curve: list[ShotsPoint]
    predictions: list[Prediction]
    notes: list[str]

    def metrics(self) -> dict[str, Any]:
        """``metrics.json``: top-level accuracy, per_class, confusion, thresholds, shots_curve, provenance."""
        o = self.options
        return {
            "accuracy": self.accuracy.to_dict(),
            "per_class": [c.to_dict() for c in self.per_class],
            "confusion": {
                "classes": self.class_names,
                "rows_true_columns_predicted": self.confusion.tolist(),
            },
            "thresholds": {
                "ok_class": self.ok_class,
                "costs": {"escape": o.costs.escape, "reject": o.costs.reject, "check": o.costs.check},
                "current": None if self.current is None else self.current.to_dict(),
                "suggested": None if self.suggested is None else self.suggested.to_dict(),
                "sweep": [p.to_dict() for p in self.thresholds],
            },
            "shots_curve": [p.to_dict() for p in self.shots_curve],
            "calibration": {"bins": [b.to_dict() for b in self.calibration], "ece": self.ece},
            "mistakes": [
                {
                    "file": p.file,
                    "true": m.true_class,
                    "predicted": m.predicted_class,
                    "confidence": m.confidence,
                }
                for m, p, _ in self.mistakes
            ],
            "data": self.data,
            "provenance": self.provenance,
            "notes": self.notes,
        }


def thumbnail(x: torch.Tensor, pre: Preprocess, side: int = 112) -> bytes:
    """A prepared image ``(C, S, S)`` back to a small PNG (undoing the normalisation)."""
    mean = np.asarray(pre.mean, np.float32)[:, None, None]
    std = np.asarray(pre.std, np.float32)[:, None, None]
    img = np.clip((x.numpy() * std + mean) * 255.0, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    img = img[:, :, 0] if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    img = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("could not encode a thumbnail")
    return buf.tobytes()


def _support_hashes(ck: LoadedCheckpoint) -> set[str] | None:
    recorded = ck.provenance.get("support_images")
    if not isinstance(recorded, list):
        return None
    return {str(r.get("sha256")) for r in recorded if isinstance(r, dict)}


def build_report(
    ck: LoadedCheckpoint,
    data_path: str | os.PathLike[str],
    options: ReportOptions,
    *,
    subdir: str | None = None,
    model_ref: str = "",
) -> Generator[Progress, None, LabReport]:
    """Score ``ck`` (an adapted model) on a labelled folder; see the module docstring.

    Raises
    ------
    ValueError
        The model is not adapted, or the data has no class the model knows, or no image is left to score.
    """
    if not ck.is_adapted or ck.support_x is None or ck.support_y is None:
        raise ValueError(
            f"{model_ref or ck.path} is a base model without classes of its own; adapt it first "
            "(metainspect-lab adapt --support DIR --shots K --out MODEL)"
        )
    names = list(ck.class_names)
    ok = M.find_ok_class(names, options.ok_class)
    data = ImageFolderDataset.from_path(data_path, ck.preprocess, subdir=subdir)
    notes: list[str] = []
    unknown = [(c, n) for c, n in zip(data.class_names, data.counts, strict=True) if c not in names]
    known = [i for i, c in enumerate(data.class_names) if c in names]
    if not known:
        raise ValueError(
            f"none of the class folders of {data.source} ({data.class_names}) is a class of the model ({names})"
        )
    support = _support_hashes(ck)
    if support is None:
        notes.append(
            "The model file records no support images (adapted before this was recorded, or in the app): none was excluded."
        )
    hashes = data.image_hashes or [[""] * n for n in data.counts]
    files = data.image_names or [[str(j) for j in range(n)] for n in data.counts]
    x_all = torch.cat([data.images[i] for i in known])
    y_all = np.concatenate([np.full(data.counts[i], names.index(data.class_names[i])) for i in known])
    f_all = [f for i in known for f in files[i]]
    scored = np.array([h not in (support or set()) for i in known for h in hashes[i]], bool)
    excluded = int((~scored).sum())
    if not scored.any():
        raise ValueError(
            f"every image of {data.source} was in the model's support set; nothing is left to score"
        )

    learner = ck.learner
    fast = embeds_once(learner)
    want_curve = options.repeats > 0
    steps = ck.adapt_steps if ck.adapt_steps is not None else DEFAULT_ADAPT_STEPS
    views: torch.Tensor | None = None
    if fast:
        # every image once (all support views only when the shots curve re-adapts on them)
        for done, emb in embed_in_batches(learner, x_all, all_views=want_curve):
            yield "embed", done, len(x_all)
            if emb is not None:
                views = emb.views
        assert views is not None
        head = learner.adapt_embedded(learner.embed_views(ck.support_x), ck.support_y, steps=ck.adapt_steps)  # type: ignore[operator]
        probs_t = head.logits(views[0, torch.from_numpy(np.flatnonzero(scored))]).softmax(1)
    else:
        classifier = ck.adapted()
        idx = np.flatnonzero(scored)
        parts = []
        for start in range(0, len(idx), BATCH):
            chunk = torch.from_numpy(idx[start : start + BATCH])
            parts.append(classifier.predict_proba(x_all[chunk]).cpu())
            yield "score", min(start + BATCH, len(idx)), len(idx)
        probs_t = torch.cat(parts)
    probs = probs_t.double().numpy()
    y = y_all[scored]
    f_scored = [f for f, s in zip(f_all, scored, strict=True) if s]
    top, conf, margin = M.top_two(probs)
    defect = np.array([ok is not None and c != ok for c in names])
    codes = M.verdict_codes(probs, defect, options.min_confidence, options.min_margin)
    predictions = [
        Prediction(f_scored[i], names[y[i]], names[top[i]], tuple(float(v) for v in probs[i]),
                   M.DECISIONS[codes[i]].value, float(conf[i]), float(margin[i]))
        for i in range(len(y))
    ]  # fmt: skip

    thresholds: list[M.ThresholdPoint] = []
    current = suggested = None
    if ok is None:
        notes.append(
            "No OK class (none named ok, good or MT_Free, and no --ok-class): escapes and false rejects need one, "
            "so the threshold sweep is left out and every confident verdict is REJECT."
        )
    else:
        margins = tuple(sorted({*M.DEFAULT_MARGINS, options.min_margin}))
        confidences = tuple(sorted({*M.DEFAULT_CONFIDENCES, options.min_confidence}))
        thresholds = M.threshold_sweep(
            probs, y, defect, confidences=confidences, margins=margins, costs=options.costs
        )
        current = M.threshold_point(
            probs, y, defect, options.min_confidence, options.min_margin, options.costs
        )
        suggested = M.suggest_thresholds(thresholds)

    x_scored_idx = np.flatnonzero(scored)
    mistakes = []
    for m in M.confident_mistakes(y, probs, names, options.mistakes):
        mistakes.append((m, predictions[m.index], thumbnail(x_all[x_scored_idx[m.index]], ck.preprocess)))

    curve: list[ShotsPoint] = []
    if want_curve:
        present = sorted(set(y_all.tolist()))
        relabel = {c: j for j, c in enumerate(present)}
        labels = np.array([relabel[c] for c in y_all.tolist()])
        for done, total, point in iter_shots_curve(
            learner, labels, options.shots, options.repeats,
            views=views, images=None if fast else x_all, steps=steps, seed=options.seed,
        ):  # fmt: skip
            yield "shots curve", done, total
            if point is not None:
                curve.append(point)
        if not curve:
            notes.append(
                f"Too few images per class for the shots curve (K in {list(options.shots)} needs K + 1)."
            )

    bins = M.calibration_bins(conf, top == y)
    report_data = {
        "source": data.source,
        "subdir": subdir,
        "classes": {c: n for c, n in zip(data.class_names, data.counts, strict=True)},
        "images_read": data.num_images,
        "scored": int(scored.sum()),
        "support_excluded": excluded,
        "support_recorded": None if support is None else len(support),
        "unreadable": [{"file": s.name, "reason": s.reason} for s in data.skipped],
        "unknown_classes": [{"class": c, "images": n} for c, n in unknown],
    }
    provenance = {
        "model": model_ref or str(ck.path),
        "model_file": str(ck.path),
        "model_sha256": ck.sha256,
        "adapted_on": ck.provenance.get("data"),
        "base_checkpoint": ck.provenance.get("base_checkpoint"),
        "adapt_steps": ck.adapt_steps,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git_commit": _git(),
        "options": {
            "min_confidence": options.min_confidence, "min_margin": options.min_margin, "ok_class": ok,
            "shots": list(options.shots), "repeats": options.repeats, "seed": options.seed,
        },
    }  # fmt: skip
    return LabReport(
        class_names=names, ok_class=ok, options=options, provenance=provenance, data=report_data,
        accuracy=M.accuracy(y, top), per_class=M.per_class_metrics(y, top, names, seed=options.seed),
        confusion=M.confusion_matrix(y, top, len(names)), calibration=bins, ece=M.expected_calibration_error(bins),
        thresholds=thresholds, current=current, suggested=suggested, mistakes=mistakes, shots_curve=curve,
        predictions=predictions, notes=notes,
    )  # fmt: skip


def _git() -> str | None:
    from core.storage.checkpoint import git_commit

    return git_commit()
