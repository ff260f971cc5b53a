"""What the app shows: one line, and no camera password."""

from __future__ import annotations


def test_app_messages_never_show_a_camera_password() -> None:
    from app.session import user_message
    from core.camera.frame import SourceError

    text = user_message(SourceError("could not open source 'rtsp://op:hunter2@10.0.0.7/s': timeout"))
    assert "hunter2" not in text and "rtsp://***@10.0.0.7/s" in text
