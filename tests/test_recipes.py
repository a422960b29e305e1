"""docs/ARCHITECTURE.md, 'Where does a change go?': each recipe done exactly as the section says, from outside the library."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from searchkit.corpus.datasets import Corpus, Dataset
from searchkit.engine import SearchEngine
from searchkit.errors import InputError
from searchkit.index.base import Index, SearchResult
from searchkit.index.vector import VERSIONS
from searchkit.serving.app import create_app
from searchkit.serving.cache import LRUCache

DOCS = {
    "os.remove": "remove delete a file path",
    "os.rmdir": "remove an empty directory",
    "shutil.rmtree": "delete a whole directory tree",
    "json.loads": "parse a json document into python objects",
    "json.dumps": "serialize python objects to a json string",
    "time.sleep": "wait pause for some seconds",
}


class HashingEncoder:
    """Recipe (e), a new encoder: words hashed into 64 buckets; ``encode``, ``dim``, ``model_id``, ``backend``, ``cache_id``."""

    dim, model_id, backend, cache_id = 64, "test/hashing", "hashing", "test/hashing"

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class NumpyIndex:
    """Recipe (a), an index faiss cannot build: exact inner products in numpy, meeting ``index.base.Index``."""

    factory, metric = "NumpyFlat", "ip"

    def __init__(self, dim: int):
        self.dim, self.ids, self.xb = dim, [], np.zeros((0, dim), dtype=np.float32)
        self.model_id = self.backend = None
        self.version = next(VERSIONS)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids, xb) -> None:
        self.ids += [str(i) for i in ids]
        self.xb = np.concatenate([self.xb, np.asarray(xb, dtype=np.float32)])
        self.version = next(VERSIONS)

    def remove(self, ids) -> int:
        gone = set(ids) & set(self.ids)
        keep = [r for r, d in enumerate(self.ids) if d not in gone]
        self.ids, self.xb = [self.ids[r] for r in keep], self.xb[keep]
        self.version = next(VERSIONS)
        return len(gone)

    def search(self, xq, k=10, nprobe=None, ef_search=None, subset=None, prefix=None) -> SearchResult:
        if nprobe is not None or ef_search is not None:
            raise InputError(f"nprobe/ef_search do not apply to {self.factory!r}: leave them out")
        wanted = None if subset is None else set(subset)
        rows = np.array([r for r, d in enumerate(self.ids) if (wanted is None or d in wanted)
                         and d.startswith(prefix or "")], dtype=np.int64)  # fmt: skip
        scores = np.atleast_2d(xq) @ self.xb[rows].T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return SearchResult([[self.ids[rows[j]] for j in t] for t in top],
                            [[float(s[j]) for j in t] for s, t in zip(scores, top)])  # fmt: skip


def _corpus() -> Corpus:
    ids = list(DOCS)
    return Corpus(ids, ids, list(DOCS.values()))


def _engine() -> SearchEngine:
    encoder = HashingEncoder()
    index = NumpyIndex(encoder.dim)
    index.add(list(DOCS), encoder.encode(list(DOCS.values())))
    return SearchEngine(_corpus(), encoder, index)


def test_a_new_index_class_plugs_into_the_engine_and_the_app():
    engine = _engine()
    assert isinstance(engine.index, Index)
    assert [h.id for h in engine.search("whole directory tree", k=2)] == ["shutil.rmtree", "os.rmdir"]
    assert [h.id for h in engine.search("delete a file", k=1, prefix="json.")] == ["json.loads"]
    app = create_app(engine, cache=LRUCache(10), micro_batch=False)  # micro-batching needs an Embedder: recipe (e)
    with TestClient(app) as client:
        r = client.post("/search", json={"query": "whole directory tree", "top_k": 2})
        assert r.status_code == 200, r.text
        assert [h["id"] for h in r.json()["results"]] == ["shutil.rmtree", "os.rmdir"]
        r = client.post("/search", json={"query": "python objects to json", "top_k": 3, "prefix": "json."})
        assert [h["id"] for h in r.json()["results"]] == ["json.dumps", "json.loads"]
        health = client.get("/health").json()
        assert health["index"]["factory"] == "NumpyFlat" and health["index"]["vectors"] == len(DOCS)


def test_a_new_corpus_format_is_reached_through_load_dataset(tmp_path, monkeypatch):
    from searchkit.corpus import loaders

    def read_tsv(path) -> Corpus:  # id <TAB> title <TAB> text, one document a line
        rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return Corpus([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])

    monkeypatch.setitem(loaders.READERS, ".tsv", read_tsv)
    (tmp_path / "docs.tsv").write_text("a\tFirst\tthe first text\nb\tSecond\tthe second text\n", encoding="utf-8")
    dataset = loaders.load_dataset(str(tmp_path / "docs.tsv"))
    assert dataset.name == "docs" and dataset.queries == {} and dataset.qrels == {}
    assert (dataset.corpus.ids, dataset.corpus.titles, dataset.corpus.texts) == (
        ["a", "b"], ["First", "Second"], ["the first text", "the second text"])  # fmt: skip


def test_a_new_metric_is_parsed_and_evaluated_with_confidence_intervals(monkeypatch):
    from searchkit.relevance import metrics
    from searchkit.relevance.evaluate import System, evaluate_systems

    def judged(docs, grades, k=10) -> float:
        """The share of the top k that carries a judgment (relevant or not)."""
        top = list(docs)[:k]
        return sum(d in grades for d in top) / len(top) if top else 0.0

    monkeypatch.setattr(metrics, "_FUNCS", dict(metrics._FUNCS))  # the registration ends with the test
    metrics.register_metric("judged", judged)
    assert metrics.parse_metric("judged@2") == ("judged", 2)
    qrels = {"q1": {"shutil.rmtree": 1, "os.remove": 0}, "q2": {"json.dumps": 1}}
    run = {"q1": ["shutil.rmtree", "os.rmdir"], "q2": ["json.dumps", "json.loads"]}
    assert metrics.evaluate(run, qrels, ["judged@2"]) == {"judged@2": 0.5}
    dataset = Dataset("tiny", _corpus(), {"q1": "delete a directory tree", "q2": "python objects to json string"}, qrels)
    report = evaluate_systems([System.of(_engine(), "dense")], dataset, metrics=["judged@1", "ndcg@10"], n_resamples=200)
    estimate = report["dense"].estimates["judged@1"]
    assert estimate.mean == 1.0 and estimate.low <= estimate.mean <= estimate.high
    with pytest.raises(InputError, match="unknown metric 'unjudged'"):
        metrics.parse_metric("unjudged")


class CountRequest(BaseModel):  # recipe (d): in the library these models live in serving.schemas
    prefix: str


class CountResponse(BaseModel):
    prefix: str
    documents: int


def test_a_new_route_drives_the_engine_and_answers_exact_json():
    def add_count_route(app) -> None:  # as serving.experiment_routes.add_experiment_routes adds its routes
        @app.post("/count", response_model=CountResponse)
        def count(req: CountRequest) -> CountResponse:
            engine = app.state.searchkit.engine  # the work belongs to the engine and its corpus, not to the route
            return CountResponse(prefix=req.prefix, documents=sum(d.startswith(req.prefix) for d in engine.corpus.ids))

    app = create_app(_engine(), cache=LRUCache(10), micro_batch=False)
    add_count_route(app)
    with TestClient(app) as client:
        r = client.post("/count", json={"prefix": "os."})
        assert r.status_code == 200 and r.json() == {"prefix": "os.", "documents": 2}


def test_a_new_encoder_object_goes_to_the_engine():
    encoder = HashingEncoder()
    engine = SearchEngine(_corpus(), encoder, NumpyIndex(encoder.dim))
    engine.index.add(list(DOCS), encoder.encode(list(DOCS.values())))
    assert engine.search("wait for seconds", k=1)[0].id == "time.sleep"
    with TestClient(create_app(engine, cache=LRUCache(10), micro_batch=False)) as client:  # no twin()/truncate()
        r = client.post("/search", json={"query": "wait for seconds", "top_k": 1})
        assert [h["id"] for h in r.json()["results"]] == ["time.sleep"]
