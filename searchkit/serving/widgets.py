"""A search box for notebooks (ipywidgets): query field, mode toggle, top-k slider, results with timings.

It searches a local :class:`~searchkit.engine.SearchEngine` or a running app (``url=``). Tests drive it
without a browser: set ``box.query.value``, call ``box.search()``, read ``box.results`` and ``box.html.value``.
"""

from __future__ import annotations

import html

import ipywidgets as w

from searchkit.engine import MODES, SearchEngine, SearchSettings
from searchkit.errors import InputError, SearchkitError
from searchkit.validation import normalize_query

LABELS = {"bm25": "BM25", "dense": "dense", "hybrid": "hybrid"}
SNIPPET_CHARS = 160


class SearchBox:
    """An interactive search box; display it with ``box.widget`` (or just ``box`` as a cell's last line)."""

    def __init__(self, engine: SearchEngine | None = None, url: str | None = None, k: int = 5, mode: str = "dense"):
        if (engine is None) == (url is None):
            raise InputError("give SearchBox an engine or the url of a running app (one of the two)")
        self.engine, self.url = engine, url.rstrip("/") if url else None
        modes = engine.modes() if engine is not None else list(MODES)
        if mode not in modes:
            raise InputError(f"unknown mode {mode!r}: choose one of {', '.join(modes)}")
        self.query = w.Text(placeholder="search the docs, then press Enter", continuous_update=False,
                            layout=w.Layout(width="60%"))  # fmt: skip
        self.mode = w.ToggleButtons(options=[(LABELS.get(m, m), m) for m in modes], value=mode, description="mode")
        self.k = w.IntSlider(value=k, min=1, max=20, description="top k", continuous_update=False)
        self.button = w.Button(description="Search", button_style="primary")
        self.html = w.HTML()
        self.results: list[dict] = []
        self.timings_ms: dict[str, float] = {}
        self.error: str | None = None
        self.widget = w.VBox([w.HBox([self.query, self.button]), w.HBox([self.mode, self.k]), self.html])
        self.button.on_click(lambda _: self.search())
        for control in (self.query, self.mode, self.k):
            control.observe(lambda _: self.search(), names="value")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def search(self) -> list[dict]:
        """Run the current query; update ``results``, ``timings_ms`` and the rendered HTML; return the results."""
        text = normalize_query(self.query.value)
        self.error = None
        if not text:
            self.results, self.timings_ms = [], {}
            self.html.value = "<i>type a query and press Enter</i>"
            return self.results
        try:
            self.results, self.timings_ms, cached = self._run(text, self.k.value, self.mode.value)
        except (SearchkitError, OSError) as e:
            self.results, self.timings_ms, self.error = [], {}, str(e).splitlines()[0]
            self.html.value = f"<b>error:</b> {html.escape(self.error)}"
            return self.results
        self.html.value = render(self.results, self.timings_ms, cached)
        return self.results

    def _run(self, text: str, k: int, mode: str) -> tuple[list[dict], dict[str, float], bool]:
        if self.url is not None:
            import httpx

            r = httpx.post(f"{self.url}/search", json={"query": text, "top_k": k, "mode": mode}, timeout=10)
            if r.status_code != 200:
                detail = r.json().get("detail", r.text)
                msg = detail[0]["msg"] if isinstance(detail, list) and detail else str(detail)
                raise InputError(f"the server answered {r.status_code}: {msg}")
            body = r.json()
            return body["results"], body["timings_ms"], body["cached"]
        res = self.engine.search_timed([text], k, settings=SearchSettings(mode=mode))  # type: ignore[union-attr]
        return [h.to_dict() for h in res.hits[0]], res.timings.as_dict(digits=2), res.cached[0]


def render(results: list[dict], timings_ms: dict[str, float], cached: bool = False) -> str:
    """Return results as HTML: rank, score, title and a snippet each, then the per-stage timings."""
    if not results:
        rows = "<i>no results</i>"
    else:
        items = []
        for rank, r in enumerate(results, 1):
            snippet = r["text"][:SNIPPET_CHARS] + ("…" if len(r["text"]) > SNIPPET_CHARS else "")
            items.append(
                f"<li><code>{r['score']:.3f}</code> <b>{html.escape(r['title'])}</b>"
                f"<br><small>{html.escape(snippet)}</small></li>"
            )
        rows = "<ol>" + "".join(items) + "</ol>"
    t = timings_ms
    stages = ", ".join(f"{name} {t[name]:.1f} ms" for name in ("embed", "search", "total") if name in t)
    note = " (query vector from cache)" if cached else ""
    return f"{rows}<small>{stages}{note}</small>"
