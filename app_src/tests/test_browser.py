"""A real browser (Debian's chromium through Playwright) votes by clicking and watches the result
page update without a reload, at the root and behind an nginx path router (/vote, /result)."""

from __future__ import annotations

import uuid

import pytest
from chromium import launch_chromium, read_count
from harness import RESULT, Nginx, Service, free_port, start_all, stop_all

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployment(redis_server, pg_server, workdir):
    tag = uuid.uuid4().hex[:8]
    common = {**redis_server.env(), "VOTE_STREAM": f"browser-{tag}", "VOTE_OPTIONS": "Cats,Dogs"}
    web = {"BIND_ADDRESS": "127.0.0.1", "GUNICORN_WORKERS": "1"}
    vote_port, result_port = free_port(), free_port()
    services = [
        Service("vote", {**common, **web, "PORT": str(vote_port), "URL_PREFIX": "/vote"}, workdir, "b-vote"),
        Service(
            "result",
            {**common, **web, **pg_server.env(RESULT), "PORT": str(result_port), "URL_PREFIX": "/result"},
            workdir,
            "b-result",
        ),
        Service("worker", {**common, **pg_server.env(), "WORKER_CONSUMER": "b-w", "METRICS_PORT": "0"}, workdir, "b-w"),
    ]
    start_all(services)
    nginx = Nginx(workdir, vote_port, result_port).start()
    yield {
        "root": (f"http://127.0.0.1:{vote_port}/", f"http://127.0.0.1:{result_port}/"),
        "router": (f"http://127.0.0.1:{nginx.port}/vote", f"http://127.0.0.1:{nginx.port}/result"),
    }
    nginx.stop()
    stop_all(services)


@pytest.fixture(scope="module")
def browser():
    with launch_chromium() as b:
        yield b


@pytest.mark.parametrize("mode", ["root", "router"])
def test_click_vote_and_watch_result_update_live(browser, deployment, mode):
    vote_url, result_url = deployment[mode]
    results = browser.new_page()
    results.goto(result_url)
    results.locator("#live").filter(has_text="live").wait_for(timeout=10000)
    # a marker that a reload would erase
    results.evaluate("window.__noReload = 'still here'")
    before_dogs = read_count(results, "Dogs")
    before_total = int(results.locator("#total").inner_text())

    context = browser.new_context()  # a fresh voter (its own cookie)
    ballot = context.new_page()
    ballot.goto(vote_url)
    ballot.get_by_role("button", name="Dogs").click()
    ballot.locator("#status").filter(has_text="Dogs").wait_for(timeout=10000)
    assert ballot.locator("#error").count() == 0

    results.wait_for_function(
        "([n]) => Number(document.querySelector('#total').textContent) >= n", arg=[before_total + 1], timeout=10000
    )
    assert read_count(results, "Dogs") == before_dogs + 1
    assert results.evaluate("window.__noReload") == "still here"

    # the same voter changes their mind: the tally moves, the total does not grow
    ballot.get_by_role("button", name="Cats").click()
    ballot.locator("#status").filter(has_text="Cats").wait_for(timeout=10000)
    results.wait_for_function(
        "([n]) => Number(document.querySelector('.count[data-option=\"Dogs\"]').textContent) === n",
        arg=[before_dogs],
        timeout=10000,
    )
    assert int(results.locator("#total").inner_text()) == before_total + 1
    assert results.evaluate("window.__noReload") == "still here"
    context.close()
    results.close()
