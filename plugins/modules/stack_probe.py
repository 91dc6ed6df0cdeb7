#!/usr/bin/python
# Copyright: (c) 2026, votingapp.stack contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_probe
short_description: Probe one hop of the voting app's data path and explain what is wrong in plain words
version_added: "0.1.0"
description:
  - Runs one read-only probe from the host it executes on (run it on the host that owns the flow,
    the vote host for vote -> Redis, the worker host for worker -> Postgres, and so on).
  - C(tcp) connects to a port and tells a refused connection (nothing listens) from a timeout
    (packets dropped by a firewall, security group or network policy) and from a name that does not resolve.
  - C(http) sends a GET and checks the status code.
  - C(postgres) logs in with the given credentials and checks table privileges. It speaks the
    PostgreSQL wire protocol itself (SCRAM-SHA-256, MD5 or password authentication, no TLS), so the
    probing host needs no database driver.
  - C(redis_stream) reads a stream and its consumer group twice, O(sample_interval) seconds apart, and
    decides whether the consumers are C(draining), C(stalled) or C(idle). It speaks RESP itself, so the
    probing host needs no Redis client library.
  - Every result carries O(hop), a RV(status) word and a RV(message) in plain words with the likely fix.
    A broken hop is a result, not a task failure, unless O(fail_on_error=true).
author:
  - votingapp.stack maintainers (@votingapp)
options:
  type:
    description: Which probe to run.
    type: str
    required: true
    choices: [tcp, http, postgres, redis_stream]
  hop:
    description:
      - Name of the hop in messages, for example C(worker -> postgres).
      - Defaults to a description of the probe target.
    type: str
  host:
    description: Host name or address to probe. Required for O(type=tcp), O(type=postgres) and O(type=redis_stream).
    type: str
  port:
    description:
      - TCP port. Required for O(type=tcp).
      - Defaults to C(5432) for O(type=postgres) and C(6379) for O(type=redis_stream).
    type: int
  timeout:
    description: Seconds to wait for a connection and for each answer.
    type: float
    default: 5
  url:
    description: URL to GET. Required for O(type=http).
    type: str
  expect_status:
    description: Status codes that count as healthy for O(type=http).
    type: list
    elements: int
    default: [200]
  validate_certs:
    description: Verify the TLS certificate of an C(https) O(url).
    type: bool
    default: true
  db:
    description: Database name for O(type=postgres).
    type: str
  user:
    description:
      - Login user for O(type=postgres) (required) and the ACL user for O(type=redis_stream).
      - Without a user, the Redis probe authenticates with the password only (the C(default) user).
    type: str
  password:
    description: Password for O(user).
    type: str
  query:
    description:
      - A read-only SQL statement to run after login for O(type=postgres). Its rows come back in RV(rows).
      - A permission error is reported as RV(status=no_grant).
    type: str
  expect_privileges:
    description:
      - Table privileges O(user) must hold, for O(type=postgres), as a mapping of privilege to a list of tables,
        for example C(SELECT) to C([vote_counts]) and C(INSERT) to C([votes]).
      - A missing privilege gives RV(status=no_grant) and names the privilege and table.
    type: dict
    default: {}
  stream:
    description: Stream key for O(type=redis_stream).
    type: str
    default: votes
  group:
    description: Consumer group for O(type=redis_stream).
    type: str
    default: workers
  sample_interval:
    description: Seconds between the two samples of O(type=redis_stream).
    type: float
    default: 2
  fail_on_error:
    description: Fail the task when the hop is broken (any RV(status) but C(ok)) instead of only reporting it.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Every probe is read-only and also runs in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
    description: Never changes anything; C(changed) is always false.
notes:
  - Run the probe on the host that owns the flow (for example with C(delegate_to)) so that firewalls
    and security groups are tested on the real path.
  - The Postgres probe does not negotiate TLS; a server that only accepts C(hostssl) reports RV(status=rejected).
seealso:
  - name: Operations guide
    description: What each verify message means and how to fix it (docs/operations.md in the collection).
    link: https://github.com/votingapp/votingapp.stack/blob/main/docs/operations.md
"""

EXAMPLES = r"""
- name: Worker reaches Redis
  votingapp.stack.stack_probe:
    type: tcp
    hop: worker -> redis
    host: redis.internal
    port: 6379
  register: probe

- name: Vote answers its readiness check from the bastion
  votingapp.stack.stack_probe:
    type: http
    hop: bastion -> vote
    url: http://10.0.1.10/readyz
  delegate_to: bastion

- name: Result may read the tally
  votingapp.stack.stack_probe:
    type: postgres
    hop: result -> postgres
    host: db.internal
    db: votingapp
    user: votingapp_result
    password: "{{ postgres_result_password }}"
    expect_privileges:
      SELECT: [vote_counts]
  no_log: true

- name: Worker drains the stream
  votingapp.stack.stack_probe:
    type: redis_stream
    host: 127.0.0.1
    user: admin
    password: "{{ redis_admin_password }}"
    stream: votes
    group: workers
    sample_interval: 3
    fail_on_error: true
"""

RETURN = r"""
hop:
  description: The hop this result is about.
  returned: always
  type: str
  sample: worker -> postgres
status:
  description:
    - C(ok) when the hop works. Otherwise one word for what is wrong
      C(refused) (nothing listens), C(timeout) (no answer, dropped by a firewall, security group or network policy,
      or a hung service), C(unreachable) (no route), C(dns_error), C(http_error) (unexpected status code),
      C(tls_error), C(auth_failed) (wrong password), C(rejected) (server refuses this client, for example pg_hba),
      C(no_database), C(no_table), C(no_grant), C(query_error), C(no_group), C(no_stream), C(stalled), C(error).
  returned: always
  type: str
  sample: refused
ok:
  description: Whether RV(status) is C(ok).
  returned: always
  type: bool
message:
  description: What happened, what it means and the likely fix, in plain words.
  returned: always
  type: str
  sample: "worker -> postgres: db.internal:5432 refused the connection: nothing listens on that port. Start postgres."
elapsed:
  description: Seconds the probe took.
  returned: always
  type: float
phase:
  description: Where a timeout happened, C(connect) or C(response).
  returned: when status is timeout
  type: str
status_code:
  description: HTTP status code of the answer.
  returned: when type is http and the server answered
  type: int
  sample: 503
body:
  description: First 300 characters of the HTTP answer body.
  returned: when type is http and the server answered
  type: str
privileges:
  description: For each expected privilege, the tables and whether the user holds it.
  returned: when type is postgres and the login worked
  type: dict
  sample: {"SELECT": {"vote_counts": true}}
missing_privileges:
  description: Expected privileges the user lacks, as C(PRIVILEGE on table).
  returned: when type is postgres and the login worked
  type: list
  elements: str
rows:
  description: Rows of O(query), each a list of text values (NULL as null).
  returned: when type is postgres and query is set and it succeeded
  type: list
  elements: list
sqlstate:
  description: SQLSTATE of the server's error.
  returned: when type is postgres and the server answered with an error
  type: str
  sample: 28P01
length:
  description: Entries in the stream (second sample).
  returned: when type is redis_stream and the group exists
  type: int
lag:
  description: Entries not yet delivered to the group (second sample); null when Redis cannot tell.
  returned: when type is redis_stream and the group exists
  type: int
pending:
  description: Entries delivered to a consumer but not yet acknowledged (second sample).
  returned: when type is redis_stream and the group exists
  type: int
consumers:
  description: Consumers of the group with their pending count and milliseconds since they last read (second sample).
  returned: when type is redis_stream and the group exists
  type: list
  elements: dict
  sample: [{"name": "worker-1", "pending": 0, "idle_ms": 120}]
verdict:
  description:
    - C(draining) the backlog shrinks or the group read new entries between the samples,
      C(idle) nothing to do, C(stalled) a backlog that does not shrink.
  returned: when type is redis_stream and the group exists
  type: str
  sample: draining
samples:
  description: Both raw samples (length, lag, pending, entries_read, consumers).
  returned: when type is redis_stream and the group exists
  type: list
  elements: dict
"""

import base64
import contextlib
import errno
import functools
import hashlib
import hmac
import http.client
import os
import re
import socket
import ssl
import struct
import time
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule

BODY_SNIPPET = 300
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


class ProbeError(Exception):
    """A classified failure: status word plus plain-words message."""

    def __init__(self, status, message, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def result(hop, status, message, **extra):
    out = {"hop": hop, "status": status, "ok": status == "ok", "message": "%s: %s" % (hop, message)}
    out.update(extra)
    return out


def connect(host, port, timeout, service):
    """Open a TCP connection or raise ProbeError naming refused / timeout / dns_error / unreachable."""
    target = "%s:%s" % (host, port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProbeError(
            "dns_error",
            "the name %s does not resolve from this host (%s). Check the host name in the inventory; "
            "in the lab, this host is probably not on a network that reaches %s." % (host, exc.strerror, service),
        ) from exc
    last = None
    for family, socktype, proto, _name, addr in infos:
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(addr)
            return sock
        except ConnectionRefusedError as exc:
            sock.close()
            last = ProbeError(
                "refused",
                "%s refused the connection: nothing listens on that port, so %s is not running or listens "
                "elsewhere. Start %s (systemctl/docker ps and its logs on that host) and check its port."
                % (target, service, service),
            )
            last.__cause__ = exc
        except (TimeoutError, socket.timeout) as exc:
            sock.close()
            last = ProbeError(
                "timeout",
                "no answer from %s within %gs: the flow is blocked by a firewall, security group or network policy "
                "(packets are dropped, not refused), or the host is down. Allow this host to reach %s on port %s."
                % (target, timeout, service, port),
                phase="connect",
            )
            last.__cause__ = exc
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                last = ProbeError(
                    "unreachable",
                    "no route from this host to %s (%s): the networks are not connected or a firewall rejects "
                    "the flow. Allow this host to reach %s on port %s." % (target, exc.strerror, service, port),
                )
            else:
                last = ProbeError("error", "cannot connect to %s: %s." % (target, exc))
            last.__cause__ = exc
    raise last


def service_of(hop, fallback):
    """The service a hop leads to, for messages: "worker (w1) -> postgres" -> "postgres"."""
    return hop.rsplit("->", 1)[1].strip() if "->" in hop else fallback


def probe_tcp(hop, host, port, timeout):
    sock = connect(host, port, timeout, service_of(hop, "the service"))
    sock.close()
    return result(hop, "ok", "%s:%s accepts connections." % (host, port))


# ---------------------------------------------------------------------------------------------- http


def probe_http(hop, url, expect_status, timeout, validate_certs=True):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError("error", "%r is not an http:// or https:// URL." % url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    sock = connect(parts.hostname, port, timeout, service_of(hop, "the web service"))
    if parts.scheme == "https":
        ctx = ssl.create_default_context()
        if not validate_certs:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            sock = ctx.wrap_socket(sock, server_hostname=parts.hostname)
        except ssl.SSLError as exc:
            sock.close()
            raise ProbeError(
                "tls_error",
                "TLS with %s:%s failed (%s): fix the certificate, or set validate_certs=false for a self-signed one."
                % (parts.hostname, port, exc.reason or exc),
            ) from exc
        except (TimeoutError, socket.timeout) as exc:
            sock.close()
            raise ProbeError(
                "timeout",
                "TLS handshake with %s:%s got no answer within %gs." % (parts.hostname, port, timeout),
                phase="response",
            ) from exc
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, port, timeout=timeout)
    conn.sock = sock
    try:
        conn.request("GET", path, headers={"User-Agent": "votingapp.stack.stack_probe", "Accept": "*/*"})
        resp = conn.getresponse()
        body = resp.read(64 * 1024).decode("utf-8", "replace")
        code = resp.status
    except (TimeoutError, socket.timeout) as exc:
        raise ProbeError(
            "timeout",
            "%s accepted the connection but sent no answer within %gs: the service hangs or is overloaded. "
            "Check its logs and load." % (url, timeout),
            phase="response",
        ) from exc
    except (http.client.HTTPException, ConnectionError) as exc:
        raise ProbeError(
            "http_error",
            "%s closed the connection without a valid HTTP answer (%s): is this port an HTTP service?" % (url, exc),
        ) from exc
    finally:
        conn.close()
    snippet = " ".join(body.split())[:BODY_SNIPPET]
    extra = {"status_code": code, "body": snippet, "url": url}
    if code in expect_status:
        return result(hop, "ok", "GET %s answered %d." % (url, code), **extra)
    auth = re.search(r'password authentication failed for user \\?"([^"\\]+)', body)
    if auth:
        why = (
            "wrong database credentials for %s: the service cannot log in to postgres with the password it is "
            "configured with. Set the same password on the service and in postgres (rerun the postgres and "
            "service roles)." % auth.group(1)
        )
    elif code in (502, 503, 504) and "nginx" in body.lower():
        why = (
            "the proxy has no healthy upstream behind this path: check the next hops "
            "(the service behind it is down or unreachable)."
        )
    elif code == 503:
        why = (
            "the service runs but is not ready: a dependency it needs fails "
            "(see the body for the reason, and the next hops)."
        )
    elif code == 404:
        why = "the path does not exist there: check the URL prefix (URL_PREFIX) and the proxy routing."
    elif code >= 500:
        why = "the service fails: read its logs."
    else:
        why = "unexpected answer: check the URL and the service configuration."
    return result(
        hop,
        "http_error",
        "GET %s answered %d, expected %s: %s Body: %s"
        % (url, code, " or ".join(str(c) for c in expect_status), why, snippet or "(empty)"),
        **extra,
    )


# ------------------------------------------------------------------------------------------ postgres


class PgError(Exception):
    def __init__(self, fields):
        self.fields = fields
        self.sqlstate = fields.get("C", "")
        super().__init__(fields.get("M", "unknown error"))


class PgClient:
    """Just enough of the PostgreSQL v3 protocol for a login and simple read-only queries."""

    def __init__(self, sock, timeout):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""

    def _recv(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_message(self):
        kind, length = struct.unpack("!cI", self._recv(5))
        return kind, self._recv(length - 4)

    def send(self, kind, payload):
        self.sock.sendall(kind + struct.pack("!I", len(payload) + 4) + payload)

    @staticmethod
    def _fields(payload):
        out = {}
        for part in payload.split(b"\0"):
            if part:
                out[part[:1].decode()] = part[1:].decode("utf-8", "replace")
        return out

    def login(self, user, password, database):
        params = b"user\0" + user.encode() + b"\0database\0" + database.encode() + b"\0"
        params += b"application_name\0stack_probe\0\0"
        body = struct.pack("!I", 196608) + params
        self.sock.sendall(struct.pack("!I", len(body) + 4) + body)
        scram = None
        while True:
            kind, payload = self.read_message()
            if kind == b"E":
                raise PgError(self._fields(payload))
            if kind == b"Z":
                return
            if kind != b"R":
                continue
            code = struct.unpack("!I", payload[:4])[0]
            if code == 0:
                continue
            if password is None:
                raise PgError({"C": "28P01", "M": "the server asks for a password and none was given"})
            if code == 3:
                self.send(b"p", password.encode() + b"\0")
            elif code == 5:
                inner = hashlib.md5(password.encode() + user.encode()).hexdigest()  # noqa: S324 - protocol-defined
                outer = hashlib.md5(inner.encode() + payload[4:8]).hexdigest()  # noqa: S324
                self.send(b"p", b"md5" + outer.encode() + b"\0")
            elif code == 10:
                mechanisms = payload[4:].split(b"\0")
                if b"SCRAM-SHA-256" not in mechanisms:
                    raise PgError({"C": "28000", "M": "no supported SASL mechanism offered: %r" % mechanisms})
                nonce = base64.b64encode(os.urandom(18)).decode()
                first_bare = "n=,r=" + nonce
                first = ("n,," + first_bare).encode()
                self.send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)
                scram = {"bare": first_bare, "nonce": nonce}
            elif code == 11:
                server_first = payload[4:].decode()
                attrs = dict(item.split("=", 1) for item in server_first.split(","))
                if not attrs["r"].startswith(scram["nonce"]):
                    raise PgError({"C": "28000", "M": "SCRAM nonce mismatch"})
                salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
                client_key = hmac.new(salted, b"Client Key", "sha256").digest()
                stored_key = hashlib.sha256(client_key).digest()
                without_proof = "c=biws,r=" + attrs["r"]
                auth_message = ",".join((scram["bare"], server_first, without_proof)).encode()
                signature = hmac.new(stored_key, auth_message, "sha256").digest()
                proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
                self.send(b"p", (without_proof + ",p=" + base64.b64encode(proof).decode()).encode())
            elif code == 12:
                continue
            else:
                raise PgError({"C": "28000", "M": "unsupported authentication method %d" % code})

    def query(self, sql):
        self.send(b"Q", sql.encode() + b"\0")
        rows, errors = [], []
        while True:
            kind, payload = self.read_message()
            if kind == b"D":
                count = struct.unpack("!H", payload[:2])[0]
                pos, row = 2, []
                for _column in range(count):
                    size = struct.unpack("!i", payload[pos : pos + 4])[0]
                    pos += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(payload[pos : pos + size].decode("utf-8", "replace"))
                        pos += size
                rows.append(row)
            elif kind == b"E":
                errors.append(PgError(self._fields(payload)))
            elif kind == b"Z":
                if errors:
                    raise errors[0]
                return rows

    def close(self):
        with contextlib.suppress(OSError):
            self.send(b"X", b"")
        self.sock.close()


def quote_literal(value):
    return "'" + value.replace("'", "''") + "'"


def classify_pg_error(exc, user, db, host):
    code = exc.sqlstate
    if code == "28P01":
        return ProbeError(
            "auth_failed",
            "wrong database credentials for %s (%s). The password this service is configured with does not match "
            "the one in postgres: set the same %s password on both sides (rerun the postgres and service roles)."
            % (user, exc, user),
            sqlstate=code,
        )
    if code == "28000":
        return ProbeError(
            "rejected",
            "postgres on %s rejects %s from this host (%s): allow this client network in pg_hba.conf "
            "(the postgres role's allowed networks) or create the role." % (host, user, exc),
            sqlstate=code,
        )
    if code == "3D000":
        return ProbeError(
            "no_database",
            "database %s does not exist on %s: run the postgres role (%s)." % (db, host, exc),
            sqlstate=code,
        )
    if code == "42P01":
        return ProbeError(
            "no_table",
            "a table is missing (%s): the schema migration has not run; start the worker or run migrate." % exc,
            sqlstate=code,
        )
    if code == "42501":
        return ProbeError(
            "no_grant",
            "%s lacks a privilege (%s): rerun the postgres role, which grants it." % (user, exc),
            sqlstate=code,
        )
    if code in ("53300", "57P03"):
        return ProbeError(
            "rejected", "postgres on %s does not accept connections now (%s)." % (host, exc), sqlstate=code
        )
    return ProbeError("query_error", "postgres answered an error: %s (SQLSTATE %s)." % (exc, code), sqlstate=code)


def probe_postgres(hop, host, port, db, user, password, timeout, expect_privileges=None, query=None):
    sock = connect(host, port, timeout, "postgres")
    client = PgClient(sock, timeout)
    try:
        try:
            client.login(user, password, db)
            granted, missing = {}, []
            for privilege, tables in sorted((expect_privileges or {}).items()):
                granted[privilege] = {}
                for table in tables:
                    rows = client.query(
                        "SELECT has_table_privilege(current_user, %s, %s)"
                        % (quote_literal(table), quote_literal(privilege))
                    )
                    has = rows[0][0] == "t"
                    granted[privilege][table] = has
                    if not has:
                        missing.append("%s on %s" % (privilege, table))
            rows = client.query(query) if query else None
        except PgError as exc:
            raise classify_pg_error(exc, user, db, host) from exc
        except (TimeoutError, socket.timeout) as exc:
            raise ProbeError(
                "timeout",
                "%s:%s accepted the connection but postgres sent no answer within %gs: it hangs or is overloaded."
                % (host, port, timeout),
                phase="response",
            ) from exc
        except (ConnectionError, struct.error) as exc:
            raise ProbeError(
                "error",
                "%s:%s did not speak the PostgreSQL protocol (%s): is this the postgres port?" % (host, port, exc),
            ) from exc
    finally:
        client.close()
    extra = {"privileges": granted, "missing_privileges": missing}
    if rows is not None:
        extra["rows"] = rows[:100]
    if missing:
        fixes = "; ".join("GRANT %s ON %s TO %s" % (m.split(" on ")[0], m.split(" on ")[1], user) for m in missing)
        return result(
            hop,
            "no_grant",
            "%s logs in to %s but lacks %s. Fix: rerun the postgres role, which grants it (by hand: %s)."
            % (user, db, ", ".join(missing), fixes),
            **extra,
        )
    return result(
        hop, "ok", "%s logs in to %s on %s:%s and holds the expected privileges." % (user, db, host, port), **extra
    )


# ------------------------------------------------------------------------------------- redis stream


class RedisError(Exception):
    pass


class RespClient:
    """Minimal RESP2 client: a handful of read-only commands do not justify a dependency on every host."""

    def __init__(self, sock, timeout):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.file = sock.makefile("rb")

    def command(self, *args):
        out = b"*%d\r\n" % len(args)
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out += b"$%d\r\n%s\r\n" % (len(data), data)
        self.sock.sendall(out)
        return self._read()

    def _read(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.file.read(size + 2)[:-2]
            return data.decode("utf-8", "replace")
        if kind == b"*":
            size = int(rest)
            if size < 0:
                return None
            return [self._read() for _item in range(size)]
        raise ConnectionError("unexpected reply %r: is this the redis port?" % line[:40])

    def close(self):
        self.file.close()
        self.sock.close()


def pairs(reply):
    return dict(zip(reply[0::2], reply[1::2], strict=False))


def redis_sample(client, stream, group):
    try:
        groups = [pairs(g) for g in client.command("XINFO", "GROUPS", stream)]
    except RedisError as exc:
        if "no such key" in str(exc).lower():
            raise ProbeError(
                "no_stream",
                "stream %s does not exist: no vote was ever queued and no worker created its group. Start the worker."
                % stream,
            ) from exc
        raise
    info = next((g for g in groups if g.get("name") == group), None)
    if info is None:
        raise ProbeError(
            "no_group",
            "stream %s has no consumer group %s (groups: %s): the worker never started or uses another group name "
            "(WORKER_GROUP). Start the worker."
            % (stream, group, ", ".join(g.get("name", "?") for g in groups) or "none"),
        )
    consumers = [pairs(c) for c in client.command("XINFO", "CONSUMERS", stream, group)]
    return {
        "length": client.command("XLEN", stream),
        "lag": info.get("lag"),
        "pending": info.get("pending", 0),
        "entries_read": info.get("entries-read"),
        "last_delivered_id": info.get("last-delivered-id"),
        "consumers": [
            {"name": c.get("name"), "pending": c.get("pending", 0), "idle_ms": c.get("idle", 0)} for c in consumers
        ],
    }


def backlog(sample):
    return (sample["lag"] or 0) + sample["pending"]


def stream_verdict(first, second, interval):
    """Return (verdict, explanation) from two samples taken `interval` seconds apart."""
    before, after = backlog(first), backlog(second)
    progressed = second["last_delivered_id"] != first["last_delivered_id"] or after < before
    consumers = second["consumers"]
    idle_limit = interval * 1000
    active = [c for c in consumers if c["idle_ms"] < idle_limit]
    if after == 0:
        if before > 0:
            return "draining", "the backlog went from %d to 0." % before
        return "idle", "nothing is waiting (lag 0, pending 0)."
    if progressed:
        return "draining", "the consumers took new entries or acknowledged some (backlog %d -> %d)." % (before, after)
    if not consumers:
        why = "no consumer is attached to the group: the worker is not running. Start the worker and check its logs."
    elif not active:
        why = (
            "every consumer is idle (shortest idle %d ms): the worker is stopped or stuck. "
            "Restart it and check its logs." % min(c["idle_ms"] for c in consumers)
        )
    else:
        why = (
            "consumers are alive (%s) but acknowledge nothing: they most likely fail to write to Postgres. "
            "Check the worker -> postgres hop and the worker logs." % ", ".join(c["name"] for c in active)
        )
    grow = "growing" if after > before else "not shrinking"
    return "stalled", "the backlog is %s (%d -> %d entries waiting: lag %s, pending %d); %s" % (
        grow,
        before,
        after,
        second["lag"],
        second["pending"],
        why,
    )


def probe_redis_stream(hop, host, port, user, password, stream, group, interval, timeout, sleep=time.sleep):
    sock = connect(host, port, timeout, "redis")
    client = RespClient(sock, timeout)
    try:
        try:
            if password is not None:
                client.command(*(("AUTH", user, password) if user else ("AUTH", password)))
            first = redis_sample(client, stream, group)
            sleep(interval)
            second = redis_sample(client, stream, group)
        except RedisError as exc:
            text = str(exc)
            if text.startswith(("WRONGPASS", "NOAUTH")) or "invalid password" in text:
                raise ProbeError(
                    "auth_failed",
                    "redis refused the credentials of %s (%s): use the password the redis role set for this ACL user."
                    % (user or "default", text),
                ) from exc
            if text.startswith("NOPERM"):
                raise ProbeError(
                    "no_grant",
                    "redis user %s may not run the probe's commands (%s): probe with the admin user."
                    % (user or "default", text),
                ) from exc
            raise ProbeError("error", "redis answered an error: %s" % text) from exc
        except (TimeoutError, socket.timeout) as exc:
            raise ProbeError(
                "timeout",
                "%s:%s accepted the connection but redis sent no answer within %gs." % (host, port, timeout),
                phase="response",
            ) from exc
        except (ConnectionError, ValueError) as exc:
            raise ProbeError(
                "error", "%s:%s did not speak RESP (%s): is this the redis port?" % (host, port, exc)
            ) from exc
    finally:
        client.close()
    verdict, why = stream_verdict(first, second, interval)
    extra = {
        "length": second["length"],
        "lag": second["lag"],
        "pending": second["pending"],
        "consumers": second["consumers"],
        "verdict": verdict,
        "samples": [first, second],
    }
    status = "stalled" if verdict == "stalled" else "ok"
    return result(hop, status, "group %s on stream %s is %s: %s" % (group, stream, verdict, why), **extra)


# ---------------------------------------------------------------------------------------------- main

REQUIRED = {
    "tcp": ("host", "port"),
    "http": ("url",),
    "postgres": ("host", "db", "user"),
    "redis_stream": ("host",),
}


def run_probe(params):
    kind = params["type"]
    missing = [name for name in REQUIRED[kind] if params.get(name) in (None, "")]
    if missing:
        raise ValueError("type=%s needs %s" % (kind, ", ".join(missing)))
    bad = [p for p in params.get("expect_privileges") or {} if p.upper() not in PRIVILEGES]
    if bad:
        raise ValueError(
            "expect_privileges: unknown privilege %s (use one of %s)" % (", ".join(bad), ", ".join(PRIVILEGES))
        )
    timeout = params["timeout"]
    port = params.get("port")
    if kind == "tcp":
        hop = params.get("hop") or "tcp %s:%s" % (params["host"], port)
        runner = functools.partial(probe_tcp, hop, params["host"], port, timeout)
    elif kind == "http":
        hop = params.get("hop") or "GET %s" % params["url"]
        runner = functools.partial(
            probe_http, hop, params["url"], params["expect_status"], timeout, params["validate_certs"]
        )
    elif kind == "postgres":
        port = port or 5432
        hop = params.get("hop") or "postgres %s@%s:%s/%s" % (params["user"], params["host"], port, params["db"])
        privileges = {k.upper(): list(v or []) for k, v in (params.get("expect_privileges") or {}).items()}
        runner = functools.partial(
            probe_postgres,
            hop,
            params["host"],
            port,
            params["db"],
            params["user"],
            params.get("password"),
            timeout,
            privileges,
            params.get("query"),
        )
    else:
        port = port or 6379
        hop = params.get("hop") or "redis stream %s group %s on %s:%s" % (
            params["stream"],
            params["group"],
            params["host"],
            port,
        )
        runner = functools.partial(
            probe_redis_stream,
            hop,
            params["host"],
            port,
            params.get("user"),
            params.get("password"),
            params["stream"],
            params["group"],
            params["sample_interval"],
            timeout,
        )
    started = time.monotonic()
    try:
        out = runner()
    except ProbeError as exc:
        out = result(hop, exc.status, exc.message, **exc.extra)
    out["elapsed"] = round(time.monotonic() - started, 3)
    return out


def main():
    module = AnsibleModule(
        argument_spec={
            "type": {"type": "str", "required": True, "choices": ["tcp", "http", "postgres", "redis_stream"]},
            "hop": {"type": "str"},
            "host": {"type": "str"},
            "port": {"type": "int"},
            "timeout": {"type": "float", "default": 5},
            "url": {"type": "str"},
            "expect_status": {"type": "list", "elements": "int", "default": [200]},
            "validate_certs": {"type": "bool", "default": True},
            "db": {"type": "str"},
            "user": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "query": {"type": "str"},
            "expect_privileges": {"type": "dict", "default": {}},
            "stream": {"type": "str", "default": "votes"},
            "group": {"type": "str", "default": "workers"},
            "sample_interval": {"type": "float", "default": 2},
            "fail_on_error": {"type": "bool", "default": False},
        },
        required_if=[
            ("type", "tcp", ("host", "port")),
            ("type", "http", ("url",)),
            ("type", "postgres", ("host", "db", "user")),
            ("type", "redis_stream", ("host",)),
        ],
        supports_check_mode=True,
    )
    try:
        out = run_probe(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc), changed=False)
    if module.params["fail_on_error"] and not out["ok"]:
        module.fail_json(msg=out["message"], changed=False, **out)
    module.exit_json(changed=False, **out)


if __name__ == "__main__":
    main()
