"""Property-based fuzzing (hypothesis) of camera source strings: the spec parser and credential redaction.

Source strings come from preferences files, the command line and the settings dialog. Any text gives a
source or a one-line ``ValueError``/``SourceError`` (nothing is opened here), and a password written in any
of the accepted forms never survives :func:`core.redact.redact_source`.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import core.camera.sources  # noqa: F401  (registers the built-in schemes)
from core.camera import SourceError, parse_spec
from core.camera.source import SOURCES, FrameSource
from core.redact import MASK, redact_source
from core.station.errors import describe_error

PREFIXES = [
    "",
    "synthetic:",
    "camera:",
    "camera:0,",
    "file:",
    "folder:",
    "gst:",
    "rtsp://",
    "http://",
    "x:",
    "?",
]
SPECS = st.one_of(
    st.text(max_size=200),
    st.tuples(st.sampled_from(PREFIXES), st.text(max_size=200)).map("".join),
    st.tuples(st.sampled_from(PREFIXES), st.text("a=,&?:/@ 0", max_size=60)).map("".join),
    st.text("ab/", min_size=250, max_size=5000),  # longer than a file name may be
)


@settings(max_examples=300)
@given(SPECS)
def test_any_source_string_parses_or_raises_one_line_value_error(spec: str) -> None:
    try:
        scheme, target, options = parse_spec(spec)
    except ValueError as exc:
        assert len(describe_error(exc).splitlines()) == 1
    else:
        assert isinstance(scheme, str) and isinstance(target, str)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in options.items())
    try:
        source = SOURCES.create(spec)
    except (ValueError, SourceError) as exc:  # as shown (control characters in the spec become spaces)
        assert len(describe_error(exc).splitlines()) == 1
    else:
        assert isinstance(source, FrameSource) and source.name == redact_source(source.name)
        assert not source.is_open


def test_a_source_string_longer_than_a_file_name_is_an_unknown_scheme_not_an_os_error() -> None:
    # Regression (found while writing the fuzzing above): the "did you mean folder:?" hint asked the file system about the
    # whole string, and a name over 255 bytes raised OSError (File name too long) instead of the one-line error.
    with pytest.raises(ValueError, match="unknown frame source scheme"):
        SOURCES.create("a" * 5000)


# Characters a user may type in a password (URL userinfo may not hold '/', '?', '#' or whitespace unencoded).
URL_PASSWORDS = st.text(
    st.characters(codec="ascii", categories=["L", "N", "P", "S"], exclude_characters="/?#"),
    min_size=1,
    max_size=24,
)
BARE_OPTION = st.text(
    st.characters(codec="ascii", categories=["L", "N", "P", "S"], exclude_characters="&,;!\"'"),
    min_size=1,
    max_size=24,
)
QUOTED_OPTION = st.text(st.characters(codec="ascii", exclude_characters='"\x00'), min_size=1, max_size=24)
HOSTS = st.sampled_from(["10.0.0.7", "cam.local:554", "[fe80::1]:8554"])


@settings(max_examples=300)
@given(URL_PASSWORDS, st.sampled_from(["rtsp", "http", "https"]), HOSTS)
def test_a_url_password_never_survives_redaction(password: str, scheme: str, host: str) -> None:
    spec = f"{scheme}://inspector:{password}@{host}/stream1"
    expected = f"{scheme}://{MASK}@{host}/stream1"
    assert redact_source(spec) == expected
    message = f"Camera source {spec!r} cannot be used: timeout"  # the password as repr() escapes it
    assert redact_source(message) == message.replace(repr(spec)[1:-1], expected)
    assert SOURCES.create(spec).name == expected


@settings(max_examples=300)
@given(
    st.sampled_from(["user-pw", "password", "passwd", "pwd", "token", "api_key"]),
    st.one_of(
        BARE_OPTION,
        QUOTED_OPTION.map(lambda v: f'"{v}"'),
        QUOTED_OPTION.filter(lambda v: "'" not in v).map(lambda v: f"'{v}'"),
    ),
)
def test_a_password_option_never_survives_redaction(key: str, value: str) -> None:
    quote = value[0] if value[0] in "\"'" and len(value) > 1 and value[-1] == value[0] else ""
    masked = f"{key}={quote}{MASK}{quote}"
    pipeline = f"gst:rtspsrc location=rtsp://h/s {key}={value} ! decodebin ! appsink"
    assert redact_source(pipeline) == f"gst:rtspsrc location=rtsp://h/s {masked} ! decodebin ! appsink"
    if not quote:  # a query string holds no quotes
        url = f"http://host/cgi?user=op&{key}={value}&res=hd"
        assert redact_source(url) == f"http://host/cgi?user=op&{masked}&res=hd"


@settings(max_examples=200)
@given(SPECS)
def test_redaction_is_idempotent_and_keeps_text_without_credentials(text: str) -> None:
    once = redact_source(text)
    assert redact_source(once) == once
    if "@" not in text and "=" not in text:
        assert once == text
