"""Fault injection: each fault is followed by playbooks/verify.yml, which must name it as the first
broken hop with the right failure class; then the fault is repaired and the stack checked again."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import PLAYBOOKS, REPO, api_vote, docker, http, run_playbook, tally, wait_for

# The lab's fixed addresses (inventories/lab/group_vars/all/lab.yml).
WORKER_ON_DB = "10.231.5.13"


def verify() -> tuple[int, str]:
    """rc of verify.yml and its verdict line (FIRST BROKEN HOP ... or ALL GREEN ...)."""
    run = run_playbook(PLAYBOOKS / "verify.yml", "-e", "verify_sample_interval=2", "-e", "verify_timeout=3")
    msg = ""
    for task in ("Name the first broken hop", "Report all green"):
        res = run.task_results(task).get("localhost", {})
        if res.get("msg") and not res.get("skipped"):
            msg = res["msg"]
            break
    msg = msg or json.dumps(run.result)[-2000:] + run.stderr
    return run.rc, " ".join(str(msg).split())


def first_broken(msg: str) -> tuple[str, str]:
    """(hop, status) of verify's verdict: `FIRST BROKEN HOP [status] hop: message`."""
    m = re.match(r"FIRST BROKEN HOP:? (?:(.+?) )?\[(\w+)\]\s*(.*)", msg)
    assert m, f"verify.yml did not name a broken hop: {msg[:1500]}"
    hop = m.group(1) or m.group(3).split(": ")[0]
    return hop, m.group(2)


def inner(host: str, *args: str) -> str:
    """A docker command run by the Docker engine inside a lab host."""
    return docker("exec", host, "docker", *args).stdout


def psql(sql: str) -> None:
    docker("exec", "-u", "postgres", "lab-postgres", "psql", "-v", "ON_ERROR_STOP=1", "-qc", sql)


def secrets() -> dict:
    return yaml.safe_load((REPO / ".lab" / "secrets.yml").read_text())


@pytest.fixture(scope="module")
def healthy(lab):
    """lab_up.yml ends with verify.yml, so the lab starts green; each test leaves it repaired."""
    assert tally()["total"] >= 0


def test_stopped_worker_is_named_as_not_draining(healthy):
    workers = inner("lab-worker", "ps", "-q", "--filter", "name=votingapp-worker").split()
    assert workers, "no worker containers run on lab-worker"
    total_before = tally()["total"]
    inner("lab-worker", "stop", *workers)
    try:
        for _voter in range(5):  # new voters: a backlog the stopped worker cannot drain
            api_vote("Cats")
        rc, msg = verify()
        hop, status = first_broken(msg)
        assert rc != 0
        assert "worker draining" in hop and status == "stalled", msg
        assert "idle" in msg, msg
    finally:
        inner("lab-worker", "start", *workers)
    wait_for(lambda: tally()["total"] >= total_before + 5, timeout=90, what="the restarted worker draining the backlog")


def test_blocked_worker_to_postgres_is_named_as_a_timeout(healthy):
    docker("network", "disconnect", "lab-db-worker", "lab-worker")
    try:
        rc, msg = verify()
        hop, status = first_broken(msg)
        assert rc != 0
        assert hop.startswith("worker") and hop.endswith("-> postgres") and status == "timeout", msg
    finally:
        docker("network", "connect", "--ip", WORKER_ON_DB, "lab-db-worker", "lab-worker")


def test_wrong_result_db_password_is_named_as_auth_failure(healthy):
    psql("ALTER ROLE votingapp_result PASSWORD 'not-the-configured-one'")
    try:
        rc, msg = verify()
        hop, status = first_broken(msg)
        assert rc != 0
        assert hop.startswith("result") and hop.endswith("-> postgres") and status == "auth_failed", msg
    finally:
        psql(f"ALTER ROLE votingapp_result PASSWORD '{secrets()['postgres_result_password']}'")


def test_stopped_vote_service_is_named_as_refused(healthy):
    inner("lab-vote", "stop", "votingapp-vote")
    try:
        rc, msg = verify()
        hop, status = first_broken(msg)
        assert rc != 0
        assert hop.startswith("bastion -> vote") and status == "refused", msg
    finally:
        inner("lab-vote", "start", "votingapp-vote")
    wait_for(lambda: http("GET", "/vote/readyz")[0] == 200, timeout=60, what="vote ready again through the bastion")


def test_verify_is_green_again_and_votes_flow(healthy):
    total_before = tally()["total"]
    api_vote("Dogs")
    wait_for(lambda: tally()["total"] >= total_before + 1, timeout=60, what="a vote after the repairs")
    rc, msg = verify()
    assert rc == 0 and msg.startswith("ALL GREEN"), f"verify.yml after the repairs: {msg[:1500]}"
