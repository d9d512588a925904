"""The web console's static files (`console/`), served by the function app at its root `/`.

The console is plain HTML, CSS and ES modules: no build step, nothing fetched from elsewhere. This
module only answers GET/HEAD for those files; the data comes from the HTTP API under `/api`, which
the console calls from the browser with the caller's own App Service Authentication session.

Only a file directly inside `console/` whose name is a plain file name with a known extension is
served: no folders, no hidden files, no `..`, so a request cannot reach anything else on disk.
Every answer says `Cache-Control: no-cache` with a strong ETag (files are not content-hashed, so
the browser revalidates and gets `304 Not Modified` while a file is unchanged), and carries a
Content-Security-Policy that lets the page load scripts, styles and data from its own origin only.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CONSOLE_DIR", "CONTENT_TYPES", "SECURITY_HEADERS", "StaticAnswer", "serve"]

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


@dataclass(frozen=True)
class StaticAnswer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def serve(name: str, method: str = "GET", if_none_match: str | None = None,
          root: Path = CONSOLE_DIR) -> StaticAnswer:
    """The answer to a request for console file `name` ("" is index.html)."""
    method = method.upper()
    if method not in ("GET", "HEAD"):
        return StaticAnswer(405, b"Use GET or HEAD.\n", {**_TEXT, "Allow": "GET, HEAD"})
    path = _resolve(name or "index.html", root)
    if path is None:
        return StaticAnswer(404, b"Not found.\n", {**_TEXT, **SECURITY_HEADERS})
    body = path.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "Content-Type": CONTENT_TYPES[path.suffix.lower()],
        "Cache-Control": "no-cache",
        "ETag": etag,
        **SECURITY_HEADERS,
    }
    if if_none_match and etag in {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}:
        return StaticAnswer(304, b"", headers)
    return StaticAnswer(200, body, headers)  # the host leaves the body out of a HEAD answer


def _resolve(name: str, root: Path) -> Path | None:
    """The file `name` names directly inside `root`, or None (not a plain known file name, or absent)."""
    if not _FILE_NAME.fullmatch(name) or Path(name).suffix.lower() not in CONTENT_TYPES:
        return None
    root = root.resolve()
    path = (root / name).resolve()
    if path.parent != root or not path.is_file():
        return None
    return path
