"""searchkit.relevance."""
