"""Settings validation: every bad or missing variable is named, secrets never appear."""

from __future__ import annotations

import subprocess
import sys

import pytest
from harness import python_env
from votingapp import config

GOOD_PG = {"PG_HOST": "db", "PG_DATABASE": "votingapp", "PG_USER": "u", "PG_PASSWORD": "very-secret-value"}
GOOD_REDIS = {"REDIS_HOST": "cache"}


def test_defaults_from_the_architecture_contract():
    w = config.worker_settings({**GOOD_PG, **GOOD_REDIS, "WORKER_CONSUMER": "w1"})
    assert (w.redis.port, w.redis.stream, w.dead_letter_stream) == (6379, "votes", "votes:dead-letter")
    assert (w.batch_size, w.block_ms, w.group, w.claim_idle_ms, w.migrate) == (500, 100, "workers", 30000, False)
    assert w.options == ("Cats", "Dogs")
    assert w.metrics_port == 9100
    v = config.vote_settings(GOOD_REDIS)
    assert (v.web.port, v.web.workers, v.web.prefix) == (8080, 2, "")


def test_missing_variables_are_all_named():
    with pytest.raises(config.ConfigError) as err:
        config.worker_settings({})
    text = str(err.value)
    for name in ("REDIS_HOST", "PG_HOST", "PG_DATABASE", "PG_USER", "PG_PASSWORD"):
        assert name in text


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"REDIS_PORT": "abc"}, "REDIS_PORT"),
        ({"REDIS_PORT": "70000"}, "REDIS_PORT"),
        ({"REDIS_USER": "vote"}, "REDIS_PASSWORD"),
        ({"VOTE_OPTIONS": "Cats"}, "VOTE_OPTIONS"),
        ({"VOTE_OPTIONS": "Cats,Cats"}, "VOTE_OPTIONS"),
        ({"VOTE_OPTIONS": "Cats,<script>"}, "VOTE_OPTIONS"),
        ({"URL_PREFIX": "vote"}, "URL_PREFIX"),
        ({"URL_PREFIX": "/vote?x"}, "URL_PREFIX"),
        ({"GUNICORN_WORKERS": "0"}, "GUNICORN_WORKERS"),
        ({"COOKIE_SECURE": "maybe"}, "COOKIE_SECURE"),
        ({"GUNICORN_WORKER_CLASS": "sync"}, "GUNICORN_WORKER_CLASS"),
        ({"GUNICORN_WORKER_CONNECTIONS": "1"}, "GUNICORN_WORKER_CONNECTIONS"),
        ({"HTTP_CLIENT_TIMEOUT": "0"}, "HTTP_CLIENT_TIMEOUT"),
        ({"VOTER_ID_SECRET": "short"}, "VOTER_ID_SECRET"),
        ({"VOTE_RATE_LIMIT_PER_MINUTE": "-1"}, "VOTE_RATE_LIMIT_PER_MINUTE"),
        ({"FORWARDED_HOPS": "9"}, "FORWARDED_HOPS"),
        ({"BIND_ADDRESS": "not-an-address"}, "BIND_ADDRESS"),
        ({"BIND_ADDRESS": "300.1.1.1"}, "BIND_ADDRESS"),
        ({"RESULT_URL": "javascript:alert(1)"}, "RESULT_URL"),
        ({"RESULT_URL": "result"}, "RESULT_URL"),
        ({"RESULT_URL": '/result/" onclick="x'}, "RESULT_URL"),
    ],
)
def test_bad_vote_values_are_named(env, name):
    with pytest.raises(config.ConfigError, match=name):
        config.vote_settings({**GOOD_REDIS, **env})


def test_result_url_is_optional():
    assert config.vote_settings(GOOD_REDIS).result_url == ""
    for url in ("/result/", "http://127.0.0.1:5001/", "https://votes.example.org/result/"):
        assert config.vote_settings({**GOOD_REDIS, "RESULT_URL": url}).result_url == url


def test_prefix_is_normalised():
    assert config.vote_settings({**GOOD_REDIS, "URL_PREFIX": "/vote/"}).web.prefix == "/vote"


def test_worker_values_checked():
    with pytest.raises(config.ConfigError, match="WORKER_BATCH_SIZE"):
        config.worker_settings({**GOOD_PG, **GOOD_REDIS, "WORKER_BATCH_SIZE": "0"})
    with pytest.raises(config.ConfigError, match="WORKER_MIGRATE"):
        config.worker_settings({**GOOD_PG, **GOOD_REDIS, "WORKER_MIGRATE": "perhaps"})


def test_password_never_in_repr():
    s = config.worker_settings({**GOOD_PG, **GOOD_REDIS, "REDIS_USER": "w", "REDIS_PASSWORD": "redis-secret-xyz"})
    assert "very-secret-value" not in repr(s)
    v = config.vote_settings({**GOOD_REDIS, "VOTER_ID_SECRET": "voter-id-secret-xyz-123"})
    assert "voter-id-secret-xyz" not in repr(v)
    assert "redis-secret-xyz" not in repr(s)


@pytest.mark.parametrize("command", ["vote", "worker", "result", "migrate"])
def test_commands_exit_nonzero_naming_the_variable(command):
    env = python_env({"PG_PASSWORD": "hunter2-secret", "REDIS_PASSWORD": "hunter3-secret", "REDIS_USER": "u"})
    done = subprocess.run(
        [sys.executable, "-m", "votingapp", command], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    expected = "REDIS_HOST" if command in ("vote", "worker") else "PG_HOST"
    assert f"{command}: configuration error: {expected} is required" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert "hunter3" not in done.stderr + done.stdout


def test_good_bind_addresses():
    for bind in ("0.0.0.0", "127.0.0.1", "::", "localhost"):  # noqa: S104 - only parsed
        assert config.vote_settings({**GOOD_REDIS, "BIND_ADDRESS": bind}).web.bind == bind


def test_dead_letter_stream_must_differ_from_the_vote_stream():
    env = {**GOOD_PG, **GOOD_REDIS, "VOTE_STREAM": "votes", "DEAD_LETTER_STREAM": "votes"}
    with pytest.raises(config.ConfigError, match="DEAD_LETTER_STREAM"):
        config.worker_settings(env)


@pytest.mark.parametrize("command", ["vote", "worker", "result", "migrate"])
@pytest.mark.parametrize(
    ("env", "name"),
    [({"LOG_LEVEL": "verbose"}, "LOG_LEVEL"), ({"BIND_ADDRESS": "not-an-address"}, "BIND_ADDRESS")],
)
def test_bad_setting_is_exit_2_naming_it_not_a_traceback(command, env, name):
    if name == "BIND_ADDRESS" and command in ("worker", "migrate"):
        pytest.skip("web services only")
    base = {**GOOD_PG, **GOOD_REDIS, "PG_HOST": "127.0.0.1", "REDIS_HOST": "127.0.0.1", "PORT": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "votingapp", command],
        env=python_env({**base, **env}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert f"{command}: configuration error: {name}=" in done.stderr
    assert "Traceback" not in done.stderr
