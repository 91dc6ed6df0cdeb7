"""Votes through the bastion reach the tally read through the bastion; site.yml converges to changed=0."""

from __future__ import annotations

import json
import urllib.request
from http.cookiejar import CookieJar

from conftest import BASE_URL, PLAYBOOKS, http, run_playbook, tally, wait_for


def counts() -> tuple[dict, int]:
    t = tally()
    return t["options"], t["total"]


def test_pages_through_the_bastion(lab):
    status, body, _headers = http("GET", "/vote/")
    assert status == 200 and 'id="ballot"' in body, f"/vote/ answered {status}: {body[:300]}"
    status, body, _headers = http("GET", "/result/")
    assert status == 200 and 'id="tally"' in body, f"/result/ answered {status}: {body[:300]}"


def test_votes_through_the_bastion_reach_the_tally(lab):
    before, total_before = counts()
    # A form vote and an API vote, each from a new voter (no cookie: the vote service sets one).
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body, _headers = http("POST", "/vote/", data=b"vote=Cats", headers=form)
    assert status == 200 and "Cats" in body, f"form vote answered {status}: {body[:300]}"
    api = {"Content-Type": "application/json"}
    status, body, _headers = http("POST", "/vote/api/vote", data=json.dumps({"vote": "Dogs"}).encode(), headers=api)
    assert status == 202, f"API vote answered {status}: {body[:300]}"
    answer = json.loads(body)
    assert answer["vote"] == "Dogs" and answer["voter_id"], answer

    def arrived():
        now, total = counts()
        return (
            now.get("Cats", 0) >= before.get("Cats", 0) + 1
            and now.get("Dogs", 0) >= before.get("Dogs", 0) + 1
            and total >= total_before + 2
        )

    wait_for(arrived, timeout=60, what="both votes in /result/api/tally")


def test_a_bad_choice_is_refused_through_the_bastion(lab):
    status, body, _headers = http(
        "POST",
        "/vote/api/vote",
        data=json.dumps({"vote": "Hamsters"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 400, f"an unknown option answered {status}: {body[:300]}"


def test_a_voter_changing_their_vote_counts_once(lab):
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def api_vote(option: str) -> dict:
        # BASE_URL is a fixed http://127.0.0.1 address.
        req = urllib.request.Request(  # noqa: S310
            BASE_URL + "/vote/api/vote",
            data=json.dumps({"vote": option}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with opener.open(req, timeout=10) as resp:
            assert resp.status == 202, resp.status
            return json.loads(resp.read())

    before, total_before = counts()
    first = api_vote("Cats")
    assert any(c.name == "voter_id" for c in jar), "the vote service set no voter_id cookie through the bastion"
    second = api_vote("Dogs")
    assert first["voter_id"] == second["voter_id"]

    def settled():
        now, total = counts()
        return total == total_before + 1 and now.get("Dogs", 0) == before.get("Dogs", 0) + 1

    wait_for(settled, timeout=60, what="one voter's second vote replacing the first (total +1, Dogs +1)")


def test_second_converge_changes_nothing(lab):
    run = run_playbook(PLAYBOOKS / "site.yml")
    assert run.rc == 0, f"site.yml failed on the running lab: {run.stderr}\n{json.dumps(run.stats)}"
    changed = {host: n for host, n in run.changed().items() if n}
    assert not changed, f"second converge of site.yml changed something: {changed}; tasks: {run.changed_tasks()}"
