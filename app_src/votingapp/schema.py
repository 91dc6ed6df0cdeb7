"""Schema migrations, applied under a transaction-scoped advisory lock.

Several workers (or a worker and a `migrate` job) may start at the same instant: the lock makes
them take turns, and each step is recorded in `schema_migrations`, so a step runs once and a
second starter only finds the work done.
"""

from __future__ import annotations

import logging

import psycopg2

log = logging.getLogger("votingapp.migrate")

# Any constant; it names "the votingapp schema" among advisory locks of this database.
ADVISORY_LOCK_KEY = 0x766F7465

# What the result service LISTENs on, and the trigger (and its function) that notifies it.
COUNTS_CHANNEL = "votingapp_counts"
COUNTS_TRIGGER = "votingapp_counts_changed"

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "votes and aggregate counts",
        """
        CREATE TABLE IF NOT EXISTS votes (
            voter_id    text PRIMARY KEY,
            vote        text NOT NULL,
            -- ordering version = the Redis stream entry id <ms>-<seq>; a vote never replaces a newer one
            version_ms  bigint NOT NULL,
            version_seq bigint NOT NULL,
            prev_vote   text,
            updated_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE IF NOT EXISTS vote_counts (
            vote  text PRIMARY KEY,
            count bigint NOT NULL DEFAULT 0
        );
        """,
    ),
    (
        2,
        "entry id parts as numeric(20,0): Redis ids are unsigned 64-bit, bigint is signed",
        # An XADD with an explicit id beyond 2^63-1 (the vote user may) pushes every later id past
        # bigint: without this, every later vote would fail to store.
        """
        ALTER TABLE votes
            ALTER COLUMN version_ms TYPE numeric(20, 0),
            ALTER COLUMN version_seq TYPE numeric(20, 0);
        """,
    ),
    (
        3,
        'voter ids compare byte by byte (COLLATE "C")',
        # Voter ids are ASCII ([A-Za-z0-9_-], ids.py): the database's linguistic collation only
        # made every primary-key comparison of the worker's upsert go through strcoll (about 5% of
        # the backend's CPU a vote with C.UTF-8, more with a language locale). The table is not
        # rewritten; its primary key is rebuilt, with writes to `votes` waiting meanwhile (1.9 s
        # for a million votes here), while votes keep queueing in Redis.
        """
        ALTER TABLE votes ALTER COLUMN voter_id TYPE text COLLATE "C";
        """,
    ),
    (
        4,
        "a notification on COUNTS_CHANNEL with every committed change of vote_counts",
        # The result service LISTENs, so a change reaches the live pages at once instead of at the
        # next poll. Per changed row (a statement that matched none, like the UPDATE before an
        # INSERT of a new option, tells nothing), and PostgreSQL folds the repeats of a transaction
        # into one notification, sent at COMMIT: one a worker batch, none for a rolled-back one.
        f"""
        CREATE OR REPLACE FUNCTION {COUNTS_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{COUNTS_CHANNEL}', '');
            RETURN NULL;
        END
        $$;
        DROP TRIGGER IF EXISTS {COUNTS_TRIGGER} ON vote_counts;
        CREATE TRIGGER {COUNTS_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON vote_counts
            FOR EACH ROW EXECUTE FUNCTION {COUNTS_TRIGGER}();
        DROP TRIGGER IF EXISTS {COUNTS_TRIGGER}_truncate ON vote_counts;
        CREATE TRIGGER {COUNTS_TRIGGER}_truncate AFTER TRUNCATE ON vote_counts
            FOR EACH STATEMENT EXECUTE FUNCTION {COUNTS_TRIGGER}();
        """,
    ),
]

CURRENT_VERSION = MIGRATIONS[-1][0]


def migrate(conn) -> list[int]:
    """Apply missing migrations; return the versions applied by this call."""
    applied: list[int] = []
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, description text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in cur.fetchall()}
        for version, description, sql in MIGRATIONS:
            if version in done:
                continue
            log.info("applying migration %s: %s", version, description)
            cur.execute(sql)
            cur.execute("INSERT INTO schema_migrations (version, description) VALUES (%s, %s)", (version, description))
            applied.append(version)
    return applied


def run(settings) -> int:
    conn = psycopg2.connect(**settings.connect_kwargs("votingapp-migrate"))
    try:
        applied = migrate(conn)
    finally:
        conn.close()
    if applied:
        log.info("schema at version %s (applied %s)", CURRENT_VERSION, applied)
    else:
        log.info("schema already at version %s", CURRENT_VERSION)
    return 0
