"""Headless Chromium for the console's tests: Debian's `chromium` (installed by scripts/test),
driven by Playwright for Python. Nothing here skips: a browser that cannot start fails the
test that asked for it, with the reason."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Chromium logs every answer that is not 2xx as a console error; the console's tests provoke
# such answers on purpose (a revoked key, a period not over) and check the page shows them.
_HTTP_STATUS = re.compile(r"^Failed to load resource: the server responded with a status of \d{3}")
_CSP = re.compile(r"Content[ -]Security[ -]Policy", re.IGNORECASE)
ROOT = Path(__file__).resolve().parents[2]


def screenshots_dir() -> Path:
    """The screenshots' folder: `SHOWDIST_SCREENSHOTS`, else build/console-screenshots."""
    folder = Path(os.environ.get("SHOWDIST_SCREENSHOTS") or ROOT / "build" / "console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_path() -> Path:
    if not CHROMIUM.is_file():
        raise RuntimeError(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium")
    return CHROMIUM


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    executable = chromium_path()
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # (Chromium's sandbox refuses root)
    async with async_playwright() as p:
        try:
            browser = await p.chromium.launch(
                executable_path=str(executable), headless=True, args=args
            )
        except Exception as exc:
            raise RuntimeError(f"Chromium ({CHROMIUM}) did not start: {exc}") from exc
        try:
            yield browser
        finally:
            await browser.close()


def origin(url: str) -> str:
    """scheme://host:port of a URL; a `blob:` URL has the origin of the page that made it."""
    parts = urlsplit(url.removeprefix("blob:"))
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Recorded:
    """Every request a page made, and every error: one its scripts left uncaught, a
    Content-Security-Policy violation, or any other console error (an HTTP status the test
    provoked aside)."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.on("request", lambda r: self._request(r))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self._console(m))
        return page

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        if _CSP.search(text):
            self.errors.append(f"CSP violation: {text}")
        elif message.type == "error" and not _HTTP_STATUS.match(text):
            self.errors.append(f"console error: {text}")

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def foreign(self, base_url: str) -> list[str]:
        """The requests that went anywhere but `base_url`'s origin."""
        mine = origin(base_url)
        return [u for u in self.requests if origin(u) != mine]
