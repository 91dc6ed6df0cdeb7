"""Monitoring (votingapp.stack.monitoring on the bastion): Prometheus, reached through the bastion at
/prometheus/, scrapes every vote, result and worker of the lab, the node exporter of every host and
the Redis and PostgreSQL exporters (logged in as their read-only users), the metrics are not public
through the bastion, and stopping the worker fires the stalled-worker alert within its `for:` window
(20 s in inventories/lab/group_vars/monitoring.yml)."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest
import yaml
from conftest import INVENTORY, api_vote, docker, http, tally, wait_for

LAB_WINDOWS = yaml.safe_load((INVENTORY / "group_vars" / "monitoring.yml").read_text())


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]]


def prometheus(path: str, **params) -> dict:
    query = "?" + urllib.parse.urlencode(params) if params else ""
    status, body, _headers = http("GET", "/prometheus/api/v1/" + path + query)
    assert status == 200, f"GET /prometheus/api/v1/{path} through the bastion answered {status}: {body[:300]}"
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["data"]


def targets() -> dict[str, list[dict]]:
    """Active targets by job: [{host, instance, health, lastError}]."""
    by_job: dict[str, list[dict]] = {}
    for t in prometheus("targets", state="active")["activeTargets"]:
        by_job.setdefault(t["labels"]["job"], []).append(
            {
                "host": t["labels"]["host"],
                "instance": t["labels"]["instance"],
                "health": t["health"],
                "error": t["lastError"],
            }
        )
    return by_job


def firing(alert: str) -> list[dict]:
    return [a for a in prometheus("alerts")["alerts"] if a["labels"]["alertname"] == alert and a["state"] == "firing"]


def inner(host: str, *args: str) -> str:
    return docker("exec", host, "docker", *args).stdout


def targets_if_all_up() -> dict[str, list[dict]] | None:
    found = targets()
    return found if all(t["health"] == "up" for ts in found.values() for t in ts) else None


@pytest.fixture(scope="module")
def up_targets(lab):
    """Every target healthy (the first scrapes come within one interval of the converge)."""
    return wait_for(targets_if_all_up, timeout=60, what="every Prometheus target up")


def test_prometheus_is_served_under_the_prefix_through_the_bastion(lab):
    status, body, _headers = http("GET", "/prometheus/-/ready")
    assert status == 200, body
    # Alertmanager is Prometheus' own and only alerting endpoint, and it answers.
    managers = prometheus("alertmanagers")["activeAlertmanagers"]
    assert [m["url"] for m in managers] == ["http://127.0.0.1:9093/api/v2/alerts"]


def test_every_application_instance_is_a_target_and_up(up_targets):
    # One target per vote and result replica and one per worker container (worker_replicas is 1 in the lab),
    # each at the address the lab's flow networks give the bastion (host_vars/).
    assert {j: sorted((t["host"], t["instance"]) for t in ts) for j, ts in up_targets.items()} == {
        # Both replicas of each (vote_replicas, result_replicas: 2 in the lab), on consecutive ports.
        "vote": [("lab-vote", "10.231.1.11:80"), ("lab-vote", "10.231.1.11:81")],
        "result": [("lab-result", "10.231.2.12:80"), ("lab-result", "10.231.2.12:81")],
        "worker": [("lab-worker", "10.231.7.13:9101")],
        "prometheus": [("lab-bastion", "127.0.0.1:9090")],
        "alertmanager": [("lab-bastion", "127.0.0.1:9093")],
        # Every host's node exporter, at its address on a network it shares with the bastion (the
        # bastion's own on loopback), and the data exporters on the admin networks.
        "node": [
            ("lab-bastion", "127.0.0.1:9100"),
            ("lab-postgres", "10.231.9.15:9100"),
            ("lab-redis", "10.231.8.14:9100"),
            ("lab-result", "10.231.2.12:9100"),
            ("lab-vote", "10.231.1.11:9100"),
            ("lab-worker", "10.231.7.13:9100"),
        ],
        "redis": [("lab-redis", "10.231.8.14:9121")],
        "postgres": [("lab-postgres", "10.231.9.15:9187")],
    }
    # The application's own metrics arrive (not just `up`): a vote's outcome counter exists only once a
    # vote was cast, and the worker that applied it counts it.
    api_vote("Cats")
    for metric in (
        'votingapp_vote_votes_total{outcome="accepted"}',
        'votingapp_worker_entries_total{outcome="applied"}',
        "votingapp_worker_stream_lag",
        "votingapp_result_db_errors_total",
        'votingapp_http_responses_total{job="vote", code="202"}',
        # The exporters reach their databases with their users: up, with the figures the alerts read.
        "redis_up == 1",
        "redis_memory_max_bytes > 0",
        "pg_up == 1",
        "pg_settings_max_connections > 0",
        "sum(pg_stat_database_numbackends) > 0",
    ):
        wait_for(lambda m=metric: prometheus("query", query=m)["result"], timeout=30, what=f"{metric} in Prometheus")


def test_the_rules_are_loaded_with_the_lab_windows(lab):
    rules = {r["name"]: r for g in prometheus("rules")["groups"] for r in g["rules"]}
    assert {
        "VotingappWorkerStalled",
        "VotingappWorkerLagGrowing",
        "VotingappWorkerPendingStuck",
        "VotingappDeadLetters",
        "VotingappVoteQueueDown",
        "VotingappResultDatabaseErrors",
        "VotingappTargetDown",
        "VotingappHttpErrors",
        "VotingappRedisMemoryNearLimit",
        "VotingappPostgresConnectionsNearLimit",
    } <= set(rules)
    assert rules["VotingappWorkerStalled"]["duration"] == seconds(LAB_WINDOWS["monitoring_worker_stalled_for"])
    assert all(r["health"] == "ok" for r in rules.values()), {n: r.get("lastError") for n, r in rules.items()}


def test_metrics_are_not_public_through_the_bastion(up_targets):
    # Prometheus scrapes the instances directly (above); the bastion, the public entry, refuses the
    # path in every spelling nginx normalises to it, and still serves the pages next to it.
    for path in ("/vote/metrics", "/result/metrics", "/vote/metrics/", "/vote//metrics", "/result/%6detrics"):
        status, body, _headers = http("GET", path)
        assert status == 404, f"GET {path} through the bastion answered {status}"
        assert "votingapp_" not in body, path
    assert http("GET", "/vote/")[0] == 200
    assert http("GET", "/result/api/tally")[0] == 200


def lab_secret(key: str) -> str:
    return yaml.safe_load((INVENTORY.parent.parent / ".lab" / "secrets.yml").read_text())[key]


def test_the_exporters_users_are_read_only(up_targets):
    # Redis: after scrapes (up_targets waited for them) the ACL log has no command refused to the
    # monitoring user (the ACL grants what the exporter needs), and that user reads no key.
    admin = ["--user", "admin", "--pass", lab_secret("redis_admin_password"), "--no-auth-warning"]
    monitoring = ["--user", "monitoring", "--pass", lab_secret("redis_monitoring_password"), "--no-auth-warning"]
    # The log keeps old entries (this test's own refused XLEN below, on a lab that stays up): start
    # it anew, let the exporter scrape twice, then read it.
    assert inner("lab-redis", "exec", "redis", "redis-cli", *admin, "ACL", "LOG", "RESET").strip() == "OK"
    time.sleep(3 * seconds(LAB_WINDOWS["monitoring_scrape_interval"]))
    acl_log = inner("lab-redis", "exec", "redis", "redis-cli", *admin, "ACL", "LOG").split("\n")
    refused = [acl_log[i + 1] for i, line in enumerate(acl_log[:-1]) if line == "username"]
    assert "monitoring" not in refused, acl_log
    assert inner("lab-redis", "exec", "redis", "redis-cli", *monitoring, "PING").strip() == "PONG"
    xlen = inner("lab-redis", "exec", "redis", "redis-cli", *monitoring, "XLEN", "votes")
    assert "NOPERM" in xlen, xlen
    # PostgreSQL: the exporter's role is a member of pg_monitor only, and reads no table of the app.
    member_of = docker(
        "exec",
        "-u",
        "postgres",
        "lab-postgres",
        "psql",
        "-Atc",
        "SELECT string_agg(b.rolname, ',' ORDER BY b.rolname) FROM pg_auth_members m"
        " JOIN pg_roles r ON r.oid = m.member JOIN pg_roles b ON b.oid = m.roleid"
        " WHERE r.rolname = 'votingapp_monitoring'",
    ).stdout.strip()
    assert member_of == "pg_monitor"
    denied = docker(
        "exec",
        "-u",
        "postgres",
        "lab-postgres",
        "psql",
        "-Atd",
        "votingapp",
        "-c",
        "SELECT has_table_privilege('votingapp_monitoring', 'votes', 'SELECT')",
    ).stdout.strip()
    assert denied == "f"
    # Neither password is on a command line (every local user can read those).
    args = (
        docker("exec", "lab-redis", "ps", "-eo", "args").stdout
        + docker("exec", "lab-postgres", "ps", "-eo", "args").stdout
    )
    assert lab_secret("redis_monitoring_password") not in args
    assert lab_secret("postgres_monitoring_password") not in args


def test_stopping_the_worker_fires_the_stalled_worker_alert(up_targets):
    assert not firing("VotingappWorkerStalled"), "the alert fires on a healthy lab"
    workers = inner("lab-worker", "ps", "-q", "--filter", "name=votingapp-worker").split()
    assert workers, "no worker containers run on lab-worker"
    total_before = tally()["total"]
    window = seconds(LAB_WINDOWS["monitoring_worker_stalled_for"])
    # Scrape and evaluation intervals and the rate window add to the `for:`: the alert may take
    # that much longer, no more.
    budget = (
        window + seconds(LAB_WINDOWS["monitoring_rate_window"]) + 4 * seconds(LAB_WINDOWS["monitoring_scrape_interval"])
    )
    inner("lab-worker", "stop", *workers)
    cast = 0
    try:
        started = time.monotonic()
        alerts: list[dict] = []
        # Votes keep arriving (one a second, bounded by the budget) while nobody drains them.
        while time.monotonic() - started < budget + 30 and not alerts:
            api_vote("Dogs")
            cast += 1
            alerts = firing("VotingappWorkerStalled")
            time.sleep(1)
        elapsed = time.monotonic() - started
        assert alerts, f"VotingappWorkerStalled did not fire within {budget + 30}s of stopping the worker"
        assert elapsed >= window, f"fired after {elapsed:.0f}s, before its for: window of {window}s"
        assert elapsed <= budget, f"fired after {elapsed:.0f}s, more than for: {window}s plus the intervals ({budget}s)"
        assert "start or fix the worker" in alerts[0]["annotations"]["summary"]
        # The stopped worker is also a target down, named by its host.
        assert [t["health"] for t in targets()["worker"]] == ["down"]
    finally:
        inner("lab-worker", "start", *workers)
    wait_for(lambda: tally()["total"] >= total_before + 1, timeout=90, what="the restarted worker draining the backlog")
    wait_for(
        lambda: not firing("VotingappWorkerStalled"), timeout=budget + 30, what="the stalled-worker alert to resolve"
    )
    assert cast > 0
