"""The FastAPI app: every route, every validation case (status and message), readiness, concurrency, Redis."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from searchkit.encoders.batching import BatchingEmbedder
from searchkit.engine import MODES, SearchEngine
from searchkit.serving.app import MAX_BODY_BYTES, create_app
from searchkit.serving.cache import LRUCache, RedisCache
from searchkit.serving.server import serve_in_background


@pytest.fixture(scope="module")
def client(small_engine):
    with TestClient(create_app(small_engine, cache=LRUCache(1000))) as c:
        yield c


def msg(r) -> str:
    """The first validation message of a 4xx response."""
    detail = r.json()["detail"]
    return detail[0]["msg"] if isinstance(detail, list) else detail


# -- the happy paths -------------------------------------------------------------------------------


def test_post_search_returns_results_timings_and_cache_flag(client):
    body = {"query": "how do I delete a folder with everything in it", "top_k": 3}
    r = client.post("/search", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert "shutil.rmtree" in [h["id"] for h in out["results"]]
    assert len(out["results"]) == 3 and set(out["results"][0]) == {"id", "score", "title", "text"}
    assert set(out["timings_ms"]) == {"embed", "search", "rerank", "total"}
    assert out["timings_ms"]["total"] >= out["timings_ms"]["embed"] >= 0
    r2 = client.post("/search", json={**body, "query": "  how do I delete a folder   with everything in it"})
    assert r2.status_code == 200, r2.text
    assert r2.json()["cached"] is True and r2.json()["results"] == out["results"]


def test_a_repeated_query_is_answered_from_the_result_cache(small_engine):
    with TestClient(create_app(small_engine, cache=LRUCache(10))) as c:
        body = {"query": "copy a file to another folder", "top_k": 3}
        first = c.post("/search", json=body).json()
        again = c.post("/search", json={**body, "query": " copy a file  to another folder"}).json()
        assert (first["cached"], first["result_cached"]) == (False, False)
        assert (again["cached"], again["result_cached"]) == (True, True) and again["timings_ms"]["embed"] == 0
        assert again["results"] == first["results"]
        assert not c.post("/search", json={**body, "top_k": 2}).json()["result_cached"]  # other k: searched
        snipped = c.post("/search", json={**body, "snippet": 5}).json()  # the snippet is cut from the kept answer
        assert snipped["result_cached"] and [h["text"] for h in snipped["results"]] == [
            h["text"][:5] for h in first["results"]]  # fmt: skip
        batch = c.post("/search/batch", json={"queries": [body["query"]] * 2, "top_k": 3}).json()
        assert batch["result_cached"] is True and batch["results"][0] == first["results"]
        stats = c.get("/health").json()["cache"]["results"]
        assert (stats["size"], stats["maxsize"], stats["hits"]) == (2, 1000, 4), stats
    with TestClient(create_app(small_engine, cache=LRUCache(10), result_cache_size=0)) as c:  # off
        answers = [c.post("/search", json=body).json() for _ in range(2)]
        assert [a["result_cached"] for a in answers] == [False, False] and answers[1]["cached"] is True
        assert c.get("/health").json()["cache"]["results"]["size"] == 0


def test_get_search_for_browsers_and_curl(client):
    r = client.get("/search", params={"q": "parse a JSON string", "top_k": "2", "mode": "bm25"})
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "bm25" and r.json()["results"][0]["id"].startswith("json.")
    posted = client.post("/search", json={"query": "parse a JSON string", "top_k": 2, "mode": "bm25"}).json()
    hits = [(h["id"], h["score"]) for h in r.json()["results"]]
    assert len(hits) == 2 and hits == [(h["id"], h["score"]) for h in posted["results"]]  # same answer as POST
    dense = client.get("/search", params={"q": "parse a JSON string", "top_k": "2"}).json()
    assert dense["mode"] == "dense" and [(h["id"], h["score"]) for h in dense["results"]] != hits  # mode is used


def test_batch_answers_in_order(client):
    r = client.post("/search/batch", json={"queries": ["read a csv file", "sleep for a second"], "top_k": 1})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [row[0]["id"] for row in out["results"]] == ["csv.reader", "time.sleep"]
    assert len(out["cached"]) == 2 and set(out["timings_ms"]) == {"embed", "search", "rerank", "total"}


@pytest.mark.parametrize("mode", MODES)
def test_every_engine_mode_is_served(client, small_engine, mode):
    r = client.post("/search", json={"query": "copy a file", "top_k": 2, "mode": mode})
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == mode, r.text
    want = [(h.id, pytest.approx(h.score, abs=1e-5)) for h in small_engine.search_many(["copy a file"], 2, mode=mode)[0]]
    assert len(want) == 2 and [(h["id"], h["score"]) for h in r.json()["results"]] == want, r.text  # the mode's answer


def test_an_engine_without_bm25_serves_dense_only(small_engine):
    dense_only = SearchEngine(small_engine.corpus, small_engine.embedder, small_engine.index, None)
    with TestClient(create_app(dense_only, cache=LRUCache(10))) as c:
        assert c.get("/health").json()["modes"] == ["dense"]
        r = c.post("/search", json={"query": "copy a file", "mode": "bm25"})
        assert r.status_code == 422, r.text
        assert msg(r) == "this engine has no BM25 index: build it with bm25=True"
        assert c.post("/search", json={"query": "copy a file"}).status_code == 200


def test_prefix_filter_keeps_one_module(client):
    for mode in ("dense", "bm25"):
        r = client.post("/search", json={"query": "delete", "top_k": 5, "mode": mode, "prefix": "shutil."})
        assert r.status_code == 200, r.text
        ids = [h["id"] for h in r.json()["results"]]
        assert ids and all(i.startswith("shutil.") for i in ids), ids
    r = client.post("/search", json={"query": "delete", "prefix": "nosuchmodule."})
    assert r.status_code == 200, r.text
    assert r.json()["results"] == []


@pytest.mark.parametrize(
    "query", ["supprimer un répertoire", "删除目录", "حذف المجلد", "delete 🗑️ folder", "ÄÖÜ ß", "a"]
)
def test_unicode_queries_are_ordinary(client, query):
    r = client.post("/search", json={"query": query, "top_k": 3})
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 3


def test_control_characters_are_cleaned_up(client):
    r = client.post("/search", json={"query": "delete\x00a\x07directory\ttree\n"})
    assert r.status_code == 200, r.text
    assert r.json()["query"] == "delete a directory tree"


def test_health_reports_model_documents_index_and_cache(client, small_docs):
    r = client.get("/health")
    assert r.status_code == 200, r.text
    h = r.json()
    assert h["status"] == "ready" and h["ready"] is True
    assert h["model"].endswith("all-MiniLM-L6-v2") and h["dim"] == 384 and h["documents"] == len(small_docs)
    assert h["index"]["factory"] == "Flat" and h["index"]["vectors"] == len(small_docs)
    assert h["cache"]["backend"] == "lru" and {"hits", "misses", "size", "maxsize"} <= set(h["cache"])


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/search", "/search/batch", "/health"} <= set(spec["paths"])


# -- validation: a clear 4xx for every bad input ---------------------------------------------------

BAD = [
    ({"query": ""}, "query is empty or whitespace only: type some words to search for"),
    ({"query": " \t\n "}, "query is empty or whitespace only"),
    ({"query": "\x00\x01"}, "query is empty or whitespace only"),
    ({"query": "x" * 2001}, "query has 2001 characters; the limit is 2000: shorten it"),
    ({"query": "x" * 100_000}, "query has 100000 characters; the limit is 2000"),
    ({"query": "a", "top_k": 0}, "top_k is 0: choose a number from 1 to 100"),
    ({"query": "a", "top_k": 101}, "top_k is 101: choose a number from 1 to 100"),
    ({"query": "a", "top_k": -5}, "top_k is -5: choose a number from 1 to 100"),
    ({"query": "a", "mode": "semantic"}, "unknown mode 'semantic': choose one of dense, bm25"),
    ({"query": 42}, "Input should be a valid string"),
    ({"query": None}, "Input should be a valid string"),
    ({"query": ["a", "b"]}, "Input should be a valid string"),
    ({"query": "a", "top_k": "5"}, "Input should be a valid integer"),
    ({"query": "a", "top_k": 2.5}, "Input should be a valid integer"),
    ({"query": "a", "top_k": True}, "Input should be a valid integer"),
    ({"query": "a", "mode": 1}, "Input should be a valid string"),
    ({"query": "a", "prefix": 3}, "Input should be a valid string"),
    ({"query": "a", "prefix": "p" * 201}, "prefix has 201 characters; the limit is 200"),
    ({"top_k": 3}, "Field required"),
    ({"query": "a", "topk": 3}, "Extra inputs are not permitted"),
]


@pytest.mark.parametrize("body,expected", BAD, ids=[str(i) for i in range(len(BAD))])
def test_post_search_rejects_bad_input(client, body, expected):
    r = client.post("/search", json=body)
    assert r.status_code == 422, r.text
    assert expected in msg(r), r.text
    assert len(r.text) < 2000  # the bad input is not echoed back


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"q": ""}, "query is empty or whitespace only"),
        ({"q": "x" * 2001}, "query has 2001 characters"),
        ({"q": "a", "top_k": "0"}, "top_k is 0: choose a number from 1 to 100"),
        ({"q": "a", "top_k": "ten"}, "top_k is 'ten': give a whole number from 1 to 100"),
        ({"q": "a", "mode": "fuzzy"}, "unknown mode 'fuzzy'"),
        ({}, "Field required"),
    ],
)
def test_get_search_rejects_bad_input(client, params, expected):
    r = client.get("/search", params=params)
    assert r.status_code == 422, r.text
    assert expected in msg(r), r.text


@pytest.mark.parametrize(
    "body,expected",
    [
        ({"queries": []}, "got 0 queries: send 1 to 64 per batch"),
        ({"queries": ["a"] * 65}, "got 65 queries: send 1 to 64 per batch"),
        ({"queries": ["ok", "  "]}, "queries[1]: query is empty or whitespace only"),
        ({"queries": ["ok", "y" * 2001]}, "queries[1]: query has 2001 characters"),
        ({"queries": "one string"}, "Input should be a valid list"),
        ({"queries": ["a", 3]}, "Input should be a valid string"),
    ],
)
def test_batch_rejects_bad_input(client, body, expected):
    r = client.post("/search/batch", json=body)
    assert r.status_code == 422, r.text
    assert expected in msg(r), r.text


def test_malformed_and_oversized_bodies(client):
    r = client.post("/search", content=b'{"query": "a",', headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "body is not valid JSON" in msg(r)
    r = client.post("/search", content=b"[" * 100_000, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "body is nested too deeply for the JSON parser: send a flat JSON object" in msg(r)
    r = client.post("/search", content=b'"just a string"', headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    r = client.post("/search", content=b"\xff\xfe{}", headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    big = b'{"query": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    r = client.post("/search", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert f"request body is over {MAX_BODY_BYTES} bytes" in msg(r)


def test_streamed_body_without_length_is_limited_too(client):
    def chunks():
        for _ in range(100):
            yield b"a" * 10_000

    r = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text


def test_unknown_route_and_method(client):
    assert client.get("/nope").status_code == 404
    assert client.delete("/search").status_code == 405


# -- readiness -------------------------------------------------------------------------------------


def test_not_ready_while_loading_then_ready(small_engine):
    gate = threading.Event()

    def loader():
        gate.wait(60)  # held until the test says so (the bound only stops a broken test hanging)
        return small_engine

    with TestClient(create_app(loader=loader, cache=LRUCache(10))) as c:
        r = c.get("/health")
        assert r.status_code == 503, r.text
        assert r.json()["status"] == "loading" and r.json()["ready"] is False
        r = c.post("/search", json={"query": "a"})
        assert r.status_code == 503, r.text
        assert "not ready: the index is still loading" in msg(r)
        gate.set()
        deadline = time.monotonic() + 60  # a deadline, not a count of polls: a loaded box may take seconds
        while c.get("/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert c.get("/health").json()["status"] == "ready"
        assert c.post("/search", json={"query": "a"}).status_code == 200


def test_failed_load_is_reported_never_ready():
    def loader():
        from searchkit.errors import SearchIndexError

        raise SearchIndexError("index.faiss fails its checksum: rebuild")

    with TestClient(create_app(loader=loader, cache=LRUCache(10))) as c:
        deadline = time.monotonic() + 60  # a deadline, not a count of polls: a loaded box may take seconds
        while c.get("/health").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.02)
        r = c.get("/health")
        assert r.status_code == 503, r.text
        assert r.json()["status"] == "failed" and "fails its checksum" in r.json()["error"]
        assert c.post("/search", json={"query": "a"}).status_code == 503


# -- concurrency over real HTTP --------------------------------------------------------------------


def test_concurrent_requests_match_serial_and_share_encoder_calls(small_engine):
    queries = [f"{w} {i}" for i, w in enumerate(["delete a folder", "read csv", "parse json", "wait", "copy"] * 8)]
    serial = {q: [h.id for h in small_engine.search(q, 3)] for q in queries}
    srv = serve_in_background(small_engine, cache=LRUCache(0), result_cache_size=0)  # no cache: every request encodes
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as http:

            def ask(q):
                mode = "bm25" if q.startswith("copy") else "dense"
                r = http.post("/search", json={"query": q, "top_k": 3, "mode": mode})
                assert r.status_code == 200, r.text
                return q, mode, [h["id"] for h in r.json()["results"]]

            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(ask, queries))
            h = http.get("/health")
            assert h.status_code == 200, h.text
            assert h.json()["encoder"]["texts"] == sum(m == "dense" for m in ("bm25" if q.startswith("copy") else "dense" for q in queries))
        for q, mode, ids in answers:
            expected = serial[q] if mode == "dense" else [h.id for h in small_engine.search(q, 3, "bm25")]
            assert ids == expected, q
    finally:
        srv.stop()
    assert not srv.thread.is_alive()


def test_batching_embedder_merges_concurrent_calls(embedder):
    b = BatchingEmbedder(embedder, max_batch=32)
    texts = [f"query number {i}" for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(lambda t: b.encode([t])[0], texts))
    ref = embedder.encode(texts)
    for got, want in zip(out, ref):
        assert abs(float(got @ want) - 1.0) < 1e-5
    assert b.texts == 24 and b.calls <= 24
    b.close()
    assert b.encode(["after close"]).shape == (1, 384)  # falls back to direct calls


def test_snippet_asks_for_less_text(client):
    body = {"query": "how do I delete a folder with everything in it", "top_k": 3}
    full = client.post("/search", json=body).json()["results"]
    cut = client.post("/search", json={**body, "snippet": 10}).json()["results"]
    none = client.post("/search/batch", json={"queries": [body["query"]], "top_k": 3, "snippet": 0}).json()["results"][0]
    assert [h["id"] for h in cut] == [h["id"] for h in full] == [h["id"] for h in none]
    assert [h["text"] for h in cut] == [h["text"][:10] for h in full] and all(h["text"] == "" for h in none)
    r = client.post("/search", json={**body, "snippet": -1})
    assert r.status_code == 422 and msg(r) == "snippet is -1: give 0 or more characters (0: no text)", r.text


# -- Redis behind the app --------------------------------------------------------------------------


def test_app_with_redis_stopped_mid_test_keeps_answering(small_engine):
    from test_cache import REDIS, RedisServer

    if REDIS is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server (.ci/run does it)")
    server = RedisServer().start()
    try:
        # a generous timeout: the healthy phases check hits, not how fast a loaded box answers; stopped, it refuses at once
        cache = RedisCache(server.url, retry_s=0.2, timeout_s=1.0)
        with TestClient(create_app(small_engine, cache=cache, result_cache_size=0)) as c:  # every query asks Redis
            body = {"query": "remove an empty directory", "top_k": 2}
            assert c.post("/search", json=body).json()["cached"] is False
            assert c.post("/search", json=body).json()["cached"] is True
            h = c.get("/health").json()["cache"]
            assert h["backend"] == "redis" and h["status"] == "ok" and h["hits"] == 1, h
            server.stop()
            r = c.post("/search", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["cached"] is False and r.json()["results"][0]["id"] == "os.rmdir"
            assert 1 <= cache.errors <= 2  # the lookup failed, the store at most once: no retries per request
            r = c.get("/health")
            assert r.status_code == 200, r.text  # still ready: the cache is optional
            assert r.json()["cache"]["status"] == "degraded", r.text
            assert "ConnectionError" in r.json()["cache"]["last_error"]
            server.start()
            time.sleep(0.25)
            assert c.get("/health").json()["cache"]["status"] == "ok"
            c.post("/search", json=body)
            assert c.post("/search", json=body).json()["cached"] is True
    finally:
        server.stop()


def test_set_compute_threads_checks_its_argument():
    from searchkit.errors import InputError
    from searchkit.threads import set_compute_threads

    with pytest.raises(InputError, match="threads must be a positive integer, got 0"):
        set_compute_threads(0)


def test_requests_search_with_the_threads_set_for_the_process(small_engine, monkeypatch, one_compute_thread):
    """OpenMP keeps faiss's thread count per thread: the worker thread answering a request gets the process's."""
    import faiss

    from searchkit import threads

    seen = []
    real = SearchEngine.search_timed
    monkeypatch.setattr(SearchEngine, "search_timed", lambda self, *a, **kw: (seen.append(faiss.omp_get_max_threads()), real(self, *a, **kw))[1])
    monkeypatch.setattr(threads, "_threads", None)  # as before set_compute_threads (the fixture restores all)
    fresh = []
    t = threading.Thread(target=lambda: fresh.append(faiss.omp_get_max_threads()))
    t.start()
    t.join()
    with TestClient(create_app(small_engine, cache=LRUCache(10))) as c:
        threads.set_compute_threads(1)
        assert c.post("/search", json={"query": "delete a folder", "top_k": 3}).status_code == 200
    assert seen == [1], f"a new thread starts with {fresh[0]} faiss threads; the request searched with {seen}"
