"""MetaInspect Qt application: windows, views and workers composed from ``core`` objects."""
