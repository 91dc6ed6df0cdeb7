"""The emulated AWS account (scripts/aws_sim.py): aws_up provisions on moto, a stand-in container
appears for every instance, Ansible reaches the bastion over real OpenSSH on 127.0.0.1 and every other
host only by ProxyJump through it, with the shipped inventories/aws (aws_ec2 plugin pointed at moto),
as the AMI's `admin` user with `become`; the stand-ins' networks carry exactly the security groups'
flows; aws_down removes every resource and the watcher every stand-in.

Run with `make test-aws-sim` (Docker and the host image of `make prereqs`). Each phase prints its
time (pytest -s)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
SIM = [sys.executable, str(REPO / "scripts" / "aws_sim.py")]
BIN = Path(sys.executable).parent
PREFIX = "awssimtest"
# Allowed flows (DESIGN.md): bastion -> every host; vote, worker -> redis; worker, result -> postgres.
ALLOWED = {("bastion", g) for g in ("vote", "result", "worker", "redis", "postgres")} | {
    ("vote", "redis"),
    ("worker", "redis"),
    ("worker", "postgres"),
    ("result", "postgres"),
}


def phase(name, started):
    print(f"[aws-sim] {name}: {time.monotonic() - started:.0f} s", flush=True)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    state = tmp_path_factory.mktemp("aws-sim")
    env = dict(os.environ, AWS_SIM_DIR=str(state), AWS_SIM_PREFIX=PREFIX, AWS_REGION="us-east-1")
    started = time.monotonic()
    out = subprocess.run([*SIM, "up", "--interval", "2"], env=env, capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        key, _sep, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    phase("aws-sim up (moto, key, watcher)", started)
    try:
        yield env
    finally:
        started = time.monotonic()
        subprocess.run([*SIM, "down"], env=env, check=False)
        phase("aws-sim down", started)
        left = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=votingapp.awssim={PREFIX}"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert left.stdout.strip() == "", "stand-ins left behind"


def ansible(env, *args, cmd="ansible-playbook", timeout=900):
    run_env = dict(
        env,
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".cache" / "collections"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json" if cmd == "ansible-playbook" else "default",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
    )
    proc = subprocess.run(
        [str(BIN / cmd), *args], cwd=REPO, env=run_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return proc


def stats(proc):
    out = json.loads(proc.stdout[proc.stdout.index("{") :])
    return out["stats"]


def inventory_args(env):
    return ["-i", "inventories/aws/aws_ec2.yml", "-i", str(Path(env["AWS_SIM_DIR"]) / "inventory.yml")]


def ec2_client(env):
    return boto3.client(
        "ec2",
        endpoint_url=env["VOTINGAPP_AWS_ENDPOINT"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
    )


def stand_ins(env):
    """group -> container name, from moto's instances and the watcher's containers."""
    ec2 = ec2_client(env)
    out = {}
    for r in ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]:
        for i in r["Instances"]:
            group = next(t["Value"] for t in i["Tags"] if t["Key"] == "votingapp-group")
            out[group] = f"{PREFIX}-{i['InstanceId']}"
    return out


def addresses(container):
    out = subprocess.run(
        ["docker", "inspect", container, "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def connects(container, address):
    probe = f"timeout 3 bash -c '</dev/tcp/{address}/22' 2>/dev/null && echo open || echo closed"
    out = subprocess.run(["docker", "exec", container, "sh", "-c", probe], capture_output=True, text=True, check=False)
    return out.stdout.strip() == "open"


def test_provision_reach_over_ssh_and_tear_down(sim, tmp_path):
    env = sim
    ec2 = ec2_client(env)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    up_vars = json.dumps(
        {
            "aws_up_configure_hosts": False,
            "aws_up_public_key_file": str(Path(env["AWS_SIM_DIR"]) / "id_ed25519.pub"),
            "aws_instances_image_id": image,
            "security_groups_admin_cidrs": ["127.0.0.1/32"],
            "ansible_python_interpreter": sys.executable,
        }
    )

    started = time.monotonic()
    up = ansible(env, "-i", "localhost,", "-c", "local", "playbooks/aws_up.yml", "-e", up_vars)
    phase("aws_up (provisioning on moto)", started)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr

    # Stand-ins appear as instances appear; SSH answers when they have booted (as on EC2).
    started = time.monotonic()
    groups = stand_ins(env)
    assert sorted(groups) == ["bastion", "postgres", "redis", "result", "vote", "worker"]
    deadline = time.monotonic() + 600
    while True:
        wait = ansible(
            env, *inventory_args(env), "all", "-m", "ansible.builtin.wait_for_connection", "-a", "timeout=30",
            cmd="ansible",
        )  # fmt: skip
        if wait.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(5)
    phase("stand-ins booted, SSH answers on every host", started)
    assert wait.returncode == 0, wait.stdout[-3000:] + wait.stderr

    # Over SSH as admin, root with become; the private hosts only through the bastion.
    started = time.monotonic()
    who = ansible(
        env, *inventory_args(env), "all", "-m", "ansible.builtin.command", "-a", "id -un", "--become", "-o", "-vvv",
        cmd="ansible",
    )  # fmt: skip
    phase("ansible all --become over SSH", started)
    assert who.returncode == 0, who.stdout[-3000:] + who.stderr
    for host in ("votingapp-vote", "votingapp-result", "votingapp-worker", "votingapp-redis", "votingapp-postgres"):
        assert f"{host} | CHANGED | rc=0 | (stdout) root" in who.stdout, who.stdout[-3000:]
    assert "votingapp-bastion | CHANGED | rc=0 | (stdout) root" in who.stdout
    # The SSH commands: the bastion at 127.0.0.1, everybody else by ProxyJump to it.
    assert "-o ProxyJump=admin@127.0.0.1:" in who.stdout
    login = ansible(
        env, *inventory_args(env), "all", "-m", "ansible.builtin.command", "-a", "id -un", "-o", cmd="ansible"
    )
    assert login.stdout.count("(stdout) admin") == 6, login.stdout

    # The networks carry the security groups' flows and nothing else (Docker networks are not
    # directional: a pair that may talk one way can connect both ways, the groups are checked in
    # moto by tests/integration/test_aws_up_down.py).
    started = time.monotonic()
    pairs = list(itertools.permutations(groups, 2))
    with ThreadPoolExecutor(8) as pool:
        results = dict(
            zip(
                pairs,
                pool.map(lambda p: any(connects(groups[p[0]], a) for a in addresses(groups[p[1]])), pairs),
                strict=True,
            )
        )
    phase("flow matrix between stand-ins", started)
    expected = {p: p in ALLOWED or (p[1], p[0]) in ALLOWED for p in pairs}
    assert results == expected

    started = time.monotonic()
    down = ansible(env, "-i", "localhost,", "-c", "local", "playbooks/aws_down.yml", "-e", up_vars)
    phase("aws_down", started)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr
    assert stats(down)["localhost"]["changed"] > 0
    started = time.monotonic()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        left = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=votingapp.awssim={PREFIX}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if not left:
            break
        time.sleep(2)
    phase("stand-ins removed by the watcher", started)
    assert left == []
    again = ansible(env, "-i", "localhost,", "-c", "local", "playbooks/aws_down.yml", "-e", up_vars)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    assert stats(again)["localhost"]["changed"] == 0
