"""The trained cross-encoder (a few steps on a tiny corpus) and the re-rank stage of the engine, the app and the CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from searchkit.corpus.datasets import Corpus, Dataset, load_beir
from searchkit.encoders import cross_training
from searchkit.encoders.cross_training import train_cross_encoder
from searchkit.engine import SearchSettings
from searchkit.errors import DatasetError, InputError, ModelNotFoundError
from searchkit.relevance.rerank import Reranker

TOPICS = {
    "files": "copy and delete files and folders on disk", "time": "measure elapsed time with a clock",
    "json": "parse and write json documents", "network": "open a socket and send bytes over the network",
    "random": "draw random numbers from a distribution", "threads": "run work in parallel threads",
}  # fmt: skip
TRAIN = {"epochs": 1, "batch_size": 4, "max_steps": 2, "seed": 0, "progress": False, "max_length": 32}


def _tiny_beir(folder):
    """Write a BEIR folder: 18 documents, six queries, training and test judgments."""
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for topic, text in TOPICS.items():
            for j in range(3):
                extra = f" with the {topic} module" if j == 0 else ""  # the judged one matches the query best
                f.write(json.dumps({"_id": f"{topic}{j}", "title": topic, "text": f"{text}{extra}, part {j}"}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for i, topic in enumerate(TOPICS):
            f.write(json.dumps({"_id": f"q{i}", "text": f"how to use the {topic} module"}) + "\n")
    rows = "".join(f"q{i}\t{topic}0\t1\n" for i, topic in enumerate(TOPICS))
    for split in ("train", "test"):
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


@pytest.fixture(scope="session")
def beir_dir(tmp_path_factory):
    return _tiny_beir(tmp_path_factory.mktemp("beir") / "tiny")


@pytest.fixture(scope="session")
def trained(beir_dir, tmp_path_factory):
    """A cross-encoder trained for 2 steps from the packaged MiniLM weights, and what training returned."""
    out = tmp_path_factory.mktemp("cross") / "tiny-cross"
    info = train_cross_encoder(load_beir(beir_dir, split="train"), out, **TRAIN)
    return out, info


class StubReranker(Reranker):
    """Scores each hit by a fixed table keyed on its title (the document id in ``small_engine``)."""

    def __init__(self, table: dict[str, float]):
        self.name, self.table, self.calls = "stub", table, 0

    def scores(self, query, texts):
        self.calls += 1
        return np.array([self.table.get(t.split()[0], 0.0) for t in texts], dtype=np.float32)


@pytest.fixture
def stub_engine(small_engine):
    eng = copy.copy(small_engine)
    eng.reranker = StubReranker({"time.sleep": 3.0, "random.shuffle": 2.0, "csv.writer": 1.0})
    return eng


def test_training_writes_a_loadable_cross_encoder(trained):
    out, info = trained
    saved = json.loads((out / "searchkit.json").read_text())
    assert saved == info
    assert (info["kind"], info["base"], info["steps"], info["seed"]) == (
        "cross-encoder", "sentence-transformers/all-MiniLM-L6-v2", 2, 0)  # fmt: skip
    assert (info["data"], info["split"], info["queries"], info["pairs"]) == ("tiny", "train", 6, 6)
    assert info["negatives"] > 0 and info["seconds"] > 0
    s = Reranker(out).scores("how to use json", ["parse and write json documents", "run work in parallel threads"])
    assert s.shape == (2,) and np.isfinite(s).all()
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny-cross"]  # no temporary folder left beside it


def test_hard_negatives_are_never_judged_and_keep_the_margin(beir_dir):
    ds = load_beir(beir_dir, split="train")
    pairs = cross_training.training_pairs(ds)
    rows = cross_training.mine_pairs(ds, pairs)
    texts = dict(zip(ds.corpus.ids, (f"{t} {x}" for t, x in zip(ds.corpus.titles, ds.corpus.texts))))
    judged = {(ds.queries[q], texts[d]) for q, docs in pairs.items() for d in docs}
    got = list(zip(rows["query"], rows["text"], rows["label"]))
    assert {(q, t) for q, t, y in got if y == 1.0} == judged
    assert all((q, t) not in judged for q, t, y in got if y == 0.0) and any(y == 0.0 for *_, y in got)


def test_refuses_test_judgments(beir_dir, tmp_path):
    with pytest.raises(DatasetError, match="holds test judgments \\(split='test'\\): train on the training split"):
        train_cross_encoder(load_beir(beir_dir, split="test"), tmp_path / "m", **TRAIN)
    assert not (tmp_path / "m").exists()


def test_bad_arguments(beir_dir, tmp_path):
    ds = load_beir(beir_dir, split="train")
    with pytest.raises(InputError, match="epochs must be a positive integer, got 0 \\(passes over"):
        train_cross_encoder(ds, tmp_path / "m", **{**TRAIN, "epochs": 0})
    with pytest.raises(InputError, match="batch_size must be a positive integer, got -1"):
        train_cross_encoder(ds, tmp_path / "m", **{**TRAIN, "batch_size": -1})
    with pytest.raises(InputError, match=f"{tmp_path} exists: give a new folder for the trained cross-encoder"):
        train_cross_encoder(ds, tmp_path, **TRAIN)
    empty = Dataset("empty", ds.corpus, {}, {}, split="train")
    with pytest.raises(DatasetError, match="empty has no judged training queries"):
        train_cross_encoder(empty, tmp_path / "m", **TRAIN)
    with pytest.raises(InputError, match="give a searchkit Dataset"):
        train_cross_encoder("beir:x", tmp_path / "m", **TRAIN)


def test_an_interrupted_training_leaves_nothing(beir_dir, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer

    def half_save(self, path, *a, **kw):
        (tmp_path / "seen").write_text(path)
        open(f"{path}/model.safetensors", "wb").write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(CrossEncoderTrainer, "train", lambda self: SimpleNamespace(global_step=0, training_loss=0.0))
    monkeypatch.setattr(CrossEncoder, "save_pretrained", half_save)
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt):
        train_cross_encoder(load_beir(beir_dir, split="train"), tmp_path / "out" / "m", **TRAIN)
    assert (tmp_path / "seen").is_file() and list((tmp_path / "out").iterdir()) == []


def test_engine_reranks_only_within_the_depth(stub_engine):
    q = "delete a folder"
    base = stub_engine.search(q, k=6)
    got = stub_engine.search(q, k=6, settings=SearchSettings(rerank_depth=4))
    table = stub_engine.reranker.table
    head = sorted(base[:4], key=lambda h: -table.get(h.id, 0.0))
    assert [h.id for h in got[:4]] == [h.id for h in head] and [h.id for h in got[4:]] == [h.id for h in base[4:]]
    assert [h.score for h in got[:4]] == [table.get(h.id, 0.0) for h in head]
    assert all(got[i].score > got[i + 1].score for i in range(3, 5))  # the tail stays below the re-ranked head


def test_engine_reranks_its_depth_even_when_k_is_smaller(stub_engine):
    for mode in ("dense", "bm25", "hybrid"):
        top10 = [h.id for h in stub_engine.search("delete a folder", k=10, mode=mode)]  # ties keep this order
        got = stub_engine.search("delete a folder", k=2, mode=mode, settings=SearchSettings(rerank_depth=10))
        best = sorted(top10, key=lambda d: -stub_engine.reranker.table.get(d, 0.0))[:2]
        assert [h.id for h in got] == best, mode


def test_timings_have_a_rerank_stage(stub_engine):
    on = stub_engine.search_timed(["delete a folder"], 3, SearchSettings(rerank_depth=5))
    off = stub_engine.search_timed(["delete a folder"], 3, SearchSettings())
    assert set(on.timings.as_dict()) == {"embed", "search", "rerank", "total"}
    assert on.timings.rerank_ms > 0 and off.timings.rerank_ms == 0
    t = on.timings
    assert t.embed_ms + t.search_ms + t.rerank_ms == pytest.approx(t.total_ms, rel=1e-6, abs=1e-6)


def test_the_result_cache_keys_on_the_depth(stub_engine):
    from searchkit.serving.cache import ResultCache

    stub_engine.results = ResultCache(100)
    q = ["delete a folder"]
    plain = stub_engine.search_timed(q, 5, SearchSettings())
    deep = stub_engine.search_timed(q, 5, SearchSettings(rerank_depth=5))
    shallow = stub_engine.search_timed(q, 5, SearchSettings(rerank_depth=2))
    assert not (deep.result_cached or shallow.result_cached)
    assert [h.id for h in plain.hits[0]] != [h.id for h in deep.hits[0]]
    again = stub_engine.search_timed(q, 5, SearchSettings(rerank_depth=5))
    assert again.result_cached and [h.id for h in again.hits[0]] == [h.id for h in deep.hits[0]]


def test_engine_errors(small_engine):
    with pytest.raises(InputError, match="rerank_depth=5 needs a re-ranker: give the engine one"):
        small_engine.search("delete a folder", settings=SearchSettings(rerank_depth=5))
    with pytest.raises(InputError, match="rerank_depth must be a positive integer or None, got 0"):
        SearchSettings(rerank_depth=0)


def test_engine_with_the_trained_cross_encoder(trained, small_engine):
    eng = copy.copy(small_engine)
    eng.reranker = Reranker(trained[0])
    got = eng.search("delete a folder", k=5, settings=SearchSettings(rerank_depth=5))
    s = eng.reranker.scores("delete a folder", [f"{h.title} {h.text}" for h in got])
    assert [h.score for h in got] == pytest.approx(s.tolist(), abs=1e-5) and list(s) == sorted(s, reverse=True)


def test_app_rerank_field(stub_engine, small_engine):
    from searchkit.serving.app import create_app

    with TestClient(create_app(stub_engine, micro_batch=False)) as client:
        r = client.post("/search", json={"query": "delete a folder", "top_k": 3, "rerank": 10})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["rerank"] == 10 and set(out["timings_ms"]) == {"embed", "search", "rerank", "total"}
        assert [h["id"] for h in out["results"]] == ["time.sleep", "random.shuffle", "csv.writer"]
        plain = client.post("/search", json={"query": "delete a folder", "top_k": 3, "rerank": 0}).json()
        assert plain["rerank"] is None and plain["results"][0]["id"] != "time.sleep"
        batch = client.post("/search/batch", json={"queries": ["delete a folder"], "top_k": 1, "rerank": 10}).json()
        assert batch["rerank"] == 10 and batch["results"][0][0]["id"] == "time.sleep"
        bad = client.post("/search", json={"query": "delete a folder", "rerank": 101})
        assert bad.status_code == 422 and "rerank is 101: give a depth from 1 to 100" in bad.text
        assert client.get("/health").json()["reranker"] == "stub"
    with TestClient(create_app(small_engine, micro_batch=False)) as client:
        r = client.post("/search", json={"query": "delete a folder", "rerank": 5})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["msg"] == ("rerank is 5 but this server has no re-ranker: start it with "
                                                "--reranker DIR, or leave out rerank")  # fmt: skip
        assert client.get("/health").json()["reranker"] is None


def test_damaged_cross_encoder_folders(trained, tmp_path):
    from searchkit.startup import check_rerank_options

    with pytest.raises(ModelNotFoundError, match=f"no cross-encoder at {tmp_path / 'nope'}: the folder does not exist"):
        check_rerank_options(str(tmp_path / "nope"), 50)
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in trained[0].iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="missing model.safetensors or pytorch_model.bin"):
        Reranker(broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelNotFoundError, match="could not load cross-encoder .*: its files may be damaged") as e:
        Reranker(broken)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="--rerank-depth 5 needs --reranker DIR"):
        check_rerank_options(None, 5)
    with pytest.raises(InputError, match="--rerank-depth must be a positive integer or None, got 0"):
        check_rerank_options(str(trained[0]), 0)


@pytest.mark.parametrize("flags, message", [
    (["--reranker", "/no/such/folder"], "error: no cross-encoder at /no/such/folder: the folder does not exist"),
    (["--rerank-depth", "10"], "error: --rerank-depth 10 needs --reranker DIR"),
])  # fmt: skip
def test_cli_checks_rerank_flags_before_loading(flags, message, capsys, monkeypatch):
    from searchkit import cli

    monkeypatch.setattr(cli, "_engine", lambda args: pytest.fail("the model loaded before the flags were checked"))
    for command in (["search", *flags, "read a file"], ["serve", *flags]):
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err


def test_subset_keeps_the_split():
    ds = Dataset("d", Corpus(["a", "b"], ["", ""], ["x", "y"]), {"q": "x"}, {"q": {"a": 1}}, split="train")
    assert ds.subset(1, 1).split == "train"
