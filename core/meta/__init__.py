"""core.meta."""
