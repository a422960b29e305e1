"""The search service: a FastAPI app over a SearchEngine, with a query-embedding cache and micro-batching.

Routes: ``POST /search``, ``GET /search?q=``, ``POST /search/batch``, ``GET /health``, OpenAPI at ``/docs``.
Every bad input is a 4xx with a one-line message; CPU work runs in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import copy
import re
import threading
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from searchkit import __version__
from searchkit.encoders.batching import BatchingEmbedder
from searchkit.engine import MODES, EngineResult, Hit, SearchEngine
from searchkit.errors import InputError, NotReadyError, SearchkitError
from searchkit.experiments.live import Experiment
from searchkit.serving.cache import DEFAULT_RESULTS, QueryCache, RedisCache, ResultCache, make_cache
from searchkit.serving.experiment_routes import add_experiment_routes, experiment_search, records_impressions
from searchkit.serving.http_rules import MAX_BODY_BYTES, apply_http_rules
from searchkit.serving.page import add_page
from searchkit.serving.schemas import (
    _PREFIX_DOC,
    _QUERY_DOC,
    _TOP_K_PATTERN,
    _TOPK_DOC,
    MAX_PREFIX_CHARS,
    MAX_QUERY_CHARS,
    MAX_TOP_K,
    BatchRequest,
    BatchResponse,
    Health,
    Problem,
    SearchRequest,
    SearchResponse,
)
from searchkit.threads import use_compute_threads

# -- request and response models -----------------------------------------------------------------


# -- the app -------------------------------------------------------------------------------------


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _hit(h: Hit, snippet: int | None = None) -> dict:
    """Return a hit as a JSON-ready dict (a float score, plain strings; the text cut to ``snippet`` characters)."""
    return {"id": h.id, "score": float(h.score), "title": h.title, "text": h.text if snippet is None else h.text[:snippet]}


class _Service:
    """What the routes share: the engine once loaded (with cache and micro-batching attached) and its status."""

    def __init__(self, cache: QueryCache, results: ResultCache, micro_batch: bool, batch_window_ms: float = 0.0) -> None:
        self.cache, self.results, self.micro_batch, self.batch_window_ms = cache, results, micro_batch, batch_window_ms
        self.engine: SearchEngine | None = None
        self.batcher: BatchingEmbedder | None = None
        self.status = "loading"
        self.error: str | None = None

    def attach(self, engine: SearchEngine) -> None:
        """Serve a shallow copy of ``engine`` with the cache (and the micro-batching encoder) attached."""
        eng = copy.copy(engine)
        if self.micro_batch:
            self.batcher = BatchingEmbedder(eng.embedder, window_ms=self.batch_window_ms)
            eng.embedder = self.batcher
        eng.cache, eng.results = self.cache, self.results
        self.engine, self.status = eng, "ready"

    def load(self, loader: Callable[[], SearchEngine]) -> None:
        """Attach the engine ``loader()`` returns; a failure is kept for /health (the CLI loads before serving)."""
        try:
            self.attach(loader())
        except Exception as e:
            self.status, self.error = "failed", f"{type(e).__name__}: {e}".splitlines()[0]

    def close(self) -> None:
        """Stop the encoder worker and close the cache."""
        if self.batcher is not None:
            self.batcher.close()
        self.cache.close()

    def search(self, queries: list[str], top_k: int, mode: str, prefix: str | None,
               fusion: str | None = None, rerank: int | None = None) -> EngineResult:  # fmt: skip
        """Answer ``queries`` by ``mode`` (``fusion``, ``rerank`` depth: else the engine's) or raise NotReadyError."""
        if self.engine is None:
            raise NotReadyError(self.error or "the index is still loading: retry in a few seconds")
        settings = self.engine.defaults.with_(mode=mode, fusion=fusion)  # type: ignore[arg-type]
        if rerank is not None:
            if rerank and self.engine.reranker is None:
                raise InputError(f"rerank is {rerank} but this server has no re-ranker: start it with --reranker DIR, "
                                 "or leave out rerank")  # fmt: skip
            settings = settings.with_(rerank_depth=rerank or None)
        use_compute_threads()  # requests run in worker threads: give this one the process's faiss thread count
        return self.engine.search_timed(queries, top_k, prefix=prefix, settings=settings)

    def health(self, cache_stats: dict, shards: list[dict] | None = None) -> tuple[Health, int]:
        """Return the /health body and its status code (200 when ready, else 503); ``shards`` from a sharded index."""
        eng = self.engine
        body = Health(status=self.status, ready=eng is not None, modes=list(MODES), error=self.error, cache=cache_stats)
        if shards is not None:
            body.shards = shards
            body.status = "degraded" if any(sh["state"] != "up" for sh in shards) else body.status
        if eng is None:
            return body, 503
        body.model, body.dim, body.documents = eng.embedder.model_id, eng.embedder.dim, len(eng.corpus)
        body.index = {"factory": eng.index.factory, "metric": eng.index.metric, "vectors": len(eng.index),
                      "bm25": eng.bm25 is not None}  # fmt: skip
        body.modes = eng.modes()
        body.reranker = None if eng.reranker is None else eng.reranker.name
        query, built = eng.embedder.backend, eng.index.backend  # a saved index may come from another backend
        body.backend = {"query": query, "index": built, "mixed": built is not None and built != query}
        if self.batcher is not None:
            b = self.batcher
            body.encoder = {"calls": b.calls, "texts": b.texts, "max_batch": b.max_batch}
        return body, 200


def create_app(
    engine: SearchEngine | None = None,
    *,
    loader: Callable[[], SearchEngine] | None = None,
    cache: QueryCache | None = None,
    result_cache_size: int = DEFAULT_RESULTS,
    micro_batch: bool = True,
    batch_window_ms: float = 0.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    experiment: Experiment | None = None,
    cors_origins: Sequence[str] = (),
) -> FastAPI:
    """Return the FastAPI app serving ``engine`` (or the engine ``loader()`` returns, loaded at start-up).

    ``cache`` defaults to :func:`searchkit.serving.cache.make_cache` (LRU, or Redis when ``SEARCHKIT_REDIS_URL`` is
    set). The caller's engine is not modified: the app works on a shallow copy with the cache attached.
    ``result_cache_size`` answers of repeated queries are kept whole (:class:`searchkit.serving.cache.ResultCache`; 0: off).
    With an ``experiment``, ``/search`` answers from its arms and records impressions; ``/click`` records clicks.
    ``cors_origins`` (e.g. ``["http://localhost:3000"]``) lets pages from those origins call the API; none by default.
    """
    if engine is None and loader is None:
        raise InputError("create_app needs an engine or a loader: pass SearchEngine.build(corpus) or a function")
    results = ResultCache(result_cache_size)
    service = _Service(cache if cache is not None else make_cache(), results, micro_batch, batch_window_ms)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if service.engine is None and loader is not None:
            threading.Thread(target=service.load, args=(loader,), name="searchkit-loader", daemon=True).start()
        yield
        service.close()

    app = FastAPI(
        title="searchkit",
        version=__version__,
        description="Semantic search over a corpus: dense embeddings (FAISS), BM25, or both.",
        lifespan=lifespan,
        responses={422: {"description": "invalid input: the message says which value and how to fix it"}},
        docs_url=None, redoc_url=None,  # served from local files by apply_http_rules
    )
    app.state.searchkit = service
    app.state.cache = service.cache
    if engine is not None:
        service.attach(engine)
    _add_error_handlers(app)
    _add_search_routes(app, service, max_body_bytes, experiment, tuple(cors_origins))
    add_experiment_routes(app, experiment)
    _add_health_route(app, service)
    add_page(app)  # the search page at / (searchkit/serving/static)
    apply_http_rules(app, cors_origins=cors_origins, max_body_bytes=max_body_bytes)  # after every route is added
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Answer searchkit's own errors with JSON (validation and parse errors: :mod:`searchkit.serving.http_rules`)."""

    @app.exception_handler(NotReadyError)
    async def _on_not_ready(request: Request, exc: NotReadyError) -> JSONResponse:
        return _problem(503, f"not ready: {exc}")

    @app.exception_handler(SearchkitError)
    async def _on_searchkit(request: Request, exc: SearchkitError) -> JSONResponse:
        return JSONResponse(
            {"detail": [{"loc": ["body"], "msg": str(exc).splitlines()[0], "type": "value_error"}]}, status_code=422
        )

    @app.exception_handler(Exception)
    async def _on_error(request: Request, exc: Exception) -> JSONResponse:
        return _problem(500, f"internal error ({type(exc).__name__}); the server log has details")


def _add_search_routes(app: FastAPI, service: _Service, max_body_bytes: int, experiment: Experiment | None,
                       cors_origins: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Add ``POST /search``, ``GET /search`` and ``POST /search/batch`` (a same-site POST joins a running experiment)."""
    err = {
        400: {"model": Problem, "description": "body is not JSON the server can parse (too deeply nested, not UTF-8)"},
        413: {"model": Problem, "description": f"request body over {max_body_bytes} bytes"},
        422: {"description": "invalid input"},
        503: {"model": Problem, "description": "index not loaded yet"},
    }

    @app.post("/search", response_model=SearchResponse, responses=err, summary="Search with one query")
    def search(req: SearchRequest, request: Request) -> JSONResponse:
        """Return the ``top_k`` best documents for ``query`` (while an experiment runs: its arms decide the mode)."""
        if experiment is not None and records_impressions(request, cors_origins):  # GET, HEAD: plain answers
            return experiment_search(experiment, service.search, req, request, _hit)
        res = service.search([req.query], req.top_k, req.mode, req.prefix, rerank=req.rerank)
        return JSONResponse({
            "query": req.query, "mode": req.mode, "rerank": _depth(service, req.rerank),
            "results": [_hit(h, req.snippet) for h in res.hits[0]],
            "timings_ms": res.timings.as_dict(), "cached": bool(res.cached[0]), "result_cached": res.result_cached,
            **_partial(res),
        })  # fmt: skip  (built directly: the response model documents it, re-validating it costs time)

    @app.get("/search", response_model=SearchResponse, responses=err, summary="Search from a browser or curl")
    def search_get(
        request: Request,
        q: str = Query(..., description=_QUERY_DOC,
                       json_schema_extra={"minLength": 1, "maxLength": MAX_QUERY_CHARS}),
        top_k: str = Query("10", description=_TOPK_DOC,  # a string, so a bad value gets our message
                           json_schema_extra={"pattern": _TOP_K_PATTERN}),
        mode: str = Query("dense", description="dense, bm25 or hybrid", json_schema_extra={"enum": list(MODES)}),
        prefix: str | None = Query(None, description=_PREFIX_DOC, json_schema_extra={"maxLength": MAX_PREFIX_CHARS}),
    ) -> JSONResponse:
        """Like ``POST /search``, with the parameters in the URL: ``/search?q=read+a+csv+file&top_k=5``."""
        return search(_request_from_url(q, top_k, mode, prefix), request)

    @app.post("/search/batch", response_model=BatchResponse, responses=err, summary="Search with many queries")
    def search_batch(req: BatchRequest) -> JSONResponse:
        """Answer up to 64 queries with one encoder call; results come in the order of ``queries``."""
        res = service.search(req.queries, req.top_k, req.mode, req.prefix, rerank=req.rerank)
        return JSONResponse({
            "mode": req.mode, "rerank": _depth(service, req.rerank),
            "results": [[_hit(h, req.snippet) for h in row] for row in res.hits],
            "timings_ms": res.timings.as_dict(), "cached": [bool(c) for c in res.cached],
            "result_cached": res.result_cached, **_partial(res),
        })  # fmt: skip


def _depth(service: _Service, rerank: int | None) -> int | None:
    """Return the re-rank depth a request got: its own ``rerank`` (0: none), else the engine's default."""
    if rerank is not None:
        return rerank or None
    return service.engine.defaults.rerank_depth if service.engine is not None else None


def _partial(res: EngineResult) -> dict:
    """Return ``{"partial": true, "failed_shards": [...]}`` when shards did not answer, else nothing."""
    return {"partial": True, "failed_shards": list(res.failed_shards)} if res.partial else {}


def _request_from_url(q: str, top_k: str, mode: str, prefix: str | None) -> SearchRequest:
    """Return the SearchRequest of ``GET /search`` parameters; bad ones raise a 422 naming the URL parameter."""
    if not re.fullmatch(r"0|[1-9][0-9]{0,19}", top_k):  # a plain whole number; its range is the model's check
        shown = repr(top_k[:20]) + (f" ({len(top_k)} characters)" if len(top_k) > 20 else "")
        raise RequestValidationError(
            [{"loc": ("query", "top_k"), "msg": f"top_k is {shown}: give a whole number from 1 to {MAX_TOP_K} "
              "in ASCII digits", "type": "int_parsing"}]  # fmt: skip
        )
    try:
        return SearchRequest(query=q, top_k=int(top_k), mode=mode, prefix=prefix)
    except ValidationError as e:
        raise RequestValidationError(
            [{**x, "loc": ("query", {"query": "q"}.get(str(x["loc"][0]), x["loc"][0]))} for x in e.errors()]
        ) from None


def _add_health_route(app: FastAPI, service: _Service) -> None:
    """Add ``GET /health``."""

    @app.get("/health", response_model=Health, responses={503: {"model": Health}}, summary="Readiness")
    async def health() -> JSONResponse:
        """Say whether the model and index are loaded (200) or not (503), and what is served."""
        # On the event loop, not in the worker threads /search fills up: a saturated /search must not queue it.
        # Only Redis stats may touch the network (a ping, 50 ms timeout): they go to a thread of their own.
        cache = service.cache
        stats = await asyncio.to_thread(cache.stats) if isinstance(cache, RedisCache) else cache.stats()
        stats = {**stats, "results": service.results.stats()}
        index = getattr(service.engine, "index", None)
        shards = await asyncio.to_thread(index.health) if hasattr(index, "health") else None  # asks each shard actor
        body, status = service.health(stats, shards)
        return JSONResponse(body.model_dump(), status_code=status)
