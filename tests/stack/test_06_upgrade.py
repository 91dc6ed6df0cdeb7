"""A rolling upgrade of every application service under a steady load of votes through the bastion.

The lab runs two vote and two result containers (inventories/lab/host_vars). The application tier
(playbooks/tiers/apps.yml) moves worker, vote and result to a new image while a paced load posts
votes (each from a new voter) and reads the tally through the bastion. Every replica leaves the
bastion's rotation before it is replaced (votingapp.stack.bastion tasks_from: rotation), so:
zero non-2xx answers, zero connection errors, and the tally grows by exactly the accepted votes.
"""

from __future__ import annotations

import http.client
import json
import re
import statistics
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import BASTION_PORT, PLAYBOOKS, REPO, docker, tally, wait_for

RATE = 200  # requests per second, every tenth a tally read
MAX_SECONDS = 600  # the load stops here even if the upgrade has not ended
THREADS = 12
# A voter answered 503 retries as itself, this often and this far apart (20 s at most).
RETRIES_503 = 40
RETRY_DELAY = 0.5


class PacedLoad:
    """Requests at a fixed rate (a schedule, not a loop as fast as possible), bounded in count and time.

    A new connection per request, as distinct voters' browsers would open: a client that reuses a
    keep-alive connection can race a server closing it, which says nothing about the stack.
    """

    def __init__(self, rate: int, max_seconds: int):
        self.rate = rate
        self.limit = rate * max_seconds
        self.next = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.statuses: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _thread in range(THREADS)]
        self.started = 0.0
        self.ended = 0.0
        self.since = 0  # access-log lines at the bastion before the load

    def __enter__(self):
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        self.ended = time.monotonic()

    def _take(self) -> int | None:
        with self.lock:
            if self.stop.is_set() or self.next >= self.limit:
                return None
            self.next += 1
            return self.next - 1

    def _run(self) -> None:
        while (k := self._take()) is not None:
            delay = self.started + k / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._one(k)

    def _one(self, k: int) -> None:
        read = k % 10 == 9
        option = ("Cats", "Dogs")[k % 2]
        cookie = None
        # A 503 is the retryable answer: the voter retries as itself (the cookie the 503 carried),
        # as the vote page does, because the vote may have reached Redis before the connection
        # broke; counted once whatever happened, so the tally must equal the voters answered 202.
        for _attempt in range(RETRIES_503):
            status = self._request(read, option, cookie)
            if status is None or status[0] != 503 or read:
                break
            cookie = status[1] or cookie
            time.sleep(RETRY_DELAY)
        if status is not None and not read and status[0] == 202:
            with self.lock:
                self.accepted[option] += 1

    def _request(self, read: bool, option: str, cookie: str | None) -> tuple[int, str | None] | None:
        conn = http.client.HTTPConnection("127.0.0.1", BASTION_PORT, timeout=15)
        t0 = time.monotonic()
        try:
            if read:
                conn.request("GET", "/result/api/tally", headers={"Connection": "close"})
            else:
                body = json.dumps({"vote": option})
                headers = {"Content-Type": "application/json", "Connection": "close"}
                if cookie:
                    headers["Cookie"] = cookie
                conn.request("POST", "/vote/api/vote", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            elapsed = time.monotonic() - t0
            with self.lock:
                self.latencies.append(elapsed)
                self.statuses[f"{'GET tally' if read else 'POST vote'} {resp.status}"] += 1
            set_cookie = resp.getheader("Set-Cookie")
            return resp.status, set_cookie.split(";", 1)[0] if set_cookie else None
        except (OSError, http.client.HTTPException) as exc:
            with self.lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return None
        finally:
            conn.close()

    def summary(self) -> str:
        seconds = self.ended - self.started
        requests = sum(self.statuses.values()) + len(self.errors)
        lat = sorted(self.latencies) or [0.0]
        return (
            f"{requests} requests in {seconds:.0f}s ({requests / max(seconds, 1):.0f}/s), "
            f"statuses {dict(self.statuses)}, connection errors {len(self.errors)}, "
            f"votes accepted {sum(self.accepted.values())} {dict(self.accepted)}, latency median "
            f"{statistics.median(lat) * 1000:.0f} ms, p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.0f} ms, "
            f"max {lat[-1] * 1000:.0f} ms"
        )


def run_playbook_timed(playbook: Path, *args: str) -> tuple[int, float, str]:
    """ansible-playbook with its normal output (kept for the failure message) and its duration."""
    from conftest import INVENTORY, LAB_ARGS, ansible_env

    t0 = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(INVENTORY), str(playbook), *LAB_ARGS, *args],
        cwd=REPO,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS,
        check=False,
    )
    return proc.returncode, time.monotonic() - t0, proc.stdout[-6000:] + proc.stderr[-2000:]


def inner(host: str, *args: str) -> str:
    return docker("exec", host, "docker", *args).stdout


def images_of(host: str, label: str) -> set[str]:
    ids = inner(host, "ps", "-q", "--filter", f"label=io.votingapp.service={label}").split()
    assert ids, f"no {label} containers run on {host}"
    return set(inner(host, "inspect", "-f", "{{.Config.Image}}", *ids).split())


APP_HOSTS = ("lab-vote", "lab-result", "lab-worker")


@pytest.fixture(scope="module")
def upgrade_image():
    """The current application image with one more label: a new image id and tag, the same code.

    Built on each application host from the image it already runs (a label adds no layer), so the
    upgrade costs no `docker save`/copy/`docker load` of the whole image: the image transport is
    what `make up` tests; this test is about the replacement. The tier runs with the image source
    `pull`, which finds the image present and pulls nothing.
    """
    record = yaml.safe_load((REPO / ".cache" / "images" / "votingapp-app.yml").read_text())
    current = record["app_image_ref"]
    new = f"{current}-upgrade"
    for host in APP_HOSTS:
        build = subprocess.run(
            ["docker", "exec", "-i", "-e", "DOCKER_BUILDKIT=0", host, "docker", "build", "-q", "-t", new, "-"],
            input=f"FROM {current}\nLABEL io.votingapp.test=upgrade\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert build.returncode == 0, f"{host}: {build.stderr}"
    return new


def counts() -> dict[str, int]:
    return dict(tally()["options"])


def settled_counts() -> dict[str, int]:
    """The tally once it stops moving (no vote of an earlier step still on its way): the base."""
    previous = counts()
    for _poll in range(60):
        time.sleep(2)
        now = counts()
        if now == previous:
            return now
        previous = now
    pytest.fail(f"the tally kept moving for 120 s before the test (last {previous})")


ACCESS_LOG = "/var/log/nginx/votingapp_access.log"
STATUS = re.compile(r'" (\d{3}) ')


def access_log_lines() -> int:
    return int(docker("exec", "lab-bastion", "wc", "-l", ACCESS_LOG).stdout.split()[0])


def bastion_failures(since: int) -> list[str]:
    """The bastion's access-log lines after line `since` whose status is not 2xx (with the upstreams
    tried and their statuses), and its error log's last lines: what a failure message needs."""
    lines = docker("exec", "lab-bastion", "tail", "-n", f"+{since + 1}", ACCESS_LOG).stdout.splitlines()
    bad = [line for line in lines if (m := STATUS.search(line)) and not m.group(1).startswith("2")]
    errors = docker("exec", "lab-bastion", "tail", "-n", "20", "/var/log/nginx/error.log").stdout.splitlines()
    return [*bad[:20], "-- error.log:", *errors]


def under_load(playbook: Path, *args: str) -> tuple[int, float, str, PacedLoad]:
    """Run a playbook inside a paced load that starts 3 s before and ends 3 s after it."""
    since = access_log_lines()
    with PacedLoad(RATE, MAX_SECONDS) as load:
        time.sleep(3)
        rc, seconds, output = run_playbook_timed(playbook, *args)
        time.sleep(3)
    load.since = since
    return rc, seconds, output, load


def expect_tally(base: dict[str, int], load: PacedLoad) -> float:
    """The tally reaches base + the accepted votes exactly and stays there; returns the wait."""
    expected = {option: base.get(option, 0) + load.accepted.get(option, 0) for option in set(base) | set(load.accepted)}
    t0 = time.monotonic()
    seen: list[dict[str, int]] = []
    try:
        wait_for(lambda: seen.append(counts()) or seen[-1] == expected, 120, what=f"the tally to reach {expected}")
    except pytest.fail.Exception:
        last = seen[-1] if seen else {}
        missing = {o: expected[o] - last.get(o, 0) for o in expected if last.get(o, 0) != expected[o]}
        pytest.fail(f"after 120 s the tally is {last}, not base {base} + accepted {load.accepted}: off by {missing}")
    waited = time.monotonic() - t0
    time.sleep(3)
    assert counts() == expected, "the tally moved past the accepted votes: a vote was counted twice"
    return waited


def test_rolling_upgrade_under_load_fails_no_request_and_loses_no_vote(lab, upgrade_image):
    new_image = upgrade_image
    base = settled_counts()
    rc, seconds, output, load = under_load(
        PLAYBOOKS / "tiers" / "apps.yml", "-e", f"votingapp_image={new_image}", "-e", "votingapp_image_source=pull"
    )
    print(f"\nrolling upgrade (worker, 2 vote and 2 result replicas): apps.yml {seconds:.0f}s; {load.summary()}")
    assert rc == 0, output
    for host, service in zip(APP_HOSTS, ("vote", "result", "worker"), strict=True):
        assert images_of(host, service) == {new_image}, f"{service} on {host} was not upgraded"
    nginx_conf = docker("exec", "lab-bastion", "cat", "/etc/nginx/nginx.conf").stdout
    servers = [line for line in nginx_conf.splitlines() if "# rotation " in line]
    assert len(servers) == 4, servers
    assert not [line for line in servers if " down " in line], f"a replica was left out of rotation: {servers}"

    assert not load.errors, f"{len(load.errors)} connection errors, first: {load.errors[:5]}"
    failed = {status: n for status, n in load.statuses.items() if not status.endswith((" 200", " 202"))}
    assert not failed, f"answers other than 2xx: {failed}; at the bastion:\n" + "\n".join(bastion_failures(load.since))
    waited = expect_tally(base, load)
    print(f"tally == accepted votes exactly, {waited:.1f}s after the load")


def test_redis_and_postgres_restart_under_load_answer_503_and_lose_no_accepted_vote(lab):
    """Settings each server reads only at start: the data tier restarts Redis and PostgreSQL."""
    base = settled_counts()
    redis_restarts = docker("exec", "lab-redis", "docker", "inspect", "-f", "{{.State.StartedAt}}", "redis").stdout
    pg_pid = docker("exec", "lab-postgres", "head", "-1", "/var/lib/postgresql/15/main/postmaster.pid").stdout
    rc, seconds, output, load = under_load(
        PLAYBOOKS / "tiers" / "data.yml", "-e", "redis_maxmemory_mb=384", "-e", "postgres_max_connections=120"
    )
    print(f"\nRedis and PostgreSQL restarted by data.yml ({seconds:.0f}s); {load.summary()}")
    assert rc == 0, output
    assert (
        docker("exec", "lab-redis", "docker", "inspect", "-f", "{{.State.StartedAt}}", "redis").stdout != redis_restarts
    )
    assert docker("exec", "lab-postgres", "head", "-1", "/var/lib/postgresql/15/main/postmaster.pid").stdout != pg_pid
    assert not load.errors, f"{len(load.errors)} connection errors, first: {load.errors[:5]}"
    # 503 is the retryable answer while a dependency restarts; anything else is a failure.
    failed = {status: n for status, n in load.statuses.items() if not status.endswith((" 200", " 202", " 503"))}
    assert not failed, f"answers other than 2xx and 503: {failed}; at the bastion:\n" + "\n".join(
        bastion_failures(load.since)
    )
    assert load.accepted, "no vote was accepted at all"
    waited = expect_tally(base, load)
    print(f"every accepted vote counted exactly once, {waited:.1f}s after the load")
