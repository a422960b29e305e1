"""Repository tooling that works from a checkout only (not part of the importable package)."""
