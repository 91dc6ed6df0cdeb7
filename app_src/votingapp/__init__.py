"""Distributed voting app: vote -> Redis Stream -> worker -> PostgreSQL -> result."""

__version__ = "1.0.0"
