"""Bench only: the vote app as a module-level WSGI callable, the target granian's workers import."""

from votingapp import config, vote

app = vote.create_app(config.load_or_exit(config.vote_settings, "vote"))
