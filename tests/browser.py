"""Headless Chromium for tests: Debian's ``chromium`` driven over the DevTools protocol.

Playwright drives the system browser (no browser download). :func:`visit` opens one page
offline-style and returns what a user's browser would have complained about: console errors,
uncaught exceptions, and every request that left the machine (those are blocked and recorded).
Tests call :func:`require_browser` first, which skips with the command that installs what is
missing; ``bash scripts/setup.sh`` installs both as root on Debian, so CI runs these tests.

A screenshot from the command line: ``python -m tests.browser reports/funnel.html out.png``
(the whole page; a third argument, a height in pixels, keeps only the top of it).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM_ENV = "PREDICTIVE_SCORING_CHROMIUM"
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def chromium_path() -> str | None:
    """The browser to drive: $PREDICTIVE_SCORING_CHROMIUM, else chromium on PATH."""
    explicit = os.environ.get(CHROMIUM_ENV)
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser() -> str:
    """The chromium path, or skip the test saying how to get what is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("browser tests need playwright: pip install -e '.[dev]'")
    path = chromium_path()
    if path is None:
        pytest.skip(
            "browser tests need Debian's chromium: apt-get install -y chromium "
            f"(bash scripts/setup.sh does it as root), or set {CHROMIUM_ENV}"
        )
    return path


def is_local(url: str) -> bool:
    """A request that stays on this machine: a file, inline data, or a loopback server."""
    parts = urlsplit(url)
    if parts.scheme in ("file", "data", "blob", "about"):
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in LOCAL_HOSTS


@dataclass
class PageVisit:
    """What one page load produced."""

    url: str
    title: str = ""
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    text: str = ""


def visit(
    url: str,
    *,
    screenshot: Path | None = None,
    width: int = 1100,
    height: int = 900,
    full_page: bool = True,
    settle_ms: int = 300,
) -> PageVisit:
    """Load ``url`` in headless Chromium with external requests blocked and recorded.

    ``screenshot`` writes a PNG of the whole page, or of the first ``height`` pixels when
    ``full_page`` is false. Skips the calling test when the browser is missing.
    """
    executable = require_browser()
    from playwright.sync_api import Route, sync_playwright

    found = PageVisit(url=url)

    def route(r: Route) -> None:
        if is_local(r.request.url):
            r.continue_()
        else:
            found.external_requests.append(r.request.url)
            r.abort("internetdisconnected")

    def on_console(message: Any) -> None:
        if message.type == "error":
            found.console_errors.append(message.text)

    with tempfile.TemporaryDirectory(prefix="chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,  # --user-data-dir: a fresh profile each time
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport={"width": width, "height": height},
        )
        try:
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda exc: found.page_errors.append(str(exc)))
            page.on("request", lambda request: found.requests.append(request.url))
            page.goto(url, wait_until="load")
            page.wait_for_timeout(settle_ms)
            found.title = page.title()
            found.text = page.inner_text("body")
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=full_page)
        finally:
            context.close()
    return found


def _main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m tests.browser PAGE_OR_URL OUT.png [HEIGHT]", file=sys.stderr)
        return 2
    target, out = argv[:2]
    url = target if "://" in target else Path(target).resolve().as_uri()
    height = int(argv[2]) if len(argv) == 3 else 900
    found = visit(url, screenshot=Path(out), height=height, full_page=len(argv) == 2)
    problems = found.console_errors + found.page_errors + found.external_requests
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(f"{url} -> {out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
