"""The operations console (issue 17): a small browser app served by every worker.

`/` answers the console's page, `/console/<file>` its ES modules and stylesheet. The files ship
inside the package (`streams/api/static/`, package data) and are read once at start: nothing is
fetched at run time and no file name from a request ever reaches the file system. The console
reads the public HTTP API only (docs/console.md). Under bearer-token auth `/` and `/console/*`
stay open: the page itself holds no data.
"""

from __future__ import annotations

from importlib.resources import files

import faust
from faust.web import Request, Response, View

STATIC = files("streams.api") / "static"
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
# Scripts, styles and requests from this worker only: the console never loads anything from
# elsewhere, and a value shown from the API can never run as script.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",  # a new release shows at the next load
}


def load_assets() -> dict[str, tuple[bytes, str]]:
    """File name -> (content, content type) of every shipped console file."""
    assets = {}
    for entry in STATIC.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in CONTENT_TYPES:
            assets[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return assets


def register_console(app: faust.App, assets: dict[str, tuple[bytes, str]] | None = None) -> None:
    """`GET /` (the page) and `GET /console/<file>` (its assets) on the worker's web server."""
    assets = load_assets() if assets is None else assets

    def answer(view: View, name: str) -> Response:
        if name not in assets:
            return view.json({"error": f"no console file {name!r}"}, status=404)
        body, content_type = assets[name]
        return view.bytes(body, content_type=content_type, headers=dict(HEADERS))

    @app.page("/")
    async def index(self: View, request: Request) -> Response:
        return answer(self, "index.html")

    @app.page("/console/{name}")
    async def asset(self: View, request: Request, name: str) -> Response:
        return answer(self, name)

