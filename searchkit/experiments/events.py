"""The experiment's event store: impressions and clicks in SQLite, safe under threads and process restarts."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

from searchkit.errors import ExperimentError, NotShownError, UnknownImpressionError
from searchkit.experiments.arms import Arm, check_design

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
FORMAT_VERSION = 1  # PRAGMA user_version and meta 'format' of a file this store writes
COLUMNS = {  # the tables of an events file and their columns, in order: anything else is a foreign file
    "meta": ["key", "value"],
    "impressions": ["id", "created", "session", "query", "arm"],
    "shown": ["impression_id", "doc_id", "rank", "team"],
    "clicks": ["impression_id", "doc_id", "created"],
}
IMPRESSION_BUSY_MS = 100  # another process holding the lock longer: the impression is dropped (and counted)
CLICK_BUSY_MS = 10_000  # a click is acknowledged only once stored: it waits for the lock this long


def _refuse(path: Path, why: str) -> ExperimentError:
    return ExperimentError(f"events file {path} {why}: give a new file name with --events (this one is left as it is)")


def check_events_file(path: Path) -> None:
    """Raise :class:`ExperimentError` unless ``path`` is absent, empty or an intact events file; never write to it."""
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    if not path.is_file():
        raise _refuse(path, "is not a regular file")
    try:
        db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as e:
        raise _refuse(path, f"cannot be opened ({e})") from None
    try:
        problems = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
        if problems != ["ok"]:
            first = next((line for p in problems for line in p.splitlines() if not line.startswith("***")), "?")
            raise _refuse(path, f"is damaged (integrity check: {first[:120]})")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {t: [r[1] for r in db.execute(f'PRAGMA table_info("{t}")')] for t in tables if t in COLUMNS}
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if columns.get("meta") == COLUMNS["meta"] else {}
    except sqlite3.Error as e:
        raise _refuse(path, f"is not a readable SQLite database ({e})") from None
    finally:
        db.close()
    if tables != set(COLUMNS) or columns != COLUMNS:
        raise _refuse(path, f"is not a searchkit events file (tables {sorted(tables)[:8]})")
    stamped = meta.get("format", str(FORMAT_VERSION))
    if version not in (0, FORMAT_VERSION) or stamped != str(FORMAT_VERSION):
        found = version if version not in (0, FORMAT_VERSION) else stamped[:20]
        raise _refuse(path, f"has format {found}, this searchkit reads {FORMAT_VERSION}")
    if meta and not {"design", "arms"} <= set(meta) or set(meta) - {"design", "arms", "format"}:
        raise _refuse(path, f"has a foreign meta table (keys {sorted(meta)[:6]})")


class EventStore:
    """Impressions and clicks of one experiment in a SQLite file; safe to share between threads.

    The file is checked before anything is written (:func:`check_events_file`). With ``max_bytes``, the oldest
    impressions (with their clicks) are pruned once the data outgrows it. An impression that cannot get the
    write lock within ``IMPRESSION_BUSY_MS`` is dropped and counted in ``dropped``; the search still answers.
    """

    def __init__(self, path: str | Path, design: str, arms: Sequence[Arm], max_bytes: int | None = None):
        self.path, self.design, self.arms = Path(path), check_design(design), tuple(arms)
        self.max_bytes, self.dropped, self.pruned = max_bytes, 0, 0
        if self.path.is_dir():
            raise ExperimentError(f"events path {self.path} is a folder: give a file name, e.g. {self.path}/events.db")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
            why = f"{blocker} is a file, not a folder" if blocker else e.strerror
            raise ExperimentError(f"cannot create the folder of events file {self.path} ({why}): "
                                  "give a path in a folder you can write with --events") from None  # fmt: skip
        check_events_file(self.path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: every commit syncs the write-ahead log, so an acknowledged event survives a crash of the
            # process (SIGKILL) and of the machine; NORMAL would survive only the former.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
        except sqlite3.Error as e:
            raise ExperimentError(f"cannot open events file {self.path} ({e}): give a new file name with --events") from None
        self._check_meta()

    def _check_meta(self) -> None:
        want = {"design": self.design, "arms": ",".join(f"{a.name}={a.label}" for a in self.arms)}
        with self._lock:
            have = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            if not have:
                self._db.executemany("INSERT INTO meta VALUES (?, ?)", [*want.items(), ("format", str(FORMAT_VERSION))])
            elif "format" not in have and have == want:  # a file of the first format: same tables, now stamped
                self._db.execute("INSERT INTO meta VALUES ('format', ?)", (str(FORMAT_VERSION),))
        have.pop("format", None)
        if have and have != want:
            raise ExperimentError(
                f"events file {self.path} holds another experiment ({have['design']}: {have['arms']}), not "
                f"({want['design']}: {want['arms']}): give a new file with --events, or the same arms and design"
            )

    def _write(self, statements: Callable[[sqlite3.Connection], object], busy_ms: int = CLICK_BUSY_MS):
        """Run ``statements`` in one transaction, waiting ``busy_ms`` at most for the lock; return once committed."""
        with self._lock:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = statements(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return out

    def add_impression(self, impression_id: str, query: str, shown: Sequence[tuple[str, int]],
                       session: str | None = None, arm: int | None = None) -> bool:  # fmt: skip
        """Record one result list: ``shown`` holds ``(doc_id, team)`` in rank order (team = contributing arm).

        Return False if the file stayed locked by another process for ``IMPRESSION_BUSY_MS``: the impression is
        dropped and counted in ``dropped`` (a search never waits on the events file).
        """

        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO impressions VALUES (?, ?, ?, ?, ?)", (impression_id, time.time(), session, query, arm))
            db.executemany("INSERT INTO shown VALUES (?, ?, ?, ?)",
                           [(impression_id, d, r, t) for r, (d, t) in enumerate(shown)])  # fmt: skip
            if self.max_bytes is not None:
                self._prune(db)

        try:
            self._write(write, busy_ms=IMPRESSION_BUSY_MS)
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            with self._lock:
                self.dropped += 1
            return False
        return True

    def _prune(self, db: sqlite3.Connection) -> None:
        """Delete the oldest tenth of the impressions (their shown rows and clicks too) while over ``max_bytes``."""
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        used = (db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0])
        if used * page_size <= self.max_bytes:
            return
        n = max(1, db.execute("SELECT COUNT(*) FROM impressions").fetchone()[0] // 10)
        old = "SELECT id FROM impressions ORDER BY rowid LIMIT ?"
        db.execute(f"DELETE FROM clicks WHERE impression_id IN ({old})", (n,))
        db.execute(f"DELETE FROM shown WHERE impression_id IN ({old})", (n,))
        self.pruned += db.execute(f"DELETE FROM impressions WHERE id IN ({old})", (n,)).rowcount

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
