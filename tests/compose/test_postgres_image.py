"""The PostgreSQL image of the offline run honours the official postgres image's contract.

compose.yaml is the same for postgres:15 and votingapp-postgres:15 (images/postgres), so the image must
behave like the official one for what the file relies on: POSTGRES_PASSWORD (required on an empty data
directory), POSTGRES_USER, POSTGRES_DB, /docker-entrypoint-initdb.d/ (*.sql run, *.sh executed or
sourced, once), password logins over TCP, and a read-only root filesystem with tmpfs for the socket.
Nothing here is specific to the local image: with POSTGRES_IMAGE=postgres:15 it checks the official one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from conftest import run

IMAGE = os.environ.get("POSTGRES_IMAGE", "votingapp-postgres:15")


@pytest.fixture
def initdb_dir():
    # Under /tmp itself (world-traversable), so the image's postgres user can read the bind mount.
    path = Path(tempfile.mkdtemp(prefix="votingapp-test-initdb-"))
    path.chmod(0o755)
    insert = 'psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "INSERT INTO probe VALUES ({})"\n'
    scripts = {
        "10-table.sql": ("CREATE TABLE probe (x int);\nINSERT INTO probe VALUES (40);\n", 0o644),
        "20-executed.sh": ("#!/bin/sh\nset -e\n" + insert.format(2), 0o755),
        "30-sourced.sh": (insert.format(1), 0o644),  # not executable: the entrypoint sources it
    }
    for filename, (text, mode) in scripts.items():
        (path / filename).write_text(text)
        (path / filename).chmod(mode)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_without_postgres_password_it_refuses_to_initialize():
    proc = run(["docker", "run", "--rm", IMAGE], timeout=60)
    assert proc.returncode != 0
    assert "POSTGRES_PASSWORD" in proc.stderr + proc.stdout


def test_user_db_password_and_init_scripts(initdb_dir: Path):
    name = f"votingapp-test-pg-{os.getpid()}"
    args = ["docker", "run", "-d", "--name", name, "--read-only", "--tmpfs", "/var/run/postgresql", "--tmpfs", "/tmp"]
    args += ["-e", "POSTGRES_USER=probe_admin", "-e", "POSTGRES_PASSWORD=probe-password", "-e", "POSTGRES_DB=probe_db"]
    args += ["-v", f"{initdb_dir}:/docker-entrypoint-initdb.d:ro", IMAGE]
    try:
        started = run(args, timeout=60)
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 90
        ready = ["docker", "exec", name, "pg_isready", "-h", "127.0.0.1", "-U", "probe_admin", "-d", "probe_db"]
        while run(ready, timeout=30).returncode != 0:
            state = run(["docker", "inspect", "-f", "{{.State.Status}}", name]).stdout.strip()
            assert state == "running" and time.monotonic() < deadline, run(["docker", "logs", name]).stderr
            time.sleep(0.5)

        def psql(password: str, sql: str):
            cmd = ["docker", "exec", "-e", f"PGPASSWORD={password}", name, "psql", "-h", "127.0.0.1"]
            cmd += ["-U", "probe_admin", "-d", "probe_db", "-v", "ON_ERROR_STOP=1", "-Atc", sql]
            return run(cmd, timeout=30)

        summed = psql("probe-password", "SELECT sum(x) FROM probe")
        assert (summed.returncode, summed.stdout.strip()) == (0, "43"), summed.stderr  # each script ran once
        su = psql("probe-password", "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert su.stdout.strip() == "t"
        wrong = psql("not-the-password", "SELECT 1")
        assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr

        # A restart on the initialized volume runs no init script again.
        assert run(["docker", "restart", name], timeout=60).returncode == 0
        deadline = time.monotonic() + 60
        while run(ready, timeout=30).returncode != 0:
            assert time.monotonic() < deadline, run(["docker", "logs", name]).stderr
            time.sleep(0.5)
        assert psql("probe-password", "SELECT count(*) FROM probe").stdout.strip() == "3"
    finally:
        run(["docker", "rm", "-f", "-v", name], timeout=60)
