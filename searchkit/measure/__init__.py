"""searchkit.measure."""
