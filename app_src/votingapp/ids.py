"""The one definition of a valid voter id, for the vote service (text) and the worker (bytes).

fullmatch, never `$`: `$` also matches before a trailing newline, and Werkzeug decodes `\\012`
inside a quoted cookie value into one.
"""

from __future__ import annotations

import re

VOTER_ID_PATTERN = r"[A-Za-z0-9_-]{8,64}"
VOTER_ID_RE = re.compile(VOTER_ID_PATTERN)
VOTER_ID_BYTES_RE = re.compile(VOTER_ID_PATTERN.encode())
VOTER_ID_RULE = "8-64 of A-Z a-z 0-9 _ -"


def valid_voter_id(value: str) -> bool:
    return VOTER_ID_RE.fullmatch(value) is not None


def valid_voter_id_bytes(value: bytes) -> bool:
    return VOTER_ID_BYTES_RE.fullmatch(value) is not None
