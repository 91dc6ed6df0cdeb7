"""vote and result under real gunicorn, at the root and behind a path prefix, with a real worker."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
import requests
from harness import RESULT, Service, free_port, start_all, stop_all, wait_for


@pytest.fixture(scope="module")
def stack(redis_server, pg_server, workdir):
    tag = uuid.uuid4().hex[:8]
    common = {**redis_server.env(), "VOTE_STREAM": f"web-{tag}", "DEAD_LETTER_STREAM": f"web-{tag}:dead"}
    logs = workdir
    services = {
        "vote": Service("vote", {**common, "PORT": str(free_port()), "BIND_ADDRESS": "127.0.0.1"}, logs, "vote-root"),
        "vote_prefixed": Service(
            "vote",
            {**common, "PORT": str(free_port()), "BIND_ADDRESS": "127.0.0.1", "URL_PREFIX": "/vote"},
            logs,
            "vote-prefixed",
        ),
        "result": Service(
            "result",
            {
                **pg_server.env(RESULT),
                "PORT": str(free_port()),
                "BIND_ADDRESS": "127.0.0.1",
                "URL_PREFIX": "/result",
                "RESULT_POLL_MS": "100",
            },
            logs,
            "result-web",
        ),
        "worker": Service(
            "worker",
            {**common, **pg_server.env(), "WORKER_CONSUMER": "web-w", "METRICS_PORT": str(free_port())},
            logs,
            "worker-web",
        ),
    }
    start_all(services.values())
    yield services
    stop_all(services.values())


def test_ballot_at_root_and_behind_prefix(stack):
    root, pref = stack["vote"].url, stack["vote_prefixed"].url
    page = requests.get(f"{root}/", timeout=5)
    assert page.status_code == 200
    assert 'action="/"' in page.text
    assert 'href="/static/style.css' in page.text
    for path in ("/vote", "/vote/"):
        page = requests.get(f"{pref}{path}", timeout=5)
        assert page.status_code == 200, path
        assert 'action="/vote/"' in page.text
        css = re.search(r'href="([^"]+\.css)"', page.text).group(1)
        assert css.startswith("/vote/static/")
        assert requests.get(f"{pref}{css}", timeout=5).status_code == 200
    # every route answers both with and without the prefix (health checks hit the root)
    assert requests.get(f"{pref}/", timeout=5).status_code == 200
    assert requests.get(f"{pref}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{pref}/vote/healthz", timeout=5).status_code == 200


def test_voter_cookie_is_httponly_samesite_and_stable(stack):
    s = requests.Session()
    first = s.get(f"{stack['vote_prefixed'].url}/vote/", timeout=5)
    cookie = first.headers["Set-Cookie"]
    assert cookie.startswith("voter_id=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/vote" in cookie
    again = s.post(f"{stack['vote_prefixed'].url}/vote/api/vote", json={"vote": "Cats"}, timeout=5)
    assert again.status_code == 202
    assert "Set-Cookie" not in again.headers
    assert again.json()["voter_id"] == s.cookies["voter_id"]


def test_vote_http_contract(stack, redis_server):
    url = stack["vote"].url
    r = redis_server.client()
    stream = stack["vote"].env["VOTE_STREAM"]
    before = r.xinfo_stream(stream)["entries-added"] if r.exists(stream) else 0
    ok = requests.post(f"{url}/api/vote", json={"vote": "Dogs"}, timeout=5)
    assert ok.status_code == 202
    body = ok.json()
    assert body["vote"] == "Dogs"
    assert re.fullmatch(r"[0-9a-f]{32}", body["voter_id"])
    form = requests.post(f"{url}/", data={"vote": "Cats"}, timeout=5)
    assert form.status_code == 200
    assert "was recorded" in form.text
    # counted by entries ever added: the worker deletes entries once they are committed
    assert r.xinfo_stream(stream)["entries-added"] == before + 2

    unknown = requests.post(f"{url}/api/vote", json={"vote": "Fish"}, timeout=5)
    assert unknown.status_code == 400
    assert "unknown option" in unknown.json()["error"]
    for bad in ("not json", json.dumps(["Cats"]), json.dumps({"vote": 3})):
        resp = requests.post(f"{url}/api/vote", data=bad, headers={"Content-Type": "application/json"}, timeout=5)
        assert resp.status_code == 400, bad
    assert requests.post(f"{url}/", data={"vote": "Fish"}, timeout=5).status_code == 400
    big = requests.post(f"{url}/api/vote", json={"vote": "Cats", "pad": "x" * 10000}, timeout=5)
    assert big.status_code == 413
    assert requests.post(f"{url}/", data={"vote": "Cats", "pad": "x" * 10000}, timeout=5).status_code == 413
    metrics = requests.get(f"{url}/metrics", timeout=5).text
    assert 'votingapp_vote_votes_total{outcome="accepted"}' in metrics
    assert 'votingapp_vote_votes_total{outcome="rejected"}' in metrics


def test_vote_answers_503_when_redis_is_unreachable(workdir):
    dead_port = free_port()  # nothing listens there
    svc = Service(
        "vote",
        {
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(dead_port),
            "PORT": str(free_port()),
            "BIND_ADDRESS": "127.0.0.1",
        },
        workdir,
        "vote-no-redis",
    ).start()
    try:
        started = time.monotonic()
        resp = requests.post(f"{svc.url}/api/vote", json={"vote": "Cats"}, timeout=10)
        assert resp.status_code == 503
        assert "not confirmed" in resp.json()["error"]
        assert time.monotonic() - started < 5
        # A new voter gets its id with the 503: the append may have landed before the connection
        # broke, and the retry must be the same voter to count once.
        assert resp.cookies.get("voter_id"), resp.headers
        again = requests.post(f"{svc.url}/api/vote", json={"vote": "Cats"}, cookies=resp.cookies, timeout=10)
        assert again.status_code == 503 and "voter_id" not in again.cookies
        page = requests.post(f"{svc.url}/", data={"vote": "Cats"}, timeout=10)
        assert page.status_code == 503
        assert "NOT confirmed" in page.text
        ready = requests.get(f"{svc.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert "redis" in ready.json()["reason"]
        assert requests.get(f"{svc.url}/healthz", timeout=5).status_code == 200
    finally:
        svc.stop()


def test_result_api_page_and_stream_follow_votes(stack, pg_server):
    res = stack["result"].url
    assert requests.get(f"{res}/readyz", timeout=5).status_code == 200
    for path in ("/result", "/result/", "/"):
        page = requests.get(f"{res}{path}", timeout=5)
        assert page.status_code == 200
        assert "Results" in page.text
    assert 'data-stream="/result/api/stream"' in requests.get(f"{res}/result/", timeout=5).text
    assert 'data-stream="/api/stream"' in requests.get(f"{res}/", timeout=5).text
    start = requests.get(f"{res}/result/api/tally", timeout=5).json()
    assert set(start["options"]) == {"Cats", "Dogs"}

    with requests.get(f"{res}/result/api/stream", stream=True, timeout=10) as events:
        assert events.headers["Content-Type"].startswith("text/event-stream")
        lines = events.iter_lines(decode_unicode=True)

        def next_data():
            for line in lines:
                if line.startswith("data: "):
                    return json.loads(line[6:])
            raise AssertionError("stream ended")

        first = next_data()
        for _ in range(5):
            assert requests.post(f"{stack['vote'].url}/api/vote", json={"vote": "Dogs"}, timeout=5).status_code == 202
        deadline = time.monotonic() + 10
        seen = first
        while seen["total"] < first["total"] + 5 and time.monotonic() < deadline:
            seen = next_data()
        assert seen["total"] >= first["total"] + 5
        assert seen["options"]["Dogs"] >= first["options"]["Dogs"] + 5
    final = requests.get(f"{res}/api/tally", timeout=5).json()
    assert final["total"] == sum(final["options"].values())
    assert "votingapp_result_query_seconds" in requests.get(f"{res}/metrics", timeout=5).text


def test_worker_exposes_health_and_metrics(stack):
    w = stack["worker"]
    port = w.env["METRICS_PORT"]
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200, 10, "worker ready")
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for name in ("votingapp_worker_entries_total", "votingapp_worker_batch_seconds", "votingapp_worker_stream_lag"):
        assert name in text


def test_worker_stops_cleanly_on_sigterm(stack):
    w = stack["worker"]
    assert w.stop() == 0
    assert "stopped" in w.logs()


def raw_request(port: int, request: bytes) -> tuple[int, dict, bytes]:
    """One request exactly as written (no client-side normalisation of the path or headers)."""
    import http.client
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, dict(resp.getheaders()), resp.read()


def test_voter_id_with_an_encoded_newline_is_not_accepted(stack):
    """Issue #15 item 6: `voter_id="abcdefgh\\012"` was answered 202 and dead-lettered by the worker."""
    port = stack["vote"].port
    body = b'{"vote": "Cats"}'
    status, headers, answer = raw_request(
        port,
        b"POST /api/vote HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Cookie: voter_id="abcdefghij\\012"\r\nConnection: close\r\n'
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
    )
    assert status == 202
    voter = json.loads(answer)["voter_id"]
    assert voter != "abcdefghij\n"
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,64}", voter)
    assert "voter_id=" in headers.get("Set-Cookie", "")  # a new, valid id was issued


def test_deeply_nested_json_is_a_400_not_a_500(stack):
    """Issue #15 item 7: 4 KB of '[' raised RecursionError inside the JSON parser."""
    url = stack["vote"].url
    for body in ("[" * 4000, "{" * 2000, '{"vote": ' + "[" * 3000):
        resp = requests.post(f"{url}/api/vote", data=body, headers={"Content-Type": "application/json"}, timeout=5)
        assert resp.status_code == 400, resp.text[:200]
        assert "Traceback" not in resp.text


@pytest.mark.parametrize("service", ["vote", "vote_prefixed", "result"])
def test_no_redirect_to_a_forged_host(stack, service):
    """Issue #15 item 9: `GET //x` with a forged Host was redirected to that host (slash merging)."""
    port = stack[service].port
    for path in (b"//", b"//healthz", b"//evil.example/", b"/vote//", b"/result//", b"/api//tally", b"/api/tally/"):
        status, headers, _ = raw_request(
            port, b"GET " + path + b" HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        )
        assert not 300 <= status < 400, (path, status, headers.get("Location"))
        assert "evil.example" not in headers.get("Location", "")
