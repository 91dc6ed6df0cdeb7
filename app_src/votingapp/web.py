"""Shared pieces of the two web services: URL prefix handling, metrics, gunicorn launcher."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import tempfile

from flask import Response, jsonify

log = logging.getLogger("votingapp.web")

# Called when this gunicorn worker is told to stop: long responses (event streams) end at once
# instead of holding the shutdown until graceful_timeout.
_SHUTDOWN_CALLBACKS: list = []


def on_shutdown(callback) -> None:
    _SHUTDOWN_CALLBACKS.append(callback)


def _run_shutdown_callbacks() -> None:
    from . import gevent_worker

    for callback in _SHUTDOWN_CALLBACKS:
        if gevent_worker.active():
            # a signal handler must not block on a greenlet lock: run it in its own greenlet
            import gevent

            gevent.spawn(callback)
        else:
            callback()


def _chain_shutdown_signals(_worker) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        previous = signal.getsignal(signum)

        def handler(num, frame, previous=previous):
            _run_shutdown_callbacks()
            if callable(previous):
                previous(num, frame)

        signal.signal(signum, handler)


class PrefixMiddleware:
    """Serve every route both at PREFIX/... and at /... .

    A path router (ALB rule `/vote*`, nginx `location /vote`) forwards the full path, so the
    prefix arrives in PATH_INFO. Moving it to SCRIPT_NAME makes Flask's url_for() generate
    prefixed form actions, static URLs, event-stream URLs and redirects for requests that came
    through the prefix, and plain ones for requests made at the root (health checks, compose).
    """

    def __init__(self, app, prefix: str):
        self.app = app
        self.prefix = prefix.rstrip("/")

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        prefix = self.prefix
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
            environ["PATH_INFO"] = path[len(prefix) :] or "/"
        return self.app(environ, start_response)


def no_redirects(app) -> None:
    """The app issues no redirects. Werkzeug would answer `//x` or a missing trailing slash with a
    redirect built from the Host header, so a forged Host made it send a client to any site."""
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.url_map.redirect_defaults = False


def metrics_response() -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def prepare_multiprocess_metrics() -> None:
    # gunicorn forks several workers; each keeps its own counters, and prometheus_client's
    # multiprocess mode sums them through files in this directory. It must be set before
    # prometheus_client is first imported, which happens in the forked workers.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
        return
    path = tempfile.mkdtemp(prefix="votingapp-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    atexit.register(shutil.rmtree, path, True)


def _raise_open_files_limit(wanted: int) -> None:
    """Each open connection is a file descriptor: lift the soft limit towards the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def serve(app_factory, web, name: str) -> int:
    """Run app_factory() under gunicorn with the validated web settings.

    gevent (the default): one greenlet per connection, so event-stream viewers and slow clients
    cost memory, not request capacity. gthread: the previous fixed pool of threads per process.
    """
    prepare_multiprocess_metrics()
    from gunicorn.app.base import BaseApplication

    if web.worker_class == "gevent":
        from .gevent_worker import TimeoutGeventWorker

        TimeoutGeventWorker.client_timeout = web.client_timeout
        worker_class = "votingapp.gevent_worker.TimeoutGeventWorker"
        _raise_open_files_limit(web.workers * web.worker_connections + 256)
    else:
        worker_class = "gthread"

    def child_exit(_server, worker):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

    class _App(BaseApplication):
        def load_config(self):
            settings = {
                "bind": f"{web.bind}:{web.port}",
                "workers": web.workers,
                "worker_class": worker_class,
                "threads": web.threads,  # gthread only
                "worker_connections": web.worker_connections,  # gevent only
                "proc_name": f"votingapp-{name}",
                "keepalive": 75,  # longer than the ALB's 60 s idle timeout, so the ALB closes first
                # One listening socket per worker (SO_REUSEPORT): the kernel spreads connections
                # over the workers. With one shared socket the first worker to wake takes every
                # connection of a burst, and a proxy's few keep-alive connections then all land
                # on one worker (one CPU): 714-796 votes/s in 2 runs of 3 against 1,349-1,633
                # in 4 of 4 with SO_REUSEPORT (16 wrk connections, docs/performance.md).
                "reuse_port": True,
                "graceful_timeout": 10,
                "timeout": 30,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "info",
                "child_exit": child_exit,
                "post_worker_init": _chain_shutdown_signals,
                # no runtime control socket: nothing uses it, and the non-root user has no home
                "control_socket_disable": True,
                # heartbeat files on tmpfs: a slow overlay disk must not make gunicorn kill workers
                "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,  # noqa: S108
            }
            for key, value in settings.items():
                if key in self.cfg.settings:  # control_socket_* only exists from gunicorn 24
                    self.cfg.set(key, value)

        def load(self):
            return app_factory()

    _App().run()
    return 0


_RESPONSES = None


def count_responses(app, service: str):
    """Count every response by status code: `votingapp_http_responses_total{service, code}`.

    The 5xx alert reads it (the outcome counters of the services do not see a 500 from a bug or a
    503 of /readyz). One labelled child per code, cached here: the hook costs a dict lookup and an
    increment, not prometheus_client's label lock and validation on every request.
    """
    global _RESPONSES
    if _RESPONSES is None:  # once per process: an app made twice (tests) must not register it twice
        from prometheus_client import Counter

        _RESPONSES = Counter("votingapp_http_responses_total", "HTTP responses by status code", ["service", "code"])
    responses = _RESPONSES
    children: dict[int, object] = {}

    def count(code: int) -> None:
        child = children.get(code)
        if child is None:
            child = children.setdefault(code, responses.labels(service, str(code)))
        child.inc()

    @app.after_request
    def _count(response):
        count(response.status_code)
        return response

    # A WSGI path that answers without Flask (vote's POST /api/vote) counts through the same children.
    app.extensions["votingapp.count_response"] = count
    return count


def add_operational_routes(app, dependency_problem) -> None:
    """/healthz (the process runs), /readyz (dependency_problem() returns None), /metrics, and the
    response counter (count_responses) named after the service's module (vote, result)."""
    count_responses(app, app.import_name.rsplit(".", 1)[-1])

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        problem = dependency_problem()
        if problem:
            return jsonify(status="unavailable", reason=problem), 503
        return jsonify(status="ok")

    @app.get("/metrics")
    def metrics():
        return metrics_response()
