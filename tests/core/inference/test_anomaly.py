"""The anomaly scorer on the real frozen EfficientNet-Lite0 trunk: teaching from OK parts only, calibration,
files, and the synthetic line's defects (including one the line never makes) caught."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from core.camera.synthetic import DEFECT_CLASSES, render_part, render_unseen_part
from core.imaging.preprocess import Preprocess
from core.inference import UNKNOWN_DEFECT, AnomalyScore, Decision, LiveClassifier, VerdictPolicy
from core.inference.anomaly import (
    AnomalyConfig,
    AnomalyError,
    AnomalyScorer,
    calibrate_threshold,
    empirical_threshold,
    find_trunk,
    prediction_bound,
    student_t_quantile,
    upsample_map,
)
from core.lab.anomaly_metrics import detection_at_false_reject
from core.models.efficientnet_lite import LiteTrunk, load_trunk

SIZE = 128


@pytest.fixture(scope="module")
def trunk() -> LiteTrunk:
    return load_trunk("lite0")[0]


@pytest.fixture(scope="module")
def line() -> dict[str, list[np.ndarray]]:
    """20 OK parts to teach, 40 other OK parts and 8 parts of each defect, plus 8 burnt ones (never made)."""
    rng = np.random.default_rng(14)
    parts = {"teach": [render_part(rng, "ok", size=SIZE)[0] for _ in range(20)]}
    parts["ok"] = [render_part(rng, "ok", size=SIZE)[0] for _ in range(40)]
    for cls in DEFECT_CLASSES[1:]:
        parts[cls] = [render_part(rng, cls, size=SIZE)[0] for _ in range(8)]
    parts["burn"] = [render_unseen_part(rng, size=SIZE)[0] for _ in range(8)]
    return parts


@pytest.fixture(scope="module")
def scorer(trunk: LiteTrunk, line: dict[str, list[np.ndarray]]) -> AnomalyScorer:
    return AnomalyScorer.fit(line["teach"], trunk, AnomalyConfig())


def test_taught_from_20_ok_parts_it_flags_95_percent_of_defects_at_5_percent_false_rejects(
    scorer: AnomalyScorer, line: dict[str, list[np.ndarray]]
) -> None:
    ok = scorer.scores(line["ok"])
    defects = np.concatenate([scorer.scores(line[c]) for c in [*DEFECT_CLASSES[1:], "burn"]])
    point = detection_at_false_reject(ok, defects, max_false_reject=0.05)
    assert 1.0 - point.escape_rate >= 0.95


def test_a_defect_type_never_made_by_the_line_is_flagged_at_the_calibrated_threshold(
    scorer: AnomalyScorer, line: dict[str, list[np.ndarray]]
) -> None:
    burnt = [scorer.score(im) for im in line["burn"]]
    assert sum(s.anomalous for s in burnt) >= 7  # 8 burnt parts: at most one escapes
    ok = scorer.scores(line["ok"])
    assert float((ok > scorer.threshold).mean()) <= 0.1  # calibrated for 2%; 40 fresh OK parts


def test_the_anomaly_map_is_hottest_on_the_defect(trunk: LiteTrunk, scorer: AnomalyScorer) -> None:
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(5):
        image, (x, y, w, h) = render_unseen_part(rng, size=SIZE)
        result = scorer.score(image)
        full = upsample_map(result.patch_map, image.shape[:2])
        assert full.shape == image.shape[:2]
        yy, xx = np.unravel_index(int(np.argmax(full)), full.shape)
        hits += int(x - 8 <= xx <= x + w + 8 and y - 8 <= yy <= y + h + 8)
    assert hits >= 4


def test_ok_only_live_classifier_passes_ok_parts_and_rejects_unknown_defects(
    scorer: AnomalyScorer, line: dict[str, list[np.ndarray]]
) -> None:
    live = LiveClassifier(
        None, Preprocess(224, 3, (0.5,) * 3, (0.25,) * 3), ["ok"], VerdictPolicy(), anomaly=scorer
    )
    verdicts = live.classify(list(range(16)), line["ok"][:8] + line["crack"][:8])
    assert [v.decision for v in verdicts[:8]].count(Decision.OK) >= 7
    rejected = [v for v in verdicts[8:] if v.decision is Decision.REJECT]
    assert len(rejected) >= 7 and all(v.class_name == UNKNOWN_DEFECT for v in rejected)
    assert all(v.anomaly is not None and v.anomaly.patch_map is not None for v in verdicts)


def test_loo_threshold_is_the_calibration_of_the_ok_scores(scorer: AnomalyScorer) -> None:
    assert len(scorer.loo_scores) == 20
    rate = AnomalyConfig().false_reject_rate
    assert scorer.threshold == calibrate_threshold(scorer.loo_scores, rate)
    assert scorer.threshold >= max(scorer.loo_scores)  # 20 parts: no room for 2% above


def test_empirical_threshold_rejects_at_most_the_asked_share() -> None:
    scores = np.arange(1, 101, dtype=float)  # 1..100
    assert empirical_threshold(scores, 0.05) == 95.0  # 5 of 100 above
    assert empirical_threshold(scores, 0.0) == 100.0
    assert empirical_threshold([3.0, 1.0], 0.5) == 1.0  # half may lie above; never between two scores
    assert empirical_threshold([3.0, 1.0], 0.49) == 3.0
    with pytest.raises(AnomalyError):
        empirical_threshold([], 0.1)
    with pytest.raises(AnomalyError):
        calibrate_threshold([1.0, float("nan")], 0.1)


def test_student_t_quantile_matches_the_printed_table() -> None:
    for p, df, table in [(0.98, 4, 2.999), (0.95, 9, 1.833), (0.99, 19, 2.539), (0.975, 3, 3.182)]:
        assert student_t_quantile(p, df) == pytest.approx(table, rel=0.02)
    assert student_t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-12)


def test_few_ok_parts_get_a_wider_threshold_than_their_largest_score() -> None:
    few = [1.0, 2.0, 3.0, 4.0, 5.0]  # mean 3, sd 1.5811
    bound = 3.0 + student_t_quantile(0.98, 4) * 1.5811388 * np.sqrt(1.2)
    assert prediction_bound(few, 0.02) == pytest.approx(bound)
    assert calibrate_threshold(few, 0.02) == pytest.approx(bound) and bound > 5.0
    # many parts: the empirical quantile decides when it lies above the bound (a long tail)
    rng = np.random.default_rng(0)
    many = np.concatenate([rng.normal(10, 1, 990), np.full(10, 30.0)])
    assert calibrate_threshold(many, 0.005) == empirical_threshold(many, 0.005) == 30.0
    assert calibrate_threshold(many, 0.0) == 30.0  # nothing may be rejected: the largest score


def test_bank_is_capped_by_the_coreset(trunk: LiteTrunk, line: dict[str, list[np.ndarray]]) -> None:
    small = AnomalyScorer.fit(line["teach"][:4], trunk, AnomalyConfig(bank_size=100))
    assert small.bank.shape == (100, small.extractor.dim)
    assert small.bank_bytes == 100 * (small.extractor.dim + 1) * 4
    assert small.info["patches"] > 100


def test_scorer_round_trips_through_a_weights_only_file(
    scorer: AnomalyScorer, trunk: LiteTrunk, line: dict[str, list[np.ndarray]], tmp_path: Path
) -> None:
    path = tmp_path / "anomaly.pt"
    scorer.save(path)
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == 1 and payload["bank"].dtype == torch.float16
    back = AnomalyScorer.load(path, trunk)
    assert back.threshold == scorer.threshold and back.config == scorer.config
    before, after = scorer.scores(line["crack"][:3]), back.scores(line["crack"][:3])
    assert np.allclose(before, after, rtol=2e-3)  # the bank is stored in float16


def test_a_corrupt_or_foreign_file_is_a_clear_error(tmp_path: Path, trunk: LiteTrunk) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(AnomalyError, match="not a readable anomaly scorer"):
        AnomalyScorer.load(bad, trunk)
    buf = io.BytesIO()
    torch.save({"format": "something-else"}, buf)
    buf.seek(0)
    with pytest.raises(AnomalyError, match="not a MetaInspect anomaly scorer"):
        AnomalyScorer.load(buf, trunk)
    with pytest.raises(AnomalyError, match="not found"):
        AnomalyScorer.load(tmp_path / "missing.pt", trunk)


def test_teaching_needs_two_ok_parts_and_real_images(trunk: LiteTrunk) -> None:
    with pytest.raises(AnomalyError, match="at least 2 OK parts"):
        AnomalyScorer.fit([], trunk)
    with pytest.raises(AnomalyError, match="at least 2 OK parts"):
        AnomalyScorer.fit([np.zeros((64, 64), np.uint8)], trunk)
    with pytest.raises(AnomalyError, match="OK image 1"):
        AnomalyScorer.fit([np.zeros((64, 64), np.uint8), np.zeros((4,), np.uint8)], trunk)


def test_a_bank_of_the_wrong_width_is_refused(trunk: LiteTrunk) -> None:
    with pytest.raises(AnomalyError, match="dimensional"):
        AnomalyScorer(trunk, AnomalyConfig(), torch.zeros(10, 7), 1.0)
    with pytest.raises(AnomalyError, match="non-empty"):
        AnomalyScorer(trunk, AnomalyConfig(), torch.zeros(0, 7), 1.0)


def test_find_trunk_finds_the_shipped_models_backbone_and_refuses_others() -> None:
    from core.storage.checkpoint import load_checkpoint

    ck = load_checkpoint("default")
    assert isinstance(find_trunk(ck.learner.model), LiteTrunk)
    with pytest.raises(AnomalyError, match="no EfficientNet-Lite backbone"):
        find_trunk(torch.nn.Linear(3, 3))


def test_native_resolution_keeps_the_aspect_ratio(scorer: AnomalyScorer) -> None:
    tall = np.full((320, 96), 128, np.uint8)
    result = scorer.score(tall)
    stride = scorer.extractor.stride
    assert result.patch_map.shape == (320 // stride, 96 // stride)


class _PooledLinear(torch.nn.Module):
    """A small real classifier head (untrained): average colour -> 2 class probabilities."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3, 2)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc(x.mean(dim=(2, 3))), dim=1)


class _ThreadRecorder:
    """A taught scorer that notes which thread scored each part."""

    def __init__(self, scorer: AnomalyScorer) -> None:
        self.scorer, self.threads = scorer, set()

    def score(self, image: np.ndarray) -> AnomalyScore:
        self.threads.add(threading.current_thread().name)
        return self.scorer.score(image)


def test_parallel_scoring_gives_the_same_verdicts_from_a_second_thread(
    scorer: AnomalyScorer, line: dict[str, list[np.ndarray]]
) -> None:
    parts = line["ok"][:3] + line["crack"][:3]
    pre = Preprocess(64, 3, (0.5,) * 3, (0.25,) * 3)
    verdicts = {}
    for parallel in (False, True):
        recorder = _ThreadRecorder(scorer)
        live = LiveClassifier(_PooledLinear(), pre, ["ok", "crack"], anomaly=recorder, parallel=parallel)
        assert live.parallel is parallel
        verdicts[parallel] = live.classify(list(range(6)), parts)
        here = threading.current_thread().name
        assert (recorder.threads == {here}) is not parallel
        assert all(v.anomaly is not None for v in verdicts[parallel])
    assert [(v.decision, v.class_name, v.anomaly.score) for v in verdicts[True]] == [
        (v.decision, v.class_name, v.anomaly.score) for v in verdicts[False]
    ]
    assert sum(v.anomaly.anomalous for v in verdicts[True][3:]) >= 2
    # without a classifier there is nothing to overlap: the scorer runs on the caller's thread
    assert not LiveClassifier(None, pre, ["ok"], anomaly=scorer, parallel=True).parallel
