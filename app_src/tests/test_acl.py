"""vote and worker with the least-privilege Redis ACL users the `redis` role creates
(roles/redis/templates/users.acl.j2): every command the services send must be allowed."""

from __future__ import annotations

import uuid

import pytest
import redis
import requests
from conftest import counts
from harness import Service, free_port, start_all, stop_all, wait_for


@pytest.fixture
def acl_users(redis_server, names):
    r = redis_server.client()
    tag = uuid.uuid4().hex[:6]
    vote_user, worker_user = f"vote-{tag}", f"worker-{tag}"
    stream, dlq = names["VOTE_STREAM"], names["DEAD_LETTER_STREAM"]
    r.execute_command(
        "ACL", "SETUSER", vote_user, "on", ">vote-pw", "resetkeys", "resetchannels", "-@all", f"~{stream}",
        "+xadd", "+ping", "+auth", "+hello", "+client|setname",
    )  # fmt: skip
    r.execute_command(
        "ACL", "SETUSER", worker_user, "on", ">worker-pw", "resetkeys", "resetchannels", "-@all", f"~{stream}",
        "+xreadgroup", "+xack", "+xautoclaim", "+xclaim", "+xgroup|create", "+xgroup|createconsumer", "+xpending",
        "+xinfo", "+xlen", "+xrange", "+xtrim", "+ping", "+auth", "+hello", "+client|setname",
        f"(~{dlq} +xadd +xlen +xinfo +xrange)",
    )  # fmt: skip
    yield {"vote": (vote_user, "vote-pw"), "worker": (worker_user, "worker-pw")}
    r.execute_command("ACL", "DELUSER", vote_user, worker_user)


@pytest.mark.slow
def test_services_work_with_least_privilege_users(acl_users, base_env, redis_server, pg, names, workdir):
    vote_user, vote_pw = acl_users["vote"]
    worker_user, worker_pw = acl_users["worker"]
    vote = Service(
        "vote",
        {**base_env, "REDIS_USER": vote_user, "REDIS_PASSWORD": vote_pw, "PORT": str(free_port()),
         "BIND_ADDRESS": "127.0.0.1"},
        workdir,
        "acl-vote",
    )  # fmt: skip
    worker = Service(
        "worker",
        {**base_env, "REDIS_USER": worker_user, "REDIS_PASSWORD": worker_pw, "WORKER_CONSUMER": "acl",
         "METRICS_PORT": "0"},
        workdir,
        "acl-worker",
    )  # fmt: skip
    start_all([vote, worker])
    try:
        assert requests.get(f"{vote.url}/readyz", timeout=5).status_code == 200
        for choice in ("Cats", "Dogs", "Dogs"):
            assert requests.post(f"{vote.url}/api/vote", json={"vote": choice}, timeout=5).status_code == 202
        # a poison entry exercises the dead-letter XADD through the selector
        redis_server.client().xadd(names["VOTE_STREAM"], {"voter_id": "acl-poison-1", "vote": "Fish"})
        wait_for(lambda: counts(pg) == {"Cats": 1, "Dogs": 2}, 30, f"votes counted ({worker.log_path})")
        wait_for(lambda: redis_server.client().xlen(names["DEAD_LETTER_STREAM"]) == 1, 30, "dead letter")
        logs = worker.logs()
        assert "NOPERM" not in logs
        assert "XDEL refused" not in logs
    finally:
        stop_all([vote, worker])


@pytest.mark.slow
def test_wrong_password_is_reported_without_the_password(base_env, workdir):
    vote = Service(
        "vote",
        {**base_env, "REDIS_USER": "nobody-here", "REDIS_PASSWORD": "wrong-secret-123", "PORT": str(free_port()),
         "BIND_ADDRESS": "127.0.0.1"},
        workdir,
        "acl-wrong",
    ).start()  # fmt: skip
    try:
        ready = requests.get(f"{vote.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert "redis" in ready.json()["reason"]
        assert "wrong-secret-123" not in ready.text
        assert requests.post(f"{vote.url}/api/vote", json={"vote": "Cats"}, timeout=10).status_code == 503
    finally:
        vote.stop()
    assert "wrong-secret-123" not in vote.logs()


def test_acl_denies_what_the_vote_user_must_not_do(acl_users, redis_server, names):
    user, pw = acl_users["vote"]
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, username=user, password=pw)
    client.xadd(names["VOTE_STREAM"], {"voter_id": "acl-check-1", "vote": "Cats"})
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.xrange(names["VOTE_STREAM"])
