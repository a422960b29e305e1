"""Hostile text and files: the one text rule (validation), corpus folders that stay inside, one-line loader errors.

Each named case is a row of docs/README-reliability.md ("Hostile text and files"); the fuzz tests push random
bytes through every loader and through /search and /click.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from searchkit.cli import main
from searchkit.corpus.datasets import Corpus, load_beir
from searchkit.corpus.loaders import load_csv, load_dataset, load_folder, load_jsonl
from searchkit.engine import SearchEngine
from searchkit.errors import DatasetError, InputError, QueryError, SearchIndexError
from searchkit.experiments.live import Experiment
from searchkit.index.manifest import read_manifest
from searchkit.serving.app import create_app
from searchkit.serving.cache import LRUCache
from searchkit.validation import check_text, clean_query, clean_text

FUZZ = int(os.environ.get("SEARCHKIT_FUZZ_EXAMPLES", "100"))
JSON = {"content-type": "application/json"}


def _utf8(*columns: list[str]) -> None:
    """Every string of every column encodes as UTF-8 (what a JSON answer needs)."""
    for column in columns:
        for s in column:
            s.encode("utf-8")


def _one_line_exit_2(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


# -- item 2: text that is not valid UTF-8 ------------------------------------------------------------


def test_the_text_rule_refuses_ids_and_cleans_texts():
    assert clean_text("a\ud800b") == "a\ufffdb" and clean_text("\ud83d\ude00") == "\U0001f600"  # a pair is joined
    assert clean_text("plain") == "plain"
    with pytest.raises(InputError, match=r"id '\\ud800' holds a lone surrogate \(U\+D800 at character 0\)"):
        check_text("\ud800", "id", "fix it")
    c = Corpus(["a"], ["t\udcff"], ["x \ud800 y"])
    assert c.titles == ["t\ufffd"] and c.texts == ["x \ufffd y"]
    with pytest.raises(DatasetError, match=r"document id 1 'b\\udcff' holds a lone surrogate"):
        Corpus(["a", "b\udcff"], ["", ""], ["x", "y"])


def test_a_file_name_that_is_not_utf8_becomes_an_escaped_id(tmp_path):
    root = tmp_path / "notes"
    root.mkdir()
    with open(os.path.join(os.fsencode(root), b"bad\xffname.txt"), "w") as f:
        f.write("night trains to Vienna")
    ds = load_folder(root, quiet=True)
    assert ds.corpus.ids == ["bad\\xffname.txt"]
    _utf8(ds.corpus.ids)


def test_jsonl_lone_surrogates_id_refused_text_cleaned(tmp_path):
    p = tmp_path / "docs.jsonl"
    p.write_text('{"id": "ok", "text": "lone \\udcff surrogate"}\n{"id": "\\ud800", "text": "x"}\n')
    with pytest.raises(DatasetError, match=r"docs\.jsonl:2: id '\\ud800' holds a lone surrogate .*leave id out"):
        load_jsonl(p)
    p.write_text('{"id": "ok", "title": "t \\ud800", "text": "lone \\udcff surrogate"}\n')
    c = load_jsonl(p).corpus
    assert c.texts == ["lone \ufffd surrogate"] and c.titles == ["t \ufffd"]


def test_search_answers_documents_with_bad_names_and_texts(tmp_path, embedder):
    root = tmp_path / "notes"
    root.mkdir()
    with open(os.path.join(os.fsencode(root), b"bad\xffname.txt"), "w") as f:
        f.write("night trains to Vienna")
    (root / "ferns.txt").write_text("ferns like shade \udcff and water", errors="surrogateescape")
    (root / "lone.jsonl").write_text('{"text": "x"}')  # a .jsonl in a folder is a text file like the others
    engine = SearchEngine.build(load_folder(root, quiet=True).corpus, embedder, progress=False)
    with TestClient(create_app(engine, cache=LRUCache(10), micro_batch=False), raise_server_exceptions=False) as c:
        for mode in ("bm25", "dense", "hybrid"):
            r = c.post("/search", json={"query": "trains to Vienna", "mode": mode, "top_k": 3})
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["id"] == "bad\\xffname.txt"


# -- item 3: corpus folders follow links only inside; special files never read ---------------------------


def _linked(root: Path, outside: Path) -> Path:
    root.mkdir()
    (root / "mine.txt").write_text("my own notes about trains")
    (root / "sub").mkdir()
    (root / "sub" / "deep.txt").write_text("deeper notes")
    outside.write_text("root:x:0:0:root:/root:/bin/bash")
    (root / "passwd.txt").symlink_to(outside)
    (root / "inside.txt").symlink_to(root / "sub" / "deep.txt")
    (root / "status.txt").symlink_to("/proc/self/status")
    (root / "zero.txt").symlink_to("/dev/zero")
    (root / "loop").symlink_to(root)  # a folder link back up: walked once
    os.mkfifo(root / "pipe.txt")  # opening it to read would wait for a writer forever
    return root


def test_links_out_of_the_folder_and_special_files_are_skipped_and_said(tmp_path, capsys):
    root = _linked(tmp_path / "notes", tmp_path / "secret")
    ds = load_folder(root)
    assert ds.corpus.ids == ["inside.txt", "mine.txt", "sub/deep.txt"]
    assert "root:x" not in " ".join(ds.corpus.texts)
    err = capsys.readouterr().err
    assert "1 linked from outside the folder (--follow-links reads them)" in err, err
    assert "3 special (pipe, device, socket, /proc or /sys file)" in err and "1 repeated folder" in err, err


def test_follow_links_reads_outside_files_but_never_special_ones(tmp_path, capsys):
    root = _linked(tmp_path / "notes", tmp_path / "secret")
    ds = load_dataset(str(root), follow_links=True)
    assert ds.corpus.ids == ["inside.txt", "mine.txt", "passwd.txt", "sub/deep.txt"]
    assert "3 special" in capsys.readouterr().err
    with pytest.raises(DatasetError, match=r"a kernel folder"):
        load_folder("/proc/self")


def test_cli_names_follow_links(tmp_path, capsys, monkeypatch):
    import searchkit.cli

    root = _linked(tmp_path / "notes", tmp_path / "secret")
    seen = []

    def engine(args):
        seen.append(searchkit.cli._corpus(args))
        raise InputError("loaded")

    monkeypatch.setattr(searchkit.cli, "_engine", engine)
    assert main(["search", "--corpus", str(root), "--follow-links", "trains"]) == 2
    assert main(["search", "--corpus", str(root), "trains"]) == 2
    assert "passwd.txt" in seen[0].ids and "passwd.txt" not in seen[1].ids


# -- item 5: a session with a lone surrogate ----------------------------------------------------------


@pytest.fixture(scope="module")
def experiment_client(small_engine, tmp_path_factory):
    exp = Experiment("control=bm25,treatment=dense", "interleave", tmp_path_factory.mktemp("exp") / "events.db")
    with TestClient(create_app(small_engine, cache=LRUCache(100), micro_batch=False, experiment=exp),
                    raise_server_exceptions=False) as c:  # fmt: skip
        yield c
    exp.close()


def test_a_session_with_a_lone_surrogate_is_a_422(experiment_client):
    body = json.dumps({"query": "x y", "session": "\udcff"})  # ASCII: the surrogate is a \udcff escape
    r = experiment_client.post("/search", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["msg"].startswith("session '\\udcff' holds a lone surrogate (U+DCFF"), r.text


# -- item 6: one line instead of a traceback ----------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("docs.jsonl", b'{"text": "ok"}\n{"text": "caf\xe9"}\n',
         r"docs.jsonl:2: not UTF-8 (byte 0xe9 at byte offset 28): save the file as UTF-8"),
        ("docs.csv", b"id,text\n1,caf\xe9\n", r"docs.csv:2: not UTF-8 (byte 0xe9 at byte offset 13): save the file"),
        ("docs.jsonl", b'{"text": "a", "n": ' + b"9" * 5000 + b"}\n",
         "docs.jsonl:1: a number with 5000 digits (at most 4300): fix or remove that line"),
        ("docs.jsonl", b'{"text": "a", "n": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
         "docs.jsonl:1: JSON nested too deeply (the parser stops at about 1,000 levels): fix or remove that line"),
        ("docs.csv", b'id,text\n1,"unterminated\n2,second row\n3,third\n',
         'docs.csv:2: the row starting on line 2 has a quoting error (unexpected end of data): close its quote'),
    ],
)
def test_build_on_a_bad_file_is_one_line(tmp_path, capsys, name, content, message):
    p = tmp_path / name
    p.write_bytes(content)
    err = _one_line_exit_2(["build", "--corpus", str(p), "--out", str(tmp_path / "index")], capsys)
    assert message in err, err


def test_a_folder_1000_levels_deep_is_bounded(tmp_path, capsys):
    root, here = tmp_path / "deep", os.getcwd()
    root.mkdir()
    try:
        os.chdir(root)  # relative steps: the full path of the last folder is ~2,000 characters
        for _ in range(1000):
            os.mkdir("d")
            os.chdir("d")
        Path("x.txt").write_text("deep down")
        os.chdir(here)
        err = _one_line_exit_2(["build", "--corpus", str(root), "--out", str(tmp_path / "index")], capsys)
        assert "no readable text files (1 skipped: 1 deeper than 64 folders)" in err, err
    finally:  # shutil.rmtree (and so pytest's clean-up) recurses once per level: remove the chain here
        os.chdir(root)
        depth = 0
        while os.path.isdir("d"):
            os.chdir("d")
            depth += 1
        if os.path.exists("x.txt"):
            os.unlink("x.txt")
        for _ in range(depth):
            os.chdir("..")
            os.rmdir("d")
        os.chdir(here)


def test_a_manifest_of_100000_brackets_is_one_line(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text("[" * 100_000)
    with pytest.raises(SearchIndexError, match="is JSON nested too deeply: the index is damaged"):
        read_manifest(tmp_path)
    err = _one_line_exit_2(["serve", "--index", str(tmp_path)], capsys)
    assert "manifest.json is JSON nested too deeply" in err, err


def test_beir_files_follow_the_same_rules(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "q"}\n')
    (tmp_path / "corpus.jsonl").write_bytes(b'{"_id": "d1", "text": "caf\xe9"}\n')
    with pytest.raises(DatasetError, match=r"corpus\.jsonl:1: not UTF-8 \(byte 0xe9 at byte offset 26\)"):
        load_beir(tmp_path)
    (tmp_path / "corpus.jsonl").write_text('{"text": "no id"}\n')
    with pytest.raises(DatasetError, match=r"corpus\.jsonl:1: expected a JSON object with an \"_id\""):
        load_beir(tmp_path)


# -- item 7: every flag checked before anything loads ---------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["build", "--out", "X", "--max-memory", "2GB", "--min-recall", "1.5"],
         "error: --min-recall 1.5: give a recall@10 target above 0 and at most 1, e.g. 0.95"),
        (["build", "--out", "X", "--max-memory", "2GB", "--max-latency-ms", "0"],
         "error: --max-latency-ms 0.0: give a p99 target in milliseconds, e.g. 5"),
        (["build", "--out", "X", "--shards", "0"], "error: --shards 0: give a whole number of at least 1"),
        (["build", "--out", "X", "--max-file-size", "lots"], "error: --max-file-size 'lots' is not a size"),
        (["search", "--mode", "fuzzy", "x"], "error: --mode fuzzy: choose one of dense, bm25, hybrid"),
        (["search", "x" * 2001], "error: query 1 has 2001 characters; the limit is 2000: shorten it"),
        (["search", "ok", "\u200d"], "error: query 2 has no visible character (only joiners or format characters)"),
        (["serve", "--port", "70000"], "error: --port 70000: give a TCP port from 0 to 65535, e.g. 8000"),
        (["serve", "--threads", "0"], "error: --threads 0: give a whole number of at least 1"),
        (["tune-fusion", "--folds", "1"], "error: --folds 1: give a whole number of at least 2"),
    ],
)
def test_bad_flags_fail_before_the_corpus_or_model_loads(argv, message, monkeypatch, capsys):
    import searchkit.cli
    import searchkit.corpus.loaders

    def load(*_, **__):
        raise AssertionError("the corpus or model was loaded before the flags were checked")

    monkeypatch.setattr(searchkit.cli, "_engine", load)
    monkeypatch.setattr(searchkit.corpus.loaders, "load_dataset", load)
    err = _one_line_exit_2(argv, capsys)
    assert err.startswith(message), err


# -- issue 24: one valid-query rule -----------------------------------------------------------------


def test_one_query_rule_for_http_and_cli(small_engine, capsys):
    with pytest.raises(QueryError) as e:
        clean_query(" \t ")
    assert e.value.code == "query_empty"
    with TestClient(create_app(small_engine, cache=LRUCache(10), micro_batch=False)) as c:
        for bad in (" \t ", "x" * 2001, "\u200d", "\ufdfa" * 200):
            r = c.post("/search", json={"query": bad})
            assert r.status_code == 422, r.text
            with pytest.raises(QueryError) as e:
                clean_query(bad)
            assert r.json()["detail"][0]["msg"] == str(e.value), r.text
            assert main(["search", bad]) == 2
            assert capsys.readouterr().err.strip() == f"error: {str(e.value).replace('query', 'query 1', 1)}"


# -- fuzz: random bytes through every loader and route -----------------------------------------------


_NAMES = st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b".."))
_LOADED = (DatasetError, SearchIndexError)
# text with lone surrogates mixed in (hypothesis' own text strategy leaves them out)
_TEXT = st.lists(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=40).map("".join)


@settings(max_examples=FUZZ, deadline=None, derandomize=True)
@given(name=_NAMES, content=st.binary(max_size=300), line=_TEXT)
def test_fuzz_every_loader(name, content, line):
    with tempfile.TemporaryDirectory() as tmp:
        _fuzz_loaders(Path(tmp), name, content, line)


def _fuzz_loaders(root: Path, name: bytes, content: bytes, line: str) -> None:
    folder = root / "folder"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), name), "wb") as f:
        f.write(content)
    record = json.dumps({"id": line, "title": line, "text": line + " x"})  # ASCII: lone surrogates as \u escapes
    (root / "docs.jsonl").write_bytes(content + b"\n" + record.encode())
    (root / "docs.csv").write_bytes(b"id,text\n" + content)
    (root / "beir").mkdir()
    (root / "beir" / "qrels").mkdir()
    (root / "beir" / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
    (root / "beir" / "queries.jsonl").write_text("")
    (root / "beir" / "corpus.jsonl").write_bytes(record.encode() + b"\n" + content)
    (root / "index").mkdir()
    (root / "index" / "manifest.json").write_bytes(content)
    readers = [lambda: load_folder(folder, quiet=True), lambda: load_jsonl(root / "docs.jsonl"),
               lambda: load_csv(root / "docs.csv"), lambda: load_beir(root / "beir"),
               lambda: read_manifest(root / "index")]  # fmt: skip
    for read in readers:
        try:
            got = read()
        except _LOADED as e:
            assert len(str(e).splitlines()) == 1, e
            continue
        if hasattr(got, "corpus"):
            _utf8(got.corpus.ids, got.corpus.titles, got.corpus.texts)
    (root / "one.jsonl").write_text(record + "\n")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in line):  # an id must come back exactly: refused
        with pytest.raises(DatasetError, match="holds a lone surrogate"):
            load_jsonl(root / "one.jsonl")
    elif line.strip():  # title and text are cleaned and kept
        c = load_jsonl(root / "one.jsonl").corpus
        assert c.ids == [line] and c.texts == [clean_text(line + " x").strip()]


@settings(max_examples=FUZZ, deadline=None, derandomize=True)
@given(body=st.binary(max_size=200), text=_TEXT, field=st.sampled_from(["query", "session", "prefix"]))
def test_fuzz_search_and_click(experiment_client, body, text, field):
    c = experiment_client
    sent = [c.post("/search", content=body, headers=JSON), c.post("/click", content=body, headers=JSON)]
    fields = {"query": "read a file", field: text} if field != "query" else {"query": text}
    sent.append(c.post("/search", content=json.dumps(fields), headers=JSON))  # ASCII JSON: surrogates as escapes
    sent.append(c.get("/search?q=" + quote(text.encode("utf-8", "surrogatepass"))))  # bytes a browser may send
    answer = sent[2].json() if sent[2].status_code == 200 else None
    impression = answer["impression_id"] if answer else "f" * 32
    shown = answer["results"][0]["id"] if answer and answer["results"] else "os.remove"
    sent.append(c.post("/click", content=json.dumps({"impression_id": impression, "id": text or shown}), headers=JSON))
    for r in sent:
        assert r.status_code < 500, (r.request.url, r.text)
        r.content.decode("utf-8")
