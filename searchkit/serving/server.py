"""Run the app: compute threads for serving, and an in-process uvicorn server on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time

from fastapi import FastAPI

from searchkit.engine import SearchEngine
from searchkit.errors import SearchkitError
from searchkit.serving.app import create_app
from searchkit.validation import check_positive_int

# What one client may hold open (uvicorn's settings; see docs/README-reliability.md for what is and is not bounded).
CONNECTION_LIMITS = {
    "timeout_keep_alive": 5,  # s: an idle keep-alive connection is closed after this
    "limit_concurrency": 256,  # open connections (or running requests) beyond this are answered 503 at once
    "h11_max_incomplete_event_size": 64 * 1024,  # bytes of request line + headers: a 2,000-character CJK q fits
    "backlog": 512,
}


_threads: int | None = None  # what set_compute_threads asked for, applied per thread by use_compute_threads


def set_compute_threads(n: int = 1, embedder=None) -> None:
    """Set the threads torch and faiss use per call (process-wide); a server wants 1: requests give the parallelism.

    An ONNX encoder fixes its threads when it loads: pass the ``embedder`` that was loaded before this call.

    With several threads each, the encoder's OpenMP workers spin and wait for one another; on a busy
    2-core machine that turned a 6 ms query embedding into seconds.
    """
    import faiss
    import torch

    global _threads
    check_positive_int("threads", n)
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    _threads = n
    model = getattr(embedder, "model", None)
    if hasattr(model, "set_threads") and model.threads != n:
        model.set_threads(n)


def use_compute_threads() -> None:
    """Give the calling thread the faiss thread count of :func:`set_compute_threads` (a no-op before it is called).

    OpenMP keeps that count per thread: the worker threads that answer requests would otherwise search with
    every core, and the idle OpenMP workers' spinning took the encoder's and the client's CPU (one client at
    500K documents: p99 14.2 ms, 6.0 ms with this).
    """
    if _threads is not None:
        import faiss

        if faiss.omp_get_max_threads() != _threads:
            faiss.omp_set_num_threads(_threads)


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
