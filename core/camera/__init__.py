"""core.camera."""
