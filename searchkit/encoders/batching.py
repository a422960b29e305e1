"""Micro-batching with a budget: concurrent ``encode`` calls share model calls, and no request waits behind
another's bulk.

Texts are first cut to what the model reads (256 word pieces), so each request's cost is known before it runs
and bounded (64 texts × 256 pieces at most). Two lanes, each a worker thread with its own handle on the model,
run side by side: the quick lane takes requests of up to ``QUICK_PIECES`` word pieces in all (a typed query),
the bulk lane everything larger. Each model call is capped at a budget of padded word pieces, and within a lane
the request with the least work left goes first, so a small request waits for at most one budgeted call, never
for the rest of a big batch.

A lane with a waiting ``window`` (seconds; 0 by default) holds its first queued request up to that long for
others to share the call; ``benchmarks/http_load.py --batch-window-ms`` measures what that buys.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from searchkit.errors import InputError

QUICK_PIECES = 64  # a request with at most this many word pieces in all takes the quick lane
CALL_PIECES = 1024  # padded word pieces per model call: texts × the longest one's pieces (4 full-length texts)


@dataclass(eq=False)
class _Job:
    """One ``encode`` call: its cut texts, their piece counts, and how far the lane has got."""

    texts: list[str]
    pieces: list[int]
    seq: int
    out: np.ndarray
    fut: Future = field(default_factory=Future)
    next: int = 0  # first text not yet given to a model call
    done: int = 0  # texts encoded

    def left(self) -> int:
        """Word pieces not yet given to a model call."""
        return sum(self.pieces[self.next :])


class _Lane:
    """A worker thread that owns one model handle and runs its jobs in budgeted model calls, least work left first."""

    def __init__(self, name: str, embedder, max_batch: int, budget: int, window: float = 0.0):
        self.name, self.embedder, self.max_batch, self.budget, self.window = name, embedder, max_batch, budget, window
        self.jobs: list[_Job] = []
        self.calls = 0
        self.texts = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, job: _Job) -> None:
        """Queue ``job``; its future gets the vectors."""
        with self._cond:
            self.jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=f"searchkit-encoder-{self.name}", daemon=True)
                self._thread.start()
            self._cond.notify()

    def take(self) -> list[tuple[_Job, int, int]]:
        """Pick the texts of the next model call: jobs with the least work left first, within the budget."""
        picked, n, longest = [], 0, 0
        for job in sorted(self.jobs, key=lambda j: (j.left(), j.seq)):
            start = end = job.next
            while end < len(job.texts) and n < self.max_batch:
                wider = max(longest, job.pieces[end])
                if n and wider * (n + 1) > self.budget:
                    break
                longest, n, end = wider, n + 1, end + 1
            if end > start:
                picked.append((job, start, end))
                job.next = end
            if end == len(job.texts):
                self.jobs.remove(job)
            else:
                break  # the call is full
        return picked

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self.jobs and not self._closed:
                    self._cond.wait()
                if not self.jobs:
                    return
                if self.window:
                    self._gather()
                picked = self.take()
            self._run(picked)

    def _gather(self) -> None:
        """Wait (lock held by the caller) up to the window for a call's worth of texts to queue."""
        deadline = time.monotonic() + self.window
        while sum(len(j.texts) - j.next for j in self.jobs) < self.max_batch and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _run(self, picked: list[tuple[_Job, int, int]]) -> None:
        texts = [t for job, start, end in picked for t in job.texts[start:end]]
        try:
            vecs = self.embedder.encode(texts)
        except BaseException as e:  # hand the error to every caller in the call, and drop the rest of their work
            with self._cond:
                for job, _, _ in picked:
                    if job in self.jobs:
                        self.jobs.remove(job)
            for job, _, _ in picked:
                if not job.fut.done():
                    job.fut.set_exception(e)
            return
        self.calls += 1
        self.texts += len(texts)
        row = 0
        for job, start, end in picked:
            job.out[start:end] = vecs[row : row + end - start]
            row += end - start
            job.done += end - start
            if job.done == len(job.texts) and not job.fut.done():
                job.fut.set_result(job.out)

    def close(self) -> None:
        """Finish the queued jobs, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)


class BatchingEmbedder:
    """Wrap an Embedder: concurrent ``encode`` calls share model calls; small requests never queue behind big ones."""

    def __init__(self, embedder, max_batch: int = 32, quick_pieces: int = QUICK_PIECES, call_pieces: int = CALL_PIECES,
                 window_ms: float = 0.0):  # fmt: skip
        if not (isinstance(window_ms, (int, float)) and 0 <= window_ms <= 1000):
            raise InputError(f"window_ms={window_ms!r}: give milliseconds from 0 (no waiting) to 1000")
        self.inner = embedder
        self.max_batch, self.quick_pieces = max_batch, quick_pieces
        self.model_id, self.dim = embedder.model_id, embedder.dim
        self.bulk = _Lane("bulk", embedder, max_batch, call_pieces)
        self.quick = _Lane("quick", embedder.twin(), max_batch, call_pieces, window=window_ms / 1000)
        self._seq = itertools.count()
        self._closed = False

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    @property
    def calls(self) -> int:
        """Model calls made by both lanes."""
        return self.quick.calls + self.bulk.calls

    @property
    def texts(self) -> int:
        """Texts encoded by both lanes."""
        return self.quick.texts + self.bulk.texts

    def encode(self, texts, batch_size: int | None = None, progress: bool | None = None) -> np.ndarray:
        """Embed ``texts`` (cut to what the model reads) in shared, budgeted model calls; return ``(n, dim)`` float32."""
        texts = list(texts)
        if self._closed or not texts or batch_size or progress:
            return self.inner.encode(texts, batch_size=batch_size, progress=progress)
        return self.submit(texts).result()

    def submit(self, texts: list[str]) -> Future:
        """Queue ``texts`` on the lane their size calls for; return the future of their ``(n, dim)`` vectors."""
        cut, pieces = self.inner.truncate(texts)
        job = _Job(cut, pieces, next(self._seq), np.empty((len(cut), self.dim), np.float32))
        (self.quick if sum(pieces) <= self.quick_pieces else self.bulk).submit(job)
        return job.fut

    def close(self) -> None:
        """Stop both worker threads (later calls encode directly)."""
        self._closed = True
        self.quick.close()
        self.bulk.close()
