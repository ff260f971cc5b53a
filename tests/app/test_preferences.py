"""Preferences that cannot be used: defaults, a message, the file kept as preferences.json.bad."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.preferences import Preferences, load_preferences, save_preferences
from tests.fuzzing import peak_memory_growth


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('["cpu"]', "holds a JSON list, not an object"),
        ('"cpu"', "holds a JSON str, not an object"),
        ('{"adapt_steps": "ten"}', "adapt_steps is 'ten', not a int"),
        ('{"source": 5}', "source is 5, not a str"),
        ('{"display_fps": true}', "display_fps is True"),
        ('{"min_margin": 7}', "min_margin must lie in [0, 1]"),
        ('{"workspace": "a\\u0000b"}', "workspace holds a NUL character"),
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


PREFERENCE_KEYS = [f.name for f in fields(Preferences)] + ["other"]
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300)
JSON_ANY = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
PREFERENCE_FILES = st.one_of(
    st.binary(max_size=200),  # anything at all
    st.dictionaries(st.sampled_from(PREFERENCE_KEYS), JSON_ANY).map(lambda d: json.dumps(d).encode()),
    JSON_ANY.map(lambda v: json.dumps(v).encode()),  # a list, a string, a number...
    st.integers(1, 100_000).map(lambda depth: b"[" * depth + b"]" * depth),  # nesting deeper than the parser
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(PREFERENCE_FILES)
def test_any_preference_file_gives_usable_preferences_and_at_most_one_line(
    tmp_path: Path, content: bytes
) -> None:
    """Random bytes and JSON of every shape: the file's values or defaults, a one-line message, the file
    kept as ``.bad`` when unusable, nothing else written, memory bounded; never an error."""
    folder = tmp_path / "config"
    folder.mkdir(exist_ok=True)
    for stale in folder.iterdir():
        stale.unlink()
    path = folder / "preferences.json"
    path.write_bytes(content)
    with peak_memory_growth() as grew:
        prefs, message = load_preferences(path)
    assert not grew or grew[0] < 100
    assert isinstance(prefs, Preferences) and prefs.device in ("auto", "cpu", "cuda")
    assert message is None or len(message.splitlines()) == 1
    left = sorted(p.name for p in folder.iterdir())
    if left == ["preferences.json.bad"]:
        assert message is not None and (folder / "preferences.json.bad").read_bytes() == content
        assert prefs == Preferences()
    else:
        assert left == ["preferences.json"] and path.read_bytes() == content


def test_adaptation_uses_the_models_own_steps_unless_the_user_chose() -> None:
    from core.config import DEFAULT_ADAPT_STEPS

    assert DEFAULT_ADAPT_STEPS is None and Preferences().adapt_steps == 0  # 0: the model's own steps
    assert Preferences(adapt_steps=25).adapt_steps == 25
    with pytest.raises(ValueError, match=r"0\.\.1000"):
        Preferences(adapt_steps=-1)
