"""Fine-tuning the bi-encoder: the three regimes through the CLI, searchkit.json, atomic output, the tuned model
flowing through build / search / the ONNX export, the manifest's model hash, and every error message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_beir

from searchkit.cli import main
from searchkit.corpus.datasets import load_beir
from searchkit.encoders import training
from searchkit.encoders.pairs import cloze_pairs, heading_pairs, judged_pairs, training_dataset
from searchkit.errors import InputError, ModelNotFoundError, SearchIndexError

STEPS = ["--max-steps", "2", "--batch-size", "4"]


def _beir_with_train(folder: Path) -> Path:
    """A tiny BEIR folder with 12 training queries (t0..t11, each judging d0..d11) beside its test query."""
    root = tiny_beir(folder)
    rows = ["query-id\tcorpus-id\tscore"] + [f"t{i}\td{i}\t1" for i in range(12)]
    (root / "qrels" / "train.tsv").write_text("\n".join(rows) + "\n")
    with open(root / "queries.jsonl", "a") as f:
        for i in range(12):
            f.write(json.dumps({"_id": f"t{i}", "text": f"which document is number {i}"}) + "\n")
    return root


def _notes(folder: Path) -> Path:
    folder.mkdir()
    (folder / "bread.md").write_text(
        "# Bread\n\nKnead the dough for ten minutes until it is smooth. Let it rise in a warm place for an hour. "
        "Bake it at two hundred degrees until the crust is brown.\n\n## Starter\n\nFeed the starter with flour and "
        "water every week. A healthy starter doubles within six hours of a feed.\n"
    )
    (folder / "wifi.txt").write_text(
        "Home network notes\n\nThe wifi dropped every evening because of crowded channels. Fixing the router to "
        "channel one stopped the drops. The printer now has a reserved address in the router settings.\n"
    )
    return folder


@pytest.fixture(scope="module")
def beir(tmp_path_factory) -> Path:
    return _beir_with_train(tmp_path_factory.mktemp("ft") / "beir")


@pytest.fixture(scope="module")
def tuned(beir, tmp_path_factory) -> Path:
    """A model fine-tuned by the CLI for two steps on the tiny BEIR training split (one mined negative each)."""
    out = tmp_path_factory.mktemp("models") / "tuned"
    assert main(["finetune", "--corpus", f"beir:{beir}", "--out", str(out), *STEPS, "--seed", "3"]) == 0
    return out


def test_judged_regime_writes_a_model_and_its_searchkit_json(tuned, beir):
    info = json.loads((tuned / "searchkit.json").read_text())
    assert info["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["data"] == f"beir:{beir}" and info["regime"] == "judged"
    assert info["pairs"] >= 10 and info["queries"] >= 10  # mining may drop a pair without a negative
    assert (info["steps"], info["max_steps"], info["batch_size"], info["seed"], info["epochs"]) == (2, 2, 4, 3, 1)
    assert info["hard_negatives"] == 1 and info["relative_margin"] == 0.05 and info["seconds"] > 0
    assert (tuned / "model.safetensors").is_file() and (tuned / "modules.json").is_file()
    assert not [p for p in tuned.parent.iterdir() if p.name.startswith(".")]  # no temp folder left beside it


def test_unlabeled_folder_regime_trains_on_cloze_and_heading_pairs(tmp_path, capsys):
    notes = _notes(tmp_path / "notes")
    out = tmp_path / "m"
    assert main(["finetune", "--corpus", str(notes), "--out", str(out), "--max-steps", "1", "--batch-size", "4",
                 "--hard-negatives", "0"]) == 0  # fmt: skip
    info = json.loads((out / "searchkit.json").read_text())
    assert info["regime"] == "cloze+heading" and info["pairs"] >= 4 and info["steps"] == 1
    assert "--model " + str(out) in capsys.readouterr().out


def test_pydocs_regime_uses_its_judged_queries(tmp_path, pydocs):
    pairs = judged_pairs(pydocs)
    assert pairs.regime == "judged" and pairs.queries == len(pydocs.judged_queries())
    out = tmp_path / "m"
    assert main(["finetune", "--corpus", "pydocs", "--out", str(out), "--max-steps", "1", "--batch-size", "4",
                 "--hard-negatives", "0"]) == 0  # fmt: skip
    assert json.loads((out / "searchkit.json").read_text())["data"] == "pydocs"


def test_pairs_from_documents():
    from searchkit.corpus.datasets import Corpus

    text = "# Bread\n\nKnead the dough for ten minutes now. Let it rise for one whole hour. Bake it until brown please."
    corpus = Corpus(["a"], ["Bread"], [text])
    cloze = cloze_pairs(corpus, seed=0, keep_query=0.0)
    assert cloze and all(q not in p and q in text for q, p in cloze)  # the sentence is taken out of its passage
    assert ("Bread", "Knead the dough for ten minutes now. Let it rise for one whole hour. Bake it until brown please.") \
        in [(h, b.strip()) for h, b in heading_pairs(corpus)]  # fmt: skip


def test_never_trains_on_test_queries(beir):
    with pytest.raises(InputError, match="never train on the test queries"):
        training_dataset(f"beir:{beir}", split="test")
    with pytest.raises(InputError, match="holds the test split's judgments"):
        judged_pairs(load_beir(beir))  # the default split of load_beir is test
    train = training_dataset(f"beir:{beir}")
    assert train.split == "train" and {"t0", "t11"} <= set(train.qrels) and "q1" not in train.qrels


def _cli_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--epochs", "0", "--epochs must be"), ("--batch-size", "1", "--batch-size must be"),
    ("--max-steps", "0", "--max-steps must be"), ("--seed", "-1", "--seed must be"),
])  # fmt: skip
def test_bad_numbers_fail_before_any_model_loads(flag, value, words, tmp_path, capsys, monkeypatch):
    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the flags were checked")

    monkeypatch.setattr("searchkit.encoders.models.load_model", no_model)
    err = _cli_error(["finetune", "--corpus", "pydocs", "--out", str(tmp_path / "m"), flag, value], capsys)
    assert words in err and value in err


def test_output_folder_errors(tuned, tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    err = _cli_error(["finetune", "--corpus", "pydocs", "--out", str(tmp_path / "notes")], capsys)
    assert f"--out {tmp_path / 'notes'} exists and is not a model folder" in err and "choose a new folder" in err
    err = _cli_error(["finetune", "--corpus", "pydocs", "--out", str(tuned)], capsys)
    assert "already holds a model: pass --overwrite" in err
    assert (tmp_path / "notes" / "a.txt").read_text() == "mine"


def test_beir_without_train_split_and_no_judged_queries(tmp_path, capsys):
    root = tiny_beir(tmp_path / "b")
    err = _cli_error(["finetune", "--corpus", f"beir:{root}", "--out", str(tmp_path / "m")], capsys)
    assert f"{root} has no qrels/train.tsv" in err and "add qrels/train.tsv" in err
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tnot-a-doc\t1\n")
    err = _cli_error(["finetune", "--corpus", f"beir:{root}", "--out", str(tmp_path / "m")], capsys)
    assert "has no judged training queries" in err
    assert not (tmp_path / "m").exists()


def test_cross_encoder_flag_without_the_module(tmp_path, capsys, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("searchkit.encoders.cross_training") is not None:
        pytest.skip("this version has cross-encoder training (tested with it)")
    err = _cli_error(["finetune", "--corpus", "pydocs", "--out", str(tmp_path / "m"), "--cross-encoder"], capsys)
    assert "cross-encoder training is not available in this version" in err


def test_an_interrupted_run_leaves_no_folder(beir, tmp_path, monkeypatch):
    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_pairs", crash)
    with pytest.raises(KeyboardInterrupt):
        training.finetune(f"beir:{beir}", tmp_path / "m", max_steps=1, batch_size=4, hard_negatives=0)
    assert list(tmp_path.iterdir()) == []


def test_missing_weights(tuned, tmp_path, capsys):
    from searchkit.encoders.embed import Embedder

    broken = tmp_path / "broken"
    shutil.copytree(tuned, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="has no weights"):
        Embedder(str(broken), backend="torch")
    err = _cli_error(["search", "--model", str(broken), "--backend", "torch", "files"], capsys)
    assert f"the model folder {broken} has no weights" in err


def test_tuned_model_builds_and_searches_and_its_hash_guards_the_index(tuned, beir, tmp_path, capsys, embedder):
    from searchkit.encoders.embed import Embedder
    from searchkit.startup import load_engine

    idx = tmp_path / "idx"
    assert main(["build", "--corpus", f"beir:{beir}", "--model", str(tuned), "--backend", "torch", "--out", str(idx)]) == 0
    manifest = json.loads((idx / "manifest.json").read_text())
    tuned_emb = Embedder(str(tuned), backend="torch")
    assert manifest["model"] == str(tuned.resolve()) and manifest["model_sha256"] == tuned_emb.model_sha256
    assert tuned_emb.cache_id != embedder.cache_id and tuned_emb.model_sha256[:16] in tuned_emb.cache_id
    capsys.readouterr()
    assert main(["search", "--corpus", f"beir:{beir}", "--model", str(tuned), "--backend", "torch", "--json", "files"]) == 0
    assert len(json.loads(capsys.readouterr().out.splitlines()[-1])["results"]) == 10
    engine = load_engine(f"beir:{beir}", index_dir=str(idx), backend="torch", model=str(tuned))
    assert engine.search("files", 3)
    with pytest.raises(SearchIndexError, match="built with model"):
        load_engine(f"beir:{beir}", index_dir=str(idx), backend="torch")  # the base model
    manifest["model_sha256"] = "0" * 64  # the same folder name, other weights (e.g. trained again into it)
    (idx / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SearchIndexError) as e:
        load_engine(f"beir:{beir}", index_dir=str(idx), backend="torch", model=str(tuned))
    assert "sha256 000000000000" in str(e.value) and f"sha256 {tuned_emb.model_sha256[:12]}" in str(e.value)
    del manifest["model_sha256"]  # a manifest from before the hash: the name decides
    (idx / "manifest.json").write_text(json.dumps(manifest))
    assert load_engine(f"beir:{beir}", index_dir=str(idx), backend="torch", model=str(tuned)).search("files", 3)


def test_int8_onnx_export_of_the_tuned_model_is_close_to_torch(tuned):
    from searchkit.encoders.embed import Embedder

    texts = ["Document 3 about dates and files.", "which document is number 7", "network threads and json"]
    a = Embedder(str(tuned), backend="torch").encode(texts)
    b = Embedder(str(tuned), backend="onnx-int8").encode(texts)
    assert np.all(np.sum(a * b, axis=1) > 0.98)


def test_matryoshka_wraps_the_loss_and_held_out_figures_are_recorded(tuned, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    st = SentenceTransformer(str(tuned), device="cpu")
    wrapped = training._loss(st, matryoshka=True)
    assert isinstance(wrapped, MatryoshkaLoss) and list(wrapped.matryoshka_dims) == [384, 256, 128, 64, 32]
    assert isinstance(training._loss(st, matryoshka=False), MultipleNegativesRankingLoss)
    copy = tmp_path / "copy"
    shutil.copytree(tuned, copy)
    info = training.record_held_out(copy, {"tiny test": {"ndcg@10": 0.5}})
    assert json.loads((copy / "searchkit.json").read_text())["held_out"] == {"tiny test": {"ndcg@10": 0.5}} == info["held_out"]
    with pytest.raises(InputError, match="has no searchkit.json"):
        training.record_held_out(tmp_path, {})
