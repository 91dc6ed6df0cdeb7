"""POST /api/vote has a path around Flask (vote.fast_vote_api): it must answer exactly as Flask.

Each request goes to two apps on the same real Redis, one with the fast path and one without,
and the answers must match byte for byte once the parts that are new each time (a fresh voter
id, the stream entry id, the cookie's expiry date) are masked. The HTTP tests (test_web.py,
test_security.py, test_capacity.py) run the same contract against the real server.
"""

from __future__ import annotations

import json
import re

import pytest
from votingapp import config, vote
from werkzeug.test import Client

SECRET = "s" * 24


def masked(resp) -> tuple:
    text = resp.get_data(as_text=True)
    text = re.sub(r"[0-9]{10,}-[0-9]+", "<entry>", text)
    text = re.sub(r"[0-9a-f]{32}(_[A-Za-z0-9_-]{22})?", "<voter>", text)
    cookies = [
        re.sub(r"Expires=[^;]+", "Expires=<date>", re.sub(r"voter_id=[^;]+", "voter_id=<voter>", c))
        for c in resp.headers.getlist("Set-Cookie")
    ]
    headers = sorted((k.lower(), v) for k, v in resp.headers.items() if k.lower() != "set-cookie")
    return resp.status, text, headers, cookies


@pytest.fixture(params=[{}, {"URL_PREFIX": "/vote"}, {"VOTER_ID_SECRET": SECRET}])
def apps(request, redis_server, names):
    env = {**redis_server.env(), **names, "VOTE_OPTIONS": "Cats,Dogs", **request.param}
    settings = config.vote_settings(env)
    return {
        "prefix": env.get("URL_PREFIX", ""),
        "fast": Client(vote.create_app(settings, fast_path=True), use_cookies=False),
        "flask": Client(vote.create_app(settings, fast_path=False), use_cookies=False),
    }


CASES = [
    ("new voter", {}, json.dumps({"vote": "Cats"})),
    ("returning voter", {"Cookie": "voter_id=abcdefgh00000001"}, json.dumps({"vote": "Dogs"})),
    ("bad cookie", {"Cookie": "voter_id=no"}, json.dumps({"vote": "Dogs"})),
    ("unknown option", {}, json.dumps({"vote": "Fish"})),
    ("not json", {}, "not json"),
    ("a list", {}, json.dumps(["Cats"])),
    ("a number", {}, json.dumps({"vote": 3})),
    ("nested too deep", {}, "[" * 4000),
    ("too large", {}, json.dumps({"vote": "Cats", "pad": "x" * 5000})),
    ("non-ascii option", {}, json.dumps({"vote": "Kätzchen"})),
]


@pytest.mark.parametrize(("case", "headers", "body"), CASES, ids=[c[0] for c in CASES])
def test_fast_path_answers_as_flask(apps, case, headers, body):
    for path in {"/api/vote", apps["prefix"] + "/api/vote"}:
        fast = apps["fast"].post(path, data=body, headers={"Content-Type": "application/json", **headers})
        slow = apps["flask"].post(path, data=body, headers={"Content-Type": "application/json", **headers})
        assert masked(fast) == masked(slow), (case, path)


def test_fast_path_refusals_match_flask(redis_server, names):
    """Signed ids and a rate limit of 3 a minute: the same sequence of answers from both paths
    (a foreign id is a 400 before the limit is asked, the 4th vote of one address a 429)."""
    env = {**redis_server.env(), **names, "VOTER_ID_SECRET": SECRET, "VOTE_RATE_LIMIT_PER_MINUTE": "3"}
    settings = config.vote_settings(env)
    seen = {}
    for name, fast_path in (("fast", True), ("flask", False)):
        c = Client(vote.create_app(settings, fast_path=fast_path), use_cookies=False)
        answers = [c.post("/api/vote", json={"vote": "Cats"}, headers={"Cookie": "voter_id=abcdefgh00000001"})]
        answers += [c.post("/api/vote", json={"vote": "Cats"}) for _ in range(4)]
        seen[name] = [masked(a) for a in answers]
    assert [a[0] for a in seen["fast"]] == [
        "400 BAD REQUEST",
        "202 ACCEPTED",
        "202 ACCEPTED",
        "202 ACCEPTED",
        "429 TOO MANY REQUESTS",
    ]
    assert seen["fast"] == seen["flask"]
