"""gunicorn's gevent worker with a per-operation socket timeout while a request is served.

Every connection is a greenlet, so an open event stream or a slow client costs memory and a file
descriptor, never one of a fixed number of threads. gunicorn bounds the wait for a request's
headers (and the idle time between keep-alive requests) by its `keepalive` setting; this adds
HTTP_CLIENT_TIMEOUT to every read of the body and every write of the answer, so a client that
stops reading or trickles its body is dropped instead of being held for ever.

psycopg2 is a C library: without a wait callback one query blocks every greenlet of the process.
`green_psycopg2` installs the callback (what psycogreen does), with the same bound on each wait.
"""

from __future__ import annotations

import contextlib

from gunicorn.workers.ggevent import GeventWorker


class TimeoutGeventWorker(GeventWorker):
    client_timeout = 10.0  # set by web.serve() before the workers fork

    def handle_request(self, listener_name, req, sock, addr):
        sock.settimeout(self.client_timeout)
        try:
            super().handle_request(listener_name, req, sock, addr)
        finally:
            # between requests the keep-alive timer of gunicorn applies (longer than the ALB's)
            with contextlib.suppress(OSError):
                sock.settimeout(None)
        if not self.alive:
            # stopping: an event stream that just ended must not wait as an idle keep-alive
            # connection until graceful_timeout
            raise StopIteration()


def green_psycopg2(timeout: float) -> None:
    """Make psycopg2 yield to other greenlets while it waits for the network."""
    import psycopg2
    from gevent.socket import wait_read, wait_write
    from psycopg2 import extensions

    def wait(conn, _timeout=None):
        while True:
            state = conn.poll()
            try:
                if state == extensions.POLL_OK:
                    return
                if state == extensions.POLL_READ:
                    wait_read(conn.fileno(), timeout=timeout)
                elif state == extensions.POLL_WRITE:
                    wait_write(conn.fileno(), timeout=timeout)
                else:
                    raise psycopg2.OperationalError(f"unexpected poll state {state}")
            except TimeoutError as exc:
                conn.close()
                raise psycopg2.OperationalError(f"no answer from the database within {timeout:g}s") from exc

    extensions.set_wait_callback(wait)


def active() -> bool:
    """True inside a gevent worker (the socket module is patched)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket")
