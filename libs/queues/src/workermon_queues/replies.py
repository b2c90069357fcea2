"""Redis reply values as text, numbers and times, whatever the client's decode setting.

Nothing here raises on a value another program wrote badly: bytes that are not UTF-8 are decoded with
U+FFFD replacement characters, and a number or time that does not read as one is None ("unknown").
"""

from __future__ import annotations

import math

from redis.exceptions import ResponseError

MAX_EPOCH_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z, the last instant a google.protobuf.Timestamp can hold."""


def text(value: object) -> str:
    """A Redis reply value as text ("" for a missing one); bytes that are not UTF-8 are replaced."""
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def is_utf8(value: object) -> bool:
    """False only for bytes that are not valid UTF-8 (what `text` shows with replacement characters)."""
    if not isinstance(value, bytes):
        return True
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def integer(value: object) -> int | None:
    """A Redis reply value as an int (None when missing or not a number; "12.0" reads as 12)."""
    if value is None:
        return None
    try:
        return int(float(text(value)))
    except (ValueError, OverflowError):
        return None


def epoch_ms(value: object) -> int | None:
    """A time in ms since the epoch, as BullMQ stores them; None when missing or not a time.

    Not a time: anything that is not a finite number (`abc`, "", `1e999`), a negative one, or one past
    the year 9999 (no timestamp on the wire can hold it).
    """
    if value is None:
        return None
    try:
        number = float(text(value))
    except ValueError:
        return None
    if not math.isfinite(number) or not 0 <= number <= MAX_EPOCH_MS:
        return None
    return int(number)


def wrong_type(reply: object) -> bool:
    """True for the error Redis answers a command given a key of another type (WRONGTYPE)."""
    return isinstance(reply, ResponseError) and str(reply).startswith("WRONGTYPE")
