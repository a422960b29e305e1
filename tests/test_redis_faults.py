"""Redis faults behind the app: stopped, slow, or answering garbage. Searches still answer within their
budget (the cache fails open), ``/health`` says "degraded", and the cache recovers when Redis is healthy again.

A real redis-server on a free loopback port (skipped, saying why, when the binary is absent); slowness and
garbage come from small TCP servers on loopback placed between the app and Redis. The apps here run without the
result cache, so every repeated query asks Redis for its vector.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_cache import REDIS, RedisServer

from searchkit.serving.app import create_app
from searchkit.serving.cache import DEFAULT_TIMEOUT_S, RedisCache, cache_key, encode_vector
from searchkit.validation import normalize_query

pytestmark = [
    pytest.mark.skipif(
        REDIS is None, reason="redis-server is not installed: apt-get install redis-server (.ci/run does it)"
    ),
    pytest.mark.usefixtures("one_compute_thread"),
]

# One request with the cache broken in any way: an encoder call plus at most one 50 ms Redis timeout, normally
# well under 0.2 s. The bound is loose because a shared CI box can stall a process for a second or more. What it
# guards against is a request that waits on Redis with no timeout, i.e. for as long as Redis is stuck: the faults
# below (SLOW_S, DEBUG_SLEEP_S) are made longer than this budget, so such a hang still fails it.
BUDGET_S = 5.0
SLOW_S = 6.0  # the proxy holds each reply back this long (> BUDGET_S; 120 times the read timeout)
DEBUG_SLEEP_S = 8  # DEBUG SLEEP blocks the server this long (> BUDGET_S, with room to see it stop answering)
HEALTHY_TIMEOUT_S = 1.0  # for tests whose Redis is healthy throughout: they check values, not timeouts
RETRY_S = 0.3  # the cache skips Redis this long after a failure

QUERY = "remove an empty directory"


@pytest.fixture(scope="module")
def engine(small_engine):
    """The shared ten-document engine (conftest)."""
    return small_engine


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


class Proxy:
    """A TCP proxy on loopback to ``port``: ``delay_s`` holds every reply back; ``junk`` replaces every reply."""

    def __init__(self, port: int):
        self.target = port
        self.delay_s = 0.0
        self.junk: bytes | None = None
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            client.close()
            return
        with client, upstream:
            while not self._stop:
                try:
                    data = client.recv(65536)
                    if not data:
                        return
                    upstream.sendall(data)
                    reply = upstream.recv(65536)
                    if self.delay_s:
                        time.sleep(self.delay_s)
                    client.sendall(self.junk if self.junk is not None else reply)
                except OSError:
                    return

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def search(c: TestClient) -> tuple[dict, float]:
    """POST the test query; return the JSON answer and the seconds it took (asserting a 200)."""
    t0 = time.perf_counter()
    r = c.post("/search", json={"query": QUERY, "top_k": 2})
    took = time.perf_counter() - t0
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["id"] == "os.rmdir", r.text
    return r.json(), took


def wait_for(pred, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def cache_status(c: TestClient) -> dict:
    r = c.get("/health")
    assert r.status_code == 200, r.text  # the cache is optional: never "not ready" because of it
    return r.json()["cache"]


def test_redis_stopped_every_request_within_budget_then_recovers(engine, redis_server):
    cache = RedisCache(redis_server.url, retry_s=RETRY_S)
    with TestClient(create_app(engine, cache=cache, result_cache_size=0)) as c:
        search(c)
        assert wait_for(lambda: search(c)[0]["cached"] is True)  # healthy: a 50 ms timeout may still miss once
        redis_server.stop()
        times = [search(c)[1] for _ in range(20)]
        assert max(times) < BUDGET_S, times
        s = cache_status(c)
        assert s["status"] == "degraded" and "ConnectionError" in s["last_error"], s
        time.sleep(RETRY_S)  # every retry period costs one failed try, no more
        times += [search(c)[1] for _ in range(5)]
        assert max(times) < BUDGET_S, times
        redis_server.start()
        assert wait_for(lambda: cache_status(c)["status"] == "ok")
        search(c)  # refills the (empty) new Redis
        assert search(c)[0]["cached"] is True
    cache.close()


def test_redis_slow_fails_open_within_budget_then_recovers(engine, redis_server):
    proxy = Proxy(redis_server.port)
    cache = RedisCache(proxy.url, retry_s=RETRY_S)
    try:
        with TestClient(create_app(engine, cache=cache, result_cache_size=0)) as c:
            search(c)
            assert wait_for(lambda: search(c)[0]["cached"] is True)  # healthy: a 50 ms timeout may still miss once
            proxy.delay_s = SLOW_S
            times = [search(c)[1] for _ in range(10)]
            assert max(times) < BUDGET_S, times
            assert all(not search(c)[0]["cached"] for _ in range(3))  # answered uncached, not stuck
            s = cache_status(c)
            assert s["status"] == "degraded" and "Timeout" in s["last_error"], s
            proxy.delay_s = 0.0
            assert wait_for(lambda: cache_status(c)["status"] == "ok")
            assert wait_for(lambda: search(c)[0]["cached"] is True)
    finally:
        proxy.close()
        cache.close()


class DebugRedisServer(RedisServer):
    """A RedisServer that accepts ``DEBUG`` commands (off by default since Redis 7)."""

    def start(self) -> DebugRedisServer:
        import subprocess

        cmd = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--enable-debug-command", "yes"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for(lambda: _pong(self.port), 10):
            self.stop()
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        return self


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
            c.sendall(b"PING\r\n")
            return c.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def test_redis_slow_with_debug_sleep(engine):
    """The server itself blocks (``DEBUG SLEEP``): same fail-open behaviour, no proxy involved."""
    import redis

    server = DebugRedisServer().start()
    admin = redis.Redis.from_url(server.url, socket_timeout=DEBUG_SLEEP_S + 10)  # outlives its own DEBUG SLEEP
    cache = RedisCache(server.url, retry_s=RETRY_S)
    with TestClient(create_app(engine, cache=cache, result_cache_size=0)) as c:
        search(c)
        try:
            slept: list = []
            sleeper = threading.Thread(
                target=lambda: slept.append(admin.execute_command("DEBUG", "SLEEP", str(DEBUG_SLEEP_S))), daemon=True
            )
            sleeper.start()
            # search only once the server is really blocked (it no longer answers PING), not after a guessed pause
            assert wait_for(lambda: not _pong(server.port), 5), "DEBUG SLEEP did not block the server"
            times = [search(c)[1] for _ in range(5)]
            assert max(times) < BUDGET_S, times
            assert cache.errors >= 1 and "Timeout" in str(cache.last_error), (cache.errors, cache.last_error)
            assert cache_status(c)["status"] == "degraded"
            sleeper.join(DEBUG_SLEEP_S + 10)
            assert not sleeper.is_alive() and slept, "DEBUG SLEEP never returned"
            assert wait_for(lambda: cache_status(c)["status"] == "ok")
            assert wait_for(lambda: search(c)[0]["cached"] is True)
        finally:
            cache.close()
            admin.close()
            server.stop()


GARBAGE_VALUES = [
    b"garbage",
    b"\x00" * 3,
    b"\xff" * (4 * 384 + 1),  # one byte too many
    encode_vector(np.full(384, np.nan, dtype=np.float32)),  # right size, not finite
    encode_vector(np.full(384, np.inf, dtype=np.float32)),
    b"x" * (1 << 20),  # a megabyte
    b'{"pickle": "never"}',
]


@pytest.mark.parametrize("junk", GARBAGE_VALUES, ids=[str(i) for i in range(len(GARBAGE_VALUES))])
def test_garbage_value_in_the_key_is_a_miss_and_is_overwritten(engine, redis_server, junk):
    cache = RedisCache(redis_server.url, retry_s=RETRY_S, timeout_s=HEALTHY_TIMEOUT_S)
    key = cache_key(engine.embedder.model_id, normalize_query(QUERY))
    cache.client.set(key, junk)
    with TestClient(create_app(engine, cache=cache, result_cache_size=0)) as c:
        out, took = search(c)
        assert out["cached"] is False and took < BUDGET_S
        s = cache_status(c)
        assert s["invalid"] == 1 and s["status"] == "ok", s  # a bad value is not a Redis failure
        assert search(c)[0]["cached"] is True  # overwritten by a good vector
    assert len(cache.client.get(key)) == 4 * 384
    cache.close()


def test_key_of_the_wrong_redis_type_fails_open(engine, redis_server):
    cache = RedisCache(redis_server.url, retry_s=RETRY_S, timeout_s=HEALTHY_TIMEOUT_S)
    key = cache_key(engine.embedder.model_id, normalize_query(QUERY))
    cache.client.rpush(key, b"a", b"b")  # a list where a string belongs: GET answers WRONGTYPE
    with TestClient(create_app(engine, cache=cache, result_cache_size=0)) as c:
        out, took = search(c)
        assert out["cached"] is False and took < BUDGET_S
        assert c.post("/search", json={"query": "read a csv file"}).status_code == 200
    cache.close()


GARBAGE_REPLIES = [
    b"garbage\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n",
    b"-ERR something broke\r\n",
    b":12345\r\n",
    b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    b"$-7\r\n",
    b"$99999999\r\nshort",
    b"\x00\xff\xfe" * 100,
]


@pytest.mark.parametrize("junk", GARBAGE_REPLIES, ids=[str(i) for i in range(len(GARBAGE_REPLIES))])
def test_redis_answering_garbage_bytes_fails_open(engine, redis_server, junk):
    proxy = Proxy(redis_server.port)
    cache = RedisCache(proxy.url, retry_s=RETRY_S)
    try:
        with TestClient(create_app(engine, cache=cache, result_cache_size=0)) as c:
            search(c)
            proxy.junk = junk
            times = [search(c)[1] for _ in range(5)]
            assert max(times) < BUDGET_S, times
            s = cache_status(c)
            assert s["status"] in ("degraded", "ok"), s  # some replies parse as a (bad) value: a counted miss
            assert s["errors"] + s["invalid"] >= 1, s
            proxy.junk = None
            assert wait_for(lambda: cache_status(c)["status"] == "ok")
            assert wait_for(lambda: search(c)[0]["cached"] is True)
    finally:
        proxy.close()
        cache.close()


def test_timeout_default_is_short():
    assert DEFAULT_TIMEOUT_S <= 0.1
