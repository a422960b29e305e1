"""searchkit.index."""
