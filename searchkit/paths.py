"""Where searchkit keeps its data and caches."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"


def cache_dir() -> Path:
    """Return the cache folder (``$SEARCHKIT_CACHE`` or ``data/cache``), creating it."""
    path = Path(os.environ.get("SEARCHKIT_CACHE", DATA_DIR / "cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path
