"""Compressed indexes: the memory calculator against faiss's serialized sizes, training checks, re-ranking."""

from __future__ import annotations

import numpy as np
import pytest

from searchkit.errors import InputError
from searchkit.index.codes import (
    BinaryIndex,
    Int8Index,
    Reranked,
    build_index,
    calibration_ranges,
    check_training_size,
    dequantize_int8,
    memory_estimate,
    quantize_binary,
    quantize_int8,
    serialized_size,
    unpack_signs,
)
from searchkit.index.memory import bytes_per_vector
from searchkit.index.vector import VectorIndex


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    """Train with one thread: tiny k-means runs spin badly when OpenMP threads share busy cores."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _sizes(factory: str, xb: np.ndarray, train: np.ndarray, counts: tuple[int, int]) -> tuple[int, int]:
    """Return the serialized sizes of one ``factory`` index after adding ``counts[0]``, then ``counts[1]`` rows."""
    vi = VectorIndex(xb.shape[1], factory)
    if not vi.is_trained:
        vi.train(train)
    out = []
    for start, stop in ((0, counts[0]), counts):
        vi.add([str(i) for i in range(start, stop)], xb[start:stop])
        out.append(serialized_size(vi))
    return out[0], out[1]


@pytest.mark.parametrize(
    "factory, expected",
    [
        ("Flat", 4 * 32 + 8),
        ("SQ8", 32 + 8),
        ("SQ4", 16 + 8),
        ("SQfp16", 64 + 8),
        ("PQ8", 8 + 8),
        ("PQ8x4", 4 + 8),
        ("IVF8,Flat", 4 * 32 + 16),
        ("IVF8,SQ8", 32 + 16),
        ("IVF8,PQ8", 8 + 16),
        ("IVF8,PQ8x4np", 4 + 16),
        ("IVF8,PQ4x4,RFlat", 2 + 16 + 128),
        ("Flat,Refine(SQ8)", 128 + 32 + 8),
        ("PCA16,Flat", 64 + 8),
    ],
)
def test_calculator_matches_serialized_size(unit_vectors, factory, expected):
    xb, train = unit_vectors(1200, 32, seed=1), unit_vectors(300, 32, seed=2)
    est = memory_estimate(factory, 32)
    assert est.per_vector == expected
    small, large = _sizes(factory, xb, train, (600, 1200))
    assert (large - small) / 600 == pytest.approx(est.per_vector)  # bytes each added vector costs, exactly
    assert large == pytest.approx(est.total(1200), rel=0.01, abs=600)  # plus codebooks, centroids, headers


# the factory strings the notebooks, benchmarks and the budget chooser use (dimension 384)
COURSE_FACTORIES = ["Flat", "SQfp16", "SQ8", "SQ4", "PQ8", "PQ16", "PQ48", "IVF1024,Flat", "IVF1024,SQ8",
                    "IVF1024,PQ32", "IVF1024,PQ48", "IVF1024,PQ64x4fs", "OPQ32,IVF1024,PQ32", "IVF65536,SQ8",
                    "IVF65536,PQ48", "HNSW32", "HNSW32,SQ8"]  # fmt: skip


@pytest.mark.parametrize("factory", COURSE_FACTORIES)
def test_calculator_code_bytes_agree_with_faiss(factory):
    from faiss.contrib.factory_tools import get_code_size

    est = memory_estimate(factory, 384, id_map=False)
    ids = 8 if "IVF" in factory else 0  # inverted lists keep each vector's label beside its code
    graph = 4 * (2 * 32 + 32 / 31) + 12 if factory.startswith("HNSW") else 0  # faiss's own figure is 'roughly'
    codes = get_code_size(384, factory) - (2 * 32 * 4 if graph else 0)
    assert est.per_vector - ids - graph == pytest.approx(codes), factory


def test_calculator_knows_fast_scan_codes(unit_vectors):
    xb = unit_vectors(1280, 32, seed=1)
    est = memory_estimate("PQ8x4fs", 32)
    assert est.per_vector == 4 + 8  # 8 codes of 4 bits, and the id
    small, large = _sizes("PQ8x4fs", xb, xb[:640], (640, 1280))  # codes are packed in blocks of 32 vectors
    assert (large - small) / 640 == pytest.approx(est.per_vector)
    assert memory_estimate("IVF8,PQ8x4fs", 32).per_vector == 4 + 16
    with pytest.raises(InputError, match="fast-scan PQ works on 4-bit codes only: write PQ8x4fs"):
        memory_estimate("PQ8x8fs", 32)


def test_calculator_hnsw_graph_is_close(unit_vectors):
    xb = unit_vectors(2000, 32, seed=3)
    est = memory_estimate("HNSW8", 32)
    small, large = _sizes("HNSW8", xb, xb, (1000, 2000))
    assert (large - small) / 1000 == pytest.approx(est.per_vector, rel=0.02)  # levels are random


def test_calculator_opq_rotation(unit_vectors):
    xb = unit_vectors(600, 16, seed=4)
    est = memory_estimate("OPQ2_8,PQ2x4", 16)
    assert est.per_vector == 1 + 8 and est.fixed == 16 * 8 * 4 + 16 * 8 * 4
    small, large = _sizes("OPQ2_8,PQ2x4", xb, xb[:300], (300, 600))
    assert (large - small) / 300 == est.per_vector
    assert large == pytest.approx(est.total(600), rel=0.02, abs=600)


def test_calculator_binary_and_paper_numbers(unit_vectors):
    assert bytes_per_vector("Flat", 384, id_map=False) == 1536
    assert bytes_per_vector("IVF1024,PQ48", 384) == 48 + 8 + 8
    assert bytes_per_vector("Binary", 384, id_map=False) == 48
    index = BinaryIndex(64)
    index.add([str(i) for i in range(500)], unit_vectors(500, 64))
    assert serialized_size(index) == pytest.approx(500 * bytes_per_vector("Binary", 64, id_map=False), abs=200)


def test_calculator_rejects_unknown_and_bad_factories():
    with pytest.raises(InputError, match="does not know the storage 'LSH'"):
        memory_estimate("LSH", 32)
    with pytest.raises(InputError, match="PQ7 needs a dimension divisible by 7"):
        memory_estimate("PQ7", 384)
    with pytest.raises(InputError, match="non-empty string"):
        memory_estimate("", 32)


def test_pq_with_too_few_training_vectors_is_a_clear_error(unit_vectors):
    with pytest.raises(InputError) as e:
        check_training_size("IVF4,PQ8", 200, 32)
    msg = str(e.value)
    assert "needs at least 256 training vectors but got 200" in msg
    assert "PQ8 trains 256 centroids per sub-quantizer" in msg and "at least 9,984" in msg
    with pytest.raises(InputError, match="IVF512 trains 512 coarse centroids"):
        build_index("IVF512,Flat", unit_vectors(300, 32))
    check_training_size("PQ8x4", 16, 32)  # 4-bit codes need only 16 points
    check_training_size("SQ8", 5, 32)


def test_build_index_trains_and_adds(unit_vectors):
    xb = unit_vectors(1000, 32, seed=5)
    with pytest.warns(UserWarning, match="training 'IVF4,SQ8' on 500 vectors; 1,000 or more"):
        index = build_index("IVF4,SQ8", xb, max_train=500)
    assert len(index) == 1000 and index.is_trained
    assert index.search(xb[:1], 1).ids[0] == ["0"]


def test_reranking_recovers_exact_results(unit_vectors):
    xb, xq = unit_vectors(2000, 32, seed=6), unit_vectors(20, 32, seed=7)
    exact = build_index("Flat", xb).search(xq, 10)
    pq = build_index("PQ4x4", xb)
    plain = pq.search(xq, 10)
    full = Reranked(pq, xb, ratio=200).search(xq, 10)  # every vector is a candidate: exact order
    assert full.ids == exact.ids
    np.testing.assert_allclose(full.scores, exact.scores, rtol=1e-5)

    def recall(res):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(res.ids, exact.ids)])

    assert recall(Reranked(pq, xb, ratio=10).search(xq, 10)) > recall(plain)


def test_reranked_ivf_fast_scan_raw_search_takes_nprobe(unit_vectors):
    """What benchmarks/ann.py times: raw labels (row numbers), per-call nprobe, the factory and ratio named."""
    xb, xq = unit_vectors(3000, 32, seed=6), unit_vectors(20, 32, seed=7)
    exact = build_index("Flat", xb).search_raw(xq, 10)[1]
    rr = Reranked(build_index("IVF16,PQ8x4fs", xb), xb, ratio=300)
    assert rr.factory == "IVF16,PQ8x4fs, re-ranked x300"
    D, I = rr.search_raw(xq, 10, nprobe=16)  # every cell, every vector a candidate: exact
    assert (I == exact).all() and (np.diff(D, axis=1) <= 0).all()
    assert rr.search_raw(xq, 10, nprobe=1)[1].tolist() != I.tolist()  # one cell finds less


def test_reranked_checks_originals(unit_vectors):
    index = build_index("Flat", unit_vectors(100, 32))
    with pytest.raises(InputError, match="originals have 50 rows but the index holds 100"):
        Reranked(index, unit_vectors(50, 32))
    with pytest.raises(InputError, match=r"ratio must be a positive integer, got .* \(candidates fetched per result\)"):
        Reranked(index, unit_vectors(100, 32), ratio=0)


def test_int8_needs_calibration_ranges(unit_vectors):
    x = unit_vectors(100, 32)
    with pytest.raises(InputError, match="int8 quantization needs calibration ranges"):
        quantize_int8(x, None)
    with pytest.raises(InputError, match="needs calibration ranges"):
        Int8Index(32, None)
    with pytest.raises(InputError, match=r"ranges must have shape \(2, 32\)"):
        quantize_int8(x, np.zeros((2, 16)))


def test_int8_round_trip_and_clipping(unit_vectors):
    x = unit_vectors(500, 32)
    ranges = calibration_ranges(x)
    codes = quantize_int8(x, ranges)
    assert codes.dtype == np.int8 and codes.min() == -128 and codes.max() == 127
    step = (ranges[1] - ranges[0]) / 255
    assert np.all(np.abs(dequantize_int8(codes, ranges) - x) <= step / 2 + 1e-6)
    outside = quantize_int8(x * 3, ranges)  # values beyond the calibration range saturate, never wrap around
    far = np.abs(x * 3) > np.abs(ranges).max()
    assert far.any() and np.array_equal(np.sign(outside[far]), np.sign(x[far]))


def test_int8_index_search(unit_vectors):
    xb, xq = unit_vectors(1000, 32, seed=8), unit_vectors(10, 32, seed=9)
    index = Int8Index(32, calibration_ranges(xb))
    index.add([str(i) for i in range(1000)], xb)
    assert serialized_size(index) == pytest.approx(1000 * 32, abs=300)
    exact = build_index("Flat", xb).search(xq, 10)
    got = index.search(xq, 10, ratio=4)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.ids, exact.ids)]) >= 0.9
    full = index.search(xq, 10, ratio=100, originals=xb)  # every row a candidate, re-scored exactly
    assert full.ids == exact.ids
    np.testing.assert_allclose(full.scores, exact.scores, atol=1e-5)  # two float32 dot-product routines


def test_binary_codes_match_sentence_transformers(unit_vectors):
    from sentence_transformers.quantization import quantize_embeddings

    x = unit_vectors(50, 64)
    assert np.array_equal(quantize_binary(x), quantize_embeddings(x, precision="ubinary"))
    ranges = calibration_ranges(x)
    theirs = quantize_embeddings(x, precision="int8", ranges=ranges).astype(int)
    assert np.abs(quantize_int8(x, ranges).astype(int) - theirs).max() <= 1  # we round, they truncate


def test_hamming_distance_is_a_sign_dot_product(unit_vectors):
    xb, xq = unit_vectors(300, 64, seed=10), unit_vectors(5, 64, seed=11)
    index = BinaryIndex(64)
    index.add([str(i) for i in range(300)], xb)
    res = index.search(xq, 5, rescore=False)
    signs_b, signs_q = unpack_signs(quantize_binary(xb)), unpack_signs(quantize_binary(xq))
    for q in range(5):
        expect = signs_b @ signs_q[q]
        assert res.scores[q] == [float(expect[int(i)]) for i in res.ids[q]]
        assert res.scores[q][0] == expect.max()


def test_binary_rescoring(unit_vectors):
    xb, xq = unit_vectors(1000, 64, seed=12), unit_vectors(10, 64, seed=13)
    index = BinaryIndex(64)
    index.add([str(i) for i in range(1000)], xb)
    exact = build_index("Flat", xb).search(xq, 10)
    full = index.search(xq, 10, ratio=100, originals=xb)
    assert full.ids == exact.ids
    cheap = index.search(xq, 10, ratio=100)  # float query against +-1 codes: no originals needed
    assert cheap.ids[0][0] in exact.ids[0][:3]
    with pytest.raises(InputError, match="divisible by 8"):
        BinaryIndex(30)


def test_reconstruction_error_shrinks_with_more_sub_quantizers(unit_vectors):
    from searchkit.index.codes import build_index, reconstruction_error

    xb = unit_vectors(2000, 32, seed=3)
    with pytest.warns(UserWarning, match="give better codebooks"):  # 2,000 training vectors: searchkit says so
        coarse, fine = build_index("PQ2", xb), build_index("PQ16", xb)
    errors = reconstruction_error(coarse, xb), reconstruction_error(fine, xb)
    assert 0 < errors[1] < errors[0] < 1, errors
    with pytest.raises(InputError, match="index has no product quantizer: build it with a factory containing PQ"):
        reconstruction_error(build_index("Flat", xb), xb)


def test_opq_training_is_quiet_on_a_small_sample(unit_vectors, capfd):
    from searchkit.index.codes import build_index

    xb = unit_vectors(1000, 32, seed=4)
    with pytest.warns(UserWarning, match="give better codebooks"):  # searchkit's one line replaces faiss's
        index = build_index("OPQ4,IVF8,PQ4", xb)
    assert len(index) == 1000 and "WARNING clustering" not in capfd.readouterr().err
