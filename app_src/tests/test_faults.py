"""Fault tests: votes flow while a worker is killed -9, PostgreSQL restarts, Redis restarts.

Each ends with the same audit: every vote answered 2xx is stored once with its choice, nothing
unknown is stored, and the aggregate counts equal a full recount of the votes table.
"""

from __future__ import annotations

import signal
import time

import pytest
import requests
from conftest import counts, tally_from_votes
from harness import Service, VoteLoad, free_port, start_all, stop_all, wait_for

pytestmark = pytest.mark.slow


def vote_service(env, workdir, name):
    return Service("vote", {**env, "PORT": str(free_port()), "BIND_ADDRESS": "127.0.0.1"}, workdir, name)


def start_worker(env, workdir, name, **extra):
    worker_env = {**env, "WORKER_CONSUMER": name, "METRICS_PORT": "0", "WORKER_BATCH_SIZE": "50", **extra}
    return Service("worker", worker_env, workdir, name).start()


def start_pair(env, workdir, tag):
    vote = vote_service(env, workdir, f"vote-{tag}")
    worker = Service(
        "worker", {**env, "WORKER_CONSUMER": tag, "METRICS_PORT": "0", "WORKER_BATCH_SIZE": "50"}, workdir, tag
    )
    start_all([vote, worker])
    return vote, worker


def wait_drained(redis_client, stream, pg, expected_min: int, timeout: float = 60):
    def drained():
        info = [g for g in redis_client.xinfo_groups(stream) if g["name"] == b"workers"]
        if not info or info[0]["pending"] or info[0].get("lag"):
            return False
        with pg.cursor() as cur:
            cur.execute("SELECT count(*) FROM votes")
            return cur.fetchone()[0] >= expected_min

    wait_for(drained, timeout, "the stream to drain into PostgreSQL", interval=0.2)


def audit(pg, load: VoteLoad):
    with pg.cursor() as cur:
        cur.execute("SELECT voter_id, vote FROM votes")
        stored = dict(cur.fetchall())
    lost = {v for v in load.accepted if v not in stored}
    wrong = {v for v in load.accepted if v in stored and stored[v] != load.accepted[v]}
    unknown = set(stored) - set(load.attempted())
    assert not lost, f"{len(lost)} accepted votes lost, e.g. {sorted(lost)[:5]}"
    assert not wrong, f"{len(wrong)} votes stored with the wrong choice"
    assert not unknown, f"{len(unknown)} votes stored that nobody sent"
    recount = tally_from_votes(pg)
    assert counts(pg) == recount, "aggregate counts differ from a recount: a vote was counted twice or not at all"
    assert sum(recount.values()) == len(stored)
    # a 5xx/transport error may still have reached the stream (answer lost); anything else was refused
    return len(stored) - len(load.accepted)


def test_kill_9_workers_mid_batch(redis_server, pg_server, pg, base_env, names, workdir):
    stream = names["VOTE_STREAM"]
    r = redis_server.client()
    vote, worker_a = start_pair(base_env, workdir, "kill-a")
    worker_b = final = None
    try:
        load = VoteLoad(vote.url, threads=4, max_votes=4000, seconds=8, tag="kill").start()
        time.sleep(1.5)
        # Hold the aggregate table so worker A is caught inside a batch: entries read, its
        # transaction open and not committed. Then kill -9 it there.
        blocker = pg_server.connect()
        blocker.autocommit = False
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE vote_counts IN SHARE ROW EXCLUSIVE MODE")

        su = pg_server.superuser()  # only a superuser sees other roles' sessions

        def a_blocked():
            with su.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = 'votingapp-worker-kill-a' AND wait_event_type = 'Lock'"
                )
                return cur.fetchone()[0] == 1

        wait_for(a_blocked, 10, "worker A to block inside its batch transaction")
        held = r.xpending_range(stream, "workers", "-", "+", 10000, consumername="kill-a")
        worker_a.kill(signal.SIGKILL)
        blocker.rollback()
        blocker.close()
        su.close()
        assert held, "worker A should have been holding unacknowledged entries"
        # B reclaims what A had read but not acknowledged
        worker_b = start_worker(base_env, workdir, "kill-b", WORKER_CLAIM_IDLE_MS="500")
        wait_for(lambda: "reclaimed" in worker_b.logs(), 30, "worker B to reclaim worker A's entries")
        time.sleep(1.0)
        worker_b.kill(signal.SIGKILL)  # wherever it is
        final = start_worker(base_env, workdir, "kill-c", WORKER_CLAIM_IDLE_MS="500")
        load.wait(30)
        assert len(load.accepted) > 200, load.statuses
        wait_drained(r, stream, pg, len(load.accepted))
        assert audit(pg, load) == 0
    finally:
        stop_all([vote, worker_a, worker_b, final])


def test_postgres_restart_while_votes_flow(redis_server, pg_server, pg, base_env, result_env, names, workdir):
    vote, worker = start_pair(base_env, workdir, "pgrestart")
    result = Service(
        "result", {**result_env, "PORT": str(free_port()), "BIND_ADDRESS": "127.0.0.1"}, workdir, "result-pgrestart"
    ).start()
    try:
        assert requests.get(f"{result.url}/api/tally", timeout=5).status_code == 200  # pools a connection
        # Paced, so votes still flow while the server is down (unpaced, the load can end first).
        load = VoteLoad(vote.url, threads=4, max_votes=4000, seconds=8, rate=500, tag="pgre").start()
        time.sleep(2.0)
        pg_server.restart(down_seconds=2.0)
        load.wait(30)
        pg.close()
        pg = pg_server.connect()
        assert len(load.accepted) > 200, load.statuses
        wait_drained(redis_server.client(), names["VOTE_STREAM"], pg, len(load.accepted))
        assert audit(pg, load) == 0
        assert "postgres unavailable" in worker.logs()
        assert worker.proc.poll() is None, "the worker must survive a database restart"
        # result's pooled connections died with the restart: the next request still answers
        tally = requests.get(f"{result.url}/api/tally", timeout=5)
        assert tally.status_code == 200
        assert tally.json()["total"] == len(load.accepted)
    finally:
        stop_all([vote, worker, result])
        pg.close()


def test_redis_restart_while_votes_flow(redis_server, pg, base_env, names, workdir):
    vote, worker = start_pair(base_env, workdir, "redisrestart")
    try:
        # Paced, so votes still flow while the server is down (unpaced, the load can end first).
        load = VoteLoad(vote.url, threads=4, max_votes=4000, seconds=8, rate=500, tag="rdre").start()
        time.sleep(2.0)
        redis_server.restart(down_seconds=2.0)
        load.wait(30)
        assert len(load.accepted) > 200, load.statuses
        assert load.statuses.get(503, 0) > 0, f"the outage should have been answered with 503: {load.statuses}"
        wait_drained(redis_server.client(), names["VOTE_STREAM"], pg, len(load.accepted))
        extra = audit(pg, load)
        # Redis may execute an XADD and go down before its reply leaves: that client saw 503 for a
        # vote that is stored. Voting again is safe (one row per voter), so only the count matters.
        assert extra <= sum(n for s, n in load.statuses.items() if not isinstance(s, int) or s >= 500)
        assert "redis unavailable" in worker.logs()
        assert worker.proc.poll() is None
        assert requests.get(f"{vote.url}/readyz", timeout=5).status_code == 200
    finally:
        stop_all([vote, worker])
