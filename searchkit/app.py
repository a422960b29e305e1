"""The search service: a FastAPI app over a SearchEngine, with a query-embedding cache and micro-batching.

Routes: ``POST /search``, ``GET /search?q=``, ``POST /search/batch``, ``GET /health``, OpenAPI at ``/docs``.
Every bad input is a 4xx with a one-line message; CPU work runs in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import queue
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import engine as engine_module
from .cache import QueryCache, RedisCache, make_cache, normalize_query
from .engine import Hit, SearchEngine
from .errors import InputError, SearchkitError

MAX_QUERY_CHARS = 2000
MAX_TOP_K = 100
MAX_BATCH = 64  # queries per POST /search/batch
MAX_PREFIX_CHARS = 200
MAX_BODY_BYTES = 256 * 1024  # larger request bodies get 413


def modes() -> tuple[str, ...]:
    """Return the search modes the engine knows ("dense", "bm25", and "hybrid" where available)."""
    return tuple(engine_module.MODES)


# -- request and response models -----------------------------------------------------------------


def _check_query(v: str) -> str:
    if len(v) > MAX_QUERY_CHARS:
        raise PydanticCustomError(
            "query_too_long", "query has {n} characters; the limit is {limit}: shorten it",
            {"n": len(v), "limit": MAX_QUERY_CHARS},
        )  # fmt: skip
    clean = normalize_query(v)  # NFKC, control characters (NUL included) become spaces, whitespace collapsed
    if not clean:
        raise PydanticCustomError("query_empty", "query is empty or whitespace only: type some words to search for")
    return clean


def _check_top_k(v: int) -> int:
    if not 1 <= v <= MAX_TOP_K:
        raise PydanticCustomError(
            "top_k_range", "top_k is {v}: choose a number from 1 to {limit}", {"v": v, "limit": MAX_TOP_K}
        )
    return v


def _check_mode(v: str) -> str:
    if v not in modes():
        raise PydanticCustomError(
            "mode_unknown", "unknown mode {mode}: choose one of {choices}",
            {"mode": repr(v[:50]), "choices": ", ".join(modes())},
        )  # fmt: skip
    return v


def _check_prefix(v: str | None) -> str | None:
    if v is None or v == "":
        return None
    if len(v) > MAX_PREFIX_CHARS:
        raise PydanticCustomError(
            "prefix_too_long", "prefix has {n} characters; the limit is {limit}: shorten it",
            {"n": len(v), "limit": MAX_PREFIX_CHARS},
        )  # fmt: skip
    return v


_QUERY_DOC = f"the text to search for: 1 to {MAX_QUERY_CHARS} characters, not only whitespace"
_TOPK_DOC = f"how many results to return, 1 to {MAX_TOP_K}"
_PREFIX_DOC = "keep only documents whose id starts with this, e.g. 'os.path.' (a module of the Python docs)"


class _Common(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    top_k: int = Field(10, description=_TOPK_DOC, json_schema_extra={"minimum": 1, "maximum": MAX_TOP_K})
    mode: str = Field("dense", description="dense (embeddings), bm25 (keywords) or hybrid (both)",
                      json_schema_extra={"enum": list(modes())})  # fmt: skip
    prefix: str | None = Field(None, description=_PREFIX_DOC, json_schema_extra={"maxLength": MAX_PREFIX_CHARS})

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, v: int) -> int:
        return _check_top_k(v)

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        return _check_mode(v)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        return _check_prefix(v)


class SearchRequest(_Common):
    """One query."""

    query: str = Field(..., description=_QUERY_DOC, examples=["how do I delete a folder and everything in it"],
                       json_schema_extra={"minLength": 1, "maxLength": MAX_QUERY_CHARS})  # fmt: skip

    @field_validator("query")
    @classmethod
    def _query(cls, v: str) -> str:
        return _check_query(v)


class BatchRequest(_Common):
    """Several queries answered with one encoder call."""

    queries: list[str] = Field(..., description=f"1 to {MAX_BATCH} queries",
                               json_schema_extra={"minItems": 1, "maxItems": MAX_BATCH, "items": {
                                   "type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS}})  # fmt: skip

    @field_validator("queries")
    @classmethod
    def _queries(cls, v: list[str]) -> list[str]:
        if not 1 <= len(v) <= MAX_BATCH:
            raise PydanticCustomError(
                "batch_size", "got {n} queries: send 1 to {limit} per batch", {"n": len(v), "limit": MAX_BATCH}
            )
        out = []
        for i, q in enumerate(v):
            try:
                out.append(_check_query(q))
            except PydanticCustomError as e:
                raise PydanticCustomError("query_invalid", "queries[{i}]: {msg}", {"i": i, "msg": e.message()}) from None
        return out


class HitOut(BaseModel):
    """One result."""

    id: str
    score: float
    title: str
    text: str


class Timings(BaseModel):
    """Where the time went, in milliseconds: query embedding (or cache lookup), index search, whole request."""

    embed: float
    search: float
    total: float


class SearchResponse(BaseModel):
    """The answer to one query."""

    query: str = Field(description="the query as searched (normalized)")
    mode: str
    results: list[HitOut]
    timings_ms: Timings
    cached: bool = Field(description="true when the query vector came from the cache (no encoder call)")


class BatchResponse(BaseModel):
    """The answers to a batch, in the order of the queries."""

    mode: str
    results: list[list[HitOut]]
    timings_ms: Timings
    cached: list[bool]


class Health(BaseModel):
    """Readiness and what is loaded."""

    status: str = Field(description="ready, loading or failed")
    ready: bool
    model: str | None = None
    dim: int | None = None
    documents: int | None = None
    index: dict[str, Any] | None = None
    modes: list[str] = []
    cache: dict[str, Any] | None = None
    encoder: dict[str, Any] | None = Field(None, description="model calls and texts encoded (calls < texts: batching)")
    error: str | None = None


class Problem(BaseModel):
    """An error other than a validation error: one line saying what is wrong and what to do."""

    detail: str


# -- micro-batching ------------------------------------------------------------------------------


class BatchingEmbedder:
    """Wrap an Embedder so concurrent small ``encode`` calls are merged into one model call.

    One worker thread owns the model: it takes the first waiting request, adds every request queued
    behind it (up to ``max_batch`` texts), encodes them together and hands each caller its rows. A lone
    request waits for nobody; under load, requests that arrive while the model is busy share the next call.
    """

    def __init__(self, embedder, max_batch: int = 32):
        self.inner = embedder
        self.max_batch = max_batch
        self.model_id, self.dim = embedder.model_id, embedder.dim
        self.calls = 0  # model calls made
        self.texts = 0  # texts encoded
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def encode(self, texts, batch_size: int | None = None, progress: bool | None = None) -> np.ndarray:
        """Embed ``texts`` (shared model call for small requests); return ``(n, dim)`` float32 unit vectors."""
        texts = list(texts)
        if self._closed or len(texts) > self.max_batch or batch_size or progress:
            return self.inner.encode(texts, batch_size=batch_size, progress=progress)
        self._ensure_worker()
        fut: Future = Future()
        self._queue.put((texts, fut))
        return fut.result()

    def _ensure_worker(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, name="searchkit-encoder", daemon=True)
                    self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            jobs = [item]
            n = len(item[0])
            while n < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                jobs.append(nxt)
                n += len(nxt[0])
            texts = [t for job, _ in jobs for t in job]
            try:
                vecs = self.inner.encode(texts) if texts else np.zeros((0, self.dim), np.float32)
            except BaseException as e:  # hand the error to every waiting caller
                for _, fut in jobs:
                    fut.set_exception(e)
                continue
            self.calls += 1
            self.texts += len(texts)
            start = 0
            for job, fut in jobs:
                fut.set_result(vecs[start : start + len(job)])
                start += len(job)

    def close(self) -> None:
        """Stop the worker thread (later calls encode directly)."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)


# -- the app -------------------------------------------------------------------------------------


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _validation_errors(errors) -> list[dict]:
    """Return pydantic errors without the offending input (which may be megabytes) and without URLs."""
    out = []
    for e in errors:
        msg = str(e.get("msg", "invalid value"))
        if e.get("type") == "json_invalid":
            msg = f"body is not valid JSON ({(e.get('ctx') or {}).get('error', 'decode error')}): send a JSON object"
        out.append({"loc": list(e.get("loc", ())), "msg": msg, "type": str(e.get("type", "value_error"))})
    return out


class _State:
    def __init__(self) -> None:
        self.engine: SearchEngine | None = None
        self.status = "loading"
        self.error: str | None = None
        self.prefix_native = False


def create_app(
    engine: SearchEngine | None = None,
    *,
    loader: Callable[[], SearchEngine] | None = None,
    cache: QueryCache | None = None,
    micro_batch: bool = True,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """Return the FastAPI app serving ``engine`` (or the engine ``loader()`` returns, loaded at start-up).

    ``cache`` defaults to :func:`searchkit.cache.make_cache` (LRU, or Redis when ``SEARCHKIT_REDIS_URL`` is
    set). The caller's engine is not modified: the app works on a shallow copy with the cache attached.
    """
    if engine is None and loader is None:
        raise InputError("create_app needs an engine or a loader: pass SearchEngine.build(corpus) or a function")
    state = _State()
    cache = cache if cache is not None else make_cache()
    batcher: list[BatchingEmbedder] = []

    def attach(eng: SearchEngine) -> None:
        eng = copy.copy(eng)
        if micro_batch:
            b = BatchingEmbedder(eng.embedder)
            batcher.append(b)
            eng.embedder = b
        eng.cache = cache
        state.prefix_native = "prefix" in inspect.signature(eng.search_many).parameters
        state.engine, state.status = eng, "ready"

    def load() -> None:
        try:
            attach(loader())  # type: ignore[misc]
        except Exception as e:  # reported by /health; the CLI loads before serving, so it fails fast instead
            state.status, state.error = "failed", f"{type(e).__name__}: {e}".splitlines()[0]

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if state.engine is None and loader is not None:
            threading.Thread(target=load, name="searchkit-loader", daemon=True).start()
        yield
        for b in batcher:
            b.close()
        cache.close()

    app = FastAPI(
        title="searchkit",
        version="0.1.0",
        description="Semantic search over a corpus: dense embeddings (FAISS), BM25, or both.",
        lifespan=lifespan,
        responses={422: {"description": "invalid input: the message says which value and how to fix it"}},
    )
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.searchkit = state
    app.state.cache = cache
    app.state.batchers = batcher
    if engine is not None:
        attach(engine)

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_errors(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 400 and "parsing the body" in str(detail):
            detail = "body could not be parsed as JSON (nested too deeply, or not UTF-8?): send a flat JSON object"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(SearchkitError)
    async def _on_searchkit(request: Request, exc: SearchkitError) -> JSONResponse:
        return JSONResponse(
            {"detail": [{"loc": ["body"], "msg": str(exc).splitlines()[0], "type": "value_error"}]}, status_code=422
        )

    @app.exception_handler(Exception)
    async def _on_error(request: Request, exc: Exception) -> JSONResponse:
        return _problem(500, f"internal error ({type(exc).__name__}); the server log has details")

    def ready_engine() -> SearchEngine:
        if state.engine is None:
            raise _NotReady(state.error or "the index is still loading: retry in a few seconds")
        return state.engine

    @app.exception_handler(_NotReady)
    async def _on_not_ready(request: Request, exc: _NotReady) -> JSONResponse:
        return _problem(503, f"not ready: {exc}")

    def run(queries: list[str], top_k: int, mode: str, prefix: str | None) -> tuple[list[list[Hit]], dict]:
        eng = ready_engine()
        stats: dict = {}
        t0 = time.perf_counter()
        if prefix and state.prefix_native:
            hits = eng.search_many(queries, top_k, mode, stats=stats, prefix=prefix)  # type: ignore[call-arg]
        elif prefix:
            hits = _search_prefix_fallback(eng, queries, top_k, mode, prefix, stats)
        else:
            hits = eng.search_many(queries, top_k, mode, stats=stats)  # type: ignore[arg-type]
        total = (time.perf_counter() - t0) * 1000
        embed = stats.get("embed_ms", 0.0)
        stats["timings"] = {"embed": round(embed, 3), "search": round(max(total - embed, 0.0), 3), "total": round(total, 3)}
        stats.setdefault("cached", [False] * len(queries))
        return hits, stats

    err = {
        400: {"model": Problem, "description": "body is not JSON the server can parse (too deeply nested, not UTF-8)"},
        413: {"model": Problem, "description": f"request body over {max_body_bytes} bytes"},
        422: {"description": "invalid input"},
        503: {"model": Problem, "description": "index not loaded yet"},
    }

    @app.post("/search", response_model=SearchResponse, responses=err, summary="Search with one query")
    def search(req: SearchRequest) -> JSONResponse:
        """Return the ``top_k`` best documents for ``query``."""
        hits, stats = run([req.query], req.top_k, req.mode, req.prefix)
        return JSONResponse({
            "query": req.query, "mode": req.mode, "results": [_hit(h) for h in hits[0]],
            "timings_ms": stats["timings"], "cached": bool(stats["cached"][0]),
        })  # fmt: skip  (built directly: the response model documents it, re-validating it costs time)

    @app.get("/search", response_model=SearchResponse, responses=err, summary="Search from a browser or curl")
    def search_get(
        q: str = Query(..., description=_QUERY_DOC,
                       json_schema_extra={"minLength": 1, "maxLength": MAX_QUERY_CHARS}),
        top_k: str = Query("10", description=_TOPK_DOC,  # a string, so a bad value gets our message
                           json_schema_extra={"pattern": "^(100|[1-9][0-9]?)$"}),
        mode: str = Query("dense", description="dense, bm25 or hybrid", json_schema_extra={"enum": list(modes())}),
        prefix: str | None = Query(None, description=_PREFIX_DOC, json_schema_extra={"maxLength": MAX_PREFIX_CHARS}),
    ) -> JSONResponse:
        """Like ``POST /search``, with the parameters in the URL: ``/search?q=read+a+csv+file&top_k=5``."""
        try:
            k = int(top_k)
        except ValueError:
            raise RequestValidationError(
                [{"loc": ("query", "top_k"), "msg": f"top_k is {top_k[:20]!r}: give a whole number from 1 to {MAX_TOP_K}",
                  "type": "int_parsing"}]  # fmt: skip
            ) from None
        try:
            req = SearchRequest(query=q, top_k=k, mode=mode, prefix=prefix)
        except ValidationError as e:
            raise RequestValidationError(
                [{**x, "loc": ("query", {"query": "q"}.get(str(x["loc"][0]), x["loc"][0]))} for x in e.errors()]
            ) from None
        return search(req)

    @app.post("/search/batch", response_model=BatchResponse, responses=err, summary="Search with many queries")
    def search_batch(req: BatchRequest) -> JSONResponse:
        """Answer up to 64 queries with one encoder call; results come in the order of ``queries``."""
        hits, stats = run(req.queries, req.top_k, req.mode, req.prefix)
        return JSONResponse({
            "mode": req.mode, "results": [[_hit(h) for h in row] for row in hits],
            "timings_ms": stats["timings"], "cached": [bool(c) for c in stats["cached"]],
        })  # fmt: skip

    @app.get("/health", response_model=Health, responses={503: {"model": Health}}, summary="Readiness")
    async def health() -> JSONResponse:
        """Say whether the model and index are loaded (200) or not (503), and what is served."""
        # On the event loop, not in the worker threads /search fills up: a saturated /search must not queue it.
        # Only Redis stats may touch the network (a ping, 50 ms timeout): they go to a thread of their own.
        stats = await asyncio.to_thread(cache.stats) if isinstance(cache, RedisCache) else cache.stats()
        eng = state.engine
        body = Health(status=state.status, ready=eng is not None, modes=list(modes()), error=state.error,
                      cache=stats)  # fmt: skip
        if eng is not None:
            body.model, body.dim, body.documents = eng.embedder.model_id, eng.embedder.dim, len(eng.corpus)
            body.index = {"factory": eng.index.factory, "metric": eng.index.metric, "vectors": len(eng.index),
                          "bm25": eng.bm25 is not None}  # fmt: skip
            body.modes = [m for m in modes() if m == "dense" or eng.bm25 is not None]
            if batcher:
                body.encoder = {"calls": batcher[-1].calls, "texts": batcher[-1].texts, "max_batch": batcher[-1].max_batch}
        return JSONResponse(body.model_dump(), status_code=200 if eng is not None else 503)

    return app


class _NotReady(Exception):
    pass


def _hit(h: Hit) -> dict:
    """Return a hit as a JSON-ready dict (a float score, plain strings)."""
    return {"id": h.id, "score": float(h.score), "title": h.title, "text": h.text}


class BodyLimit:
    """ASGI middleware: answer 413 to request bodies over ``max_bytes`` (declared or streamed), before parsing."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def _too_large(self, send) -> None:
        body = JSONResponse(
            {"detail": f"request body is over {self.max_bytes} bytes: send less (e.g. fewer queries per batch)"},
            status_code=413,
        )
        await send({"type": "http.response.start", "status": 413, "headers": body.raw_headers})
        await send({"type": "http.response.body", "body": body.body})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    return await self._too_large(send)
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # client went away
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._too_large(send)
            chunks.append(chunk)
            more = msg.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _search_prefix_fallback(eng: SearchEngine, queries, k: int, mode: str, prefix: str, stats: dict):
    """Filter hits by id prefix when the engine cannot: search deeper, keep the matching ids."""
    depth = min(len(eng.corpus), max(k * 50, 1000))
    rows = eng.search_many(queries, depth, mode, stats=stats)  # type: ignore[arg-type]
    return [[h for h in row if h.id.startswith(prefix)][:k] for row in rows]


# -- running it ----------------------------------------------------------------------------------


def set_compute_threads(n: int = 1) -> None:
    """Set the threads torch and faiss use per call (process-wide); a server wants 1: requests give the parallelism.

    With several threads each, the encoder's OpenMP workers spin and wait for one another; on a busy
    2-core machine that turned a 6 ms query embedding into seconds.
    """
    import faiss
    import torch

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"threads must be a positive integer, got {n!r}")
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)



def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class BackgroundServer:
    """Serve an app with uvicorn in a background thread: ``with BackgroundServer(app) as srv: srv.url``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None, log_level: str = "warning"):
        import uvicorn

        self.host, self.port = host, port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(app, host=host, port=self.port, log_level=log_level, access_log=False,
                                lifespan="on", timeout_graceful_shutdown=5)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    def start(self, timeout_s: float = 30.0) -> BackgroundServer:
        """Start serving; return once the port accepts connections (or raise after ``timeout_s``)."""
        self.thread = threading.Thread(target=self.server.run, name="searchkit-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise SearchkitError(f"the server on {self.url} stopped at start-up: is port {self.port} taken?")
            if time.monotonic() > deadline:
                self.stop()
                raise SearchkitError(f"the server on {self.url} did not start within {timeout_s} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to finish open requests and exit; wait for the thread."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout_s)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        running = self.thread is not None and self.thread.is_alive()
        return f"BackgroundServer({self.url}, {'running' if running else 'stopped'})"


def serve_in_background(engine: SearchEngine, port: int | None = None, **app_kw) -> BackgroundServer:
    """Start the app for ``engine`` on a free loopback port in a background thread; call ``.stop()`` to end it."""
    return BackgroundServer(create_app(engine, **app_kw), port=port).start()


def load_engine(
    corpus: str = "pydocs", index_dir: str | None = None, factory: str = "Flat", bm25: bool = True,
    progress: bool | None = None,
) -> SearchEngine:  # fmt: skip
    """Return an engine for ``corpus``: with ``index_dir``, load that saved index, checked; else build one.

    Checks come first and fail with one line naming the fix: a missing or damaged index, one built with
    another model or dimension, or one whose ids are not documents of ``corpus``.
    """
    from .datasets import load_dataset
    from .embed import default_embedder
    from .errors import SearchIndexError
    from .index import VectorIndex, read_manifest
    from .lexical import BM25

    if index_dir is not None:
        read_manifest(index_dir)  # a missing or unreadable index fails before the model loads
    docs = load_dataset(corpus).corpus
    embedder = default_embedder()
    if index_dir is None:
        return SearchEngine.build(docs, embedder, factory=factory, bm25=bm25, progress=progress)
    index = VectorIndex.load(index_dir, model_id=embedder.model_id, dim=embedder.dim)
    unknown = [d for d in index.ids if d is not None and d not in docs]
    if unknown:
        raise SearchIndexError(
            f"index in {index_dir} holds {len(unknown)} ids that are not documents of {corpus!r} "
            f"(e.g. {unknown[0]!r}): build it from this corpus with "
            f"python -m searchkit build --corpus {corpus} --out {index_dir}"
        )
    return SearchEngine(docs, embedder, index, BM25(docs.ids, docs.full_texts()) if bm25 else None)


# -- measuring it --------------------------------------------------------------------------------


def load_test(url: str, queries: list[str], clients: int = 1, top_k: int = 10, path: str = "/search") -> dict:
    """POST each query once from ``clients`` threads (one keep-alive connection each).

    Return ``{"lat_ms": (n,) array, "wall_s", "rps", "errors", "cached", "p50", "p95", "p99"}``: latency as
    the client sees it, in ms; ``errors`` counts non-200 answers and failed connections.
    """
    import http.client
    import json
    from urllib.parse import urlsplit

    if clients < 1:
        raise InputError(f"clients must be at least 1, got {clients}")
    parts = urlsplit(url)
    lat = np.zeros(len(queries))
    server_ms = np.full(len(queries), np.nan)  # the app's own timings_ms.total
    errors, cached, cursor = [0], [0], [0]
    lock = threading.Lock()

    def connect():
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def worker() -> None:
        conn = connect()
        while True:
            with lock:
                i = cursor[0]
                cursor[0] += 1
            if i >= len(queries):
                break
            body = json.dumps({"query": queries[i], "top_k": top_k})
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                ok, hit = resp.status == 200, b'"cached":true' in data
                m = _TOTAL.search(data)
                if m:
                    server_ms[i] = float(m.group(1))
            except (OSError, http.client.HTTPException):
                ok, hit = False, False
                conn.close()
                conn = connect()
            lat[i] = (time.perf_counter() - t0) * 1000
            with lock:
                errors[0] += not ok
                cached[0] += hit
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    p50, p95, p99 = (float(v) for v in np.percentile(lat, [50, 95, 99])) if len(lat) else (0.0, 0.0, 0.0)
    srv = server_ms[np.isfinite(server_ms)]
    s50, s99 = (float(v) for v in np.percentile(srv, [50, 99])) if len(srv) else (float("nan"),) * 2
    return {"lat_ms": lat, "wall_s": wall, "rps": len(queries) / wall if wall else 0.0, "errors": errors[0],
            "cached": cached[0], "p50": p50, "p95": p95, "p99": p99, "server_p50": s50, "server_p99": s99}  # fmt: skip


_TOTAL = __import__("re").compile(rb'"total":\s*([0-9.]+)')


def plot_latency(rows: list[dict], title: str = "Search latency over HTTP"):
    """Bar chart of p50/p95/p99 (ms, log scale) per scenario; ``rows`` carry "label", "p50", "p95", "p99"."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(rows))
    for j, q in enumerate(("p50", "p95", "p99")):
        ax.bar(x + (j - 1) * 0.27, [r[q] for r in rows], width=0.27, label=q)
    ax.set_xticks(x, [r["label"] for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel("latency per request (ms, log scale)")
    ax.set_xlabel("scenario (query kind, concurrent clients)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
