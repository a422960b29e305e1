"""``python -m searchkit build`` and ``serve``: saved indexes, fail-fast start-up, a real server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from searchkit.cli import main
from searchkit.index.manifest import read_manifest
from searchkit.index.vector import VectorIndex
from searchkit.serving.server import free_port


@pytest.fixture(scope="module")
def built(tmp_path_factory, embedder):
    """A Flat index of the Python docs saved by ``build``."""
    out = tmp_path_factory.mktemp("index")
    assert main(["build", "--corpus", "pydocs", "--out", str(out)]) == 0
    return out


def test_build_saves_a_checked_index(built, capsys, pydocs):
    m = read_manifest(built)
    assert m.count == len(pydocs.corpus) and m.factory == "Flat" and m.model.endswith("all-MiniLM-L6-v2")
    index = VectorIndex.load(built)
    assert sorted(i for i in index.ids if i is not None) == sorted(pydocs.corpus.ids)


def test_serve_loads_the_index_and_answers(built, monkeypatch, capsys, pydocs):
    n = len(pydocs.corpus)
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    assert main(["serve", "--index", str(built), "--port", "8123"]) == 0
    assert seen["port"] == 8123 and seen["host"] == "127.0.0.1"
    assert seen["timeout_keep_alive"] == 5 and seen["limit_concurrency"] == 256  # idle and excess connections bounded
    assert f"serving {n} documents on http://127.0.0.1:8123" in capsys.readouterr().out
    with TestClient(seen["app"]) as c:
        h = c.get("/health").json()
        assert h["ready"] and h["documents"] == n and h["index"]["vectors"] == n
        r = c.get("/search", params={"q": "remove a directory and all its contents", "top_k": 3})
        assert r.status_code == 200, r.text
        assert "shutil.rmtree" in [x["id"] for x in r.json()["results"]]


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _edit_manifest(folder: Path, **changes) -> None:
    path = folder / "manifest.json"
    m = json.loads(path.read_text())
    m.update(changes)
    path.write_text(json.dumps(m))


def _fails(argv, capsys, expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err, err
    assert "\n" not in err and "Traceback" not in err


def test_serve_fails_fast_without_an_index(tmp_path, capsys):
    _fails(["serve", "--index", str(tmp_path / "none")], capsys, "manifest.json is missing; build one with")


def test_serve_fails_fast_on_a_damaged_index(built, tmp_path, capsys):
    bad = _copy(built, tmp_path / "flipped")
    data = next(bad.glob("index-*.faiss"))
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    _fails(["serve", "--index", str(bad)], capsys, "fails its checksum")
    short = _copy(built, tmp_path / "truncated")
    ids = next(short.glob("ids-*.json"))
    ids.write_bytes(ids.read_bytes()[:100])
    _fails(["serve", "--index", str(short)], capsys, "fails its checksum")
    junk = _copy(built, tmp_path / "junk")
    (junk / "manifest.json").write_text("{not json")
    _fails(["serve", "--index", str(junk)], capsys, "is not valid JSON")


def test_serve_fails_fast_on_another_model_or_dimension(built, tmp_path, capsys):
    other = _copy(built, tmp_path / "other-model")
    _edit_manifest(other, model="sentence-transformers/all-mpnet-base-v2")
    _fails(["serve", "--index", str(other)], capsys, "was built with model 'sentence-transformers/all-mpnet-base-v2'")
    wide = _copy(built, tmp_path / "wide")
    _edit_manifest(wide, dim=768)
    _fails(["serve", "--index", str(wide)], capsys, "has dimension 768 but the model gives 384")


def test_serve_fails_fast_on_an_index_of_another_corpus(tmp_path, capsys, embedder, unit_vectors):
    index = VectorIndex(384, "Flat", model_id=embedder.model_id)
    index.add(["doc-1", "doc-2"], unit_vectors(2, 384))
    index.save(tmp_path / "foreign")
    _fails(["serve", "--index", str(tmp_path / "foreign")], capsys, "holds 2 ids that are not documents of 'pydocs'")


def test_search_command_still_works(capsys):
    assert main(["search", "-k", "2", "--json", "delete a directory tree"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == "delete a directory tree" and len(out["results"]) == 2


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["-k", "0", "a query"], "-k 0: ask for at least one result per query, e.g. -k 10"),
        (["fine", "  "], "query 2 is empty or whitespace only: type some words to search for"),
    ],
)
def test_search_checks_its_arguments_before_loading_the_model(argv, expected, monkeypatch, capsys):
    import searchkit.cli

    def load(*_):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(searchkit.cli, "_engine", load)
    _fails(["search", *argv], capsys, expected)


def test_serve_process_starts_answers_and_stops(built):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "searchkit", "serve", "--index", str(built), "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready in 120 s"
            time.sleep(0.2)
        r = httpx.post(f"http://127.0.0.1:{port}/search", json={"query": "read a csv file", "top_k": 3}, timeout=60)  # a fresh server
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["id"].startswith("csv")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_serve_process_exits_non_zero_on_a_bad_index(tmp_path):
    r = subprocess.run([sys.executable, "-m", "searchkit", "serve", "--index", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [f"error: no index in {tmp_path}: manifest.json is missing; build one with python -m searchkit build"]


def test_serve_refuses_a_negative_result_cache_before_loading_anything(capsys):
    assert main(["serve", "--result-cache", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --result-cache must be a non-negative integer, got -1 (answers kept; 0 turns the result cache off)"
