"""The one definition of a valid voter id, for the vote service (text) and the worker (bytes).

fullmatch, never `$`: `$` also matches before a trailing newline, and Werkzeug decodes `\\012`
inside a quoted cookie value into one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid

VOTER_ID_PATTERN = r"[A-Za-z0-9_-]{8,64}"
VOTER_ID_RE = re.compile(VOTER_ID_PATTERN)
VOTER_ID_BYTES_RE = re.compile(VOTER_ID_PATTERN.encode())
VOTER_ID_RULE = "8-64 of A-Z a-z 0-9 _ -"


def valid_voter_id(value: str) -> bool:
    return VOTER_ID_RE.fullmatch(value) is not None


def valid_voter_id_bytes(value: bytes) -> bool:
    return VOTER_ID_BYTES_RE.fullmatch(value) is not None


class VoterIds:
    """Issues voter ids and recognises its own.

    Without a secret an id is 32 random hex digits and any well-formed id is accepted (the
    client may choose it). With VOTER_ID_SECRET an id is `<32 hex>_<22 chars of HMAC-SHA256>`
    (55 characters, still a valid voter id for the worker) and only ids this key signed are
    accepted, so a client can no longer pick ids, or anyone else's.
    """

    SIG_CHARS = 22

    def __init__(self, secret: str = ""):
        self.key = secret.encode() if secret else b""

    @property
    def signed(self) -> bool:
        return bool(self.key)

    def _sig(self, base: str) -> str:
        digest = hmac.new(self.key, base.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[: self.SIG_CHARS]

    def issue(self) -> str:
        base = uuid.uuid4().hex
        return f"{base}_{self._sig(base)}" if self.key else base

    def accepts(self, value: str) -> bool:
        if not valid_voter_id(value):
            return False
        if not self.key:
            return True
        base, sep, sig = value[:32], value[32:33], value[33:]
        return sep == "_" and len(sig) == self.SIG_CHARS and hmac.compare_digest(sig, self._sig(base))
