"""Worker against real Redis and PostgreSQL, driven in-process one iteration at a time."""

from __future__ import annotations

import json
import threading
import time
from contextlib import closing

import psycopg2
import pytest
from conftest import counts, tally_from_votes
from harness import OWNER, RESULT, WORKER
from votingapp import config, schema
from votingapp.worker import Vote, Worker, apply_votes, classify, newest_per_voter, stream_entries, trim_bound


def make_worker(base_env, **extra) -> Worker:
    env = {**base_env, "WORKER_CONSUMER": "t1", "WORKER_BLOCK_MS": "10", **extra}
    return Worker(config.worker_settings(env))


def drain(worker: Worker, rounds: int = 200) -> None:
    idle = 0
    for _ in range(rounds):
        idle = idle + 1 if worker.run_once() == 0 else 0
        if idle >= 2:
            return
    raise AssertionError("worker did not drain")


def vid(n: int) -> str:
    return f"voter-{n:06d}"


def test_classify_reasons():
    opts = ("Cats", "Dogs")
    assert isinstance(classify("5-1", {b"voter_id": b"abcdefgh", b"vote": b"Cats"}, opts), Vote)
    assert classify("5-1", {}, opts) == "entry has no fields"
    assert classify("5-1", {b"vote": b"Cats"}, opts) == "missing field voter_id"
    assert classify("5-1", {b"voter_id": b"abcdefgh"}, opts) == "missing field vote"
    assert classify("5-1", {b"voter_id": b"ab", b"vote": b"Cats"}, opts).startswith("invalid voter_id")
    assert classify("5-1", {b"voter_id": b"abcdefgh", b"vote": b"Fish"}, opts).startswith("unknown option 'Fish'")
    assert classify("5-1", {b"voter_id": b"abcdefgh", b"vote": b"\xff"}, opts) == "entry is not valid UTF-8"
    assert classify("5-1", {b"voter_id": b"abcdefgh\n", b"vote": b"Cats"}, opts).startswith("invalid voter_id")
    assert classify("5-1", {b"voter_id": "é".encode() * 8, b"vote": b"Cats"}, opts).startswith("invalid voter_id")
    v = classify("1700000000000-7", {b"voter_id": b"abcdefgh", b"vote": b"Dogs", b"extra": b"\xff"}, opts)
    assert (v.voter_id, v.vote, v.ms, v.seq) == ("abcdefgh", "Dogs", 1700000000000, 7)


def test_classify_reads_the_flat_fields_of_a_raw_reply_like_a_dict():
    """The worker's reads keep each entry's fields as [field, value, ...] (stream_entries)."""
    opts = ("Cats", "Dogs")
    v = classify("9-2", [b"voter_id", b"abcdefgh", b"vote", b"Cats"], opts)
    assert (v.voter_id, v.vote, v.ms, v.seq) == ("abcdefgh", "Cats", 9, 2)
    reordered = classify("9-3", [b"vote", b"Dogs", b"extra", b"\xff", b"voter_id", b"abcdefgh"], opts)
    assert (reordered.voter_id, reordered.vote) == ("abcdefgh", "Dogs")
    # a field given twice keeps its last value, as redis-py's dict replies do
    assert classify("9-4", [b"voter_id", b"abcdefgh", b"vote", b"Fish", b"vote", b"Dogs"], opts).vote == "Dogs"
    for fields, reason in [
        ([], "entry has no fields"),
        (None, "entry has no fields"),
        ([b"vote", b"Cats"], "missing field voter_id"),
        ([b"voter_id", b"abcdefgh", b"note", b"x"], "missing field vote"),
        ([b"voter_id", b"ab", b"vote", b"Cats"], "invalid voter_id"),
        ([b"voter_id", b"abcdefgh", b"vote", b"Fish"], "unknown option 'Fish'"),
        ([b"voter_id", b"abcdefgh", b"vote", b"\xff"], "entry is not valid UTF-8"),
    ]:
        assert classify("9-5", fields, opts).startswith(reason), fields


def test_stream_entries_flattens_both_reply_protocols(redis_server):
    import redis

    r = redis_server.client()
    first = r.xadd("flat", {"voter_id": "abcdefgh", "vote": "Cats"}).decode()
    r.xadd("flat", {"voter_id": "bcdefghi", "vote": "Dogs"})
    r.xgroup_create("flat", "g", id="0")
    for protocol in (2, 3):
        client = redis.Redis(host="127.0.0.1", port=redis_server.port, protocol=protocol)
        client.set_response_callback("XREADGROUP", stream_entries)
        entries = client.xreadgroup("g", f"c{protocol}", {"flat": "0-0" if protocol == 3 else ">"}, count=10)
        if protocol == 3:  # c3 has nothing pending: read the group's history as c2 holds it
            entries = client.xreadgroup("g", "c2", {"flat": "0-0"}, count=10)
        entry_id, fields = entries[0]
        assert (entry_id.decode(), fields) == (first, [b"voter_id", b"abcdefgh", b"vote", b"Cats"])
        assert len(entries) == 2
        client.close()
    assert stream_entries(None) == [] and stream_entries({}) == []


def test_voter_ids_compare_byte_by_byte(pg):
    """Migration 3: the primary key of `votes` uses the "C" collation (no strcoll per comparison)."""
    with pg.cursor() as cur:
        cur.execute(
            "SELECT collation_name FROM information_schema.columns"
            " WHERE table_name = 'votes' AND column_name = 'voter_id'"
        )
        assert cur.fetchone() == ("C",)


def test_the_prepared_upsert_survives_a_new_connection(redis_server, pg_server, pg, base_env, names):
    """The batch statement is prepared per connection: after PostgreSQL restarts, the worker
    prepares it again on its new connection instead of failing on EXECUTE."""
    r = redis_server.client()
    stream = names["VOTE_STREAM"]
    w = make_worker(base_env)
    r.xadd(stream, {"voter_id": vid(1), "vote": "Cats"})
    drain(w)
    first = w.prepared_on
    assert first is w.conn
    with closing(pg_server.superuser()) as su, su.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'votingapp-worker-%'"
        )
    r.xadd(stream, {"voter_id": vid(2), "vote": "Dogs"})
    for _ in range(50):
        try:
            if w.run_once() == 0 and counts(pg) == {"Cats": 1, "Dogs": 1}:
                break
        except psycopg2.Error:  # what run() does on the error: the batch is read again
            w._drop_pg()
            w._discard_prefetch()
            w.read_own_pending = True
    assert counts(pg) == {"Cats": 1, "Dogs": 1}
    assert w.prepared_on is w.conn and w.conn is not first


def test_newest_per_voter_keeps_highest_version():
    votes = [Vote("2-0", "a" * 8, "Dogs", 2, 0), Vote("1-5", "a" * 8, "Cats", 1, 5), Vote("2-1", "b" * 8, "Cats", 2, 1)]
    kept = newest_per_voter(votes)
    assert [(v.voter_id, v.vote) for v in kept] == [("a" * 8, "Dogs"), ("b" * 8, "Cats")]


def test_batch_is_idempotent_and_older_versions_never_win(pg_server, pg):
    conn = pg_server.connect(WORKER)
    conn.autocommit = False
    batch = [Vote(f"{10 + i}-0", vid(i), "Cats" if i % 3 else "Dogs", 10 + i, 0) for i in range(30)]
    apply_votes(conn, batch)
    apply_votes(conn, batch)  # a replay after a crash between COMMIT and XACK
    assert counts(pg) == {"Cats": 20, "Dogs": 10} == tally_from_votes(pg)
    apply_votes(conn, [Vote("100-0", vid(1), "Dogs", 100, 0)])  # voter 1 changes Cats -> Dogs
    apply_votes(conn, [Vote("50-0", vid(1), "Cats", 50, 0)])  # an older entry arrives late: ignored
    apply_votes(conn, [Vote("100-0", vid(2), "Cats", 100, 0)])  # same choice again: no change
    assert counts(pg) == {"Cats": 19, "Dogs": 11} == tally_from_votes(pg)
    conn.close()


def test_votes_flow_and_stream_is_acknowledged(redis_server, pg, base_env, names):
    r = redis_server.client()
    stream = names["VOTE_STREAM"]
    for i in range(1200):
        r.xadd(stream, {"voter_id": vid(i), "vote": "Cats" if i % 4 else "Dogs"})
    w = make_worker(base_env, WORKER_BATCH_SIZE="250")
    drain(w)
    assert counts(pg) == {"Cats": 900, "Dogs": 300} == tally_from_votes(pg)
    assert r.xpending(stream, "workers")["pending"] == 0
    assert r.xlen(stream) == 0  # acknowledged entries are deleted (single consumer group)


def _read_while_votes_trickle_in(worker: Worker, r, stream: str) -> int:
    """One read that starts right after a partial batch, while 10 votes arrive over 0.3 s."""

    def trickle():
        r.xadd(stream, {"voter_id": vid(900), "vote": "Cats"})
        threading.Event().wait(0.3)
        for i in range(901, 910):
            r.xadd(stream, {"voter_id": vid(i), "vote": "Dogs"})

    adder = threading.Timer(0.05, trickle)
    adder.start()
    try:
        return len(worker._read())
    finally:
        adder.join()


@pytest.mark.parametrize("linger_ms", ["1000", "0"])
def test_linger_batches_a_trickle_but_never_delays_a_backlog(redis_server, pg, base_env, names, linger_ms):
    r = redis_server.client()
    stream = names["VOTE_STREAM"]
    w = make_worker(base_env, WORKER_BATCH_SIZE="100", WORKER_BLOCK_MS="5000", WORKER_LINGER_MS=linger_ms)
    w._ensure_group()
    for i in range(150):
        r.xadd(stream, {"voter_id": vid(i), "vote": "Cats"})
    assert len(w._read()) == 100  # a backlog: full batch, so the next read does not wait
    assert not w.last_read_partial
    assert len(w._read()) == 50  # the rest: votes flow without a backlog
    assert w.last_read_partial
    got = _read_while_votes_trickle_in(w, r, stream)
    if linger_ms == "0":
        assert got < 10  # the read returned with the first vote that arrived
    else:
        assert got == 10  # waited, then took every vote that arrived meanwhile in one batch


def test_poison_entries_go_to_dead_letter_with_reason(redis_server, pg, base_env, names):
    r = redis_server.client()
    stream, dlq = names["VOTE_STREAM"], names["DEAD_LETTER_STREAM"]
    r.xadd(stream, {"voter_id": vid(1), "vote": "Cats"})
    bad_unknown = r.xadd(stream, {"voter_id": vid(2), "vote": "Fish"}).decode()
    bad_missing = r.xadd(stream, {"voter_id": vid(3)}).decode()
    bad_voter = r.xadd(stream, {"voter_id": "x", "vote": "Dogs"}).decode()
    bad_bytes = r.xadd(stream, {"voter_id": vid(4), "vote": b"\xff\xfe"}).decode()
    r.xadd(stream, {"voter_id": vid(5), "vote": "Dogs"})
    w = make_worker(base_env)
    drain(w)
    assert counts(pg) == {"Cats": 1, "Dogs": 1}
    dead = {f[b"source_id"].decode(): f for _, f in r.xrange(dlq)}
    assert set(dead) == {bad_unknown, bad_missing, bad_voter, bad_bytes}
    assert dead[bad_unknown][b"reason"].startswith(b"unknown option 'Fish'")
    assert dead[bad_missing][b"reason"] == b"missing field vote"
    assert dead[bad_voter][b"reason"].startswith(b"invalid voter_id")
    assert json.loads(dead[bad_unknown][b"fields"]) == {"voter_id": vid(2), "vote": "Fish"}
    assert r.xpending(stream, "workers")["pending"] == 0
    # the worker carries on after poison
    r.xadd(stream, {"voter_id": vid(6), "vote": "Dogs"})
    drain(w)
    assert counts(pg) == {"Cats": 1, "Dogs": 2}


def test_pending_entries_of_a_dead_consumer_are_reclaimed(redis_server, pg, base_env, names):
    r = redis_server.client()
    stream = names["VOTE_STREAM"]
    r.xgroup_create(stream, "workers", id="0", mkstream=True)
    for i in range(40):
        r.xadd(stream, {"voter_id": vid(i), "vote": "Cats"})
    # a consumer that read 40 entries and died before acknowledging them
    r.xreadgroup("workers", "dead-one", {stream: ">"}, count=40)
    assert r.xpending(stream, "workers")["pending"] == 40
    w = make_worker(base_env, WORKER_CLAIM_IDLE_MS="100")
    w.next_claim = 0
    import time

    time.sleep(0.15)
    drain(w)
    assert counts(pg) == {"Cats": 40}
    assert r.xpending(stream, "workers")["pending"] == 0


def test_several_workers_out_of_order_last_vote_wins(redis_server, pg_server, pg, base_env, names):
    """Four workers with tiny batches race on the same voters; the newest entry must win."""
    r = redis_server.client()
    stream = names["VOTE_STREAM"]
    voters = [vid(i) for i in range(50)]
    expected = {}
    pipe = r.pipeline(transaction=False)
    for rnd in range(40):
        for n, v in enumerate(voters):
            choice = "Cats" if (rnd * 7 + n) % 3 else "Dogs"
            pipe.xadd(stream, {"voter_id": v, "vote": choice})
            expected[v] = choice
    pipe.execute()
    workers = [make_worker(base_env, WORKER_CONSUMER=f"w{i}", WORKER_BATCH_SIZE=str(3 + i * 5)) for i in range(4)]
    errors = []

    def run(w):
        try:
            drain(w, rounds=5000)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    with pg.cursor() as cur:
        cur.execute("SELECT voter_id, vote FROM votes")
        stored = dict(cur.fetchall())
    assert stored == expected
    want = {c: sum(1 for v in expected.values() if v == c) for c in ("Cats", "Dogs")}
    assert counts(pg) == want == tally_from_votes(pg)


def test_migration_is_idempotent_under_concurrent_starters(pg_server):
    with closing(pg_server.superuser()) as su, su.cursor() as cur:
        cur.execute(f"CREATE DATABASE migrate_race OWNER {OWNER}")
    applied, errors = [], []

    def run():
        try:
            conn = psycopg2.connect(
                host="127.0.0.1",
                port=pg_server.port,
                dbname="migrate_race",
                user=OWNER,
                password=pg_server.env(OWNER)["PG_PASSWORD"],
            )
            applied.append(schema.migrate(conn))
            conn.close()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(applied, key=len) == [[]] * 7 + [[v for v, _, _ in schema.MIGRATIONS]]
    with closing(pg_server.superuser()) as su, su.cursor() as cur:
        cur.execute("DROP DATABASE migrate_race WITH (FORCE)")


def test_result_role_is_read_only(pg_server, pg):
    conn = pg_server.connect(RESULT)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM vote_counts")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("INSERT INTO vote_counts VALUES ('Cats', 1)")
    conn.close()


def test_worker_waits_for_schema_instead_of_crashing(redis_server, pg_server, base_env):
    """`relation "votes" does not exist` must be a retry, not a crash loop."""
    with closing(pg_server.superuser()) as su, su.cursor() as cur:
        cur.execute(f"CREATE DATABASE empty_db OWNER {OWNER}")
    try:
        w = make_worker({**base_env, "PG_DATABASE": "empty_db"})
        with pytest.raises(psycopg2.OperationalError, match="schema not migrated"):
            w._pg()
        w2 = make_worker({**base_env, "PG_DATABASE": "empty_db", **pg_server.env(OWNER), "WORKER_MIGRATE": "true"})
        w2._pg()  # migrates with its own credentials (compose mode)
        w2._drop_pg()
    finally:
        with closing(pg_server.superuser()) as su, su.cursor() as cur:
            cur.execute("DROP DATABASE empty_db WITH (FORCE)")


def test_non_utf8_field_names_and_values_are_dead_lettered_not_a_crash(redis_server, pg, base_env, names):
    """Issue #15 item 1: one entry with a field name that is not UTF-8 stopped the worker for good."""
    r = redis_server.client()
    stream, dlq = names["VOTE_STREAM"], names["DEAD_LETTER_STREAM"]
    r.xadd(stream, {"voter_id": vid(1), "vote": "Cats"})
    only_bad_name = r.xadd(stream, {b"\xff\xfe": b"Cats"}).decode()
    bad_name_and_value = r.xadd(stream, {b"\xc3": b"\xff", "vote": "Dogs"}).decode()
    r.xadd(stream, {"voter_id": vid(2), "vote": "Dogs", b"\xff": b"extra"})  # a vote with a stray field
    w = make_worker(base_env)
    drain(w)
    assert counts(pg) == {"Cats": 1, "Dogs": 1}
    dead = {f[b"source_id"].decode(): f for _, f in r.xrange(dlq)}
    assert set(dead) == {only_bad_name, bad_name_and_value}
    assert json.loads(dead[only_bad_name][b"fields"]) == {"\\xff\\xfe": "Cats"}
    assert r.xpending(stream, "workers")["pending"] == 0


def test_an_unexpected_error_dead_letters_only_its_entry(redis_server, pg, base_env, names, monkeypatch):
    """Whatever breaks on one entry (a bug included), the others are applied and the loop goes on."""
    from votingapp import worker as worker_module

    r = redis_server.client()
    stream, dlq = names["VOTE_STREAM"], names["DEAD_LETTER_STREAM"]
    ids = [r.xadd(stream, {"voter_id": vid(i), "vote": "Cats"}).decode() for i in range(10)]
    real = worker_module.classify

    def flaky(entry_id, fields, options):
        if entry_id == ids[3]:
            raise RuntimeError("a bug that only this entry triggers")
        return real(entry_id, fields, options)

    monkeypatch.setattr(worker_module, "classify", flaky)
    w = make_worker(base_env)
    drain(w)
    assert counts(pg) == {"Cats": 9}
    dead = [f for _, f in r.xrange(dlq)]
    assert [d[b"source_id"].decode() for d in dead] == [ids[3]]
    assert dead[0][b"reason"].startswith(b"unexpected error: RuntimeError")
    assert r.xpending(stream, "workers")["pending"] == 0


def test_worker_process_survives_poison_and_keeps_counting(redis_server, pg, base_env, names, workdir):
    """The real command: poison first (it is re-read first after a restart), votes after it."""
    from harness import Service, wait_for

    r = redis_server.client()
    stream = names["VOTE_STREAM"]
    r.xadd(stream, {b"\xff": b"\xff"})
    for i in range(20):
        r.xadd(stream, {"voter_id": vid(i), "vote": "Dogs"})
    env = {**base_env, "WORKER_CONSUMER": "poison", "METRICS_PORT": "0"}
    worker = Service("worker", env, workdir, "worker-poison").start()
    try:
        wait_for(lambda: counts(pg) == {"Dogs": 20}, 20, "20 votes behind a poison entry")
        r.xadd(stream, {b"\x80": b"x"})
        r.xadd(stream, {"voter_id": vid(99), "vote": "Cats"})
        wait_for(lambda: counts(pg) == {"Dogs": 20, "Cats": 1}, 20, "a vote after more poison")
        assert worker.proc.poll() is None, worker.logs()
        assert r.xlen(names["DEAD_LETTER_STREAM"]) == 2
    finally:
        assert worker.stop() == 0


@pytest.mark.parametrize(
    ("setting", "sqlstate"),
    [("default_transaction_read_only", "25006"), ("statement_timeout", "57014")],
)
def test_database_errors_not_about_the_entry_are_retried_never_dead_lettered(
    redis_server, pg_server, pg, base_env, names, setting, sqlstate
):
    """Issue #15 item 2: a read-only standby (or a cancelled statement) dead-lettered whole batches."""
    from votingapp.worker import is_entry_error, is_retryable

    r = redis_server.client()
    stream, dlq = names["VOTE_STREAM"], names["DEAD_LETTER_STREAM"]
    for i in range(30):
        r.xadd(stream, {"voter_id": vid(i), "vote": "Dogs"})
    value = "on" if setting == "default_transaction_read_only" else "1"
    with closing(pg_server.superuser()) as su, su.cursor() as cur:
        cur.execute(f"ALTER ROLE {WORKER} SET {setting} = '{value}'")
    try:
        w = make_worker(base_env)
        if setting == "statement_timeout":
            # every statement takes longer than 1 ms: hold the table the upsert writes
            blocker = pg_server.connect()
            blocker.autocommit = False
            blocker.cursor().execute("LOCK TABLE vote_counts IN SHARE ROW EXCLUSIVE MODE")
        with pytest.raises(psycopg2.Error) as err:
            w.run_once()
        assert err.value.pgcode == sqlstate
        assert is_retryable(err.value) and not is_entry_error(err.value)
        assert r.xlen(dlq) == 0
        assert r.xpending(stream, "workers")["pending"] == 30
        if setting == "statement_timeout":
            blocker.close()
    finally:
        with closing(pg_server.superuser()) as su, su.cursor() as cur:
            cur.execute(f"ALTER ROLE {WORKER} RESET {setting}")
    w._drop_pg()  # what run() does after a database error
    w.read_own_pending = True
    drain(w)
    assert counts(pg) == {"Dogs": 30}
    assert r.xlen(dlq) == 0


def test_entry_errors_are_classified_by_sqlstate():
    from votingapp.worker import is_entry_error, is_retryable

    def error(cls, code):
        exc = cls("x")
        exc.pgcode = code  # psycopg2 sets it from the server's answer; here by hand
        return exc

    class Fake(psycopg2.Error):
        pgcode = None

    for code in ("22003", "22P02", "23505"):
        assert is_entry_error(error(Fake, code)) and not is_retryable(error(Fake, code))
    for code in ("08006", "25006", "40001", "40P01", "53100", "57P01", "42P01", "42501", None):
        assert is_retryable(error(Fake, code)) and not is_entry_error(error(Fake, code))


def test_block_longer_than_the_default_socket_timeout_is_an_idle_read_not_an_outage(redis_server, pg, base_env):
    """Issue #15 item 8: WORKER_BLOCK_MS above 2 s made every idle read a "redis unavailable"."""
    w = make_worker(base_env, WORKER_BLOCK_MS="2500", WORKER_LINGER_MS="0")
    w.read_own_pending = False
    w._ensure_group()
    assert w.run_once() == 0  # waited 2.5 s for votes; none came; no TimeoutError
    assert w.redis_ok


def test_an_explicit_id_beyond_bigint_does_not_stop_later_votes(redis_server, pg, base_env, names):
    """Issue #15 item 9: ids are unsigned 64-bit; one XADD with a huge explicit id pushed every
    later (automatic) id past bigint, and every later vote was dead-lettered."""
    r = redis_server.client()
    stream, dlq = names["VOTE_STREAM"], names["DEAD_LETTER_STREAM"]
    r.xadd(stream, {"voter_id": vid(1), "vote": "Cats"})
    r.xadd(stream, {"voter_id": vid(2), "vote": "Cats"}, id=f"{2**64 - 2}-0")
    later = [r.xadd(stream, {"voter_id": vid(1), "vote": "Dogs"}).decode()]  # automatic ids from now on
    later.append(r.xadd(stream, {"voter_id": vid(3), "vote": "Dogs"}).decode())
    assert all(int(i.split("-")[0]) > 2**63 for i in later)
    w = make_worker(base_env)
    drain(w)
    assert r.xlen(dlq) == 0
    assert counts(pg) == {"Cats": 1, "Dogs": 2} == tally_from_votes(pg)
    r.xadd(stream, {"voter_id": vid(3), "vote": "Cats"})  # and the newest still wins
    drain(w)
    assert counts(pg) == {"Cats": 2, "Dogs": 1}


def test_trim_bound_never_passes_an_entry_a_group_may_still_need():
    def group(name, pending, last):
        return {"name": name.encode(), "pending": pending, "last-delivered-id": last.encode()}

    assert trim_bound([group("workers", 0, "5-3")], "workers", None) == "5-4"
    assert trim_bound([group("workers", 7, "9-0")], "workers", b"6-2") == "6-2"
    # the largest sequence number rolls over into the next millisecond
    assert trim_bound([group("workers", 0, f"5-{2**64 - 1}")], "workers", None) == "6-0"
    # the slowest group sets the bound, compared as numbers (not as text: "10-0" > "9-0")
    assert trim_bound([group("workers", 0, "10-0"), group("audit", 0, "9-0")], "workers", None) == "9-1"
    # another group's pending entries are unknown to us: trim nothing
    assert trim_bound([group("workers", 0, "10-0"), group("audit", 3, "9-0")], "workers", None) is None
    assert trim_bound([], "workers", None) is None


def test_trimming_keeps_entries_pending_under_a_dead_consumer_until_reclaimed(redis_server, pg, base_env, names):
    r = redis_server.client()
    stream = names["VOTE_STREAM"]
    r.xgroup_create(stream, "workers", id="0", mkstream=True)
    for i in range(40):
        r.xadd(stream, {"voter_id": vid(i), "vote": "Dogs"})
    r.xreadgroup("workers", "dead-one", {stream: ">"}, count=40)
    for i in range(40, 300):
        r.xadd(stream, {"voter_id": vid(i), "vote": "Cats"})
    w = make_worker(base_env, WORKER_BATCH_SIZE="50", WORKER_CLAIM_IDLE_MS="100")
    w.next_claim = float("inf")  # the dead consumer's entries stay pending for now
    drain(w)
    assert w.trim_mode == "xtrim"
    assert counts(pg) == {"Cats": 260}
    # XTRIM cuts only the head: nothing at or after the oldest pending entry may go
    assert r.xlen(stream) == 300
    assert len(r.xrange(stream, count=40)) == 40
    time.sleep(0.15)
    w.next_claim = 0
    drain(w)
    assert counts(pg) == {"Cats": 260, "Dogs": 40}
    assert r.xpending(stream, "workers")["pending"] == 0
    assert r.xlen(stream) == 0


def test_a_user_who_may_not_xtrim_gets_xdel_instead(redis_server, pg, base_env, names, caplog):
    r = redis_server.client()
    stream, dlq = names["VOTE_STREAM"], names["DEAD_LETTER_STREAM"]
    user = f"noxtrim-{names['VOTE_STREAM'][-8:]}"
    r.execute_command(
        "ACL", "SETUSER", user, "on", ">pw-noxtrim", "resetkeys", "-@all", f"~{stream}", "+xreadgroup", "+xack",
        "+xautoclaim", "+xgroup|create", "+xpending", "+xinfo", "+xdel", "+ping", "+hello", "+client|setname",
        f"(~{dlq} +xadd)",
    )  # fmt: skip
    try:
        for i in range(120):
            r.xadd(stream, {"voter_id": vid(i), "vote": "Cats"})
        r.xadd(stream, {"voter_id": "poison-entry-1", "vote": "Fish"})
        w = make_worker({**base_env, "REDIS_USER": user, "REDIS_PASSWORD": "pw-noxtrim"}, WORKER_BATCH_SIZE="50")
        with caplog.at_level("INFO", logger="votingapp.worker"):
            drain(w)
        assert w.trim_mode == "xdel"
        assert counts(pg) == {"Cats": 120}
        assert r.xlen(dlq) == 1
        assert r.xlen(stream) == 0
        assert "NOPERM" not in caplog.text
    finally:
        r.execute_command("ACL", "DELUSER", user)
