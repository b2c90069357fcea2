"""Fixtures of tests/queues (defined in tests/support/bull.py, which other packages share)."""

from tests.support.bull import backend, bull, bull_prefix, jobs

__all__ = ["backend", "bull", "bull_prefix", "jobs"]
