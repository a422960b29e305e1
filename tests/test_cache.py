"""Query-embedding caches: the bounded LRU and Redis (a real redis-server on a free loopback port)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import numpy as np
import pytest

from searchkit.errors import InputError
from searchkit.serving.cache import (
    LRUCache,
    RedisCache,
    ResultCache,
    cache_key,
    decode_vector,
    encode_vector,
    make_cache,
    redact_url,
)
from searchkit.validation import normalize_query

REDIS = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(
    REDIS is None, reason="redis-server is not installed: apt-get install redis-server (.ci/run does it)"
)


class RedisServer:
    """A throw-away redis-server on a free loopback port, no persistence; ``stop()`` and ``start()`` again."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        cmd = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def redis_server():
    """A running redis-server for one test."""
    if REDIS is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server (.ci/run does it)")
    server = RedisServer().start()
    yield server
    server.stop()


def vec(seed: int, dim: int = 8) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return x / np.linalg.norm(x)


# -- keys and values -------------------------------------------------------------------------------


def test_cache_key_includes_model_and_normalized_text():
    a = cache_key("model-a", normalize_query("read  a file"))
    assert a == cache_key("model-a", normalize_query(" read a file "))
    assert a != cache_key("model-b", "read a file")
    assert a != cache_key("model-a", "read a files")
    assert "model-a" in a


def test_values_are_float32_bytes_and_bad_bytes_are_rejected():
    v = vec(0)
    blob = encode_vector(v)
    assert isinstance(blob, bytes) and len(blob) == 4 * 8
    assert np.array_equal(decode_vector(blob, 8), v)
    assert decode_vector(blob, 384) is None  # wrong length
    assert decode_vector(b"garbage", 8) is None
    assert decode_vector(encode_vector(np.full(8, np.nan)), 8) is None
    assert decode_vector(None, 8) is None


# -- LRU -------------------------------------------------------------------------------------------


def test_lru_hits_misses_and_eviction():
    c = LRUCache(maxsize=2)
    assert c.get("a", 8) is None
    c.put("a", vec(1))
    c.put("b", vec(2))
    assert np.array_equal(c.get("a", 8), vec(1))  # "a" is now the most recent
    c.put("c", vec(3))  # evicts "b"
    assert c.get("b", 8) is None
    assert c.get("c", 8) is not None
    s = c.stats()
    assert (s["backend"], s["status"], s["hits"], s["misses"], s["size"], s["maxsize"]) == ("lru", "ok", 2, 2, 2, 2)
    assert s["hit_rate"] == 0.5
    c.clear()
    assert len(c) == 0 and c.stats()["hits"] == 0


def test_lru_size_zero_turns_caching_off_and_bad_sizes_are_rejected():
    c = LRUCache(0)
    c.put("a", vec(1))
    assert c.get("a", 8) is None
    with pytest.raises(InputError, match=r"cache size must be a non-negative integer, got -1 \(0 turns caching off\)"):
        LRUCache(-1)


def test_make_cache_reads_the_environment(monkeypatch):
    monkeypatch.delenv("SEARCHKIT_REDIS_URL", raising=False)
    monkeypatch.setenv("SEARCHKIT_CACHE_SIZE", "7")
    c = make_cache()
    assert isinstance(c, LRUCache) and c.maxsize == 7
    monkeypatch.setenv("SEARCHKIT_CACHE_SIZE", "lots")
    with pytest.raises(InputError, match=r"SEARCHKIT_CACHE_SIZE='lots' is not an integer"):
        make_cache()
    monkeypatch.setenv("SEARCHKIT_REDIS_URL", "redis://127.0.0.1:1/0")
    c = make_cache()
    assert isinstance(c, RedisCache)
    c.close()


def test_redis_url_is_checked_and_password_hidden():
    with pytest.raises(InputError, match=r"Redis URL 'http://x' is not valid: use redis://HOST:PORT/DB"):
        RedisCache("http://x")
    assert redact_url("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_engine_uses_the_cache_and_skips_the_encoder(pydocs_engine):
    import copy

    eng = copy.copy(pydocs_engine)
    eng.cache = LRUCache(100)
    first = eng.search_timed(["remove a directory tree"], 3)
    again = eng.search_timed(["  remove a   directory tree "], 3)
    assert first.cached == [False] and again.cached == [True]
    assert [h.id for h in first.hits[0]] == [h.id for h in again.hits[0]]
    assert eng.cache.stats()["hits"] == 1 and eng.cache.stats()["misses"] == 1


# -- whole results ---------------------------------------------------------------------------------


def test_result_cache_keeps_recent_answers_and_hands_out_copies():
    c = ResultCache(maxsize=2)
    assert c.get(("a",)) is None
    c.put(("a",), [1, 2])
    c.put(("b",), [3])
    got = c.get(("a",))
    got.append(99)  # the caller's list, not the cache's
    assert c.get(("a",)) == [1, 2]
    c.put(("c",), [4])  # evicts "b", the least recently used
    assert c.get(("b",)) is None and c.get(("c",)) == [4]
    assert c.stats() == {"size": 2, "maxsize": 2, "hits": 3, "misses": 2, "hit_rate": 0.6}
    off = ResultCache(0)
    off.put(("a",), [1])
    assert off.get(("a",)) is None and len(off) == 0
    with pytest.raises(InputError, match=r"result cache size must be a non-negative integer, got -5 \(0 turns the"):
        ResultCache(-5)


def test_engine_answers_a_repeated_query_from_the_result_cache(small_engine):
    import copy

    from searchkit.engine import SearchSettings

    eng = copy.copy(small_engine)
    eng.results = ResultCache(100)
    calls = []
    encode = eng.embedder.encode
    eng.embedder = copy.copy(eng.embedder)
    eng.embedder.encode = lambda texts, **kw: calls.append(list(texts)) or encode(texts, **kw)
    first = eng.search_timed(["remove a directory tree"], 3)
    again = eng.search_timed(["remove a directory tree"], 3)
    assert not first.result_cached and again.result_cached and again.cached == [True]
    assert [(h.id, h.score) for h in again.hits[0]] == [(h.id, h.score) for h in first.hits[0]]
    assert len(calls) == 1 and again.timings.embed_ms == 0.0
    # anything the answer depends on is part of the key: k, mode, settings, prefix
    assert not eng.search_timed(["remove a directory tree"], 2).result_cached
    assert not eng.search_timed(["remove a directory tree"], 3, SearchSettings(mode="bm25")).result_cached
    bm25 = eng.search_timed(["remove a directory tree"], 3, SearchSettings(mode="bm25"))
    assert bm25.result_cached and bm25.cached == [False]  # BM25 answers have no query vector to cache
    assert not eng.search_timed(["remove a directory tree"], 3, prefix="os.").result_cached
    assert eng.search_timed(["remove a directory tree", "remove a directory tree"], 3).result_cached


def test_a_changed_index_never_answers_from_the_result_cache(small_engine):
    import copy

    eng = copy.copy(small_engine)
    eng.index = copy.deepcopy(small_engine.index)  # this test removes and adds documents
    eng.results = ResultCache(100)
    query = "delete a whole folder with its files"
    best = eng.search_timed([query], 3).hits[0][0].id
    assert eng.search_timed([query], 3).result_cached
    vector = eng.index.index.reconstruct_batch(np.array([eng.index._label[best]]))
    eng.index.remove([best])
    without = eng.search_timed([query], 3)
    assert not without.result_cached and best not in [h.id for h in without.hits[0]]
    eng.index.add([best], vector)
    back = eng.search_timed([query], 3)
    assert not back.result_cached and back.hits[0][0].id == best
    eng.index.nprobe = 4  # the index's own search settings are part of the key too
    assert not eng.search_timed([query], 3).result_cached


def test_a_partial_answer_is_never_kept(small_engine):
    import copy
    from types import SimpleNamespace

    class OneShardDown:
        """The index, answering as a sharded index does when shard 1 is down."""

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __len__(self):
            return len(self.inner)

        def search(self, *args, **kwargs):
            res = self.inner.search(*args, **kwargs)
            return SimpleNamespace(ids=res.ids, scores=res.scores, failed_shards=[1])

    eng = copy.copy(small_engine)
    eng.index, eng.results = OneShardDown(small_engine.index), ResultCache(100)
    for _ in range(2):
        res = eng.search_timed(["remove a file"], 3)
        assert res.partial and not res.result_cached
    assert len(eng.results) == 0


# -- Redis (real server) ---------------------------------------------------------------------------

# Where Redis is meant to be healthy, the 50 ms production timeout only tests how loaded the box is: a busy
# shared CI machine can miss it and turn an expected hit into a miss. These tests check counts and values,
# not the timeout, so they give the client a generous one.
HEALTHY_TIMEOUT_S = 1.0


@needs_redis
def test_redis_round_trip_and_counts(redis_server):
    c = RedisCache(redis_server.url, timeout_s=HEALTHY_TIMEOUT_S)
    key = cache_key("m", "q")
    assert c.get(key, 8) is None
    c.put(key, vec(5))
    assert np.array_equal(c.get(key, 8), vec(5))
    assert c.client.ttl(key) > 0  # keys expire
    assert c.client.get(key) == encode_vector(vec(5))  # raw float32 bytes, no pickle
    s = c.stats()
    assert (s["backend"], s["status"], s["hits"], s["misses"], s["errors"]) == ("redis", "ok", 1, 1, 0)
    c.clear()
    assert c.get(key, 8) is None
    c.close()


@needs_redis
def test_redis_garbage_value_is_a_miss(redis_server):
    c = RedisCache(redis_server.url, timeout_s=HEALTHY_TIMEOUT_S)
    key = cache_key("m", "q")
    c.client.set(key, b"\x00not a vector")
    assert c.get(key, 8) is None
    s = c.stats()
    assert s["invalid"] == 1 and s["misses"] == 1 and s["status"] == "ok"
    c.close()


@needs_redis
def test_redis_stopped_mid_test_fails_open_then_recovers(redis_server):
    c = RedisCache(redis_server.url, retry_s=0.2, timeout_s=HEALTHY_TIMEOUT_S)  # a stopped server refuses at once
    key = cache_key("m", "q")
    c.put(key, vec(1))
    assert c.get(key, 8) is not None
    redis_server.stop()
    assert c.get(key, 8) is None  # a miss, not an exception
    c.put(key, vec(1))  # skipped while down: within retry_s nothing goes to Redis
    assert c.errors == 1  # read before stats(), which pings Redis again once retry_s has passed
    s = c.stats()
    assert s["status"] == "degraded" and "ConnectionError" in s["last_error"], s
    redis_server.start()  # same port, empty data
    time.sleep(0.25)  # past the retry period
    assert c.stats()["status"] == "ok"
    c.put(key, vec(1))
    assert np.array_equal(c.get(key, 8), vec(1))
    c.close()


@needs_redis
def test_redis_unreachable_costs_at_most_one_short_timeout():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = RedisCache(f"redis://127.0.0.1:{port}/0", retry_s=5)
    for _ in range(100):
        assert c.get("k", 8) is None
    s = c.stats()
    assert s["status"] == "degraded" and s["errors"] == 1 and s["misses"] == 100, s  # one try, then skipped
    c.close()
