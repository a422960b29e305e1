"""The notebook search box, driven without a browser: set the value, trigger the search, read the results."""

from __future__ import annotations

import pytest

from searchkit.engine import MODES
from searchkit.errors import InputError
from searchkit.serving.cache import LRUCache
from searchkit.serving.server import serve_in_background
from searchkit.serving.widgets import SearchBox, render


@pytest.fixture(scope="module")
def engine(pydocs_engine):
    import copy

    eng = copy.copy(pydocs_engine)
    eng.cache = LRUCache(100)
    return eng


def test_typing_a_query_searches_and_renders(engine):
    box = SearchBox(engine, k=3)
    box.query.value = "remove a directory and everything in it"  # what pressing Enter does
    assert len(box.results) == 3
    assert "shutil.rmtree" in [r["id"] for r in box.results]
    assert set(box.timings_ms) == {"embed", "search", "rerank", "total"}
    assert "shutil.rmtree" in box.html.value and "ms" in box.html.value and "<ol>" in box.html.value


def test_mode_toggle_and_slider_search_again(engine):
    box = SearchBox(engine, k=3)
    assert [v for _, v in box.mode.options] == [m for m in MODES]
    def expected(mode: str, k: int) -> list[tuple[str, float]]:
        return [(h.id, pytest.approx(h.score, abs=1e-5)) for h in engine.search_many(["json"], k, mode=mode)[0]]

    def shown() -> list[tuple[str, float]]:
        return [(r["id"], r["score"]) for r in box.results]

    box.query.value = "json"
    dense = shown()
    assert dense == expected("dense", 3)
    box.mode.value = "bm25"  # the toggle alone searches again, in the chosen mode
    assert shown() == expected("bm25", 3) and shown() != dense
    box.k.value = 7
    assert shown() == expected("bm25", 7)
    box.button.click()
    assert shown() == expected("bm25", 7)


def test_repeated_query_is_served_from_the_cache(engine):
    box = SearchBox(engine)
    box.query.value = "sort a list in place"
    box.search()
    assert "query vector from cache" in box.html.value


def test_empty_query_shows_a_hint(engine):
    box = SearchBox(engine)
    assert box.search() == []
    assert "type a query" in box.html.value


def test_bad_arguments_are_named(engine):
    with pytest.raises(InputError, match="give SearchBox an engine or the url of a running app"):
        SearchBox()
    with pytest.raises(InputError, match="unknown mode 'magic'"):
        SearchBox(engine, mode="magic")


def test_search_box_over_http(engine):
    srv = serve_in_background(engine)
    try:
        box = SearchBox(url=srv.url, k=2)
        box.query.value = "read a csv file"
        assert len(box.results) == 2 and box.results[0]["id"].startswith("csv")
        box.query.value = "x" * 3000
        assert box.results == [] and "query has 3000 characters" in box.error
        assert "error" in box.html.value
    finally:
        srv.stop()


def test_render_escapes_html():
    out = render([{"id": "a", "score": 1.0, "title": "<script>", "text": "x & y"}], {"total": 1.0})
    assert "&lt;script&gt;" in out and "x &amp; y" in out and "total 1.0 ms" in out
    assert "no results" in render([], {})
