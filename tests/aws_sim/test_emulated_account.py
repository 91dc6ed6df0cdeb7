"""The emulated AWS account (scripts/aws_sim.py) end to end: aws_up.yml from an empty account
provisions on moto, a stand-in container appears for every instance, and site.yml configures them
over real OpenSSH (the bastion on 127.0.0.1, every other host only by ProxyJump through it) with
the shipped inventories/aws (aws_ec2 plugin pointed at moto) as the AMI's `admin` user with
`become`; verify.yml is ALL GREEN and votes sent through the bastion reach the tally.

Both topologies, in one deployment: the first aws_up leaves the ALB out (aws_up_alb=false: the
bastion's nginx is the only entry), the second adds it and must change nothing on any host and no
resource but the ALB's (listener, rules and target groups then hold the stand-ins' instance ids);
a third, provisioning only, changes no resource (the ALB's own second run is also changed=0 in
tests/integration/test_aws_up_down.py). aws_down removes
every resource and the watcher every stand-in; a second aws_down changes nothing.

`make test-aws-sim` (in `make test`) runs all of it. `make test-aws-sim-provision`
(AWS_SIM_PROVISION_ONLY=1) is the quick check without site.yml, verify.yml and the votes
(aws_up_configure_hosts=false): provisioning, SSH with become through the bastion, the flow matrix,
the ALB's targets and the teardown.
Both need Docker, the host image of `make prereqs` and `make app-image`'s base image. Each phase
prints its time (pytest -s)."""

from __future__ import annotations

import http.cookiejar
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
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


STACK_GROUPS = ["bastion", "postgres", "redis", "result", "vote", "worker"]
# The whole path (site.yml over SSH, verify, votes) or the provisioning and access path only.
E2E = os.environ.get("AWS_SIM_PROVISION_ONLY") != "1"
PLAYBOOK_TIMEOUT = 1200 if E2E else 900


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


def ansible(env, *args, cmd="ansible-playbook", timeout=PLAYBOOK_TIMEOUT):
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
    if cmd == "ansible-playbook":
        slowest(proc)
    return proc


def slowest(proc, count=8):
    """Print the run's slowest tasks (the ansible.posix.json durations): where a phase's time goes."""
    try:
        out = json_output(proc)
    except ValueError:
        return

    def seconds(d):
        if not (d.get("start") and d.get("end")):
            return 0.0
        start, end = (datetime.fromisoformat(d[k].rstrip("Z")) for k in ("start", "end"))
        return (end - start).total_seconds()

    for play in out["plays"]:
        took = seconds(play["play"].get("duration", {}))
        print(f"[aws-sim]   {took:6.1f} s  play {play['play']['name']}", flush=True)
    took = []
    for play in out["plays"]:
        for t in play["tasks"]:
            took.append((seconds(t["task"].get("duration", {})), f"{play['play']['name']} / {t['task']['name']}"))
    for task_seconds, name in sorted(took, reverse=True)[:count]:
        print(f"[aws-sim]     {task_seconds:6.1f} s  {name}", flush=True)


def stats(proc):
    return json_output(proc)["stats"]


def json_output(proc):
    return json.loads(proc.stdout[proc.stdout.index("{") :])


def changed_tasks(proc, host):
    """Names of the tasks that reported changed on host (the ansible.posix.json callback)."""
    return [
        t["task"]["name"]
        for play in json_output(proc)["plays"]
        for t in play["tasks"]
        if t["hosts"].get(host, {}).get("changed")
    ]


def failures(proc):
    """What went wrong in a run, readable: each failed or unreachable task with its host and message
    (the ansible.posix.json output itself is too long for an assertion message)."""
    try:
        out = json_output(proc)
    except ValueError:
        return proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [
        f"{t['task']['name']} on {host}: {why(r)}"
        for play in out["plays"]
        for t in play["tasks"]
        for host, r in t["hosts"].items()
        if r.get("failed") or r.get("unreachable")
    ]
    return "\n".join(lines) or proc.stderr[-3000:]


def why(result):
    """A failed result's own words; for a loop, each failed item's ("One or more items failed" alone
    does not say which)."""
    said = f"{result.get('msg', '')} {result.get('stderr', '')[-800:]} {result.get('module_stderr', '')[-800:]}"
    for item in result.get("results", []):
        if item.get("failed"):
            label = item.get("_ansible_item_label", item.get("item"))
            said += f"\n  item {label}: {why(item)}"
    return said


def inventory_args(env):
    # The shipped inventory, then the emulated account's overlay (scripts/aws_sim.py).
    return ["-i", "inventories/aws", "-i", str(Path(env["AWS_SIM_DIR"]) / "inventory")]


def client(env, service):
    return boto3.client(
        service,
        endpoint_url=env["VOTINGAPP_AWS_ENDPOINT"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
    )


def ec2_client(env):
    return client(env, "ec2")


def stand_ins(env):
    """group -> container name, from moto's instances and the watcher's containers."""
    ec2 = ec2_client(env)
    out = {}
    for r in ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]:
        for i in r["Instances"]:
            group = next(t["Value"] for t in i["Tags"] if t["Key"] == "votingapp-group")
            out[group] = f"{PREFIX}-{i['InstanceId']}"
    return out


def instance_ids(env):
    """group -> instance ids of the running instances, from moto."""
    out = {}
    for r in ec2_client(env).describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])[
        "Reservations"
    ]:
        for i in r["Instances"]:
            group = next(t["Value"] for t in i["Tags"] if t["Key"] == "votingapp-group")
            out.setdefault(group, []).append(i["InstanceId"])
    return out


def http_json(opener, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})  # noqa: S310 (http only)
    with opener.open(req, timeout=10) as resp:  # 127.0.0.1: the bastion's published port
        return resp.status, json.loads(resp.read())


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


def test_deploy_over_ssh_both_topologies_and_tear_down(sim):
    env = dict(sim, BASE_IMAGE=os.environ.get("BASE_IMAGE", "votingapp-python:bookworm"))
    image = ec2_client(env).describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    up_vars = {
        "aws_up_public_key_file": str(Path(env["AWS_SIM_DIR"]) / "id_ed25519.pub"),
        "aws_instances_image_id": image,
        "security_groups_admin_cidrs": ["127.0.0.1/32"],
        "aws_up_configure_hosts": E2E,
    }
    # The passwords as a vault file would pass them: -e @file (generated by aws_sim.py up, 0600).
    secrets = ["-e", "@" + str(Path(env["AWS_SIM_DIR"]) / "secrets.yml")]
    assert (Path(env["AWS_SIM_DIR"]) / "secrets.yml").stat().st_mode & 0o777 == 0o600

    # 1. Before the ALB: the bastion's nginx is the only entry.
    started = time.monotonic()
    up = ansible(
        env, *inventory_args(env), *secrets, "playbooks/aws_up.yml", "-e", json.dumps({**up_vars, "aws_up_alb": False})
    )
    scope = "provisioning, image build, site.yml over SSH" if E2E else "provisioning"
    phase(f"aws_up without ALB ({scope})", started)
    assert up.returncode == 0, failures(up)
    elbv2 = client(env, "elbv2")
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert elbv2.describe_target_groups()["TargetGroups"] == []
    groups = stand_ins(env)
    assert sorted(groups) == STACK_GROUPS

    # Over SSH as admin, root with become; the private hosts only through the bastion.
    started = time.monotonic()
    who = ansible(
        env, *inventory_args(env), "all", "-m", "ansible.builtin.command", "-a", "id -un", "--become", "-o", "-vvv",
        cmd="ansible",
    )  # fmt: skip
    phase("ansible all --become over SSH", started)
    assert who.returncode == 0, who.stdout[-3000:] + who.stderr
    assert who.stdout.count("| CHANGED | rc=0 | (stdout) root") == 6, who.stdout[-3000:]
    assert "-o ProxyJump=admin@127.0.0.1:" in who.stdout
    assert f"-o Port={json.loads(Path(env['AWS_SIM_DIR'], 'state.json').read_text())['ssh_port']}" in who.stdout

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

    if E2E:
        deployed_through_the_bastion(env, secrets)

    # 2. With the ALB: the same deployment gains it; no host and no other resource changes.
    started = time.monotonic()
    again = ansible(env, *inventory_args(env), *secrets, "playbooks/aws_up.yml", "-e", json.dumps(up_vars))
    phase("aws_up again, adding the ALB", started)
    assert again.returncode == 0, failures(again)
    if E2E:
        hosts_changed = {h: s["changed"] for h, s in stats(again).items() if h != "localhost"}
        assert sorted(h.split("-")[1] for h in hosts_changed) == STACK_GROUPS
        assert set(hosts_changed.values()) == {0}, hosts_changed
    changed = changed_tasks(again, "localhost")
    assert changed, "the ALB was not created"
    assert all(name.startswith("votingapp.stack.alb : ") for name in changed), changed
    alb_holds_the_stand_ins(env, elbv2, groups)

    # 3. The same aws_up once more, provisioning only: with the ALB in place no AWS resource has
    # anything left to do. The hosts' own second run is step 2 (changed=0 on every host), so this
    # run leaves site.yml out (about 2 minutes less; docs/aws.md).
    if E2E:
        started = time.monotonic()
        third = ansible(
            env, *inventory_args(env), *secrets, "playbooks/aws_up.yml",
            "-e", json.dumps({**up_vars, "aws_up_configure_hosts": False}),
        )  # fmt: skip
        phase("aws_up a third time, provisioning only (changed=0)", started)
        assert third.returncode == 0, failures(third)
        everywhere = {h: s["changed"] for h, s in stats(third).items()}
        assert "localhost" in everywhere
        assert set(everywhere.values()) == {0}, {h: changed_tasks(third, h) for h, n in everywhere.items() if n}

    started = time.monotonic()
    down = ansible(env, *inventory_args(env), "playbooks/aws_down.yml")
    phase("aws_down", started)
    assert down.returncode == 0, failures(down)
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

    started = time.monotonic()
    down_again = ansible(env, *inventory_args(env), "playbooks/aws_down.yml")
    phase("aws_down again", started)
    assert down_again.returncode == 0, failures(down_again)
    assert stats(down_again)["localhost"]["changed"] == 0, changed_tasks(down_again, "localhost")


def deployed_through_the_bastion(env, secrets):
    """verify.yml is ALL GREEN through the bastion, and votes sent to its port reach the tally."""
    started = time.monotonic()
    verify = ansible(env, *inventory_args(env), *secrets, "playbooks/verify.yml")
    phase("verify.yml through the bastion", started)
    assert verify.returncode == 0, failures(verify)
    assert "ALL GREEN" in verify.stdout

    # Votes through the bastion's published port reach the tally (each voter its own cookie).
    started = time.monotonic()
    bastion = f"http://127.0.0.1:{json.loads(Path(env['AWS_SIM_DIR'], 'state.json').read_text())['http_port']}"
    plain = urllib.request.build_opener()
    _status, before = http_json(plain, bastion + "/result/api/tally")
    wanted = {"Cats": 7, "Dogs": 5}
    for option, count in wanted.items():
        for _voter in range(count):
            voter = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
            status, body = http_json(voter, bastion + "/vote/api/vote", {"vote": option})
            assert (status, body["vote"]) == (202, option)
    deadline = time.monotonic() + 60
    while True:
        _status, tally = http_json(plain, bastion + "/result/api/tally")
        got = {o: tally["options"][o] - before["options"].get(o, 0) for o in wanted}
        if got == wanted or time.monotonic() > deadline:
            break
        time.sleep(1)
    phase("12 votes through the bastion counted", started)
    assert got == wanted, tally

    # Monitoring on the bastion: Prometheus under /prometheus/ scrapes every host's node exporter,
    # each vote, result and worker, and the data exporters as their read-only users, over the
    # security groups' monitoring flows (the stand-ins' networks are those flows).
    started = time.monotonic()
    deadline = time.monotonic() + 90
    while True:
        _status, answer = http_json(plain, bastion + "/prometheus/api/v1/targets?state=active")
        jobs = {}
        for target in answer["data"]["activeTargets"]:
            group = target["labels"]["host"].split("-")[1]  # <stack>-<group>-<instance id>
            jobs.setdefault(target["labels"]["job"], []).append((group, target["health"]))
        healthy = all(health == "up" for found in jobs.values() for _host, health in found)
        if healthy or time.monotonic() > deadline:
            break
        time.sleep(3)
    phase("every Prometheus target up, through the bastion", started)
    assert {job: sorted(host for host, _health in found) for job, found in jobs.items()} == {
        "vote": ["vote"],
        "result": ["result"],
        "worker": ["worker"],
        "prometheus": ["bastion"],
        "alertmanager": ["bastion"],
        "node": STACK_GROUPS,
        "redis": ["redis"],
        "postgres": ["postgres"],
    }, jobs
    assert healthy, jobs


def alb_holds_the_stand_ins(env, elbv2, groups):
    """Target groups hold the stand-ins' instance ids, health checks / and /result/, path rules."""
    ids = instance_ids(env)
    assert ids["vote"] == [groups["vote"].removeprefix(f"{PREFIX}-")]
    tgs = {tg["TargetGroupName"]: tg for tg in elbv2.describe_target_groups()["TargetGroups"]}
    assert {tgs["votingapp-vote"]["HealthCheckPath"], tgs["votingapp-result"]["HealthCheckPath"]} == {"/", "/result/"}
    assert tgs["votingapp-vote"]["HealthCheckPath"] == "/"
    for group in ("vote", "result"):
        health = elbv2.describe_target_health(TargetGroupArn=tgs[f"votingapp-{group}"]["TargetGroupArn"])
        registered = sorted(d["Target"]["Id"] for d in health["TargetHealthDescriptions"])
        assert registered == sorted(ids[group]) == [groups[group].removeprefix(f"{PREFIX}-")]
    (lb,) = elbv2.describe_load_balancers()["LoadBalancers"]
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    rules = elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    # A path condition is written as PathPatternConfig and a forward as ForwardConfig
    # (alb_listener_rules); the flat Values and TargetGroupArn are the older shapes.
    forwards = {
        (c.get("PathPatternConfig") or c)["Values"][0]: a.get("TargetGroupArn")
        or a["ForwardConfig"]["TargetGroups"][0]["TargetGroupArn"]
        for r in rules
        if not r["IsDefault"]
        for c in r["Conditions"]
        for a in r["Actions"]
        if c["Field"] == "path-pattern" and a["Type"] == "forward"
    }
    assert forwards == {
        "/vote*": tgs["votingapp-vote"]["TargetGroupArn"],
        "/result*": tgs["votingapp-result"]["TargetGroupArn"],
    }
