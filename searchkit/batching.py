"""Micro-batching: concurrent small ``encode`` calls merged into one model call by one worker thread."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import numpy as np


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
