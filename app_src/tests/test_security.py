"""Ballot-stuffing defences (issue #15 item 10), opt-in: signed voter ids and a per-client limit."""

from __future__ import annotations

import pytest
import requests
from harness import Service, free_port
from votingapp.ids import VoterIds, valid_voter_id

SECRET = "test-voter-id-secret-0123456789"


def test_signed_ids_are_valid_voter_ids_and_only_ours_are_accepted():
    ids = VoterIds(SECRET)
    issued = ids.issue()
    assert valid_voter_id(issued) and len(issued) == 55
    assert ids.accepts(issued)
    assert not ids.accepts(issued[:-1] + ("A" if issued[-1] != "A" else "B"))  # tampered signature
    assert not ids.accepts(issued[:32])  # the unsigned part alone
    assert not VoterIds("another-secret-0123456789").accepts(issued)
    assert not ids.accepts("attacker-chosen-id")
    assert VoterIds().accepts("attacker-chosen-id")  # unsigned mode: what the app did before


@pytest.fixture(scope="module")
def guarded_vote(redis_server, workdir):
    env = {
        **redis_server.env(),
        "VOTE_STREAM": "security-votes",
        "PORT": str(free_port()),
        "BIND_ADDRESS": "127.0.0.1",
        "VOTER_ID_SECRET": SECRET,
        "VOTE_RATE_LIMIT_PER_MINUTE": "5",
        "FORWARDED_HOPS": "1",
        "GUNICORN_WORKERS": "1",
    }
    svc = Service("vote", env, workdir, "vote-guarded").start()
    yield svc
    svc.stop()


def vote(svc, client_ip: str, cookie: str | None = None):
    headers = {"X-Forwarded-For": f"203.0.113.77, {client_ip}"}
    if cookie:
        headers["Cookie"] = f"voter_id={cookie}"
    return requests.post(f"{svc.url}/api/vote", json={"vote": "Cats"}, headers=headers, timeout=5)


def test_ids_the_service_did_not_issue_are_refused(guarded_vote):
    first = vote(guarded_vote, "198.51.100.1")
    assert first.status_code == 202
    issued = first.json()["voter_id"]
    assert VoterIds(SECRET).accepts(issued)
    assert vote(guarded_vote, "198.51.100.1", issued).status_code == 202  # its own id: a vote change
    for forged in ("attacker-chosen-id", issued[:32], issued[:-2] + "xx"):
        refused = vote(guarded_vote, "198.51.100.1", forged)
        assert refused.status_code == 400, forged
        assert "not issued by this service" in refused.json()["error"]
        new = refused.cookies.get("voter_id")
        assert new and VoterIds(SECRET).accepts(new)  # a fresh id to vote with
    assert requests.get(f"{guarded_vote.url}/", timeout=5).cookies["voter_id"].count("_") >= 1


def test_per_client_rate_limit(guarded_vote):
    answers = [vote(guarded_vote, "198.51.100.9").status_code for _ in range(8)]
    assert answers[:5] == [202] * 5
    assert set(answers[5:]) == {429}
    assert vote(guarded_vote, "198.51.100.10").status_code == 202  # another client is not affected
    metrics = requests.get(f"{guarded_vote.url}/metrics", timeout=5).text
    assert 'votingapp_vote_votes_total{outcome="rate_limited"}' in metrics
