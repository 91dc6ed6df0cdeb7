"""app_src/compose.yaml end to end, in order: up from nothing, the file's promises, votes, faults, down -v.

The tests share one project (the session fixture) and one ledger of accepted votes: after every step
the result service's tally must equal the ledger exactly (no vote lost, none counted twice).
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid

import yaml
from conftest import OPTIONS, SERVICES, TIMINGS, Project, run

LONG_RUNNING = tuple(s for s in SERVICES if s != "migrate")


def voters(n: int, tag: str) -> list[str]:
    return [f"{tag}-{i}-{uuid.uuid4().hex[:12]}" for i in range(n)]


def post_all(project: Project, ids: list[str]) -> None:
    for i, voter in enumerate(ids):
        assert project.vote(voter, OPTIONS[i % 3 % 2]) == 202


def test_up_from_nothing(project: Project):
    assert project.secrets.stat().st_mode & 0o777 == 0o600
    for service in LONG_RUNNING:
        state = project.inspect(service)["State"]
        assert state["Status"] == "running", service
        assert state["Health"]["Status"] == "healthy", service
    migrate = project.inspect("migrate")["State"]
    assert (migrate["Status"], migrate["ExitCode"]) == ("exited", 0)
    assert f"http://127.0.0.1:{project.vote_port}/" in project.up_output
    assert f"http://127.0.0.1:{project.result_port}/" in project.up_output
    assert project.tally() == {"options": dict.fromkeys(OPTIONS, 0), "total": 0}


def test_every_service_has_a_health_check_and_a_read_only_root(project: Project):
    config = yaml.safe_load(project.compose("config"))
    assert set(config["services"]) == set(SERVICES)
    for name, service in config["services"].items():
        assert "healthcheck" in service, name
        assert service.get("read_only") is True, name
        inspected = project.inspect(name)
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True, name
        test = (inspected["Config"].get("Healthcheck") or {}).get("Test") or []
        if name == "migrate":
            assert test == ["NONE"]  # a job: its exit status is its health
        else:
            assert test and test != ["NONE"], name


def test_only_vote_and_result_are_published_on_loopback(project: Project):
    published = {}
    for service in SERVICES:
        bindings = project.inspect(service)["HostConfig"]["PortBindings"] or {}
        published[service] = sorted((b["HostIp"], b["HostPort"]) for v in bindings.values() for b in v or [])
    assert published == {
        "redis": [],
        "postgres": [],
        "migrate": [],
        "worker": [],
        "vote": [("127.0.0.1", str(project.vote_port))],
        "result": [("127.0.0.1", str(project.result_port))],
    }
    # The data networks have no route out; only vote and result sit on a network that publishes.
    for network in ("redis", "postgres"):
        out = run(["docker", "network", "inspect", "-f", "{{.Internal}}", f"{project.name}_{network}"]).stdout
        assert out.strip() == "true", network


def psql(project: Project, user: str, password_key: str | None, sql: str) -> subprocess.CompletedProcess:
    password = project.secret(password_key) if password_key else "wrong-password"
    args = ["docker", "exec", "-e", f"PGPASSWORD={password}", project.container("postgres")]
    args += ["psql", "-h", "127.0.0.1", "-U", user, "-d", "votingapp", "-v", "ON_ERROR_STOP=1", "-Atc", sql]
    return run(args, timeout=30)


def test_database_roles_have_least_privilege(project: Project):
    su = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    owner = psql(project, "votingapp_owner", "OWNER_PG_PASSWORD", su)
    assert owner.returncode == 0 and owner.stdout.strip() == "f", owner.stderr
    assert psql(project, "votingapp_result", "RESULT_PG_PASSWORD", "SELECT count(*) FROM vote_counts").returncode == 0
    denied = psql(project, "votingapp_result", "RESULT_PG_PASSWORD", "UPDATE vote_counts SET count = count + 1")
    assert denied.returncode != 0 and "permission denied" in denied.stderr
    create = psql(project, "votingapp_worker", "WORKER_PG_PASSWORD", "CREATE TABLE intruder (x int)")
    assert create.returncode != 0 and "permission denied" in create.stderr
    wrong = psql(project, "votingapp_worker", None, "SELECT 1")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr


def test_votes_reach_the_tally_exactly(project: Project):
    post_all(project, voters(60, "first"))
    assert project.vote("bad-choice-voter", "Hamsters") == 400
    TIMINGS["60 votes -> tally exact"] = project.wait_tally()


def test_a_changed_vote_counts_once(project: Project):
    project.wait_tally()
    before = project.tally()
    voter = f"changer-{uuid.uuid4().hex[:12]}"
    for choice in ("Cats", "Dogs", "Cats", "Dogs"):
        assert project.vote(voter, choice) == 202
    project.wait_tally()
    after = project.tally()
    assert after["total"] == before["total"] + 1
    assert after["options"] == {**before["options"], "Dogs": before["options"]["Dogs"] + 1}


def test_worker_restart_loses_no_vote(project: Project):
    ids = voters(80, "restart")
    failures: list[str] = []

    def keep_voting():
        for i, voter in enumerate(ids):
            status = project.vote(voter, OPTIONS[i % 2])
            if status != 202:
                failures.append(f"{voter}: {status}")
            time.sleep(0.02)

    thread = threading.Thread(target=keep_voting)
    thread.start()
    start = time.monotonic()
    project.compose("restart", "worker")
    TIMINGS["docker compose restart worker"] = time.monotonic() - start
    thread.join(timeout=60)
    assert not failures, failures  # the worker is not on the vote path
    TIMINGS["after worker restart: tally exact"] = project.wait_tally()


def test_redis_stop_start_loses_no_accepted_vote(project: Project):
    # With the worker stopped, the accepted votes wait in the stream: only Redis's append-only file
    # can carry them over its restart.
    project.compose("stop", "worker")
    post_all(project, voters(30, "in-redis"))
    project.compose("stop", "redis")
    assert not project.ready(project.vote_url)
    refused = [project.vote(v, "Cats") for v in voters(3, "redis-down")]
    assert refused == [503, 503, 503]  # refused, not silently lost (and not in the ledger)
    start = time.monotonic()
    project.compose("start", "redis")
    project.wait_ready(project.vote_url)
    TIMINGS["redis start -> vote ready"] = time.monotonic() - start
    post_all(project, voters(10, "after-redis"))
    start = time.monotonic()
    project.compose("start", "worker")
    project.wait_tally()
    TIMINGS["worker start after redis restart -> tally exact"] = time.monotonic() - start


def test_postgres_stop_start_loses_no_accepted_vote(project: Project):
    post_all(project, voters(20, "before-pg"))
    project.compose("stop", "postgres")
    post_all(project, voters(30, "pg-down"))  # accepted: they wait in Redis for the worker
    assert not project.ready(project.result_url)
    start = time.monotonic()
    project.compose("start", "postgres")
    project.wait_tally(timeout=90)
    TIMINGS["postgres start -> tally exact"] = time.monotonic() - start


def test_down_v_leaves_nothing_behind(project: Project):
    assert project.labelled("container") and project.labelled("volume") and project.labelled("network")
    start = time.monotonic()
    down = project.local("down", timeout=120)
    TIMINGS["down -v"] = time.monotonic() - start
    assert down.returncode == 0, down.stderr
    left = {kind: project.labelled(kind) for kind in ("container", "volume", "network")}
    assert left == {"container": [], "volume": [], "network": []}
    assert project.secrets.exists()  # the passwords stay for the next up
