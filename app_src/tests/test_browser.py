"""A real browser (Debian's chromium through Playwright) votes by clicking and watches the result
page update without a reload, at the root and behind an nginx path router (/vote, /result), at a
phone and a desktop width, with and without JavaScript. Screenshots of every page state go to
tests/output/screenshots/ at the repository root (ignored by git) for a person to look at."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from chromium import launch_chromium, read_count, read_row
from harness import OWNER, RESULT, Nginx, Service, free_port, start_all, stop_all
from votingapp.result import share

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parents[2] / "tests" / "output" / "screenshots"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def deployment(redis_server, pg_server, workdir):
    with pg_server.connect(OWNER) as conn, conn.cursor() as cur:
        # the shares asserted below start from a known tally
        cur.execute("TRUNCATE votes, vote_counts")
    conn.close()
    tag = uuid.uuid4().hex[:8]
    common = {**redis_server.env(), "VOTE_STREAM": f"browser-{tag}", "VOTE_OPTIONS": "Cats,Dogs"}
    web = {"BIND_ADDRESS": "127.0.0.1", "GUNICORN_WORKERS": "1"}
    vote_port, result_port = free_port(), free_port()
    ballot = {**common, **web, "URL_PREFIX": "/vote", "RESULT_URL": "/result/"}
    services = [
        Service("vote", {**ballot, "PORT": str(vote_port)}, workdir, "b-vote"),
        # a vote service whose queue is down: every vote it is given is refused with 503
        Service("vote", {**ballot, "PORT": str(free_port()), "REDIS_PORT": str(free_port())}, workdir, "b-vote-down"),
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
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield {
        "root": (f"http://127.0.0.1:{vote_port}/", f"http://127.0.0.1:{result_port}/"),
        "router": (f"http://127.0.0.1:{nginx.port}/vote/", f"http://127.0.0.1:{nginx.port}/result/"),
        "queue_down": f"{services[1].url}/vote/",
        "result_service": services[2],
    }
    nginx.stop()
    stop_all(services)


@pytest.fixture(scope="module")
def browser():
    with launch_chromium() as b:
        yield b


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def expected_row(option: str, tally: dict) -> dict:
    count, total = tally["options"][option], tally["total"]
    pct = share(count, total)
    label = f"{option}: {pct}%, {count} of {total} votes"
    return {"count": count, "share": f"{pct}%", "bar": float(pct), "label": label}


def page_tally(page) -> dict:
    options = {o: read_count(page, o) for o in ("Cats", "Dogs")}
    return {"options": options, "total": int(page.locator("#total").inner_text())}


def wait_for_total(page, total: int) -> None:
    page.wait_for_function("([n]) => Number(document.querySelector('#total').textContent) === n", arg=[total])


def assert_fits(page) -> None:
    """Readable at this width: nothing wider than the viewport, so no sideways scrolling."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"page is {width}px wide in a {page.viewport_size['width']}px viewport"


def same_origin_only(page, url: str) -> list:
    """Records every request the page makes that leaves the app (a CDN font or script would)."""
    origin = urlsplit(url).netloc
    foreign: list = []
    page.on("request", lambda r: foreign.append(r.url) if urlsplit(r.url).netloc != origin else None)
    return foreign


@pytest.mark.parametrize(
    ("mode", "viewport"), [("root", DESKTOP), ("router", PHONE)], ids=["root-desktop", "router-phone"]
)
def test_click_vote_and_watch_bars_and_shares_update_live(browser, deployment, mode, viewport):
    vote_url, result_url = deployment[mode]
    size = f"{mode}-{viewport['width']}"
    results = browser.new_page(viewport=viewport)
    foreign = same_origin_only(results, result_url)
    results.goto(result_url)
    results.locator("#live").filter(has_text="live").wait_for(timeout=10000)
    assert results.locator("#live").get_attribute("data-state") == "live"
    results.evaluate("window.__noReload = 'still here'")  # a reload would erase it
    # the list is a live region: a figure that did not change must not be rewritten (announced)
    results.evaluate(
        """() => { window.__catsCountWrites = 0;
        new MutationObserver((m) => { window.__catsCountWrites += m.length; }).observe(
          document.querySelector('.count[data-option="Cats"]'), {childList: true, characterData: true, subtree: true});
        }"""
    )
    before = page_tally(results)
    for option in ("Cats", "Dogs"):
        assert read_row(results, option) == expected_row(option, before)
    shot(results, f"result-{size}-before")

    context = browser.new_context(viewport=viewport)  # a fresh voter (its own cookie)
    ballot = context.new_page()
    ballot.goto(vote_url)
    assert ballot.get_by_role("button", pressed=True).count() == 0
    ballot.get_by_role("button", name="Dogs").click()
    ballot.locator("#status").filter(has_text="Dogs").wait_for(timeout=10000)
    assert ballot.locator("#error").count() == 0
    assert ballot.get_by_role("button", name="Dogs").get_attribute("aria-pressed") == "true"
    assert ballot.get_by_role("button", name="Cats").get_attribute("aria-pressed") == "false"
    assert_fits(ballot)
    shot(ballot, f"vote-{size}-voted")

    after = {"options": {**before["options"], "Dogs": before["options"]["Dogs"] + 1}, "total": before["total"] + 1}
    # a share that could not move would let this pass without any update
    assert expected_row("Dogs", after)["share"] != expected_row("Dogs", before)["share"], (
        f"Dogs already has every vote ({before}): did an earlier test stop half-way?"
    )
    wait_for_total(results, after["total"])
    for option in ("Cats", "Dogs"):
        assert read_row(results, option) == expected_row(option, after)
    assert results.evaluate("window.__noReload") == "still here"
    assert results.evaluate("window.__catsCountWrites") == 0
    assert_fits(results)
    shot(results, f"result-{size}-after-dogs")

    # the ballot remembers the choice on a later visit, and the voter changes their mind
    ballot.goto(vote_url)
    assert ballot.get_by_role("button", name="Dogs").get_attribute("aria-pressed") == "true"
    assert "You voted for Dogs" in ballot.locator("#status").inner_text()
    ballot.get_by_role("button", name="Cats").click()
    ballot.locator("#status").filter(has_text="Cats").wait_for(timeout=10000)
    assert ballot.get_by_role("button", name="Cats").get_attribute("aria-pressed") == "true"
    assert ballot.get_by_role("button", name="Dogs").get_attribute("aria-pressed") == "false"

    changed = {"options": {**before["options"], "Cats": before["options"]["Cats"] + 1}, "total": after["total"]}
    results.wait_for_function(
        "([n]) => Number(document.querySelector('.count[data-option=\"Cats\"]').textContent) === n",
        arg=[changed["options"]["Cats"]],
    )
    for option in ("Cats", "Dogs"):
        assert read_row(results, option) == expected_row(option, changed)
    assert results.evaluate("window.__noReload") == "still here"
    assert foreign == []
    shot(results, f"result-{size}-after-change")
    context.close()
    results.close()


def test_without_javascript_the_vote_works_and_the_result_page_carries_the_numbers(browser, deployment):
    vote_url, result_url = deployment["router"]
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    page = context.new_page()
    page.goto(vote_url)
    page.get_by_role("button", name="Dogs").click()
    page.locator("#status").filter(has_text="was recorded").wait_for()
    assert page.get_by_role("button", name="Dogs").get_attribute("aria-pressed") == "true"
    shot(page, "vote-nojs-375-voted")

    page.get_by_role("link", name="See the results").click()  # RESULT_URL=/result/ behind the router
    page.locator("#tally").wait_for()
    assert page.url == result_url
    tally = requests.get(f"{result_url}api/tally", timeout=5).json()
    assert tally["total"] > 0  # zeros everywhere would match a page that renders nothing
    for option in ("Cats", "Dogs"):
        assert read_row(page, option) == expected_row(option, tally)
    assert int(page.locator("#total").inner_text()) == tally["total"]
    assert page.locator("#live").is_hidden()  # nothing claims to be live without the script
    assert "reload the page" in page.locator("main").inner_text()
    shot(page, "result-nojs-375")
    context.close()


def send_an_unknown_option(route) -> None:
    """A ballot POST as a stale or tampered page sends it: an option the service does not offer."""
    if route.request.method == "POST":
        route.continue_(post_data="vote=Fish")
    else:
        route.continue_()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
def test_a_refused_vote_says_so_and_why(browser, deployment, javascript):
    context = browser.new_context(java_script_enabled=javascript, viewport=PHONE)
    page = context.new_page()
    suffix = "js" if javascript else "nojs"

    page.goto(deployment["router"][0])
    page.route(re.compile(r".*/vote/$"), send_an_unknown_option)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Cats").click()
    assert answer.value.status == 400
    error = page.get_by_role("alert")
    assert "Unknown option 'Fish'" in error.inner_text()
    assert page.locator("#status").count() == 0
    shot(page, f"vote-400-{suffix}")
    page.unroute(re.compile(r".*/vote/$"))

    page.goto(deployment["queue_down"])
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Dogs").click()
    assert answer.value.status == 503
    assert "NOT confirmed" in page.get_by_role("alert").inner_text()
    assert page.get_by_role("button", pressed=True).count() == 0
    shot(page, f"vote-503-{suffix}")
    context.close()


def test_every_bar_has_a_text_alternative_and_updates_are_announced(browser, deployment):
    result_url = deployment["root"][1]
    page = browser.new_page(viewport=DESKTOP)
    page.goto(result_url)
    page.locator("#live").filter(has_text="live").wait_for(timeout=10000)
    tally = page_tally(page)
    for option in ("Cats", "Dogs"):
        # the accessible name a screen reader announces, computed by chromium itself
        bar = page.get_by_role("meter", name=expected_row(option, tally)["label"], exact=True)
        assert bar.count() == 1, option
    assert page.get_by_role("meter").count() == 2
    assert page.locator("#tally").get_attribute("aria-live") == "polite"
    assert page.get_by_role("status").inner_text() == "live"
    snapshot = page.locator("main").aria_snapshot()
    assert f'meter "{expected_row("Cats", tally)["label"]}"' in snapshot, snapshot
    page.close()


def test_the_choice_cookie_is_set_by_the_page_only_and_scoped_like_the_voter_cookie(deployment):
    vote_url = deployment["router"][0]
    api = requests.Session()
    api.get(vote_url, timeout=5)
    assert api.post(f"{vote_url}api/vote", json={"vote": "Dogs"}, timeout=5).headers.get("Set-Cookie") is None
    assert 'aria-pressed="true"' not in api.get(vote_url, timeout=5).text  # the API keeps its headers

    form = requests.Session()
    voted = form.post(vote_url, data={"vote": "Dogs"}, timeout=5)
    choice = next(c for c in voted.raw.headers.getlist("Set-Cookie") if c.startswith("vote_choice="))
    assert "HttpOnly" in choice
    assert "SameSite=Lax" in choice
    assert "Path=/vote" in choice

    # a choice cookie without the voter it belonged to (a new id is issued) marks nothing and is dropped
    stale = requests.get(vote_url, cookies={"vote_choice": "Dogs"}, timeout=5)
    assert 'aria-pressed="true"' not in stale.text
    dropped = [c for c in stale.raw.headers.getlist("Set-Cookie") if c.startswith("vote_choice=")]
    assert len(dropped) == 1
    assert "Max-Age=0" in dropped[0]
    # an option the ballot does not offer marks nothing
    forged = requests.get(vote_url, cookies={"voter_id": form.cookies["voter_id"], "vote_choice": "Fish"}, timeout=5)
    assert 'aria-pressed="true"' not in forged.text


def test_the_live_indicator_says_reconnecting_while_the_stream_is_down(browser, deployment):
    result_url = deployment["router"][1]
    service = deployment["result_service"]
    page = browser.new_page(viewport=PHONE)
    page.goto(result_url)
    live = page.locator("#live")
    live.filter(has_text="live").wait_for(timeout=10000)
    shown = page_tally(page)

    service.stop()  # ends the open event stream at once
    try:
        page.locator('#live[data-state="reconnecting"]').wait_for(timeout=10000)
        assert "live" not in live.inner_text()
        assert page_tally(page) == shown  # the last numbers stay on the page
        shot(page, "result-375-reconnecting")
    finally:
        service.start()
    page.locator('#live[data-state="live"]').wait_for(timeout=15000)
    assert live.inner_text() == "live"
    page.close()
