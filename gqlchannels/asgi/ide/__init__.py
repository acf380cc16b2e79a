"""GraphiQL served from the package: the page and every script and style it loads.

Strawberry's page loads React and GraphiQL from unpkg.com, so in an air-gapped container
(or behind a strict proxy) the IDE is a blank page. The same release files are vendored in
`static/` (see static/SOURCES.md) and served under `<graphql path>/ide/`.
"""

from __future__ import annotations

from importlib import resources

from ..routing import ASGIApp, Receive, Scope, Send

CONTENT_TYPES = {".js": b"text/javascript; charset=utf-8", ".css": b"text/css; charset=utf-8"}


def assets_prefix(graphql_path: str) -> str:
    return f"{graphql_path.rstrip('/')}/ide"


def graphiql_html(graphql_path: str) -> str:
    template = resources.files(__package__).joinpath("graphiql.html").read_text(encoding="utf-8")
    return template.replace("{{ASSETS}}", assets_prefix(graphql_path))


def asset_routes(graphql_path: str) -> dict[str, ASGIApp]:
    """Exact-path routes for every vendored file; anything else under the prefix stays a 404."""
    routes: dict[str, ASGIApp] = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if suffix in CONTENT_TYPES:
            routes[f"{assets_prefix(graphql_path)}/{entry.name}"] = _static_file(entry.read_bytes(), CONTENT_TYPES[suffix])
    return routes


def _static_file(body: bytes, content_type: bytes) -> ASGIApp:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        # The file names carry their versions: a browser may keep them for a day.
        (b"cache-control", b"public, max-age=86400"),
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})

    return app
