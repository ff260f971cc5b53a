"""Source strings: parsing, option checking and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.camera import SourceError, UnknownSourceError, open_source, parse_spec


def test_options_parse_after_question_mark_or_comma() -> None:
    assert parse_spec("camera:0?backend=v4l2&width=1280") == (
        "camera",
        "0",
        {"backend": "v4l2", "width": "1280"},
    )
    assert parse_spec("camera:1,backend=dshow") == ("camera", "1", {"backend": "dshow"})
    assert parse_spec("synthetic:seed=3,speed=1.5") == ("synthetic", "", {"seed": "3", "speed": "1.5"})
    assert parse_spec("synthetic") == ("synthetic", "", {})


def test_urls_and_pipelines_are_kept_verbatim() -> None:
    url = "http://10.0.0.5:8080/video?res=hd&fps=30"
    assert parse_spec(url) == ("http", url, {})
    assert parse_spec("gst:v4l2src device=/dev/video0 ! appsink") == (
        "gst",
        "v4l2src device=/dev/video0 ! appsink",
        {},
    )


def test_unknown_scheme_error_lists_known_schemes() -> None:
    with pytest.raises(UnknownSourceError) as info:
        open_source("webcam:0")
    message = str(info.value)
    assert "'webcam'" in message
    for scheme in ("synthetic", "camera", "file", "folder", "http", "rtsp", "gst"):
        assert scheme in message


def test_bare_index_and_path_get_a_hint(tmp_path: Path) -> None:
    with pytest.raises(UnknownSourceError, match="did you mean 'camera:0'"):
        open_source("0")
    with pytest.raises(UnknownSourceError, match="did you mean 'folder:"):
        open_source(str(tmp_path))


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("synthetic:sped=2", "unknown option"),
        ("synthetic:speed=fast", "not a valid float"),
        ("synthetic:mode=zigzag", "mode"),
        ("synthetic:variant=plastic", "known"),
        ("synthetic:oops", "key=value"),
        ("camera:front", "device index"),
        ("camera:0,backend=quantum", "known backends"),
        ("camera:0,zoom=2", "unknown option"),
        ("file:", "needs a path"),
        ("", "source string is needed"),
    ],
)
def test_bad_specs_raise_value_errors_naming_the_problem(spec: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        open_source(spec)


def test_missing_file_and_folder_say_which_and_why(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        open_source(f"file:{tmp_path / 'missing.avi'}")
    with pytest.raises(SourceError, match="not a folder"):
        open_source(f"folder:{tmp_path / 'nowhere'}")
    with pytest.raises(SourceError, match="no images"):
        open_source(f"folder:{tmp_path}")
    not_video = tmp_path / "clip.avi"
    not_video.write_bytes(b"RIFF....garbage")
    with pytest.raises(SourceError, match="cannot decode"):
        open_source(f"file:{not_video}")
