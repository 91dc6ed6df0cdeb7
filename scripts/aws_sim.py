#!/usr/bin/env python3
"""The emulated AWS account: a moto server for the APIs and, for every EC2 instance of it, a systemd
host container running sshd that plays the instance.

    scripts/aws_sim.py up      # moto on 127.0.0.1, a key pair, the watcher; prints the environment
    scripts/aws_sim.py sync    # one pass of the watcher (start/stop stand-ins to match moto)
    scripts/aws_sim.py env     # the environment variables that point Ansible at the emulated account
    scripts/aws_sim.py inventory --list   # sync, then the inventory overlay (what $AWS_SIM_DIR/inventory runs)
    scripts/aws_sim.py down    # stand-ins, networks, watcher, moto: everything it created

Stand-ins appear as instances appear: the watcher polls DescribeInstances and, for each running
instance, starts a container `awssim-<instance id>` from the host image, creates the AMI's login user
(`admin`, passwordless sudo, the key pair's public key in authorized_keys, as cloud-init would)
and starts sshd. A terminated instance loses its container.

Networks follow the security groups (the lab's design): for every ingress rule "group S may reach
group D" one internal Docker network whose members are the stand-ins of S and of D (Docker filters per
network, not per port); every stand-in also gets a single-member egress network (the NAT gateway:
Debian's archive over HTTP). Only the bastion (the instance with a public IP) is published, SSH and
HTTP, on 127.0.0.1. A stand-in's address is its address on the network it shares with the bastion,
so Ansible reaches the bastion over 127.0.0.1 and every other host by ProxyJump through it.

The inventory overlay ($AWS_SIM_DIR/inventory, an inventory script given after inventories/aws)
says what differs from AWS and nothing else: where each stand-in answers (the bastion at 127.0.0.1
and its published port, the others at their address on the network they share with the bastion),
each host's address towards every peer group (votingapp_address_for: Docker networks are per flow,
a VPC has one address per instance), the client's URL of the bastion, and the Redis image as an
archive (no Docker Hub here). It runs one sync pass before it answers, so an inventory refresh
right after RunInstances finds every stand-in booted, as a wait for SSH would on EC2.

`up` also writes the stack's passwords, generated once, into $AWS_SIM_DIR/secrets.yml (mode
0600): what a vault file is on a real account (`-e @secrets.yml`).

State (endpoint, pids, key, ssh_config, inventory overlay, secrets) lives in $AWS_SIM_DIR (default
.cache/aws-sim, never committed). Every Docker object carries the label votingapp.awssim=<prefix>.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE_DIR = Path(os.environ.get("AWS_SIM_DIR", REPO / ".cache" / "aws-sim"))
PREFIX = os.environ.get("AWS_SIM_PREFIX", "awssim")
LABEL = f"votingapp.awssim={PREFIX}"
IMAGE = os.environ.get("AWS_SIM_IMAGE", "votingapp-host-docker:bookworm")
# Overlaps none of the machine's ranges (192.0.2.0/24, Docker's 172.17.0.0/16, the lab's 10.231.0.0/16).
SUPERNET = ipaddress.ip_network(os.environ.get("AWS_SIM_SUPERNET", "10.232.0.0/16"))
REGION = os.environ.get("AWS_REGION", "us-east-1")
LOGIN_USER = "admin"
# The image the redis role would pull from Docker Hub, unreachable here: shipped as an archive.
REDIS_IMAGE = os.environ.get("AWS_SIM_REDIS_IMAGE", "votingapp-redis:7")
# The stack contract's passwords (roles/votingapp): what the user's vault file holds on AWS.
PASSWORDS = [
    "votingapp_redis_vote_password", "votingapp_redis_worker_password", "votingapp_redis_admin_password",
    "votingapp_postgres_superuser_password", "votingapp_postgres_owner_password",
    "votingapp_postgres_worker_password", "votingapp_postgres_result_password",
    # optional in the contract; set here so the Redis and PostgreSQL exporters run as on the lab
    "votingapp_redis_monitoring_password", "votingapp_postgres_monitoring_password",
]  # fmt: skip
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# The Molecule/lab host options: systemd, and an inner Docker engine.
CAPS = [
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH",
    "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE",
    "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP",
    "SETUID", "SYSLOG", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE",
    "SYS_RAWIO", "SYS_TIME", "SYS_TTY_CONFIG", "WAKE_ALARM",
]  # fmt: skip


def log(msg):
    print(f"aws-sim: {msg}", file=sys.stderr, flush=True)


def docker(*args, check=True):
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {args[0]} {' '.join(args[1:3])}...: {proc.stderr.strip()}")
    return proc


def load_state():
    path = STATE_DIR / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_state(state):
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))


def alive(pid):
    try:
        os.kill(pid, 0)
    except (OSError, TypeError):
        return False
    return True


def ec2_client(endpoint):
    import boto3

    return boto3.client("ec2", endpoint_url=endpoint, region_name=REGION, **_boto_credentials())


def _boto_credentials():
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": CREDENTIALS["AWS_SESSION_TOKEN"],
    }


# --- moto -----------------------------------------------------------------------------------------


def serve(port):
    """Foreground: a moto server with the fidelity patches (the `up` command runs this detached)."""
    sys.path.insert(0, str(REPO / "tests" / "aws_sim"))
    import moto_fidelity
    from moto.server import ThreadedMotoServer

    moto_fidelity.apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60):
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (127.0.0.1 only)
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"aws-sim: {url} did not answer in {timeout} s")


# --- networks and stand-ins -------------------------------------------------------------------------


def free_subnet():
    """The first /24 of SUPERNET that no Docker network on this machine uses (ours or anybody's)."""
    ids = docker("network", "ls", "-q").stdout.split()
    used = []
    if ids:
        out = docker("network", "inspect", *ids, "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}").stdout
        used = [ipaddress.ip_network(n) for n in out.split() if ":" not in n]
    return str(next(n for n in SUPERNET.subnets(new_prefix=24) if not any(n.overlaps(u) for u in used)))


def ensure_network(state, name, internal=True):
    if docker("network", "inspect", name, check=False).returncode == 0:
        return
    subnet = free_subnet()
    args = ["network", "create", "--label", LABEL, "--subnet", subnet]
    if internal:
        args.append("--internal")
    proc = docker(*args, name, check=False)
    if proc.returncode != 0 and "already exists" not in proc.stderr:
        raise RuntimeError(f"docker network create {name}: {proc.stderr.strip()}")
    log(f"network {name} {subnet}{' internal' if internal else ''}")


def running_instances(ec2):
    out = []
    for page in ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    ):
        for reservation in page["Reservations"]:
            out += reservation["Instances"]
    return out


def public_key_of(ec2, key_name):
    keys = ec2.describe_key_pairs(KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"]
    return keys[0].get("PublicKey", "").strip()


def flow_networks(ec2, instances):
    """network name -> set of instance ids: one network per (source group, destination group) rule."""
    by_group = {}
    for inst in instances:
        for sg in inst.get("SecurityGroups", []):
            by_group.setdefault(sg["GroupId"], set()).add(inst["InstanceId"])
    if not by_group:
        return {}
    nets = {}
    groups = ec2.describe_security_groups(GroupIds=sorted(by_group))["SecurityGroups"]
    for group in groups:
        for perm in group["IpPermissions"]:
            for pair in perm.get("UserIdGroupPairs", []):
                src, dst = pair["GroupId"], group["GroupId"]
                members = by_group.get(src, set()) | by_group.get(dst, set())
                if by_group.get(src) and by_group.get(dst):
                    nets.setdefault(f"{PREFIX}-{src[-8:]}-{dst[-8:]}", set()).update(members)
    return nets


def container_name(instance_id):
    return f"{PREFIX}-{instance_id}"


def start_stand_in(state, inst, public_key):
    name = container_name(inst["InstanceId"])
    # The bastion's public network is its way out too (internet gateway); the others get their own
    # single-member egress network (NAT gateway). A container starts on one network; the flow
    # networks are connected afterwards.
    first = f"{PREFIX}-public" if inst.get("PublicIpAddress") else f"{PREFIX}-egress-{inst['InstanceId'][-8:]}"
    ensure_network(state, first, internal=False)
    docker("rm", "-f", "-v", name, check=False)
    args = [
        "run", "-d", "--name", name, "--hostname", inst.get("PrivateDnsName", "").split(".")[0] or name,
        "--label", LABEL, "--label", f"votingapp.awssim.instance={inst['InstanceId']}",
        "--network", first,
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--cgroupns", "host",
        "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/docker",
    ]  # fmt: skip
    for cap in CAPS:
        args += ["--cap-add", cap]
    if inst.get("PublicIpAddress"):
        args += ["-p", f"127.0.0.1:{state['ssh_port']}:22", "-p", f"127.0.0.1:{state['http_port']}:80"]
    docker(*args, IMAGE, "/lib/systemd/systemd")
    # cloud-init's part: the login user with the key pair's public key and passwordless sudo.
    script = f"""
set -e
for i in $(seq 1 100); do systemctl is-system-running >/dev/null 2>&1 && break
  state=$(systemctl is-system-running 2>/dev/null || true); [ "$state" = degraded ] && break; sleep 0.2; done
id {LOGIN_USER} >/dev/null 2>&1 || useradd -m -s /bin/bash {LOGIN_USER}
install -d -m 0700 -o {LOGIN_USER} -g {LOGIN_USER} /home/{LOGIN_USER}/.ssh
printf '%s\\n' '{public_key}' > /home/{LOGIN_USER}/.ssh/authorized_keys
chown {LOGIN_USER}: /home/{LOGIN_USER}/.ssh/authorized_keys; chmod 0600 /home/{LOGIN_USER}/.ssh/authorized_keys
echo '{LOGIN_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users
printf 'PasswordAuthentication yes\\n' > /etc/ssh/sshd_config.d/50-cloud-init.conf
ssh-keygen -A >/dev/null
systemctl enable --now ssh >/dev/null 2>&1 || systemctl restart ssh
"""
    docker("exec", name, "sh", "-c", script)
    log(f"stand-in {name} for {inst['InstanceId']} ({inst.get('PrivateIpAddress')})")


@contextlib.contextmanager
def sync_lock():
    """The watcher and the inventory script both sync: one at a time, or both start a stand-in."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "sync.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def sync(state):
    with sync_lock():
        return _sync(state)


def _sync(state):
    ec2 = ec2_client(state["endpoint"])
    instances = running_instances(ec2)
    wanted = {i["InstanceId"]: i for i in instances}
    existing = {}
    out = docker(
        "ps", "-a", "--filter", f"label={LABEL}", "--format", '{{.Label "votingapp.awssim.instance"}} {{.Names}}'
    )
    for line in out.stdout.splitlines():
        instance_id, _, name = line.partition(" ")
        if instance_id:
            existing[instance_id] = name
    for instance_id, name in existing.items():
        if instance_id not in wanted:
            docker("rm", "-f", "-v", name, check=False)
            log(f"removed {name} (instance gone)")
    for instance_id, inst in wanted.items():
        if instance_id not in existing:
            start_stand_in(state, inst, public_key_of(ec2, inst["KeyName"]))
    # Flow networks: connect exactly the members of each (source, destination) group pair.
    nets = flow_networks(ec2, instances)
    for net, members in nets.items():
        ensure_network(state, net)
        attached = set(
            docker("network", "inspect", net, "--format", "{{range .Containers}}{{.Name}} {{end}}").stdout.split()
        )
        for instance_id in members:
            name = container_name(instance_id)
            if name not in attached:
                docker("network", "connect", net, name)
    for net in docker("network", "ls", "--filter", f"label={LABEL}", "--format", "{{.Name}}").stdout.split():
        if net.startswith(f"{PREFIX}-egress-") and net.removeprefix(f"{PREFIX}-egress-") not in {
            i[-8:] for i in wanted
        }:
            docker("network", "rm", net, check=False)
    overlay = inventory_overlay(state, instances, nets)
    (STATE_DIR / "inventory.json").write_text(json.dumps(overlay, indent=2, sort_keys=True) + "\n")
    return overlay


def address_on(container, network):
    return docker(
        "inspect",
        container,
        "--format",
        f'{{{{with index .NetworkSettings.Networks "{network}"}}}}{{{{.IPAddress}}}}{{{{end}}}}',
    ).stdout.strip()


def instance_name(inst):
    """The inventory name of an instance, as inventories/aws/aws_ec2.yml names it: <Name tag>-<id>."""
    name = next((t["Value"] for t in inst.get("Tags", []) if t["Key"] == "Name"), "")
    return f"{name}-{inst['InstanceId']}" if name else inst["InstanceId"]


def instance_group(inst):
    return next((t["Value"] for t in inst.get("Tags", []) if t["Key"] == "votingapp-group"), "")


def inventory_overlay(state, instances, nets):
    """Host and group variables in the script inventory format (_meta.hostvars): only what differs
    from AWS (module docstring)."""
    hostvars = {}
    bastion = next((i for i in instances if i.get("PublicIpAddress")), None)
    for inst in instances:
        name = container_name(inst["InstanceId"])
        shared = {n: m for n, m in nets.items() if inst["InstanceId"] in m}
        # Towards each peer group: this host's address on the network it shares with that group.
        address_for = {}
        for net in sorted(shared):
            for peer in instances:
                group = instance_group(peer)
                if peer is not inst and peer["InstanceId"] in shared[net] and group not in address_for:
                    address_for[group] = address_on(name, net)
        if inst is bastion:
            host = {"ansible_host": "127.0.0.1", "ansible_port": state["ssh_port"]}
        elif "bastion" in address_for:
            host = {"ansible_host": address_for["bastion"]}
        else:
            continue
        hostvars[instance_name(inst)] = {**host, "votingapp_address_for": address_for}
    return {
        "_meta": {"hostvars": hostvars},
        "all": {
            "hosts": sorted(hostvars),
            "vars": {
                "verify_bastion_url": f"http://127.0.0.1:{state['http_port']}",
                "redis_image": REDIS_IMAGE,
                "redis_image_source": "archive",
                "redis_image_archive": str(STATE_DIR / "redis-image.tar"),
            },
        },
    }


def write_inventory_script():
    """$AWS_SIM_DIR/inventory: the overlay as an inventory script (Ansible runs it with --list)."""
    path = STATE_DIR / "inventory"
    env = {"AWS_SIM_DIR": STATE_DIR, "AWS_SIM_PREFIX": PREFIX, "AWS_REGION": REGION}
    command = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, Path(__file__).resolve(), "inventory"]
    path.write_text(
        "#!/bin/sh\n# Written by scripts/aws_sim.py: one sync pass, then where each stand-in answers.\n"
        f'exec {shlex.join(map(str, command))} "$@"\n'
    )
    path.chmod(0o755)


def write_secrets():
    """The stack's passwords, generated once (mode 0600): the emulated account's vault file."""
    path = STATE_DIR / "secrets.yml"
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Written once by scripts/aws_sim.py (what a vault file holds on a real account).\n")
        for key in PASSWORDS:
            f.write(f"{key}: {secrets.token_urlsafe(24)}\n")


def save_redis_image():
    """`docker save` of the Redis image, once per image id (the redis role loads it on the host)."""
    image_id = docker("image", "inspect", REDIS_IMAGE, "--format", "{{.Id}}").stdout.strip()
    marker = STATE_DIR / "redis-image.id"
    if marker.exists() and marker.read_text() == image_id and (STATE_DIR / "redis-image.tar").exists():
        return
    docker("save", "-o", str(STATE_DIR / "redis-image.tar"), REDIS_IMAGE)
    marker.write_text(image_id)


def inventory(args):
    state = load_state()
    if args.host:
        print("{}")
        return
    overlay = {"_meta": {"hostvars": {}}}
    if alive(state.get("moto_pid")):
        overlay = sync(state)
    print(json.dumps(overlay))


def watch(interval):
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    while running:
        # Re-read every pass: `up` and `sync` write the same file.
        state = load_state()
        state["watcher_pid"] = os.getpid()
        try:
            sync(state)
            save_state(state)
        except Exception as e:  # the watcher keeps going; the next pass retries
            log(f"sync failed: {e}")
        time.sleep(interval)


# --- commands -------------------------------------------------------------------------------------


def env_vars(state):
    return {
        "VOTINGAPP_AWS_ENDPOINT": state["endpoint"],
        "AWS_URL": state["endpoint"],
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        **CREDENTIALS,
        "ANSIBLE_SSH_ARGS": f"-F {STATE_DIR / 'ssh_config'} -o ControlMaster=auto -o ControlPersist=60s",
        "AWS_SIM_DIR": str(STATE_DIR),
    }


def up(args):
    state = load_state()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    if not alive(state.get("moto_pid")):
        port = args.port or free_port()
        proc = subprocess.Popen(
            [sys.executable, __file__, "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=open(STATE_DIR / "moto.log", "a"),  # noqa: SIM115 (the child keeps it)
            start_new_session=True,
        )
        state.update(moto_pid=proc.pid, endpoint=f"http://127.0.0.1:{port}")
        wait_http(state["endpoint"] + "/moto-api/")
        log(f"moto {state['endpoint']} (pid {proc.pid})")
    state.setdefault("ssh_port", args.ssh_port or free_port())
    state.setdefault("http_port", args.http_port or free_port())
    key = STATE_DIR / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "aws-sim", "-f", str(key)], check=True)
    (STATE_DIR / "ssh_config").write_text(
        f"""# Written by scripts/aws_sim.py. The stand-ins' host keys are new on every run.
Host *
  User {LOGIN_USER}
  IdentityFile {key}
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile {STATE_DIR / "known_hosts"}
  LogLevel ERROR
"""
    )
    write_secrets()
    save_redis_image()
    write_inventory_script()
    save_state(state)
    if not alive(state.get("watcher_pid")):
        proc = subprocess.Popen(
            [sys.executable, __file__, "watch", "--interval", str(args.interval)],
            stdout=subprocess.DEVNULL,
            stderr=open(STATE_DIR / "watcher.log", "a"),  # noqa: SIM115 (the child keeps it)
            start_new_session=True,
            env={**os.environ, "AWS_SIM_DIR": str(STATE_DIR)},
        )
        state["watcher_pid"] = proc.pid
        save_state(state)
    for k, v in env_vars(state).items():
        print(f"export {k}={v!r}")


def down(_args):
    state = load_state()
    for key in ("watcher_pid", "moto_pid"):
        pid = state.get(key)
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
    names = docker("ps", "-aq", "--filter", f"label={LABEL}").stdout.split()
    if names:
        docker("rm", "-f", "-v", *names, check=False)
    nets = docker("network", "ls", "-q", "--filter", f"label={LABEL}").stdout.split()
    if nets:
        docker("network", "rm", *nets, check=False)
    log(f"removed {len(names)} stand-in(s) and {len(nets)} network(s)")
    if (STATE_DIR / "state.json").exists():
        (STATE_DIR / "state.json").unlink()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ssh-port", type=int, default=0)
    p.add_argument("--http-port", type=int, default=0)
    p.add_argument("--interval", type=float, default=2.0)
    sub.add_parser("down")
    sub.add_parser("sync")
    sub.add_parser("env")
    p = sub.add_parser("inventory")
    p.add_argument("--list", action="store_true")
    p.add_argument("--host")
    p = sub.add_parser("serve")
    p.add_argument("--port", type=int, required=True)
    p = sub.add_parser("watch")
    p.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    if args.command == "up":
        up(args)
    elif args.command == "down":
        down(args)
    elif args.command == "sync":
        state = load_state()
        sync(state)
        save_state(state)
    elif args.command == "env":
        for k, v in env_vars(load_state()).items():
            print(f"export {k}={v!r}")
    elif args.command == "inventory":
        inventory(args)
    elif args.command == "serve":
        serve(args.port)
    elif args.command == "watch":
        watch(args.interval)


if __name__ == "__main__":
    main()
