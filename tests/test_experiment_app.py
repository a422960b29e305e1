"""Experiments in the app: impressions, click validation, 32 threads, a server killed with SIGKILL, the CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import tiny_beir
from fastapi.testclient import TestClient

from searchkit.cli import main
from searchkit.corpus.datasets import Corpus
from searchkit.engine import SearchEngine
from searchkit.experiments.arms import assign, interleaving_rng, search_arm
from searchkit.experiments.live import Experiment
from searchkit.relevance.interleave import team_draft
from searchkit.serving.app import create_app
from searchkit.serving.server import free_port, serve_in_background

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["delete a directory", "read a csv file", "parse json text", "sleep for a while", "random numbers"]


@pytest.fixture(scope="module")
def engine(pydocs, embedder):
    """An engine over 150 documents of the Python docs (dense and BM25)."""
    c = pydocs.corpus
    return SearchEngine.build(Corpus(c.ids[:150], c.titles[:150], c.texts[:150]), embedder, progress=False)


@pytest.fixture(scope="module")
def server(engine, tmp_path_factory, one_compute_thread):
    """One interleaving experiment (bm25 vs dense) served in the background for this module's tests."""
    exp = Experiment("control=bm25,treatment=dense", "interleave", tmp_path_factory.mktemp("exp") / "events.db")
    srv = serve_in_background(engine, experiment=exp)
    yield srv, exp
    srv.stop()
    exp.close()


def test_interleaved_answers_carry_an_impression_and_hide_the_arms(server, engine):
    srv, exp = server
    r = httpx.post(f"{srv.url}/search", json={"query": QUERIES[0], "top_k": 6}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"query", "mode", "results", "timings_ms", "cached", "result_cached", "impression_id"}
    assert body["mode"] == "experiment" and "team" not in json.dumps(body) and "arm" not in body
    a, b = ([h.id for h in search_arm(engine, arm, QUERIES[0], 6)] for arm in exp.arms)
    shown, team = team_draft(a, b, 6, interleaving_rng(body["impression_id"]))
    assert [h["id"] for h in body["results"]] == shown
    stored = sqlite3.connect(exp.store.path).execute(
        "SELECT doc_id, team FROM shown WHERE impression_id = ? ORDER BY rank", (body["impression_id"],)).fetchall()
    assert stored == list(zip(shown, team))


def test_click_validation(server):
    srv, exp = server
    imp = httpx.post(f"{srv.url}/search", json={"query": QUERIES[1], "top_k": 3}, timeout=60).json()
    first, before = imp["results"][0]["id"], exp.summary()["clicks"]
    ok = httpx.post(f"{srv.url}/click", json={"impression_id": imp["impression_id"], "id": first}, timeout=60)
    assert ok.status_code == 200 and ok.json()["new"] is True, ok.text
    again = httpx.post(f"{srv.url}/click", json={"impression_id": imp["impression_id"], "id": first}, timeout=60)
    assert again.status_code == 200 and again.json()["new"] is False, again.text
    assert exp.summary()["clicks"] == before + 1
    unknown = httpx.post(f"{srv.url}/click", json={"impression_id": "f" * 32, "id": first}, timeout=60)
    assert unknown.status_code == 404 and "no impression" in unknown.json()["detail"], unknown.text
    other = httpx.post(f"{srv.url}/click", json={"impression_id": imp["impression_id"], "id": "not.shown"}, timeout=60)
    assert other.status_code == 422 and "did not show document 'not.shown'" in other.json()["detail"], other.text
    for bad in ({"impression_id": imp["impression_id"]}, {"impression_id": 3, "id": first}, {"id": first, "x": 1}):
        assert httpx.post(f"{srv.url}/click", json=bad, timeout=60).status_code == 422


def test_32_threads_lose_nothing_and_count_nothing_twice(server):
    srv, exp = server
    before = exp.summary()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        pages = [c.post("/search", json={"query": QUERIES[i % 5], "top_k": 4}).json() for i in range(16)]
    pairs = [(p["impression_id"], h["id"]) for p in pages for h in p["results"]]
    jobs = pairs * 3  # every click is sent three times, from different threads

    def send(pair):
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            r = c.post("/click", json={"impression_id": pair[0], "id": pair[1]})
            return r.status_code, r.json().get("new")

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(send, jobs))
    assert {s for s, _ in answers} == {200}
    assert sum(new for _, new in answers) == len(pairs)  # each pair acknowledged as new exactly once
    after = exp.summary()
    assert after["clicks"] - before["clicks"] == len(pairs)
    assert after["impressions"] - before["impressions"] == 16
    n_pairs = sqlite3.connect(exp.store.path).execute("SELECT COUNT(*) FROM clicks").fetchone()[0]
    assert n_pairs == after["clicks"]


def test_experiment_summary_over_http(server):
    srv, exp = server
    s = httpx.get(f"{srv.url}/experiment", timeout=60).json()
    assert s == exp.summary()
    assert {"design", "impressions", "clicks", "arms", "preference", "impressions_without_clicks"} <= set(s)
    c, t = s["arms"]["control"], s["arms"]["treatment"]
    assert c["wins"] == t["losses"] and c["ties"] == t["ties"]
    assert c["wins"] + t["wins"] + c["ties"] + s["impressions_without_clicks"] == s["impressions"]
    assert_documented(s)


def assert_documented(summary: dict) -> None:
    """Check a ``GET /experiment`` answer against its response model: it validates and has no undocumented key."""
    from searchkit.serving.schemas import ArmState, ExperimentState

    state = ExperimentState.model_validate(summary)
    assert set(summary) <= set(ExperimentState.model_fields), set(summary) - set(ExperimentState.model_fields)
    for arm in summary["arms"].values():
        assert set(arm) <= set(ArmState.model_fields), set(arm) - set(ArmState.model_fields)
    assert state.model_dump(by_alias=True, exclude_unset=True) == summary  # the model says what the answer is


def test_openapi_documents_the_experiment_answers(engine):
    schema = create_app(engine).openapi()
    ok = {path: schema["paths"][path][verb]["responses"]["200"]["content"]["application/json"]["schema"]
          for path, verb in (("/experiment", "get"), ("/click", "post"))}  # fmt: skip
    assert ok == {"/experiment": {"$ref": "#/components/schemas/ExperimentState"},
                  "/click": {"$ref": "#/components/schemas/ClickResponse"}}  # fmt: skip
    arm = schema["components"]["schemas"]["ArmState"]["properties"]
    assert {"mode", "fusion", "ctr", "ctr_ci", "wins", "ties", "losses", "clicks"} <= set(arm)


def test_split_keeps_a_session_in_its_arm_and_sets_a_cookie(engine, tmp_path):
    exp = Experiment("control=bm25,treatment=dense", "split", tmp_path / "split.db")
    with TestClient(create_app(engine, experiment=exp)) as client:
        for session in ("alice", "bob", "carol", "dave"):
            arm = exp.arms[assign(session, exp.salt)]
            want = [h.id for h in search_arm(engine, arm, QUERIES[2], 5)]
            for _ in range(2):
                r = client.post("/search", json={"query": QUERIES[2], "top_k": 5, "session": session})
                assert [h["id"] for h in r.json()["results"]] == want, r.text
        assert not client.cookies  # a session sent in the body sets no cookie
        r = client.post("/search", json={"query": QUERIES[2], "top_k": 5})
        cookie = r.cookies.get("searchkit_session")
        assert cookie and r.json()["impression_id"]
        again = client.post("/search", json={"query": QUERIES[2], "top_k": 5})  # the browser sends the cookie back
        assert "set-cookie" not in again.headers and again.json()["results"] == r.json()["results"]
        s = client.get("/experiment").json()
        assert s["impressions"] == 10 and s["design"] == "split"
        assert_documented(s)
        assert client.post("/search", json={"query": "x", "session": "s" * 129}).status_code == 422
    exp.close()


def test_without_an_experiment_nothing_changes(engine):
    with TestClient(create_app(engine)) as client:
        r = client.post("/search", json={"query": QUERIES[0], "top_k": 3})
        assert set(r.json()) == {"query", "mode", "results", "timings_ms", "cached", "result_cached", "rerank"} and not r.cookies
        assert client.post("/click", json={"impression_id": "a", "id": "b"}).status_code == 404
        assert "no experiment is running" in client.get("/experiment").json()["detail"]


@pytest.mark.parametrize("argv, message", [
    (["--experiment", "control=bm25"], "has 1 arm(s)"),
    (["--experiment", "a=bm25,b=dense"], "--experiment needs --events PATH"),
    (["--events", "x.db"], "--events and --experiment-design need --experiment"),
])  # fmt: skip
def test_serve_refuses_a_bad_experiment_before_loading(argv, message, capsys):
    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err


def _serve(corpus: Path, events: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "searchkit", "serve", "--corpus", f"beir:{corpus}", "--port", str(port),
           "--experiment", "control=bm25,treatment=dense", "--experiment-design", "split", "--events", str(events),
           "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, "serve exited at start-up"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError("serve did not become ready in 300 s")


def test_acknowledged_clicks_survive_sigkill(tmp_path):
    corpus, events, port = tiny_beir(tmp_path / "corpus", n=40), tmp_path / "events.db", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(corpus, events, port)
    acked: list[tuple[str, str]] = []
    stop = threading.Event()

    def clicker(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as c:
            i = 0
            while not stop.is_set():
                try:
                    page = c.post("/search", json={"query": "files and time", "top_k": 5, "session": f"w{worker}-{i}"})
                    imp = page.json()["impression_id"]
                    for h in page.json()["results"][:2]:
                        if c.post("/click", json={"impression_id": imp, "id": h["id"]}).status_code == 200:
                            acked.append((imp, h["id"]))
                except (httpx.HTTPError, ValueError, KeyError):
                    return  # the server is gone
                i += 1

    threads = [threading.Thread(target=clicker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120  # on time-out the server is still killed and `len(acked) >= 40` fails
    while len(acked) < 40 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # mid-stream: clicks are in flight
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 40
    proc = _serve(corpus, events, port)
    try:
        summary = httpx.get(f"{url}/experiment", timeout=60).json()
        stored = set(sqlite3.connect(events).execute("SELECT impression_id, doc_id FROM clicks").fetchall())
    finally:
        proc.kill()
        proc.wait()
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged clicks lost"
    assert summary["clicks"] == len(stored) >= len(acked)
