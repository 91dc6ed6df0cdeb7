"""result in-process: the connection pool across a PostgreSQL restart, what a 503 tells a client."""

from __future__ import annotations

import threading
import time

import pytest
from harness import RESULT, free_port
from votingapp import config
from votingapp.result import TallyReader, create_app


def result_settings(pg_server, **extra):
    return config.result_settings({**pg_server.env(RESULT), **extra})


@pytest.mark.slow
def test_no_503_after_a_postgres_restart_with_a_full_pool(pg_server, pg):
    """Issue #15 item 5: the retry took another stale pooled connection (4 x 503 per process)."""
    reader = TallyReader(result_settings(pg_server))
    conns = [reader._getconn() for _ in range(8)]
    for conn in conns:
        reader._putconn(conn, broken=False)
    assert len(reader._idle) == 8
    pg_server.restart()
    answers = []
    for _ in range(10):
        try:
            answers.append(reader.read()["total"])
        except Exception as exc:  # counted and shown below
            answers.append(exc)
    assert answers == [0] * 10


def test_503_bodies_name_the_dependency_not_its_address(pg_server, redis_server):
    """Issue #15 item 9: /readyz and /api/tally told anyone the database host, port and user."""
    dead = str(free_port())
    app = create_app(result_settings(pg_server, PG_PORT=dead, PG_HOST="127.0.0.1"))
    client = app.test_client()
    for path in ("/readyz", "/api/tally"):
        resp = client.get(path)
        assert resp.status_code == 503
        text = resp.get_data(as_text=True)
        assert "postgres unavailable" in text
        for secret in (dead, "127.0.0.1", RESULT):
            assert secret not in text, (path, text)

    from votingapp.vote import create_app as vote_app

    vote = vote_app(config.vote_settings({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": dead})).test_client()
    resp = vote.get("/readyz")
    assert resp.status_code == 503
    assert "redis unavailable" in resp.get_data(as_text=True)
    assert dead not in resp.get_data(as_text=True)


def test_one_feed_serves_every_stream(pg_server, pg):
    """The tally poller runs while viewers are connected, once per process, and stops after."""
    from votingapp.result import TallyFeed

    feed = TallyFeed(TallyReader(result_settings(pg_server)), poll_s=0.05)
    got = []

    def viewer():
        feed.join()
        try:
            got.append(feed.wait(0, 5))
        finally:
            feed.leave()

    threads = [threading.Thread(target=viewer) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(got) == 20 and {v for v, _ in got} == {1}
    assert got[0][1].startswith("data: {")
    time.sleep(0.3)
    assert not feed.polling  # nobody watches: no more queries
    feed.stop()


def _count_cats(pg) -> None:
    with pg, pg.cursor() as cur:
        cur.execute(
            "INSERT INTO vote_counts VALUES ('Cats', 1) ON CONFLICT (vote) DO UPDATE SET count = vote_counts.count + 1"
        )


def test_a_committed_change_reaches_the_viewers_before_the_next_poll(pg_server, pg):
    """PostgreSQL notifies the feed at COMMIT (migration 4). While it listens, the feed reads on a
    notification (at most once per poll interval) and otherwise only every LISTENING_POLLS
    intervals: here a read every 8 s, and the change still goes out at once. A rolled-back change
    sends nothing."""
    from votingapp.result import LISTENING_POLLS, ChangeListener, TallyFeed

    settings = result_settings(pg_server)
    feed = TallyFeed(TallyReader(settings), poll_s=1.0, listener=ChangeListener(settings))
    feed.join()
    try:
        first, _ = feed.wait(0, 5)  # the feed's first read
        deadline = time.monotonic() + 3
        while not feed.listener.listening and time.monotonic() < deadline:
            time.sleep(0.02)
        assert feed.listener.listening
        with pg.cursor() as cur:  # rolled back: nothing to tell
            cur.execute("UPDATE vote_counts SET count = count + 1")
        pg.rollback()
        # past the read that follows the start of listening (and its interval): the next one by
        # the clock is LISTENING_POLLS intervals away
        assert feed.wait(first, 2.3)[0] == first
        committed = time.monotonic()
        _count_cats(pg)
        version, event = feed.wait(first, 5)
        waited = time.monotonic() - committed
        assert version == first + 1 and '"Cats":1' in event
        assert waited < 0.8 < LISTENING_POLLS - 3, f"the change took {waited:.2f}s: it waited for a poll"
    finally:
        feed.leave()
        feed.stop()


def test_without_the_trigger_the_feed_polls(pg_server, pg):
    """A database not migrated to version 4 yet (a rolling upgrade): no LISTEN, changes still arrive
    at the next poll."""
    from votingapp import schema
    from votingapp.result import ChangeListener, TallyFeed

    settings = result_settings(pg_server)
    with pg, pg.cursor() as cur:
        cur.execute(f"DROP TRIGGER {schema.COUNTS_TRIGGER} ON vote_counts")
    feed = TallyFeed(TallyReader(settings), poll_s=0.1, listener=ChangeListener(settings))
    try:
        feed.join()
        first, _ = feed.wait(0, 5)
        _count_cats(pg)
        version, event = feed.wait(first, 3)
        assert version == first + 1 and '"Cats":1' in event
        assert not feed.listener.listening
    finally:
        feed.leave()
        feed.stop()
        with pg, pg.cursor() as cur:
            cur.execute(next(sql for version, _, sql in schema.MIGRATIONS if version == 4))
