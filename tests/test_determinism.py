"""Same question, same answer: a text's vector does not depend on its batch, and a server's answer not on its load."""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pytest

QUERY = "delete a folder and everything inside it"


@pytest.fixture(scope="module", params=["onnx-int8", "onnx"])
def onnx_embedder(request):
    from searchkit.encoders.embed import default_embedder

    emb = default_embedder(request.param)
    yield emb
    emb.model.set_threads(emb.model.threads)


@pytest.fixture(scope="module")
def mixed_texts(pydocs) -> list[str]:
    """63 corpus texts of many lengths (1 to 256 word pieces)."""
    texts = pydocs.corpus.embedding_texts()
    by_len = sorted(texts, key=len)
    step = len(by_len) // 63
    return by_len[::step][:63]


def test_a_text_gets_the_same_bits_alone_in_a_batch_first_last_and_at_any_thread_count(onnx_embedder, mixed_texts):
    emb = onnx_embedder
    alone = emb.encode([QUERY], progress=False)[0]
    batch = emb.encode(mixed_texts[:31] + [QUERY] + mixed_texts[31:], progress=False)
    assert len(batch) == 64
    first = emb.encode([QUERY] + mixed_texts, progress=False)[0]
    last = emb.encode(mixed_texts + [QUERY], progress=False)[-1]
    small = emb.encode([QUERY, mixed_texts[-1]], batch_size=1, progress=False)[0]
    threads = emb.model.threads
    try:
        emb.model.set_threads(1)
        one = emb.encode(mixed_texts + [QUERY], progress=False)[-1]
        emb.model.set_threads(2)
        two = emb.encode([QUERY] + mixed_texts, progress=False)[0]
    finally:
        emb.model.set_threads(threads)
    for name, v in {"middle of 64": batch[31], "first": first, "last": last, "batch_size=1": small,
                    "1 thread": one, "2 threads": two}.items():  # fmt: skip
        assert np.array_equal(alone, v), f"{emb.backend}: the query's vector {name} differs from alone"
    # and every other text too: the whole batch equals each text embedded alone
    singles = np.stack([emb.encode([t], progress=False)[0] for t in mixed_texts[:8]])
    assert np.array_equal(singles, emb.encode(mixed_texts[:8], progress=False))


def test_the_int8_encoder_stays_close_to_float(mixed_texts):
    from searchkit.encoders.embed import default_embedder

    f32, i8 = default_embedder("onnx").encode(mixed_texts, progress=False), default_embedder("onnx-int8").encode(mixed_texts, progress=False)
    cos = (f32 * i8).sum(1)
    assert cos.min() > 0.98 and cos.mean() > 0.99, f"int8 vs float32 cosine: min {cos.min():.4f}, mean {cos.mean():.4f}"


def test_int8_cache_ids_name_the_quantization_scheme():
    from searchkit.encoders.embed import default_embedder
    from searchkit.encoders.onnx import SCHEME

    assert default_embedder("onnx-int8").cache_id.endswith(f"@onnx-int8/{SCHEME}")


def test_a_server_answers_the_same_alone_and_under_eight_clients_with_long_batches_in_flight(pydocs, one_compute_thread):
    """With the result cache and the query cache off, every answer is computed again: ids and scores must agree."""
    from searchkit.encoders.embed import default_embedder
    from searchkit.engine import SearchEngine
    from searchkit.serving.cache import LRUCache
    from searchkit.serving.server import serve_in_background

    ds = pydocs
    ids = ds.corpus.ids[:2000]
    corpus = type(ds.corpus)(ids, [ds.corpus.titles[i] for i in range(2000)], [ds.corpus.texts[i] for i in range(2000)])
    engine = SearchEngine.build(corpus, default_embedder("onnx-int8"), progress=False)
    questions = list(ds.judged_queries().values())[:12]
    long_texts = [t[:1500] for t in sorted(ds.corpus.texts, key=len)[-64:]]  # up to 256 word pieces each
    answered = []
    server = serve_in_background(engine, cache=LRUCache(0), result_cache_size=0)
    try:
        url = f"{server.url}/search"
        with httpx.Client(timeout=120) as c:
            alone = {q: c.post(url, json={"query": q, "top_k": 10}).json()["results"] for q in questions}
        stop = threading.Event()

        def load(seed: int) -> None:
            rng = np.random.default_rng(seed)
            with httpx.Client(timeout=120) as c:
                while not stop.is_set():
                    batch = [long_texts[i] for i in rng.choice(len(long_texts), 8, replace=False)]
                    r = c.post(f"{server.url}/search/batch", json={"queries": batch, "top_k": 10})
                    answered.append(r.status_code)

        clients = [threading.Thread(target=load, args=(s,), daemon=True) for s in range(7)]
        for t in clients:
            t.start()
        try:
            with httpx.Client(timeout=120) as c:
                busy = {q: c.post(url, json={"query": q, "top_k": 10}).json()["results"] for q in questions}
        finally:
            stop.set()
            for t in clients:
                t.join(120)
    finally:
        server.stop()
    assert answered and set(answered) == {200}, f"the load's batches were not all answered: {sorted(set(answered))}"
    for q in questions:
        a, b = alone[q], busy[q]
        assert [h["id"] for h in a] == [h["id"] for h in b], f"{q!r}: other ids under load"
        assert [h["score"] for h in a] == [h["score"] for h in b], f"{q!r}: other scores under load"

