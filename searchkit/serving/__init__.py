"""The skins over the engine: the FastAPI app and its routes, HTTP rules, caches, the page, the server, the widget."""
