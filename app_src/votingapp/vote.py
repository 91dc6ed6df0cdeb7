"""vote: the ballot. Each accepted vote is one XADD to the Redis stream (one round trip)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict

import redis
from flask import Flask, jsonify, render_template, request
from prometheus_client import Counter, Histogram
from werkzeug.exceptions import HTTPException
from werkzeug.http import dump_cookie, parse_cookie

from .ids import VoterIds
from .redis_client import make_client
from .web import PrefixMiddleware, add_operational_routes, no_redirects

log = logging.getLogger("votingapp.vote")

VOTER_COOKIE = "voter_id"
# The option this browser last voted for through the page, so the ballot can mark it (the vote
# service cannot read PostgreSQL). Set on an accepted form vote only: the JSON API keeps its headers.
CHOICE_COOKIE = "vote_choice"
MAX_BODY_BYTES = 4096
COOKIE_MAX_AGE = 365 * 24 * 3600
# Redis may have stored a vote whose reply was lost, so "not confirmed", not "not recorded";
# voting again is always safe: one row per voter, the newest vote wins.
QUEUE_DOWN_PAGE = "The vote queue is unavailable: your vote was NOT confirmed. Please vote again in a moment."
QUEUE_DOWN_API = "vote queue unavailable: the vote was not confirmed; retry (a retry never counts twice)"

VOTES = Counter("votingapp_vote_votes_total", "Votes by outcome", ["outcome"])
XADD_SECONDS = Histogram(
    "votingapp_vote_xadd_seconds",
    "Time to append one vote to the stream",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 2.5),
)


class QueueDown(Exception):
    """Redis did not take the vote."""


FOREIGN_ID = "voter_id cookie not issued by this service: a new one is set, vote again"
RATE_LIMITED = "too many votes from this address: wait a minute"


class RateLimiter:
    """Per client address token bucket: `per_minute` votes a minute, bursts of the same size.

    In memory, per process: with P processes and I instances a client may reach P x I times the
    limit at most (one process usually serves one keep-alive connection, so about the limit).
    The table is bounded (least recently seen addresses are forgotten first).
    """

    def __init__(self, per_minute: int, max_clients: int = 100_000):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.lock = threading.Lock()

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.pop(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self.buckets[client] = (tokens - 1.0 if allowed else tokens, now)
            if len(self.buckets) > self.max_clients:
                self.buckets.popitem(last=False)
            return allowed


def client_address(environ, forwarded_hops: int) -> str:
    """REMOTE_ADDR, or the address FORWARDED_HOPS trusted proxies saw (the ALB appends one)."""
    if forwarded_hops:
        hops = [h.strip() for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if len(hops) >= forwarded_hops:
            return hops[-forwarded_hops]
    return environ.get("REMOTE_ADDR", "")


def parse_json(body: bytes):
    """The body as JSON, or None for anything that is not (bad bytes, bad syntax, nested too deep)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # 4 KiB of '[' is a RecursionError, not a ValueError
        return None


def create_app(settings, client=None, *, fast_path: bool = True) -> Flask:
    app = Flask(__name__)
    no_redirects(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    options = settings.options
    stream = settings.redis.stream
    client = client or make_client(settings.redis, client_name="votingapp-vote")

    ids = VoterIds(settings.voter_id_secret)
    limiter = RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else None

    def voter_id_from(cookie: str) -> tuple[str, bool]:
        if ids.accepts(cookie):
            return cookie, False
        return ids.issue(), True

    def voter_id() -> tuple[str, bool]:
        return voter_id_from(request.cookies.get(VOTER_COOKIE, ""))

    def refusal_of(vid: str, cookie: str | None, environ) -> str | None:
        """Why this vote is refused before it reaches the queue (None: it is not)."""
        if ids.signed and cookie and vid != cookie:
            VOTES.labels("foreign_id").inc()
            return FOREIGN_ID
        if limiter is not None and not limiter.allow(client_address(environ, settings.forwarded_hops)):
            VOTES.labels("rate_limited").inc()
            return RATE_LIMITED
        return None

    def refusal(vid: str) -> str | None:
        return refusal_of(vid, request.cookies.get(VOTER_COOKIE), request.environ)

    def set_cookie(response, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            max_age=COOKIE_MAX_AGE,
            path=request.script_root or "/",
            httponly=True,
            samesite="Lax",
            secure=settings.cookie_secure,
        )

    def with_cookie(response, vid: str, new: bool):
        if new:
            set_cookie(response, VOTER_COOKIE, vid)
        return response

    def append(vid: str, choice: str) -> str:
        started = time.perf_counter()
        try:
            entry_id = client.xadd(stream, {"voter_id": vid, "vote": choice})
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
            VOTES.labels("queue_down").inc()
            log.warning("vote not queued: %s", exc.__class__.__name__)
            raise QueueDown() from exc
        XADD_SECONDS.observe(time.perf_counter() - started)
        VOTES.labels("accepted").inc()
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def remembered_choice(new_voter: bool) -> str | None:
        # A display hint for this browser, not the record (that is in PostgreSQL): a new voter id
        # has not voted, whatever an older cookie says, and an option no longer offered is dropped.
        if new_voter:
            return None
        choice = request.cookies.get(CHOICE_COOKIE)
        return choice if choice in options else None

    def page(status: int = 200, **context):
        return render_template("vote.html", options=options, result_url=settings.result_url, **context), status

    def ballot_response(status: int, vid: str, new: bool, *, voted: str | None = None, error: str | None = None):
        chosen = voted or remembered_choice(new)
        body, status = page(status, chosen=chosen, voted=voted, error=error)
        response = with_cookie(app.make_response((body, status)), vid, new)
        if voted:
            set_cookie(response, CHOICE_COOKIE, voted)
        elif new and CHOICE_COOKIE in request.cookies:
            response.delete_cookie(CHOICE_COOKIE, path=request.script_root or "/")
        return response

    @app.get("/")
    def ballot():
        vid, new = voter_id()
        return ballot_response(200, vid, new)

    @app.post("/")
    def vote_form():
        vid, new = voter_id()
        choice = request.form.get("vote", "")
        refused = refusal(vid)
        if refused:
            status = 429 if refused == RATE_LIMITED else 400
            return ballot_response(status, vid, new, error=refused[0].upper() + refused[1:] + ".")
        if choice not in options:
            VOTES.labels("rejected").inc()
            error = f"Unknown option {choice[:40]!r}: choose one of {', '.join(options)}."
            return ballot_response(400, vid, new, error=error)
        try:
            append(vid, choice)
        except QueueDown:
            return ballot_response(503, vid, new, error=QUEUE_DOWN_PAGE)
        return ballot_response(200, vid, new, voted=choice)

    @app.post("/api/vote")
    def vote_api():
        vid, new = voter_id()
        refused = refusal(vid)
        if refused:
            response = jsonify(error=refused)
            response.status_code = 429 if refused == RATE_LIMITED else 400
            return with_cookie(response, vid, new)
        data = parse_json(request.get_data(cache=False))
        if not isinstance(data, dict) or not isinstance(data.get("vote"), str):
            VOTES.labels("rejected").inc()
            return jsonify(error='body must be JSON like {"vote": "<option>"}', options=list(options)), 400
        choice = data["vote"]
        if choice not in options:
            VOTES.labels("rejected").inc()
            return jsonify(error=f"unknown option {choice[:40]!r}", options=list(options)), 400
        try:
            entry_id = append(vid, choice)
        except QueueDown:
            # The voter's id goes with the 503 too: the append may have reached Redis before the
            # connection broke, and only a retry as the same voter is sure to count once.
            response = jsonify(error=QUEUE_DOWN_API)
            response.status_code = 503
            return with_cookie(response, vid, new)
        response = jsonify(voter_id=vid, vote=choice, id=entry_id)
        response.status_code = 202
        return with_cookie(response, vid, new)

    def queue_problem():
        try:
            client.ping()
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
            # the public answer names the dependency; its address and the error stay in the log
            log.warning("readiness: redis unavailable: %s: %s", exc.__class__.__name__, str(exc)[:200])
            return "redis unavailable (the reason is in the service log)"
        return None

    add_operational_routes(app, queue_problem)

    @app.errorhandler(413)
    def too_large(_exc):
        VOTES.labels("rejected").inc()
        message = f"request body larger than {MAX_BODY_BYTES} bytes"
        if request.path.endswith("/api/vote"):
            return jsonify(error=message), 413
        return page(413, error=message.capitalize() + ".")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith("/api/"):
            return jsonify(error=exc.description), exc.code
        return exc

    flask_wsgi = app.wsgi_app
    bad_body = {"error": 'body must be JSON like {"vote": "<option>"}', "options": list(options)}

    count_response = app.extensions["votingapp.count_response"]

    def answer(start_response, status: str, payload: dict, cookie: str | None = None):
        count_response(int(status[:3]))
        # the bytes Flask's jsonify writes (compact, ASCII, a final newline): one contract, two paths
        body = json.dumps(payload, separators=(",", ":")).encode() + b"\n"
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        if cookie is not None:
            headers.append(("Set-Cookie", cookie))
        start_response(status, headers)
        return [body]

    def fast_vote_api(environ, start_response):
        """POST /api/vote without Flask's request and response objects, the same contract.

        Flask's dispatch alone cost 104 us of CPU a request here (a one-route Flask app: the same),
        this path 15 us and the bare probe 5 us (in-process, Redis answered by a stub): the
        request's own work is small, so the framework was most of the vote tier's cost
        (docs/performance.md). Only the plain case comes here (POST, the exact path, a
        Content-Length within the limit); anything else (chunked or oversized bodies, other
        methods and routes) is Flask's, with its 404/405/413 answers.
        """
        if environ.get("PATH_INFO") != "/api/vote" or environ.get("REQUEST_METHOD") != "POST":
            return flask_wsgi(environ, start_response)
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or not 0 < int(length) <= MAX_BODY_BYTES:
            return flask_wsgi(environ, start_response)
        cookie = parse_cookie(environ.get("HTTP_COOKIE", "")).get(VOTER_COOKIE)
        vid, new = voter_id_from(cookie or "")
        set_voter = (
            dump_cookie(
                VOTER_COOKIE, vid, max_age=COOKIE_MAX_AGE, path=environ.get("SCRIPT_NAME", "").rstrip("/") or "/",
                httponly=True, samesite="Lax", secure=settings.cookie_secure,
            )
            if new
            else None
        )  # fmt: skip
        refused = refusal_of(vid, cookie, environ)
        if refused:
            status = "429 TOO MANY REQUESTS" if refused == RATE_LIMITED else "400 BAD REQUEST"
            return answer(start_response, status, {"error": refused}, set_voter)
        data = parse_json(environ["wsgi.input"].read(int(length)))
        if not isinstance(data, dict) or not isinstance(data.get("vote"), str):
            VOTES.labels("rejected").inc()
            return answer(start_response, "400 BAD REQUEST", bad_body)
        choice = data["vote"]
        if choice not in options:
            VOTES.labels("rejected").inc()
            unknown = {"error": f"unknown option {choice[:40]!r}", "options": list(options)}
            return answer(start_response, "400 BAD REQUEST", unknown)
        try:
            entry_id = append(vid, choice)
        except QueueDown:
            return answer(start_response, "503 SERVICE UNAVAILABLE", {"error": QUEUE_DOWN_API}, set_voter)
        return answer(start_response, "202 ACCEPTED", {"voter_id": vid, "vote": choice, "id": entry_id}, set_voter)

    app.wsgi_app = PrefixMiddleware(fast_vote_api if fast_path else flask_wsgi, settings.web.prefix)
    return app
