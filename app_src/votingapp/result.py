"""result: the live tally, read from the aggregate table the worker keeps (a few rows, whatever
the number of votes), served as a page, a JSON API and a server-sent event stream."""

from __future__ import annotations

import contextlib
import json
import logging
import select
import threading
import time

import psycopg2
from flask import Flask, Response, jsonify, render_template, stream_with_context
from prometheus_client import Counter, Gauge, Histogram

from . import gevent_worker, schema
from .web import PrefixMiddleware, add_operational_routes, no_redirects, on_shutdown

log = logging.getLogger("votingapp.result")

# While the feed listens for changes, it still reads the counts every this many poll intervals:
# a notification is only lost with its connection, and a dead connection is noticed (keepalives).
LISTENING_POLLS = 8
STREAM_MAX_SECONDS = 300  # the browser reconnects by itself; bounded streams rebalance across instances
KEEPALIVE_SECONDS = 15  # below every proxy/ALB idle timeout

QUERY_SECONDS = Histogram(
    "votingapp_result_query_seconds",
    "Time to read the aggregate counts",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
)
DB_ERRORS = Counter("votingapp_result_db_errors_total", "Failed reads of the aggregate counts")
STREAM_CLIENTS = Gauge("votingapp_result_stream_clients", "Open event streams", multiprocess_mode="livesum")


# What a client is told (the host, port and user stay in the log: item 9 of issue #15).
DATABASE_DOWN = "postgres unavailable (the reason is in the service log)"


class DatabaseDown(Exception):
    pass


def share(count: int, total: int) -> int:
    """Whole percent, half up: the same arithmetic as result.js (Math.round(100 * count / total)),
    so a server-rendered page and a live update never disagree. Shares may sum to 99 or 101."""
    return int(100 * count / total + 0.5) if total else 0


def tally_rows(tally: dict) -> list[dict]:
    total = tally["total"]
    return [{"option": o, "count": n, "share": share(n, total)} for o, n in tally["options"].items()]


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


class TallyReader:
    def __init__(self, settings):
        self.settings = settings
        self.options = settings.options
        self._idle: list = []
        self._max_idle = 8
        self._pool_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cached: dict | None = None
        self._cached_at = 0.0

    def _connect(self):
        conn = psycopg2.connect(**self.settings.postgres.connect_kwargs("votingapp-result"))
        conn.set_session(readonly=True, autocommit=True)
        return conn

    def _getconn(self):
        with self._pool_lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _putconn(self, conn, broken: bool) -> None:
        # psycopg2's own pools close every connection above minconn on return, which would make
        # each request pay a new backend and a SCRAM handshake; this one keeps them (LIFO).
        if broken or conn.closed:
            with contextlib.suppress(psycopg2.Error):
                conn.close()
            return
        with self._pool_lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _discard_idle(self) -> None:
        """One dead connection means a restart or failover: the other idle ones died with it."""
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(psycopg2.Error):
                conn.close()

    def read(self) -> dict:
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                # the retry always opens a new connection: another pooled one may be just as stale
                conn = self._getconn() if attempt == 1 else self._connect()
            except psycopg2.Error as exc:
                DB_ERRORS.inc()
                log.warning("postgres unavailable: %s: %s", exc.__class__.__name__, _first_line(exc))
                raise DatabaseDown(DATABASE_DOWN) from exc
            broken = False
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT vote, count FROM vote_counts")
                    rows = cur.fetchall()
                break
            except psycopg2.Error as exc:
                DB_ERRORS.inc()
                broken = isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError) or conn.closed != 0
                if broken:
                    self._discard_idle()
                # an idle connection that died with a database restart: one retry on a fresh one
                if not (broken and attempt == 1):
                    log.warning("reading the counts failed: %s: %s", exc.__class__.__name__, _first_line(exc))
                    raise DatabaseDown(DATABASE_DOWN) from exc
            finally:
                self._putconn(conn, broken)
        QUERY_SECONDS.observe(time.perf_counter() - started)
        counts = dict(rows)
        tally = {option: int(counts.get(option, 0)) for option in self.options}
        return {"options": tally, "total": sum(tally.values())}

    def cached(self, max_age: float) -> dict:
        """One database read per interval per process, however many pages are open."""
        with self._cache_lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached_at >= max_age:
                self._cached = self.read()
                self._cached_at = now
            return self._cached


class ChangeListener:
    """LISTEN for the notification PostgreSQL sends when a change of the counts commits.

    `wait(timeout)` is True as soon as one arrived (or when listening has just (re)started, since
    changes may have been missed meanwhile), False after `timeout`. Without a listening connection
    (the database is down, or its schema predates the trigger: migration 4) `listening` is False and
    `wait` returns at once: the feed then reads every poll interval as it did before. Opening is
    retried at most every RETRY_S.
    """

    RETRY_S = 5.0

    def __init__(self, settings):
        self.settings = settings
        self.conn = None
        self._retry_at = 0.0

    @property
    def listening(self) -> bool:
        return self.conn is not None

    def _open(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        self._retry_at = time.monotonic() + self.RETRY_S
        conn = None
        try:
            conn = psycopg2.connect(**self.settings.postgres.connect_kwargs("votingapp-result-listen"))
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s", (schema.COUNTS_TRIGGER,))
                if cur.fetchone() is None:
                    log.info("schema without %s (not migrated yet): polling only", schema.COUNTS_TRIGGER)
                    conn.close()
                    return False
                cur.execute(f"LISTEN {schema.COUNTS_CHANNEL}")
        except psycopg2.Error as exc:
            log.warning("not listening for changes: %s: %s", exc.__class__.__name__, _first_line(exc))
            if conn is not None:
                with contextlib.suppress(psycopg2.Error):
                    conn.close()
            return False
        self.conn = conn
        return True

    def wait(self, timeout: float) -> bool:
        if self.conn is None:
            return self._open()
        try:
            # a real select in the feed's thread, gevent's cooperative one under the gevent worker
            if not select.select([self.conn], [], [], timeout)[0]:
                return False
            self.conn.poll()
        except (psycopg2.Error, OSError, ValueError) as exc:
            log.warning("stopped listening for changes: %s: %s", exc.__class__.__name__, _first_line(exc))
            self.close()
            return True  # read now: what happened while the connection died is not known
        changed = bool(self.conn.notifies)
        self.conn.notifies.clear()
        return changed

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(psycopg2.Error):
                conn.close()


class TallyFeed:
    """One poller per process for all open event streams.

    While at least one viewer is connected, one thread (a greenlet under gevent) reads the counts
    and, when they changed, publishes the event once. It reads when PostgreSQL notifies a
    committed change (ChangeListener), such reads at least RESULT_POLL_MS apart, and by the clock
    every LISTENING_POLLS intervals: a change after a quiet spell goes out at once, and under a
    steady stream of changes the reads (and the events) stay about one per interval. Without
    notifications it reads every RESULT_POLL_MS. Viewers wait on one
    shared Event that the poller sets and replaces on each change: no lock is taken on the way
    in or out, so waking thousands of viewers is one pass over the waiters. With a Condition
    every woken viewer had to re-acquire its lock in turn (thousands of hand-offs through the
    hub per change).
    """

    def __init__(self, reader: TallyReader, poll_s: float, listener: ChangeListener | None = None):
        self.reader = reader
        self.poll_s = poll_s
        self.listener = listener
        self.lock = threading.Lock()
        # (version, event) in one tuple: a viewer always reads a matching pair.
        self.state = (0, "")
        self.changed = threading.Event()
        self.viewers = 0
        self.polling = False
        self.stopped = False
        self._stopping = threading.Event()

    @property
    def version(self) -> int:
        return self.state[0]

    @property
    def event(self) -> str:
        return self.state[1]

    def join(self) -> None:
        with self.lock:
            self.viewers += 1
            if not self.polling and not self.stopped:
                self.polling = True
                threading.Thread(target=self._poll, name="tally-feed", daemon=True).start()

    def leave(self) -> None:
        with self.lock:
            self.viewers -= 1

    def stop(self) -> None:
        self.stopped = True
        self._stopping.set()
        self._wake()

    def _wake(self) -> None:
        changed, self.changed = self.changed, threading.Event()
        changed.set()

    def publish(self, event: str) -> None:
        # The new state before the new Event: a viewer that already sees the new Event also
        # sees the new state, and one holding the old Event is woken by set().
        self.state = (self.state[0] + 1, event)
        self._wake()

    def wait(self, seen: int, timeout: float) -> tuple[int, str]:
        """The newest (version, event), as soon as it is newer than `seen` or after `timeout`."""
        changed = self.changed
        if self.state[0] == seen and not self.stopped:
            changed.wait(timeout)
        return self.state

    def _poll(self) -> None:
        last = None
        # the last read a notification asked for: those are spaced one interval apart at least
        notified_read = next_read = 0.0
        notified = False
        while True:
            with self.lock:
                if self.viewers <= 0 or self.stopped:
                    if self.listener is not None:
                        self.listener.close()  # nobody watches: no connection held either
                    self.polling = False
                    return
            now = time.monotonic()
            if now >= next_read:
                try:
                    tally = self.reader.cached(0.0)  # fresh, and the pages' cache with it
                except DatabaseDown:
                    tally = None
                if tally is not None and tally != last:
                    last = tally
                    self.publish(f"data: {json.dumps(tally, separators=(',', ':'))}\n\n")
                if notified:
                    notified_read, notified = now, False
                listening = self.listener is not None and self.listener.listening
                next_read = now + self.poll_s * (LISTENING_POLLS if listening else 1)
            # at most one interval at a time: a stop, or the last viewer leaving, is seen as soon
            timeout = min(self.poll_s, max(0.0, next_read - time.monotonic()))
            if self.listener is not None and self.listener.wait(timeout):
                notified = True
                next_read = max(time.monotonic(), notified_read + self.poll_s)
            elif self.listener is None or not self.listener.listening:
                self._stopping.wait(timeout)


def create_app(settings) -> Flask:
    if gevent_worker.active():
        gevent_worker.green_psycopg2(timeout=3.0)
    app = Flask(__name__)
    no_redirects(app)
    app.json.sort_keys = False
    reader = TallyReader(settings)
    poll_s = settings.poll_ms / 1000
    feed = TallyFeed(reader, poll_s, ChangeListener(settings))
    on_shutdown(feed.stop)

    def empty() -> dict:
        return {"options": dict.fromkeys(settings.options, 0), "total": 0}

    @app.get("/")
    def page():
        unavailable = False
        try:
            tally = reader.cached(poll_s)
        except DatabaseDown:
            # still 200: `/result/` is the load balancer's health check, and live updates fill it in
            tally, unavailable = empty(), True
        rows = tally_rows(tally)
        return render_template("result.html", options=settings.options, tally=tally, rows=rows, unavailable=unavailable)

    @app.get("/api/tally")
    def tally_api():
        try:
            tally = reader.read()
        except DatabaseDown as exc:
            return jsonify(error=str(exc)), 503
        response = jsonify(tally)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/api/stream")
    def stream():
        def events():
            STREAM_CLIENTS.inc()
            feed.join()
            try:
                yield "retry: 2000\n\n"
                seen = 0
                deadline = time.monotonic() + STREAM_MAX_SECONDS
                while not feed.stopped:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    version, event = feed.wait(seen, min(KEEPALIVE_SECONDS, left))
                    if version != seen:
                        seen = version
                        yield event
                    elif not feed.stopped and left > KEEPALIVE_SECONDS:
                        yield ": keepalive\n\n"
            finally:
                feed.leave()
                STREAM_CLIENTS.dec()

        return Response(
            stream_with_context(events()),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def database_problem():
        try:
            reader.read()
        except DatabaseDown as exc:
            return str(exc)
        return None

    add_operational_routes(app, database_problem)

    app.wsgi_app = PrefixMiddleware(app.wsgi_app, settings.web.prefix)
    return app
