"""A logged part's evidence: the model version that judged it and its nearest labelled examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.camera.synthetic import render_part
from core.inference.teach import TaughtModel, teach
from core.station.evidence import part_evidence
from core.storage import NewInspection, Workspace
from core.storage.checkpoint import load_checkpoint
from tests.conftest import finish_generator as _finish


def _taught(root: Path, checkpoint: Any, seed: int = 7) -> tuple[Workspace, TaughtModel]:
    ws = Workspace.open(root)
    rng = np.random.default_rng(seed)
    for name in ("ok", "spot", "chip"):
        ws.classes.add(name, is_defect=name != "ok")
        for _ in range(3):
            ws.examples.add(render_part(rng, name, size=128)[0], name)
    return ws, _finish(teach(ws, checkpoint, device="cpu"))


def _log(ws: Workspace, image: np.ndarray | None, model_id: int | None, verdict: str = "REJECT") -> Any:
    row = ws.inspections.append(
        NewInspection("chip", verdict, (0.1, 0.1, 0.8), part_id=1, model_id=model_id), image
    )
    return ws.inspections.get(row)


def test_the_nearest_examples_of_a_chipped_part_are_chipped_parts_of_the_version_that_judged_it(
    tmp_path: Path,
) -> None:
    shipped = load_checkpoint("default")
    ws, taught = _taught(tmp_path / "ws", shipped)
    assert taught.version is not None
    part = render_part(np.random.default_rng(99), "chip", size=128)[0]
    evidence = part_evidence(ws, _log(ws, part, taught.version.id), shipped)
    assert evidence.version == ws.models.get(taught.version.id) and evidence.note == ""
    assert evidence.neighbours[0].class_name == "chip"
    distances = [n.distance for n in evidence.neighbours]
    assert len(distances) == 3 and distances == sorted(distances) and 0.0 <= distances[0] < 1.0
    assert {n.example_id for n in evidence.neighbours} <= set(taught.example_ids)
    ws.close()


def test_an_example_seen_again_is_its_own_nearest_and_an_ok_part_without_image_has_no_neighbours(
    tmp_path: Path, small_checkpoint: Path
) -> None:
    checkpoint = load_checkpoint(small_checkpoint)  # a ProtoNet: embeddings straight from the backbone
    ws, taught = _taught(tmp_path / "ws", checkpoint)
    example = ws.examples.list("spot")[1]
    evidence = part_evidence(
        ws, _log(ws, ws.examples.load_image(example), taught.version.id), checkpoint, k=9
    )
    assert evidence.neighbours[0].example_id == example.id
    assert evidence.neighbours[0].distance == pytest.approx(0.0, abs=1e-5)
    assert len(evidence.neighbours) == 9 and evidence.neighbours[-1].distance > 1e-3
    blank = part_evidence(ws, _log(ws, None, taught.version.id, "OK"), checkpoint)
    assert blank.neighbours == () and "No image was kept" in blank.note and blank.version is not None
    with pytest.raises(ValueError, match="k must be"):
        part_evidence(ws, _log(ws, None, None), checkpoint, k=0)
    ws.close()
