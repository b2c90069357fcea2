"""How an incident is named inside a message another system keeps: "[incident #42]".

PagerDuty titles its incident with the trigger's summary and sends that title back in its webhooks, but
not the dedup_key: the tag at the end of the summary is how an acknowledgement made in PagerDuty finds
the incident it is about. The notifier writes the tag; the gateway's PagerDuty receiver reads it.
"""

from __future__ import annotations

import re

_TAG = re.compile(r"\[incident #([1-9][0-9]{0,17})\]\s*$")


def incident_tag(incident_id: int) -> str:
    """The tag naming `incident_id`, e.g. "[incident #42]"."""
    return f"[incident #{incident_id}]"


def tagged_incident(text: str) -> int | None:
    """The incident id a text ends with a tag for, or None."""
    match = _TAG.search(text)
    return int(match.group(1)) if match else None
