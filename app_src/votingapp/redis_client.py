"""One Redis connection pool per process, with short timeouts so an outage turns into a fast 503."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


def make_client(settings, *, client_name: str, socket_timeout: float = 2.0, max_connections: int = 64):
    # One quick retry absorbs a pooled connection that died with a Redis restart; a longer
    # retry would only make a caller wait for an outage that a 503 reports more honestly.
    retry = Retry(ExponentialBackoff(cap=0.05, base=0.01), 1)
    pool = redis.BlockingConnectionPool(
        host=settings.host,
        port=settings.port,
        username=settings.user,
        password=settings.password,
        socket_timeout=socket_timeout,
        socket_connect_timeout=1.0,
        socket_keepalive=True,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        client_name=client_name,
        max_connections=max_connections,
        timeout=2,
        decode_responses=False,
        driver_info=None,
    )
    return redis.Redis(connection_pool=pool)
