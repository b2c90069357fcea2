"""Redis reply values as text and numbers, whatever the client's decode setting."""

from __future__ import annotations


def text(value: object) -> str:
    """A Redis reply value as text ("" for a missing one); bytes that are not UTF-8 are replaced."""
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def integer(value: object) -> int | None:
    """A Redis reply value as an int (None when missing or not a number; "12.0" reads as 12)."""
    if value is None:
        return None
    try:
        return int(float(text(value)))
    except (ValueError, OverflowError):
        return None
