"""Hostile HTTP input: schema-driven fuzzing (schemathesis) plus named nasty cases, each a quick, clear 4xx.

A small multilingual corpus keeps it fast. The fuzz run is bounded and derandomized so CI is repeatable;
``SEARCHKIT_FUZZ_EXAMPLES=1000 python -m pytest tests/test_hostile.py -k fuzz`` runs a longer one.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import time

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from searchkit.corpus.datasets import Corpus
from searchkit.engine import SearchEngine
from searchkit.serving.app import MAX_BODY_BYTES, MAX_QUERY_CHARS, create_app
from searchkit.serving.cache import LRUCache
from searchkit.serving.server import serve_in_background

FUZZ_EXAMPLES = int(os.environ.get("SEARCHKIT_FUZZ_EXAMPLES", "100"))
QUICK_S = 10.0  # a rejected request answers within this: normally milliseconds; a shared CI box can stall for
# seconds, and what the bound catches (reading or parsing a hostile body in full, or hanging on it) takes far longer

OTHER_SCRIPTS = {
    "fr.rmdir": "Supprimer un répertoire vide et libérer de l'espace.",
    "de.unlink": "Eine Datei löschen und den Speicherplatz freigeben.",
    "zh.rmtree": "删除 目录 以及 其中 的 所有 文件",
    "ja.read": "ファイル を 読み込む 方法",
    "ar.rmdir": "حذف المجلد وجميع الملفات الموجودة فيه",
    "he.unlink": "מחיקת הקובץ מהדיסק",
    "emoji.party": "Celebrate the release 🎉 with cake 🍰 and a party.",
}


pytestmark = pytest.mark.usefixtures("one_compute_thread")


@pytest.fixture(scope="module")
def engine(small_docs, embedder):
    """A seventeen-document engine (dense + BM25) in six scripts: the shared ten plus seven in other scripts."""
    docs = {**small_docs, **OTHER_SCRIPTS}
    return SearchEngine.build(Corpus(list(docs), list(docs), list(docs.values())), embedder, progress=False)


@pytest.fixture(scope="module")
def client(engine):
    with TestClient(create_app(engine, cache=LRUCache(1000)), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def server(engine):
    """The app behind a real uvicorn on loopback (limits of the HTTP layer apply)."""
    srv = serve_in_background(engine, cache=LRUCache(1000))
    yield srv
    srv.stop()


def msg(r) -> str:
    """The first message of an error response."""
    detail = r.json()["detail"]
    return detail[0]["msg"] if isinstance(detail, list) else detail


def post_raw(c, body: bytes, path: str = "/search"):
    t0 = time.perf_counter()
    r = c.post(path, content=body, headers={"content-type": "application/json"})
    return r, time.perf_counter() - t0


# -- property-based fuzzing from the OpenAPI schema ------------------------------------------------


@pytest.fixture(scope="module")
def api_schema(engine):
    """The app's own OpenAPI schema, loaded by schemathesis over ASGI (no sockets)."""
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(engine, cache=LRUCache(1000)))


OPERATIONS = [("POST", "/search"), ("GET", "/search"), ("POST", "/search/batch"), ("GET", "/health"),
              ("POST", "/click"), ("GET", "/experiment")]  # the experiment routes answer 404 without one
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_fuzz_covers_every_operation(api_schema):
    ops = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert ops == set(OPERATIONS)


@pytest.mark.parametrize("generation", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("method,path", OPERATIONS)
def test_fuzz_no_5xx_and_responses_match_the_schema(api_schema, method, path, generation):
    """Requests generated from the schema, valid then schema-violating: no 5xx; every answer documented and valid."""
    if generation is GenerationMode.NEGATIVE and path in ("/health", "/experiment"):
        pytest.skip(f"{path} takes no input: nothing to make invalid")
    op = api_schema[path][method]
    statuses: list[int] = []
    accepted: list = []

    @given(case=op.as_strategy(generation_mode=generation))
    @settings(
        max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def run(case) -> None:
        status = case.call_and_validate(checks=CHECKS).status_code
        statuses.append(status)
        if status < 400:
            accepted.append((case.query, case.body))

    run()
    if generation is GenerationMode.NEGATIVE and method == "POST":  # (in a URL, {} or [x] may serialize to valid text)
        assert statuses and all(400 <= s < 500 for s in statuses), accepted[:5]


# -- named hostile cases ---------------------------------------------------------------------------


def test_ten_megabyte_body_is_refused_quickly(client, server):
    big = b'{"query": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    r, took = post_raw(client, big)
    assert r.status_code == 413, r.text
    assert f"request body is over {MAX_BODY_BYTES} bytes: send less" in msg(r)
    assert took < QUICK_S
    with httpx.Client(base_url=server.url, timeout=30) as http:  # over a real socket too
        t0 = time.perf_counter()
        r = http.post("/search", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert time.perf_counter() - t0 < 2 * QUICK_S  # 10 MB sent over loopback, then refused
        assert http.get("/health").status_code == 200  # the server is fine afterwards


@pytest.mark.parametrize("depth", [1_000, 40_000])
def test_deeply_nested_json_is_a_clear_4xx(client, depth):
    body = ('{"query":' + '{"a":' * depth + "1" + "}" * depth + "}").encode()
    assert len(body) < MAX_BODY_BYTES
    r, took = post_raw(client, body)
    assert r.status_code in (400, 422), r.text
    assert took < QUICK_S
    if r.status_code == 422:  # parsed, but not a string
        assert msg(r) == "Input should be a valid string" and r.json()["detail"][0]["loc"] == ["body", "query"]
    else:  # too deep for the JSON parser
        assert "body is nested too deeply for the JSON parser: send a flat JSON object" in msg(r)
    assert len(r.text) < 1000


def test_deeply_nested_array_is_a_clear_400(client):
    r, took = post_raw(client, b"[" * 300_000)  # over the body limit: 413 before any parsing
    assert r.status_code == 413 and took < QUICK_S
    r, took = post_raw(client, b"[" * 100_000)
    assert r.status_code == 400, r.text
    assert "body is nested too deeply for the JSON parser" in msg(r) and took < QUICK_S


def test_hundred_thousand_character_query(client, server):
    q = "délète " * (100_000 // 7) + "x" * (100_000 % 7)
    assert len(q) == 100_000
    r, took = post_raw(client, json.dumps({"query": q}).encode())
    assert r.status_code == 422, r.text
    assert msg(r) == f"query has 100000 characters; the limit is {MAX_QUERY_CHARS}: shorten it"
    assert took < QUICK_S and len(r.text) < 1000  # the query is not echoed back
    r = client.post("/search/batch", json={"queries": ["ok", q]})
    assert r.status_code == 422 and "queries[1]: query has 100000 characters" in msg(r)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)  # httpx refuses such URLs itself
    t0 = time.perf_counter()
    conn.request("GET", "/search?q=" + "x" * 100_000)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert 400 <= resp.status < 500 and time.perf_counter() - t0 < 5 * QUICK_S, body  # h11 passes it: 422
    if resp.status == 422:
        assert b"query has 100000 characters" in body
    with httpx.Client(base_url=server.url, timeout=30) as hc:
        assert hc.get("/health").status_code == 200
        r = hc.get("/search", params={"q": "x" * 2001})
        assert r.status_code == 422 and "query has 2001 characters" in msg(r)


NUMBERS_FOR_STRINGS = [
    ({"query": 42}, ["body", "query"], "Input should be a valid string"),
    ({"query": 1e308}, ["body", "query"], "Input should be a valid string"),
    ({"query": -0.0}, ["body", "query"], "Input should be a valid string"),
    ({"query": True}, ["body", "query"], "Input should be a valid string"),
    ({"query": "a", "mode": 2}, ["body", "mode"], "Input should be a valid string"),
    ({"query": "a", "prefix": 0}, ["body", "prefix"], "Input should be a valid string"),
    ({"query": "a", "top_k": "7"}, ["body", "top_k"], "Input should be a valid integer"),
    ({"query": "a", "top_k": 7.0}, ["body", "top_k"], "Input should be a valid integer"),
    ({"query": "a", "top_k": 10**40}, ["body", "top_k"], "top_k is a number with 41 digits: choose a number from 1 to 100"),
]


@pytest.mark.parametrize("body,loc,expected", NUMBERS_FOR_STRINGS, ids=list(map(str, range(len(NUMBERS_FOR_STRINGS)))))
def test_numbers_where_strings_belong_and_back(client, body, loc, expected):
    r, took = post_raw(client, json.dumps(body).encode())
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc and expected in msg(r), r.text
    assert took < QUICK_S


NON_FINITE = [b'{"query": NaN}', b'{"query": "a", "top_k": Infinity}', b'{"query": "a", "top_k": 1e400}']


@pytest.mark.parametrize("raw", NON_FINITE)
def test_non_finite_numbers_are_rejected(client, raw):
    r, _ = post_raw(client, raw)
    assert r.status_code == 422, r.text
    assert "Input should be a valid" in msg(r)


def test_batch_with_numbers_is_rejected(client):
    r = client.post("/search/batch", json={"queries": ["a", 3]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "queries", 1]


CONTROL = [
    ("delete\x00the\x01directory\x1ftree", "delete the directory tree"),
    ("\x7fremove\x9f a file\r\n", "remove a file"),
    ("tab\tand\vform\x0cfeed", "tab and form feed"),
    ("ｆｕｌｌ　width  text", "full width text"),  # NFKC: full-width letters and the ideographic space
]


@pytest.mark.parametrize("raw,clean", CONTROL)
def test_control_characters_are_cleaned_up(client, raw, clean):
    """Documented clean-up: control characters become spaces, NFKC, whitespace collapsed; the result is echoed."""
    r = client.post("/search", json={"query": raw, "top_k": 2})
    assert r.status_code == 200, r.text
    assert r.json()["query"] == clean
    assert len(r.json()["results"]) == 2


@pytest.mark.parametrize("raw", ["\x00", "\x00\x01\x02 \x1b", "\u3000\t", "\ud800"])
def test_only_control_characters_is_a_clear_422(client, raw):
    r, took = post_raw(client, json.dumps({"query": raw}).encode())
    assert r.status_code == 422, r.text
    assert msg(r) == "query is empty or whitespace only: type some words to search for"
    assert took < QUICK_S


def test_lone_surrogates_never_break_the_response(client):
    r, _ = post_raw(client, b'{"query": "remove\\ud800 a file"}')
    assert r.status_code == 200, r.text
    assert r.json()["query"] == "remove a file"
    bad = (b'{"query": "a", "mode": "\\udfff"}', b'{"query": "a", "\\ud800": 1}', b'{"query": "a", "top_k": "\\ud800"}')
    for raw in bad:
        r, _ = post_raw(client, raw)
        assert r.status_code == 422, r.text
        r.json()  # valid UTF-8 JSON
    r, _ = post_raw(client, b'{"query": "a", "prefix": "\\ud800"}')
    assert r.status_code == 200 and r.json()["results"] == []


def test_nul_and_bad_bytes_in_the_url(client):
    r = client.get("/search?q=%00%01")
    assert r.status_code == 422 and "query is empty" in msg(r)
    r = client.get("/search?q=read%00csv&top_k=2&mode=bm25")
    assert r.status_code == 200 and r.json()["query"] == "read csv"
    r = client.get("/search?q=abc&top_k=%00")
    assert r.status_code == 422 and "top_k is '\\x00': give a whole number from 1 to 100" in msg(r)
    r = client.get("/search?q=%FF%FE%ED%A0%80files")  # not UTF-8: refused, as POST refuses a body that is not
    assert r.status_code == 400 and msg(r).startswith("the query string is not valid UTF-8"), r.text
    r = client.get("/search", params={"q": "abc", "top_k": "9" * 5000})
    assert r.status_code == 422 and "(5000 characters): give a whole number from 1 to 100" in msg(r) and len(r.text) < 1000


def test_wrong_content_type_and_empty_body(client):
    r = client.post("/search", content=b"query=a", headers={"content-type": "application/x-www-form-urlencoded"})
    assert 400 <= r.status_code < 500, r.text
    r = client.post("/search", content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    r = client.post("/search", content=b"\xff\xfe\x00{", headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text


# -- other scripts are ordinary queries ------------------------------------------------------------

SCRIPTS = [
    ("répertoire vide", "bm25", "fr.rmdir"),
    ("re\u0301pertoire", "bm25", "fr.rmdir"),  # decomposed accent, composed by NFKC
    ("Datei löschen", "bm25", "de.unlink"),
    ("删除 目录", "bm25", "zh.rmtree"),
    ("読み込む", "bm25", "ja.read"),
    ("حذف المجلد", "bm25", "ar.rmdir"),
    ("מחיקת הקובץ", "bm25", "he.unlink"),
    ("\u202eحذف المجلد\u202c", "bm25", "ar.rmdir"),  # with bidi override marks
    ("delete a directory tree 🗑️", "dense", "shutil.rmtree"),
    ("release party 🎉🍰", "dense", "emoji.party"),
    ("删除 目录", "hybrid", "zh.rmtree"),
    ("Datei löschen", "hybrid", "de.unlink"),
]


@pytest.mark.parametrize("query,mode,expected", SCRIPTS, ids=[f"{m}-{i}" for i, (_, m, _) in enumerate(SCRIPTS)])
def test_emoji_accents_rtl_and_cjk_are_ordinary_queries(client, query, mode, expected):
    r = client.post("/search", json={"query": query, "top_k": 3, "mode": mode})
    assert r.status_code == 200, r.text
    hits = r.json()["results"]
    assert hits and hits[0]["id"] == expected, hits
    assert all(math.isfinite(h["score"]) for h in hits)
    r = client.get("/search", params={"q": query, "top_k": "3", "mode": mode})
    assert r.status_code == 200 and r.json()["results"][0]["id"] == expected


@pytest.mark.parametrize("query", ["🎉", "😀😃😄", "👩🏽‍💻", "ß", "ℌ𝔢𝔩𝔩𝔬", "\u200f\u200e", "ab\u0301\u0302\u0303\u0304"])
def test_odd_but_valid_text_answers_in_every_mode(client, query):
    for mode in ("dense", "bm25", "hybrid"):
        r = client.post("/search", json={"query": query, "top_k": 3, "mode": mode})
        if r.status_code == 422:  # only format characters: nothing left after the clean-up
            assert "query has no visible character" in msg(r), r.text
            continue
        assert r.status_code == 200, r.text
        assert all(math.isfinite(h["score"]) for h in r.json()["results"])
