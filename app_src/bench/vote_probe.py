"""Bench only, not a product feature: the vote tier's limit probe.

A bare WSGI callable that does what POST /api/vote must do at the least (read the body, parse
the JSON, check the option, one XADD, a JSON answer) served by the same gunicorn launcher,
worker class and settings as the vote service (`votingapp.web.serve`). `make bench` alternates
it with the real service, so vote_to_probe_ratio says how much of the server's and Redis's limit
the Flask app reaches, measured in the same run.

    REDIS_HOST=... PORT=... python app_src/bench/vote_probe.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from votingapp import config, web
from votingapp.redis_client import make_client

BAD = b'{"error": "bad vote"}'
OK = b'{"status": "ok"}'


def probe_app(settings):
    client = make_client(settings.redis, client_name="votingapp-vote-probe")
    stream = settings.redis.stream
    options = set(settings.options)

    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":  # what the harness waits for
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(OK)))])
            return [OK]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if 0 < length <= 4096 else b""
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        choice = data.get("vote") if isinstance(data, dict) else None
        cookie = environ.get("HTTP_COOKIE", "")
        voter = cookie.partition("voter_id=")[2].partition(";")[0] or "probe-voter"
        if choice not in options:
            start_response("400 Bad Request", [("Content-Type", "application/json"), ("Content-Length", str(len(BAD)))])
            return [BAD]
        entry = client.xadd(stream, {"voter_id": voter, "vote": choice})
        out = json.dumps({"voter_id": voter, "vote": choice, "id": entry.decode()}).encode()
        start_response("202 Accepted", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
        return [out]

    return app


def main() -> int:
    settings = config.load_or_exit(config.vote_settings, "vote-probe")
    return web.serve(lambda: probe_app(settings), settings.web, "vote-probe")


if __name__ == "__main__":
    sys.exit(main())
