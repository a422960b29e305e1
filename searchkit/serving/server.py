"""Run the app: an in-process uvicorn server on a free loopback port, started and stopped from Python."""

from __future__ import annotations

import socket
import threading
import time

from fastapi import FastAPI

from searchkit.engine import SearchEngine
from searchkit.errors import SearchkitError
from searchkit.serving.app import create_app

# What one client may hold open (uvicorn's settings; see docs/README-reliability.md for what is and is not bounded).
CONNECTION_LIMITS = {
    "timeout_keep_alive": 5,  # s: an idle keep-alive connection is closed after this
    "limit_concurrency": 256,  # open connections (or running requests) beyond this are answered 503 at once
    "h11_max_incomplete_event_size": 64 * 1024,  # bytes of request line + headers: a 2,000-character CJK q fits
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
