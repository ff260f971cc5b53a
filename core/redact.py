"""Remove credentials from camera source strings before they are shown, logged, stored or exported.

A source such as ``rtsp://inspector:s3cret@10.0.0.7/stream`` lives in full only in the preferences file (the
app needs it to connect); everywhere else it reads ``rtsp://***@10.0.0.7/stream``. Passwords given as
options are masked too: ``user-pw=`` / ``user-id=`` (GStreamer ``rtspsrc``), ``password=`` / ``passwd=`` /
``pwd=`` / ``token=`` in a query string or option list.
"""

from __future__ import annotations

import re

MASK = "***"
# scheme://userinfo@ : userinfo is everything up to the last '@' before the host (passwords may hold '@').
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s?#]*)@(?=[^\s@/?#]*(?:[/?#\s]|$))"
)
# A quoted value runs to its closing quote (or the end: a cut-off quote must not let the rest leak), so it may
# hold spaces, '!' or '&'; an unquoted one ends at whitespace or a separator.
_SECRET_OPTION = re.compile(
    r"(?P<key>\b(?:user-pw|user-id|password|passwd|pwd|pass|token|secret|api[_-]?key)\s*=\s*)"
    r"(?:(?P<quote>[\"'])(?:(?!(?P=quote)).)*(?P=quote)?|[^\s&,;!\"']+)",
    re.IGNORECASE | re.DOTALL,
)


def redact_source(text: str) -> str:
    """``text`` with every URL's user name and password and every secret option replaced by ``***``.

    Works on a bare source string and on a whole message that quotes one; text without credentials is
    returned unchanged.
    """
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    return _SECRET_OPTION.sub(
        lambda m: f"{m.group('key')}{m.group('quote') or ''}{MASK}{m.group('quote') or ''}", text
    )
