"""Notification channel configuration and the payload of each channel type (no network)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.suites import Config
from workermon_core.settings import ConfigError
from workermon_incidents.notify.channels import ChannelType, Secret, parse_channels
from workermon_incidents.notify.events import NotifyEvent, TransitionKind, kind_of, snapshot
from workermon_incidents.notify.payloads import (
    ZERO_TIME,
    email_message,
    http_body,
    kakaowork_payload,
    sample_event,
    slack_payload,
    webhook_payload,
)
from workermon_incidents.settings import IncidentSettings

SLACK = {"name": "ops-slack", "type": "slack", "url": "https://hooks.slack.com/services/T0/B0/SECRETTOKEN"}
EMAIL = {
    "name": "mail",
    "type": "email",
    "smtp": {
        "host": "smtp.example.com",
        "port": 587,
        "starttls": True,
        "username": "alerts",
        "password": "hunter2-password",
        "from": "alerts@example.com",
        "to": ["ops@example.com", "oncall@example.com"],
    },
}


def _one(item: Mapping[str, object]) -> str:
    return json.dumps([item])


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_channels(text)
    return str(caught.value)


def test_a_full_configuration_parses() -> None:
    text = json.dumps(
        [
            SLACK | {"link": "https://ops.example.com/incidents/{incident_id}"},
            {
                "name": "pager",
                "type": "webhook",
                "url": "https://pager.example.com/hook",
                "headers": {"Authorization": "Bearer abc"},
                "send_resolved": False,
                "timeout_seconds": 5,
                "max_attempts": 8,
            },
            EMAIL,
            {"name": "kakao", "type": "kakaowork", "url": "https://kakaowork.com/bots/hook/abcdef"},
        ]
    )
    slack, pager, mail, kakao = parse_channels(text)
    assert slack.type is ChannelType.SLACK and slack.send_resolved and not slack.send_acknowledged
    assert slack.link_for(42) == "https://ops.example.com/incidents/42"
    assert pager.send_resolved is False and pager.timeout_seconds == 5.0 and pager.max_attempts == 8
    assert pager.headers["Authorization"].reveal() == "Bearer abc"
    assert mail.smtp is not None and mail.smtp.to == ("ops@example.com", "oncall@example.com")
    assert mail.smtp.starttls and not mail.smtp.tls and mail.smtp.sender == "alerts@example.com"
    assert kakao.type is ChannelType.KAKAOWORK and kakao.max_attempts == 5 and kakao.timeout_seconds == 10.0


def test_secrets_never_appear_in_reprs() -> None:
    slack, mail = parse_channels(json.dumps([SLACK, EMAIL]))
    shown = repr(slack) + str(slack) + repr(mail) + slack.target
    assert "SECRETTOKEN" not in shown and "hunter2" not in shown
    assert slack.target == "https://hooks.slack.com/…"
    assert mail.target == "smtp://smtp.example.com:587"
    assert repr(Secret("x")) == "Secret('***')"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"type": "slack", "url": "https://x"}, "channel #1: name: required"),
        ({"name": "a", "type": "teams", "url": "https://x"}, "channel 'a': type: must be one of"),
        ({"name": "a", "type": "slack"}, "channel 'a': url: required"),
        ({"name": "a", "type": "slack", "url": "ftp://x/y"}, "channel 'a': url: must be an http"),
        ({"name": "a", "type": "slack", "url": "https://x", "timeout_seconds": 0}, "'a': timeout_seconds:"),
        ({"name": "a", "type": "webhook", "url": "https://x", "max_attempts": 0}, "'a': max_attempts:"),
        ({"name": "a", "type": "webhook", "url": "https://x", "send_resolved": "yes"}, "'a': send_resolved:"),
        ({"name": "a", "type": "webhook", "url": "https://x", "colour": "red"}, "'a': colour: unknown key"),
        ({"name": "a", "type": "webhook", "url": "https://x", "headers": ["x"]}, "'a': headers:"),
        (
            {"name": "a", "type": "webhook", "url": "https://x", "template": "{{ nope"},
            "'a': template: not a valid",
        ),
        (
            {"name": "a", "type": "webhook", "url": "https://x", "template": "not json"},
            "'a': template: did not",
        ),
        ({"name": "a", "type": "webhook", "url": "https://x", "template": "{{ missing }}"}, "'a': template:"),
        ({"name": "m", "type": "email"}, "channel 'm': smtp: required"),
        ({"name": "m", "type": "email", "smtp": {"host": "h", "from": "a@b"}}, "'m': smtp.to: required"),
        ({"name": "m", "type": "email", "smtp": {"host": "h", "to": ["a@b"]}}, "'m': smtp.from: required"),
        ({"name": "m", "type": "email", "smtp": {"from": "a@b", "to": ["a@b"]}}, "'m': smtp.host: required"),
        (
            {"name": "m", "type": "email", "smtp": {"host": "h", "from": "a@b", "to": ["c@d"], "port": 0}},
            "'m': smtp.port:",
        ),
        (
            {
                "name": "m",
                "type": "email",
                "smtp": {"host": "h", "from": "a@b", "to": ["c@d"], "username": "u"},
            },
            "'m': smtp.password: username and password go together",
        ),
        (
            {"name": "m", "type": "email", "url": "https://x", "smtp": {}},
            "'m': url: email channels are configured by smtp",
        ),
    ],
)
def test_bad_channels_name_the_variable_the_channel_and_the_key(
    item: dict[str, object], expected: str
) -> None:
    message = _error(_one(item))
    assert message.startswith("invalid configuration: WORKERMON_NOTIFY_CHANNELS: ")
    assert expected in message


def test_bad_json_and_duplicates() -> None:
    assert "not valid JSON" in _error("[{")
    assert "must be a JSON list" in _error('{"name": "a"}')
    assert "channel 'ops-slack': name: used by another channel" in _error(json.dumps([SLACK, SLACK]))


def test_errors_never_repeat_a_secret() -> None:
    message = _error(_one({"name": "a", "type": "slack", "url": "hooks.slack.com/services/SECRETTOKEN"}))
    assert "SECRETTOKEN" not in message


def test_load_channels_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert Config(notify_channels="").of(IncidentSettings).channels == []
    (channel,) = Config(notify_channels=_one(SLACK)).of(IncidentSettings).channels
    assert channel.name == "ops-slack"
    path = tmp_path / "channels.json"
    path.write_text(_one(EMAIL))
    (channel,) = Config(notify_channels_file=path).of(IncidentSettings).channels
    assert channel.type is ChannelType.EMAIL
    path.write_text("[1]")
    with pytest.raises(
        ConfigError, match=r"WORKERMON_NOTIFY_CHANNELS_FILE: channel #1: channel: must be a JSON"
    ):
        Config(notify_channels_file=path).of(IncidentSettings)
    with pytest.raises(ConfigError, match="are both set"):
        Config(notify_channels=_one(SLACK), notify_channels_file=path).of(IncidentSettings)
    with pytest.raises(ConfigError, match="WORKERMON_NOTIFY_CHANNELS_FILE: cannot read"):
        Config(notify_channels_file=tmp_path / "missing.json").of(IncidentSettings)


# --- payloads -------------------------------------------------------------------------------------


class _Incident:
    """An incident as the engine hands it over (only what the Protocol asks for, plus extras)."""

    def __init__(self, **overrides: object) -> None:
        self.id = 42
        self.fingerprint = "fp-42"
        self.type = "FAILURE_RATE"
        self.severity = "CRITICAL"
        self.status = "ACTIVE"
        self.queue: str | None = "emails"
        self.worker_id: str | None = None
        self.title = "Failure rate of emails is 12% <high> & rising"
        self.description = "60 of 500 jobs failed."
        self.recommended_action = "Look at the latest failures."
        self.labels = {"team": "ops"}
        self.start_time: datetime | None = datetime(2031, 3, 4, 10, 30, tzinfo=UTC)
        self.resolve_time: datetime | None = None
        self.affected_jobs = 60
        self.__dict__.update(overrides)


class _Transition:
    def __init__(self, kind: str, seq: int = 7, **incident: object) -> None:
        self.incident = _Incident(**incident)
        self.kind = kind
        self.seq = seq
        self.at = datetime(2031, 3, 4, 10, 31, tzinfo=UTC)


def test_snapshot_round_trips_through_json() -> None:
    transition = _Transition("FIRED")
    kind = kind_of(transition)
    assert kind is TransitionKind.FIRED
    event = snapshot(transition, kind)
    assert event.incident_id == 42 and event.started_at == datetime(2031, 3, 4, 10, 30, tzinfo=UTC)
    assert NotifyEvent.from_json(event.to_json()) == event
    assert kind_of(_Transition("SOMETHING_ELSE")) is None


def test_webhook_payload_follows_alertmanager() -> None:
    (channel,) = parse_channels(_one({"name": "hook", "type": "webhook", "url": "https://h.example/x"}))
    event = snapshot(_Transition("FIRED"), TransitionKind.FIRED)
    body = json.loads(http_body(event, channel))
    assert body["version"] == "4" and body["status"] == "firing" and body["reason"] == "fired"
    assert body["receiver"] == "hook" and body["groupKey"] == '{}:{incident="42"}'
    (alert,) = body["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "FAILURE_RATE",
        "severity": "critical",
        "queue": "emails",
        "team": "ops",
    }
    assert alert["annotations"]["summary"] == event.title
    assert alert["annotations"]["recommended_action"] == "Look at the latest failures."
    assert alert["startsAt"] == "2031-03-04T10:30:00Z" and alert["endsAt"] == ZERO_TIME
    assert alert["fingerprint"] == "fp-42"
    assert body["commonLabels"] == alert["labels"] and body["commonAnnotations"] == alert["annotations"]

    resolved_at = datetime(2031, 3, 4, 11, 0, tzinfo=UTC)
    resolved = snapshot(
        _Transition("RESOLVED", status="RESOLVED", resolve_time=resolved_at), TransitionKind.RESOLVED
    )
    body = webhook_payload(resolved, channel)
    assert body["status"] == "resolved" and body["reason"] == "resolved"
    assert body["alerts"][0]["endsAt"] == "2031-03-04T11:00:00Z"
    reminder = replace(event, kind=TransitionKind.REMINDER)
    assert webhook_payload(reminder, channel)["reason"] == "reminder"
    assert webhook_payload(reminder, channel)["status"] == "firing"


def test_template_renders_any_json() -> None:
    template = (
        '{"msgtype": "text", "text": {"content": {{ ("[" ~ status ~ "] " ~ incident.title) | tojson }}},'
        ' "labels": {{ payload.commonLabels | tojson }}, "reason": "{{ reason }}",'
        ' "id": {{ incident.incident_id }}}'
    )
    (channel,) = parse_channels(
        _one({"name": "chat", "type": "webhook", "url": "https://chat.example/hook", "template": template})
    )
    event = snapshot(_Transition("FIRED"), TransitionKind.FIRED)
    body = json.loads(http_body(event, channel))
    assert body == {
        "msgtype": "text",
        "text": {"content": "[firing] Failure rate of emails is 12% <high> & rising"},
        "labels": {"alertname": "FAILURE_RATE", "severity": "critical", "queue": "emails", "team": "ops"},
        "reason": "fired",
        "id": 42,
    }


def test_slack_payload_has_text_blocks_and_link() -> None:
    (channel,) = parse_channels(_one(SLACK | {"link": "https://ops.example.com/i/{incident_id}"}))
    event = snapshot(_Transition("FIRED", worker_id="w-1"), TransitionKind.FIRED)
    body = slack_payload(event, channel)
    assert body["text"].startswith(
        "[FIRING] CRITICAL: Failure rate of emails is 12% &lt;high&gt; &amp; rising"
    )
    header, fields, description, action, link, context = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[FIRING] CRITICAL: " + event.title},
    }
    texts = [f["text"] for f in fields["fields"]]
    assert "*Severity*\nCRITICAL" in texts and "*Queue*\nemails" in texts and "*Worker*\nw-1" in texts
    assert description["text"]["text"] == "60 of 500 jobs failed."
    assert action["text"]["text"] == "*Recommended action*\nLook at the latest failures."
    assert link["text"]["text"] == "<https://ops.example.com/i/42|Open incident 42>"
    assert context["type"] == "context"


def test_kakaowork_payload_uses_its_block_kit() -> None:
    (channel,) = parse_channels(
        _one(
            {
                "name": "k",
                "type": "kakaowork",
                "url": "https://kakaowork.com/bots/hook/x",
                "link": "https://o/{incident_id}",
            }
        )
    )
    event = snapshot(_Transition("RESOLVED", status="RESOLVED"), TransitionKind.RESOLVED)
    body = kakaowork_payload(event, channel)
    assert body["text"].startswith("[RESOLVED] CRITICAL:")
    blocks = body["blocks"]
    assert blocks[0]["type"] == "header" and blocks[0]["style"] == "blue" and len(blocks[0]["text"]) <= 20
    assert blocks[1] == {"type": "text", "text": event.title, "markdown": False}
    kinds = {b["type"] for b in blocks}
    assert kinds <= {"header", "text", "description", "divider", "button"}
    severity = next(b for b in blocks if b["type"] == "description" and b["term"] == "Severity")
    assert severity["content"] == {"type": "text", "text": "CRITICAL", "markdown": False}
    assert blocks[-1]["type"] == "button" and blocks[-1]["value"] == "https://o/42"


def test_email_has_subject_text_and_html() -> None:
    (channel,) = parse_channels(_one(EMAIL))
    event = snapshot(_Transition("REMINDER"), TransitionKind.REMINDER)
    message = email_message(event, channel)
    assert message["Subject"] == "[STILL FIRING] CRITICAL: " + event.title + " (queue emails)"
    assert message["To"] == "ops@example.com, oncall@example.com"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "Recommended action:\nLook at the latest failures." in text.get_content()
    assert "&lt;high&gt; &amp; rising" in html.get_content()


def test_sample_event_is_valid() -> None:
    assert sample_event().kind is TransitionKind.FIRED
