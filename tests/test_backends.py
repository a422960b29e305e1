"""Encoder backends: chosen on every command, recorded in caches and manifests, mixable within one model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from searchkit.cli import build_parser, main
from searchkit.encoders.embed import Embedder, default_embedder, embedding_cache_path
from searchkit.encoders.models import BACKENDS, DEFAULT_BACKEND
from searchkit.errors import InputError
from searchkit.index.manifest import read_manifest


@pytest.fixture(scope="module")
def int8():
    return default_embedder("onnx-int8")


@pytest.mark.parametrize("command", [["search", "q"], ["build", "--out", "x"], ["serve"], ["tune-fusion"]])
def test_every_command_takes_a_backend(command, capsys):
    parser = build_parser()
    assert parser.parse_args(command).backend == DEFAULT_BACKEND == "onnx-int8"
    for b in BACKENDS:
        assert parser.parse_args([*command, "--backend", b]).backend == b
    with pytest.raises(SystemExit):
        parser.parse_args([*command, "--backend", "gpu"])
    assert "invalid choice: 'gpu' (choose from" in capsys.readouterr().err


def test_backends_share_the_model_id_but_not_the_cache(embedder, int8):
    assert embedder.model_id == int8.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert (embedder.backend, int8.backend) == ("torch", "onnx-int8")
    assert int8.cache_id == "sentence-transformers/all-MiniLM-L6-v2@onnx-int8/static-v3" and embedder.cache_id == embedder.model_id
    texts = ["one", "two"]
    assert embedding_cache_path(embedder.cache_id, texts) != embedding_cache_path(int8.cache_id, texts)
    with pytest.raises(InputError, match="unknown encoder backend 'cuda': choose one of torch, onnx, onnx-int8"):
        Embedder(backend="cuda")


def test_int8_and_torch_agree_on_a_sample_of_the_corpus(embedder, int8, pydocs):
    texts = pydocs.corpus.embedding_texts()[::150]  # a fixed sample (50 documents): the whole corpus costs minutes on torch
    assert len(texts) >= 40
    cos = np.sum(embedder.encode(texts) * int8.encode(texts), axis=1)
    assert cos.min() >= 0.99, f"lowest cosine {cos.min():.4f} at {texts[int(cos.argmin())][:60]!r}"


@pytest.fixture(scope="module")
def torch_index(tmp_path_factory, embedder):
    out = tmp_path_factory.mktemp("torch-index")
    assert main(["build", "--corpus", "pydocs", "--backend", "torch", "--out", str(out)]) == 0
    return out


def test_the_manifest_records_the_backend(torch_index):
    m = read_manifest(torch_index)
    assert m.backend == "torch" and m.model == "sentence-transformers/all-MiniLM-L6-v2"


def _copy_with(src, dst, **manifest):
    """Copy the index folder ``src`` to ``dst`` with ``manifest`` fields changed; return ``dst``."""
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    m = json.loads((dst / "manifest.json").read_text())
    (dst / "manifest.json").write_text(json.dumps({**m, **manifest}))
    return dst


def test_a_manifest_with_an_unknown_backend_is_refused_in_one_line(torch_index, tmp_path, capsys):
    bad = _copy_with(torch_index, tmp_path / "bad-backend", backend="tensorrt")
    assert main(["serve", "--index", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "backend" in err and "tensorrt" in err and err.count("\n") == 1, err


def test_an_index_of_one_backend_is_served_with_another(torch_index, monkeypatch, capsys, int8):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    assert main(["serve", "--index", str(torch_index), "--backend", "onnx-int8"]) == 0
    assert "queries embedded with onnx-int8, index vectors from torch" in capsys.readouterr().out
    with TestClient(seen["app"]) as c:
        h = c.get("/health").json()
        assert h["backend"] == {"query": "onnx-int8", "index": "torch", "mixed": True}, h
        r = c.get("/search", params={"q": "remove a directory and all its contents", "top_k": 3})
        assert r.status_code == 200, r.text
        assert "shutil.rmtree" in [x["id"] for x in r.json()["results"]]


def test_another_model_is_still_refused_whatever_the_backend(torch_index, tmp_path, capsys):
    other = _copy_with(torch_index, tmp_path / "other", model="sentence-transformers/all-mpnet-base-v2")
    assert main(["serve", "--index", str(other), "--backend", "onnx-int8"]) == 2
    assert "was built with model 'sentence-transformers/all-mpnet-base-v2'" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_search_command_on_each_cached_backend(backend, capsys, embedder, int8):
    assert main(["search", "--backend", backend, "-k", "2", "--json", "delete a directory tree"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == "delete a directory tree" and out["results"][0]["id"] == "shutil.rmtree"
