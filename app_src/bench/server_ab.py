"""Bench only: the vote app under each candidate server, alternated in one run, beside the probe.

Candidates: gunicorn gevent (the default), gunicorn gthread, and granian (WSGI) when it can be
imported, from the environment or from GRANIAN_PATH (a `pip install --target` directory, so the
shared venv is not touched). Each runs the same Flask app (`votingapp.vote.create_app`) with 2
processes; the bare WSGI + XADD probe (vote_probe.py) runs beside them under gunicorn gevent.
With granian the probe also runs under granian. Rounds alternate A B C D .. A B C D, so every
candidate sees the same load; the load average is recorded with each run.

    GRANIAN_PATH=/tmp/granian python app_src/bench/server_ab.py [--rounds 3] [--seconds 5] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402
from harness import APP_SRC, RedisServer, Service, free_port, start_all, stop_all  # noqa: E402

# granian imports the app by name in each of its worker processes: this module path is the app.
GRANIAN_MAIN = r"""
import os, sys
from votingapp import web
web.prepare_multiprocess_metrics()  # before a worker imports prometheus_client
from granian import Granian
from granian.constants import Interfaces
Granian(
    "granian_vote_app:app", address="127.0.0.1", port=int(os.environ["PORT"]),
    interface=Interfaces.WSGI, workers=2, blocking_threads=int(os.environ.get("GRANIAN_THREADS", "2")),
    backlog=2048, log_access=False,
).serve()
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="votingapp-server-ab-"))
    redis_server = RedisServer(root, appendfsync="everysec").start()
    env = {**redis_server.env(), "VOTE_STREAM": "votes", "VOTE_OPTIONS": "Cats,Dogs", "BIND_ADDRESS": "127.0.0.1"}
    services = {
        "gunicorn-gevent": Service("vote", {**env, "PORT": str(free_port())}, root, "ab-gevent"),
        "gunicorn-gthread": Service(
            "vote", {**env, "PORT": str(free_port()), "GUNICORN_WORKER_CLASS": "gthread"}, root, "ab-gthread"
        ),
        "probe": Service("vote", {**env, "PORT": str(free_port()), "VOTE_STREAM": "votes-probe"}, root, "ab-probe"),
    }
    services["probe"].argv = [sys.executable, str(HERE / "vote_probe.py")]
    granian_path = os.environ.get("GRANIAN_PATH", "")
    path = os.pathsep.join(p for p in (str(APP_SRC), str(HERE), granian_path) if p)
    probe_env = {**os.environ, "PYTHONPATH": path}
    has_granian = subprocess.run([sys.executable, "-c", "import granian"], env=probe_env).returncode == 0
    if has_granian:
        svc = Service("vote", {**env, "PORT": str(free_port()), "PYTHONPATH": path}, root, "ab-granian")
        svc.argv = [sys.executable, "-c", GRANIAN_MAIN]
        services["granian-2x2"] = svc
        probe_env = {**env, "PORT": str(free_port()), "PYTHONPATH": path, "GRANIAN_APP": "probe"}
        svc = Service("vote", {**probe_env, "VOTE_STREAM": "votes-probe"}, root, "ab-granian-probe")
        svc.argv = [sys.executable, "-c", GRANIAN_MAIN]
        services["probe-granian-2x2"] = svc
    else:
        print("granian not importable: set GRANIAN_PATH to compare it", flush=True)
    start_all(list(services.values()))
    runs: dict[str, list[dict]] = {name: [] for name in services}
    try:
        for svc in services.values():
            bench.WrkRun(svc.url, connections=16, seconds=2, tag="warm").run()
        for i in range(args.rounds):
            for name, svc in services.items():
                load = os.getloadavg()[0]
                w = bench.WrkRun(svc.url, connections=16, seconds=args.seconds, tag=f"ab{i}{name[:3]}").run()
                runs[name].append(
                    {"rps": round(w.rate), "p99_ms": round(w.summary["p99_us"] / 1000, 1), "errors": w.errors,
                     "load": round(load, 1)}
                )  # fmt: skip
                print(name, runs[name][-1], flush=True)
    finally:
        stop_all(list(services.values()))
        redis_server.stop()
        shutil.rmtree(root, ignore_errors=True)
    probe = sum(r["rps"] for r in runs["probe"])
    report = {
        name: {"runs": rs, "to_probe": round(sum(r["rps"] for r in rs) / probe, 2) if probe else None}
        for name, rs in runs.items()
    }
    print(json.dumps(report), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
