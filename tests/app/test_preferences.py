"""Preferences that cannot be used: defaults, a message, the file kept as preferences.json.bad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from app.preferences import Preferences, load_preferences, save_preferences


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('["cpu"]', "holds a JSON list, not an object"),
        ('"cpu"', "holds a JSON str, not an object"),
        ('{"adapt_steps": "ten"}', "adapt_steps is 'ten', not a int"),
        ('{"source": 5}', "source is 5, not a str"),
        ('{"display_fps": true}', "display_fps is True"),
        ('{"min_margin": 7}', "min_margin must lie in [0, 1]"),
        ("\udcff", "could not be read"),
    ],
)
def test_unusable_preferences_fall_back_to_defaults_and_are_kept_as_bad(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "preferences.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    loaded, message = load_preferences(path)
    assert loaded == Preferences()
    assert message is not None and reason in message and "using defaults" in message
    assert not path.exists()
    assert (tmp_path / "preferences.json.bad").read_bytes() == content.encode("utf-8", "surrogateescape")
    assert load_preferences(path) == (Preferences(), None)  # the next start is clean


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a PC without CUDA")
def test_cuda_preference_on_a_pc_without_cuda_runs_on_the_cpu(tmp_path: Path) -> None:
    path = tmp_path / "preferences.json"
    save_preferences(Preferences(device="cuda", min_confidence=0.7), path)
    loaded, message = load_preferences(path)
    assert loaded == Preferences(device="cpu", min_confidence=0.7)
    assert message is not None and "no CUDA device" in message and "'cpu'" in message
    assert json.loads(path.read_text(encoding="utf-8"))["device"] == "cuda"  # the file is left for the GPU PC


def test_random_preference_files_never_stop_the_app(tmp_path: Path) -> None:
    """Seeded random JSON of every shape, and random bytes: defaults or the file's values, never an error."""
    import random

    chooser = random.Random(99)
    scalars = [None, True, 0, -1, 7, 0.5, 1e309, "", "cuda", "x" * 300, [], {}]
    path = tmp_path / "preferences.json"
    for i in range(200):
        if i % 4 == 0:
            path.write_bytes(chooser.randbytes(chooser.randint(0, 40)))
        else:
            keys = ["source", "device", "checkpoint", "workspace", "min_confidence", "adapt_steps", "other"]
            data = {k: chooser.choice(scalars) for k in chooser.sample(keys, chooser.randint(0, len(keys)))}
            path.write_text(json.dumps(data if i % 3 else list(data.items())), encoding="utf-8")
        prefs, _ = load_preferences(path)
        assert isinstance(prefs, Preferences) and prefs.device in ("auto", "cpu", "cuda")
        path.with_name("preferences.json.bad").unlink(missing_ok=True)


def test_adaptation_uses_the_models_own_steps_unless_the_user_chose() -> None:
    from core.training.adapt import DEFAULT_ADAPT_STEPS

    assert DEFAULT_ADAPT_STEPS is None and Preferences().adapt_steps == 0  # 0: the model's own steps
    assert Preferences(adapt_steps=25).adapt_steps == 25
    with pytest.raises(ValueError, match=r"0\.\.1000"):
        Preferences(adapt_steps=-1)
