"""Integration harness: a moto server for the whole session, reset before every test, and a
helper that runs ansible-playbook against it with the ansible.posix.json callback.

ansible-test integration runs targets in its own environment where an in-process moto is hard to
reach, so the targets under targets/ are driven from here with plain ansible-playbook runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "aws_sim"))
import moto_fidelity  # noqa: E402

TARGETS = Path(__file__).resolve().parent / "targets"
REGION = "us-east-1"
ENDPOINT_VAR = "VOTINGAPP_AWS_ENDPOINT"
# Dummy credentials: moto accepts anything, and they keep a real account out of reach.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
# Generous: on a loaded 2-core machine one aws_up.yml run has taken over 4 minutes.
PLAYBOOK_TIMEOUT = 900


@pytest.fixture(scope="session")
def moto_endpoint():
    moto_fidelity.apply()
    # Port 0: the OS picks a free port, so parallel sessions never collide.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    """Fresh moto state for each test; boto3 clients for out-of-band changes and assertions."""
    requests.post(moto_endpoint + "/moto-api/reset", timeout=10).raise_for_status()
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    return Aws(moto_endpoint)


@dataclass
class Aws:
    endpoint: str
    _clients: dict = field(default_factory=dict)

    def client(self, service, region=REGION):
        if (service, region) not in self._clients:
            self._clients[service, region] = boto3.client(service, endpoint_url=self.endpoint, region_name=region)
        return self._clients[service, region]


@dataclass
class Run:
    rc: int
    stats: dict
    plays: list
    stderr: str

    @property
    def changed(self):
        return sum(host.get("changed", 0) for host in self.stats.values())

    @property
    def failures(self):
        return sum(host.get("failures", 0) + host.get("unreachable", 0) for host in self.stats.values())

    def tasks(self):
        for play in self.plays:
            yield from play.get("tasks", [])

    def changed_tasks(self):
        """Names of the tasks that changed something, without the "role : " prefix."""
        return [
            t["task"]["name"].split(" : ", 1)[-1]
            for t in self.tasks()
            if any(r.get("changed") for r in t.get("hosts", {}).values())
        ]

    def failed_messages(self):
        """One line per failed task, with the message of each failed loop item."""
        out = []
        for t in self.tasks():
            for r in t.get("hosts", {}).values():
                if (r.get("failed") or r.get("unreachable")) and not r.get("ignore_errors"):
                    items = [i.get("msg") for i in r.get("results", []) if isinstance(i, dict) and i.get("failed")]
                    out.append(f"{t['task']['name']}: {r.get('msg')}" + "".join(f"\n  item: {m}" for m in items))
        return out


def run_playbook(endpoint, playbook, extra_vars=None, env=None, inventory="localhost,"):
    """ansible-playbook with the JSON callback; returns the parsed stats and per-task results."""
    cmd = [
        # The venv's own ansible-playbook, whether or not the venv is on PATH.
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        inventory,
        str(playbook),
        # Modules run on the controller with the venv's python, where boto3 is.
        "-c",
        "local",
        "-e",
        json.dumps({"ansible_python_interpreter": sys.executable}),
    ]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    run_env = dict(os.environ)
    run_env.update(CREDENTIALS)
    run_env.update(
        {
            ENDPOINT_VAR: endpoint,
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "ANSIBLE_ROLES_PATH": str(TARGETS),
            "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".cache" / "collections"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        }
    )
    run_env.update(env or {})
    proc = subprocess.run(
        cmd, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT, check=False
    )
    try:
        out = json.loads(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        pytest.fail(f"ansible-playbook gave no JSON (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return Run(rc=proc.returncode, stats=out.get("stats", {}), plays=out.get("plays", []), stderr=proc.stderr)


@pytest.fixture
def playbook(aws):
    def _run(path, **kwargs):
        return run_playbook(aws.endpoint, path, **kwargs)

    return _run
