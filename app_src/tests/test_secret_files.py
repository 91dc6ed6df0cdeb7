"""Secrets from files (NAME_FILE, the official postgres/redis images' convention): the roles pass
only paths, so no password is in `docker inspect` or the process environment."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
import requests
from conftest import counts
from harness import Service, free_port, python_env, start_all, stop_all, wait_for
from votingapp import config

GOOD_REDIS = {"REDIS_HOST": "cache", "REDIS_USER": "vote"}


def test_a_secret_is_read_from_its_file_without_the_trailing_newline(tmp_path):
    (tmp_path / "redis").write_text("from-the-file-123\n")
    (tmp_path / "voter").write_text("voter-id-key-from-a-file\r\n")
    v = config.vote_settings(
        {**GOOD_REDIS, "REDIS_PASSWORD_FILE": str(tmp_path / "redis"), "VOTER_ID_SECRET_FILE": str(tmp_path / "voter")}
    )
    assert v.redis.password == "from-the-file-123"
    assert v.voter_id_secret == "voter-id-key-from-a-file"


def test_the_plain_variable_still_works_for_compose_and_development():
    assert config.vote_settings({**GOOD_REDIS, "REDIS_PASSWORD": "plain-env-pw"}).redis.password == "plain-env-pw"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "absent", "No such file or directory"),
        (lambda d: d, "Is a directory"),
        (lambda d: (d / "empty").write_text("\n") and d / "empty", "is empty"),
    ],
    ids=["missing", "directory", "empty"],
)
def test_an_unusable_file_is_named_with_the_reason(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(config.ConfigError) as err:
        config.worker_settings(
            {"REDIS_HOST": "r", "PG_HOST": "p", "PG_DATABASE": "d", "PG_USER": "u", "PG_PASSWORD_FILE": str(path)}
        )
    assert f"PG_PASSWORD_FILE={str(path)!r}" in str(err.value)
    assert reason in str(err.value)


def test_value_and_file_together_are_refused_without_showing_the_value(tmp_path):
    (tmp_path / "pw").write_text("file-secret-456")
    with pytest.raises(config.ConfigError, match="REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set") as err:
        config.vote_settings(
            {**GOOD_REDIS, "REDIS_PASSWORD": "env-secret-789", "REDIS_PASSWORD_FILE": str(tmp_path / "pw")}
        )
    assert "env-secret" not in str(err.value)
    assert "file-secret" not in str(err.value)


@pytest.mark.parametrize("command", ["vote", "worker", "result", "migrate"])
def test_a_missing_file_stops_the_service_naming_the_variable(tmp_path, command):
    missing = str(tmp_path / "not-there")
    env = {"REDIS_HOST": "127.0.0.1", "REDIS_USER": "u", "REDIS_PASSWORD_FILE": missing}
    env |= {"PG_HOST": "127.0.0.1", "PG_DATABASE": "d", "PG_USER": "u", "PG_PASSWORD_FILE": missing}
    done = subprocess.run(
        [sys.executable, "-m", "votingapp", command], env=python_env(env), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2, done.stderr
    name = "REDIS_PASSWORD_FILE" if command == "vote" else "PG_PASSWORD_FILE"
    expected = f"{command}: configuration error: {name}={missing!r} cannot be read: No such file or directory"
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def vote_user(redis_server, names):
    r = redis_server.client()
    user, password = f"vote-{uuid.uuid4().hex[:6]}", f"vote-file-pw-{uuid.uuid4().hex}"
    r.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", "resetkeys", "-@all", f"~{names['VOTE_STREAM']}",
        "+xadd", "+ping", "+auth", "+hello", "+client|setname",
    )  # fmt: skip
    yield user, password
    r.execute_command("ACL", "DELUSER", user)


def _environ(service: Service) -> str:
    """Environment of the service's processes (the gunicorn master and its workers)."""
    pids = subprocess.run(["pgrep", "-g", str(service.proc.pid)], capture_output=True, text=True).stdout.split()
    assert pids, f"no process in group {service.proc.pid}"
    return "".join(open(f"/proc/{pid}/environ", encoding="utf-8", errors="replace").read() for pid in pids)


@pytest.mark.slow
def test_services_authenticate_with_secrets_from_files(vote_user, base_env, pg, workdir, tmp_path):
    user, redis_password = vote_user
    pg_password = base_env["PG_PASSWORD"]
    (tmp_path / "redis").write_text(redis_password)
    (tmp_path / "pg").write_text(pg_password)
    worker_env = {k: v for k, v in base_env.items() if k != "PG_PASSWORD"}
    vote = Service(
        "vote",
        {**worker_env, "REDIS_USER": user, "REDIS_PASSWORD_FILE": str(tmp_path / "redis"), "PORT": str(free_port()),
         "BIND_ADDRESS": "127.0.0.1"},
        workdir,
        "file-vote",
    )  # fmt: skip
    worker = Service(
        "worker",
        {**worker_env, "PG_PASSWORD_FILE": str(tmp_path / "pg"), "WORKER_CONSUMER": "files", "METRICS_PORT": "0"},
        workdir,
        "file-worker",
    )
    start_all([vote, worker])
    try:
        assert requests.post(f"{vote.url}/api/vote", json={"vote": "Dogs"}, timeout=5).status_code == 202
        wait_for(lambda: counts(pg) == {"Dogs": 1}, 30, f"vote counted ({worker.log_path})")
        assert redis_password not in _environ(vote)
        assert pg_password not in _environ(worker)
    finally:
        stop_all([vote, worker])
