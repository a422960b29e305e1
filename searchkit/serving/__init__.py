"""searchkit.serving."""
