"""The stack contract's secrets in the lab: no secret in any container's configuration, signed
voter ids through the bastion, the one forwarded hop the vote service trusts."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import REPO, docker, http

SIGNED_ID = re.compile(r"^[0-9a-f]{32}_[A-Za-z0-9_-]{22}$")
CONTAINER_HOSTS = ("lab-vote", "lab-worker", "lab-result", "lab-redis")


@pytest.fixture(scope="module")
def secrets() -> dict[str, str]:
    """The lab's generated secrets (.lab/secrets.yml, written by lab_up.yml)."""
    values = yaml.safe_load((REPO / ".lab" / "secrets.yml").read_text())
    assert "voter_id_secret" in values, "lab_up.yml generates the voter id key with the passwords"
    return {key: str(value) for key, value in values.items()}


def inspect_all(host: str) -> list[dict]:
    """`docker inspect` of every container of one lab host's own engine."""
    done = docker("exec", host, "sh", "-c", "docker inspect $(docker ps -aq)")
    return json.loads(done.stdout)


@pytest.mark.parametrize("host", CONTAINER_HOSTS)
def test_no_secret_in_docker_inspect(lab, secrets, host):
    containers = inspect_all(host)
    assert containers, f"no container on {host}"
    text = json.dumps(containers)
    shown = sorted(name for name, value in secrets.items() if value in text)
    assert not shown, f"docker inspect on {host} shows {shown}"
    for c in containers:
        env = [e.split("=", 1)[0] for e in c["Config"]["Env"]]
        assert not {"REDIS_PASSWORD", "PG_PASSWORD", "VOTER_ID_SECRET"} & set(env), (c["Name"], env)


def test_the_vote_service_reads_its_secrets_from_files_and_trusts_one_hop(lab):
    (vote,) = [c for c in inspect_all("lab-vote") if c["Name"] == "/votingapp-vote"]
    env = dict(e.split("=", 1) for e in vote["Config"]["Env"])
    assert env["REDIS_PASSWORD_FILE"] == "/run/secrets/REDIS_PASSWORD"
    assert env["VOTER_ID_SECRET_FILE"] == "/run/secrets/VOTER_ID_SECRET"
    # the bastion's nginx appends the client's address to X-Forwarded-For: one hop
    assert env["FORWARDED_HOPS"] == "1"
    binds = {m["Destination"]: m for m in vote["Mounts"]}
    assert binds["/run/secrets/VOTER_ID_SECRET"]["RW"] is False


def test_voter_ids_are_signed_and_foreign_ids_refused(lab):
    api = {"Content-Type": "application/json"}
    status, body, _headers = http("POST", "/vote/api/vote", data=json.dumps({"vote": "Cats"}).encode(), headers=api)
    assert status == 202, body[:300]
    assert SIGNED_ID.match(json.loads(body)["voter_id"]), body
    forged = {**api, "Cookie": "voter_id=" + "0" * 32}
    status, body, headers = http("POST", "/vote/api/vote", data=json.dumps({"vote": "Cats"}).encode(), headers=forged)
    assert status == 400, f"a voter id the lab did not sign answered {status}: {body[:300]}"
    assert "voter_id=" in headers.get("Set-Cookie", ""), headers
