"""Imports every built-in source module so their schemes are registered with :data:`SOURCES`."""

from core.camera import folder, opencv_sources, synthetic_line

__all__ = ["folder", "opencv_sources", "synthetic_line"]
