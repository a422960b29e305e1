"""The HTTP API's request and response models (pydantic) and the field rules every request shares."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from searchkit.engine import MODES
from searchkit.errors import InputError, QueryError
from searchkit.experiments.arms import MAX_SESSION_CHARS
from searchkit.validation import MAX_QUERY_CHARS, check_text, clean_query

_SESSION_DOC = f"who is searching (split experiments keep a session in one arm); up to {MAX_SESSION_CHARS} characters"

MAX_TOP_K = 100


MAX_BATCH = 64  # queries per POST /search/batch


MAX_PREFIX_CHARS = 200


MAX_RERANK_DEPTH = 100  # hits one request may have the cross-encoder read (each costs a model pass)


_TOP_K_PATTERN = "^(100|[1-9][0-9]?)$"  # GET top_k: ASCII digits only (no sign, leading zero, _, space, other scripts)


def _check_query(v: str) -> str:
    """Apply the one valid-query rule (searchkit.validation.clean_query) as a 422 with the rule's own message."""
    try:
        return clean_query(v, max_chars=MAX_QUERY_CHARS)
    except QueryError as e:
        raise PydanticCustomError(e.code, e.template, e.params) from None


def _check_id_text(v: str, name: str) -> str:
    """Apply the text rule for ids (searchkit.validation.check_text): a lone surrogate is a 422, never a 500."""
    try:
        return check_text(v, name, f"send a {name} of valid Unicode text")
    except InputError as e:
        raise PydanticCustomError("text_invalid", "{msg}", {"msg": str(e)}) from None


def _check_top_k(v: int) -> int:
    if not 1 <= v <= MAX_TOP_K:
        shown = str(v) if abs(v) < 10**20 else f"a number with {len(str(abs(v)))} digits"
        raise PydanticCustomError(
            "top_k_range", "top_k is {v}: choose a number from 1 to {limit}", {"v": shown, "limit": MAX_TOP_K}
        )
    return v


def _check_mode(v: str) -> str:
    if v not in MODES:
        raise PydanticCustomError(
            "mode_unknown", "unknown mode {mode}: choose one of {choices}",
            {"mode": repr(v[:50]), "choices": ", ".join(MODES)},
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
    return v  # a lone surrogate matches no id (ids follow the text rule): an empty answer, as documented


def _check_rerank(v: int | None) -> int | None:
    if v is not None and not 0 <= v <= MAX_RERANK_DEPTH:
        shown = str(v) if abs(v) < 10**20 else f"a number with {len(str(abs(v)))} digits"
        raise PydanticCustomError(
            "rerank_range", "rerank is {v}: give a depth from 1 to {limit} (hits re-ordered by the cross-encoder), "
            "or 0 for none", {"v": shown, "limit": MAX_RERANK_DEPTH},
        )  # fmt: skip
    return v


_FIELD_CHECKS = {"top_k": _check_top_k, "mode": _check_mode, "prefix": _check_prefix,
                 "rerank": _check_rerank}  # fields every request has; fmt: skip


_QUERY_DOC = f"the text to search for: 1 to {MAX_QUERY_CHARS} characters, not only whitespace"


_TOPK_DOC = f"how many results to return, 1 to {MAX_TOP_K}"


_SNIPPET_DOC = "send at most this many characters of each result's text (0: none, only id, score, title); default: all"


_RERANK_DOC = (f"re-order the first this many hits with the server's cross-encoder, 1 to {MAX_RERANK_DEPTH}; 0: not; "
               "default: the server's --rerank-depth (none)")


_PREFIX_DOC = "keep only documents whose id starts with this, e.g. 'os.path.' (a module of the Python docs)"


class _Common(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    top_k: int = Field(10, description=_TOPK_DOC, json_schema_extra={"minimum": 1, "maximum": MAX_TOP_K})
    mode: str = Field("dense", description="dense (embeddings), bm25 (keywords) or hybrid (both)",
                      json_schema_extra={"enum": list(MODES)})  # fmt: skip
    prefix: str | None = Field(None, description=_PREFIX_DOC, json_schema_extra={"maxLength": MAX_PREFIX_CHARS})
    snippet: int | None = Field(None, description=_SNIPPET_DOC, json_schema_extra={"minimum": 0})
    rerank: int | None = Field(None, description=_RERANK_DOC,
                               json_schema_extra={"minimum": 0, "maximum": MAX_RERANK_DEPTH})  # fmt: skip

    @field_validator("snippet")
    @classmethod
    def _snippet(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise PydanticCustomError("snippet_negative", "snippet is {v}: give 0 or more characters (0: no text)", {"v": v})
        return v

    @field_validator("top_k", "mode", "prefix", "rerank")
    @classmethod
    def _checked(cls, v: object, info: ValidationInfo) -> object:
        return _FIELD_CHECKS[info.field_name](v)


class SearchRequest(_Common):
    """One query."""

    session: str | None = Field(None, description=_SESSION_DOC, json_schema_extra={"maxLength": MAX_SESSION_CHARS})

    query: str = Field(..., description=_QUERY_DOC, examples=["how do I delete a folder and everything in it"],
                       json_schema_extra={"minLength": 1, "maxLength": MAX_QUERY_CHARS})  # fmt: skip

    @field_validator("query")
    @classmethod
    def _query(cls, v: str) -> str:
        return _check_query(v)

    @field_validator("session")
    @classmethod
    def _session(cls, v: str | None) -> str | None:
        if v is not None and len(v) > MAX_SESSION_CHARS:
            raise PydanticCustomError("session_too_long", "session has {n} characters; the limit is {limit}",
                                      {"n": len(v), "limit": MAX_SESSION_CHARS})  # fmt: skip
        return _check_id_text(v, "session") if v else None


class BatchRequest(_Common):
    """Several queries answered with one encoder call."""

    queries: list[str] = Field(..., description=f"1 to {MAX_BATCH} queries",
                               json_schema_extra={"minItems": 1, "maxItems": MAX_BATCH, "items": {
                                   "type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS}})  # fmt: skip

    @field_validator("queries", mode="before")
    @classmethod
    def _batch_size(cls, v: Any) -> Any:
        """Count the queries before checking each one: 128,000 bad items make one error, not 128,000."""
        if isinstance(v, list) and not 1 <= len(v) <= MAX_BATCH:
            raise PydanticCustomError(
                "batch_size", "got {n} queries: send 1 to {limit} per batch", {"n": len(v), "limit": MAX_BATCH}
            )
        return v

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
    """Where the time went, in milliseconds: query embedding (or cache lookup), index search, re-ranking, the whole."""

    embed: float
    search: float
    rerank: float = Field(0.0, description="the cross-encoder's second stage (0 when the hits were not re-ranked)")
    total: float


class SearchResponse(BaseModel):
    """The answer to one query."""

    query: str = Field(description="the query as searched (normalized)")
    mode: str
    rerank: int | None = Field(None, description="how many hits the cross-encoder re-ordered (null: none)")
    results: list[HitOut]
    timings_ms: Timings
    cached: bool = Field(description="true when the query vector came from the cache (no encoder call)")
    result_cached: bool = Field(False, description="true when the whole answer came from the result cache "
                                "(a repeated query: no encoder call and no index search)")
    impression_id: str | None = Field(None, description="only while an experiment runs: send it with POST /click")
    partial: bool | None = Field(None, description="present and true when some shards of the index did not answer")
    failed_shards: list[int] | None = Field(None, description="the shards that did not answer (with partial)")


class BatchResponse(BaseModel):
    """The answers to a batch, in the order of the queries."""

    mode: str
    rerank: int | None = Field(None, description="hits of each answer the cross-encoder re-ordered (null: none)")
    results: list[list[HitOut]]
    timings_ms: Timings
    cached: list[bool]
    result_cached: bool = Field(False, description="true when every answer came from the result cache")
    partial: bool | None = Field(None, description="present and true when some shards of the index did not answer")
    failed_shards: list[int] | None = Field(None, description="the shards that did not answer (with partial)")


class Health(BaseModel):
    """Readiness and what is loaded."""

    status: str = Field(description="ready, loading, failed, or degraded while a shard of the index is down")
    ready: bool
    model: str | None = None
    dim: int | None = None
    documents: int | None = None
    index: dict[str, Any] | None = None
    modes: list[str] = []
    cache: dict[str, Any] | None = None
    encoder: dict[str, Any] | None = Field(None, description="model calls and texts encoded (calls < texts: batching)")
    backend: dict[str, Any] | None = Field(None, description="encoder backend of the queries and of the index vectors")
    reranker: str | None = Field(None, description="the cross-encoder requests can re-rank with (rerank: depth)")
    shards: list[dict[str, Any]] | None = Field(None, description="a sharded index's shards: {id, node, state}")
    error: str | None = None


class Problem(BaseModel):
    """An error other than a validation error: one line saying what is wrong and what to do."""

    detail: str


class ClickResponse(BaseModel):
    """A click durably stored (``new``: false when it had been recorded before; it counts once)."""

    impression_id: str
    id: str
    new: bool


class ArmState(BaseModel):
    """One arm of the running experiment: its settings and its counts (split: CTR; interleave: wins and losses)."""

    mode: str
    fusion: str | None = Field(description="the fusion the arm names, or null for the engine's own")
    impressions: int | None = Field(None, description="split: impressions this arm answered")
    clicked: int | None = Field(None, description="split: impressions with at least one click")
    clicks: int = Field(description="clicks on this arm's results (interleave: on results its team placed)")
    ctr: float | None = Field(None, description="split: clicked / impressions")
    ctr_ci: list[float] | None = Field(None, description="split: 95% interval of the CTR, [low, high]")
    wins: int | None = Field(None, description="interleave: impressions where this arm's team got more clicks")
    ties: int | None = Field(None, description="interleave: impressions where both teams got the same clicks")
    losses: int | None = Field(None, description="interleave: impressions where the other team got more clicks")


class Difference(BaseModel):
    """Split: the CTR difference of the second arm minus the first, with its 95% interval and two-sided p."""

    of: str = Field(description="which difference, e.g. 'b - a'")
    ctr: float
    ci: list[float]
    p_value: float


class Preference(BaseModel):
    """Interleave: the preference for arm ``for`` (its wins minus the other's, per impression), interval and sign-test p."""

    model_config = ConfigDict(populate_by_name=True)

    for_: str = Field(alias="for", description="the arm the preference is for")
    value: float
    ci: list[float]
    p_value: float


class ExperimentState(BaseModel):
    """``GET /experiment``: the design, totals, each arm's counts, and the comparison (split or interleaved)."""

    design: str = Field(description="split or interleave")
    impressions: int
    clicks: int
    impressions_dropped: int = Field(0, description="impressions not recorded because another process held the events file")
    impressions_pruned: int = Field(0, description="oldest impressions removed to keep the file under --events-max-mb")
    arms: dict[str, ArmState]
    difference: Difference | None = Field(None, description="split: null until both arms have impressions")
    impressions_with_clicks: int | None = Field(None, description="interleave: impressions with at least one click")
    impressions_without_clicks: int | None = Field(None, description="interleave: impressions nobody clicked")
    preference: Preference | None = Field(None, description="interleave: the preference test")
