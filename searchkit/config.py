"""Where searchkit keeps its data and caches, and settings read from the environment (quick mode, SciFact's location)."""

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


def quick() -> bool:
    """True when ``SEARCHKIT_QUICK=1`` (set by the test suite): notebooks and benchmarks shrink N."""
    return os.environ.get("SEARCHKIT_QUICK", "") not in ("", "0")


def scifact_dir() -> Path:
    """Return where SciFact is looked for: ``$SEARCHKIT_SCIFACT`` or ``../shared/beir/scifact`` beside the project."""
    return Path(os.environ.get("SEARCHKIT_SCIFACT", ROOT.parent / "shared" / "beir" / "scifact"))
