"""A real headless Chromium (Debian `chromium`) driven by Playwright, for the HTML report."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass(slots=True)
class Opened:
    """A report loaded in a fresh page, with what the page did while loading."""

    page: Any
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def open_report(browser: Any) -> Iterator[Any]:
    pages: list[Any] = []

    def opener(path: Path, width: int = 1280) -> Opened:
        page = browser.new_page(viewport={"width": width, "height": 900})
        pages.append(page)
        seen = Opened(page)
        page.on("console", lambda m: seen.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: seen.errors.append(str(e)))
        page.on("request", lambda r: seen.requests.append(r.url))

        def dialog(d: Any) -> None:
            seen.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dialog)
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        return seen

    yield opener
    for page in pages:
        page.close()


def visible_rows(page: Any) -> list[str]:
    """data-s keys of the session-list rows the filters leave visible."""
    script = "rs => rs.map(r => r.dataset.s)"
    return list(page.eval_on_selector_all("tr.srow:not([hidden])", script))


def wait_until(page: Any, expression: str, timeout: float = 15.0) -> None:
    """Poll `expression` until it is true. Not `page.wait_for_function`: its polling compiles the
    expression with eval inside the page, which the report's Content-Security-Policy forbids."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        time.sleep(0.05)
