"""Qt workers wrapping core generators; they never touch widgets."""
