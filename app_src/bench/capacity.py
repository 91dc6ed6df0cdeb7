"""Bounded loopback capacity bench of the web tier: writes docs/benchmarks/capacity.json.

For each gunicorn worker class given (default: gevent gthread), with 2 processes as deployed:
  vote_rps           POST /api/vote with wrk, 16 connections, 3 runs of BENCH_CAP_SECONDS
  viewers            N event-stream viewers opened on result: how many got their first event,
                     and GET /api/tally latency (30 requests) while they stay open
  slow_clients       N clients that stall mid-headers or mid-body on vote: /healthz and
                     POST /api/vote latency (20 rounds) beside them

    python app_src/bench/capacity.py [--json FILE] [gevent] [gthread]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402
from harness import OWNER, RESULT, PostgresServer, RedisServer, Service, free_port  # noqa: E402
from test_capacity import open_viewers, timed_get, viewers_served  # noqa: E402
from votingapp import schema  # noqa: E402

SECONDS = float(os.environ.get("BENCH_CAP_SECONDS", "8"))
VIEWER_COUNTS = (50, 500, 2000)
SLOW_CLIENTS = 200


def latencies(port: int, method: str, path: str, body: str | None, n: int) -> dict:
    ok, failed = [], 0
    for _ in range(n):
        status, seconds = timed_get(port, path, method, body, timeout=2)
        if status in (200, 202):
            ok.append(seconds * 1000)
        else:
            failed += 1
            break  # not answering: do not wait for every timeout
    return {
        "answered": len(ok),
        "failed": failed,
        "p50_ms": round(statistics.median(ok), 2) if ok else None,
        "max_ms": round(max(ok), 2) if ok else None,
    }


def vote_rps(url: str) -> list[dict]:
    bench.WrkRun(url, connections=16, seconds=2, tag="warm").run()
    runs = []
    for i in range(3):
        w = bench.WrkRun(url, connections=16, seconds=SECONDS, tag=f"cap{i}").run()
        runs.append({"rps": round(w.rate), "p99_ms": round(w.summary["p99_us"] / 1000, 1), "errors": w.errors})
    return runs


def viewers(port: int) -> dict:
    out = {}
    for n in VIEWER_COUNTS:
        socks = []
        try:
            socks = open_viewers(port, n)
            served = viewers_served(socks, time.monotonic() + 20)
            out[n] = {"served": served, "tally": latencies(port, "GET", "/api/tally", None, 30)}
        except OSError as exc:
            out[n] = {"error": exc.__class__.__name__}
        finally:
            for s in socks:
                s.close()
        time.sleep(1)
    return out


def slow_clients(port: int) -> dict:
    socks = []
    try:
        for i in range(SLOW_CLIENTS):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(
                b"POST /api/vote HTTP/1.1\r\nHost: x\r\nContent-Ty"
                if i % 2
                else b"POST /api/vote HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n\r\n{"
            )
            socks.append(s)
        time.sleep(0.5)
        return {
            "clients": SLOW_CLIENTS,
            "healthz": latencies(port, "GET", "/healthz", None, 20),
            "vote": latencies(port, "POST", "/api/vote", '{"vote": "Cats"}', 20),
        }
    finally:
        for s in socks:
            s.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("classes", nargs="*", default=["gevent", "gthread"])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="votingapp-capacity-"))
    redis_server = RedisServer(root, appendfsync="everysec").start()
    pg = PostgresServer().init().start().provision()
    conn = pg.connect(OWNER)
    schema.migrate(conn)
    conn.close()
    started = time.time()
    results = {}
    try:
        for worker_class in args.classes:
            web = {"BIND_ADDRESS": "127.0.0.1", "GUNICORN_WORKER_CLASS": worker_class}
            vote = Service(
                "vote",
                {**redis_server.env(), **web, "PORT": str(free_port()), "VOTE_STREAM": f"cap-{worker_class}"},
                root,
                f"vote-{worker_class}",
            ).start()
            try:
                rps = vote_rps(vote.url)
                slow = slow_clients(vote.port)
            finally:
                vote.stop()
            result = Service("result", {**pg.env(RESULT), **web, "PORT": str(free_port())}, root, f"res-{worker_class}")
            result.start()
            try:
                crowd = viewers(result.port)
            finally:
                result.stop()
            results[worker_class] = {"vote_rps": rps, "slow_clients": slow, "viewers": crowd}
            print(worker_class, json.dumps(results[worker_class]), flush=True)
    finally:
        redis_server.stop()
        pg.destroy()
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "loadavg_at_start": round(os.getloadavg()[0], 2),
        "workers_per_service": 2,
        "results": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
