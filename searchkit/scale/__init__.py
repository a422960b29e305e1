"""searchkit.scale."""
