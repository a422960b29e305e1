"""The app's two caches: query embeddings (in-process LRU, or Redis that fails open) and whole results.

A repeated query skips the encoder: its vector is looked up under a key made of the model id and the
normalized query text. Values are raw little-endian float32 bytes (never pickle), checked for length and
finiteness on the way back, so a damaged or foreign value is a miss, not a crash. Vectors stay valid while the
index changes and can be shared by every server through Redis.

A :class:`ResultCache` (in process) keeps whole answers: a query repeated with the same settings skips the
encoder *and* the index search. Its keys include the index's state (see ``SearchEngine.result_key``), so adding,
removing or re-tuning invalidates them, the way a search server's query-result cache is dropped on commit.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from searchkit.errors import InputError
from searchkit.validation import check_positive_int

KEY_PREFIX = "searchkit:qvec:v1"
DEFAULT_SIZE = 10_000  # vectors kept by the LRU (384 floats each: about 15 MiB)
DEFAULT_RESULTS = 1_000  # answers kept by the result cache (ids, scores and references to the corpus's text)
DEFAULT_TTL_S = 7 * 24 * 3600  # Redis keys expire after a week
DEFAULT_TIMEOUT_S = 0.05  # Redis connect and read timeout
DEFAULT_RETRY_S = 1.0  # after a Redis failure, skip Redis this long before trying again


def cache_key(model_id: str, text: str) -> str:
    """Return the cache key of the (already normalized) query ``text`` embedded by ``model_id``."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{KEY_PREFIX}:{model_id}:{digest}"


def encode_vector(vec: np.ndarray) -> bytes:
    """Return the little-endian float32 bytes of a ``(dim,)`` vector."""
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def decode_vector(blob: bytes | None, dim: int) -> np.ndarray | None:
    """Return the ``(dim,)`` float32 vector in ``blob``, or None if it is missing, the wrong size, or not finite."""
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) != 4 * dim:
        return None
    vec = np.frombuffer(blob, dtype="<f4").astype(np.float32)
    return vec if np.isfinite(vec).all() else None


class _Bounded:
    """A thread-safe mapping of at most ``maxsize`` entries: the least recently used goes first; 0 keeps nothing."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key):
        """Return the value under ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        """Store ``value`` under ``key``, evicting the least recently used entries beyond ``maxsize``."""
        if self.maxsize == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class QueryCache:
    """Base class: ``get(key, dim)`` -> vector or None, ``put(key, vec)``, ``stats()`` -> dict."""

    backend = "none"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _count(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def get(self, key: str, dim: int) -> np.ndarray | None:
        """Return the cached ``(dim,)`` vector for ``key``, or None."""
        raise NotImplementedError

    def put(self, key: str, vec: np.ndarray) -> None:
        """Store ``vec`` under ``key``."""
        raise NotImplementedError

    def lookup(self, model_id: str, text: str, dim: int) -> np.ndarray | None:
        """Return the vector ``model_id`` gave the normalized query ``text``, if cached, else None."""
        return self.get(cache_key(model_id, text), dim)

    def store(self, model_id: str, text: str, vec: np.ndarray) -> None:
        """Keep the vector ``model_id`` gave the normalized query ``text``."""
        self.put(cache_key(model_id, text), vec)

    def stats(self) -> dict:
        """Return backend, status, hits, misses and hit rate (for ``/health``)."""
        total = self.hits + self.misses
        return {
            "backend": self.backend,
            "status": "ok",
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / total, 4) if total else 0.0,
        }

    def reset_stats(self) -> None:
        """Set the hit and miss counters to zero."""
        with self._lock:
            self.hits = self.misses = 0

    def clear(self) -> None:
        """Forget every cached vector (and the counters)."""
        self.reset_stats()

    def close(self) -> None:
        """Release connections, if any."""


class LRUCache(QueryCache):
    """A bounded in-process cache: the least recently used vector goes first when ``maxsize`` is reached."""

    backend = "lru"

    def __init__(self, maxsize: int = DEFAULT_SIZE):
        super().__init__()
        check_positive_int("cache size", maxsize, minimum=0, hint="0 turns caching off")
        self.maxsize = maxsize
        self._store = _Bounded(maxsize)  # key -> float32 bytes

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: str, dim: int) -> np.ndarray | None:
        """Return the cached ``(dim,)`` vector for ``key``, or None."""
        vec = decode_vector(self._store.get(key), dim)
        self._count(vec is not None)
        return vec

    def put(self, key: str, vec: np.ndarray) -> None:
        """Store ``vec`` under ``key``, evicting the least recently used entry when full."""
        if self.maxsize:
            self._store.put(key, encode_vector(vec))

    def stats(self) -> dict:
        """Return counters plus the current and maximum number of entries."""
        return {**super().stats(), "size": len(self._store), "maxsize": self.maxsize}

    def clear(self) -> None:
        """Forget every cached vector (and the counters)."""
        self._store.clear()
        self.reset_stats()


class RedisCache(QueryCache):
    """A cache shared by processes, in Redis; when Redis fails it answers "miss" (fail open) and reports it.

    After a failure Redis is skipped for ``retry_s`` seconds, so a dead or slow server costs each request
    at most one short timeout per retry period, then the cache recovers by itself when Redis is back.
    """

    backend = "redis"

    def __init__(
        self,
        url: str,
        ttl_s: int | None = DEFAULT_TTL_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry_s: float = DEFAULT_RETRY_S,
    ):
        super().__init__()
        import redis

        if not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise InputError(f"Redis URL {url!r} is not valid: use redis://HOST:PORT/DB, e.g. redis://127.0.0.1:6379/0")
        self.url = url
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self.errors = 0
        self.invalid = 0  # values that were not float32 vectors of the right size
        self.last_error: str | None = None
        self._down_until = 0.0
        self._redis_errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, retry_on_timeout=False,
            health_check_interval=0,
        )  # fmt: skip

    @property
    def degraded(self) -> bool:
        """True while the last Redis call failed (the service answers, uncached)."""
        return self.last_error is not None

    def _failed(self, e: Exception) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
            self._down_until = time.monotonic() + self.retry_s

    def _ok(self) -> None:
        if self.last_error is not None:
            with self._lock:
                self.last_error = None

    def _skip(self) -> bool:
        return self.last_error is not None and time.monotonic() < self._down_until

    def get(self, key: str, dim: int) -> np.ndarray | None:
        """Return the cached vector for ``key``; None on a miss, a bad value, or when Redis is down."""
        blob = None
        if not self._skip():
            try:
                blob = self.client.get(key)
                self._ok()
            except self._redis_errors as e:
                self._failed(e)
        vec = decode_vector(blob, dim)
        if blob is not None and vec is None:
            with self._lock:
                self.invalid += 1
        self._count(vec is not None)
        return vec

    def put(self, key: str, vec: np.ndarray) -> None:
        """Store ``vec`` under ``key`` (with the TTL); do nothing when Redis is down."""
        if self._skip():
            return
        try:
            self.client.set(key, encode_vector(vec), ex=self.ttl_s)
            self._ok()
        except self._redis_errors as e:
            self._failed(e)

    def ping(self) -> bool:
        """Check Redis now (one short round trip); return True when it answers."""
        try:
            self.client.ping()
        except self._redis_errors as e:
            self._failed(e)
            return False
        self._ok()
        return True

    def stats(self) -> dict:
        """Return counters, the URL (password hidden) and ``status``: "ok", or "degraded" with the last error."""
        if self.degraded and not self._skip():
            self.ping()  # retry period over: see whether Redis is back
        out = {**super().stats(), "url": redact_url(self.url), "errors": self.errors, "invalid": self.invalid}
        if self.degraded:
            out.update(status="degraded", last_error=self.last_error)
        return out

    def clear(self) -> None:
        """Delete this cache's keys from Redis (and reset the counters)."""
        try:
            keys = list(self.client.scan_iter(match=f"{KEY_PREFIX}:*", count=1000))
            if keys:
                self.client.delete(*keys)
        except self._redis_errors as e:
            self._failed(e)
        self.reset_stats()

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def make_cache(url: str | None = None, maxsize: int | None = None) -> QueryCache:
    """Return a RedisCache for ``url`` (default ``$SEARCHKIT_REDIS_URL``), else an LRUCache of ``maxsize`` entries.

    ``maxsize`` defaults to ``$SEARCHKIT_CACHE_SIZE`` or 10,000; 0 turns caching off.
    """
    url = url if url is not None else os.environ.get("SEARCHKIT_REDIS_URL", "")
    if url:
        return RedisCache(url)
    if maxsize is None:
        raw = os.environ.get("SEARCHKIT_CACHE_SIZE", str(DEFAULT_SIZE))
        try:
            maxsize = int(raw)
        except ValueError:
            raise InputError(f"SEARCHKIT_CACHE_SIZE={raw!r} is not an integer: set a number of entries, e.g. 10000") from None
    return LRUCache(maxsize)


class ResultCache:
    """A bounded in-process LRU of whole answers: ``key -> list of hits`` (keys from ``SearchEngine.result_key``).

    ``maxsize`` 0 turns it off. Only complete answers are stored (never a sharded index's partial one).
    """

    def __init__(self, maxsize: int = DEFAULT_RESULTS):
        check_positive_int("result cache size", maxsize, minimum=0, hint="0 turns the result cache off")
        self.maxsize = maxsize
        self._store = _Bounded(maxsize)  # key -> tuple of hits
        self._lock = threading.Lock()  # the counters'
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: tuple) -> list | None:
        """Return a copy of the hits stored under ``key``, or None."""
        hits = self._store.get(key)
        with self._lock:
            if hits is None:
                self.misses += 1
            else:
                self.hits += 1
        return None if hits is None else list(hits)

    def put(self, key: tuple, hits: list) -> None:
        """Store ``hits`` under ``key``, evicting the least recently used answer when full."""
        self._store.put(key, tuple(hits))

    def clear(self) -> None:
        """Forget every answer and the counters."""
        self._store.clear()
        with self._lock:
            self.hits = self.misses = 0

    def stats(self) -> dict:
        """Return size, maxsize, hits, misses and hit rate (for ``/health``)."""
        total = self.hits + self.misses
        return {"size": len(self._store), "maxsize": self.maxsize, "hits": self.hits, "misses": self.misses,
                "hit_rate": round(self.hits / total, 4) if total else 0.0}  # fmt: skip
