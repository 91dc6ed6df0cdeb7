"""Bench only: a module-level WSGI callable, the target granian's workers import.

GRANIAN_APP=vote (default) is the vote app; GRANIAN_APP=probe the bare probe of vote_probe.py,
so the Flask app can be compared with the probe under the same server.
"""

import os

from votingapp import config, vote

settings = config.load_or_exit(config.vote_settings, "vote")
if os.environ.get("GRANIAN_APP") == "probe":
    from vote_probe import probe_app

    app = probe_app(settings)
else:
    app = vote.create_app(settings)
