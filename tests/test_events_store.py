"""The events store under hostile files and other processes; what an experiment records, and from whom."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from searchkit.cli import main
from searchkit.errors import ExperimentError
from searchkit.experiments.arms import parse_arms
from searchkit.experiments.events import FORMAT_VERSION, EventStore
from searchkit.experiments.live import Experiment
from searchkit.serving.app import create_app

ARMS = parse_arms("control=bm25,treatment=dense")
ARMS_SPEC = "control=bm25,treatment=dense"


def _db(path: Path, script: str) -> Path:
    db = sqlite3.connect(path)
    db.executescript(script)
    db.commit()
    db.close()
    return path


def _refused_untouched(path: Path, words: str) -> str:
    before = path.read_bytes()
    with pytest.raises(ExperimentError) as e:
        EventStore(path, "interleave", ARMS)
    assert path.read_bytes() == before
    msg = str(e.value)
    assert words in msg and "\n" not in msg and "--events" in msg, msg
    return msg


def test_a_foreign_impressions_table_is_refused_and_left_as_it_is(tmp_path):
    path = _db(tmp_path / "x.db", "CREATE TABLE impressions (id INTEGER, what TEXT); INSERT INTO impressions VALUES (1, 'a');")
    _refused_untouched(path, "is not a searchkit events file")


def test_a_foreign_meta_table_is_refused_and_left_as_it_is(tmp_path):
    path = _db(tmp_path / "x.db", "CREATE TABLE meta (name TEXT, n INTEGER); INSERT INTO meta VALUES ('v', 3);")
    _refused_untouched(path, "is not a searchkit events file")


def test_meta_of_another_program_is_refused(tmp_path):
    EventStore(tmp_path / "x.db", "interleave", ARMS).close()
    db = sqlite3.connect(tmp_path / "x.db")
    db.execute("DELETE FROM meta")
    db.execute("INSERT INTO meta VALUES ('owner', 'someone else')")
    db.commit()
    db.close()
    _refused_untouched(tmp_path / "x.db", "has a foreign meta table")


def test_a_text_file_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    _refused_untouched(path, "is not a readable SQLite database")


def test_a_newer_format_is_refused(tmp_path):
    EventStore(tmp_path / "x.db", "interleave", ARMS).close()
    _db(tmp_path / "x.db", f"PRAGMA user_version = {FORMAT_VERSION + 1};")
    _refused_untouched(tmp_path / "x.db", f"has format {FORMAT_VERSION + 1}")


def test_a_damaged_file_is_refused_and_left_as_it_is(tmp_path):
    store = EventStore(tmp_path / "x.db", "interleave", ARMS)
    for i in range(300):
        store.add_impression(f"imp{i}", "a query", [(f"doc{j}", j % 2) for j in range(20)])
    store.close()
    sqlite3.connect(tmp_path / "x.db").execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    data = bytearray((tmp_path / "x.db").read_bytes())
    page = 4096
    assert len(data) > 40 * page
    for at in range(20 * page + 100, 21 * page, 7):  # scribble over the cells of one b-tree page
        data[at] = 0x5A
    (tmp_path / "x.db").write_bytes(bytes(data))
    for name in ("x.db-wal", "x.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    msg = _refused_untouched(tmp_path / "x.db", "")
    assert "is damaged" in msg or "not a readable SQLite database" in msg, msg


def test_a_new_file_carries_its_format_and_a_first_format_file_is_read(tmp_path):
    EventStore(tmp_path / "new.db", "interleave", ARMS).close()
    db = sqlite3.connect(tmp_path / "new.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION
    assert dict(db.execute("SELECT key, value FROM meta"))["format"] == str(FORMAT_VERSION)
    db.execute("DELETE FROM meta WHERE key = 'format'")
    db.execute("PRAGMA user_version = 0")  # as the first release wrote it
    db.commit()
    db.close()
    store = EventStore(tmp_path / "new.db", "interleave", ARMS)
    store.add_impression("i1", "q", [("d", 0)])
    assert store.counts()["impressions"] == 1
    store.close()


def test_events_under_a_file_is_one_line(capsys):
    assert main(["serve", "--experiment", ARMS_SPEC, "--events", "/etc/passwd/events.db"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/etc/passwd is a file, not a folder" in err, err


@pytest.mark.parametrize("value", ["0", "-3", "nan"])
def test_events_max_mb_is_checked_before_loading(value, capsys, tmp_path):
    argv = ["serve", "--experiment", ARMS_SPEC, "--events", str(tmp_path / "e.db"), "--events-max-mb", value]
    assert main(argv) == 2
    assert "--events-max-mb" in capsys.readouterr().err


def test_retention_prunes_the_oldest_impressions(tmp_path):
    limit = 256 * 1024
    store = EventStore(tmp_path / "x.db", "interleave", ARMS, max_bytes=limit)
    for i in range(1500):
        store.add_impression(f"imp{i:05d}", "a query of some length", [(f"document-{j}", j % 2) for j in range(30)])
    store.add_click("imp01499", "document-3")
    db = store._db
    used = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
    ids = [r[0] for r in db.execute("SELECT id FROM impressions ORDER BY rowid")]
    store.close()
    assert used * 4096 <= limit + 64 * 1024  # one impression's worth of pages over, at most
    assert store.pruned > 0 and ids[-1] == "imp01499" and "imp00000" not in ids and len(ids) + store.pruned == 1500
    assert (tmp_path / "x.db").stat().st_size <= 2 * limit


# -- in the app ------------------------------------------------------------------------------------


@pytest.fixture
def experiment(tmp_path):
    exp = Experiment(ARMS_SPEC, "interleave", tmp_path / "events.db")
    yield exp
    exp.close()


def test_get_and_head_never_record_impressions(small_engine, experiment):
    with TestClient(create_app(small_engine, experiment=experiment)) as client:
        r = client.get("/search", params={"q": "delete a folder", "top_k": "3"})
        assert r.status_code == 200 and "impression_id" not in r.json(), r.text
        assert client.head("/search", params={"q": "delete a folder"}).status_code == 200
        assert client.post("/search", json={"query": "delete a folder", "top_k": 3}).json()["impression_id"]
        assert experiment.summary()["impressions"] == 1


@pytest.mark.parametrize("headers, counted", [
    ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, False),
    ({"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:9999"}, False),
    ({"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}, True),
    ({}, True),  # curl, scripts: no browser sends a forged page's request without Sec-Fetch-Site today
])  # fmt: skip
def test_only_requests_a_cross_site_page_cannot_forge_are_counted(small_engine, experiment, headers, counted):
    with TestClient(create_app(small_engine, experiment=experiment)) as client:
        r = client.post("/search", json={"query": "read a csv file", "top_k": 3}, headers=headers)
        assert r.status_code == 200, r.text
        assert ("impression_id" in r.json()) is counted
        assert experiment.summary()["impressions"] == int(counted)


def test_an_allowed_cors_origin_is_counted(small_engine, experiment):
    app = create_app(small_engine, experiment=experiment, cors_origins=["http://localhost:3000"])
    with TestClient(app) as client:
        h = {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:3000"}
        assert client.post("/search", json={"query": "read a csv file"}, headers=h).json()["impression_id"]


def test_snippet_is_honoured_in_experiment_mode(small_engine, experiment):
    with TestClient(create_app(small_engine, experiment=experiment)) as client:
        r = client.post("/search", json={"query": "delete a folder", "top_k": 3, "snippet": 5})
        assert r.json()["impression_id"] and all(len(h["text"]) <= 5 for h in r.json()["results"]), r.text


_HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(120)
"""


def test_a_lock_held_by_another_process_does_not_hold_searches(small_engine, experiment):
    with TestClient(create_app(small_engine, experiment=experiment)) as client:
        client.post("/search", json={"query": "warm up", "top_k": 2})
        holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(experiment.store.path)],
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert holder.stdout.readline().strip() == "locked"
            t0 = time.monotonic()
            answers = [client.post("/search", json={"query": f"delete a folder {i}", "top_k": 2}) for i in range(5)]
            took = time.monotonic() - t0
        finally:
            holder.kill()
            holder.wait()
        assert [a.status_code for a in answers] == [200] * 5
        assert all(a.json()["impression_id"] is None for a in answers)
        assert took < 20, f"5 searches took {took:.1f} s while another process held the events file"  # unbounded: 150 s
        s = client.get("/experiment").json()
        assert s["impressions_dropped"] == 5 and s["impressions"] == 1
        assert client.post("/search", json={"query": "after", "top_k": 2}).json()["impression_id"]  # writes again
