"""Fixtures of tests/faults: the gateway suite's logging guard (tests/support/gateway.py)."""

from tests.support.gateway import _keep_test_logging

__all__ = ["_keep_test_logging"]
