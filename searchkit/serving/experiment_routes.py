"""The experiment's HTTP routes: ``POST /click`` and ``GET /experiment`` (added only while an experiment runs).

``/search`` itself asks :func:`experiment_search` for its answer while an experiment runs; without one the
app neither writes nor changes anything per request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from searchkit.engine import EngineResult, Hit, StageTimings
from searchkit.errors import NotShownError, UnknownImpressionError
from searchkit.experiments.arms import MAX_SESSION_CHARS, Arm
from searchkit.experiments.live import Experiment
from searchkit.serving.schemas import ClickResponse, ExperimentState

SESSION_COOKIE = "searchkit_session"


class ClickRequest(BaseModel):
    """A click on a result of an impression."""

    model_config = ConfigDict(strict=True, extra="forbid")

    impression_id: str = Field(..., min_length=1, max_length=64, description="the impression_id of a /search answer")
    id: str = Field(..., min_length=1, max_length=1000, description="the id of the result that was opened")


def session_of(request: Request, session: str | None) -> str | None:
    """Return the session named in the body, else the session cookie, else None."""
    if session:
        return session
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return cookie[:MAX_SESSION_CHARS] or None


def records_impressions(request: Request, cors_origins: Sequence[str] = ()) -> bool:
    """Say whether ``request`` may count in an experiment: a POST that a page on another site cannot forge.

    GET and HEAD never count (an ``<img src=.../search?q=...>`` on any page sends them). A POST reaches a route
    only as JSON (else 415), which a page of another origin can send only after a CORS preflight, allowed just for
    ``cors_origins``; a browser's ``Sec-Fetch-Site`` saying the page is on another origin is believed too.
    """
    if request.method != "POST":
        return False
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site in (None, "same-origin", "none"):
        return True
    return request.headers.get("origin") in cors_origins


def experiment_search(experiment: Experiment, search: Callable[..., EngineResult], req, request: Request,
                      to_json: Callable[[Hit, int | None], dict]) -> JSONResponse:  # fmt: skip
    """Answer ``POST /search`` under ``experiment``: each arm's settings go with its own engine call.

    ``search(queries, top_k, mode, prefix, fusion=...)`` is the app's engine call. A request that names no
    session and has no session cookie gets a new session, set as a cookie.
    """
    given = session_of(request, req.session)
    answers: list[EngineResult] = []

    def arm_search(arm: Arm) -> list[Hit]:
        answers.append(search([req.query], req.top_k, arm.mode, req.prefix, fusion=arm.fusion))
        return answers[-1].hits[0]

    hits, impression_id, session = experiment.search(arm_search, req.query, req.top_k, given)
    embed, total = (sum(getattr(a.timings, f) for a in answers) for f in ("embed_ms", "total_ms"))
    response = JSONResponse({
        "query": req.query, "mode": "experiment", "results": [to_json(h, req.snippet) for h in hits],
        "timings_ms": StageTimings(embed, total - embed, total).as_dict(),
        "cached": all(a.cached[0] for a in answers),
        "result_cached": all(a.result_cached for a in answers), "impression_id": impression_id,
    })  # fmt: skip
    if given is None:  # a year, same-site, unreadable by scripts
        response.set_cookie(SESSION_COOKIE, session, max_age=365 * 86400, httponly=True, samesite="lax")
    return response


def add_experiment_routes(app: FastAPI, experiment: Experiment | None) -> None:
    """Add ``POST /click`` and ``GET /experiment`` to ``app``; both answer 404 when no experiment runs."""

    def running() -> Experiment:
        if experiment is None:
            raise UnknownImpressionError("no experiment is running: start the server with --experiment")
        return experiment

    @app.exception_handler(UnknownImpressionError)
    async def _on_unknown(request: Request, exc: UnknownImpressionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(NotShownError)
    async def _on_not_shown(request: Request, exc: NotShownError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    err = {404: {"description": "unknown impression, or no experiment running"},
           422: {"description": "the impression did not show that document, or invalid input"}}  # fmt: skip

    @app.post("/click", response_model=ClickResponse, responses=err, summary="Record a click on a result")
    def click(req: ClickRequest) -> JSONResponse:
        """Record that the result ``id`` of impression ``impression_id`` was opened; answer once it is on disk."""
        new = running().click(req.impression_id, req.id)
        return JSONResponse({"impression_id": req.impression_id, "id": req.id, "new": new})

    @app.get("/experiment", response_model=ExperimentState, responses={404: err[404]},
             summary="The running experiment and its statistics")  # fmt: skip
    def experiment_state() -> JSONResponse:
        """Return the design, total impressions and clicks, per-arm counts, and the comparison with its CI and p."""
        return JSONResponse(running().summary())
