"""searchkit.experiments."""
