"""The Docker Compose local mode end to end: app_src/compose.yaml brought up by app_src/compose/local.sh.

`make test-compose` runs these tests with the offline images (APP_IMAGE, REDIS_IMAGE and POSTGRES_IMAGE
in the environment). The project has its own name, free 127.0.0.1 ports and a passwords file in a
temporary directory, so it never meets `make compose-up`'s project or the lab; the fixture removes it
with `down -v --remove-orphans` even when a test fails. Times are printed at the end of the run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
LOCAL_SH = REPO / "app_src" / "compose" / "local.sh"
SERVICES = ("redis", "postgres", "migrate", "worker", "vote", "result")
OPTIONS = ("Cats", "Dogs")
TIMINGS: dict[str, float] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class Ledger:
    """Every vote the vote service accepted (202), in order: the last vote of a voter wins."""

    last: dict[str, str] = field(default_factory=dict)

    def expected(self) -> dict:
        counts = Counter(self.last.values())
        return {"options": {o: counts.get(o, 0) for o in OPTIONS}, "total": len(self.last)}


@dataclass
class Project:
    name: str
    env: dict[str, str]
    secrets: Path
    vote_port: int
    result_port: int
    ledger: Ledger = field(default_factory=Ledger)
    up_output: str = ""

    @property
    def vote_url(self) -> str:
        return f"http://127.0.0.1:{self.vote_port}"

    @property
    def result_url(self) -> str:
        return f"http://127.0.0.1:{self.result_port}"

    def local(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return run([str(LOCAL_SH), *args], env=self.env, timeout=timeout)

    def compose(self, *args: str, timeout: float = 120) -> str:
        proc = self.local("compose", *args, timeout=timeout)
        assert proc.returncode == 0, f"compose {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def container(self, service: str) -> str:
        # The docker CLI with Compose's labels: much faster than a compose process per question.
        filters = ["--filter", f"label=com.docker.compose.project={self.name}"]
        filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = run(["docker", "ps", "-a", "-q", *filters]).stdout.split()
        assert ids, f"no container for {service}"
        return ids[0]

    def inspect(self, service: str) -> dict:
        out = run(["docker", "inspect", self.container(service)]).stdout
        return json.loads(out)[0]

    def secret(self, key: str) -> str:
        for line in self.secrets.read_text().splitlines():
            if line.startswith(f"{key}="):
                return line.split("=", 1)[1]
        raise KeyError(key)

    def labelled(self, kind: str) -> list[str]:
        """Containers, volumes or networks that carry this project's Compose label."""
        label = f"label=com.docker.compose.project={self.name}"
        listing = {"container": ["ps", "-a"], "volume": ["volume", "ls"], "network": ["network", "ls"]}[kind]
        return run(["docker", *listing, "-q", "--filter", label]).stdout.split()

    # -- the app's HTTP contract

    def vote(self, voter: str, choice: str, timeout: float = 5) -> int:
        """POST one vote; a 202 goes into the ledger. Returns the status code."""
        url = f"{self.vote_url}/api/vote"
        r = requests.post(url, json={"vote": choice}, cookies={"voter_id": voter}, timeout=timeout)
        if r.status_code == 202:
            assert r.json()["voter_id"] == voter
            self.ledger.last[voter] = choice
        return r.status_code

    def tally(self) -> dict:
        r = requests.get(f"{self.result_url}/api/tally", timeout=5)
        r.raise_for_status()
        return r.json()

    def ready(self, url: str) -> bool:
        try:
            return requests.get(f"{url}/readyz", timeout=3).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, url: str, timeout: float = 60) -> float:
        start = time.monotonic()
        while not self.ready(url):
            assert time.monotonic() - start < timeout, f"{url}/readyz not 200 after {timeout}s"
            time.sleep(0.2)
        return time.monotonic() - start

    def wait_tally(self, timeout: float = 60) -> float:
        """Until the result page shows exactly the ledger's tally (and still does a moment later)."""
        expected = self.ledger.expected()
        start = time.monotonic()
        seen = None
        while time.monotonic() - start < timeout:
            try:
                seen = self.tally()
            except requests.RequestException as exc:
                seen = repr(exc)
            if seen == expected:
                took = time.monotonic() - start
                time.sleep(1.0)  # a vote counted twice would show up now
                assert self.tally() == expected
                return took
            time.sleep(0.2)
        raise AssertionError(f"tally {seen} != expected {expected} after {timeout}s")


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Project:
    for var in ("APP_IMAGE", "REDIS_IMAGE", "POSTGRES_IMAGE"):
        image = os.environ.get(var)
        if not image:
            pytest.fail(f"{var} is not set: run `make test-compose`, which passes the locally built images")
        if run(["docker", "image", "inspect", image]).returncode != 0:
            pytest.fail(f"{var}={image} is not a local image: run `make prereqs app-image`")
    name = f"votingapp-test-{os.getpid()}"
    vote_port, result_port = free_port(), free_port()
    secrets = tmp_path_factory.mktemp("compose") / "secrets.env"
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": name,
        "COMPOSE_SECRETS": str(secrets),
        "VOTE_PORT": str(vote_port),
        "RESULT_PORT": str(result_port),
        "PUBLISH_ADDRESS": "127.0.0.1",
        "COMPOSE_WAIT_TIMEOUT": "240",
    }
    proj = Project(name=name, env=env, secrets=secrets, vote_port=vote_port, result_port=result_port)
    try:
        start = time.monotonic()
        up = proj.local("up", timeout=330)
        TIMINGS["up from nothing (local.sh up, until every service is healthy)"] = time.monotonic() - start
        assert up.returncode == 0, f"local.sh up failed:\n{up.stdout}\n{up.stderr}"
        proj.up_output = up.stdout
        yield proj
    finally:
        start = time.monotonic()
        down = proj.local("down", timeout=120)
        TIMINGS.setdefault("down -v (fixture teardown)", time.monotonic() - start)
        if down.returncode != 0:
            print(f"local.sh down failed:\n{down.stdout}\n{down.stderr}")


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("compose local mode: times")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{seconds:7.1f}s  {what}")
