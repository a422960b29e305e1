"""VectorIndex: exact and approximate search, parameters per call, add/remove/update, filters, bad input."""

from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from searchkit.errors import InputError, SearchIndexError
from searchkit.index.sizing import IndexSpec, hnsw_factory, ivf_factory, suggest_nlist, suggest_spec
from searchkit.index.vector import VectorIndex

D = 32


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    xb = rng.normal(size=(3000, D)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    ids = [f"{'os' if i % 10 == 0 else 'json'}.f{i}" for i in range(len(xb))]
    return ids, xb


@pytest.fixture(scope="module")
def ivf(data):
    ids, xb = data
    return VectorIndex.build(ids, xb, "IVF32,Flat")


@pytest.fixture(scope="module")
def hnsw(data):
    ids, xb = data
    return VectorIndex.build(ids, xb, IndexSpec("HNSW16", ef_construction=40, ef_search=32))


def brute_force(xb: np.ndarray, xq: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(xq @ xb.T), axis=1, kind="stable")[:, :k]


# -- defaults from the corpus size ----------------------------------------------------------------


def test_suggest_nlist_follows_sqrt_rule_and_training_size():
    assert suggest_nlist(1_000_000, per_sqrt=4) == 4096
    assert suggest_nlist(200_000, per_sqrt=8) == 4096
    n = 7416  # the Python-docs corpus
    nlist = suggest_nlist(n)
    assert n >= 39 * nlist and nlist >= 64
    assert ivf_factory(200_000, per_sqrt=4) == "IVF2048,Flat"
    assert ivf_factory(200_000, per_sqrt=4, hnsw_quantizer=True) == "IVF2048_HNSW32,Flat"
    assert hnsw_factory(32) == "HNSW32"


def test_suggest_nlist_rejects_tiny_corpus():
    with pytest.raises(InputError, match="at least 39 training vectors.*'Flat'"):
        suggest_nlist(10)
    with pytest.raises(InputError, match="HNSW M must be"):
        hnsw_factory(1)


def test_suggest_spec_kinds():
    assert suggest_spec(5_000).factory == "Flat"
    assert suggest_spec(500_000).factory == "HNSW32"
    spec = suggest_spec(500_000, "ivf_hnsw")
    assert spec.factory.endswith("_HNSW32,Flat") and spec.nprobe >= 1
    with pytest.raises(InputError, match="unknown index kind 'fast'"):
        suggest_spec(100, "fast")


def test_too_few_training_points_is_a_clear_error(data):
    _, xb = data
    index = VectorIndex(D, "IVF256,Flat")
    with pytest.raises(InputError, match="256 cells but got only 100 training vectors"):
        index.train(xb[:100])


def test_ivf_with_hnsw_quantizer_searches(data):
    ids, xb = data
    index = VectorIndex.build(ids, xb, "IVF32_HNSW16,Flat")
    res = index.search(xb[:5], 3, nprobe=32, ef_search=64)
    assert [r[0] for r in res.ids] == ids[:5]


# -- exact search --------------------------------------------------------------------------------


def test_flat_equals_numpy_brute_force(data):
    ids, xb = data
    index = VectorIndex.build(ids, xb, "Flat")
    xq = xb[:20] + 0.1
    res = index.search(xq, 10)
    want = brute_force(xb, xq, 10)
    assert res.ids == [[ids[j] for j in row] for row in want]


# -- per-call parameters -------------------------------------------------------------------------


def test_nprobe_per_call_does_not_change_index(ivf, data):
    _, xb = data
    before = faiss.extract_index_ivf(ivf.index).nprobe
    full = ivf.search(xb[:50] + 0.05, 10, nprobe=32)
    exact = brute_force(xb, xb[:50] + 0.05, 10)
    assert full.ids == [[ivf.ids[j] for j in row] for row in exact]  # all cells probed = exact
    assert faiss.extract_index_ivf(ivf.index).nprobe == before


def test_wrong_parameter_for_index_kind(ivf, hnsw, data):
    _, xb = data
    with pytest.raises(InputError, match="ef_search applies to HNSW indexes"):
        ivf.search(xb[:1], 3, ef_search=10)
    with pytest.raises(InputError, match="nprobe applies to IVF indexes"):
        hnsw.search(xb[:1], 3, nprobe=4)
    with pytest.raises(InputError, match="nprobe must be a positive integer"):
        ivf.search(xb[:1], 3, nprobe=0)


def test_hnsw_ef_search_raises_recall(hnsw, data):
    _, xb = data
    xq = xb[:200] + 0.3 * np.random.default_rng(1).normal(size=(200, D)).astype(np.float32)
    truth = brute_force(xb, xq, 10)

    def recall(ef: int) -> float:
        _, I = hnsw.search_raw(xq, 10, ef_search=ef)
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, truth)])

    assert recall(256) >= recall(10)
    assert recall(256) > 0.9


def test_concurrent_searches_with_different_nprobe_match_serial(ivf, data):
    _, xb = data
    xq = xb[:64] + 0.2
    settings = [1, 2, 4, 8, 16, 32] * 3
    serial = {p: ivf.search(xq, 10, nprobe=p).ids for p in set(settings)}
    got: dict[int, list] = {}
    errors: list[BaseException] = []

    def run(i: int, p: int) -> None:
        try:
            for _ in range(5):
                res = ivf.search(xq, 10, nprobe=p).ids
                assert res == serial[p]
            got[i] = res
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate(settings)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert all(got[i] == serial[p] for i, p in enumerate(settings))
    assert serial[1] != serial[32]  # the settings really differ


# -- add, remove, update -------------------------------------------------------------------------


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat"])
def test_remove_and_update_in_place(data, factory):
    ids, xb = data
    index = VectorIndex.build(ids[:1000], xb[:1000], factory)
    assert index.remove([ids[0], ids[1]]) == 2
    assert len(index) == 998 and ids[0] not in index
    res = index.search(xb[:2], 5, nprobe=16) if factory != "Flat" else index.search(xb[:2], 5)
    assert ids[0] not in res.ids[0] and ids[1] not in res.ids[1]
    index.update([ids[5]], xb[2000:2001])
    res = index.search(xb[2000:2001], 1, **({"nprobe": 16} if factory != "Flat" else {}))
    assert res.ids[0] == [ids[5]]
    index.add([ids[0]], xb[:1])
    assert index.search(xb[:1], 1, **({"nprobe": 16} if factory != "Flat" else {})).ids[0] == [ids[0]]


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat", "IVF16,SQ8"])
def test_every_remaining_document_keeps_its_id_after_remove_add_and_update(data, factory):
    ids, xb = data
    index = VectorIndex.build(ids[:500], xb[:500], factory)
    kw = {"nprobe": 16} if factory != "Flat" else {}
    index.remove([ids[3], ids[250]])
    index.add([ids[3]], xb[3:4])
    index.update([ids[100]], xb[100:101])
    index.remove([ids[0]])
    rows = [i for i in range(500) if i != 0]
    found = index.search(xb[rows], 1, **kw).ids
    wrong = [(ids[i], got[0]) for i, got in zip(rows, found) if got[0] != ids[i] and ids[i] != ids[250]]
    assert not wrong, f"{len(wrong)} documents answer under another id after removals, e.g. {wrong[:3]}"


def test_remove_unknown_id(ivf):
    with pytest.raises(InputError, match="document id 'nope' is not in the index"):
        ivf.remove(["nope"])
    with pytest.raises(InputError, match="not the single string"):
        ivf.remove("os.f0")


def test_hnsw_remove_needs_rebuild(data):
    ids, xb = data
    index = VectorIndex.build(ids[:500], xb[:500], "HNSW16")
    with pytest.raises(SearchIndexError, match="cannot delete vectors in place.*rebuild=True"):
        index.remove([ids[0]])
    assert index.remove([ids[0]], rebuild=True) == 1
    assert len(index) == 499 and index.search(xb[:1], 1).ids[0] != [ids[0]]
    assert index.search(xb[7:8], 1).ids[0] == [ids[7]]  # labels survive the rebuild
    index.update([ids[7]], xb[900:901], rebuild=True)
    assert index.search(xb[900:901], 1).ids[0] == [ids[7]]


# -- filtered search -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["flat", "ivf", "hnsw"])
def test_prefix_filter_returns_k_matching(data, ivf, hnsw, name):
    ids, xb = data
    index = {"flat": VectorIndex.build(ids, xb), "ivf": ivf, "hnsw": hnsw}[name]
    xq = xb[1:21]  # json.* documents, so the os.* ones are far from the top
    kw = {"nprobe": 1} if name == "ivf" else ({"ef_search": 10} if name == "hnsw" else {})
    res = index.search(xq, 10, prefix="os.", **kw)
    assert all(len(r) == 10 and all(d.startswith("os.") for d in r) for r in res.ids)
    if name == "flat":
        mask = np.array([d.startswith("os.") for d in ids])
        sub = np.flatnonzero(mask)
        want = sub[brute_force(xb[sub], xq, 10)]
        assert res.ids == [[ids[j] for j in row] for row in want]


def test_subset_filter(data, hnsw):
    ids, xb = data
    subset = [ids[3], ids[77], ids[1500], "not-there"]
    res = hnsw.search(xb[:2], 10, subset=subset)
    assert all(sorted(r) == sorted(subset[:3]) for r in res.ids)
    assert hnsw.search(xb[:2], 5, prefix="zzz").ids == [[], []]
    with pytest.raises(InputError, match="prefix must be a non-empty string"):
        hnsw.search(xb[:1], 5, prefix="")


def test_engine_prefix_filter(pydocs_engine):
    hits = pydocs_engine.search("list the files in a directory", k=5, prefix="os.")
    assert len(hits) == 5 and all(h.id.startswith("os.") for h in hits)
    hits = pydocs_engine.search("list the files in a directory", k=5, mode="bm25", prefix="os.")
    assert hits and all(h.id.startswith("os.") for h in hits)


# -- persistence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat", "HNSW16"])
def test_mmap_load_is_read_only(tmp_path, data, factory):
    ids, xb = data
    index = VectorIndex.build(ids[:800], xb[:800], IndexSpec(factory, nprobe=4 if "IVF" in factory else None))
    index.remove([ids[1]], rebuild=True)
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path, mmap=True)
    assert loaded.read_only and loaded.nprobe == index.nprobe
    assert loaded.search(xb[:10], 5).ids == index.search(xb[:10], 5).ids
    with pytest.raises(SearchIndexError, match="loaded read-only with mmap=True"):
        loaded.add(["new"], xb[:1])
    with pytest.raises(SearchIndexError, match="read-only"):
        loaded.remove([ids[0]])
    writable = VectorIndex.load(tmp_path)
    writable.add(["new"], xb[900:901])
    assert writable.search(xb[900:901], 1).ids == [["new"]]


# -- bad input -----------------------------------------------------------------------------------


def test_dimension_mismatch(ivf):
    with pytest.raises(InputError, match="index has dimension 32 but the queries have 16"):
        ivf.search(np.ones((1, 16), np.float32), 3)
    with pytest.raises(InputError, match="index has dimension 32 but the vectors have 8"):
        ivf.add(["x"], np.ones((1, 8), np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf(ivf, bad):
    xq = np.ones((2, D), np.float32)
    xq[1, 3] = bad
    with pytest.raises(InputError, match="queries row 1 contains NaN or inf"):
        ivf.search(xq, 3)
    with pytest.raises(InputError, match="vectors row 1 contains NaN or inf"):
        VectorIndex(D).add(["a", "b"], xq)


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3"])
def test_bad_k(ivf, data, k):
    with pytest.raises(InputError, match="k must be a positive integer"):
        ivf.search(data[1][:1], k)


@pytest.mark.parametrize("factory", ["Flat", "IVF4,Flat", "HNSW8"])
def test_k_larger_than_index_returns_what_exists(data, factory):
    ids, xb = data
    index = VectorIndex.build(ids[:200], xb[:200], IndexSpec(factory, nprobe=4 if "IVF" in factory else None))
    res = index.search(xb[:3], 1000)
    assert all(len(r) == len(set(r)) and None not in r for r in res.ids)  # no -1 turned into an id
    if factory != "HNSW8":  # a graph walk may not reach every node; exhaustive indexes return all
        assert all(len(r) == 200 for r in res.ids)
    _, I = index.search_raw(xb[:1], 5)
    assert (I >= 0).all()


def test_empty_index():
    with pytest.raises(SearchIndexError, match="index is empty: add vectors before searching"):
        VectorIndex(D).search(np.ones(D, np.float32), 3)


def test_untrained_index(data):
    index = VectorIndex(D, "IVF16,Flat")
    assert not index.is_trained
    with pytest.raises(SearchIndexError, match="is not trained: train and add vectors before searching"):
        index.search(data[1][:1], 3)
    with pytest.raises(SearchIndexError, match=r"not trained: call train\(vectors\) before add"):
        index.add(["a"], data[1][:1])


@pytest.mark.parametrize("factory", ["IVFX,Flat", "Flatt", "nonsense"])
def test_unknown_factory_string(factory):
    with pytest.raises(InputError, match=f"unknown or invalid faiss factory string '{factory}'"):
        VectorIndex(D, factory)


def test_ef_construction_only_for_hnsw():
    with pytest.raises(InputError, match="ef_construction applies to HNSW indexes"):
        VectorIndex(D, "Flat", ef_construction=40)
    index = VectorIndex(D, "HNSW16", ef_construction=60)
    assert faiss.downcast_index(index.index.index).hnsw.efConstruction == 60
