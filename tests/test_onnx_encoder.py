"""The ONNX encoders (float32 and int8) against the PyTorch model: shapes, unit length, agreement, export reuse."""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from searchkit.encoders import onnx as onnx_encoder  # noqa: E402
from searchkit.encoders.embed import Embedder, embedding_cache_path  # noqa: E402
from searchkit.encoders.models import resolve_model  # noqa: E402
from searchkit.errors import InputError  # noqa: E402

EXTRA = ["", "a", "remove a directory tree", "x " * 400]  # empty, one character, a query, longer than 256 tokens


@pytest.fixture(scope="module")
def onnx_float():
    return Embedder(backend="onnx")


@pytest.fixture(scope="module")
def onnx_int8():
    return Embedder(backend="onnx-int8")


@pytest.fixture(scope="module")
def sample(pydocs):
    return pydocs.corpus.embedding_texts()[:200] + EXTRA


@pytest.fixture(scope="module")
def torch_vectors(embedder, sample):
    return embedder.encode(sample, progress=False)


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_shapes_dtype_unit_norm(request, backend, sample):
    emb = request.getfixturevalue("onnx_float" if backend == "onnx" else "onnx_int8")
    x = emb.encode(sample, progress=False)
    assert x.shape == (len(sample), 384) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert emb.dim == 384 and emb.cache_id.endswith(f"@{backend}/{emb.model.scheme}") and emb.backend == backend
    assert emb.encode([]).shape == (0, 384)


def test_float_onnx_matches_torch(onnx_float, sample, torch_vectors):
    cos = (onnx_float.encode(sample, progress=False) * torch_vectors).sum(1)
    assert cos.mean() > 0.9999 and cos.min() > 0.999, (cos.mean(), cos.min())


def test_int8_onnx_is_close_to_torch(onnx_int8, sample, torch_vectors):
    cos = (onnx_int8.encode(sample, progress=False) * torch_vectors).sum(1)
    assert cos.mean() > 0.99 and cos.min() > 0.95, (cos.mean(), cos.min())  # measured: mean 0.9929, min 0.973


def test_batch_size_barely_changes_the_vectors(onnx_float, onnx_int8, sample):
    a = onnx_float.encode(sample[:40], batch_size=1, progress=False)
    b = onnx_float.encode(sample[:40], batch_size=16, progress=False)
    assert (a * b).sum(1).min() > 0.99999
    # int8: activations are quantized with one range per batch (padding included), so a text's vector
    # depends a little on its batch companions (measured: cosine >= 0.989 between batch sizes 1 and 16).
    a = onnx_int8.encode(sample[:40], batch_size=1, progress=False)
    b = onnx_int8.encode(sample[:40], batch_size=16, progress=False)
    assert (a * b).sum(1).min() > 0.98


def test_caches_never_mix(embedder, onnx_float, onnx_int8):
    ids = {embedder.cache_id, onnx_float.cache_id, onnx_int8.cache_id}  # one model id, three caches
    assert len(ids) == 3 and len({embedder.model_id, onnx_float.model_id, onnx_int8.model_id}) == 1
    assert len({embedding_cache_path(m, ["x"]) for m in ids}) == 3


def test_export_is_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHKIT_CACHE", str(tmp_path))
    calls = []
    real = onnx_encoder._export_float
    monkeypatch.setattr(onnx_encoder, "_export_float", lambda *a: (calls.append(a), real(*a))[1])
    source = resolve_model()[1]
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a plain process (pytest keeps its own handlers on the root)
    before = (root.level, [])
    first = onnx_encoder.OnnxEncoder(source, quantized=True, name="mini")
    assert (root.level, root.handlers) == before  # the quantizer's logging.warning() leaves no root handler behind
    second = onnx_encoder.OnnxEncoder(source, quantized=False, name="mini")
    assert len(calls) == 1 and first.folder == second.folder
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == [first.folder.name]  # no temp folder left
    assert {"meta.json", "model.onnx", "model_int8.onnx", "tokenizer.json"} <= {p.name for p in first.folder.iterdir()}
    assert first.folder.name.startswith("mini-")


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ("one string", "expected a list of strings, got a single str: wrap it as \\[text\\]"),
        (["ok", 3], "texts\\[1\\] is 3 \\(int\\), not a string"),
        (None, "expected a list of strings, got NoneType"),
    ],
)
def test_bad_input_errors_come_from_check_texts(onnx_int8, texts, message):
    with pytest.raises(InputError, match=message):
        onnx_int8.encode(texts)
    with pytest.raises(InputError, match=message):
        onnx_int8.model.encode(texts)  # the OnnxEncoder itself checks too


def test_bad_batch_size(onnx_int8):
    with pytest.raises(InputError, match="batch_size must be a positive integer, got 0"):
        onnx_int8.model.encode(["a"], batch_size=0)


def test_serving_threads_reach_an_encoder_loaded_before_them(one_compute_thread):
    """``serve`` loads the encoder (and embeds with every core), then sets its threads: the ONNX session follows."""
    from searchkit.threads import set_compute_threads

    emb = Embedder(backend="onnx-int8")
    emb.model.set_threads(2)
    before = emb.encode(["remove a directory tree"])
    set_compute_threads(1, emb)
    assert emb.model.threads == 1 and emb.model.session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_allclose(emb.encode(["remove a directory tree"]), before, atol=1e-5)
