"""Session-wide real Redis and PostgreSQL; each test gets its own stream names and empty tables."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import OWNER, RESULT, PostgresServer, RedisServer
from votingapp import schema


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("votingapp")


@pytest.fixture(scope="session")
def redis_server(workdir):
    server = RedisServer(workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_server():
    server = PostgresServer().init().start().provision()
    conn = server.connect(OWNER)
    schema.migrate(conn)
    conn.close()
    yield server
    server.destroy()


@pytest.fixture
def pg(pg_server):
    """Empty vote tables for this test, and an owner connection to inspect them."""
    conn = pg_server.connect(OWNER)
    with conn.cursor() as cur:
        cur.execute("TRUNCATE votes, vote_counts")
    yield conn
    conn.close()


@pytest.fixture
def names():
    """Stream and group names unique to this test (the Redis server is shared)."""
    tag = uuid.uuid4().hex[:8]
    return {"VOTE_STREAM": f"votes-{tag}", "DEAD_LETTER_STREAM": f"votes-{tag}:dead-letter", "WORKER_GROUP": "workers"}


@pytest.fixture
def base_env(redis_server, pg_server, names):
    env = {**redis_server.env(), **pg_server.env(), **names, "VOTE_OPTIONS": "Cats,Dogs"}
    return env


@pytest.fixture
def result_env(base_env, pg_server):
    return {**base_env, **pg_server.env(RESULT)}


def tally_from_votes(conn) -> dict:
    with conn.cursor() as cur:
        cur.execute("SELECT vote, count(*) FROM votes GROUP BY vote")
        return dict(cur.fetchall())


def counts(conn) -> dict:
    with conn.cursor() as cur:
        cur.execute("SELECT vote, count FROM vote_counts WHERE count <> 0")
        return dict(cur.fetchall())
