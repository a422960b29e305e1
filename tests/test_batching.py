"""Micro-batching with a budget: no request waits behind the rest of a big batch (checked by counting model calls).

The real embedder runs every call; a gate holds the bulk lane's model calls so the order of events is fixed
without clocks: a big batch is mid-call, and we count what else gets encoded before it finishes.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from searchkit.encoders.batching import BatchingEmbedder

pytestmark = pytest.mark.usefixtures("one_compute_thread")


class Gated:
    """The real embedder; its model calls are logged and wait for ``gate`` (the twin, for the quick lane, never waits)."""

    def __init__(self, inner, log: list, hold: bool = True):
        self.inner, self.log = inner, log
        self.model_id, self.dim = inner.model_id, inner.dim
        self.gate, self.entered = threading.Event(), threading.Event()
        if not hold:
            self.gate.set()

    def truncate(self, texts):
        return self.inner.truncate(texts)

    def twin(self):
        return type(self)(self.inner, self.log, hold=False)

    def encode(self, texts, batch_size=None, progress=None):
        self.log.append(list(texts))
        self.entered.set()
        self.gate.wait(timeout=120)
        return self.inner.encode(texts)


def texts_of(n: int, tag: str) -> list[str]:
    """``n`` texts of 22 word pieces each."""
    return [f"{tag} {i}: how do I copy a directory tree and keep the file permissions and timestamps" for i in range(n)]


@pytest.fixture
def gated(embedder):
    return Gated(embedder, [])


def test_a_short_query_is_not_queued_behind_a_big_batch(gated, embedder):
    b = BatchingEmbedder(gated, quick_pieces=30, call_pieces=64)  # 22-piece texts: two a call
    big = texts_of(10, "big")
    assert embedder.truncate(big[:1] + ["delete a folder"])[1] == [22, 6]
    pending = b.submit(big)
    assert gated.entered.wait(60)  # the bulk lane is inside its first model call, held
    short = b.encode(["delete a folder"])  # answered while the big batch is held mid-way
    np.testing.assert_allclose(short, embedder.encode(["delete a folder"]), atol=1e-5)
    bulk_calls = [c for c in gated.log if c[0].startswith("big")]
    assert len(bulk_calls) == 1 and not pending.done()  # it waited for no part of the big batch
    gated.gate.set()
    np.testing.assert_allclose(pending.result(60), embedder.encode(big), atol=1e-5)
    assert b.bulk.calls == 5 and b.quick.calls == 1  # 10 texts, 2 per budgeted call; the short query: one call
    b.close()


def test_in_a_lane_the_request_with_least_work_left_goes_first(gated):
    b = BatchingEmbedder(gated, quick_pieces=30, call_pieces=64)
    big = b.submit(texts_of(10, "big"))
    assert gated.entered.wait(60)
    medium = b.submit(texts_of(3, "medium"))  # more than a quick request: the bulk lane, behind the big one
    gated.gate.set()
    medium.result(60)
    calls = [[t.split()[0] for t in c] for c in gated.log]
    # call 1: the big batch's first two (in flight); calls 2-3: the medium request, its last text shared
    assert calls[:3] == [["big", "big"], ["medium", "medium"], ["medium", "big"]], calls
    big.result(60)
    assert sum(len(c) for c in gated.log) == 13  # every text encoded once
    b.close()


def test_long_texts_reach_the_model_cut_to_256_pieces(gated, embedder):
    gated.gate.set()
    b = BatchingEmbedder(gated, call_pieces=1024)
    long = ["shutil rmtree removes a whole directory tree " * 60] * 5  # ~2,600 characters each
    out = b.encode(long)
    assert all(len(t) < len(long[0]) for c in gated.log for t in c)
    assert {n for c in gated.log for n in embedder.truncate(c)[1]} == {256}
    assert [len(c) for c in gated.log] == [4, 1]  # 1,024 pieces a call: 4 full-length texts, then the last
    np.testing.assert_allclose(out, embedder.encode(long), atol=1e-5)  # the model read the same 256 pieces
    b.close()


def test_an_encoder_error_reaches_every_caller_in_the_call(embedder):
    class Broken(Gated):
        def encode(self, texts, batch_size=None, progress=None):
            raise RuntimeError("model failed")

    b = BatchingEmbedder(Broken(embedder, [], hold=False))
    with pytest.raises(RuntimeError, match="model failed"):
        b.encode(texts_of(4, "x"))
    with pytest.raises(RuntimeError, match="model failed"):
        b.encode(["short"])
    b.close()


def test_a_waiting_window_lets_a_later_query_share_the_call(embedder):
    log = []
    b = BatchingEmbedder(Gated(embedder, log, hold=False), max_batch=2, window_ms=1000)  # waits until 2 texts queue
    lane = b.quick  # short queries take the quick lane, the one with the window
    first = b.submit(["delete a folder"])
    # The second query is queued while the worker sits in its window with the first one: seen, under the lane's
    # condition lock, as a waiter on the condition while a job is queued (the idle wait only happens with none).
    # Holding that lock while submitting (an RLock, so submit takes it again) means the window cannot run out
    # in between, however slowly this thread runs on a busy box; a lane without the window takes the first
    # text alone instead, so `first` finishes, and the test fails.
    deadline = time.monotonic() + 60
    while True:
        with lane._cond:
            if lane.jobs and lane._cond._waiters:
                second = b.submit(["read a csv file"])
                break
        assert not first.done() and time.monotonic() < deadline, "the lane never waited for a second query"
        time.sleep(0.01)
    np.testing.assert_allclose(first.result(60), embedder.encode(["delete a folder"]), atol=1e-5)
    np.testing.assert_allclose(second.result(60), embedder.encode(["read a csv file"]), atol=1e-5)
    assert log == [["delete a folder", "read a csv file"]]  # one model call for both
    b.close()


@pytest.mark.parametrize("window", [-1, 1001, "5"])
def test_a_bad_window_is_refused_with_the_range(embedder, window):
    with pytest.raises(ValueError, match=r"window_ms=.*milliseconds from 0 \(no waiting\) to 1000"):
        BatchingEmbedder(embedder, window_ms=window)
