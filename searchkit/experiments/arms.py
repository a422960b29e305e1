"""Online experiments: two engine configurations ("arms") compared on real users' clicks.

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
import random
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from searchkit.engine import MODES, Hit, SearchEngine, SearchSettings
from searchkit.errors import ExperimentError, NotShownError, UnknownImpressionError
from searchkit.relevance import metrics
from searchkit.relevance.evaluate import team_draft
from searchkit.relevance.fusion import FUSIONS

DESIGNS: tuple[str, ...] = ("split", "interleave")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
MAX_SESSION_CHARS = 128


@dataclass(frozen=True)
class Arm:
    """One configuration of the engine: a name, a search mode and (for hybrid) a fusion."""

    name: str
    mode: str
    fusion: str | None = None

    def settings(self, defaults: SearchSettings) -> SearchSettings:
        """Return ``defaults`` (the engine's) with this arm's mode and fusion: what each of its search calls carries."""
        return replace(defaults, mode=self.mode, fusion=self.fusion or defaults.fusion)  # type: ignore[arg-type]

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
    if fusion and fusion not in FUSIONS:
        raise ExperimentError(f"arm {spec!r} has unknown fusion {fusion!r}: choose one of {', '.join(FUSIONS)}")
    return Arm(name.strip(), mode, fusion or None)


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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS impressions (
    id TEXT PRIMARY KEY, created REAL NOT NULL, session TEXT, query TEXT NOT NULL,
    arm INTEGER  -- split: the session's arm (0 or 1); interleave: NULL
);
CREATE TABLE IF NOT EXISTS shown (
    impression_id TEXT NOT NULL REFERENCES impressions(id), doc_id TEXT NOT NULL,
    rank INTEGER NOT NULL, team INTEGER NOT NULL,  -- the arm (0 or 1) that contributed the document
    PRIMARY KEY (impression_id, doc_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clicks (
    impression_id TEXT NOT NULL, doc_id TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (impression_id, doc_id),
    FOREIGN KEY (impression_id, doc_id) REFERENCES shown(impression_id, doc_id)
) WITHOUT ROWID;
"""


class EventStore:
    """Impressions and clicks of one experiment in a SQLite file; safe to share between threads."""

    def __init__(self, path: str | Path, design: str, arms: Sequence[Arm]):
        self.path, self.design, self.arms = Path(path), check_design(design), tuple(arms)
        if self.path.is_dir():
            raise ExperimentError(f"events path {self.path} is a folder: give a file name, e.g. {self.path}/events.db")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: every commit syncs the write-ahead log, so an acknowledged event survives a crash of the
            # process (SIGKILL) and of the machine; NORMAL would survive only the former.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise ExperimentError(f"cannot open events file {self.path} ({e}): give a new file name with --events") from None
        self._check_meta()

    def _check_meta(self) -> None:
        want = {"design": self.design, "arms": ",".join(f"{a.name}={a.label}" for a in self.arms)}
        with self._lock:
            have = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            if not have:
                self._db.executemany("INSERT INTO meta VALUES (?, ?)", want.items())
        if have and have != want:
            raise ExperimentError(
                f"events file {self.path} holds another experiment ({have['design']}: {have['arms']}), not "
                f"({want['design']}: {want['arms']}): give a new file with --events, or the same arms and design"
            )

    def _write(self, statements: Callable[[sqlite3.Connection], object]):
        """Run ``statements`` in one transaction; return once it is committed (and synced)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = statements(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return out

    def add_impression(self, impression_id: str, query: str, shown: Sequence[tuple[str, int]],
                       session: str | None = None, arm: int | None = None) -> None:  # fmt: skip
        """Record one result list: ``shown`` holds ``(doc_id, team)`` in rank order (team = contributing arm)."""

        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO impressions VALUES (?, ?, ?, ?, ?)", (impression_id, time.time(), session, query, arm))
            db.executemany("INSERT INTO shown VALUES (?, ?, ?, ?)",
                           [(impression_id, d, r, t) for r, (d, t) in enumerate(shown)])  # fmt: skip

        self._write(write)

    def add_click(self, impression_id: str, doc_id: str) -> bool:
        """Record a click; return True if it is new, False if it was already recorded (counted once).

        Raises :class:`UnknownImpressionError` for an impression never recorded and :class:`NotShownError`
        for a document that impression did not show.
        """

        def write(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT 1 FROM shown WHERE impression_id = ? AND doc_id = ?", (impression_id, doc_id))
            if row.fetchone() is None:
                if db.execute("SELECT 1 FROM impressions WHERE id = ?", (impression_id,)).fetchone() is None:
                    raise UnknownImpressionError(
                        f"no impression {impression_id[:64]!r}: send the impression_id of a /search answer"
                    )
                raise NotShownError(
                    f"impression {impression_id[:64]!r} did not show document {doc_id[:200]!r}: "
                    "send the id of one of its results"
                )
            cur = db.execute("INSERT OR IGNORE INTO clicks VALUES (?, ?, ?)", (impression_id, doc_id, time.time()))
            return cur.rowcount == 1

        return self._write(write)

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def counts(self) -> dict:
        """Return raw totals: impressions, clicks, and per arm (split) or per outcome (interleave)."""
        n_imp, n_clicks = self._read("SELECT (SELECT COUNT(*) FROM impressions), (SELECT COUNT(*) FROM clicks)")[0]
        out = {"impressions": n_imp, "clicks": n_clicks}
        if self.design == "split":
            rows = self._read(
                "SELECT i.arm, COUNT(*), COALESCE(SUM(c.n > 0), 0), COALESCE(SUM(c.n), 0) FROM impressions i "
                "LEFT JOIN (SELECT impression_id, COUNT(*) n FROM clicks GROUP BY impression_id) c "
                "ON c.impression_id = i.id GROUP BY i.arm"
            )
            per = {arm: (imp, clicked, clicks) for arm, imp, clicked, clicks in rows}
            out["arms"] = [dict(zip(("impressions", "clicked", "clicks"), per.get(i, (0, 0, 0)))) for i in range(2)]
            return out
        wins_a, wins_b, ties, clicked = self._read(
            "SELECT COALESCE(SUM(a > b), 0), COALESCE(SUM(b > a), 0), COALESCE(SUM(a = b), 0), COUNT(*) FROM "
            "(SELECT SUM(s.team = 0) a, SUM(s.team = 1) b FROM clicks c JOIN shown s "
            "ON s.impression_id = c.impression_id AND s.doc_id = c.doc_id GROUP BY c.impression_id)"
        )[0]
        team_clicks = dict(self._read(
            "SELECT s.team, COUNT(*) FROM clicks c JOIN shown s "
            "ON s.impression_id = c.impression_id AND s.doc_id = c.doc_id GROUP BY s.team"
        ))  # fmt: skip
        out.update(wins=[wins_a, wins_b], ties=ties, clicked=clicked, team_clicks=[team_clicks.get(i, 0) for i in range(2)])
        return out

    def clicks_by_rank(self) -> list[int]:
        """Return the number of clicks at each rank (0 = top), over all impressions."""
        rows = self._read("SELECT s.rank, COUNT(*) FROM clicks c JOIN shown s "
                          "ON s.impression_id = c.impression_id AND s.doc_id = c.doc_id GROUP BY s.rank")  # fmt: skip
        n = max((r for r, _ in rows), default=-1) + 1
        out = [0] * n
        for r, c in rows:
            out[r] = c
        return out

    def close(self) -> None:
        """Close the database (every acknowledged write is already on disk)."""
        with self._lock:
            self._db.close()


def _arm_info(arm: Arm) -> dict:
    return {"mode": arm.mode, "fusion": arm.fusion}


def summarize(design: str, arms: Sequence[Arm], counts: dict) -> dict:
    """Return the ``GET /experiment`` answer for ``counts`` (from :meth:`EventStore.counts`): totals, arms, statistics."""
    a, b = arms
    out: dict = {"design": design, "impressions": counts["impressions"], "clicks": counts["clicks"], "arms": {}}
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


class Experiment:
    """An experiment between two arms with a design and an event store; answers searches and records clicks.

    With ``seed``, impression ids (and so the interleavings) repeat from run to run: for teaching and tests.
    """

    def __init__(self, arms: Sequence[Arm] | str, design: str, events: str | Path, seed: int | None = None):
        self.arms = parse_arms(arms) if isinstance(arms, str) else tuple(arms)
        if len(self.arms) != 2:
            raise ExperimentError(f"an experiment needs two arms, got {len(self.arms)}")
        self.design = check_design(design)
        self.salt = ",".join(f"{a.name}={a.label}" for a in self.arms)
        self.store = EventStore(events, self.design, self.arms)
        # impression ids (which also seed each team draft): random, or reproducible from ``seed``
        self._ids = random.Random(seed) if seed is not None else random.SystemRandom()

    def __repr__(self) -> str:
        return f"Experiment({self.salt!r}, design={self.design!r}, events={str(self.store.path)!r})"

    def search(self, search: Callable[[Arm], list[Hit]], query: str, k: int,
               session: str | None = None) -> tuple[list[Hit], str, str]:  # fmt: skip
        """Answer ``query`` with ``search(arm)`` (that arm's top ``k``); record the impression.

        Return ``(hits, impression_id, session)``; a missing session gets a fresh id (split needs one).
        """
        session = session or new_session()
        impression_id = uuid.UUID(int=self._ids.getrandbits(128), version=4).hex
        if self.design == "split":
            arm = assign(session, self.salt)
            hits = search(self.arms[arm])[:k]
            self.store.add_impression(impression_id, query, [(h.id, arm) for h in hits], session, arm)
            return hits, impression_id, session
        lists = [search(arm)[:k] for arm in self.arms]
        by_id = [{h.id: h for h in hits} for hits in lists]
        ids, teams = team_draft([h.id for h in lists[0]], [h.id for h in lists[1]], k, interleaving_rng(impression_id))
        self.store.add_impression(impression_id, query, list(zip(ids, teams)), session)
        return [by_id[t][d] for d, t in zip(ids, teams)], impression_id, session

    def click(self, impression_id: str, doc_id: str) -> bool:
        """Record a click on ``doc_id`` in ``impression_id``; True if new (see :meth:`EventStore.add_click`)."""
        return self.store.add_click(impression_id, doc_id)

    def summary(self) -> dict:
        """Return the experiment's state: design, totals, per-arm counts and the comparison's statistics."""
        return summarize(self.design, self.arms, self.store.counts())

    def close(self) -> None:
        """Close the event store."""
        self.store.close()
