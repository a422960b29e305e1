"""The search page at /, driven in a real headless Chromium (Debian's package) with Playwright.

One browser and one app server (the Python docs plus three hostile documents) serve every test here; the
click test adds a second server over the same engine, running an online experiment.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest

from searchkit.serving.page import CHROMIUM, PAGE_CSP

if not Path(CHROMIUM).exists():
    _reason = f"browser tests need Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(_reason, pytrace=False)
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from searchkit.corpus.datasets import Corpus  # noqa: E402
from searchkit.engine import SearchEngine  # noqa: E402
from searchkit.experiments.live import Experiment  # noqa: E402
from searchkit.index.vector import VectorIndex  # noqa: E402
from searchkit.relevance.lexical import BM25  # noqa: E402
from searchkit.serving.app import create_app  # noqa: E402
from searchkit.serving.cache import LRUCache  # noqa: E402
from searchkit.serving.page import launch_chromium  # noqa: E402
from searchkit.serving.server import BackgroundServer  # noqa: E402

expect.set_options(timeout=20_000)  # waits, not limits: a shared 2-core machine can take seconds to answer
SEARCH_API = re.compile(r"/search(\?|$)")  # the page's API calls (POST /search), not the page
RMTREE_QUERY = "delete a folder and everything inside it"
# Each would set window.pwned if the page ever treated document text as markup.
HOSTILE = Corpus(
    ids=["zz.hostile<img src=x onerror=\"window.pwned='id'\">", "zz.hostile.title", "zz.hostile.link"],
    titles=[
        "quokka xylophone",
        "<script>window.pwned='title'</script><img src=x onerror=\"window.pwned='title-img'\"> quokka",
        "<a href=\"javascript:window.pwned='href'\">quokka xylophone link</a>",
    ],
    texts=[
        "<img src=x onerror=\"window.pwned='text'\"> quokka xylophone " + "unbroken" * 40,
        "<svg onload=\"window.pwned='svg'\"></svg> quokka <iframe src=\"javascript:window.pwned='iframe'\"></iframe>",
        "[quokka](javascript:window.pwned='md') <b onmouseover=\"window.pwned='hover'\">xylophone</b>",
    ],
)


def engine_with(corpus: Corpus, extra: Corpus, embedder) -> SearchEngine:
    """Return an exact engine with BM25 over ``corpus`` plus ``extra`` (the corpus vectors come from the cache)."""
    passages = None if corpus.passages is None else corpus.passages + extra.embedding_texts()
    both = Corpus(corpus.ids + extra.ids, corpus.titles + extra.titles, corpus.texts + extra.texts, passages)
    xb = np.vstack([embedder.encode_cached(corpus.embedding_texts()), embedder.encode(extra.embedding_texts())])
    index = VectorIndex.build(both.ids, xb, model_id=embedder.model_id)
    return SearchEngine(both, embedder, index, BM25(both.ids, both.full_texts()))


@pytest.fixture(scope="module")
def engine(pydocs, embedder):
    """An exact engine with BM25 over the Python docs and the hostile documents."""
    return engine_with(pydocs.corpus, HOSTILE, embedder)


@pytest.fixture(scope="module")
def server(engine, one_compute_thread):
    """The app every test shares, on a free loopback port."""
    with BackgroundServer(create_app(engine, cache=LRUCache(1000))) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for every test of this module."""
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser, server) -> Page:
    """A fresh desktop-sized tab (its own history) whose relative URLs go to the test server."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1100, "height": 900})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    yield tab
    context.close()


def ids(page: Page) -> list[str]:
    """The document ids of the results shown."""
    return page.locator("#hits .doc-id").all_inner_texts()


def shows_results_for(page: Page, query: str) -> None:
    """Wait until the answer for ``query`` is shown (not only its loading state)."""
    expect(page.locator("#status")).to_contain_text(f"results for “{query}”")


def url_params(page: Page) -> dict[str, str]:
    """The page URL's query parameters."""
    return {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}


def test_type_and_enter_shows_ranked_results_with_timings(page: Page):
    page.goto("/")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.type(RMTREE_QUERY)
    page.keyboard.press("Enter")
    first = page.locator("#hits .hit").first
    expect(first.locator(".doc-id")).to_have_text("shutil.rmtree")
    expect(first.locator(".rank")).to_have_text("1")
    expect(first.locator(".title")).to_contain_text("shutil.rmtree(path")
    assert 0 < float(first.locator(".score").inner_text()) <= 1
    assert "delete" in [m.lower() for m in first.locator(".snippet mark").all_inner_texts()]
    expect(page.locator("#hits .hit")).to_have_count(10)
    expect(page.locator("#status")).to_have_text(f"10 results for “{RMTREE_QUERY}” (dense)")
    expect(page.locator("#status")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#timings")).to_have_text(
        re.compile(r"^embed \d+\.\d ms · search \d+\.\d ms · total \d+\.\d ms · query vector not cached$")
    )
    assert url_params(page) == {"q": RMTREE_QUERY, "mode": "dense", "k": "10"}
    page.keyboard.press("Enter")  # the same search again: the whole answer now comes from the result cache
    expect(page.locator("#timings")).to_contain_text("answer from the result cache")
    page.goto(f"/?q={RMTREE_QUERY}&mode=dense&k=17")  # another k (no other test asks 17): searched,
    expect(page.locator("#timings")).to_contain_text("query vector cached")  # with the query vector from the cache


def test_switching_mode_changes_the_answer(page: Page):
    page.goto(f"/?q={RMTREE_QUERY}&mode=dense&k=10")
    expect(page.locator("#hits .doc-id").first).to_have_text("shutil.rmtree")
    dense = ids(page)
    page.select_option("#mode", "bm25")
    expect(page.locator("#status")).to_contain_text("(bm25)")
    bm25 = ids(page)
    assert bm25 != dense and "shutil.rmtree" not in bm25
    assert url_params(page)["mode"] == "bm25"
    page.fill("#k", "3")
    page.press("#k", "Enter")
    expect(page.locator("#hits .hit")).to_have_count(3)
    assert ids(page) == bm25[:3] and url_params(page)["k"] == "3"


def test_bad_input_shows_the_api_message(page: Page, server):
    page.goto("/")
    long_query = "words " * 400  # 2,400 characters; the API allows 2,000
    page.fill("#q", long_query)
    page.press("#q", "Enter")
    api = httpx.get(f"{server.url}/search", params={"q": long_query.strip()})
    assert api.status_code == 422, api.text
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(api.json()["detail"][0]["msg"])
    expect(alert).to_contain_text("the limit is 2000: shorten it")
    expect(page.locator("#hits .hit")).to_have_count(0)
    page.goto("/?q=json&k=500")
    expect(page.get_by_role("alert")).to_have_text("top_k is 500: choose a number from 1 to 100")


def test_loading_then_empty_result_states(page: Page):
    held = []
    page.route(SEARCH_API, lambda route: held.append(route))  # hold the answer back to see the loading state
    page.goto("/?q=zzqxv+nonesuchword&mode=bm25")
    expect(page.locator("#status")).to_have_text("Searching for “zzqxv nonesuchword”…")
    expect(page.locator("#status")).to_have_class(re.compile(r"\bloading\b"))
    expect(page.locator("#results")).to_have_attribute("aria-busy", "true")
    for _ in range(500):  # the route handler runs while Playwright is being waited on
        if held:
            break
        page.wait_for_timeout(20)
    held[0].continue_()
    expect(page.locator("#status")).to_have_text(re.compile(r"^No results for “zzqxv nonesuchword” \(bm25\)"))
    expect(page.locator("#results")).not_to_have_attribute("aria-busy", "true")
    expect(page.get_by_role("alert")).to_be_hidden()


def test_hostile_documents_are_shown_as_text_and_run_nothing(page: Page):
    hostile_query = "quokka xylophone <img src=x onerror=\"window.pwned='query'\"> <script>window.pwned=1</script>"
    page.goto("/?" + str(httpx.QueryParams({"q": hostile_query, "mode": "bm25", "k": "3"})))
    expect(page.locator("#hits .hit")).to_have_count(3)
    for button in page.locator("#hits .title").all():
        button.click()  # open each: the full text is shown too
    expect(page.locator("#hits .snippet.full")).to_have_count(3)
    page.locator("#hits .title").first.hover()
    page.locator("#hits .snippet").last.hover()
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.pwned") is None
    assert page.locator("#hits img, #hits script, #hits svg, #hits iframe, #hits a, #hits b").count() == 0
    assert page.locator("#hits mark").count() > 0  # the query's words are highlighted, as text
    shown = dict(zip(ids(page), page.locator("#hits .title").all_inner_texts()))
    assert shown == dict(zip(HOSTILE.ids, HOSTILE.titles))
    expect(page.locator("#status")).to_contain_text(hostile_query)


def test_bidi_controls_in_titles_are_shown_and_isolated(page: Page):
    rlo = "\u202e"
    answer = {"query": "exe", "mode": "bm25", "cached": False, "result_cached": False,
              "timings_ms": {"embed": 0.0, "search": 0.0, "total": 0.0},
              "results": [{"id": f"evil{rlo}gnp.exe", "score": 0.5, "title": f"open evil{rlo}gnp.exe", "text": f"{rlo}txet"}]}
    page.route(SEARCH_API, lambda route: route.fulfill(json=answer))
    page.goto("/?q=exe")
    hit = page.locator("#hits .hit").first
    expect(hit.locator(".title")).to_have_text("open evil⟨U+202E⟩gnp.exe")  # not "open evilexe.png"
    expect(hit.locator(".doc-id")).to_have_text("evil⟨U+202E⟩gnp.exe")
    for part in (".title", ".doc-id", ".snippet"):
        assert hit.locator(part).get_attribute("dir") == "auto", part  # an isolate: nothing leaks out of it


def test_page_responses_forbid_inline_script(page: Page, server):
    for path in ("/", "/static/page.js", "/static/page.css"):
        r = httpx.get(server.url + path)
        assert r.status_code == 200 and r.headers["content-security-policy"] == PAGE_CSP, (path, r.headers)
    assert "'unsafe-inline'" not in PAGE_CSP and "script-src 'self'" in PAGE_CSP
    assert httpx.get(server.url + "/docs").headers.get("content-security-policy") != PAGE_CSP  # Swagger needs its own
    page.goto("/")
    page.evaluate("""() => { const s = document.createElement('script');
                             s.textContent = 'window.inlineRan = true'; document.body.append(s); }""")
    assert page.evaluate("window.inlineRan") is None


def test_a_search_url_loads_its_results(page: Page):
    page.goto("/?q=read+a+csv+file&mode=bm25&k=3")
    expect(page.locator("#hits .hit")).to_have_count(3)
    expect(page.locator("#q")).to_have_value("read a csv file")
    expect(page.locator("#mode")).to_have_value("bm25")
    expect(page.locator("#k")).to_have_value("3")
    assert all(i.startswith("csv.") for i in ids(page)[:2]), ids(page)


def test_back_restores_the_previous_search(page: Page):
    page.goto("/")
    page.fill("#q", RMTREE_QUERY)
    page.press("#q", "Enter")
    expect(page.locator("#hits .doc-id").first).to_have_text("shutil.rmtree")
    first = ids(page)
    page.fill("#q", "parse a JSON string")
    page.press("#q", "Enter")
    shows_results_for(page, "parse a JSON string")
    second = ids(page)
    page.go_back()
    expect(page.locator("#q")).to_have_value(RMTREE_QUERY)
    shows_results_for(page, RMTREE_QUERY)
    assert ids(page) == first and url_params(page)["q"] == RMTREE_QUERY
    page.go_back()
    expect(page.locator("#q")).to_have_value("")
    expect(page.locator("#hits .hit")).to_have_count(0)
    page.go_forward()
    page.go_forward()
    shows_results_for(page, "parse a JSON string")
    assert ids(page) == second


def test_slash_focuses_the_search_field(page: Page):
    page.goto("/?q=sleep&k=2")
    page.locator("#hits .title").first.focus()
    page.keyboard.press("/")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.press("End")
    page.keyboard.type("/x")  # inside the field "/" is just a character
    expect(page.locator("#q")).to_have_value("sleep/x")


def test_phone_width_has_no_horizontal_scroll(browser, server):
    context = browser.new_context(base_url=server.url, viewport={"width": 390, "height": 844}, is_mobile=True)
    context.set_default_timeout(20_000)
    phone = context.new_page()
    for query in (f"/?q={RMTREE_QUERY}", "/?q=quokka+xylophone&mode=bm25", "/?q=" + "long " * 450):
        phone.goto(query)
        expect(phone.locator("#hits .hit, #alert:not([hidden])").first).to_be_visible()
        if phone.locator("#hits .title").count():
            phone.locator("#hits .title").first.click()  # the full text, opened, must fit too
        width = phone.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1] == 390, (query[:40], width)
        for label in ("Search for", "Mode", "Results"):
            expect(phone.get_by_label(label, exact=True)).to_be_visible()
    context.close()


def test_opening_a_result_reports_a_click_only_in_an_experiment(page: Page, engine, tmp_path):
    clicks = []
    page.on("request", lambda request: clicks.append(request) if request.url.endswith("/click") else None)
    page.goto("/?q=sleep&k=3")  # no experiment runs on the shared server: no impression_id, no click sent
    page.locator("#hits .title").first.click()
    expect(page.locator("#hits .title").first).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#hits .snippet.full")).to_have_count(1)

    experiment = Experiment("control=bm25,treatment=dense", "interleave", tmp_path / "events.sqlite")
    with BackgroundServer(create_app(engine, cache=LRUCache(100), experiment=experiment)) as srv:
        with page.expect_response(SEARCH_API) as searched:
            page.goto(f"{srv.url}/?q=sleep+for+a+second&k=5")
        impression_id = searched.value.json()["impression_id"]
        expect(page.locator("#status")).to_contain_text("(experiment)")
        second = page.locator("#hits .hit").nth(1)
        with page.expect_response(f"{srv.url}/click") as answer:
            second.locator(".title").click()
        opened = second.locator(".doc-id").inner_text()
        assert answer.value.status == 200, answer.value.text()
        assert answer.value.request.post_data_json == {"impression_id": impression_id, "id": opened}
        assert answer.value.request.headers["content-type"] == "application/json"
        assert experiment.summary()["clicks"] == 1
    experiment.close()
    assert [c.url for c in clicks] == [f"{srv.url}/click"]


@pytest.mark.parametrize("path, drawn", [("/docs", '[data-path="/search/batch"]'), ("/redoc", "text=Search with many queries")])
def test_api_docs_open_offline_and_show_the_routes(page: Page, server, path: str, drawn: str):
    """Swagger UI and ReDoc draw the routes from this server's files alone: any request elsewhere is refused."""
    elsewhere: list[str] = []

    def only_this_server(route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(path)
    expect(page.locator(drawn).first).to_be_visible()
    # ReDoc's only outside request is its "API docs by Redocly" logo image: offline it is missing, nothing else is
    assert elsewhere in ([], ["https://cdn.redoc.ly/redoc/logo-mini.svg"]) if path == "/redoc" else elsewhere == []


def test_the_page_keeps_one_session_in_a_split_experiment(page: Page, engine, tmp_path):
    experiment = Experiment("control=bm25,treatment=dense", "split", tmp_path / "split.sqlite")
    with BackgroundServer(create_app(engine, cache=LRUCache(100), experiment=experiment)) as srv:
        for query in ("sleep+for+a+second", "read+a+csv+file", "parse+json"):
            with page.expect_response(SEARCH_API) as searched:
                page.goto(f"{srv.url}/?q={query}&k=3")
            assert searched.value.json()["impression_id"]
    experiment.close()
    with sqlite3.connect(experiment.store.path) as db:
        sessions = db.execute("SELECT DISTINCT session FROM impressions").fetchall()
    assert len(sessions) == 1 and sessions[0][0], sessions  # the session cookie set on the first answer came back
