"""searchkit.encoders."""
