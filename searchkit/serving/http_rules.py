"""The HTTP rules every route of the app follows, the routes added later included.

One ASGI middleware and two exception handlers, driven by the app's own OpenAPI schema, so a new route gets
them by being declared: query strings are UTF-8, with no unknown or repeated parameters; a request body goes
with the media type the route documents (else 415); error bodies are bounded; every answer carries
``X-Content-Type-Options: nosniff`` and a ``Cache-Control``; ``HEAD`` works wherever ``GET`` does; redirects
are relative (a forged ``Host`` header never reaches a ``Location``); CORS is off unless origins are given.
``/docs`` and ``/redoc`` load Swagger UI and ReDoc from the pinned ``fastapi-offline`` package, not a CDN.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.staticfiles import StaticFiles

MAX_ERRORS = 5  # validation errors listed in a 422; the rest are counted
MAX_LOC_CHARS = 50  # a field name in an error is cut to this (a hostile body may use megabyte-long names)
MAX_MSG_CHARS = 300
NO_STORE = "no-store"  # API answers: results change with the index, errors must not be cached
ASSETS_CACHE = "public, max-age=86400"  # the pinned docs assets change only with the package
ASSETS_URL = "/docs/assets"
_BODY_METHODS = {"POST", "PUT", "PATCH"}
MAX_BODY_BYTES = 256 * 1024  # larger request bodies get 413
BODY_TIMEOUT_S = 10.0  # a body not received in full within this gets 408


def docs_assets_dir() -> Path:
    """Return the folder of Swagger UI and ReDoc files shipped by the pinned ``fastapi-offline`` package."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


# -- error bodies ----------------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_errors(errors: Sequence[dict]) -> list[dict]:
    """Return the first ``MAX_ERRORS`` errors (no input echoed, names and messages cut) and a count of the rest."""
    out = []
    for e in errors[:MAX_ERRORS]:
        msg = str(e.get("msg", "invalid value"))
        if e.get("type") == "json_invalid":
            msg = f"body is not valid JSON ({(e.get('ctx') or {}).get('error', 'decode error')}): send a JSON object"
        loc = [p if isinstance(p, int) else _cut(str(p), MAX_LOC_CHARS) for p in e.get("loc", ())]
        out.append({"loc": loc, "msg": _cut(msg, MAX_MSG_CHARS), "type": str(e.get("type", "value_error"))})
    if len(errors) > MAX_ERRORS:
        more = len(errors) - MAX_ERRORS
        out.append({"loc": [], "msg": f"and {more} more errors: fix the ones above and send again",
                    "type": "too_many_errors"})  # fmt: skip
    return out


class _Huge(str):
    """A JSON integer too long for Python to read (over 4,300 digits)."""


def _find_huge(node: Any, path: tuple = ()) -> tuple[tuple, _Huge] | None:
    """Return the path to the first over-long integer in parsed JSON ``node``, and the integer's text."""
    if isinstance(node, _Huge):
        return path, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        found = _find_huge(value, (*path, key))
        if found is not None:
            return found
    return None


def _huge_number_error(request: Request, body: bytes) -> dict | None:
    """Name the field holding an integer of over 4,300 digits, and its documented range; None if there is none."""
    try:
        data = json.loads(body, parse_int=lambda s: _Huge(s) if len(s.lstrip("-")) > 4300 else int(s))
    except (ValueError, RecursionError):
        return None
    found = _find_huge(data)
    if found is None or not found[0]:
        return None
    path, digits = found[0], len(found[1].lstrip("-"))
    name = _cut(str(path[-1]), MAX_LOC_CHARS)
    operation = _route_operation(request.app, request.scope, request.method) or {}
    spec = _body_schema(request.app, operation).get("properties", {}).get(path[0], {}) if len(path) == 1 else {}
    if "minimum" in spec and "maximum" in spec:
        low, high = (int(x) if float(x).is_integer() else x for x in (spec["minimum"], spec["maximum"]))
        fix = f"choose a number from {low} to {high}"
    else:
        fix = "send an ordinary number"
    loc = ["body", *(p if isinstance(p, int) else _cut(str(p), MAX_LOC_CHARS) for p in path)]
    return {"loc": loc, "msg": f"{name} is a number with {digits} digits: {fix}", "type": "int_too_long"}


def _parse_problem(cause: BaseException | None) -> str:
    """Say why the body could not be parsed, from the parser's own exception."""
    if isinstance(cause, RecursionError):
        return "body is nested too deeply for the JSON parser: send a flat JSON object"
    if isinstance(cause, UnicodeDecodeError):
        return "body is not UTF-8: encode the JSON as UTF-8"
    return "body could not be parsed as JSON: send a flat JSON object in UTF-8"


def add_error_handlers(app: FastAPI) -> None:
    """Answer validation errors with a bounded 422 and unparseable bodies with a 400 saying why."""

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": bounded_errors(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 400 and "parsing the body" in str(detail):
            cause = exc.__cause__
            if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
                huge = _huge_number_error(request, await request.body())
                if huge is not None:
                    return JSONResponse({"detail": [huge]}, status_code=422)
            detail = _parse_problem(cause)
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


# -- what the schema says a route takes --------------------------------------------------------------


def _route_operation(app: FastAPI, scope: dict, method: str) -> dict | None:
    """Return the OpenAPI operation of the route matching ``scope`` for ``method``, or None (no documented route)."""
    probe = {**scope, "method": method}
    for route in app.router.routes:
        match, _ = route.matches(probe)
        if match is Match.FULL:
            path = getattr(route, "path_format", None)
            return app.openapi().get("paths", {}).get(path, {}).get(method.lower()) if path else None
    return None


def _body_schema(app: FastAPI, operation: dict) -> dict:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return app.openapi().get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
    return schema


def _media_type(headers: dict[bytes, bytes]) -> tuple[str, str | None]:
    raw = headers.get(b"content-type", b"").decode("latin-1")
    kind, _, params = raw.partition(";")
    charset = re.search(r"charset\s*=\s*\"?([^\";\s]+)", params, re.I)
    return kind.strip().lower(), charset.group(1).lower() if charset else None


def _query_problem(scope: dict, operation: dict | None) -> tuple[int, Any] | None:
    """Return (status, detail) if the query string is not UTF-8, repeats a parameter or names an unknown one."""
    raw = scope.get("query_string", b"")
    if not raw:
        return None
    names: list[str] = []
    for part in raw.split(b"&"):
        if not part:
            continue
        key = part.split(b"=", 1)[0].replace(b"+", b" ")
        value = part.split(b"=", 1)[1].replace(b"+", b" ") if b"=" in part else b""
        try:
            name = unquote_to_bytes(key).decode("utf-8")
            unquote_to_bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return 400, "the query string is not valid UTF-8 (a %-escape encodes a byte that is not): encode text as UTF-8"
        names.append(name)
    if operation is None:  # not a documented route (a static file, /docs): nothing more to check
        return None
    known = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
    choices = ", ".join(known) if known else "none: this route takes no query parameters"
    counts = Counter(names)
    for name in names:
        shown = _cut(name, MAX_LOC_CHARS)
        if name not in known:
            return 422, [{"loc": ["query", shown], "msg": f"unknown query parameter {shown!r}: the parameters are {choices}",
                          "type": "extra_forbidden"}]  # fmt: skip
        if counts[name] > 1:
            return 422, [{"loc": ["query", name], "msg": f"{name} is given {counts[name]} times: give it once",
                          "type": "repeated"}]  # fmt: skip
    return None


def _content_type_problem(method: str, headers: dict[bytes, bytes], operation: dict | None) -> str | None:
    """Return a 415 message if the route documents a body and the request sends another media type."""
    if method not in _BODY_METHODS or operation is None or "requestBody" not in operation:
        return None
    accepted = list(operation["requestBody"].get("content", {}))
    kind, charset = _media_type(headers)
    if kind in accepted and (charset in (None, "utf-8", "utf8")):
        return None
    got = f"Content-Type {kind!r}" + (f" with charset {charset!r}" if charset else "") if kind else "no Content-Type"
    return f"got {_cut(got, 80)}: send the body as JSON with the header Content-Type: {accepted[0] if accepted else 'application/json'}"


# -- the middleware --------------------------------------------------------------------------------


class HttpRules:
    """ASGI middleware applying the rules of this module to every request (see the module docstring)."""

    def __init__(self, app, api: FastAPI):
        self.app, self.api = app, api

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        head = scope["method"] == "HEAD"
        if head:  # answer as GET would, without the body
            scope = {**scope, "method": "GET"}
        headers = dict(scope.get("headers", ()))
        operation = _route_operation(self.api, scope, scope["method"])
        problem = _query_problem(scope, operation)
        if problem is None:
            msg = _content_type_problem(scope["method"], headers, operation)
            problem = (415, msg) if msg else None
        host = headers.get(b"host", b"").decode("latin-1")

        async def send_ruled(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _ruled_headers(message, host)}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        if problem is not None:
            status, detail = problem
            return await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send_ruled)
        await self.app(scope, receive, send_ruled)


def _ruled_headers(message: dict, host: str) -> list[tuple[bytes, bytes]]:
    """Add nosniff and a default Cache-Control; make a redirect to this server relative."""
    headers = [(k, v) for k, v in message.get("headers", ()) if k != b"x-content-type-options"]
    names = {k.lower() for k, _ in headers}
    headers.append((b"x-content-type-options", b"nosniff"))
    if b"cache-control" not in names:
        headers.append((b"cache-control", NO_STORE.encode()))
    if 300 <= message["status"] < 400:
        headers = [(k, _relative(v, host) if k.lower() == b"location" else v) for k, v in headers]
    return headers


def _relative(location: bytes, host: str) -> bytes:
    """Return ``location`` as a path on this server if it names this server's Host (whatever the Host says)."""
    parts = urlsplit(location.decode("latin-1"))
    if not parts.netloc or parts.netloc != host:
        return location
    path = "/" + parts.path.lstrip("/\\")  # never '//evil.example': a browser reads that as another host
    return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")


# -- offline API docs ------------------------------------------------------------------------------


class _Assets(StaticFiles):
    """The docs' script and style files, cached by browsers for a day."""

    async def get_response(self, path: str, scope):  # type: ignore[override]
        response = await super().get_response(path, scope)
        response.headers.setdefault("cache-control", ASSETS_CACHE)
        return response


def _with_csp(page: HTMLResponse) -> HTMLResponse:
    """Add a docs page's CSP (its inline scripts by hash, files from here only) and forbid framing it."""
    scripts = re.findall(r"<script>(.*?)</script>", page.body.decode(), flags=re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in scripts)
    page.headers["content-security-policy"] = (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'")  # fmt: skip
    page.headers["x-frame-options"] = "DENY"  # frame-ancestors for browsers that predate it
    return page


def add_offline_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` and ReDoc at ``/redoc`` from local files (create the app with docs_url=None)."""
    app.mount(ASSETS_URL, _Assets(directory=docs_assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _with_csp(get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png", swagger_ui_parameters=app.swagger_ui_parameters,
        ))  # fmt: skip

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _with_csp(get_redoc_html(
            openapi_url=app.openapi_url, title=f"{app.title} - ReDoc", redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False,
        ))  # fmt: skip


_RULE_ANSWERS = {  # what these rules may answer on any route, documented on each operation of the schema
    "400": "the query string (or the body) is not UTF-8, or the body is nested too deeply to parse",
    "422": "invalid input, an unknown or repeated query parameter: the message names it and the fix",
}
_BODY_RULE_ANSWERS = {
    "408": f"the request body did not arrive within {BODY_TIMEOUT_S:g} s",
    "413": "the request body is too large",
    "415": "the body is not sent as the media type the route takes (Content-Type: application/json)",
}


def _document_rules(app: FastAPI) -> None:
    """Add the statuses these rules may answer to every operation of ``app``'s OpenAPI schema."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for item in schema.get("paths", {}).values():
                for op in item.values():
                    extra = {**_RULE_ANSWERS, **(_BODY_RULE_ANSWERS if "requestBody" in op else {})}
                    for code, text in extra.items():
                        op.setdefault("responses", {}).setdefault(code, {"description": text})
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def apply_http_rules(app: FastAPI, cors_origins: Sequence[str] = (), max_body_bytes: int = MAX_BODY_BYTES) -> None:
    """Install the rules on ``app``: the middleware, the error handlers, offline docs and (if given) CORS origins."""
    add_error_handlers(app)
    add_offline_docs(app)
    _document_rules(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"], max_age=600)  # fmt: skip
    app.add_middleware(HttpRules, api=app)


class BodyLimit:
    """ASGI middleware: read the whole body before the app; 413 over ``max_bytes``, 408 if it is not sent in time."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES, timeout_s: float = BODY_TIMEOUT_S):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                return await self._too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        while more:
            try:
                msg = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except TimeoutError:
                detail = f"the request body did not arrive within {self.timeout_s:g} s: send it in one go"
                return await JSONResponse({"detail": detail}, 408, {"connection": "close"})(scope, receive, send)
            if msg["type"] != "http.request":
                return  # client went away
            size += len(msg.get("body", b""))
            if size > self.max_bytes:
                return await self._too_large(scope, receive, send)
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send) -> None:
        detail = f"request body is over {self.max_bytes} bytes: send less (e.g. fewer queries per batch)"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
