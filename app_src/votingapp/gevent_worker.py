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
import ctypes
import socket
import struct

import gevent
from gunicorn.workers.ggevent import GeventWorker

SO_ATTACH_FILTER = 26  # linux/asm-generic/socket.h
# one classic BPF instruction, BPF_RET | BPF_K with k = 0: keep 0 bytes of every packet (drop it)
_DROP_ALL = struct.pack("HBBI", 0x06, 0, 0, 0)


def refuse_new_connections(listener: socket.socket) -> None:
    """Drop every SYN that reaches this listening socket from now on (a socket filter runs on
    the listener for each connection request); connections it has queued are not affected."""
    program = ctypes.create_string_buffer(_DROP_ALL)
    listener.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", 1, ctypes.addressof(program)))


class TimeoutGeventWorker(GeventWorker):
    client_timeout = 10.0  # set by web.serve() before the workers fork

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        # Stopping (SIGTERM, docker stop): gunicorn closes this worker's listening socket within
        # a second, and closing a listening socket resets every connection still queued on it:
        # the client had connected and sent its vote, and got a reset (9 of ~3,300 votes under
        # load in test_graceful_stop). From now on the kernel drops every new SYN for this socket
        # (the client retries its SYN and then meets the closed port: refused, so a proxy tries
        # another replica), while the connections already queued are still accepted and answered.
        # (Runs inside whichever greenlet the signal interrupted: it must never raise.)
        for listener in self.sockets:  # gevent sockets here, gunicorn's wrappers before init_process
            with contextlib.suppress(OSError, AttributeError):
                refuse_new_connections(getattr(listener, "sock", listener))

    def timeout_ctx(self):
        # Between keep-alive requests: gunicorn's keepalive (75 s, longer than the ALB's idle
        # timeout) while serving; once stopping, a second for the client's next request (it is
        # answered with `Connection: close`), then the idle connection is closed instead of
        # holding the stop until graceful_timeout.
        return gevent.Timeout(self.cfg.keepalive if self.alive else 1.0, False)

    def handle_request(self, listener_name, req, sock, addr):
        sock.settimeout(self.client_timeout)
        try:
            super().handle_request(listener_name, req, sock, addr)
        finally:
            # between requests the keep-alive timer applies (timeout_ctx)
            with contextlib.suppress(OSError):
                sock.settimeout(None)


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
