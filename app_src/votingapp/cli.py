"""Console entry points: vote, worker, result, migrate (one image, one command per service).

Settings are validated before anything heavy is imported or any socket is opened, and the
prometheus multiprocess directory is prepared before prometheus_client is imported (it picks
its storage at import time).
"""

from __future__ import annotations

import logging
import sys


def _logging(component: str) -> None:
    from .config import ConfigError, log_level

    try:
        level = log_level()
    except ConfigError as exc:
        print(f"{component}: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def vote() -> int:
    _logging("vote")
    from .config import load_or_exit, vote_settings
    from .web import prepare_multiprocess_metrics, serve

    settings = load_or_exit(vote_settings, "vote")
    prepare_multiprocess_metrics()
    from .vote import create_app

    logging.getLogger("votingapp.vote").info(
        "vote: options %s, prefix %r, redis %s:%s as %s",
        ",".join(settings.options),
        settings.web.prefix,
        settings.redis.host,
        settings.redis.port,
        settings.redis.user or "default",
    )
    return serve(lambda: create_app(settings), settings.web, "vote")


def result() -> int:
    _logging("result")
    from .config import load_or_exit, result_settings
    from .web import prepare_multiprocess_metrics, serve

    settings = load_or_exit(result_settings, "result")
    prepare_multiprocess_metrics()
    from .result import create_app

    logging.getLogger("votingapp.result").info(
        "result: options %s, prefix %r, postgres %s:%s/%s as %s",
        ",".join(settings.options),
        settings.web.prefix,
        settings.postgres.host,
        settings.postgres.port,
        settings.postgres.database,
        settings.postgres.user,
    )
    return serve(lambda: create_app(settings), settings.web, "result")


def worker() -> int:
    _logging("worker")
    from .worker import main

    return main()


def migrate() -> int:
    _logging("migrate")
    from . import schema
    from .config import load_or_exit, migrate_settings

    settings = load_or_exit(migrate_settings, "migrate")
    try:
        return schema.run(settings)
    except Exception as exc:  # one clear line instead of a traceback for operators
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"migrate: failed: {exc.__class__.__name__}: {first}", file=sys.stderr)
        return 1


COMMANDS = {"vote": vote, "worker": worker, "result": result, "migrate": migrate}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m votingapp {{{'|'.join(COMMANDS)}}}", file=sys.stderr)
        return 2
    sys.argv = [argv[0], *argv[1:]]
    return COMMANDS[argv[0]]()
