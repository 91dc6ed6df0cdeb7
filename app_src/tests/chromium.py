"""Debian's chromium driven by Playwright, shared by the app's browser test and the lab's
(tests/stack/test_03_browser.py): one place for the flags that make it start in a container."""

from __future__ import annotations

import contextlib
import os

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# No sandbox (root in a container), no GPU, no QUIC, and no background traffic to Google.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def launch_chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def read_count(page, option: str) -> int:
    """The count the result page shows for one option."""
    return int(page.locator(f'.count[data-option="{option}"]').inner_text())


def read_row(page, option: str) -> dict:
    """One option's row of the result page as a person and a screen reader get it."""
    row = page.locator(f'#tally .row[data-option="{option}"]')
    bar = row.locator("meter.bar")
    return {
        "count": int(row.locator(".count").inner_text()),
        "share": row.locator(".share").inner_text(),
        "bar": float(bar.evaluate("m => m.value")),
        "label": bar.get_attribute("aria-label"),
    }
