"""The messages each channel type sends, rendered from a `NotifyEvent` snapshot.

* webhook: Alertmanager's webhook payload (version 4) with one alert, plus `reason` and the
  incident's id and transition sequence; or, with a `template`, whatever JSON the template renders
  (its context: `payload` (that Alertmanager payload), `incident`, `reason`, `status`, `channel`,
  `link`), so a chat tool that wants its own shape can be reached without code.
* slack: an incoming-webhook message, `text` (the notification fallback) and Block Kit `blocks`.
* kakaowork: an incoming-webhook message, `text` (the push preview) and KakaoWork Block Kit
  `blocks` (header, text, description, divider and, with a link, a button).
* email: a subject and a multipart/alternative body, plain text and HTML.
* pagerduty: an Events API v2 alert event: `trigger` (fired, reminder, escalated) with the incident
  as its payload, `acknowledge`, `resolve`; `dedup_key` is the incident's fingerprint, so all the
  events of one incident act on one PagerDuty alert.

A group (FIRED notifications of one route to one channel, sent together) is rendered from its first
event and the `group` of the others: the webhook's `alerts` holds one alert each, Slack, KakaoWork
and e-mail list every incident, and templates get `incidents` (all of them) beside `incident` (the
first). PagerDuty channels never group: each incident is its own alert.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from jinja2 import TemplateError

from workermon_core.incident_ref import incident_tag

from .channels import Channel, ChannelType
from .events import NotifyEvent, TransitionKind, rfc3339

# Alertmanager's endsAt for an alert that has not ended.
ZERO_TIME = "0001-01-01T00:00:00Z"
_SLACK_HEADER_MAX = 150
_SLACK_TEXT_MAX = 2900
_KAKAO_HEADER_MAX = 20
# Limits of PagerDuty's Events API v2.
PAGERDUTY_SUMMARY_MAX = 1024
PAGERDUTY_DEDUP_KEY_MAX = 255
_PAGERDUTY_SEVERITY = {"CRITICAL": "critical", "WARNING": "warning", "INFO": "info"}


class TemplateRenderError(ValueError):
    """A channel's template failed, or did not produce JSON (retrying cannot help)."""


def sample_event() -> NotifyEvent:
    """A made-up incident, to check templates when the configuration is read."""
    at = datetime(2031, 3, 4, 10, 30, tzinfo=UTC)
    return NotifyEvent(
        seq=1,
        kind=TransitionKind.FIRED,
        at=at,
        incident_id=1,
        fingerprint="0123456789abcdef",
        type="FAILURE_RATE",
        severity="CRITICAL",
        status="ACTIVE",
        queue="emails",
        worker_id=None,
        title="Failure rate of emails is 12% (threshold 5%)",
        description="60 of 500 jobs failed in the last 10 minutes.",
        recommended_action="Look at the latest failures of the queue.",
        labels={"team": "ops"},
        started_at=at,
        resolved_at=None,
    )


def _headline(event: NotifyEvent) -> str:
    prefixes = {
        TransitionKind.FIRED: "FIRING",
        TransitionKind.REMINDER: "STILL FIRING",
        TransitionKind.ACKNOWLEDGED: "ACKNOWLEDGED",
        TransitionKind.RESOLVED: "RESOLVED",
        TransitionKind.ESCALATED: "ESCALATED",
    }
    return f"[{prefixes[event.kind]}] {event.severity}: {event.title}"


def _group_headline(events: Sequence[NotifyEvent]) -> str:
    """The headline of a group's message: how many incidents fired, and the worst severity seen."""
    order = ("CRITICAL", "WARNING", "INFO")
    severities = [e.severity for e in events]
    worst = min(severities, key=lambda s: order.index(s) if s in order else len(order))
    return f"[FIRING] {len(events)} incidents, up to {worst}"


def _line(event: NotifyEvent) -> str:
    """One incident of a group on one line: severity, title, queue or worker, id."""
    where = _subject(event)
    return (
        f"{event.severity}: {event.title}"
        + (f" ({where})" if where else "")
        + f" · incident {event.incident_id}"
    )


def _subject(event: NotifyEvent) -> str:
    parts = []
    if event.queue:
        parts.append(f"queue {event.queue}")
    if event.worker_id:
        parts.append(f"worker {event.worker_id}")
    return ", ".join(parts)


def _facts(event: NotifyEvent, link: str | None) -> list[tuple[str, str]]:
    """The label/value lines every human-readable message shows, in order."""
    facts = [("Severity", event.severity), ("Type", event.type), ("Status", event.status)]
    if event.queue:
        facts.append(("Queue", event.queue))
    if event.worker_id:
        facts.append(("Worker", event.worker_id))
    facts.append(("Started", rfc3339(event.started_at) or "-"))
    if event.resolved_at is not None:
        facts.append(("Resolved", rfc3339(event.resolved_at)))
    facts.append(("Incident", str(event.incident_id)))
    if link:
        facts.append(("Link", link))
    return facts


# --- generic webhook ------------------------------------------------------------------------------


def alert_labels(event: NotifyEvent) -> dict[str, str]:
    """The alert's labels: alertname (the rule type), severity, queue and worker, then the incident's."""
    labels = {"alertname": event.type, "severity": event.severity.lower()}
    if event.queue:
        labels["queue"] = event.queue
    if event.worker_id:
        labels["worker_id"] = event.worker_id
    for key, value in event.labels.items():
        labels.setdefault(key, value)
    return labels


def _annotations(event: NotifyEvent) -> dict[str, str]:
    annotations = {"summary": event.title, "description": event.description}
    if event.recommended_action:
        annotations["recommended_action"] = event.recommended_action
    return annotations


def _alert(event: NotifyEvent, channel: Channel) -> dict[str, Any]:
    """One Alertmanager alert for one incident."""
    return {
        "status": "resolved" if event.resolved else "firing",
        "labels": alert_labels(event),
        "annotations": _annotations(event),
        "startsAt": rfc3339(event.started_at) or rfc3339(event.at),
        "endsAt": rfc3339(event.resolved_at) if event.resolved_at is not None else ZERO_TIME,
        "generatorURL": channel.link_for(event.incident_id) or "",
        "fingerprint": event.fingerprint,
    }


def _common(maps: Sequence[dict[str, str]]) -> dict[str, str]:
    """The pairs every map has (Alertmanager's commonLabels and commonAnnotations)."""
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def webhook_payload(
    event: NotifyEvent, channel: Channel, group: Sequence[NotifyEvent] = ()
) -> dict[str, Any]:
    """Alertmanager's webhook payload (one alert per incident of the group), with the `reason`."""
    status = "resolved" if event.resolved else "firing"
    events = [event, *group]
    alerts = [_alert(e, channel) for e in events]
    link = channel.link_for(event.incident_id) or ""
    ids = ",".join(str(e.incident_id) for e in events)
    group_key = f'{{}}:{{incident="{ids}"}}' if group else f'{{}}:{{incident="{event.incident_id}"}}'
    types = {e.type for e in events}
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": channel.name,
        "groupLabels": {"alertname": event.type} if len(types) == 1 else {},
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": link,
        "alerts": alerts,
        "reason": event.reason,
        "incidentId": event.incident_id,
        "incidentStatus": event.status,
        "sequence": event.seq,
        "notifiedAt": rfc3339(event.at),
    }


def render_template(channel: Channel, event: NotifyEvent, group: Sequence[NotifyEvent] = ()) -> str:
    """The channel template's output for `event` (and its group), checked to be JSON; TemplateRenderError
    if not."""
    if channel.template is None:
        raise TemplateRenderError("the channel has no template")
    payload = webhook_payload(event, channel, group)
    incident = json.loads(event.to_json())
    try:
        text = channel.template.render(
            payload=payload,
            incident=incident,
            incidents=[incident, *(json.loads(e.to_json()) for e in group)],
            reason=event.reason,
            status=payload["status"],
            channel=channel.name,
            link=channel.link_for(event.incident_id) or "",
        )
    except TemplateError as exc:
        raise TemplateRenderError(f"rendering failed: {exc}") from None
    try:
        json.loads(text)
    except ValueError as exc:
        raise TemplateRenderError(f"did not produce JSON: {exc}") from None
    return text


# --- Slack ----------------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn gives &, < and > a meaning of their own; everything else is shown as is.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(event: NotifyEvent, channel: Channel, group: Sequence[NotifyEvent] = ()) -> dict[str, Any]:
    """A Slack incoming-webhook message: fallback `text` and Block Kit `blocks`."""
    if group:
        return _slack_group([event, *group], channel)
    link = channel.link_for(event.incident_id)
    headline = _headline(event)
    subject = _subject(event)
    text = headline + (f" ({subject})" if subject else "")
    fields = [
        {"type": "mrkdwn", "text": f"*{name}*\n{_slack_escape(value)}"}
        for name, value in _facts(event, None)
        if name not in ("Incident",)
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(headline, _SLACK_HEADER_MAX)}},
        # Slack shows at most 10 fields in a section.
        {"type": "section", "fields": fields[:10]},
    ]
    if event.description:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(_slack_escape(event.description), _SLACK_TEXT_MAX)},
            }
        )
    if event.recommended_action:
        action = "*Recommended action*\n" + _slack_escape(event.recommended_action)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(action, _SLACK_TEXT_MAX)}})
    if link:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"<{link}|Open incident {event.incident_id}>",
                },
            }
        )
    context = f"incident {event.incident_id} · {event.reason} · {rfc3339(event.at)}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(context)}]})
    return {"text": _slack_escape(text), "blocks": blocks}


def _slack_group(events: Sequence[NotifyEvent], channel: Channel) -> dict[str, Any]:
    """A Slack message listing every incident of a group, one section each."""
    headline = _group_headline(events)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(headline, _SLACK_HEADER_MAX)}}
    ]
    # Slack accepts at most 50 blocks: header, up to 48 incidents, the context line.
    for item in events[:48]:
        text = f"*{_slack_escape(_line(item))}*"
        link = channel.link_for(item.incident_id)
        if link:
            text += f"\n<{link}|Open incident {item.incident_id}>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _SLACK_TEXT_MAX)}})
    first = events[0]
    context = f"{len(events)} incidents · {first.reason} · {rfc3339(first.at)}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(context)}]})
    text = headline + ": " + "; ".join(_line(e) for e in events)
    return {"text": _slack_escape(_cut(text, _SLACK_TEXT_MAX)), "blocks": blocks}


# --- KakaoWork ------------------------------------------------------------------------------------


def kakaowork_payload(
    event: NotifyEvent, channel: Channel, group: Sequence[NotifyEvent] = ()
) -> dict[str, Any]:
    """A KakaoWork incoming-webhook message: preview `text` and Block Kit `blocks`."""
    if group:
        return _kakaowork_group([event, *group], channel)
    link = channel.link_for(event.incident_id)
    style = "blue" if event.resolved else "yellow" if event.kind is TransitionKind.ACKNOWLEDGED else "red"
    header = {
        TransitionKind.FIRED: "Incident",
        TransitionKind.REMINDER: "Still firing",
        TransitionKind.ACKNOWLEDGED: "Acknowledged",
        TransitionKind.RESOLVED: "Resolved",
        TransitionKind.ESCALATED: "Escalated",
    }[event.kind]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _cut(f"{header} · {event.severity}", _KAKAO_HEADER_MAX), "style": style},
        {"type": "text", "text": event.title, "markdown": False},
    ]
    for name, value in _facts(event, None):
        blocks.append(
            {
                "type": "description",
                "term": name,
                "content": {"type": "text", "text": value, "markdown": False},
                "accent": True,
            }
        )
    if event.description:
        blocks += [{"type": "divider"}, {"type": "text", "text": event.description, "markdown": False}]
    if event.recommended_action:
        blocks.append(
            {"type": "text", "text": "Recommended action: " + event.recommended_action, "markdown": False}
        )
    if link:
        blocks.append(
            {
                "type": "button",
                "text": "Open incident",
                "style": "default",
                "action_type": "open_system_browser",
                "value": link,
            }
        )
    return {"text": _headline(event), "blocks": blocks}


def _kakaowork_group(events: Sequence[NotifyEvent], channel: Channel) -> dict[str, Any]:
    """A KakaoWork message listing every incident of a group."""
    headline = _group_headline(events)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _cut(f"{len(events)} incidents", _KAKAO_HEADER_MAX), "style": "red"}
    ]
    for item in events:
        blocks.append({"type": "text", "text": _line(item), "markdown": False})
        link = channel.link_for(item.incident_id)
        if link:
            blocks.append(
                {
                    "type": "button",
                    "text": f"Open incident {item.incident_id}",
                    "style": "default",
                    "action_type": "open_system_browser",
                    "value": link,
                }
            )
    return {"text": headline, "blocks": blocks}


# --- e-mail ---------------------------------------------------------------------------------------


def email_message(event: NotifyEvent, channel: Channel, group: Sequence[NotifyEvent] = ()) -> EmailMessage:
    """The e-mail: subject, plain text and HTML alternatives, sender and recipients from smtp."""
    if channel.smtp is None:
        raise ValueError(f"channel {channel.name!r} has no smtp settings")
    if group:
        return _group_email([event, *group], channel)
    link = channel.link_for(event.incident_id)
    subject = _headline(event)
    where = _subject(event)
    if where:
        subject += f" ({where})"
    facts = _facts(event, link)
    width = max(len(name) for name, _ in facts)
    lines = [_headline(event), ""]
    lines += [f"{name.ljust(width)}  {value}" for name, value in facts]
    if event.description:
        lines += ["", event.description]
    if event.recommended_action:
        lines += ["", "Recommended action:", event.recommended_action]
    lines += ["", f"-- Worker Monitor ({event.reason}, event {event.seq})"]
    rows = "".join(
        f"<tr><th align='left' style='padding-right:12px'>{html.escape(name)}</th>"
        f"<td>{_html_value(name, value)}</td></tr>"
        for name, value in facts
    )
    parts = [f"<h2>{html.escape(_headline(event))}</h2>", f"<table>{rows}</table>"]
    if event.description:
        parts.append(f"<p>{html.escape(event.description)}</p>")
    if event.recommended_action:
        parts.append(f"<p><strong>Recommended action:</strong> {html.escape(event.recommended_action)}</p>")
    parts.append(f"<p style='color:#888'>Worker Monitor ({html.escape(event.reason)}, event {event.seq})</p>")
    message = EmailMessage()
    message["Subject"] = subject.replace("\n", " ")
    message["From"] = channel.smtp.sender
    message["To"] = ", ".join(channel.smtp.to)
    message["Date"] = formatdate(event.at.timestamp(), usegmt=True)
    message["Message-ID"] = make_msgid(idstring=f"incident-{event.incident_id}-{event.seq}")
    message["X-Workermon-Incident"] = str(event.incident_id)
    message["X-Workermon-Reason"] = event.reason
    message.set_content("\n".join(lines) + "\n")
    message.add_alternative("<html><body>" + "".join(parts) + "</body></html>\n", subtype="html")
    return message


def _group_email(events: Sequence[NotifyEvent], channel: Channel) -> EmailMessage:
    """One e-mail for a group: every incident's facts, one section each."""
    assert channel.smtp is not None
    first = events[0]
    headline = _group_headline(events)
    lines = [headline]
    parts = [f"<h2>{html.escape(headline)}</h2>"]
    for item in events:
        facts = _facts(item, channel.link_for(item.incident_id))
        width = max(len(name) for name, _ in facts)
        lines += ["", _headline(item)]
        lines += [f"{name.ljust(width)}  {value}" for name, value in facts]
        if item.description:
            lines.append(item.description)
        rows = "".join(
            f"<tr><th align='left' style='padding-right:12px'>{html.escape(name)}</th>"
            f"<td>{_html_value(name, value)}</td></tr>"
            for name, value in facts
        )
        parts.append(f"<h3>{html.escape(_headline(item))}</h3><table>{rows}</table>")
        if item.description:
            parts.append(f"<p>{html.escape(item.description)}</p>")
    lines += ["", f"-- Worker Monitor ({first.reason}, {len(events)} incidents)"]
    ids = ",".join(str(e.incident_id) for e in events)
    message = EmailMessage()
    message["Subject"] = (headline + ": " + "; ".join(e.title for e in events)).replace("\n", " ")[:250]
    message["From"] = channel.smtp.sender
    message["To"] = ", ".join(channel.smtp.to)
    message["Date"] = formatdate(first.at.timestamp(), usegmt=True)
    message["Message-ID"] = make_msgid(idstring=f"incidents-{first.incident_id}-{first.seq}")
    message["X-Workermon-Incident"] = ids
    message["X-Workermon-Reason"] = first.reason
    message.set_content("\n".join(lines) + "\n")
    message.add_alternative("<html><body>" + "".join(parts) + "</body></html>\n", subtype="html")
    return message


def _html_value(name: str, value: str) -> str:
    if name == "Link":
        return f"<a href='{html.escape(value, quote=True)}'>{html.escape(value)}</a>"
    return html.escape(value)


# --- PagerDuty ------------------------------------------------------------------------------------


def pagerduty_action(kind: TransitionKind) -> str:
    """The Events API v2 event_action of a transition: every kind but these two is news (trigger)."""
    if kind is TransitionKind.ACKNOWLEDGED:
        return "acknowledge"
    if kind is TransitionKind.RESOLVED:
        return "resolve"
    return "trigger"


def pagerduty_summary(event: NotifyEvent) -> str:
    """The title, cut to fit, ending with the incident's tag: PagerDuty titles its incident with the
    summary and sends only that title back in its webhooks, so the tag is how the gateway finds ours."""
    tag = incident_tag(event.incident_id)
    title = event.title or f"{event.type} incident"
    return f"{_cut(title, PAGERDUTY_SUMMARY_MAX - len(tag) - 1)} {tag}"


def pagerduty_event(event: NotifyEvent, channel: Channel) -> dict[str, Any]:
    """An Events API v2 alert event; acknowledge and resolve carry only the keys PagerDuty reads."""
    if channel.routing_key is None:
        raise ValueError(f"channel {channel.name!r} has no routing_key")
    action = pagerduty_action(event.kind)
    body: dict[str, Any] = {
        "routing_key": channel.routing_key.reveal(),
        "event_action": action,
        # Fingerprints are short hashes; the cut only guards the documented limit.
        "dedup_key": event.fingerprint[:PAGERDUTY_DEDUP_KEY_MAX],
    }
    if action != "trigger":
        return body
    details: dict[str, Any] = {
        "incident_id": event.incident_id,
        "status": event.status,
        "reason": event.reason,
        "description": event.description,
        "recommended_action": event.recommended_action,
        "value": event.value,
        "threshold": event.threshold,
        "affected_jobs": event.affected_jobs,
        "labels": dict(event.labels),
    }
    if event.worker_id:
        details["worker_id"] = event.worker_id
    payload: dict[str, Any] = {
        "summary": pagerduty_summary(event),
        "source": event.queue or event.worker_id or "worker-monitor",
        # Only our three severities exist; "error" is PagerDuty's middle ground for anything else.
        "severity": _PAGERDUTY_SEVERITY.get(event.severity.upper(), "error"),
        "timestamp": rfc3339(event.at),
        "group": event.type,
        "class": event.type.lower().replace("_", " "),
        "custom_details": {k: v for k, v in details.items() if v is not None},
    }
    if event.queue:
        payload["component"] = event.queue
    body["payload"] = payload
    body["client"] = "Worker Monitor"
    link = channel.link_for(event.incident_id)
    if link:
        body["client_url"] = link
        body["links"] = [{"href": link, "text": f"Incident {event.incident_id} in Worker Monitor"}]
    return body


# --- by channel type ------------------------------------------------------------------------------


def http_body(event: NotifyEvent, channel: Channel, group: Sequence[NotifyEvent] = ()) -> bytes:
    """The JSON body an HTTP channel posts for `event` and its group (the template's output when it
    has one)."""
    if channel.template is not None:
        return render_template(channel, event, group).encode()
    if channel.type is ChannelType.SLACK:
        payload = slack_payload(event, channel, group)
    elif channel.type is ChannelType.KAKAOWORK:
        payload = kakaowork_payload(event, channel, group)
    elif channel.type is ChannelType.WEBHOOK:
        payload = webhook_payload(event, channel, group)
    elif channel.type is ChannelType.PAGERDUTY:
        payload = pagerduty_event(event, channel)
    else:
        raise ValueError(f"channel {channel.name!r} is not an HTTP channel")
    return json.dumps(payload, ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What an HTTP channel posts: where, the JSON body, and the channel's own headers."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def http_request(event: NotifyEvent, channel: Channel, group: Sequence[NotifyEvent] = ()) -> HttpRequest:
    """The POST an HTTP channel makes for `event` and its group (its URL, body and configured headers)."""
    if channel.url is None:
        raise ValueError(f"channel {channel.name!r} has no url")
    headers = {name: value.reveal() for name, value in channel.headers.items()}
    return HttpRequest(channel.url.reveal(), http_body(event, channel, group), headers)
