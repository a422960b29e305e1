"""Screenshot the search page with results: ``python tools/screenshot.py [OUT.png]`` (default docs/search-page.png).

Serves the Python docs on a free loopback port, opens the page in Debian's headless Chromium (Playwright drives
it; nothing is downloaded) and saves the PNG. ``make screenshot`` runs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout: import this checkout's searchkit
    sys.path.insert(0, str(ROOT))

from searchkit.serving.app import create_app  # noqa: E402
from searchkit.serving.page import launch_chromium  # noqa: E402
from searchkit.serving.server import BackgroundServer
from searchkit.startup import load_engine  # noqa: E402
from searchkit.threads import set_compute_threads  # noqa: E402

QUERY = "delete a folder and everything inside it"


def screenshot(out: Path, query: str = QUERY, k: int = 5, width: int = 1000) -> Path:
    """Serve the Python docs, search ``query`` on the page and save the whole page as a PNG at ``out``."""
    from urllib.parse import urlencode

    import httpx
    from playwright.sync_api import sync_playwright

    engine = load_engine("pydocs")
    set_compute_threads(1)
    with BackgroundServer(create_app(engine)) as server, sync_playwright() as p:
        for warm_up in ("open a file", "read a csv file", "sleep for a second"):  # the encoder's first calls are slow
            httpx.get(f"{server.url}/search", params={"q": warm_up}, timeout=60).raise_for_status()
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": width, "height": 700}, device_scale_factor=1)
        page.goto(f"{server.url}/?{urlencode({'q': query, 'mode': 'dense', 'k': k})}")
        page.locator("#hits .hit").nth(k - 1).wait_for()
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    return out


if __name__ == "__main__":
    path = screenshot(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "search-page.png")
    print(f"wrote {path}")
