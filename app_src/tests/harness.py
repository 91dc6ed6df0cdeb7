"""Real Redis, PostgreSQL, gunicorn services and nginx on loopback, for the tests and the benchmark.

Everything lives in one temporary directory and listens on free 127.0.0.1 ports; every wait is
bounded. PostgreSQL refuses to run as root, so when the tests run as root its data directory
belongs to the `postgres` (or `nobody`) account and its commands run through runuser.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2
import redis

APP_SRC = Path(__file__).resolve().parents[1]
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")

OWNER, OWNER_PW = "votingapp_owner", "owner-secret-pw"
WORKER, WORKER_PW = "votingapp_worker", "worker-secret-pw"
RESULT, RESULT_PW = "votingapp_result", "result-secret-pw"
DATABASE = "votingapp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing is still starting; keep the last reason for the message
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


class RedisServer:
    def __init__(self, root: Path, appendfsync: str = "always"):
        self.appendfsync = appendfsync
        self.dir = root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc = None

    def start(self):
        # Append-only file with fsync on every write: a restart (even kill -9) loses no
        # acknowledged XADD, which is what the production redis role must configure too.
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--appendonly", "yes",
                "--appendfsync", self.appendfsync,
                "--save", "",
                "--daemonize", "no",
                "--logfile", str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: self.client().ping(), 10, "redis to answer PING")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None

    def restart(self, down_seconds: float = 0.0):
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def env(self) -> dict:
        return {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.port)}


class PostgresServer:
    def __init__(self, *, durable: bool = False):
        self.durable = durable
        # Its own directory outside pytest's (mode 0700, owned by root): the postgres account
        # must be able to reach its data directory.
        self.root = Path(tempfile.mkdtemp(prefix="votingapp-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    self.user = pwd.getpwnam(name)
                    break

    def _run(self, args: list[str], **kw):
        cmd = [str(a) for a in args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user.pw_name, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)

    def init(self):
        self.sock.mkdir(exist_ok=True)
        if self.user is not None:
            for path in (self.root, self.sock):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text("superuser-secret\n")
        if self.user is not None:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        self._run(
            [PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--pwfile", pwfile,
             "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]
        )  # fmt: skip
        with open(self.data / "postgresql.conf", "a") as fh:
            fh.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.sock}'\n"
                "shared_buffers = 128MB\nmax_connections = 200\n"
            )
            if not self.durable:
                # Tests check behaviour, not disks: a clean or fast restart still keeps every
                # commit; only an OS crash could lose data. The benchmark keeps fsync on.
                fh.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        return self

    def start(self):
        self._run([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.root / "pg.log", "-w", "-t", "30", "start"])
        return self

    def postmaster_pid(self) -> int:
        """The server's first process (its first line of postmaster.pid): every backend's parent."""
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def stop(self, mode: str = "fast"):
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run([PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop"])

    def restart(self, down_seconds: float = 0.0):
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def superuser(self, dbname: str = "postgres"):
        conn = psycopg2.connect(host=str(self.sock), port=self.port, user="postgres", dbname=dbname)
        conn.autocommit = True
        return conn

    def provision(self):
        """The roles and grants the `postgres` role creates in production (least privilege)."""
        with contextlib.closing(self.superuser()) as conn, conn.cursor() as cur:
            for role, pw in ((OWNER, OWNER_PW), (WORKER, WORKER_PW), (RESULT, RESULT_PW)):
                cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", (pw,))
            cur.execute(f"CREATE DATABASE {DATABASE} OWNER {OWNER}")
        conn.close()
        conn = self.superuser(DATABASE)
        with conn.cursor() as cur:
            cur.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            cur.execute(f"GRANT USAGE ON SCHEMA public TO {WORKER}, {RESULT}")
            cur.execute(f"GRANT ALL ON SCHEMA public TO {OWNER}")
            cur.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} GRANT SELECT, INSERT, UPDATE ON TABLES TO {WORKER}")
            cur.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} GRANT SELECT ON TABLES TO {RESULT}")
        conn.close()
        return self

    def env(self, role: str = WORKER) -> dict:
        pw = {OWNER: OWNER_PW, WORKER: WORKER_PW, RESULT: RESULT_PW}[role]
        return {
            "PG_HOST": "127.0.0.1",
            "PG_PORT": str(self.port),
            "PG_DATABASE": DATABASE,
            "PG_USER": role,
            "PG_PASSWORD": pw,
        }

    def connect(self, role: str = OWNER):
        e = self.env(role)
        conn = psycopg2.connect(
            host=e["PG_HOST"], port=e["PG_PORT"], dbname=DATABASE, user=e["PG_USER"], password=e["PG_PASSWORD"]
        )
        conn.autocommit = True
        return conn


def python_env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PG_", "VOTE_", "WORKER_"))}
    env["PYTHONPATH"] = str(APP_SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Service:
    """One `python -m votingapp <command>` process with its log in a file."""

    def __init__(self, command: str, env: dict, log_dir: Path, name: str | None = None):
        self.command = command
        self.argv = [sys.executable, "-m", "votingapp", command]
        self.name = name or command
        self.env = python_env(env)
        self.log_path = log_dir / f"{self.name}.log"
        self.proc = None
        self.port = int(env["PORT"]) if "PORT" in env else None

    def start(self, wait_ready: bool = True):
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - stays open for the process's life
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            # Its own process group (kill() signals master and workers together) but not its own
            # session: with the kernel's autogroup scheduling (sched_autogroup_enabled=1) every
            # session is a separate CPU share, so a service in a session of its own competed with
            # wrk, Redis and the tests for CPU as if on another host. A gevent worker (one thread,
            # runnable all the time under load) then got about 0.6 of a CPU: vote 1,534-1,749
            # req/s against 3,596-4,421 in the shared session, alternated in one run
            # (app_src/bench/vote_sched_ab.sh, load 6-11); gthread 3,096-4,813 either way.
            process_group=0,
        )
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30):
        import requests

        if self.port:
            wait_for(
                lambda: requests.get(f"{self.url}/healthz", timeout=1).status_code == 200,
                timeout,
                f"{self.name} on port {self.port} (log {self.log_path})",
            )
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            # The whole process group: gunicorn's master and its workers.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def signal_stop(self):
        if self.proc and self.proc.poll() is None:
            # gunicorn: SIGINT is its quick shutdown (open event streams would otherwise hold a
            # graceful stop for graceful_timeout); the worker's SIGTERM path is what we test.
            self.kill(signal.SIGTERM if self.command == "worker" else signal.SIGINT)

    def stop(self, timeout: float = 20) -> int | None:
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.signal_stop()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()
        return self.proc.returncode

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_all(services) -> None:
    """Start every service, then wait for each: start-ups overlap instead of adding up."""
    for s in services:
        s.start(wait_ready=False)
    for s in services:
        s.wait_ready()


def stop_all(services) -> None:
    """Signal every service first, then wait: stops overlap instead of adding up."""
    services = [s for s in services if s is not None]
    for s in services:
        s.signal_stop()
    for s in services:
        s.stop()


NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  upstream vote {{ server 127.0.0.1:{vote_port}; keepalive 8; }}
  upstream result {{ server 127.0.0.1:{result_port}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    location /vote {{ proxy_pass http://vote; }}
    location /result {{
      proxy_pass http://result;
      # server-sent events must reach the browser as they are written
      proxy_buffering off;
      proxy_read_timeout 1h;
    }}
  }}
}}
"""


class Nginx:
    def __init__(self, root: Path, vote_port: int, result_port: int):
        self.root = root / "nginx"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.root / "nginx.conf"
        self.conf.write_text(
            NGINX_CONF.format(root=self.root, port=self.port, vote_port=vote_port, result_port=result_port)
        )
        self.proc = None

    def start(self):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.root), "-c", str(self.conf), "-e", str(self.root / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: socket.create_connection(("127.0.0.1", self.port), 1).close() or True, 10, "nginx")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class VoteLoad:
    """Bounded vote traffic: `threads` keep-alive HTTP clients, each vote from a new voter.

    Records what the server answered for every voter, so a test can compare what was accepted
    (2xx) with what reached PostgreSQL. Stops at `max_votes`, at `seconds`, or on stop().
    """

    def __init__(
        self, base_url: str, *, threads=4, max_votes=5000, seconds=10.0, rate=None, path="/api/vote", tag="load"
    ):
        options = ("Cats", "Dogs")
        import threading

        self.host, self.port = base_url.removeprefix("http://").split(":")
        self.threads, self.max_votes, self.seconds, self.rate = threads, max_votes, seconds, rate
        self.options, self.path, self.tag = options, path, tag
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.accepted: dict[str, str] = {}
        self.answered: list[tuple[float, float]] = []  # (send time, answer time) of accepted votes
        self.failed: dict[str, str] = {}
        self.statuses: dict[int | str, int] = {}
        self._threads: list = []

    def _next(self) -> int | None:
        with self.lock:
            if self.sent >= self.max_votes:
                return None
            self.sent += 1
            return self.sent

    def _run(self, index: int, deadline: float) -> None:
        import http.client

        conn = None
        interval = self.threads / self.rate if self.rate else 0.0
        next_at = time.monotonic() + index * interval / max(self.threads, 1)
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            n = self._next()
            if n is None:
                return
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at += interval
            voter = f"{self.tag}{n:08d}"
            choice = self.options[n % len(self.options)]
            body = f'{{"vote": "{choice}"}}'
            sent_at = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, int(self.port), timeout=5)
                conn.request(
                    "POST",
                    self.path,
                    body=body,
                    headers={"Content-Type": "application/json", "Cookie": f"voter_id={voter}"},
                )
                resp = conn.getresponse()
                resp.read()
                status: int | str = resp.status
            except (OSError, http.client.HTTPException) as exc:
                status = exc.__class__.__name__
                if conn is not None:
                    conn.close()
                conn = None
            done_at = time.monotonic()
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if isinstance(status, int) and 200 <= status < 300:
                    self.accepted[voter] = choice
                    self.answered.append((sent_at, done_at))
                else:
                    self.failed[voter] = choice
                    if not isinstance(status, int):
                        time.sleep(0.05)  # server unreachable: do not spin
        if conn is not None:
            conn.close()

    def start(self):
        import threading

        deadline = time.monotonic() + self.seconds
        self.started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._run, args=(i, deadline), daemon=True) for i in range(self.threads)
        ]
        for t in self._threads:
            t.start()
        return self

    def wait(self, timeout: float | None = None):
        for t in self._threads:
            t.join(timeout)
        self.finished = time.monotonic()
        return self

    def stop(self):
        self.stop_event.set()
        return self.wait(30)

    def attempted(self) -> dict[str, str]:
        return {**self.accepted, **self.failed}
