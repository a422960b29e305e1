"""searchkit.corpus."""
