"""Backup and restore of the tally on the lab: playbooks/backup.yml, then the PostgreSQL cluster
destroyed, then playbooks/restore.yml onto the empty server.

The recovery point under test (docs/operations.md): a restore brings back the tally of the dump,
exactly, plus every vote still in the Redis stream at restore time, counted once. Votes the workers
committed (and deleted from the stream) after the dump are the ones a restore loses.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from conftest import PLAYBOOKS, api_vote, docker, run_playbook, tally, wait_for

PG_VERSION = "15"


def inner(host: str, *args: str) -> str:
    """A docker command run by the Docker engine inside a lab host."""
    return docker("exec", host, "docker", *args).stdout


def cast(option: str, count: int) -> None:
    """`count` new voters (no cookie: each request is a new voter id) vote for `option`."""
    for _voter in range(count):
        api_vote(option)


def counts() -> dict[str, int]:
    return dict(tally()["options"])


def expect(base: dict[str, int], **added: int) -> dict[str, int]:
    return {option: base.get(option, 0) + added.get(option, 0) for option in set(base) | set(added)}


def settled(expected: dict[str, int], timeout: float = 60) -> None:
    wait_for(lambda: counts() == expected, timeout, what=f"the tally to be {expected} (now {counts()})")


def dumps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("votingapp-*.dump"))


def playbook_message(run, task: str) -> str:
    return " ".join(str(r.get("msg", "")) for r in run.task_results(task).values())


@pytest.fixture(scope="module")
def backup_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("backups")


def test_backup_destroy_restore_keeps_the_tally_and_counts_the_stream_once(lab, backup_dir):
    started = time.monotonic()
    base = counts()
    settled(base)

    # Votes the dump must hold.
    cast("Cats", 30)
    cast("Dogs", 20)
    at_backup = expect(base, Cats=30, Dogs=20)
    settled(at_backup)

    # Two older dumps of a previous day: with keep=2 the oldest goes, the newer one and the new dump stay.
    for name in ("votingapp-20200101T000000Z.dump", "votingapp-20200102T000000Z.dump"):
        (backup_dir / name).write_bytes(b"old")
        (backup_dir / (name + ".sha256")).write_text(f"0  {name}\n")
    t0 = time.monotonic()
    run = run_playbook(
        PLAYBOOKS / "backup.yml", "-e", f"postgres_backup_dir={backup_dir}", "-e", "postgres_backup_keep=2"
    )
    backup_s = time.monotonic() - t0
    assert run.rc == 0, json.dumps(run.result)[-3000:] + run.stderr
    kept = dumps(backup_dir)
    assert len(kept) == 2 and kept[0] == "votingapp-20200102T000000Z.dump", kept
    assert not (backup_dir / "votingapp-20200101T000000Z.dump.sha256").exists()
    dump = backup_dir / kept[1]
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
    recorded = (backup_dir / (dump.name + ".sha256")).read_text().split()
    assert recorded[1] == dump.name and len(recorded[0]) == 64
    host_dir = docker("exec", "lab-postgres", "ls", "-A", "/var/backups/votingapp-postgres").stdout.split()
    assert host_dir == [], f"the dump stayed on the database host: {host_dir}"

    # After the dump, votes the workers commit: past the recovery point, a restore loses them.
    cast("Cats", 5)
    settled(expect(at_backup, Cats=5))

    # Then the workers stop, and votes wait in the stream: a restore must count them, once.
    workers = inner("lab-worker", "ps", "-q", "--filter", "label=io.votingapp.service=worker").split()
    assert workers, "no worker containers run on lab-worker"
    inner("lab-worker", "stop", *workers)
    cast("Dogs", 7)
    cast("Cats", 4)
    time.sleep(2)
    assert counts() == expect(at_backup, Cats=5), "votes were counted with every worker stopped"

    # The server is destroyed: cluster stopped and dropped (data directory and configuration gone).
    docker("exec", "lab-postgres", "pg_dropcluster", "--stop", PG_VERSION, "main")
    data_dir = f"/var/lib/postgresql/{PG_VERSION}/main"
    assert docker("exec", "lab-postgres", "test", "-e", data_dir, check=False).returncode != 0

    # A damaged dump is refused before anything stops or changes.
    damaged = backup_dir / "damaged" / dump.name
    damaged.parent.mkdir()
    # One byte flipped in the middle (the dump's last byte may already be 0: overwriting it with 0 changed nothing).
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (damaged.parent / (dump.name + ".sha256")).write_text((backup_dir / (dump.name + ".sha256")).read_text())
    run = run_playbook(PLAYBOOKS / "restore.yml", "-e", f"postgres_restore_file={damaged}")
    assert run.rc != 0
    assert "does not match its checksum" in json.dumps(run.result), json.dumps(run.result)[-2000:]
    assert set(run.stats) == {"lab-postgres"}, f"a refused restore touched other hosts: {sorted(run.stats)}"

    t0 = time.monotonic()
    run = run_playbook(PLAYBOOKS / "restore.yml", "-e", f"postgres_backup_dir={backup_dir}")
    restore_s = time.monotonic() - t0
    assert run.rc == 0, json.dumps(run.result)[-3000:] + run.stderr
    restored = playbook_message(run, "votingapp.stack.postgres : Report the restore")
    expected_total = sum(at_backup.values())
    assert f"{expected_total} votes of {expected_total} voters" in restored, restored

    # The restored tally plus the 11 votes that waited in the stream; the 5 committed after the dump are lost.
    final = expect(at_backup, Dogs=7, Cats=4)
    settled(final, timeout=90)
    time.sleep(3)
    assert counts() == final, "a vote was counted twice after the restore"
    # Votes flow again.
    cast("Dogs", 1)
    settled(expect(final, Dogs=1))
    print(
        f"\nbackup/restore: {expected_total} votes in the dump ({dump.stat().st_size} bytes), "
        f"backup.yml {backup_s:.1f}s, restore.yml {restore_s:.1f}s onto a dropped cluster; "
        "5 votes committed after the dump lost (recovery point), "
        f"11 votes waiting in the stream counted once; whole test {time.monotonic() - started:.0f}s"
    )
