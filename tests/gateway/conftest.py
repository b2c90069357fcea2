"""Fixtures of tests/gateway (defined in tests/support/gateway.py, which other packages share)."""

from tests.support.gateway import _keep_test_logging, gateway

__all__ = ["_keep_test_logging", "gateway"]
