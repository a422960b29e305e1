"""Concurrency: 32 threads of mixed dense/BM25/hybrid queries give the serial answers; /health stays responsive.

Runs over real HTTP (uvicorn on loopback). Counts are small for CI; the strict latency figures come from
``benchmarks/soak.py`` (docs/README-reliability.md). ``SEARCHKIT_CONCURRENCY_ROUNDS=10`` sends more.
"""

from __future__ import annotations

import os
import random
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from searchkit.serving.cache import LRUCache
from searchkit.serving.server import serve_in_background

THREADS = 32
ROUNDS = int(os.environ.get("SEARCHKIT_CONCURRENCY_ROUNDS", "1"))  # queries per thread per mode
MODES = ("dense", "bm25", "hybrid")
WORDS = [
    "delete a directory tree", "read a csv file", "parse json from a string", "sleep for seconds",
    "copy a file", "current working directory", "random number between two values", "format a date",
    "open a url", "compress with gzip", "run a subprocess and capture output", "sort a list in place",
    "environment variables", "temporary file", "regular expression match", "hash a password",
]  # fmt: skip


def queries(n: int) -> list[tuple[str, str]]:
    """Return ``n`` (query, mode) pairs cycling through the three modes."""
    return [(f"{WORDS[i % len(WORDS)]} {i // len(WORDS)}", MODES[i % 3]) for i in range(n)]


pytestmark = pytest.mark.usefixtures("one_compute_thread")


@pytest.fixture(scope="module")
def server(pydocs_engine):
    """The Python-docs engine over HTTP, no cache: every dense request reaches the encoder."""
    srv = serve_in_background(pydocs_engine, cache=LRUCache(0), result_cache_size=0)
    yield srv
    srv.stop()


def test_32_threads_mixed_modes_match_a_serial_run(pydocs_engine, server):
    work = queries(THREADS * len(MODES) * ROUNDS)
    serial = {(q, m): pydocs_engine.search(q, 5, m) for q, m in work}
    local = threading.local()
    errors: list[str] = []

    def ask(item):
        q, m = item
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=server.url, timeout=60)
        r = local.http.post("/search", json={"query": q, "top_k": 5, "mode": m})
        if r.status_code != 200:
            errors.append(r.text)
            return item, None
        return item, r.json()["results"]

    random.Random(0).shuffle(work)
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(ask, work))
    assert not errors, errors[:3]
    assert not any("Already borrowed" in e for e in errors)
    for (q, m), got in answers:
        want = serial[(q, m)]
        assert [h["id"] for h in got] == [h.id for h in want], (q, m)
        # batched encoding may differ from a lone call in the last float bits only
        np.testing.assert_allclose([h["score"] for h in got], [h.score for h in want], rtol=1e-4, atol=1e-5)
    h = httpx.get(server.url + "/health").json()
    assert h["encoder"]["calls"] <= h["encoder"]["texts"]  # concurrent queries shared encoder calls


def test_encoder_and_bm25_called_from_many_threads_directly(pydocs_engine):
    """No tokenizer "Already borrowed", no stemmer mix-ups: each thread gets the serial answer."""
    texts = [q for q, _ in queries(96)]
    ref_vecs = pydocs_engine.embedder.encode(texts)
    ref_bm25 = [pydocs_engine.bm25.search(t, 5) for t in texts]

    def one(i):
        v = pydocs_engine.embedder.encode([texts[i]])[0]
        return i, v, pydocs_engine.bm25.search(texts[i], 5)

    with ThreadPoolExecutor(THREADS) as pool:
        out = list(pool.map(one, range(len(texts))))
    for i, v, hits in out:
        assert float(v @ ref_vecs[i]) > 1 - 1e-5, texts[i]
        assert [d for d, _ in hits] == [d for d, _ in ref_bm25[i]], texts[i]


def test_bm25_queries_do_not_grow_its_vocabulary(pydocs_engine):
    """A stream of never-seen query words must not be remembered (it grew memory without bound)."""
    tok = pydocs_engine.bm25.tokenizer
    before = (len(tok.word_to_stem), len(tok.word_to_id), len(tok.stem_to_sid))
    rng = random.Random(1)
    for _ in range(500):
        word = "".join(rng.choices(string.ascii_lowercase, k=9))
        pydocs_engine.bm25.scores(f"{word} deleting {word}s directories")
    assert (len(tok.word_to_stem), len(tok.word_to_id), len(tok.stem_to_sid)) == before


def test_health_stays_responsive_while_search_is_saturated(server):
    """48 clients keep /search busy (more than the 40 worker threads); /health answers meanwhile.

    Counted, not timed: every /health is sent while more searches are in flight than the pool has threads,
    and each answers 200 before any of those searches finishes (a /health queued behind the pool could not).
    The latency figures come from ``benchmarks/soak.py``.
    """
    stop = threading.Event()
    done, in_flight, lock = [0], [0], threading.Lock()

    def hammer(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            while not stop.is_set():
                q, m = rng.choice(queries(300))
                with lock:
                    in_flight[0] += 1
                http.post("/search", json={"query": f"{q} {rng.random()}", "top_k": 10, "mode": m})
                with lock:
                    in_flight[0] -= 1
                    done[0] += 1

    clients = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(48)]
    for t in clients:
        t.start()
    overtook = 0  # /health answers that came back while no search had finished since they were sent
    try:
        deadline = time.monotonic() + 60
        while in_flight[0] < 41:  # let the load build up past the 40 worker threads
            assert time.monotonic() < deadline, f"the load never built up: {in_flight[0]} in flight, {done[0]} done"
            time.sleep(0.05)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for attempts in range(1, 301):  # on a busy box a search may finish during any one /health: try again
                with lock:
                    busy, before = in_flight[0], done[0]
                r = http.get("/health")
                assert r.status_code == 200 and r.json()["ready"] is True
                overtook += busy > 40 and done[0] == before
                if overtook:
                    break
    finally:
        stop.set()
        for t in clients:
            t.join(60)
    print(f"/health overtook the saturated search pool after {attempts} attempts; {done[0]} searches")
    assert done[0] > 0
    assert overtook > 0, f"/health never answered ahead of the queued searches in {attempts} tries: is it running in the worker pool?"
