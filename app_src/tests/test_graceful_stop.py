"""SIGTERM (docker stop) while votes arrive: every request the service accepted is answered.

What a rolling upgrade relies on: the listening socket closes first (new connections are refused,
so a proxy tries another replica), requests in flight complete with their 202, keep-alive
connections are told `Connection: close` instead of being cut, and the process exits 0 well
within the 10 s graceful timeout. Every 202 is in the stream.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time

import pytest
from harness import Service, free_port

pytestmark = pytest.mark.slow

CLIENTS = 8
SECONDS_BEFORE = 1.0


def load(port: int, keep_alive: bool, stop: threading.Event, out: dict, lock: threading.Lock) -> None:
    """Votes back to back until `stop` (bounded by the test), each outcome counted."""
    body = json.dumps({"vote": "Cats"})
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.connect()
            headers = {"Content-Type": "application/json"}
            if not keep_alive:
                headers["Connection"] = "close"
            conn.request("POST", "/api/vote", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            outcome = "accepted" if resp.status == 202 else f"status {resp.status}"
            if not keep_alive or resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except ConnectionRefusedError:
            # the listening socket is closed: not accepted, a proxy would try another replica
            outcome, conn = "refused", None
            time.sleep(0.01)
        except (OSError, http.client.HTTPException) as exc:
            outcome = f"error {exc.__class__.__name__}"
            if conn is not None:
                conn.close()
            conn = None
        with lock:
            out[outcome] = out.get(outcome, 0) + 1


@pytest.mark.parametrize("keep_alive", [False, True], ids=["connection-per-vote", "keep-alive"])
def test_sigterm_under_load_loses_no_accepted_request(redis_server, names, workdir, keep_alive):
    env = {**redis_server.env(), **names, "PORT": str(free_port()), "BIND_ADDRESS": "127.0.0.1"}
    svc = Service("vote", env, workdir, f"vote-sigterm-{'ka' if keep_alive else 'close'}").start()
    out: dict[str, int] = {}
    lock, stop = threading.Lock(), threading.Event()
    threads = [threading.Thread(target=load, args=(svc.port, keep_alive, stop, out, lock)) for _ in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        time.sleep(SECONDS_BEFORE)
        with lock:
            before = out.get("accepted", 0)
        # docker stop: SIGTERM to the container's first process (gunicorn's master) only
        started = time.monotonic()
        os.kill(svc.proc.pid, signal.SIGTERM)
        svc.proc.wait(timeout=15)
        stopped_s = time.monotonic() - started
        time.sleep(0.3)  # clients now meet a closed port
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        svc.stop()
    assert before > 0, f"no vote was answered before SIGTERM: {out}"
    assert svc.proc.returncode == 0
    assert stopped_s < 8, f"stopping took {stopped_s:.1f}s"
    failures = {k: v for k, v in out.items() if k not in ("accepted", "refused")}
    assert not failures, f"requests the service accepted failed during the stop: {failures} (all: {out})"
    assert out.get("refused", 0) > 0, f"the port was never closed to new connections: {out}"
    added = redis_server.client().xinfo_stream(names["VOTE_STREAM"])["entries-added"]
    assert added == out["accepted"], f"{out['accepted']} votes answered 202, {added} in the stream"
