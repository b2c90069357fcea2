"""The built admin UI at `/`: long-cached hashed assets, everything else revalidated, SPA fallback."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from . import errors

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# Bundlers name built assets `app-3f9a1c2b.js`: a content hash makes the file safe to cache forever.
_HASHED = re.compile(r"[.-][A-Za-z0-9_-]{6,}\.[A-Za-z0-9]+$")
DEFAULT_UI_DIR = Path("admin/dist")


def ui_dir(configured: Path | None) -> Path | None:
    """The configured build, else ./admin/dist when it holds an index.html; None when there is none."""
    candidate = configured if configured is not None else DEFAULT_UI_DIR
    return candidate.resolve() if (candidate / "index.html").is_file() else None


def _not_built_page(docs_url: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Worker Monitor</title></head>"
        "<body style='font-family:system-ui,sans-serif;max-width:40em;margin:3em auto'>"
        "<h1>Worker Monitor</h1><p>The admin UI is not built (no <code>admin/dist</code>). "
        "Build it with <code>npm run build</code> in <code>admin/</code>, or set "
        "<code>WORKERMON_ADMIN_UI_DIR</code>.</p>"
        f"<p>The HTTP API is running: see <a href='{html.escape(docs_url)}'>the API docs</a>.</p>"
        "</body></html>"
    )


class StaticUI(BaseRoute):
    """Serves GET and HEAD for any path the routes before it left alone (it is the last route)."""

    def __init__(self, root: Path | None, docs_url: str = "/docs", api_base: str = "/api") -> None:
        self.root = root.resolve() if root is not None else None
        self.docs_url = docs_url
        self.api_base = api_base

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Claim every HTTP request: unknown paths get the SPA, or the 404/405 error shape."""
        return (Match.FULL, {}) if scope["type"] == "http" else (Match.NONE, {})

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """Not reversible by name."""
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a file, index.html, the not-built page, or an error."""
        response = self.respond(Request(scope, receive))
        await response(scope, receive, send)

    def respond(self, request: Request) -> Response:
        """The response for one request."""
        path = request.url.path
        root_path = request.scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        if request.method not in ("GET", "HEAD"):
            return errors.method_not_allowed(request.method, path, ["GET", "HEAD"])
        if self.root is None:
            if path in ("/", "/index.html"):
                return HTMLResponse(_not_built_page(self.docs_url), headers={"Cache-Control": REVALIDATE})
            return errors.not_found(path)
        relative = path.lstrip("/")
        target = (self.root / relative).resolve() if relative else self.root / "index.html"
        if not target.is_relative_to(self.root):
            return errors.not_found(path)
        if target.is_file() and target.name == "index.html" and target.parent == self.root:
            return self._index()
        if target.is_file():
            hashed = relative.startswith("assets/") and _HASHED.search(target.name) is not None
            return FileResponse(target, headers={"Cache-Control": IMMUTABLE if hashed else REVALIDATE})
        if relative.startswith("assets/"):
            # A missing asset is a stale page or a typo: HTML in place of a script would only confuse.
            return errors.not_found(path)
        return self._index()

    def _index(self) -> Response:
        """index.html telling the UI where the API is (WORKERMON_BASE_PATH may have moved it)."""
        assert self.root is not None
        page = (self.root / "index.html").read_text()
        meta = f'<meta name="workermon-api-base" content="{html.escape(self.api_base)}" />'
        return HTMLResponse(
            page.replace("</head>", f"    {meta}\n  </head>", 1), headers={"Cache-Control": REVALIDATE}
        )
