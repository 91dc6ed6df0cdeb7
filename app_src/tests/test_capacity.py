"""Capacity under crowds on loopback: SSE viewers and slow clients must not take request capacity.

Bounded: a fixed number of sockets, every wait has a deadline. The tests assert that every
request is answered (within the client's 3 s timeout) and every viewer served, not how fast: the
machine's two CPUs are shared (docs/testing.md). `make bench-capacity` records the latencies.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import time

import pytest
from harness import RESULT, Service, free_port

pytestmark = pytest.mark.slow

VIEWERS = 600
SLOW_CLIENTS = 200


def timed_get(port: int, path: str, method: str = "GET", body: str | None = None, timeout: float = 3.0):
    """(status or exception name, seconds) of one request on a new connection."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        status = resp.status
    except OSError as exc:
        status = exc.__class__.__name__
    finally:
        conn.close()
    return status, time.monotonic() - started


def probe(port: int, requests: list[tuple[str, str, str | None]], rounds: int = 20):
    answers = []
    for _ in range(rounds):
        for method, path, body in requests:
            answers.append((path, *timed_get(port, path, method, body)))
            if not isinstance(answers[-1][1], int):
                return answers  # the service is not answering: no need to wait for every timeout
    return answers


def open_viewers(port: int, n: int, path: str = "/api/stream") -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        socks.append(s)
    return socks


def viewers_served(socks: list[socket.socket], deadline: float) -> int:
    """How many viewers received their stream's first event before the deadline."""
    served = 0
    for s in socks:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        got = b""
        with contextlib.suppress(OSError):
            while b"data: " not in got and len(got) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        served += b"data: " in got
    return served


@pytest.fixture
def result_service(pg_server, pg, workdir):
    env = {**pg_server.env(RESULT), "PORT": str(free_port()), "BIND_ADDRESS": "127.0.0.1", "URL_PREFIX": "/result"}
    svc = Service("result", env, workdir, "result-crowd").start()
    yield svc
    svc.stop()


def test_600_event_stream_viewers_do_not_stop_tally_or_health(result_service):
    """Issue #15 item 3: past about 64 viewers /api/tally and /healthz stopped answering."""
    port = result_service.port
    socks = open_viewers(port, VIEWERS // 2) + open_viewers(port, VIEWERS // 2, "/result/api/stream")
    try:
        served = viewers_served(socks, time.monotonic() + 20)
        answers = probe(port, [("GET", "/api/tally", None), ("GET", "/healthz", None), ("GET", "/readyz", None)])
        metrics = timed_get(port, "/metrics")
        open_streams = None
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        for line in conn.getresponse().read().decode().splitlines():
            if line.startswith("votingapp_result_stream_clients"):
                open_streams = float(line.split()[-1])
        conn.close()
    finally:
        for s in socks:
            s.close()
    assert served == VIEWERS, f"only {served} of {VIEWERS} viewers got an event"
    failed = [a for a in answers if a[1] != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed while {VIEWERS} viewers watched: {failed[:3]}"
    assert metrics[0] == 200
    assert open_streams == VIEWERS  # summed over the worker processes


@pytest.fixture
def vote_service(redis_server, names, workdir):
    env = {
        **redis_server.env(),
        **names,
        "PORT": str(free_port()),
        "BIND_ADDRESS": "127.0.0.1",
        "HTTP_CLIENT_TIMEOUT": "2",
    }
    svc = Service("vote", env, workdir, "vote-slow-clients").start()
    yield svc
    svc.stop()


def test_slow_clients_cost_a_connection_and_are_timed_out(vote_service):
    """Issue #15 item 4: 24 clients sending slow headers or bodies stopped the vote service."""
    port = vote_service.port
    slow_headers, slow_bodies = [], []
    try:
        for i in range(SLOW_CLIENTS):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:
                s.sendall(b"POST /api/vote HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: app")
                slow_headers.append(s)
            else:
                s.sendall(
                    b"POST /api/vote HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 400\r\n\r\n{"vote": '
                )
                slow_bodies.append(s)
        time.sleep(0.5)  # every slow client has reached the server
        answers = probe(port, [("GET", "/healthz", None), ("POST", "/api/vote", '{"vote": "Cats"}')], rounds=25)
        failed = [a for a in answers if a[1] not in (200, 202)]
        assert not failed, f"{len(failed)} of {len(answers)} failed beside {SLOW_CLIENTS} slow clients: {failed[:3]}"
        # a body that stops coming is dropped after HTTP_CLIENT_TIMEOUT (2 s here)
        deadline = time.monotonic() + 8
        dropped = 0
        for s in slow_bodies:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            with contextlib.suppress(OSError):
                while s.recv(4096):
                    pass
                dropped += 1
        assert dropped == len(slow_bodies), f"{dropped} of {len(slow_bodies)} stalled bodies were dropped"
    finally:
        for s in slow_headers + slow_bodies:
            s.close()


def test_sigterm_ends_open_streams_at_once(pg_server, pg, workdir):
    """A rolling upgrade must not wait graceful_timeout (10 s) for viewers to leave."""
    import signal

    env = {**pg_server.env(RESULT), "PORT": str(free_port()), "BIND_ADDRESS": "127.0.0.1"}
    svc = Service("result", env, workdir, "result-sigterm").start()
    socks = open_viewers(svc.port, 20)
    try:
        assert viewers_served(socks, time.monotonic() + 10) == 20
        started = time.monotonic()
        svc.kill(signal.SIGTERM)
        svc.proc.wait(timeout=30)
        assert svc.proc.returncode == 0
        assert time.monotonic() - started < 8  # graceful_timeout is 10 s
    finally:
        for s in socks:
            s.close()
        svc.stop()
