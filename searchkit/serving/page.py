"""The search page: static HTML, CSS and a JavaScript module shipped in ``searchkit/serving/static``, served at ``/``.

No build step and no CDN: the files are the page. They call the same JSON API as everyone else (``GET /search``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"

# Scripts, styles and images from this server only: no inline script, no eval, no plugins, no framing.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# nosniff comes with every answer (searchkit.serving.http_rules); the page is revalidated, never served stale
PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"}


class _PageFiles(StaticFiles):
    """StaticFiles that send the page's security headers with every file."""

    async def get_response(self, path: str, scope):  # type: ignore[no-untyped-def]
        """Return the file response with the page's headers added."""
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


def add_page(app: FastAPI) -> None:
    """Serve the search page at ``/`` and its files under ``/static/`` (left out of the OpenAPI schema)."""

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", _PageFiles(directory=STATIC_DIR), name="static")


# -- looking at it in a browser (tests and docs/search-page.png) ----------------------------------

CHROMIUM = "/usr/lib/chromium/chromium"  # Debian's chromium package; Playwright never downloads a browser here
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip


def launch_chromium(playwright):  # type: ignore[no-untyped-def]
    """Return Debian's headless Chromium launched by ``playwright`` (``sync_playwright()``), offline-quiet flags set."""
    from searchkit.errors import SearchkitError

    if not Path(CHROMIUM).exists():
        raise SearchkitError(f"no Chromium at {CHROMIUM}: install Debian's chromium package (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
