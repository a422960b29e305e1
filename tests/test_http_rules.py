"""The HTTP rules every route follows (searchkit/serving/http_rules.py): each case is a request and its status and message.

The rules come from middleware and handlers driven by the OpenAPI schema, so a route added later follows them
too: ``test_a_route_added_later_follows_the_rules`` adds one and checks it.
"""

from __future__ import annotations

import json

import pytest
from fastapi import Query
from fastapi.testclient import TestClient
from test_hostile import client, engine, msg  # noqa: F401  (the twelve-document app in six scripts)

from searchkit.serving.app import create_app
from searchkit.serving.cache import LRUCache
from searchkit.serving.http_rules import MAX_ERRORS
from searchkit.serving.schemas import MAX_BATCH

pytestmark = pytest.mark.usefixtures("one_compute_thread")

JSON = {"content-type": "application/json"}


# -- 422 bodies are bounded ------------------------------------------------------------------------


def test_128000_bad_items_make_one_error(client):
    body = b'{"queries": [' + b",".join([b"0"] * 128_000) + b"]}"
    r = client.post("/search/batch", content=body, headers=JSON)
    assert r.status_code == 422 and msg(r) == "got 128000 queries: send 1 to 64 per batch", r.text
    assert len(r.content) < 300


def test_26000_unknown_fields_list_five_and_count_the_rest(client):
    body = json.dumps({"query": "a", **{str(i): 0 for i in range(26_000)}}, separators=(",", ":")).encode()
    r = client.post("/search", content=body, headers=JSON)
    detail = r.json()["detail"]
    assert r.status_code == 422 and len(detail) == MAX_ERRORS + 1, r.text[:500]
    assert detail[0] == {"loc": ["body", "0"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
    assert detail[-1]["msg"] == "and 25995 more errors: fix the ones above and send again"
    assert len(body) > 200_000 and len(r.content) < 1000


def test_long_field_names_are_cut_in_errors(client):
    body = json.dumps({"query": "a", "x" * 100_000: 1}).encode()
    r = client.post("/search", content=body, headers=JSON)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "x" * 49 + "…"] and len(r.content) < 300


def test_every_item_of_a_small_bad_batch_is_named(client):
    r = client.post("/search/batch", json={"queries": [0] * MAX_BATCH})
    detail = r.json()["detail"]
    assert r.status_code == 422 and len(detail) == MAX_ERRORS + 1
    assert detail[0]["loc"] == ["body", "queries", 0] and detail[-1]["msg"].startswith("and 59 more errors")


# -- Content-Type ----------------------------------------------------------------------------------


@pytest.mark.parametrize("headers, expected", [
    ({"content-type": "text/plain"}, "got Content-Type 'text/plain': send the body as JSON with the header "
                                     "Content-Type: application/json"),
    ({"content-type": "application/x-www-form-urlencoded"}, "got Content-Type 'application/x-www-form-urlencoded'"),
    ({}, "got no Content-Type: send the body as JSON with the header Content-Type: application/json"),
    ({"content-type": "application/json; charset=latin-1"}, "got Content-Type 'application/json' with charset 'latin-1'"),
])  # fmt: skip
def test_valid_json_with_the_wrong_content_type_is_415(client, headers, expected):
    r = client.post("/search", content=b'{"query": "read a csv file"}', headers=headers)
    assert r.status_code == 415 and expected in msg(r), r.text


def test_json_with_its_charset_is_fine(client):
    r = client.post("/search", content=b'{"query": "read a csv file"}',
                    headers={"content-type": "Application/JSON; charset=UTF-8"})  # fmt: skip
    assert r.status_code == 200, r.text


def test_a_5000_digit_top_k_is_named(client):
    r = client.post("/search", content=b'{"query": "a", "top_k": ' + b"7" * 5000 + b"}", headers=JSON)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"loc": ["body", "top_k"], "msg": "top_k is a number with 5000 digits: "
                                   "choose a number from 1 to 100", "type": "int_too_long"}]  # fmt: skip


def test_a_body_that_is_not_utf8(client):
    r = client.post("/search", content=b'{"query": "caf\xe9"}', headers=JSON)
    # the app decodes the body itself and names the problem (`A and B or C` used to skip the status check)
    assert r.status_code == 400, r.text
    assert msg(r) == "body is not UTF-8: encode the JSON as UTF-8", r.text


# -- Unicode ---------------------------------------------------------------------------------------


def test_length_is_checked_after_nfkc(client):
    r = client.post("/search", json={"query": "\ufdfa" * 2000})
    assert r.status_code == 422, r.text
    assert msg(r) == "query has 36000 characters after Unicode normalization (NFKC); the limit is 2000: shorten it"
    assert len(r.content) < 300


@pytest.mark.parametrize("query", ["\u200b", "\ufeff\u200b", "\u202e\u202d\u202c", "\u2066\u2067\u2068\u2069", "\u200d",
                                   "\u200c\u200d", "\u200e\u200f"])  # fmt: skip
def test_a_query_with_nothing_visible_is_422(client, query):
    r = client.post("/search", json={"query": query})
    assert r.status_code == 422, r.text
    assert msg(r) in ("query is empty or whitespace only: type some words to search for",
                      "query has no visible character (only joiners or format characters): type some words")  # fmt: skip


def test_bidi_controls_and_zero_width_spaces_are_stripped_not_echoed(client):
    r = client.post("/search", json={"query": "\u202edelete\u200b a\ufeff directory\u2066", "mode": "bm25"})
    assert r.status_code == 200, r.text
    plain = client.post("/search", json={"query": "delete a directory", "mode": "bm25"})
    assert r.json()["query"] == "delete a directory", r.text
    assert [h["id"] for h in r.json()["results"]] == [h["id"] for h in plain.json()["results"]], r.text


def test_joiners_are_kept(client):
    r = client.post("/search", json={"query": "همه\u200cی فایل\u200cها", "mode": "bm25", "top_k": 1})
    assert r.status_code == 200 and r.json()["query"] == "همه\u200cی فایل\u200cها", r.text
    r = client.post("/search", json={"query": "👩\u200d👩\u200d👧", "top_k": 1})
    assert r.status_code == 200 and r.json()["query"] == "👩\u200d👩\u200d👧", r.text


# -- GET is as strict as POST ----------------------------------------------------------------------


@pytest.mark.parametrize("top_k", ["+5", "05", "1_0", " 1 ", "٥", "5.0", "0x5", "-5"])
def test_get_top_k_takes_plain_ascii_digits_only(client, top_k):
    r = client.get("/search", params={"q": "read a csv file", "top_k": top_k})
    assert r.status_code == 422, r.text
    assert msg(r) == f"top_k is {top_k!r}: give a whole number from 1 to 100 in ASCII digits"


def test_get_a_5000_digit_top_k(client):
    r = client.get("/search", params={"q": "a", "top_k": "7" * 5000})
    assert r.status_code == 422 and msg(r) == (
        f"top_k is {'7' * 20!r} (5000 characters): give a whole number from 1 to 100 in ASCII digits"
    ), r.text


@pytest.mark.parametrize("path, expected", [
    ("/search?q=csv&limit=3", "unknown query parameter 'limit': the parameters are q, top_k, mode, prefix"),
    ("/search?q=csv&q=json", "q is given 2 times: give it once"),
    ("/health?verbose=1", "unknown query parameter 'verbose': the parameters are none: this route takes no query"),
])  # fmt: skip
def test_get_rejects_unknown_and_repeated_parameters(client, path, expected):
    r = client.get(path)
    assert r.status_code == 422 and msg(r).startswith(expected), r.text


def test_post_rejects_query_parameters_too(client):
    r = client.post("/search?top_k=3", json={"query": "read a csv file"})
    assert r.status_code == 422 and msg(r).startswith("unknown query parameter 'top_k'"), r.text


@pytest.mark.parametrize("query_string", ["q=%ff%fe", "q=caf%e9", "q%ff=a", "q=%ed%a0%80"])
def test_a_query_string_that_is_not_utf8_is_400(client, query_string):
    r = client.get(f"/search?{query_string}")
    assert r.status_code == 400, r.text
    assert msg(r) == ("the query string is not valid UTF-8 (a %-escape encodes a byte that is not): "
                      "encode text as UTF-8")  # fmt: skip


# -- headers, HEAD, redirects, CORS ----------------------------------------------------------------


@pytest.mark.parametrize("method, path", [("GET", "/health"), ("GET", "/search?q=csv"), ("POST", "/search"),
                                          ("GET", "/nowhere"), ("GET", "/docs"), ("GET", "/openapi.json")])  # fmt: skip
def test_every_answer_has_nosniff_and_cache_control(client, method, path):
    r = client.request(method, path, json={"query": "csv"} if method == "POST" else None)
    assert r.headers["x-content-type-options"] == "nosniff", r.headers
    assert r.headers["cache-control"] == "no-store", r.headers


def test_head_health(client):
    r = client.head("/health")
    get = client.get("/health")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-type"] == "application/json"
    assert r.headers["content-length"] == get.headers["content-length"]


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1:8000"])
def test_docs_slash_redirects_relatively_whatever_the_host(client, host):
    r = client.get("/docs/", headers={"host": host}, follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/docs", r.headers


def test_a_double_slash_never_redirects_to_another_host(client):
    r = client.get("//evil.example/health/", follow_redirects=False)
    assert "evil.example" not in r.headers.get("location", ""), r.headers


def test_cors_is_off_by_default(client):
    r = client.get("/health", headers={"origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in r.headers
    r = client.options("/search", headers={"origin": "http://elsewhere.example", "access-control-request-method": "POST"})
    assert r.status_code == 405 and "access-control-allow-origin" not in r.headers


def test_cors_origins_can_be_allowed(engine):
    app = create_app(engine, cache=LRUCache(10), cors_origins=["http://localhost:3000"])
    with TestClient(app) as c:
        ok = {"origin": "http://localhost:3000", "access-control-request-method": "POST",
              "access-control-request-headers": "content-type"}  # fmt: skip
        r = c.options("/search", headers=ok)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:3000"
        r = c.get("/health", headers={"origin": "http://other.example"})
        assert "access-control-allow-origin" not in r.headers


# -- offline docs ----------------------------------------------------------------------------------


def test_docs_page_loads_its_scripts_from_this_server(client):
    page = client.get("/docs").text
    assert "cdn." not in page and "http://" not in page and "https://" not in page.replace("https://fastapi", "")
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert asset in page
        r = client.get(asset)
        assert r.status_code == 200 and len(r.content) > 100_000 and r.headers["cache-control"] == "public, max-age=86400"


def test_redoc_loads_its_script_from_this_server(client):
    page = client.get("/redoc").text
    assert "/docs/assets/redoc.standalone.js" in page and "cdn." not in page and "fonts.googleapis" not in page
    assert client.get("/docs/assets/redoc.standalone.js").status_code == 200


# -- routes added later ----------------------------------------------------------------------------


def test_a_route_added_later_follows_the_rules(engine):
    app = create_app(engine, cache=LRUCache(10))

    @app.get("/later")
    def later(name: str = Query(...)) -> dict:
        return {"name": name}

    app.openapi_schema = None  # the schema is rebuilt with the new route
    with TestClient(app) as c:
        assert c.get("/later?name=a").json() == {"name": "a"}
        r = c.get("/later?name=a&arm=b")
        assert r.status_code == 422 and msg(r).startswith("unknown query parameter 'arm': the parameters are name")
        assert c.get("/later?name=%ff").status_code == 400
        assert c.head("/later?name=a").status_code == 200
        assert c.get("/later?name=a").headers["x-content-type-options"] == "nosniff"
