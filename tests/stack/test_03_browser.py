"""A real browser (Debian's chromium through Playwright) votes through the bastion URL and watches
the result page update without a reload."""

from __future__ import annotations

import pytest
from chromium import launch_chromium, read_count  # app_src/tests/chromium.py, on sys.path through conftest.py
from conftest import BASE_URL


@pytest.fixture(scope="module")
def browser():
    with launch_chromium() as b:
        yield b


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
