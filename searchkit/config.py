"""Settings read from the environment: quick mode for tests and CI, and where the shared SciFact copy lives."""

from __future__ import annotations

import os
from pathlib import Path

from .paths import ROOT


def quick() -> bool:
    """True when ``SEARCHKIT_QUICK=1`` (set by the test suite): notebooks and benchmarks shrink N."""
    return os.environ.get("SEARCHKIT_QUICK", "") not in ("", "0")


def scifact_dir() -> Path:
    """Return where SciFact is looked for: ``$SEARCHKIT_SCIFACT`` or ``../shared/beir/scifact`` beside the project."""
    return Path(os.environ.get("SEARCHKIT_SCIFACT", ROOT.parent / "shared" / "beir" / "scifact"))
