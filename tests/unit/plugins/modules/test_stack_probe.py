"""stack_probe against real listeners: closed ports, a full accept queue, an HTTP server,
a throw-away PostgreSQL cluster and redis-server, all on 127.0.0.1."""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

MODULE_PATH = Path(__file__).resolve().parents[4] / "plugins" / "modules" / "stack_probe.py"
spec = importlib.util.spec_from_file_location("stack_probe", MODULE_PATH)
stack_probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stack_probe)

REDIS_SERVER = "/usr/bin/redis-server"
PG_BINDIR = (
    next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
    if Path("/usr/lib/postgresql").is_dir()
    else None
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=15.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def run(**params):
    base = {
        "hop": "test hop",
        "host": None,
        "port": None,
        "timeout": 1.0,
        "url": None,
        "expect_status": [200],
        "validate_certs": True,
        "db": None,
        "user": None,
        "password": None,
        "query": None,
        "expect_privileges": {},
        "stream": "votes",
        "group": "workers",
        "sample_interval": 0.3,
    }
    base.update(params)
    return stack_probe.run_probe(base)


# ------------------------------------------------------------------------------------------ tcp


@pytest.fixture
def full_backlog_port():
    """A listener that never accepts, its queue filled: the kernel drops further SYNs like a firewall does."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _round in range(10):
        c = socket.socket()
        c.settimeout(0.5)
        fillers.append(c)
        try:
            c.connect(("127.0.0.1", port))
        except TimeoutError:
            break
    else:
        pytest.fail("could not fill the accept queue")
    yield port
    for c in fillers:
        c.close()
    server.close()


def test_tcp_ok():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        out = run(type="tcp", host="127.0.0.1", port=server.getsockname()[1])
    assert out["status"] == "ok" and out["ok"] is True
    assert out["message"].startswith("test hop: ")


def test_tcp_refused_on_closed_port():
    out = run(type="tcp", host="127.0.0.1", port=free_port())
    assert out["status"] == "refused"
    assert out["ok"] is False
    assert "nothing listens" in out["message"]


def test_tcp_timeout_when_syns_are_dropped(full_backlog_port):
    out = run(type="tcp", host="127.0.0.1", port=full_backlog_port, timeout=0.5)
    assert out["status"] == "timeout"
    assert out["phase"] == "connect"
    assert "blocked by a firewall, security group or network policy" in out["message"]
    assert 0.4 < out["elapsed"] < 3


def test_tcp_dns_error():
    out = run(type="tcp", host="no-such-host.invalid", port=80)
    assert out["status"] == "dns_error"
    assert "does not resolve" in out["message"]


# ----------------------------------------------------------------------------------------- http


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/hang":
            time.sleep(2)
            return
        code = {"/readyz": 200, "/down": 503, "/gone": 404}.get(self.path, 500)
        body = b"redis: connection refused" if code == 503 else b"ok " + self.path.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_http_ok_returns_code_and_body(http_port):
    out = run(type="http", url=f"http://127.0.0.1:{http_port}/readyz")
    assert out["status"] == "ok"
    assert out["status_code"] == 200
    assert out["body"] == "ok /readyz"


def test_http_503_names_code_path_and_reason(http_port):
    out = run(type="http", url=f"http://127.0.0.1:{http_port}/down")
    assert out["status"] == "http_error"
    assert out["status_code"] == 503
    assert "/down answered 503, expected 200" in out["message"]
    assert "not ready" in out["message"]
    assert "redis: connection refused" in out["message"]


def test_http_expect_status_list(http_port):
    out = run(type="http", url=f"http://127.0.0.1:{http_port}/gone", expect_status=[404, 200])
    assert out["status"] == "ok"


def test_http_refused():
    out = run(type="http", url=f"http://127.0.0.1:{free_port()}/readyz")
    assert out["status"] == "refused"


def test_http_hung_service_is_not_called_a_firewall(http_port):
    out = run(type="http", url=f"http://127.0.0.1:{http_port}/hang", timeout=0.5)
    assert out["status"] == "timeout"
    assert out["phase"] == "response"
    assert "hangs" in out["message"]


def test_http_timeout_on_dropped_syn(full_backlog_port):
    out = run(type="http", url=f"http://127.0.0.1:{full_backlog_port}/", timeout=0.5)
    assert out["status"] == "timeout"
    assert out["phase"] == "connect"


def test_http_non_http_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)

        def answer_garbage():
            conn, _peer = server.accept()
            conn.recv(1024)
            conn.sendall(b"-ERR not http\r\n")
            conn.close()

        t = threading.Thread(target=answer_garbage, daemon=True)
        t.start()
        out = run(type="http", url=f"http://127.0.0.1:{server.getsockname()[1]}/")
        t.join(2)
    assert out["status"] == "http_error"


# ------------------------------------------------------------------------------------- postgres


@pytest.fixture(scope="module")
def postgres():
    if PG_BINDIR is None or os.geteuid() != 0:
        pytest.skip("needs Debian's postgresql package and root (scripts/prereqs.sh installs it)")
    pg_user = pwd.getpwnam("postgres")
    root = tempfile.mkdtemp(prefix="votingapp-probe-pg.")
    os.chown(root, pg_user.pw_uid, pg_user.pw_gid)
    data = os.path.join(root, "data")
    port = free_port()

    def as_pg(*cmd, **kw):
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, text=True, **kw
        )

    as_pg(str(PG_BINDIR / "initdb"), "-D", data, "-A", "trust", "--auth-host=scram-sha-256", "-U", "postgres")
    hba = Path(data) / "pg_hba.conf"
    # md5_user exercises the MD5 exchange; everybody else logs in with SCRAM, as in production.
    hba.write_text("host app md5_user 127.0.0.1/32 md5\n" + hba.read_text())
    as_pg(
        str(PG_BINDIR / "pg_ctl"),
        "-D",
        data,
        "-l",
        os.path.join(root, "log"),
        "-w",
        "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )
    sql = """
    CREATE ROLE app_owner LOGIN PASSWORD 'ownerpw';
    CREATE ROLE app_worker LOGIN PASSWORD 'workerpw';
    CREATE ROLE app_result LOGIN PASSWORD 'resultpw';
    CREATE ROLE md5_user LOGIN;
    """
    psql = [str(PG_BINDIR / "psql"), "-h", root, "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
    try:
        setup_cluster(as_pg, psql, sql)
        yield {"host": "127.0.0.1", "port": port}
    finally:
        as_pg(str(PG_BINDIR / "pg_ctl"), "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def setup_cluster(as_pg, psql, sql):
    as_pg(*psql, "-d", "postgres", "-c", sql, "-c", "CREATE DATABASE app OWNER app_owner")
    as_pg(
        *psql,
        "-d",
        "app",
        "-c",
        """
        SET ROLE app_owner;
        CREATE TABLE votes (voter_id text PRIMARY KEY, vote text);
        CREATE TABLE vote_counts (vote text PRIMARY KEY, n bigint);
        INSERT INTO vote_counts VALUES ('Cats', 3), ('Dogs', 5);
        GRANT SELECT, INSERT, UPDATE ON votes, vote_counts TO app_worker;
        GRANT SELECT ON vote_counts TO app_result;
        RESET ROLE;
        SET password_encryption = 'md5';
        ALTER ROLE md5_user PASSWORD 'md5pw';
        """,
    )


def pg(postgres, **params):
    return run(type="postgres", host=postgres["host"], port=postgres["port"], db="app", **params)


def test_postgres_ok_with_grants_and_query(postgres):
    out = pg(
        postgres,
        user="app_result",
        password="resultpw",
        expect_privileges={"select": ["vote_counts"]},
        query="SELECT vote, n FROM vote_counts ORDER BY vote",
    )
    assert out["status"] == "ok", out["message"]
    assert out["privileges"] == {"SELECT": {"vote_counts": True}}
    assert out["rows"] == [["Cats", "3"], ["Dogs", "5"]]


def test_postgres_wrong_password(postgres):
    out = pg(postgres, user="app_result", password="not-it")
    assert out["status"] == "auth_failed"
    assert out["sqlstate"] == "28P01"
    assert "wrong database credentials for app_result" in out["message"]


def test_postgres_md5_login(postgres):
    out = pg(postgres, user="md5_user", password="md5pw")
    assert out["status"] == "ok", out["message"]


def test_postgres_missing_grant_is_named(postgres):
    out = pg(
        postgres,
        user="app_result",
        password="resultpw",
        expect_privileges={"SELECT": ["vote_counts"], "INSERT": ["votes"]},
    )
    assert out["status"] == "no_grant"
    assert out["missing_privileges"] == ["INSERT on votes"]
    assert "lacks INSERT on votes" in out["message"]
    assert "GRANT INSERT ON votes TO app_result" in out["message"]


def test_postgres_permission_denied_query(postgres):
    out = pg(postgres, user="app_result", password="resultpw", query="SELECT count(*) FROM votes")
    assert out["status"] == "no_grant"
    assert out["sqlstate"] == "42501"


def test_postgres_missing_table(postgres):
    out = pg(postgres, user="app_worker", password="workerpw", expect_privileges={"SELECT": ["no_such_table"]})
    assert out["status"] == "no_table"
    assert "migration" in out["message"]


def test_postgres_unknown_database(postgres):
    out = run(
        type="postgres", host=postgres["host"], port=postgres["port"], db="nope", user="app_worker", password="workerpw"
    )
    assert out["status"] == "no_database"


def test_postgres_refused():
    out = run(type="postgres", host="127.0.0.1", port=free_port(), db="app", user="x", password="y")
    assert out["status"] == "refused"


def test_postgres_on_a_non_postgres_port(http_port):
    # an HTTP server waits for a request line that the startup packet never sends
    out = run(type="postgres", host="127.0.0.1", port=http_port, db="app", user="x", password="y", timeout=0.5)
    assert out["status"] == "timeout"
    assert out["phase"] == "response"


# ------------------------------------------------------------------------------------------ redis


@pytest.fixture(scope="module")
def redis():
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.skip("needs Debian's redis-server (scripts/prereqs.sh installs it)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="votingapp-probe-redis.")
    proc = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        admin = client(port)
        admin.command("ACL", "SETUSER", "admin", "on", ">adminpw", "~*", "&*", "+@all")
        admin.command("ACL", "SETUSER", "vote", "on", ">votepw", "~votes", "+xadd", "+ping")
        admin.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def client(port):
    return stack_probe.RespClient(socket.create_connection(("127.0.0.1", port), timeout=2), 2)


@pytest.fixture
def stream(redis):
    name = f"votes-{time.monotonic_ns()}"
    c = client(redis)
    c.command("XGROUP", "CREATE", name, "workers", "$", "MKSTREAM")
    yield c, name
    c.command("DEL", name)
    c.close()


def rs(redis, name, **params):
    params.setdefault("user", "admin")
    params.setdefault("password", "adminpw")
    return run(type="redis_stream", host="127.0.0.1", port=redis, stream=name, **params)


def test_redis_idle_group(redis, stream):
    _c, name = stream
    out = rs(redis, name)
    assert out["status"] == "ok", out["message"]
    assert out["verdict"] == "idle"
    assert (out["length"], out["lag"], out["pending"]) == (0, 0, 0)


def test_redis_stalled_without_consumers(redis, stream):
    c, name = stream
    for i in range(3):
        c.command("XADD", name, "*", "vote", "Cats", "n", i)
    out = rs(redis, name)
    assert out["status"] == "stalled"
    assert out["verdict"] == "stalled"
    assert out["lag"] == 3
    assert "no consumer is attached" in out["message"]


def test_redis_stalled_with_idle_consumer_holding_pending(redis, stream):
    c, name = stream
    for i in range(4):
        c.command("XADD", name, "*", "vote", "Dogs", "n", i)
    c.command("XREADGROUP", "GROUP", "workers", "w1", "COUNT", "2", "STREAMS", name, ">")
    time.sleep(0.4)  # the consumer must look idle for longer than the sample interval
    out = rs(redis, name)
    assert out["verdict"] == "stalled"
    assert out["pending"] == 2 and out["lag"] == 2
    assert out["consumers"][0]["name"] == "w1"
    assert out["consumers"][0]["pending"] == 2
    assert out["consumers"][0]["idle_ms"] >= 300
    assert "every consumer is idle" in out["message"]


def test_redis_stalled_when_backlog_grows_while_consumers_poll(redis, stream):
    """A live consumer that never acknowledges (the worker cannot write to Postgres)."""
    c, name = stream
    c.command("XADD", name, "*", "vote", "Cats")
    c.command("XREADGROUP", "GROUP", "workers", "w1", "STREAMS", name, ">")
    stop = threading.Event()

    def producer_and_poller():
        p = client(redis)
        for _round in range(20):  # bounded: at most 20 rounds of 50 ms
            if stop.is_set():
                break
            p.command("XADD", name, "*", "vote", "Cats")
            # reading the pending history keeps the consumer "seen" without taking new entries
            p.command("XREADGROUP", "GROUP", "workers", "w1", "STREAMS", name, "0")
            time.sleep(0.05)
        p.close()

    t = threading.Thread(target=producer_and_poller, daemon=True)
    t.start()
    out = rs(redis, name, sample_interval=0.4)
    stop.set()
    t.join(5)
    assert out["verdict"] == "stalled", out["message"]
    assert "growing" in out["message"]
    assert "consumers are alive (w1)" in out["message"]


def test_redis_draining(redis, stream):
    c, name = stream
    for i in range(30):
        c.command("XADD", name, "*", "vote", "Cats", "n", i)
    stop = threading.Event()

    def consumer():
        w = client(redis)
        for _round in range(30):  # bounded
            if stop.is_set():
                break
            entries = w.command("XREADGROUP", "GROUP", "workers", "w1", "COUNT", "2", "STREAMS", name, ">")
            for _stream, items in entries or []:
                w.command("XACK", name, "workers", *[item[0] for item in items])
            time.sleep(0.05)
        w.close()

    t = threading.Thread(target=consumer, daemon=True)
    t.start()
    out = rs(redis, name, sample_interval=0.3)
    stop.set()
    t.join(5)
    assert out["status"] == "ok", out["message"]
    assert out["verdict"] == "draining"
    assert out["samples"][1]["lag"] < out["samples"][0]["lag"]


def test_redis_no_group(redis):
    c = client(redis)
    c.command("XADD", "lonely", "*", "a", "b")
    out = rs(redis, "lonely")
    c.command("DEL", "lonely")
    c.close()
    assert out["status"] == "no_group"
    assert "never started" in out["message"]


def test_redis_no_stream(redis):
    out = rs(redis, "does-not-exist")
    assert out["status"] == "no_stream"


def test_redis_wrong_password(redis, stream):
    _c, name = stream
    out = rs(redis, name, password="wrong")
    assert out["status"] == "auth_failed"
    assert "admin" in out["message"]


def test_redis_user_without_permission(redis, stream):
    _c, name = stream
    out = rs(redis, name, user="vote", password="votepw")
    assert out["status"] == "no_grant"


def test_redis_refused():
    out = run(type="redis_stream", host="127.0.0.1", port=free_port())
    assert out["status"] == "refused"


# ------------------------------------------------------------------------------- module contract


def run_module(args):
    """Run the module file the way Ansible does, with an args file, and parse its JSON answer."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
    try:
        proc = subprocess.run(
            [sys.executable, str(MODULE_PATH), f.name], capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        os.unlink(f.name)
    return proc.returncode, json.loads(proc.stdout)


def test_module_reports_broken_hop_without_failing():
    rc, out = run_module({"type": "tcp", "host": "127.0.0.1", "port": free_port(), "hop": "vote -> redis"})
    assert rc == 0
    assert out["changed"] is False
    assert out["status"] == "refused"
    assert out["message"].startswith("vote -> redis: ")


def test_module_fail_on_error_and_check_mode():
    rc, out = run_module(
        {"type": "tcp", "host": "127.0.0.1", "port": free_port(), "fail_on_error": True, "_ansible_check_mode": True}
    )
    assert rc == 1
    assert out["failed"] is True
    assert "refused the connection" in out["msg"]


def test_module_password_is_not_logged(postgres):
    rc, out = run_module(
        {
            "type": "postgres",
            "host": "127.0.0.1",
            "port": postgres["port"],
            "db": "app",
            "user": "app_result",
            "password": "resultpw",
        }
    )
    assert rc == 0 and out["status"] == "ok"
    assert "resultpw" not in json.dumps(out)


def test_module_missing_option_is_named():
    rc, out = run_module({"type": "http"})
    assert rc == 1
    assert "url" in out["msg"]


def test_module_rejects_unknown_privilege():
    rc, out = run_module(
        {"type": "postgres", "host": "h", "db": "d", "user": "u", "expect_privileges": {"READ": ["t"]}}
    )
    assert rc == 1
    assert "unknown privilege READ" in out["msg"]


def test_http_readiness_body_naming_wrong_db_password():
    # what the result service's /readyz answers (JSON, so the quotes are escaped)
    body = (
        b'{"reason":"postgres: FATAL:  password authentication failed for user \\"votingapp_result\\"\\n",'
        b'"status":"unavailable"}'
    )

    class DbDown(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DbDown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out = run(type="http", hop="result ready", url=f"http://127.0.0.1:{server.server_address[1]}/readyz")
    finally:
        server.shutdown()
        server.server_close()
    assert out["status"] == "http_error"
    assert "wrong database credentials for votingapp_result" in out["message"]


def test_messages_name_the_service_of_the_hop():
    out = run(type="tcp", hop="worker (w1) -> postgres", host="127.0.0.1", port=free_port())
    assert "so postgres is not running" in out["message"]
