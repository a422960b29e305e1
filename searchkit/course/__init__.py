"""searchkit.course."""
