"""Every index class meets the Index protocol, and SearchEngine searches each one unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from searchkit.corpus.datasets import Corpus
from searchkit.engine import SearchEngine, SearchSettings
from searchkit.errors import InputError, SearchIndexError
from searchkit.index.base import Index
from searchkit.index.codes import BinaryIndex, Int8Index, Reranked, calibration_ranges
from searchkit.index.vector import VectorIndex

DIM = 64


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _vectors() -> tuple[list[str], np.ndarray]:
    """Eight 'a.' documents and eight 'b.' ones; b.i lies close to a.i (cosine about 0.95), far from the rest."""
    rng = np.random.default_rng(7)
    a = _unit(rng.normal(size=(8, DIM)))
    b = _unit(a + 0.3 * _unit(rng.normal(size=(8, DIM))))
    return [f"a.{i}" for i in range(8)] + [f"b.{i}" for i in range(8)], np.concatenate([a, b])


IDS, XB = _vectors()


class VectorEncoder:
    """An encoder of the test queries 'doc:<id>': the vector of that document."""

    dim, model_id, backend, cache_id = DIM, "test/vectors", "test", "test/vectors"

    def encode(self, texts):
        return np.stack([XB[IDS.index(t.removeprefix("doc:"))] for t in texts])


def _build(kind: str):
    if kind == "binary":
        index = BinaryIndex(DIM)
    elif kind == "int8":
        index = Int8Index(DIM, calibration_ranges(XB))
    elif kind == "reranked":
        return Reranked(VectorIndex.build(IDS, XB, "SQ8"), XB, ratio=4)
    else:
        return VectorIndex.build(IDS, XB, kind)
    index.add(IDS, XB)
    return index


KINDS = ["Flat", "HNSW8", "binary", "int8", "reranked"]


@pytest.fixture(params=KINDS)
def engine(request):
    corpus = Corpus(IDS, IDS, [f"text of {d}" for d in IDS])
    return SearchEngine(corpus, VectorEncoder(), _build(request.param))


def test_every_index_meets_the_protocol(engine):
    index = engine.index
    assert isinstance(index, Index)
    assert index.dim == DIM and index.metric == "ip" and len(index) == len(IDS)
    assert index.model_id is None and isinstance(index.factory, str) and isinstance(index.version, int)


def test_the_engine_searches_every_index(engine):
    hits = engine.search("doc:a.3", k=3, mode="dense")
    assert [h.id for h in hits][0] == "a.3" and len(hits) == 3
    assert hits[0].title == "a.3" and hits[0].score >= hits[-1].score


def test_the_engine_searches_every_index_with_a_prefix(engine):
    hits = engine.search("doc:a.3", k=5, mode="dense", prefix="b.")
    assert hits[0].id == "b.3"
    assert len(hits) == 5 and all(h.id.startswith("b.") for h in hits)
    assert len(engine.search("doc:a.3", k=10, prefix="b.")) == 8  # k beyond the matches: every match


def test_the_engine_passes_search_settings(engine):
    if engine.index.factory.startswith("HNSW"):
        assert engine.search("doc:a.1", k=2, settings=SearchSettings(ef_search=16))[0].id == "a.1"
        return
    with pytest.raises(InputError, match="nprobe applies to IVF indexes, not .*: leave it out"):
        engine.search("doc:a.1", k=2, settings=SearchSettings(nprobe=4))


def test_remove_renews_the_version(engine):
    index = engine.index
    if index.factory.startswith("HNSW"):
        pytest.skip("HNSW graphs cannot delete in place (remove(ids, rebuild=True))")
    before = index.version
    assert index.remove(["a.3"]) == 1
    assert index.version != before and len(index) == len(IDS) - 1
    assert engine.search("doc:a.3", k=1)[0].id == "b.3"
    with pytest.raises(InputError, match="'a.3' is not in the index"):
        index.remove(["a.3"])


def test_add_renews_the_version_and_refuses_duplicates():
    for kind in ("binary", "int8", "reranked"):
        index = _build(kind)
        before = index.version
        index.add(["c.0"], -XB[:1])
        assert index.version != before and len(index) == len(IDS) + 1
        assert index.search(-XB[:1], 1).ids == [["c.0"]]
        with pytest.raises(InputError, match="'c.0' is already in the index"):
            index.add(["c.0"], XB[:1])


def test_sharded_index_meets_the_protocol(tmp_path):
    """A ShardedIndex over no actors: searching it needs Ray (tests/test_shards.py), checking its shape does not."""
    from searchkit.scale.shards import ShardedIndex, build_shards, read_shard_manifest

    build_shards(IDS, XB, 2, tmp_path, model_id="test/vectors")
    index = ShardedIndex(tmp_path, read_shard_manifest(tmp_path), actors=[], timeout_s=1.0)
    assert isinstance(index, Index)
    assert (index.factory, index.metric, index.model_id, len(index)) == ("Flat", "ip", "test/vectors", len(IDS))
    with pytest.raises(SearchIndexError, match="read-only"):
        index.remove(["a.0"])
