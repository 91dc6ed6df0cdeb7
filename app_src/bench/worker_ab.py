"""Two versions of the worker draining the same pre-filled stream, alternated round by round.

    python app_src/bench/worker_ab.py NEW_CHECKOUT OLD_CHECKOUT [--rounds 3] [--entries 200000]

Each checkout is a directory holding app_src/ (e.g. a `git worktree` of the older commit). Per
run: a fresh database migrated by that checkout's own schema, a fresh stream of `--entries`
entries (80% new voters, 20% changed votes, as `make bench`), one worker process of that
checkout; the CPU seconds of the worker, redis-server and the worker's PostgreSQL backend are
counted from its first read to its last acknowledgement. Alternating in one run is what makes
the comparison mean something on a shared machine: both see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

import psycopg2  # noqa: E402
from harness import OWNER, PostgresServer, RedisServer  # noqa: E402
from run import _fill_stream, measure_drain, pipeline_pids  # noqa: E402


def drain(checkout: Path, name: str, redis_server, pg, su, entries: int, logdir: Path) -> dict:
    r = redis_server.client()
    with su.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} OWNER {OWNER}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PG_", "VOTE_", "WORKER_"))}
    env |= {**redis_server.env(), **pg.env(OWNER)}
    env |= {
        "PG_DATABASE": name, "PYTHONPATH": str(checkout / "app_src"), "VOTE_STREAM": name,
        "VOTE_OPTIONS": "Cats,Dogs", "WORKER_CONSUMER": "ab", "WORKER_MIGRATE": "true", "METRICS_PORT": "0",
        "WORKER_BATCH_SIZE": os.environ.get("BENCH_BATCH_SIZE", "1000"),
    }  # fmt: skip
    _fill_stream(r, name, entries, "w")
    with open(logdir / f"{name}.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "votingapp", "worker"], env=env, cwd=checkout / "app_src", stdout=log, stderr=log
        )
    try:
        n, wall, cpu = measure_drain(r, name, entries, lambda: {"worker": worker.pid, **pipeline_pids(r, su, "ab")})
    except RuntimeError as exc:
        worker.kill()
        raise SystemExit(f"{name}: {exc}, see {logdir / name}.log") from exc
    worker.send_signal(signal.SIGTERM)
    worker.wait(30)
    r.delete(name)
    conn = psycopg2.connect(host=str(pg.sock), port=pg.port, user="postgres", dbname=name)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT sum(count) FROM vote_counts")
        stored = cur.fetchone()[0]
    conn.close()
    voters = len({i if i % 5 else i // 5 for i in range(entries)})  # _fill_stream's voters
    if stored != voters:
        raise SystemExit(f"{name}: {stored} votes counted, expected {voters}")
    us = [round(cpu.get(k, 0.0) / n * 1e6, 2) for k in ("worker", "redis", "postgres_backend")]
    return {
        "votes_per_s": round(n / wall), "votes_per_cpu_s_all": round(n / sum(cpu.values())),
        "us_worker": us[0], "us_redis": us[1], "us_postgres_backend": us[2], "load": round(os.getloadavg()[0], 1),
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("new", type=Path)
    ap.add_argument("old", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--entries", type=int, default=200_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="votingapp-worker-ab-"))
    redis_server = RedisServer(work, appendfsync="everysec").start()
    pg = PostgresServer(durable=True).init().start().provision()
    runs: dict[str, list] = {"new": [], "old": []}
    try:
        su = pg.superuser()
        for i in range(args.rounds):
            order = ("new", "old") if i % 2 == 0 else ("old", "new")
            for tag in order:
                row = drain(getattr(args, tag).resolve(), f"ab_{tag}_{i}", redis_server, pg, su, args.entries, work)
                runs[tag].append(row)
                print(tag, i + 1, json.dumps(row), flush=True)
        su.close()
    finally:
        pg.destroy()
        redis_server.stop()
    print(json.dumps(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
