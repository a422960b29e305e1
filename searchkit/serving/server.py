"""Run the app: an in-process uvicorn server on a free loopback port, started and stopped from Python."""

from __future__ import annotations

import json
import socket
import threading
import time

from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from searchkit.engine import SearchEngine
from searchkit.errors import SearchkitError
from searchkit.serving.app import create_app

# Bounds on a request head, applied by BoundedHttpTools inside uvicorn's httptools parser (JSON 414 or 431 beyond).
MAX_URL_BYTES = 32 * 1024  # request target: a 2,000-character CJK q, percent-encoded, is 18 KB
MAX_HEADER_BYTES = 16 * 1024  # one header line (name and value)
MAX_HEADERS = 100  # header lines per request
MAX_HEAD_BYTES = 64 * 1024  # request line and headers together, counted as they arrive
LINGER_S = 2.0  # after refusing a head, read and drop what the client still sends for this long, then close


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the request head bounded: URL (414), header line, count and total (431).

    Bytes of an unfinished head are counted as they arrive, so a client streaming an endless header is refused
    after ``MAX_HEAD_BYTES`` (plus one read) instead of growing the parser's buffer; the answer is JSON like every
    other error, and so is the 400 for a request that is not HTTP. Complete small requests take the parent's path.
    """

    _in_head, _head_bytes, _refused = True, 0, False
    _limit: tuple[int, str] | None = None  # the bound a head broke, for send_400_response

    def _refuse(self, status: int, detail: str) -> None:
        """Answer ``status`` with a JSON ``detail``, stop parsing, drop further input and close after LINGER_S."""
        self._refused = True
        body = json.dumps({"detail": detail}).encode()
        reason = {400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}[status]
        head = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n"
                    b"x-content-type-options: nosniff\r\ncache-control: no-store\r\n\r\n" % len(body))  # fmt: skip
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer, then end of stream
        self.loop.call_later(LINGER_S, self.transport.close)  # closing now would reset it before it is read

    def _broken_bound(self) -> tuple[int, str] | None:
        """Return (status, detail) of the bound the head read so far breaks: URL, header count or line; else None."""
        if len(self.url) > MAX_URL_BYTES:
            return 414, f"the URL is over {MAX_URL_BYTES} bytes: send long queries with POST /search"
        if len(self.headers) > MAX_HEADERS:
            return 431, f"the request has over {MAX_HEADERS} header lines: send fewer"
        if any(len(name) + len(value) > MAX_HEADER_BYTES for name, value in self.headers):
            return 431, f"a header line is over {MAX_HEADER_BYTES} bytes: shorten it"
        return None

    def data_received(self, data: bytes) -> None:  # type: ignore[override]
        """Feed the parser unless this connection was refused; refuse a head over ``MAX_HEAD_BYTES``."""
        if self._refused:
            return
        self._limit = None
        super().data_received(data)  # parser errors and broken bounds end in send_400_response
        if not self._refused and self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                too_long = f"the request head is over {MAX_HEAD_BYTES} bytes: send fewer or shorter headers"
                self._refuse(*(self._broken_bound() or (431, too_long)))

    def send_400_response(self, msg: str) -> None:
        """Answer a parser error or a bound in JSON (uvicorn's own answer is plain text)."""
        status, detail = self._limit or (400, "the request is not valid HTTP/1.1: send a well-formed request")
        self._refuse(status, detail)

    def on_message_begin(self) -> None:
        self._in_head, self._head_bytes = True, 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._limit = self._broken_bound()  # checked once per request, not per header: the fast path stays fast
        if self._limit is not None:
            raise ValueError(self._limit[1])  # stops httptools; uvicorn then calls send_400_response
        super().on_headers_complete()


# What one client may hold open (uvicorn's settings; see docs/README-reliability.md for what is and is not bounded).
CONNECTION_LIMITS = {
    "http": BoundedHttpTools,  # httptools with the head bounds above
    "timeout_keep_alive": 5,  # s: an idle keep-alive connection is closed after this
    "limit_concurrency": 256,  # open connections (or running requests) beyond this are answered 503 at once
    "backlog": 512,
}


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
                                lifespan="on", timeout_graceful_shutdown=5, **CONNECTION_LIMITS)  # fmt: skip
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
