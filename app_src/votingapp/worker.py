"""worker: Redis stream consumer group -> PostgreSQL, at-least-once delivery made exactly-once in
effect by idempotent, version-ordered upserts.

Per batch: read up to WORKER_BATCH_SIZE entries, validate them (invalid ones are dead-lettered
with the reason), keep the newest entry per voter, and apply them in ONE statement inside ONE
transaction that upserts `votes` (only where the stored version is older) and adjusts
`vote_counts` by the rows that really changed. Only after COMMIT are the entries XACKed, in one
pipelined round trip that also trims what every group has acknowledged. Replaying a committed
batch (crash between COMMIT and XACK, or a reclaim) changes nothing, because every entry's
version is then not newer than the stored one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import signal
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import psycopg2
import psycopg2.errors
import redis
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, make_wsgi_app

from . import schema
from .ids import VOTER_ID_BYTES_RE, VOTER_ID_RULE
from .redis_client import make_client

log = logging.getLogger("votingapp.worker")


PROCESSED = Counter("votingapp_worker_entries_total", "Stream entries handled", ["outcome"])
BATCH_SIZE = Histogram(
    "votingapp_worker_batch_size", "Entries per batch", buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
)
BATCH_SECONDS = Histogram(
    "votingapp_worker_batch_seconds",
    "Time from read to acknowledged, per batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DEAD_LETTERS = Counter("votingapp_worker_dead_letters_total", "Entries moved to the dead-letter stream", ["reason"])
RECLAIMED = Counter("votingapp_worker_reclaimed_total", "Entries reclaimed from idle consumers")
ERRORS = Counter("votingapp_worker_errors_total", "Connection or database errors", ["dependency"])
LAG = Gauge("votingapp_worker_stream_lag", "Entries in the stream not yet delivered to the group")
PENDING = Gauge("votingapp_worker_pending_entries", "Entries delivered but not yet acknowledged (whole group)")

_UPSERT = """
WITH incoming (voter_id, vote, version_ms, version_seq) AS (
    SELECT voter_id, vote, split_part(id, '-', 1)::numeric, split_part(id, '-', 2)::numeric
    FROM unnest({0}::text[], {1}::text[], {2}::text[]) AS t (voter_id, vote, id)
),
up AS (
    INSERT INTO votes AS v (voter_id, vote, version_ms, version_seq, prev_vote)
    SELECT voter_id, vote, version_ms, version_seq, NULL FROM incoming ORDER BY voter_id COLLATE "C"
    ON CONFLICT (voter_id) DO UPDATE
        SET prev_vote = v.vote, vote = EXCLUDED.vote,
            version_ms = EXCLUDED.version_ms, version_seq = EXCLUDED.version_seq, updated_at = now()
        WHERE (v.version_ms, v.version_seq) < (EXCLUDED.version_ms, EXCLUDED.version_seq)
    RETURNING v.vote, v.prev_vote
),
delta AS (
    SELECT vote, 1 AS d FROM up WHERE prev_vote IS DISTINCT FROM vote
    UNION ALL
    SELECT prev_vote, -1 FROM up WHERE prev_vote IS NOT NULL AND prev_vote <> vote
)
INSERT INTO vote_counts AS c (vote, count)
SELECT vote, sum(d)::bigint FROM delta GROUP BY vote ORDER BY vote
ON CONFLICT (vote) DO UPDATE SET count = c.count + EXCLUDED.count
"""
# The statement with its three array literals inline (the one-by-one retry and the bench probe).
UPSERT_SQL = _UPSERT.format("%s::text", "%s::text", "%s::text")
# The batch path: prepared once per connection, so a batch is not parsed, analysed and planned
# again (backend 8.5 against 9.3 us a vote at batches of 1,000: medians of 6 rounds alternated on
# a loaded machine, so roughly 8%).
# PostgreSQL re-plans it by itself when a migration changes the tables.
UPSERT_STATEMENT = "votingapp_upsert"
PREPARE_UPSERT = f"PREPARE {UPSERT_STATEMENT} (text, text, text) AS " + _UPSERT.format("$1", "$2", "$3")
EXECUTE_UPSERT = f"EXECUTE {UPSERT_STATEMENT} (%s, %s, %s)"

# SQLSTATE classes that are about the values of the entry itself: 22 data exception (a value out
# of range, bad text), 23 integrity constraint violation. Only these dead-letter an entry. Every
# other database error (08 connection, 25 read-only transaction after a failover, 40
# serialization/deadlock, 53 insufficient resources, 57 operator intervention, 42 missing table
# or privilege, no SQLSTATE at all) says "this database cannot take votes right now": the batch
# stays pending and is retried with backoff, nothing is dead-lettered.
ENTRY_SQLSTATE_CLASSES = frozenset({"22", "23"})


def is_entry_error(exc: BaseException) -> bool:
    """A database error caused by the entry's values (dead-letter it), not by the database."""
    code = getattr(exc, "pgcode", None)
    return isinstance(exc, psycopg2.Error) and bool(code) and code[:2] in ENTRY_SQLSTATE_CLASSES


def is_retryable(exc: BaseException) -> bool:
    """Redis or database trouble: back off and read the same entries again."""
    if isinstance(exc, redis.RedisError):
        return True
    return isinstance(exc, psycopg2.Error) and not is_entry_error(exc)


class Vote:
    """A valid vote. Its version is the stream entry id `<ms>-<seq>`, parsed only when two votes
    of one voter are compared: int() of both parts cost more than the rest of the validation."""

    __slots__ = ("_version", "entry_id", "vote", "voter_id")

    def __init__(self, entry_id: str, voter_id: str, vote: str, ms: int | None = None, seq: int | None = None):
        self.entry_id, self.voter_id, self.vote = entry_id, voter_id, vote
        self._version = None if ms is None else (int(ms), int(seq or 0))

    @property
    def version(self) -> tuple[int, int]:
        if self._version is None:
            self._version = _id_key(self.entry_id)
        return self._version

    @property
    def ms(self) -> int:
        return self.version[0]

    @property
    def seq(self) -> int:
        return self.version[1]

    def version_text(self) -> str:
        return self.entry_id if self._version is None else f"{self._version[0]}-{self._version[1]}"

    def __eq__(self, other):
        if not isinstance(other, Vote):
            return NotImplemented
        return (self.entry_id, self.voter_id, self.vote, self.version) == (
            other.entry_id, other.voter_id, other.vote, other.version,
        )  # fmt: skip

    def __repr__(self):
        return f"Vote({self.entry_id!r}, {self.voter_id!r}, {self.vote!r})"


_voter_id_ok = VOTER_ID_BYTES_RE.fullmatch
_option_maps: dict[tuple, dict[bytes, str]] = {}


def _options_by_bytes(options) -> dict[bytes, str]:
    """The configured options keyed by their UTF-8 bytes: one dict lookup validates and decodes."""
    try:
        return _option_maps[options]
    except KeyError:
        mapping = _option_maps[options] = {o.encode(): o for o in options}
        return mapping
    except TypeError:  # an unhashable sequence of options
        return {o.encode(): o for o in options}


def field_dict(fields) -> dict:
    """An entry's fields as a dict, from the flat [field, value, ...] list of a raw reply or a dict.

    A field named twice keeps its last value, as redis-py's own replies do."""
    if type(fields) is list:
        return dict(zip(fields[::2], fields[1::2], strict=False))
    return fields or {}


def stream_entries(response, **_options) -> list:
    """XREADGROUP's reply as one list of [id, [field, value, ...] or None]: no dict per entry.

    redis-py's own callback builds a dict of every entry's fields in Python; the worker's read
    then cost more CPU than validating the votes (docs/performance.md). Both reply shapes:
    RESP3 {stream: entries}, RESP2 [[stream, entries]]."""
    if not response:
        return []
    if isinstance(response, dict):
        return [entry for entries in response.values() for entry in entries]
    return [entry for _, entries in response for entry in entries]


def classify(entry_id: str, fields, options) -> Vote | str:
    """A Vote, or the reason the entry cannot be one (the hot path: no decoding of other fields).

    fields: a dict, or the flat list of a raw reply (stream_entries)."""
    if not fields:
        return "entry has no fields"
    if type(fields) is list:
        if len(fields) == 4 and fields[0] == b"voter_id" and fields[2] == b"vote":
            return _vote_of(entry_id, fields[1], fields[3], options)  # the vote service's layout
        fields = field_dict(fields)
    raw_voter = fields.get(b"voter_id")
    if raw_voter is None:
        return "missing field voter_id"
    return _vote_of(entry_id, raw_voter, fields.get(b"vote"), options)


def _vote_of(entry_id: str, raw_voter: bytes, raw_choice: bytes | None, options) -> Vote | str:
    if _voter_id_ok(raw_voter) is None:
        return f"invalid voter_id (expected {VOTER_ID_RULE})"
    if raw_choice is None:
        return "missing field vote"
    choice = _options_by_bytes(options).get(raw_choice)
    if choice is None:
        try:
            text = raw_choice.decode("utf-8")
        except UnicodeDecodeError:
            return "entry is not valid UTF-8"
        return f"unknown option {text[:40]!r} (configured: {','.join(options)})"
    return Vote(entry_id, raw_voter.decode("ascii"), choice)


def newest_per_voter(votes: list[Vote]) -> list[Vote]:
    """ON CONFLICT may touch a row once per statement: keep each voter's newest entry.

    Sorted by voter id, so concurrent workers lock rows in the same order."""
    best: dict[str, Vote] = {}
    for v in votes:
        current = best.get(v.voter_id)
        if current is None or v.version > current.version:
            best[v.voter_id] = v
    return [best[k] for k in sorted(best)]


def _text_array(values: list[str]) -> str:
    """A PostgreSQL array literal with every element quoted (so `NULL` stays a string)."""
    if not values:
        return "{}"
    body = '","'.join(values)
    # Voter ids and options never hold a quote or a backslash: escape only when one does.
    if "\\" in body or body.count('"') != 2 * (len(values) - 1):
        body = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + body + '"}'


def upsert_params(votes: list[Vote]) -> tuple[str, str, str] | None:
    """The upsert's parameters for a batch (None: nothing to write)."""
    rows = newest_per_voter(votes)
    if not rows:
        return None
    # Three array literals, one string each: psycopg2 would send a Python list as ARRAY[...] with
    # one constant per element for the server to parse and cast, which cost the backend a third
    # more CPU per vote than array_in reading one string (7.7 vs 11-12 us a vote, batches of
    # 1,000, same run). The server splits the entry id into the version's two numbers.
    return (
        _text_array([v.voter_id for v in rows]),
        _text_array([v.vote for v in rows]),
        _text_array([v.version_text() for v in rows]),
    )


def apply_votes(
    conn, votes: list[Vote], params: tuple[str, str, str] | None = None, *, statement: str = UPSERT_SQL
) -> None:
    """One transaction: upsert newer votes, adjust the counts by exactly the changed rows.

    statement: UPSERT_SQL, or EXECUTE_UPSERT on a connection that ran PREPARE_UPSERT."""
    params = params or upsert_params(votes)
    if params is None:
        return
    with conn, conn.cursor() as cur:
        cur.execute(statement, params)


MAX_ID_PART = 2**64 - 1


def _id_after(entry_id: str) -> str | None:
    """The smallest stream id greater than entry_id (None past the largest)."""
    ms, _, seq = entry_id.partition("-")
    ms_n, seq_n = int(ms), int(seq or 0)
    if seq_n < MAX_ID_PART:
        return f"{ms_n}-{seq_n + 1}"
    return f"{ms_n + 1}-0" if ms_n < MAX_ID_PART else None


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def trim_bound(groups, group: str, pending_min: str | None) -> str | None:
    """The lowest id any consumer group may still need: entries below it are acknowledged by all.

    For each group that is its oldest pending entry, or the entry after the last one delivered
    when nothing is pending. Our own group's oldest pending id comes from XPENDING; another group
    with pending entries (not this app's design, but possible) stops trimming altogether, since
    XINFO GROUPS does not say which entries it still holds. None = trim nothing. A consumer that
    died holding entries holds the head of the stream until they are reclaimed: the stream then
    keeps up to WORKER_CLAIM_IDLE_MS of votes (XDEL per batch kept only those entries).
    """
    bounds = []
    for g in groups:
        name, pending = _decode(g.get("name")), g.get("pending") or 0
        if pending:
            if name != group or pending_min is None:
                return None
            bounds.append(_decode(pending_min))
        else:
            after = _id_after(_decode(g.get("last-delivered-id") or "0-0"))
            if after is None:
                return None
            bounds.append(after)
    return min(bounds, key=_id_key) if bounds else None


def _decode(value) -> str:
    """Text of any Redis reply value, whatever its bytes (never raises)."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


class Worker:
    def __init__(self, settings, *, client=None):
        self.s = settings
        self.stream = settings.redis.stream
        # A blocking XREADGROUP waits up to WORKER_BLOCK_MS for an answer: the socket must wait longer,
        # or every idle read would end in a timeout ("redis unavailable", /readyz 503).
        self.redis = client or make_client(
            settings.redis,
            client_name=f"votingapp-worker-{settings.consumer}",
            socket_timeout=2.0 + settings.block_ms / 1000,
        )
        # The same pool, with XREADGROUP's replies left as flat lists (stream_entries).
        self.reader = redis.Redis(connection_pool=self.redis.connection_pool)
        self.reader.set_response_callback("XREADGROUP", stream_entries)
        self.conn = None
        self.prepared_on = None
        self.stop = threading.Event()
        self.read_own_pending = True
        self.last_read_partial = False
        self.delete_acked = True
        # "xtrim": acknowledged entries are cut from the stream's head by XTRIM MINID (Redis
        # drops whole nodes); "xdel": the user may not XTRIM, each batch is deleted by id;
        # decided by a no-op XTRIM when the group is set up.
        self.trim_mode = None
        self.trim_below = None
        self.untrimmed = 0
        self.group_ready = False
        self.schema_ready = False
        self.next_claim = 0.0
        self.claim_cursor = "0-0"
        self.next_stats = 0.0
        self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
        self._prefetch = None
        self.redis_ok = False
        self.pg_ok = False

    # -- connections -------------------------------------------------------------------------
    def _pg(self):
        if self.conn is None or self.conn.closed:
            self.conn = psycopg2.connect(**self.s.postgres.connect_kwargs(f"votingapp-worker-{self.s.consumer}"))
            self.schema_ready = False
        if not self.schema_ready:
            if self.s.migrate:
                schema.migrate(self.conn)
            with self.conn, self.conn.cursor() as cur:
                cur.execute("SELECT to_regclass('votes') IS NOT NULL AND to_regclass('vote_counts') IS NOT NULL")
                if not cur.fetchone()[0]:
                    raise psycopg2.OperationalError("schema not migrated yet: run `migrate` (or WORKER_MIGRATE=true)")
            self.schema_ready = True
            log.info("postgres ready")
        self.pg_ok = True
        return self.conn

    def _upsert_statement(self, conn) -> str:
        """EXECUTE of the upsert, prepared on this connection at its first batch (a failure here is
        the batch's: it stays pending and is retried on a new connection)."""
        if self.prepared_on is not conn:
            with conn, conn.cursor() as cur:
                cur.execute(PREPARE_UPSERT)
            self.prepared_on = conn
        return EXECUTE_UPSERT

    def _drop_pg(self):
        self.pg_ok = False
        if self.conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self.conn.close()
        self.conn = None

    def _ensure_group(self):
        if self.group_ready:
            return
        try:
            # "$" would skip entries written before the first worker ever ran; "0" keeps them.
            self.redis.xgroup_create(self.stream, self.s.group, id="0", mkstream=True)
            log.info("created consumer group %s on %s", self.s.group, self.stream)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        if self.trim_mode is None:
            try:
                self.redis.xtrim(self.stream, minid="0-0", approximate=False)  # removes nothing
                self.trim_mode = "xtrim"
            except redis.exceptions.NoPermissionError:
                # The message names the ACL error: say what it means instead.
                log.info("this Redis user may not XTRIM: acknowledged entries are deleted by id (XDEL)")
                self.trim_mode = "xdel"
        self.group_ready = True
        self.redis_ok = True

    # -- reading ------------------------------------------------------------------------------
    def _read(self) -> list[tuple[str, dict]]:
        if self.read_own_pending:
            # After a restart: our own unacknowledged entries come first, in order.
            entries = self.reader.xreadgroup(self.s.group, self.s.consumer, {self.stream: "0"}, count=self.s.batch_size)
            if entries:
                return [(_decode(i), f) for i, f in entries]
            self.read_own_pending = False
        if self.last_read_partial and self.s.linger_ms:
            # Votes are flowing but there is no backlog: wait a moment so the next batch carries
            # more of them. At 1,000 votes/s this turns hundreds of tiny transactions per second
            # into a few dozen (a third of the worker's and PostgreSQL's CPU) for at most
            # WORKER_LINGER_MS more latency. Never after an idle read (the first vote is not
            # delayed) nor after a full batch (a backlog drains at full speed).
            self.stop.wait(self.s.linger_ms / 1000)
        entries = self.reader.xreadgroup(
            self.s.group, self.s.consumer, {self.stream: ">"}, count=self.s.batch_size, block=self.s.block_ms
        )
        self.last_read_partial = 0 < len(entries) < self.s.batch_size
        return [(_decode(i), f) for i, f in entries]

    def _claim(self) -> list[tuple[str, dict]]:
        """Entries a dead or stuck consumer has held longer than WORKER_CLAIM_IDLE_MS."""
        now = time.monotonic()
        if now < self.next_claim:
            return []
        reply = self.redis.xautoclaim(
            self.stream,
            self.s.group,
            self.s.consumer,
            min_idle_time=self.s.claim_idle_ms,
            start_id=self.claim_cursor,
            count=self.s.batch_size,
        )
        cursor, entries = _decode(reply[0]), reply[1]
        self.claim_cursor = cursor
        if cursor == "0-0":
            # Scanned the whole pending list: rest until idle entries can exist again.
            self.next_claim = now + min(self.s.claim_idle_ms / 1000 / 2, 5.0)
        claimed = [(_decode(i), f) for i, f in entries if f is not None]
        deleted = [_decode(i) for i, f in entries if f is None]
        if deleted:
            self.redis.xack(self.stream, self.s.group, *deleted)
        if claimed:
            RECLAIMED.inc(len(claimed))
            log.info("reclaimed %d idle entries", len(claimed))
        return claimed

    # -- processing ---------------------------------------------------------------------------
    def process(self, entries: list[tuple[str, dict]], prepared=None) -> None:
        """Apply a batch; an unexpected error is isolated to the entry that causes it.

        Redis and database trouble propagates (the batch stays pending and is retried). Anything
        else (a bug, bytes nobody expected) must not stop the flow: the batch is retried entry by
        entry, and an entry that still fails alone is dead-lettered with the error as reason.
        """
        try:
            self._process(entries, prepared)
        except Exception as exc:
            if is_retryable(exc):
                raise
            ERRORS.labels("unexpected").inc()
            if len(entries) == 1:
                log.error("entry %s cannot be processed: %s", entries[0][0], _describe(exc), exc_info=exc)
                self._quarantine(entries[0], exc)
                return
            log.error("unexpected %s in a batch of %d entries: isolating it", _describe(exc), len(entries))
            for entry in entries:
                self.process([entry])

    def prepare(self, entries: list[tuple[str, dict]]):
        """(votes, dead letters, upsert parameters) of a batch: all the Python work before the SQL."""
        good: list[Vote] = []
        dead: list[tuple[str, dict, str]] = []
        options = self.s.options
        for entry_id, fields in entries:
            item = classify(entry_id, fields, options)
            if isinstance(item, Vote):
                good.append(item)
            else:
                dead.append((entry_id, field_dict(fields), item))
        return good, dead, upsert_params(good) if good else None

    def _read_prepared(self):
        """The prefetch: read the next batch and prepare it while PostgreSQL runs this one.

        psycopg2 releases the interpreter lock while it waits for the server, so validation
        and the array literals of batch k+1 cost no time on the path of batch k. Anything
        unexpected while preparing leaves the batch unprepared: process() then meets it
        where it can isolate the entry.
        """
        entries = self._read()
        try:
            return entries, self.prepare(entries) if entries else None
        except Exception:
            return entries, None

    def _process(self, entries: list[tuple[str, dict]], prepared=None) -> None:
        started = time.perf_counter()
        good, dead, params = prepared or self.prepare(entries)
        dead = list(dead)
        if good:
            conn = self._pg()
            try:
                apply_votes(conn, good, params, statement=self._upsert_statement(conn))
            except psycopg2.Error as exc:
                if not is_entry_error(exc):
                    raise
                # A value the database refuses: find the culprits one by one, keep the rest.
                log.warning("batch refused (%s %s), retrying entry by entry", exc.pgcode, exc.__class__.__name__)
                good, refused = self._apply_one_by_one(conn, good)
                dead.extend(refused)
        self._acknowledge([e for e, _ in entries], dead)
        PROCESSED.labels("applied").inc(len(good))
        BATCH_SIZE.observe(len(entries))
        BATCH_SECONDS.observe(time.perf_counter() - started)

    def _quarantine(self, entry: tuple[str, dict], exc: Exception) -> None:
        """Dead-letter one entry with the smallest payload that cannot fail to encode."""
        entry_id, fields = entry
        try:
            shown = repr(field_dict(fields))[:2000]
        except Exception:  # a repr that fails is still no reason to stop
            shown = "<unprintable>"
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(
            self.s.dead_letter_stream,
            {
                "source_id": entry_id,
                "reason": f"unexpected error: {_describe(exc)}"[:300],
                "fields": shown,
                "consumer": self.s.consumer,
            },
        )
        pipe.xack(self.stream, self.s.group, entry_id)
        if self.delete_acked and self.trim_mode != "xtrim":
            pipe.xdel(self.stream, entry_id)
        pipe.execute()
        self.untrimmed += 1
        DEAD_LETTERS.labels("unexpected").inc()
        PROCESSED.labels("dead_letter").inc()

    def _apply_one_by_one(self, conn, votes: list[Vote]):
        kept, refused = [], []
        for v in votes:
            try:
                apply_votes(conn, [v])
                kept.append(v)
            except psycopg2.Error as exc:
                if not is_entry_error(exc):
                    raise
                reason = f"database refused the vote: {exc.__class__.__name__}: {str(exc).strip()[:200]}"
                refused.append((v.entry_id, {b"voter_id": v.voter_id.encode(), b"vote": v.vote.encode()}, reason))
        return kept, refused

    def _acknowledge(self, ids: list[str], dead: list[tuple[str, dict, str]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for entry_id, fields, reason in dead:
            # Any bytes, any field name: the dead-letter copy is readable text (\\xNN escapes).
            raw = {_decode(k): _decode(v) for k, v in fields.items()}
            pipe.xadd(
                self.s.dead_letter_stream,
                {
                    "source_id": entry_id,
                    "reason": reason,
                    "fields": json.dumps(raw, sort_keys=True),
                    "consumer": self.s.consumer,
                },
            )
        pipe.xack(self.stream, self.s.group, *ids)
        trimming = self.delete_acked and self.trim_mode == "xtrim"
        if trimming:
            # Keeps the stream from growing forever, in the same round trip: cut below the bound
            # seen after the previous batch (a bound only ever moves forward, so an old one is
            # safe), and read the bound for the next batch. Against XDEL of each id this halved
            # redis-server's CPU per entry (3.3-4.7 vs 6.7-7.0 us, same run).
            if self.trim_below:
                pipe.xtrim(self.stream, minid=self.trim_below, approximate=False)
            pipe.xinfo_groups(self.stream)
            pipe.xpending(self.stream, self.s.group)
        elif self.delete_acked:
            pipe.xdel(self.stream, *ids)
        results = pipe.execute(raise_on_error=False)
        for value in [*results[: len(dead)], results[len(dead)]]:
            if isinstance(value, Exception):
                raise value
        if trimming:
            self._trimmed(results[-2:], trimmed=bool(self.trim_below), acked=len(ids))
        elif self.delete_acked and isinstance(results[-1], Exception):
            log.warning("XDEL refused (%s): acknowledged entries stay in the stream", results[-1])
            self.delete_acked = False
        for _, _, reason in dead:
            DEAD_LETTERS.labels(reason.split(" ")[0]).inc()
            log.warning("dead-lettered an entry: %s", reason)
        PROCESSED.labels("dead_letter").inc(len(dead))

    def _trimmed(self, replies, *, trimmed: bool, acked: int) -> None:
        """Take the next trim bound from XINFO GROUPS + XPENDING replies."""
        groups, pending = replies
        if isinstance(groups, Exception) or isinstance(pending, Exception):
            self.trim_below = None
            return
        # What the last XTRIM cut had been acknowledged before this batch: only this batch waits.
        self.untrimmed = acked if trimmed else self.untrimmed + acked
        self.trim_below = trim_bound(groups, self.s.group, pending.get("min") if pending.get("pending") else None)

    def trim_idle(self) -> None:
        """No new entries: cut what the last batches acknowledged (the stream ends up empty)."""
        if not (self.untrimmed and self.delete_acked and self.trim_mode == "xtrim"):
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.xinfo_groups(self.stream)
        pipe.xpending(self.stream, self.s.group)
        groups, pending = pipe.execute()
        bound = trim_bound(groups, self.s.group, pending.get("min") if pending.get("pending") else None)
        if bound:
            self.redis.xtrim(self.stream, minid=bound, approximate=False)
        self.untrimmed = 0
        self.trim_below = None

    def _stats(self) -> None:
        now = time.monotonic()
        if now < self.next_stats:
            return
        self.next_stats = now + 2.0
        for group in self.redis.xinfo_groups(self.stream):
            if _decode(group.get("name")) == self.s.group:
                PENDING.set(group.get("pending") or 0)
                lag = group.get("lag")
                if lag is not None:
                    LAG.set(lag)

    # -- main loop ----------------------------------------------------------------------------
    def run_once(self) -> int:
        """One iteration; returns the number of entries handled (tests drive this directly)."""
        self._ensure_group()
        if not self.pg_ok:
            # Readiness must not wait for the first vote: connect (and check the schema) up front.
            self._pg()
        entries = self._claim()
        prepared = None
        if not entries:
            if self._prefetch is not None:
                future, self._prefetch = self._prefetch, None
                entries, prepared = future.result()
            else:
                entries = self._read()
        self.redis_ok = True
        if entries:
            if self._prefetch is None and not self.read_own_pending and not self.stop.is_set():
                # While PostgreSQL commits this batch, Redis already delivers the next one.
                self._prefetch = self._prefetcher.submit(self._read_prepared)
            self.process(entries, prepared)
        else:
            self.trim_idle()
        self._stats()
        return len(entries)

    def _discard_prefetch(self) -> None:
        """After an error: prefetched entries stay pending under our name and are read again."""
        if self._prefetch is not None:
            with contextlib.suppress(Exception):
                self._prefetch.result(timeout=30)
            self._prefetch = None

    def _finish_prefetch(self) -> None:
        """On stop: commit what was already read, or leave it pending for the next start."""
        if self._prefetch is None:
            return
        try:
            entries, prepared = self._prefetch.result(timeout=30)
            self._prefetch = None
            if entries:
                self.process(entries, prepared)
        except Exception as exc:  # the entries stay pending: re-read at restart or reclaimed
            log.warning("stopping with a batch left pending (%s)", exc.__class__.__name__)

    def run(self) -> int:
        delay = 0.1
        log.info(
            "worker %s: group %s on %s, batch %d, block %d ms, linger %d ms",
            self.s.consumer,
            self.s.group,
            self.stream,
            self.s.batch_size,
            self.s.block_ms,
            self.s.linger_ms,
        )
        while not self.stop.is_set():
            try:
                self.run_once()
                delay = 0.1
                continue
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                ERRORS.labels("redis").inc()
                self.redis_ok = False
                self.group_ready = False
                log.warning("redis unavailable (%s); retrying in %.1fs", exc.__class__.__name__, delay)
            except redis.ResponseError as exc:
                ERRORS.labels("redis").inc()
                self.group_ready = False
                log.warning("redis refused a command (%s); retrying in %.1fs", exc, delay)
            except psycopg2.Error as exc:
                ERRORS.labels("postgres").inc()
                log.warning(
                    "postgres unavailable (%s %s: %s); retrying in %.1fs",
                    exc.pgcode or "-",
                    exc.__class__.__name__,
                    _first_line(exc),
                    delay,
                )
                self._drop_pg()
            except Exception as exc:
                # Never a crash loop: a restarted worker would read the same entries first.
                ERRORS.labels("unexpected").inc()
                log.exception("unexpected %s; retrying in %.1fs", _describe(exc), delay)
                self._drop_pg()
            # Entries of the failed batch stay pending under our name and are read again first.
            self._discard_prefetch()
            self.read_own_pending = True
            self.stop.wait(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, 5.0)
        self._finish_prefetch()
        self._prefetcher.shutdown(wait=False)
        log.info("worker %s stopped", self.s.consumer)
        self._drop_pg()
        return 0


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _describe(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {_first_line(exc)[:200]}"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve_metrics(worker: Worker, port: int):
    metrics_app = make_wsgi_app(REGISTRY)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ok = worker.redis_ok and worker.pg_ok
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [
                f"redis={'ok' if worker.redis_ok else 'down'} postgres={'ok' if worker.pg_ok else 'down'}\n".encode()
            ]
        return metrics_app(environ, start_response)

    server = make_server("0.0.0.0", port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)  # noqa: S104
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def main() -> int:
    from .config import load_or_exit, worker_settings

    settings = load_or_exit(worker_settings, "worker")
    worker = Worker(settings)

    def on_signal(signum, _frame):
        log.info("signal %s: finishing the current batch, then stopping", signum)
        worker.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if settings.metrics_port:
        serve_metrics(worker, settings.metrics_port)
    return worker.run()
