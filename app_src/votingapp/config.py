"""Settings from environment variables, validated once at start.

Every problem is reported with the variable's name and what a valid value looks like, and the
process stops before it serves anything (a half-configured service is worse than none).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

OPTION_RE = re.compile(r"^[\w][\w .+-]{0,39}$")
PREFIX_RE = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")
# A path on the same site (the bastion or ALB: /result/) or an http(s) URL (compose: another port);
# nothing a browser would run (javascript:) and no characters that need quoting in an href.
RESULT_URL_RE = re.compile(r"^(/|https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/|$))[A-Za-z0-9._~/%?=&+-]*$")
MAX_OPTIONS = 12
WORKER_CLASSES = ("gevent", "gthread")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """Raised with one message per bad variable."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class _Reader:
    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.raw(name)
        if value is None:
            if required:
                self.problems.append(f"{name} is required and not set")
                return ""
            return default or ""
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.problems.append(f"{name}={value!r} is not an integer (expected {low}..{high})")
            return default
        if not low <= number <= high:
            self.problems.append(f"{name}={number} is out of range (expected {low}..{high})")
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name}={value!r} is not a boolean (use true or false)")
        return default

    def secret(self, name: str) -> str:
        """NAME, or the content of the file NAME_FILE names (the official postgres/redis images'
        convention): deployments pass only the path, so the value stays out of `docker inspect`
        and /proc/<pid>/environ. The value never appears in a message, only the variable."""
        path = self.raw(f"{name}_FILE")
        value = self.env.get(name)
        if path is None:
            return value if value else ""
        if value:
            self.problems.append(f"{name} and {name}_FILE are both set: use one of them")
            return ""
        try:
            with open(path, encoding="utf-8") as handle:
                # `echo secret > file` leaves a newline; like the official images, it is not part of it.
                content = handle.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            self.problems.append(f"{name}_FILE={path!r} cannot be read: {reason}")
            return ""
        if not content:
            self.problems.append(f"{name}_FILE={path!r} is empty")
        return content


def parse_options(reader: _Reader) -> tuple[str, ...]:
    raw = reader.raw("VOTE_OPTIONS") or "Cats,Dogs"
    options = tuple(part.strip() for part in raw.split(","))
    if len(options) < 2 or len(options) > MAX_OPTIONS:
        reader.problems.append(f"VOTE_OPTIONS needs 2..{MAX_OPTIONS} comma-separated options, got {len(options)}")
    bad = [o for o in options if not OPTION_RE.match(o)]
    if bad:
        reader.problems.append(
            f"VOTE_OPTIONS has invalid option(s) {bad!r}: use 1-40 letters, digits, space, '.', '+', '-' or '_'"
        )
    if len(set(options)) != len(options):
        reader.problems.append("VOTE_OPTIONS has duplicate options")
    return options


def parse_bind(reader: _Reader) -> str:
    """An IP address, or a host name that resolves now (gunicorn would otherwise respawn forever)."""
    bind = reader.text("BIND_ADDRESS", "0.0.0.0")  # noqa: S104 - a container listens on all its interfaces
    try:
        ipaddress.ip_address(bind.strip("[]"))
        return bind
    except ValueError:
        pass
    try:
        socket.getaddrinfo(bind, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        reader.problems.append(f"BIND_ADDRESS={bind!r} is neither an IP address nor a host name that resolves")
    return bind


def log_level(env: Mapping[str, str] | None = None) -> str:
    """LOG_LEVEL, checked (raises ConfigError naming it)."""
    value = ((os.environ if env is None else env).get("LOG_LEVEL") or "INFO").strip().upper()
    if value == "WARN":
        value = "WARNING"
    if value not in LOG_LEVELS:
        raise ConfigError([f"LOG_LEVEL={value.lower()!r} must be one of {', '.join(LOG_LEVELS)}"])
    return value


def parse_prefix(reader: _Reader) -> str:
    prefix = (reader.raw("URL_PREFIX") or "").rstrip("/")
    if not PREFIX_RE.match(prefix):
        reader.problems.append(f"URL_PREFIX={prefix!r} must be empty or a path like /vote (no trailing slash needed)")
        return ""
    return prefix


def parse_result_url(reader: _Reader) -> str:
    url = reader.raw("RESULT_URL") or ""
    if url and not RESULT_URL_RE.match(url):
        reader.problems.append(
            f"RESULT_URL={url!r} must be empty, a path like /result/ or a URL like http://host:5001/"
        )
        return ""
    return url


@dataclass(frozen=True)
class RedisSettings:
    host: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    stream: str

    @classmethod
    def read(cls, r: _Reader) -> RedisSettings:
        host = r.text("REDIS_HOST", required=True)
        port = r.integer("REDIS_PORT", 6379, 1, 65535)
        user = r.raw("REDIS_USER")
        password = r.secret("REDIS_PASSWORD") or None
        if user and not password:
            r.problems.append("REDIS_PASSWORD is required when REDIS_USER is set")
        stream = r.text("VOTE_STREAM", "votes")
        return cls(host=host, port=port, user=user, password=password, stream=stream)


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)

    @classmethod
    def read(cls, r: _Reader) -> PostgresSettings:
        host = r.text("PG_HOST", required=True)
        port = r.integer("PG_PORT", 5432, 1, 65535)
        database = r.text("PG_DATABASE", required=True)
        user = r.text("PG_USER", required=True)
        password = r.secret("PG_PASSWORD")
        if not password:
            r.problems.append("PG_PASSWORD is required and not set")
        return cls(host=host, port=port, database=database, user=user, password=password)

    def connect_kwargs(self, application_name: str) -> dict:
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "user": self.user,
            "password": self.password,
            "application_name": application_name,
            "connect_timeout": 3,
            # Dead peers (a host that vanished) are noticed in seconds instead of the kernel's hours.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }


@dataclass(frozen=True)
class WebSettings:
    prefix: str
    port: int
    bind: str
    workers: int
    threads: int
    worker_class: str = "gevent"
    worker_connections: int = 10000
    client_timeout: float = 10.0

    @classmethod
    def read(cls, r: _Reader, default_threads: int) -> WebSettings:
        worker_class = (r.raw("GUNICORN_WORKER_CLASS") or "gevent").lower()
        if worker_class not in WORKER_CLASSES:
            r.problems.append(f"GUNICORN_WORKER_CLASS={worker_class!r} must be one of {', '.join(WORKER_CLASSES)}")
            worker_class = "gevent"
        return cls(
            prefix=parse_prefix(r),
            port=r.integer("PORT", 8080, 1, 65535),
            bind=parse_bind(r),
            workers=r.integer("GUNICORN_WORKERS", 2, 1, 64),
            threads=r.integer("GUNICORN_THREADS", default_threads, 1, 256),
            worker_class=worker_class,
            worker_connections=r.integer("GUNICORN_WORKER_CONNECTIONS", 10000, 10, 100000),
            client_timeout=float(r.integer("HTTP_CLIENT_TIMEOUT", 10, 1, 300)),
        )


@dataclass(frozen=True)
class VoteSettings:
    redis: RedisSettings
    web: WebSettings
    options: tuple[str, ...]
    cookie_secure: bool
    voter_id_secret: str = field(default="", repr=False)
    rate_limit_per_minute: int = 0
    forwarded_hops: int = 0
    result_url: str = ""


@dataclass(frozen=True)
class ResultSettings:
    postgres: PostgresSettings
    web: WebSettings
    options: tuple[str, ...]
    poll_ms: int


@dataclass(frozen=True)
class WorkerSettings:
    redis: RedisSettings
    postgres: PostgresSettings
    options: tuple[str, ...]
    dead_letter_stream: str
    batch_size: int
    block_ms: int
    linger_ms: int
    group: str
    consumer: str
    claim_idle_ms: int
    migrate: bool
    metrics_port: int


def _finish(r: _Reader, value):
    if r.problems:
        raise ConfigError(r.problems)
    return value


def vote_settings(env: Mapping[str, str] | None = None) -> VoteSettings:
    r = _Reader(os.environ if env is None else env)
    value = VoteSettings(
        redis=RedisSettings.read(r),
        web=WebSettings.read(r, default_threads=8),
        options=parse_options(r),
        cookie_secure=r.boolean("COOKIE_SECURE", False),
        voter_id_secret=r.secret("VOTER_ID_SECRET"),
        rate_limit_per_minute=r.integer("VOTE_RATE_LIMIT_PER_MINUTE", 0, 0, 100000),
        forwarded_hops=r.integer("FORWARDED_HOPS", 0, 0, 5),
        result_url=parse_result_url(r),
    )
    if value.voter_id_secret and len(value.voter_id_secret) < 16:
        r.problems.append("VOTER_ID_SECRET must be at least 16 characters (or unset: voter ids are then unsigned)")
    return _finish(r, value)


def result_settings(env: Mapping[str, str] | None = None) -> ResultSettings:
    r = _Reader(os.environ if env is None else env)
    value = ResultSettings(
        postgres=PostgresSettings.read(r),
        # Each open live page holds one thread for its event stream.
        web=WebSettings.read(r, default_threads=32),
        options=parse_options(r),
        poll_ms=r.integer("RESULT_POLL_MS", 250, 50, 10000),
    )
    return _finish(r, value)


def worker_settings(env: Mapping[str, str] | None = None) -> WorkerSettings:
    r = _Reader(os.environ if env is None else env)
    value = _worker_settings(r)
    if value.dead_letter_stream == value.redis.stream:
        # a poison entry would be appended to the stream it came from, and read again, for ever
        r.problems.append(
            f"DEAD_LETTER_STREAM={value.dead_letter_stream!r} must differ from VOTE_STREAM "
            "(dead letters would be read again as votes)"
        )
    return _finish(r, value)


def _worker_settings(r: _Reader) -> WorkerSettings:
    return WorkerSettings(
        redis=RedisSettings.read(r),
        postgres=PostgresSettings.read(r),
        options=parse_options(r),
        dead_letter_stream=r.text("DEAD_LETTER_STREAM", "votes:dead-letter"),
        batch_size=r.integer("WORKER_BATCH_SIZE", 500, 1, 10000),
        block_ms=r.integer("WORKER_BLOCK_MS", 100, 1, 60000),
        linger_ms=r.integer("WORKER_LINGER_MS", 20, 0, 1000),
        group=r.text("WORKER_GROUP", "workers"),
        consumer=r.text("WORKER_CONSUMER", socket.gethostname()),
        claim_idle_ms=r.integer("WORKER_CLAIM_IDLE_MS", 30000, 100, 3600000),
        migrate=r.boolean("WORKER_MIGRATE", False),
        metrics_port=r.integer("METRICS_PORT", 9100, 0, 65535),
    )


def migrate_settings(env: Mapping[str, str] | None = None) -> PostgresSettings:
    r = _Reader(os.environ if env is None else env)
    return _finish(r, PostgresSettings.read(r))


def load_or_exit(loader, component: str):
    """Return the settings or stop the process with exit code 2 and one line per problem."""
    try:
        return loader()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{component}: configuration error: {problem}", file=sys.stderr)
        sys.exit(2)
