"""The arms of an online experiment: two engine configurations, how a session is assigned, the summary.

``split``: each session is assigned to one arm by a stable hash and sees only that arm's results; the
arms are compared by click-through rate (share of impressions with at least one click).
``interleave``: every result list is a team-draft interleaving of both arms' rankings; an impression
whose clicks went more to one arm's documents is a win for that arm (Chapelle et al. 2012).

Impressions (what was shown, and which arm contributed each result) and clicks are stored in SQLite
(WAL, ``synchronous=FULL``): a click is acknowledged only after its transaction is on disk, so it
survives the server being killed. The engine knows nothing of experiments: each arm's settings travel
with its search call.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from searchkit.engine import MODES, Hit, SearchEngine, SearchSettings
from searchkit.errors import ExperimentError, InputError
from searchkit.relevance import metrics

DESIGNS: tuple[str, ...] = ("split", "interleave")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
MAX_SESSION_CHARS = 128


@dataclass(frozen=True)
class Arm:
    """One configuration of the engine: a name and the :class:`SearchSettings` its spec names (mode, fusion).

    ``own_fusion`` says the spec named a fusion; without one the arm fuses as the engine's defaults do
    (the corpus's tuned fusion).
    """

    name: str
    preset: SearchSettings
    own_fusion: bool = False

    @classmethod
    def of(cls, name: str, mode: str, fusion: str | None = None) -> Arm:
        """Make an arm from a mode and an optional fusion (None: the engine's), checked as :class:`SearchSettings` checks."""
        preset = SearchSettings(mode, fusion) if fusion else SearchSettings(mode)  # type: ignore[arg-type]
        return cls(name, preset, bool(fusion))

    @property
    def mode(self) -> str:
        """Return the arm's search mode."""
        return self.preset.mode

    @property
    def fusion(self) -> str | None:
        """Return the fusion the spec named, or None (the engine's)."""
        return self.preset.fusion if self.own_fusion else None

    def settings(self, defaults: SearchSettings) -> SearchSettings:
        """Return ``defaults`` (the engine's) with this arm's mode and fusion: what each of its search calls carries."""
        return defaults.with_(mode=self.mode, fusion=self.fusion)  # type: ignore[arg-type]

    @property
    def label(self) -> str:
        """Return ``mode`` or ``mode:fusion``, as written in the spec."""
        return f"{self.mode}:{self.fusion}" if self.fusion else self.mode


def parse_arm(spec: str) -> Arm:
    """Parse one ``NAME=MODE[:FUSION]`` (e.g. ``treatment=hybrid:zscore``) into an :class:`Arm`."""
    name, eq, setting = str(spec).strip().partition("=")
    if not eq or not _NAME.match(name.strip()):
        raise ExperimentError(
            f"arm {spec!r} is not NAME=MODE[:FUSION]: write e.g. control=bm25 or treatment=hybrid:rrf "
            "(NAME starts with a letter; letters, digits, - and _)"
        )
    mode, _, fusion = setting.strip().partition(":")
    if mode not in MODES:
        raise ExperimentError(f"arm {spec!r} has unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if fusion and mode != "hybrid":
        raise ExperimentError(f"arm {spec!r} gives a fusion to mode {mode!r}: only hybrid fuses (hybrid:{fusion})")
    try:
        return Arm.of(name.strip(), mode, fusion or None)
    except InputError as e:
        raise ExperimentError(f"arm {spec!r}: {e}") from None


def parse_arms(spec: str) -> tuple[Arm, Arm]:
    """Parse ``control=bm25,treatment=hybrid`` into two arms (the second is compared against the first)."""
    parts = [p for p in str(spec).split(",") if p.strip()]
    if len(parts) != 2:
        raise ExperimentError(
            f"experiment {spec!r} has {len(parts)} arm(s): give exactly two, e.g. control=bm25,treatment=hybrid"
        )
    a, b = parse_arm(parts[0]), parse_arm(parts[1])
    if a.name == b.name:
        raise ExperimentError(f"both arms are named {a.name!r}: give them different names")
    return a, b


def check_design(design: str) -> str:
    """Return ``design`` if it is ``split`` or ``interleave``; raise an error naming the choices otherwise."""
    if design not in DESIGNS:
        raise ExperimentError(f"unknown experiment design {design!r}: choose one of {', '.join(DESIGNS)}")
    return design


def assign(session: str, salt: str = "") -> int:
    """Return the arm (0 or 1) of ``session``: a stable hash, the same in every process and run."""
    digest = hashlib.sha256(f"{salt}\x00{session}".encode()).digest()
    return digest[0] & 1


def new_session() -> str:
    """Return a fresh random session id."""
    return uuid.uuid4().hex


def interleaving_rng(impression_id: str) -> np.random.Generator:
    """Return the random generator that draws the coin flips of one impression's team draft (seeded by its id)."""
    return np.random.default_rng(int(hashlib.sha256(impression_id.encode()).hexdigest()[:16], 16))


def search_arm(engine: SearchEngine, arm: Arm, query: str, k: int, prefix: str | None = None) -> list[Hit]:
    """Return ``engine``'s top ``k`` for ``query`` with ``arm``'s settings, passed with this call only."""
    return engine.search_timed([query], k, settings=arm.settings(engine.defaults), prefix=prefix).hits[0]


def _arm_info(arm: Arm) -> dict:
    return {"mode": arm.mode, "fusion": arm.fusion}


def summarize(design: str, arms: Sequence[Arm], counts: dict) -> dict:
    """Return the ``GET /experiment`` answer for ``counts`` (from :meth:`EventStore.counts`): totals, arms, statistics."""
    a, b = arms
    out: dict = {"design": design, "impressions": counts["impressions"], "clicks": counts["clicks"], "arms": {},
                 # left out of the counts: dropped while another process locked the file, pruned by --events-max-mb
                 "impressions_dropped": counts.get("dropped", 0), "impressions_pruned": counts.get("pruned", 0)}
    if design == "split":
        for arm, c in zip(arms, counts["arms"]):
            lo, hi = metrics.proportion_ci(c["clicked"], c["impressions"]) if c["impressions"] else (0.0, 1.0)
            ctr = c["clicked"] / c["impressions"] if c["impressions"] else 0.0
            out["arms"][arm.name] = {**_arm_info(arm), **c, "ctr": ctr, "ctr_ci": [lo, hi]}
        ca, cb = counts["arms"]
        if ca["impressions"] and cb["impressions"]:
            d = metrics.two_proportion_test(cb["clicked"], cb["impressions"], ca["clicked"], ca["impressions"])
            out["difference"] = {"of": f"{b.name} - {a.name}", "ctr": d.diff, "ci": [d.low, d.high], "p_value": d.p_value}
        else:
            out["difference"] = None
        return out
    for i, arm in enumerate(arms):
        out["arms"][arm.name] = {**_arm_info(arm), "wins": counts["wins"][i], "ties": counts["ties"],
                                 "losses": counts["wins"][1 - i], "clicks": counts["team_clicks"][i]}  # fmt: skip
    p = metrics.preference_test(counts["wins"][1], counts["wins"][0], counts["ties"])
    out["impressions_with_clicks"] = counts["clicked"]
    out["impressions_without_clicks"] = counts["impressions"] - counts["clicked"]
    out["preference"] = {"for": b.name, "value": p.diff, "ci": [p.low, p.high], "p_value": p.p_value}
    return out


