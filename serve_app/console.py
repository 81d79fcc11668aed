"""The operators' browser console (`/console`): static files shipped in the package
(`serve_app/console_assets/`), served unsigned, as they hold no secret. The page signs every
call it makes to the admin API in the browser (docs/console.md); the server gives it no
authority of its own.

- Only the files of that folder are served, read once when the module is imported: a name
  outside that set (a `..`, an encoded slash, a file added later) is 404, never a disk read.
- Each answer says its type, `Cache-Control: no-cache` with an `ETag` (the browser asks
  again each time and gets a 304 while the file is unchanged, `If-None-Match` compared as
  RFC 9110 says: a list, weak tags, `*`; a new platform version is picked up at once),
  and a Content-Security-Policy that lets the page load and call only its own origin, with
  no inline script or style.
- The routes are not in the OpenAPI document (`include_in_schema=False`): that document
  describes the signed JSON API, and these are files. docs/api.md lists them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serve_app.errors import ApiError

router = APIRouter(prefix="/console")

ASSETS = Path(__file__).resolve().parent / "console_assets"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _load() -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for path in sorted(ASSETS.iterdir()):
        kind = _TYPES.get(path.suffix)
        if path.is_file() and kind is not None:
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            found[path.name] = Asset(body, kind, etag)
    return found


FILES = _load()


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an `If-None-Match` names `etag` (RFC 9110 13.1.2: a list, each tag maybe weak
    `W/"…"`, compared weakly; `*` matches any current file)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(
        tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(",") if tag.strip()
    )


def _serve(request: Request, name: str) -> Response:
    asset = FILES.get(name)
    if asset is None:
        raise ApiError(404, "not_found", "no such file")
    headers = {
        "Cache-Control": "no-cache",
        "ETag": asset.etag,
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if _matches(request.headers.get("if-none-match"), asset.etag):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


@router.get("", include_in_schema=False)
async def index(request: Request) -> Response:
    return _serve(request, "index.html")


@router.get("/{name}", include_in_schema=False)
async def asset(name: str, request: Request) -> Response:
    return _serve(request, name)
