"""The lab end to end: fixtures that bring the lab up (or reuse it) and run playbooks against it.

`make test-stack` runs these tests. They drive the real lab: six systemd host containers, the
collection's roles deployed by playbooks/site.yml, the bastion published on 127.0.0.1.
With CI=true the lab is removed at the end (even when a test fails); otherwise it stays for the
developer to inspect (`make down` removes it). LAB_KEEP=1 / LAB_KEEP=0 overrides either default.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The browser test launches chromium with the application tests' helper (app_src/tests/chromium.py).
sys.path.insert(0, str(REPO / "app_src" / "tests"))
INVENTORY = REPO / "inventories" / "lab"
PLAYBOOKS = REPO / "playbooks"
HERE_PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
BASTION_PORT = int(os.environ.get("LAB_BASTION_PORT", "8080"))
BASE_URL = f"http://127.0.0.1:{BASTION_PORT}"
# Extra ansible-playbook options for every run, as `make test-stack LAB_ARGS=...` passes them.
LAB_ARGS = shlex.split(os.environ.get("LAB_ARGS", ""))


@dataclass
class PlaybookRun:
    """One ansible-playbook run with the ansible.posix.json callback."""

    rc: int
    result: dict
    stderr: str

    @property
    def stats(self) -> dict:
        return self.result.get("stats", {})

    def changed(self) -> dict[str, int]:
        return {host: s.get("changed", 0) for host, s in self.stats.items()}

    def failed_hosts(self) -> list[str]:
        return [h for h, s in self.stats.items() if s.get("failures", 0) or s.get("unreachable", 0)]

    def task_results(self, task_name: str) -> dict[str, dict]:
        """Results by host of every task with this name (the last one wins)."""
        found: dict[str, dict] = {}
        for play in self.result.get("plays", []):
            for task in play.get("tasks", []):
                if task["task"]["name"] == task_name:
                    found.update(task["hosts"])
        return found

    def changed_tasks(self) -> list[str]:
        """`host: task` for every task that reported a change (the idempotence failure message)."""
        out = []
        for play in self.result.get("plays", []):
            for task in play.get("tasks", []):
                for host, res in task["hosts"].items():
                    if res.get("changed"):
                        out.append(f"{host}: {task['task']['name']}")
        return out


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(REPO / ".cache" / "collections"))
    env.setdefault("ANSIBLE_HOME", str(REPO / ".cache" / "ansible"))
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def run_playbook(playbook: Path, *args: str, timeout: int = 900) -> PlaybookRun:
    """Run a playbook against the lab inventory and return its JSON report (never raises on rc)."""
    env = ansible_env()
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    cmd = ["ansible-playbook", "-i", str(INVENTORY), str(playbook), *LAB_ARGS, *args]
    if BASTION_PORT != 8080:
        cmd += ["-e", f"lab_bastion_port={BASTION_PORT}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        result = {"unparsed": proc.stdout[-4000:]}
    return PlaybookRun(proc.returncode, result, proc.stderr[-4000:])


def run_playbook_live(playbook: Path, *args: str, timeout: int = 1200) -> int:
    """Run a playbook with the normal output streamed into the test log (for the long lab_up)."""
    cmd = ["ansible-playbook", "-i", str(INVENTORY), str(playbook), *LAB_ARGS, *args]
    if BASTION_PORT != 8080:
        cmd += ["-e", f"lab_bastion_port={BASTION_PORT}"]
    return subprocess.run(cmd, cwd=REPO, env=ansible_env(), timeout=timeout, check=False).returncode


def docker(*args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def http(method: str, path: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 10):
    """(status, body, headers) of a request through the bastion; HTTP errors are results, not exceptions."""
    # BASE_URL is a fixed http://127.0.0.1 address, never a user-supplied scheme.
    req = urllib.request.Request(BASE_URL + path, data=data, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace"), dict(err.headers)


def tally() -> dict:
    status, body, _headers = http("GET", "/result/api/tally")
    assert status == 200, f"GET /result/api/tally through the bastion answered {status}: {body[:300]}"
    return json.loads(body)


def wait_for(predicate, timeout: float, interval: float = 1.0, what: str = "condition"):
    """Poll predicate() until it returns a truthy value; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})")


def api_vote(option: str) -> None:
    """One vote through the bastion as a new voter (no cookie), which must be accepted (202)."""
    status, body, _headers = http(
        "POST",
        "/vote/api/vote",
        data=json.dumps({"vote": option}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 202, f"vote answered {status}: {body[:300]}"


def keep_lab() -> bool:
    """Whether the lab stays up after the tests: locally yes (inspect it, `make down`), in CI no."""
    if os.environ.get("LAB_KEEP"):
        return os.environ["LAB_KEEP"] == "1"
    return os.environ.get("CI", "").lower() != "true"


@pytest.fixture(scope="session")
def lab():
    """The lab, up and converged: lab_up.yml (idempotent, so a running lab is reused and converged)."""
    started = time.monotonic()
    try:
        # LAB_SKIP_UP=1: test a lab that is already up without converging it first (iterating on tests).
        if os.environ.get("LAB_SKIP_UP") != "1":
            rc = run_playbook_live(PLAYBOOKS / "lab_up.yml")
            assert rc == 0, f"playbooks/lab_up.yml failed (rc={rc}); its output is above"
            print(f"lab_up.yml took {time.monotonic() - started:.0f}s")
        yield
    finally:
        if not keep_lab():
            run_playbook_live(PLAYBOOKS / "lab_down.yml")
