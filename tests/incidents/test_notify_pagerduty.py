"""The PagerDuty channel: a local HTTP server stands in for events.pagerduty.com (the channel's url points
at it), answering like the Events API v2 does (202 with a JSON status, 400 "invalid event", 429 with a
Retry-After); every event it receives is checked against a JSON Schema written from PagerDuty's "Send an
Alert Event" reference (pagerduty_events_v2.schema.json). Transitions come from a real engine, the
delivery log is on SQLite and PostgreSQL, the tasks run through the real Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.suites import Config
from tests.support.webhooks import serve
from workermon_core.incident_ref import tagged_incident
from workermon_core.settings import ConfigError
from workermon_incidents.notify.channels import PAGERDUTY_EVENTS_URL, Channel, ChannelType, parse_channels
from workermon_incidents.notify.events import NotifyEvent, TransitionKind
from workermon_incidents.notify.models import AttemptOutcome, DeliveryStatus
from workermon_incidents.notify.payloads import pagerduty_event, sample_event
from workermon_incidents.notify.tasks import Notifier, build_broker
from workermon_incidents.rules import RuleConfig
from workermon_incidents.settings import IncidentSettings

from .conftest import Harness

T = TypeVar("T")

SCHEMA = json.loads((Path(__file__).parent / "pagerduty_events_v2.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
ROUTING_KEY = "R0uT1nGk3Y0123456789abcdefABCDEF"
# The failure-rate rule firing on the first bad minute.
FIRES_AT_ONCE = RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=0)
BAD = {"completed": 10, "failed": 10}


@dataclass
class Answer:
    """One scripted reply of the stand-in."""

    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class PagerDutyStandIn:
    """Answers like PagerDuty's Events API v2 and records each event with its arrival time.

    An event the schema rejects is answered 400, as PagerDuty would, and kept in `invalid`."""

    answers: list[Answer] = field(default_factory=list)
    events: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        answer = self.answers.pop(0) if self.answers else Answer()
        problems = [e.message for e in VALIDATOR.iter_errors(body)]
        if problems:
            self.invalid += problems
            answer = Answer(400)
        self.events.append((time.monotonic(), answer.status, body))
        if answer.status == 202:
            reply = {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key")}
        elif answer.status == 400:
            # PagerDuty may quote what it got: the routing key must not reach the delivery log.
            reply = {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": [f"routing_key {body.get('routing_key')} has no 'payload.summary'", *problems],
            }
        else:
            reply = {"status": "throttled", "message": "Requests for this service are arriving too quickly."}
        return web.json_response(reply, status=answer.status, headers=answer.headers)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """The events answered 202."""
        return [body for _, status, body in self.events if status == 202]


@pytest.fixture
async def pagerduty() -> AsyncIterator[Callable[..., Awaitable[PagerDutyStandIn]]]:
    runners: list[web.AppRunner] = []

    async def start(*answers: Answer) -> PagerDutyStandIn:
        stand_in = PagerDutyStandIn(answers=list(answers))
        app = web.Application()
        app.router.add_post("/v2/enqueue", stand_in.handle)
        runner, base = await serve(app)
        runners.append(runner)
        stand_in.url = f"{base}/v2/enqueue"
        return stand_in

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def make_notifier(
    db: AsyncEngine, redis_url: str, prefix: str, redis: aioredis.Redis
) -> AsyncIterator[Callable[..., Awaitable[Notifier]]]:
    running: list[Notifier] = []
    queues: set[str] = set()

    async def make(channels: list[Channel]) -> Notifier:
        broker = build_broker(redis_url, prefix)
        queues.add(broker.queue_name)
        notifier = Notifier(
            Config().of(IncidentSettings), db, broker, channels=channels, backoff_base=0.1, backoff_cap=2.0
        )
        await notifier.start()
        running.append(notifier)
        return notifier

    yield make
    for notifier in running:
        await notifier.stop()
    if queues:
        await redis.delete(*queues)


def pagerduty_channel(url: str, **extra: Any) -> Channel:
    item = {"name": "oncall", "type": "pagerduty", "routing_key": ROUTING_KEY, "url": url, **extra}
    (channel,) = parse_channels(json.dumps([item]))
    return channel


async def until(probe: Callable[[], Awaitable[T | None]], within: float = 15.0) -> T:
    """`probe()`'s first truthy result, polled for up to `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within} s (last: {value!r})")
        await asyncio.sleep(0.02)


async def all_settled(notifier: Notifier, incident_id: int, count: int) -> list[DeliveryStatus]:
    """The statuses of the incident's deliveries once `count` of them are final."""

    async def probe() -> list[DeliveryStatus] | None:
        rows = await notifier.deliveries(incident_id)
        done = [r.status for r in rows if r.status.final]
        return done if len(done) == count else None

    return await until(probe)


async def fire(h: Harness) -> int:
    """A failure-rate incident of queue `emails`, fired by the engine; its id."""
    (change,) = await h.tick("emails", **BAD)
    return int(change.incident.id)


# --- the channel's configuration ------------------------------------------------------------------


def test_a_pagerduty_channel_defaults_and_keeps_its_routing_key_secret() -> None:
    text = json.dumps([{"name": "oncall", "type": "pagerduty", "routing_key": ROUTING_KEY}])
    (channel,) = parse_channels(text)
    assert channel.type is ChannelType.PAGERDUTY
    assert channel.url is not None and channel.url.reveal() == PAGERDUTY_EVENTS_URL
    assert channel.send_acknowledged and channel.send_resolved
    assert channel.routing_key is not None and channel.routing_key.reveal() == ROUTING_KEY
    assert ROUTING_KEY not in repr(channel) and ROUTING_KEY not in channel.target


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"routing_key": None}, "routing_key"),
        ({"routing_key": "short"}, "routing_key"),
        ({"routing_key": "R0uT1nGk3Y0123456789abcdefABCDE!"}, "routing_key"),
        ({"headers": {"Authorization": "Token x"}}, "headers"),
        ({"template": '{"x": 1}'}, "template"),
        ({"smtp": {"host": "smtp.example.com"}}, "smtp"),
        ({"url": "ftp://events.example.com"}, "url"),
    ],
)
def test_pagerduty_channel_mistakes_name_the_key_without_the_key_itself(
    extra: dict[str, Any], key: str
) -> None:
    item = {"name": "oncall", "type": "pagerduty", "routing_key": ROUTING_KEY, **extra}
    with pytest.raises(ConfigError) as caught:
        parse_channels(json.dumps([{k: v for k, v in item.items() if v is not None}]))
    message = str(caught.value)
    assert f"channel 'oncall': {key}:" in message
    assert ROUTING_KEY not in message and "short" not in message


def test_routing_key_is_refused_on_other_channel_types() -> None:
    item = {"name": "hook", "type": "webhook", "url": "https://example.com/h", "routing_key": ROUTING_KEY}
    with pytest.raises(ConfigError, match="channel 'hook': routing_key: only for pagerduty channels"):
        parse_channels(json.dumps([item]))


def test_event_actions_and_the_trigger_payload_follow_the_schema() -> None:
    channel = pagerduty_channel(
        "https://events.example.com/v2/enqueue", link="https://ops.example.com/i/{incident_id}"
    )
    fired = sample_event()
    # The schema has teeth: a trigger without its payload, a bad severity, a long dedup_key fail.
    assert not VALIDATOR.is_valid({"routing_key": ROUTING_KEY, "event_action": "trigger"})
    bad_severity = {"summary": "s", "source": "q", "severity": "fatal"}
    assert not VALIDATOR.is_valid(
        {"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": bad_severity}
    )
    assert not VALIDATOR.is_valid(
        {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "k" * 256}
    )
    body = pagerduty_event(fired, channel)
    jsonschema.validate(body, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert body["event_action"] == "trigger" and body["dedup_key"] == fired.fingerprint
    assert body["payload"]["severity"] == "critical" and body["payload"]["source"] == "emails"
    assert body["links"] == [{"href": "https://ops.example.com/i/1", "text": "Incident 1 in Worker Monitor"}]
    long = NotifyEvent(**{**_fields(fired), "title": "x" * 5000, "severity": "INFO", "queue": None})
    payload = pagerduty_event(long, channel)["payload"]
    assert len(payload["summary"]) == 1024 and payload["summary"].endswith("… [incident #1]")
    assert tagged_incident(payload["summary"]) == 1 and payload["severity"] == "info"
    assert payload["source"] == "worker-monitor" and "component" not in payload
    for kind, action in [
        (TransitionKind.REMINDER, "trigger"),
        (TransitionKind.ACKNOWLEDGED, "acknowledge"),
        (TransitionKind.RESOLVED, "resolve"),
    ]:
        other = pagerduty_event(NotifyEvent(**{**_fields(fired), "kind": kind}), channel)
        jsonschema.validate(other, SCHEMA)
        assert other["event_action"] == action and other["dedup_key"] == fired.fingerprint


def _fields(event: NotifyEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in NotifyEvent.__dataclass_fields__}


# --- delivery -------------------------------------------------------------------------------------


async def test_one_incident_triggers_acknowledges_and_resolves_one_pagerduty_alert(
    harness_factory: Callable[..., Harness],
    pagerduty: Callable[..., Awaitable[PagerDutyStandIn]],
    make_notifier: Callable[..., Awaitable[Notifier]],
) -> None:
    stand_in = await pagerduty()
    channel = pagerduty_channel(stand_in.url, link="https://ops.example.com/incidents/{incident_id}")
    notifier = await make_notifier([channel])
    h = harness_factory(FIRES_AT_ONCE)
    h.engine.on_transition(notifier.handle)
    h.engine.route_with(notifier.route)

    incident_id = await fire(h)
    await all_settled(notifier, incident_id, 1)
    await h.engine.acknowledge(incident_id, "olivia", "on it")
    await all_settled(notifier, incident_id, 2)
    await h.engine.resolve(incident_id, "adam", "credentials rotated")

    assert await all_settled(notifier, incident_id, 3) == [DeliveryStatus.DELIVERED] * 3
    assert stand_in.invalid == []
    bodies = stand_in.accepted
    assert [b["event_action"] for b in bodies] == ["trigger", "acknowledge", "resolve"]
    incident = await h.engine.store.get(incident_id)
    assert incident is not None
    assert {b["dedup_key"] for b in bodies} == {incident.fingerprint}
    assert {b["routing_key"] for b in bodies} == {ROUTING_KEY}
    trigger = bodies[0]
    payload = trigger["payload"]
    # The tag at the end is how the gateway's PagerDuty webhook finds the incident again.
    assert payload["summary"] == f"{incident.title} [incident #{incident_id}]"
    assert tagged_incident(payload["summary"]) == incident_id and payload["source"] == "emails"
    assert payload["component"] == "emails" and payload["group"] == "HIGH_FAILURE_RATE"
    assert payload["severity"] == incident.severity.value.lower()
    assert datetime.fromisoformat(payload["timestamp"]) == datetime.fromtimestamp(h.clock(), tz=UTC)
    details = payload["custom_details"]
    assert details["incident_id"] == incident_id and details["affected_jobs"] == 10
    assert details["value"] == 0.5 and details["threshold"] == incident.threshold
    assert details["description"] == incident.description
    assert details["recommended_action"] == incident.recommended_action
    link = f"https://ops.example.com/incidents/{incident_id}"
    assert trigger["links"] == [{"href": link, "text": f"Incident {incident_id} in Worker Monitor"}]
    assert trigger["client"] == "Worker Monitor" and trigger["client_url"] == link
    # The incident's timeline counts the three notifications once each.
    rows = await notifier.deliveries(incident_id)
    assert [(r.kind, r.channel_type) for r in rows] == [
        ("FIRED", "pagerduty"),
        ("ACKNOWLEDGED", "pagerduty"),
        ("RESOLVED", "pagerduty"),
    ]


async def test_a_400_fails_at_once_with_pagerdutys_message(
    harness_factory: Callable[..., Harness],
    pagerduty: Callable[..., Awaitable[PagerDutyStandIn]],
    make_notifier: Callable[..., Awaitable[Notifier]],
) -> None:
    stand_in = await pagerduty(Answer(400))
    notifier = await make_notifier([pagerduty_channel(stand_in.url)])
    h = harness_factory(FIRES_AT_ONCE)
    h.engine.on_transition(notifier.handle)

    incident_id = await fire(h)

    assert await all_settled(notifier, incident_id, 1) == [DeliveryStatus.FAILED]
    (row,) = await notifier.deliveries(incident_id)
    (attempt,) = await notifier.attempts(row.id)
    assert attempt.outcome is AttemptOutcome.FAILED and attempt.status_code == 400
    assert attempt.reply is not None and ROUTING_KEY not in attempt.reply
    assert row.last_error is not None and "Event object is invalid" in row.last_error
    assert "payload.summary" in row.last_error and ROUTING_KEY not in row.last_error
    assert row.last_error.count("***") == 1
    assert len(stand_in.events) == 1 and stand_in.invalid == []


async def test_a_429_is_retried_after_its_retry_after(
    harness_factory: Callable[..., Harness],
    pagerduty: Callable[..., Awaitable[PagerDutyStandIn]],
    make_notifier: Callable[..., Awaitable[Notifier]],
) -> None:
    stand_in = await pagerduty(Answer(429, {"Retry-After": "1"}), Answer(202))
    notifier = await make_notifier([pagerduty_channel(stand_in.url)])
    h = harness_factory(FIRES_AT_ONCE)
    h.engine.on_transition(notifier.handle)

    incident_id = await fire(h)

    assert await all_settled(notifier, incident_id, 1) == [DeliveryStatus.DELIVERED]
    (row,) = await notifier.deliveries(incident_id)
    attempts = await notifier.attempts(row.id)
    assert [(a.outcome, a.status_code) for a in attempts] == [
        (AttemptOutcome.RETRY, 429),
        (AttemptOutcome.DELIVERED, 202),
    ]
    (first_at, _, first), (second_at, _, second) = stand_in.events
    # The backoff alone would wait 0.1 s; PagerDuty asked for a second.
    assert second_at - first_at >= 0.9
    assert first == second
    assert stand_in.invalid == []


async def test_a_resolve_never_overtakes_its_retried_trigger(
    harness_factory: Callable[..., Harness],
    pagerduty: Callable[..., Awaitable[PagerDutyStandIn]],
    make_notifier: Callable[..., Awaitable[Notifier]],
) -> None:
    stand_in = await pagerduty(Answer(500), Answer(503))
    notifier = await make_notifier([pagerduty_channel(stand_in.url)])
    h = harness_factory(FIRES_AT_ONCE)
    h.engine.on_transition(notifier.handle)

    incident_id = await fire(h)
    await h.engine.acknowledge(incident_id, "olivia", "on it")
    await h.engine.resolve(incident_id, "adam", "credentials rotated")

    assert await all_settled(notifier, incident_id, 3) == [DeliveryStatus.DELIVERED] * 3
    assert [(status, body["event_action"]) for _, status, body in stand_in.events] == [
        (500, "trigger"),
        (503, "trigger"),
        (202, "trigger"),
        (202, "acknowledge"),
        (202, "resolve"),
    ]
    assert stand_in.invalid == []


async def test_an_old_incidents_late_resolve_goes_before_the_next_incidents_trigger(
    harness_factory: Callable[..., Harness],
    pagerduty: Callable[..., Awaitable[PagerDutyStandIn]],
    make_notifier: Callable[..., Awaitable[Notifier]],
) -> None:
    # Both incidents have one fingerprint, so one dedup_key: the first's resolve, sent after the
    # second's trigger, would resolve the second's PagerDuty alert while it still fires.
    stand_in = await pagerduty(Answer(202), Answer(500), Answer(503))
    notifier = await make_notifier([pagerduty_channel(stand_in.url)])
    h = harness_factory(FIRES_AT_ONCE)
    h.engine.on_transition(notifier.handle)

    first = await fire(h)
    await all_settled(notifier, first, 1)
    await h.engine.resolve(first, "adam", "credentials rotated")
    second = await fire(h)
    assert second != first

    assert await all_settled(notifier, first, 2) == [DeliveryStatus.DELIVERED] * 2
    assert await all_settled(notifier, second, 1) == [DeliveryStatus.DELIVERED]
    one, two = await h.engine.store.get(first), await h.engine.store.get(second)
    assert one is not None and two is not None and one.fingerprint == two.fingerprint
    assert [(status, body["event_action"], body["dedup_key"]) for _, status, body in stand_in.events] == [
        (202, "trigger", one.fingerprint),
        (500, "resolve", one.fingerprint),
        (503, "resolve", one.fingerprint),
        (202, "resolve", one.fingerprint),
        (202, "trigger", one.fingerprint),
    ]
    assert stand_in.events[-1][2]["payload"]["custom_details"]["incident_id"] == second
    assert stand_in.invalid == []
