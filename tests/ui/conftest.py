"""Fixtures of tests/ui (defined in tests/support/ui.py, which other packages share)."""

from tests.support.ui import browser, ui, ui_gateway, workload

__all__ = ["browser", "ui", "ui_gateway", "workload"]
