"""Fixtures of tests/heartbeat (defined in tests/support/heartbeat.py, which other packages share)."""

from tests.support.heartbeat import hb

__all__ = ["hb"]
