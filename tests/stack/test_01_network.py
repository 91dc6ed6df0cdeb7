"""The lab's Docker networks allow exactly the flows of docs/architecture.md, probed from each host."""

from __future__ import annotations

import concurrent.futures
import itertools
import json

import pytest
from conftest import HERE_PLAYBOOKS, docker, run_playbook

HOSTS = ["lab-bastion", "lab-vote", "lab-result", "lab-worker", "lab-redis", "lab-postgres"]
# The allowed flows (DESIGN.md): bastion -> every host (:80 / :22), vote, worker -> redis,
# worker, result -> postgres. Docker networks are symmetric, so the pairs are unordered.
ALLOWED = {
    frozenset(p)
    for p in [
        ("lab-bastion", "lab-vote"),
        ("lab-bastion", "lab-result"),
        ("lab-bastion", "lab-worker"),
        ("lab-bastion", "lab-redis"),
        ("lab-bastion", "lab-postgres"),
        ("lab-vote", "lab-redis"),
        ("lab-worker", "lab-redis"),
        ("lab-worker", "lab-postgres"),
        ("lab-result", "lab-postgres"),
    ]
}
# Networks with a way out of the lab: the bastion's published port, and one single-member NAT
# network per other host for the Debian archive (the roles run apt).
NOT_INTERNAL = {"lab-public"} | {f"lab-egress-{h}" for h in ("vote", "result", "worker", "redis", "postgres")}


def host_addresses() -> list[dict]:
    out = docker("inspect", *HOSTS).stdout
    targets = []
    for container in json.loads(out):
        name = container["Name"].lstrip("/")
        for net, cfg in container["NetworkSettings"]["Networks"].items():
            targets.append({"host": name, "network": net, "address": cfg["IPAddress"]})
    return targets


# Runs inside a lab host: connects to every target at once and prints one verdict per target.
# sshd is disabled in the lab images, so a routed address refuses port 22 at once and an address
# the networks do not route lets the SYN time out.
PROBE_SCRIPT = """
import concurrent.futures, json, socket, sys
def probe(t):
    try:
        socket.create_connection((t["address"], 22), timeout=2).close()
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except (TimeoutError, socket.timeout):
        return "timeout"
    except OSError as e:
        return "unreachable" if e.errno in (101, 113) else "error: %s" % e
targets = json.loads(sys.argv[1])
with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
    print(json.dumps([dict(t, status=s) for t, s in zip(targets, pool.map(probe, targets))]))
"""


@pytest.fixture(scope="module")
def probes(lab):
    """(src, dst) -> networks over which src reached dst, from a socket matrix run on every host."""
    targets = host_addresses()
    reach: dict[tuple[str, str], list[str]] = {}

    def run_from(src):
        mine = [t for t in targets if t["host"] != src]
        return src, json.loads(docker("exec", src, "python3", "-c", PROBE_SCRIPT, json.dumps(mine)).stdout)

    with concurrent.futures.ThreadPoolExecutor(len(HOSTS)) as pool:
        for src, results in pool.map(run_from, HOSTS):
            for res in results:
                assert res["status"] in ("open", "refused", "timeout", "unreachable"), res
                via = reach.setdefault((src, res["host"]), [])
                if res["status"] in ("open", "refused"):
                    via.append(res["network"])
    return reach


@pytest.mark.parametrize("pair", list(itertools.combinations(HOSTS, 2)), ids=lambda p: "-".join(h[4:] for h in p))
def test_flow_policy(probes, pair):
    a, b = pair
    for src, dst in ((a, b), (b, a)):
        assert (src, dst) in probes, f"{src} did not probe {dst}"
        reached_via = probes[(src, dst)]
        if frozenset(pair) in ALLOWED:
            assert reached_via, f"{src} cannot reach {dst} although the flow is allowed"
        else:
            assert not reached_via, f"{src} reaches {dst} via {reached_via}: that flow is not allowed"


def test_networks_are_internal(lab):
    nets = json.loads(docker("network", "inspect", *{t["network"] for t in host_addresses()}).stdout)
    for net in nets:
        expected = net["Name"] not in NOT_INTERNAL
        assert net["Internal"] is expected, f"network {net['Name']}: Internal={net['Internal']}, expected {expected}"


def test_only_the_bastion_publishes_a_port(lab):
    for container in json.loads(docker("inspect", *HOSTS).stdout):
        ports = {k: v for k, v in (container["NetworkSettings"]["Ports"] or {}).items() if v}
        name = container["Name"].lstrip("/")
        if name == "lab-bastion":
            assert [b["HostIp"] for b in ports["80/tcp"]] == ["127.0.0.1"], ports
        else:
            assert not ports, f"{name} publishes {ports}"


def test_stack_probe_names_blocked_flows_as_timeouts(lab):
    """The collection's own probe, as verify.yml uses it, sees the forbidden data flows as blocked."""
    addresses = {(t["host"], t["network"]): t["address"] for t in host_addresses()}
    targets = [
        {"host": "lab-redis", "network": "lab-queue-vote", "address": addresses[("lab-redis", "lab-queue-vote")]},
        {"host": "lab-postgres", "network": "lab-db-result", "address": addresses[("lab-postgres", "lab-db-result")]},
    ]
    run = run_playbook(
        HERE_PLAYBOOKS / "probe_flows.yml",
        "--limit",
        "lab-result,lab-vote",
        "-e",
        json.dumps({"probe_targets": targets}),
    )
    assert run.rc == 0, f"probe_flows.yml failed: {run.stderr}"
    results = run.task_results("Probe every other host")
    by_src = {src: {i["item"]["host"]: i for i in res["results"]} for src, res in results.items()}
    # result -> redis and vote -> postgres: the flows DESIGN.md forbids.
    for src, dst in (("lab-result", "lab-redis"), ("lab-vote", "lab-postgres")):
        verdict = by_src[src][dst]
        assert verdict["status"] == "timeout", verdict["message"]
        assert "firewall" in verdict["message"] or "network policy" in verdict["message"], verdict["message"]
    # The allowed flows, same probe and addresses: the host answers (nothing listens on :22).
    for src, dst in (("lab-vote", "lab-redis"), ("lab-result", "lab-postgres")):
        assert by_src[src][dst]["status"] == "refused", by_src[src][dst]["message"]


def test_egress_networks_hold_one_host_each(lab):
    for name in NOT_INTERNAL - {"lab-public"}:
        net = json.loads(docker("network", "inspect", name).stdout)[0]
        members = [c["Name"] for c in net["Containers"].values()]
        assert members == [name.replace("lab-egress-", "lab-")], f"{name} holds {members}"
