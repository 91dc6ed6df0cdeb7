"""A real browser (Debian's chromium through Playwright) votes through the bastion URL and watches
the result page update without a reload."""

from __future__ import annotations

import os

import pytest
from conftest import BASE_URL

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
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


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def read_count(page, option: str) -> int:
    return int(page.locator(f'.count[data-option="{option}"]').inner_text())


def test_click_a_vote_and_watch_the_result_page_update(lab, browser):
    results = browser.new_page()
    results.goto(f"{BASE_URL}/result/")
    # The page says "live" once its event stream through the bastion is open.
    results.locator("#live").filter(has_text="live").wait_for(timeout=15000)
    results.evaluate("window.__noReload = 'still here'")  # a reload would erase it
    before_dogs = read_count(results, "Dogs")
    before_total = int(results.locator("#total").inner_text())

    voter = browser.new_context()  # a fresh voter with its own cookie
    ballot = voter.new_page()
    ballot.goto(f"{BASE_URL}/vote/")
    ballot.get_by_role("button", name="Dogs").click()
    ballot.locator("#status").filter(has_text="Dogs").wait_for(timeout=10000)

    results.wait_for_function(
        "([before]) => Number(document.querySelector('.count[data-option=\"Dogs\"]').textContent) > before",
        arg=[before_dogs],
        timeout=30000,
    )
    assert int(results.locator("#total").inner_text()) >= before_total + 1
    assert results.evaluate("window.__noReload") == "still here", "the result page reloaded instead of updating live"
    voter.close()
    results.close()
