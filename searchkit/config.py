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
    """True when ``SEARCHKIT_QUICK=1`` (set by the test suite): benchmarks shrink N (notebooks always run at full size)."""
    return os.environ.get("SEARCHKIT_QUICK", "") not in ("", "0")


def scifact_dir() -> Path:
    """Return SciFact's folder: ``$SEARCHKIT_SCIFACT``, else where ``download_beir`` or a shared copy put it.

    The first of ``data/beir/scifact`` (where ``download_beir("scifact")`` puts it) and ``../shared/beir/scifact``
    (beside the project) that holds ``corpus.jsonl``; when neither does, the download folder, for messages to name.
    """
    if "SEARCHKIT_SCIFACT" in os.environ:
        return Path(os.environ["SEARCHKIT_SCIFACT"])
    places = [DATA_DIR / "beir" / "scifact", ROOT.parent / "shared" / "beir" / "scifact"]
    return next((p for p in places if (p / "corpus.jsonl").is_file()), places[0])
