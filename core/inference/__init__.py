"""core.inference."""
