"""The built-in Python-docs corpus and the BEIR reader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from searchkit.corpus.datasets import Corpus, download_beir, load_beir
from searchkit.corpus.loaders import load_dataset
from searchkit.corpus.pydocs import build_pydocs_corpus
from searchkit.errors import DatasetError

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "beir" / "scifact"


def test_pydocs_corpus_is_large_deterministic_and_named_by_qualified_name(pydocs):
    c = pydocs.corpus
    assert len(c) >= 7000
    for doc_id in ["shutil.rmtree", "os.path.join", "datetime.datetime.now", "builtins.len", "io.StringIO"]:
        assert doc_id in c, doc_id
    assert c.titles[c.row("shutil.rmtree")].startswith("shutil.rmtree(path")
    assert c.texts[c.row("shutil.rmtree")].startswith("Recursively delete a directory tree.")
    assert all(text.strip() for text in c.texts)
    assert not any(part.startswith("_") for doc_id in c.ids for part in doc_id.split("."))
    fresh = build_pydocs_corpus()
    assert fresh.ids == c.ids and fresh.texts == c.texts


def test_pydocs_skips_modules_that_open_browsers_or_print(pydocs):
    assert "antigravity" not in pydocs.corpus and "this" not in pydocs.corpus


def test_pydocs_judgments_name_existing_documents(pydocs):
    assert len(pydocs.queries) >= 150
    for qid, docs in pydocs.qrels.items():
        assert qid in pydocs.queries
        assert any(g == 2 for g in docs.values()), qid
        assert all(d in pydocs.corpus for d in docs)


def test_corpus_rejects_duplicate_ids_and_ragged_columns():
    with pytest.raises(DatasetError, match="duplicate id 'a'"):
        Corpus(["a", "b", "a"], ["", "", ""], ["x", "y", "z"])
    with pytest.raises(DatasetError, match="2 ids, 1 titles"):
        Corpus(["a", "b"], [""], ["x", "y"])
    with pytest.raises(DatasetError, match="no document with id 'zz'"):
        Corpus(["a"], [""], ["x"]).row("zz")


def _write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": "d1", "title": "Cats", "text": "Cats purr."}, {"_id": "d2", "title": "", "text": "Dogs bark."}]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "purring pets"}\n{"_id": "q9", "text": "unjudged"}\n')
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return root


def test_subset_keeps_the_judged_documents_of_its_queries_and_spread_distractors():
    from searchkit.corpus.datasets import Dataset

    n = 40
    corpus = Corpus([f"d{i}" for i in range(n)], [""] * n, [f"text {i}" for i in range(n)], [f"p{i}" for i in range(n)])
    qrels = {"q2": {"d5": 1, "d39": 2}, "q1": {"d7": 1}, "q3": {"d8": 0}, "q4": {"d1": 1}}
    ds = Dataset("toy", corpus, {q: q for q in ("q1", "q2", "q3", "q4")}, qrels)
    sub = ds.subset(n_queries=2, n_other=4)
    assert sub.name == "toy-subset" and list(sub.queries) == ["q1", "q2"] and sub.qrels == {q: qrels[q] for q in ("q1", "q2")}
    assert sub.corpus.ids == ["d0", "d5", "d7", "d10", "d20", "d30", "d39"]  # corpus order; distractors every 10th
    assert sub.corpus.passages == ["p0", "p5", "p7", "p10", "p20", "p30", "p39"]
    with pytest.raises(DatasetError, match=r"subset\(n_queries=0, n_other=4\): use n_queries >= 1"):
        ds.subset(n_queries=0, n_other=4)


def test_load_beir_reads_the_layout(tmp_path):
    ds = load_beir(_write_beir(tmp_path / "tiny"))
    assert ds.name == "tiny" and ds.corpus.ids == ["d1", "d2"]
    assert ds.queries == {"q1": "purring pets"} and ds.qrels == {"q1": {"d1": 1}}
    assert ds.corpus.full_texts() == ["Cats Cats purr.", "Dogs bark."]
    assert load_dataset(f"beir:{tmp_path / 'tiny'}").corpus.ids == ["d1", "d2"]


def test_load_beir_names_missing_files_and_bad_lines(tmp_path):
    with pytest.raises(DatasetError, match=r"missing .*corpus\.jsonl.*download_beir"):
        load_beir(tmp_path)
    root = _write_beir(tmp_path / "bad")
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{not json\n')
    with pytest.raises(DatasetError, match=r"corpus\.jsonl:2: not valid JSON"):
        load_beir(root)


def test_load_dataset_rejects_unknown_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=r"wiki: no such file or folder: check the path \('pydocs' means"):
        load_dataset("wiki")


def test_download_beir_offline_says_where_to_put_the_files(tmp_path, monkeypatch):
    import urllib.request

    def refuse(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(DatasetError, match=r"Offline\? Put corpus\.jsonl, queries\.jsonl and qrels/test\.tsv in .*scifact"):
        download_beir("scifact", dest=tmp_path)
    with pytest.raises(DatasetError, match="unknown BEIR dataset 'nope'"):
        download_beir("nope", dest=tmp_path)


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="SciFact not present at ../shared/beir/scifact")
def test_load_beir_scifact():
    ds = load_beir(SCIFACT)
    assert len(ds.corpus) == 5183 and len(ds.queries) == 300


def test_pydocs_holds_no_environment(pydocs):
    """os.environ as a default value is shown by name: the corpus is the same on every machine and leaks nothing."""
    signatures = [t for t in pydocs.corpus.titles if "environ=" in t]
    assert signatures and all("environ=os.environ" in t for t in signatures), signatures[:3]


def test_pydocs_does_not_depend_on_where_python_or_the_project_lives(pydocs):
    """Defaults such as ``executable=sys.executable`` are shown by name: a clone elsewhere gets the same corpus."""
    import sys
    import sysconfig

    texts = pydocs.corpus.titles + pydocs.corpus.texts
    for path in (sys.executable, sysconfig.get_path("stdlib"), str(Path(__file__).resolve().parents[1])):
        leaks = [t for t in texts if path in t]
        assert not leaks, (path, leaks[:2])
    assert any(t.startswith("platform.architecture(executable=sys.executable,") for t in pydocs.corpus.titles)


def test_pydocs_holds_no_memory_addresses(pydocs):
    """Defaults like ``<object object at 0x7f...>`` lose their address: it differs on every run, and so would BM25's
    statistics and every notebook output over the corpus."""
    import re

    from searchkit.corpus.pydocs import _signature

    assert "0x" not in _signature(shutil.copytree), _signature(shutil.copytree)
    assert "copy_function=<function copy2>" in _signature(shutil.copytree)
    addressed = [t for t in pydocs.corpus.titles if re.search(r" at 0x[0-9a-f]{9,}", t)]
    assert not addressed, addressed[:3]
    assert not any("PATH" in t or "HOME" in t for t in pydocs.corpus.titles)


def test_scifact_is_found_where_download_beir_puts_it(tmp_path, monkeypatch):
    from searchkit import config
    from searchkit.corpus import datasets

    monkeypatch.delenv("SEARCHKIT_SCIFACT", raising=False)
    monkeypatch.setattr(config, "ROOT", tmp_path / "project")
    for module in (config, datasets):
        monkeypatch.setattr(module, "DATA_DIR", tmp_path / "project" / "data")
    assert config.scifact_dir() == tmp_path / "project" / "data" / "beir" / "scifact"  # nowhere yet: the download folder
    shared = tmp_path / "shared" / "beir" / "scifact"
    shared.mkdir(parents=True)
    (shared / "corpus.jsonl").write_text("{}\n")
    assert config.scifact_dir() == shared
    downloaded = tmp_path / "project" / "data" / "beir" / "scifact"
    downloaded.mkdir(parents=True)
    (downloaded / "corpus.jsonl").write_text("{}\n")
    assert download_beir("scifact") == downloaded == config.scifact_dir()  # already there: no network
    monkeypatch.setenv("SEARCHKIT_SCIFACT", str(tmp_path / "mine"))
    assert config.scifact_dir() == tmp_path / "mine"
