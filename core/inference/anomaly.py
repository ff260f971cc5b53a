"""Anomaly scoring taught from OK parts only (PatchCore: Roth et al., "Towards total recall in industrial
anomaly detection", CVPR 2022), on the shipped model's frozen EfficientNet-Lite0 trunk.

Teaching: every patch of every OK image is described by mid-level features (:mod:`core.inference.
patch_features`); the patches form a memory bank, cut to at most ``bank_size`` points by greedy coreset
subsampling (:mod:`core.inference.coreset`). Scoring: each patch of a new part is as anomalous as its distance
to the nearest bank patch; the part's score is the largest patch distance (optionally the mean of the
``top_k`` largest), and the patch distances form the anomaly map shown over the part. The reject threshold is
calibrated on the OK examples themselves: each is scored leave-one-out (against the bank without its own
patches) and the threshold is the ``1 - false_reject_rate`` quantile of those scores.

A part far from every OK patch is a defect nobody has labelled: :mod:`core.inference.verdict` turns it into a
REJECT "unknown defect" even when the classifier says ok.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from core.inference.coreset import greedy_coreset, nearest_distances
from core.inference.patch_features import PatchFeatureExtractor
from core.inference.verdict import AnomalyScore
from core.models.efficientnet_lite import LiteTrunk, load_trunk

FORMAT_NAME = "metainspect-anomaly"
FORMAT_VERSION = 1


class AnomalyError(ValueError):
    """The anomaly scorer cannot be taught or used as asked (says what is wrong)."""


@dataclass(frozen=True)
class AnomalyConfig:
    """Settings of the anomaly scorer (the same defaults in the app, the lab CLI and the benchmark).

    Parameters
    ----------
    variant
        EfficientNet-Lite variant whose frozen trunk gives the features (the shipped model's ``lite0``).
    stages
        Trunk stages tapped for patch features (see docs/adr/0010 for the measured choice).
    neighbourhood
        Local average-pooling window (PatchCore's 3x3).
    max_side
        Longest image side fed to the trunk; larger parts are shrunk to it (``None``: never).
    bank_size
        Most patches kept in the memory bank (greedy coreset above it): bounds memory and scoring time.
    coreset_pool
        Most patches the greedy selection looks at (a seeded random cut above it): the selection costs
        ``pool x bank_size`` distance evaluations, so this bounds teaching time on many large images.
    projection_dim
        Random-projection dimension for the coreset selection distances.
    top_k
        The part score is the mean of its ``top_k`` largest patch distances (1: the largest).
    false_reject_rate
        Share of OK parts the calibrated threshold may reject (leave-one-out on the taught OK parts, see
        :func:`calibrate_threshold`).
    seed
        Seeds the coreset.
    """

    variant: str = "lite0"
    stages: tuple[int, ...] = (3, 4)
    neighbourhood: int = 3
    max_side: int | None = 640
    bank_size: int = 2048
    coreset_pool: int = 65536
    projection_dim: int = 64
    top_k: int = 10
    false_reject_rate: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(int(s) for s in self.stages))
        if min(self.bank_size, self.coreset_pool, self.projection_dim, self.top_k) < 1:
            raise ValueError("bank_size, coreset_pool, projection_dim and top_k must be positive")
        if self.coreset_pool < self.bank_size:
            raise ValueError(
                f"coreset_pool ({self.coreset_pool}) must be at least bank_size ({self.bank_size})"
            )
        if not 0.0 <= self.false_reject_rate < 1.0:
            raise ValueError(f"false_reject_rate must lie in [0, 1), got {self.false_reject_rate}")
        if self.max_side is not None and self.max_side < 32:
            raise ValueError(f"max_side must be at least 32 pixels (or None), got {self.max_side}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stages"] = list(self.stages)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnomalyConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        extra = set(data) - known
        if extra:
            raise ValueError(f"unknown anomaly settings {sorted(extra)}; expected {sorted(known)}")
        return cls(**data)


def upsample_map(patch_map: np.ndarray, shape: tuple[int, int], sigma: float = 4.0) -> np.ndarray:
    """``(h, w)`` patch distances -> ``(H, W)`` float32 map, bilinear then Gaussian-smoothed (PatchCore's
    sigma 4), for drawing over the part."""
    if patch_map.ndim != 2 or patch_map.size == 0:
        raise ValueError(f"expected a non-empty (h, w) map, got shape {patch_map.shape}")
    h, w = int(shape[0]), int(shape[1])
    out = cv2.resize(patch_map.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(out, (0, 0), sigma) if sigma > 0 else out


def find_trunk(model: nn.Module) -> LiteTrunk:
    """The frozen EfficientNet-Lite trunk inside a model (e.g. the shipped fused model's lite0 part).

    Raises
    ------
    AnomalyError
        The model holds no EfficientNet-Lite trunk.
    """
    for module in model.modules():
        if isinstance(module, LiteTrunk):
            return module
    raise AnomalyError(
        "this model has no EfficientNet-Lite backbone; the anomaly scorer needs one (use --checkpoint default)"
    )


class AnomalyScorer:
    """A taught anomaly scorer: memory bank of OK patches plus a calibrated threshold.

    Build with :meth:`fit`; read back with :meth:`load`. Scoring is one image at a time, so a part's score never
    depends on which other parts are scored with it.
    """

    def __init__(
        self,
        trunk: LiteTrunk,
        config: AnomalyConfig,
        bank: torch.Tensor,
        threshold: float,
        loo_scores: Sequence[float] = (),
        *,
        weights_sha256: str = "",
        info: dict[str, Any] | None = None,
    ) -> None:
        if bank.ndim != 2 or bank.shape[0] == 0:
            raise AnomalyError(f"the memory bank must be a non-empty (M, D) tensor, got {tuple(bank.shape)}")
        self.config = config
        self.extractor = PatchFeatureExtractor(trunk, config.stages, config.neighbourhood, config.max_side)
        if bank.shape[1] != self.extractor.dim:
            raise AnomalyError(
                f"the memory bank has {bank.shape[1]}-dimensional patches; stages {list(config.stages)} "
                f"give {self.extractor.dim}"
            )
        device = next(trunk.parameters()).device
        self.bank = bank.float().contiguous().to(device)
        self.bank_sq = (self.bank * self.bank).sum(1)
        self.threshold = float(threshold)
        self.loo_scores = tuple(float(s) for s in loo_scores)
        self.weights_sha256 = weights_sha256
        self.info = dict(info or {})

    # ---- teaching ---------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        images: Sequence[np.ndarray],
        trunk: LiteTrunk,
        config: AnomalyConfig | None = None,
        *,
        weights_sha256: str = "",
        progress: Callable[[str, int, int], None] | None = None,
    ) -> AnomalyScorer:
        """Teach from OK images only.

        Parameters
        ----------
        images
            OpenCV images of OK parts (any size each); at least two, for the leave-one-out threshold.
        trunk
            Frozen EfficientNet-Lite trunk (:func:`find_trunk` of the shipped model).
        config
            Settings (defaults: :class:`AnomalyConfig`).
        progress
            Called with ``(stage, done, total)``: ``"features"`` per image, ``"calibrate"`` per image.

        Raises
        ------
        AnomalyError
            Fewer than two images, or an image that is not a 2-D/3-D array.
        """
        cfg = config or AnomalyConfig()
        if len(images) < 2:
            raise AnomalyError(
                f"teach the anomaly scorer with at least 2 OK parts (got {len(images)}): the reject threshold "
                "is calibrated by leaving each OK part out in turn"
            )
        extractor = PatchFeatureExtractor(trunk, cfg.stages, cfg.neighbourhood, cfg.max_side)
        feats: list[torch.Tensor] = []
        for i, image in enumerate(images):
            try:
                f = extractor(image)
            except ValueError as exc:
                raise AnomalyError(f"OK image {i}: {exc}") from None
            feats.append(f.reshape(-1, f.shape[-1]))
            if progress is not None:
                progress("features", i + 1, len(images))
        all_feats = torch.cat(feats)
        source = torch.cat([torch.full((len(f),), i, dtype=torch.int32) for i, f in enumerate(feats)])
        pool = torch.arange(all_feats.shape[0])
        if len(pool) > cfg.coreset_pool:
            gen = torch.Generator().manual_seed(cfg.seed)
            pool = torch.randperm(len(pool), generator=gen)[: cfg.coreset_pool]
        keep = pool[
            greedy_coreset(all_feats[pool], cfg.bank_size, projection_dim=cfg.projection_dim, seed=cfg.seed)
        ]
        bank, bank_source = all_feats[keep], source[keep].to(all_feats.device)
        bank_sq = (bank * bank).sum(1)
        loo: list[float] = []
        for i, f in enumerate(feats):
            exclude = torch.full((len(f),), i, dtype=torch.int32, device=f.device)
            d, _ = nearest_distances(f, bank, bank_sq=bank_sq, exclude=exclude, bank_source=bank_source)
            loo.append(_reduce(d, cfg.top_k))
            if progress is not None:
                progress("calibrate", i + 1, len(images))
        threshold = calibrate_threshold(loo, cfg.false_reject_rate)
        info = {"ok_images": len(images), "patches": int(all_feats.shape[0]), "created": _now()}
        return cls(trunk, cfg, bank, threshold, loo, weights_sha256=weights_sha256, info=info)

    # ---- scoring ----------------------------------------------------------------------------------------
    def patch_distances(self, image: np.ndarray) -> torch.Tensor:
        """``(h, w)`` distance of each patch of ``image`` to its nearest OK patch."""
        f = self.extractor(image)
        h, w, d = f.shape
        dist, _ = nearest_distances(f.reshape(-1, d), self.bank, bank_sq=self.bank_sq)
        return dist.reshape(h, w)

    def score(self, image: np.ndarray) -> AnomalyScore:
        """Score one part (OpenCV image, any size)."""
        dmap = self.patch_distances(image)
        return AnomalyScore(_reduce(dmap.flatten(), self.config.top_k), self.threshold, dmap.cpu().numpy())

    def scores(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Part scores ``(B,)`` float64, one image at a time."""
        return np.array([_reduce(self.patch_distances(im).flatten(), self.config.top_k) for im in images])

    def with_threshold(self, threshold: float) -> AnomalyScorer:
        """The same bank with another threshold (e.g. chosen on the lab's false-reject / escape sweep)."""
        return AnomalyScorer(
            self.extractor.trunk, self.config, self.bank, threshold, self.loo_scores,
            weights_sha256=self.weights_sha256, info=self.info,
        )  # fmt: skip

    @property
    def bank_bytes(self) -> int:
        """Memory held by the bank (float32 points and their squared norms)."""
        return int(self.bank.numel() * 4 + self.bank_sq.numel() * 4)

    # ---- files ------------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The scorer as a ``torch.save`` payload of tensors and plain values (``weights_only`` loadable)."""
        payload = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "bank": self.bank.cpu().to(torch.float16),
            "threshold": self.threshold,
            "loo_scores": list(self.loo_scores),
            "weights_sha256": self.weights_sha256,
            "info": self.info,
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        return buf.getvalue()

    def save(self, path: str | Path) -> None:
        """Write atomically (temp file + rename)."""
        from core.storage.files import atomic_write_bytes

        atomic_write_bytes(Path(path), self.to_bytes())

    @classmethod
    def load(cls, path: str | Path | io.BytesIO, trunk: LiteTrunk | None = None) -> AnomalyScorer:
        """Read a saved scorer (``torch.load(weights_only=True)``).

        Parameters
        ----------
        trunk
            The trunk to score with; loaded from the packaged weights when ``None``.

        Raises
        ------
        AnomalyError
            Not an anomaly-scorer file, a newer format, corrupt, or made with other backbone weights.
        """
        where = "the anomaly scorer data" if isinstance(path, io.BytesIO) else str(path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise AnomalyError(f"anomaly scorer file not found: {where}") from None
        except Exception as exc:  # a damaged file fails in many ways inside the unpickler
            raise AnomalyError(f"{where} is not a readable anomaly scorer ({type(exc).__name__})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
            raise AnomalyError(f"{where} is not a MetaInspect anomaly scorer file")
        if int(payload.get("format_version", 0)) > FORMAT_VERSION:
            raise AnomalyError(
                f"{where} was written by a newer MetaInspect (format {payload['format_version']}); update"
            )
        try:
            config = AnomalyConfig.from_dict(dict(payload["config"]))
            bank = payload["bank"]
            threshold = float(payload["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AnomalyError(f"{where} is damaged: {exc}") from None
        if trunk is None:
            trunk, sha = load_trunk(config.variant)
        else:
            sha = payload.get("weights_sha256", "")
        saved = str(payload.get("weights_sha256", ""))
        if saved and sha and saved != sha:
            raise AnomalyError(
                f"{where} was taught on other backbone weights (sha256 {saved[:12]}...) than these ({sha[:12]}...)"
            )
        return cls(
            trunk, config, bank, threshold, payload.get("loo_scores", ()),
            weights_sha256=saved, info=dict(payload.get("info") or {}),
        )  # fmt: skip


def calibrate_threshold(ok_scores: Sequence[float], false_reject_rate: float) -> float:
    """The reject threshold for the leave-one-out scores of the taught OK parts: the larger of their empirical
    quantile (:func:`empirical_threshold`) and a Gaussian prediction bound (:func:`prediction_bound`).

    With few OK parts the empirical quantile is their largest score, and a fresh OK part lies above the largest
    of ``n`` with probability ``1 / (n + 1)`` (17% for 5 parts, however small the rate asked); the prediction
    bound widens the threshold by what the few scores leave unknown, so the rate asked holds from a handful
    of parts on (measured in docs/benchmarks.md, "Anomaly scorer"). With many parts the quantile decides.

    Raises
    ------
    AnomalyError
        No scores, a non-finite one, or a rate outside [0, 1).
    """
    threshold = empirical_threshold(ok_scores, false_reject_rate)
    if false_reject_rate <= 0.0 or len(ok_scores) < 2:
        return threshold
    return max(threshold, prediction_bound(ok_scores, false_reject_rate))


def empirical_threshold(ok_scores: Sequence[float], false_reject_rate: float) -> float:
    """The lowest observed OK score with at most ``false_reject_rate`` of the OK scores above it (an
    observed score, never a value between two).

    Raises
    ------
    AnomalyError
        No scores, or a non-finite one.
    """
    s = np.asarray(ok_scores, dtype=np.float64)
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise AnomalyError(f"need finite OK scores to calibrate a threshold, got {s.tolist()[:5]}")
    if not 0.0 <= false_reject_rate < 1.0:
        raise AnomalyError(f"false_reject_rate must lie in [0, 1), got {false_reject_rate}")
    allowed_above = int(np.floor(false_reject_rate * s.size + 1e-9))
    return float(np.sort(s)[s.size - 1 - allowed_above])


def prediction_bound(ok_scores: Sequence[float], false_reject_rate: float) -> float:
    """One-sided Gaussian prediction bound for one more OK score: ``mean + t * sd * sqrt(1 + 1/n)``, with
    ``t`` Student's quantile at ``1 - false_reject_rate`` for ``n - 1`` degrees of freedom (needs n >= 2)."""
    s = np.asarray(ok_scores, dtype=np.float64)
    n = s.size
    if n < 2 or not 0.0 < false_reject_rate < 1.0:
        raise AnomalyError(
            f"a prediction bound needs 2+ scores and a rate in (0, 1), got {n}, {false_reject_rate}"
        )
    t = student_t_quantile(1.0 - false_reject_rate, n - 1)
    return float(s.mean() + t * s.std(ddof=1) * np.sqrt(1.0 + 1.0 / n))


def student_t_quantile(p: float, df: int) -> float:
    """Student's t quantile by the Cornish-Fisher expansion round the normal quantile (Abramowitz and Stegun
    26.7.5), without a statistics library: within 2% of the exact value for ``p <= 0.99`` from 3 degrees of
    freedom on (lower below that: 4% at 2 and 0.98)."""
    z = statistics.NormalDist().inv_cdf(p)
    v = float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


def _reduce(distances: torch.Tensor, top_k: int) -> float:
    k = min(top_k, distances.numel())
    if k == 1:
        return float(distances.max())
    return float(torch.topk(distances, k).values.mean())


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def anomaly_overlay(image: np.ndarray, score: AnomalyScore, strength: float = 0.55) -> np.ndarray:
    """The part with its anomaly map drawn over it, as a BGR uint8 image of the same size (for the GUI).

    The colour runs from transparent (patch distance at half the threshold or less) through yellow to red
    (twice the threshold or more), so an OK part stays plain and the place of a defect glows.

    Raises
    ------
    ValueError
        ``score`` carries no patch map, or ``image`` is not an image.
    """
    from core.imaging.preprocess import to_channels

    if score.patch_map is None:
        raise ValueError("this anomaly score carries no map to draw")
    bgr = to_channels(image, 3)[:, :, ::-1]  # to_channels gives RGB; back to OpenCV's BGR
    bgr = np.ascontiguousarray(bgr if bgr.dtype == np.uint8 else np.clip(bgr, 0, 255).astype(np.uint8))
    full = upsample_map(score.patch_map, bgr.shape[:2])
    level = np.clip((full / max(score.threshold, 1e-12) - 0.5) / 1.5, 0.0, 1.0)  # 0.5x..2x threshold
    # JET from green-yellow (128) to full red (224); past 224 it turns dark red again
    heat = cv2.applyColorMap((128 + 96 * level).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = (strength * level)[:, :, None]
    return (bgr * (1.0 - alpha) + heat * alpha).astype(np.uint8)


def next_defect_name(existing: Sequence[str], stem: str = "new defect") -> str:
    """A class name for a defect nobody has named yet: ``"new defect 1"``, ``"new defect 2"``, ... (the first
    one not in ``existing``), for turning an unknown-defect part into a class with one key."""
    taken = {n.casefold() for n in existing}
    i = 1
    while f"{stem} {i}".casefold() in taken:
        i += 1
    return f"{stem} {i}"
