"""Notifications end to end: real HTTP receivers (tests/support/webhooks.py) and a real SMTP server
started by the tests, the taskiq receiver running in-process on the real Redis (a queue of its own per
test), the delivery log on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.suites import Config
from tests.support.webhooks import HttpReceiver
from workermon_core.db import create_engine
from workermon_incidents.migrate import MIGRATIONS
from workermon_incidents.notify.channels import Channel, parse_channels
from workermon_incidents.notify.models import AttemptOutcome, DeliveryStatus
from workermon_incidents.notify.tasks import DELIVER_TASK, Notifier, build_broker
from workermon_incidents.settings import IncidentSettings

T = TypeVar("T")


# --- receivers ------------------------------------------------------------------------------------


class SmtpHandler:
    """Records each accepted message; answers from a script of replies (then 250)."""

    def __init__(self, replies: list[str] | None = None) -> None:
        self.replies = list(replies or [])
        self.envelopes: list[Envelope] = []
        self.tries = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.tries += 1
        reply = self.replies.pop(0) if self.replies else "250 Message accepted for delivery"
        if reply.startswith("250"):
            self.envelopes.append(envelope)
        return reply


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[SmtpHandler, int]]]:
    controllers: list[Controller] = []

    def start(replies: list[str] | None = None) -> tuple[SmtpHandler, int]:
        handler = SmtpHandler(replies)
        port = _free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return handler, port

    yield start
    for controller in controllers:
        controller.stop()


# --- the notifier ---------------------------------------------------------------------------------


@pytest.fixture
async def notify_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await MIGRATIONS.upgrade(database_url)
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def make_notifier(
    notify_engine: AsyncEngine, redis_url: str, prefix: str, redis: aioredis.Redis
) -> AsyncIterator[Callable[..., Awaitable[Notifier]]]:
    running: list[Notifier] = []
    queues: set[str] = set()

    async def make(
        channels: list[Channel],
        *,
        clock: Callable[[], datetime] = _utcnow,
        receiver: bool = True,
        backoff_base: float = 0.1,
        **kwargs: Any,
    ) -> Notifier:
        broker = build_broker(redis_url, prefix)
        queues.add(broker.queue_name)
        notifier = Notifier(
            Config().of(IncidentSettings),
            notify_engine,
            broker,
            clock,
            channels=channels,
            backoff_base=backoff_base,
            backoff_cap=2.0,
            **kwargs,
        )
        await notifier.start(receiver=receiver)
        running.append(notifier)
        return notifier

    yield make
    for notifier in running:
        await notifier.stop()
    if queues:
        await redis.delete(*queues)


def channels(*items: dict[str, Any]) -> list[Channel]:
    return parse_channels(json.dumps(list(items)))


def hook(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "webhook", "url": url, **extra}


class Incident:
    def __init__(self, incident_id: int = 42, **overrides: Any) -> None:
        self.id = incident_id
        self.fingerprint = f"fp-{incident_id}"
        self.type = "FAILURE_RATE"
        self.severity = "CRITICAL"
        self.status = "ACTIVE"
        self.queue: str | None = "emails"
        self.worker_id: str | None = None
        self.title = "Failure rate of emails is 12%"
        self.description = "60 of 500 jobs failed in the last 10 minutes."
        self.recommended_action = "Look at the latest failures."
        self.labels: dict[str, str] = {}
        self.start_time: datetime | None = _utcnow()
        self.resolve_time: datetime | None = None
        self.__dict__.update(overrides)


@dataclass
class Transition:
    incident: Incident
    kind: str
    seq: int
    at: datetime = field(default_factory=_utcnow)


_seq = iter(range(int(time.time() * 1000), 10**15))


def fired(incident_id: int = 42, **overrides: Any) -> Transition:
    return Transition(Incident(incident_id, **overrides), "FIRED", next(_seq))


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


async def settled(notifier: Notifier, delivery_id: int) -> DeliveryStatus:
    async def probe() -> DeliveryStatus | None:
        row = await notifier.store.get(delivery_id)
        return row.status if row is not None and row.status.final else None

    return await until(probe)


# --- tests ----------------------------------------------------------------------------------------


async def test_500_twice_then_200_is_delivered_once_and_the_healthy_channel_once(
    http_server: Callable[..., Awaitable[HttpReceiver]], make_notifier: Callable[..., Awaitable[Notifier]]
) -> None:
    flaky = await http_server(answers=[500, 500, 200])
    healthy = await http_server()
    notifier = await make_notifier(channels(hook("flaky", flaky.url), hook("healthy", healthy.url)))
    transition = fired()

    flaky_id, healthy_id = await notifier.submit(transition)

    assert await settled(notifier, flaky_id) is DeliveryStatus.DELIVERED
    assert await settled(notifier, healthy_id) is DeliveryStatus.DELIVERED
    await asyncio.sleep(0.3)  # anything extra would arrive now
    assert len(flaky.accepted) == 1 and len(flaky.requests) == 3
    assert len(healthy.accepted) == 1 and len(healthy.requests) == 1
    # The healthy channel did not wait for the flaky one's retries.
    assert healthy.requests[0].at < flaky.requests[1].at
    attempts = await notifier.attempts(flaky_id)
    assert [(a.attempt, a.outcome, a.status_code) for a in attempts] == [
        (1, AttemptOutcome.RETRY, 500),
        (2, AttemptOutcome.RETRY, 500),
        (3, AttemptOutcome.DELIVERED, 200),
    ]
    # Exponential backoff between attempts: 0.1 s, then 0.2 s.
    assert attempts[2].at - attempts[1].at >= timedelta(seconds=0.19)
    assert [a.outcome for a in await notifier.attempts(healthy_id)] == [AttemptOutcome.DELIVERED]
    body = flaky.accepted[0].body
    assert (
        body["status"] == "firing"
        and body["reason"] == "fired"
        and body["alerts"][0]["fingerprint"] == "fp-42"
    )
    assert flaky.accepted[0].path == "/hooks/T0K3N"

    # The same transition again (the engine retrying, another replica) creates and sends nothing.
    assert await notifier.submit(transition) == []
    timeline = await notifier.deliveries(42)
    assert [(d.channel, d.status, d.attempts, d.kind) for d in timeline] == [
        ("flaky", DeliveryStatus.DELIVERED, 3, "FIRED"),
        ("healthy", DeliveryStatus.DELIVERED, 1, "FIRED"),
    ]
    # A duplicated task message for a finished delivery is dropped.
    await notifier._broker.find_task(DELIVER_TASK).kiq(healthy_id, 0)  # type: ignore[union-attr]
    await asyncio.sleep(0.3)
    assert len(healthy.requests) == 1


async def test_a_4xx_is_not_retried(
    http_server: Callable[..., Awaitable[HttpReceiver]], make_notifier: Callable[..., Awaitable[Notifier]]
) -> None:
    refusing = await http_server(answers=[400, 200])
    notifier = await make_notifier(channels(hook("refusing", refusing.url)))
    (delivery_id,) = await notifier.submit(fired())
    assert await settled(notifier, delivery_id) is DeliveryStatus.FAILED
    await asyncio.sleep(0.3)
    assert len(refusing.requests) == 1
    (attempt,) = await notifier.attempts(delivery_id)
    assert attempt.outcome is AttemptOutcome.FAILED and attempt.status_code == 400
    row = await notifier.store.get(delivery_id)
    assert row is not None and row.last_error is not None and "400" in row.last_error


async def test_gives_up_after_max_attempts_and_retries_timeouts_and_refused_connections(
    http_server: Callable[..., Awaitable[HttpReceiver]], make_notifier: Callable[..., Awaitable[Notifier]]
) -> None:
    down = await http_server(answers=[503] * 10)
    slow = await http_server(delays=[1.0])
    closed = f"http://127.0.0.1:{_free_port()}/hook"
    notifier = await make_notifier(
        channels(
            hook("down", down.url, max_attempts=3),
            hook("slow", slow.url, timeout_seconds=0.3),
            hook("closed", closed, max_attempts=2),
        )
    )
    down_id, slow_id, closed_id = await notifier.submit(fired())
    assert await settled(notifier, down_id) is DeliveryStatus.GAVE_UP
    assert [a.outcome for a in await notifier.attempts(down_id)] == [
        AttemptOutcome.RETRY,
        AttemptOutcome.RETRY,
        AttemptOutcome.GAVE_UP,
    ]
    assert len(down.requests) == 3
    assert await settled(notifier, slow_id) is DeliveryStatus.DELIVERED
    first, second = await notifier.attempts(slow_id)
    assert first.outcome is AttemptOutcome.RETRY and first.error is not None and "timed out" in first.error
    assert second.outcome is AttemptOutcome.DELIVERED
    assert await settled(notifier, closed_id) is DeliveryStatus.GAVE_UP
    attempts = await notifier.attempts(closed_id)
    assert len(attempts) == 2 and all(a.status_code is None and a.error for a in attempts)


async def test_resolved_goes_only_to_channels_that_asked(
    http_server: Callable[..., Awaitable[HttpReceiver]], make_notifier: Callable[..., Awaitable[Notifier]]
) -> None:
    wants = await http_server()
    quiet = await http_server()
    notifier = await make_notifier(
        channels(hook("wants", wants.url), hook("quiet", quiet.url, send_resolved=False))
    )
    first = fired(7)
    for delivery_id in await notifier.submit(first):
        assert await settled(notifier, delivery_id) is DeliveryStatus.DELIVERED
    resolved = Transition(Incident(7, status="RESOLVED", resolve_time=_utcnow()), "RESOLVED", next(_seq))
    (resolved_id,) = await notifier.submit(resolved)
    assert await settled(notifier, resolved_id) is DeliveryStatus.DELIVERED
    await asyncio.sleep(0.2)
    assert [r.body["status"] for r in wants.requests] == ["firing", "resolved"]
    assert [r.body["reason"] for r in wants.requests] == ["fired", "resolved"]
    assert [r.body["status"] for r in quiet.requests] == ["firing"]
    # Acknowledgements only to channels that ask for them; reminders to everyone.
    ack = Transition(Incident(7, status="ACKNOWLEDGED"), "ACKNOWLEDGED", next(_seq))
    assert await notifier.submit(ack) == []
    reminder = Transition(Incident(7), "REMINDER", next(_seq))
    for delivery_id in await notifier.submit(reminder):
        assert await settled(notifier, delivery_id) is DeliveryStatus.DELIVERED
    assert wants.requests[-1].body["reason"] == "reminder" and quiet.requests[-1].body["reason"] == "reminder"


async def test_slack_and_kakaowork_receive_their_formats(
    http_server: Callable[..., Awaitable[HttpReceiver]], make_notifier: Callable[..., Awaitable[Notifier]]
) -> None:
    slack = await http_server()
    kakao = await http_server()
    templated = await http_server()
    template = (
        '{"text": {{ ("[" ~ status ~ "] " ~ incident.title) | tojson }},'
        ' "incident": {{ incident.incident_id }}}'
    )
    notifier = await make_notifier(
        channels(
            {
                "name": "slack",
                "type": "slack",
                "url": slack.url,
                "link": "https://ops.example/i/{incident_id}",
            },
            {"name": "kakao", "type": "kakaowork", "url": kakao.url},
            hook("chat", templated.url, template=template, headers={"X-Token": "abc"}),
        )
    )
    for delivery_id in await notifier.submit(fired(9, worker_id="w-1")):
        assert await settled(notifier, delivery_id) is DeliveryStatus.DELIVERED
    (slack_request,) = slack.requests
    assert slack_request.headers["Content-Type"].startswith("application/json")
    assert slack_request.body["text"].startswith("[FIRING] CRITICAL: Failure rate of emails is 12%")
    assert slack_request.body["blocks"][0]["type"] == "header"
    assert any("ops.example/i/9" in json.dumps(b) for b in slack_request.body["blocks"])
    (kakao_request,) = kakao.requests
    assert kakao_request.body["blocks"][0] == {
        "type": "header",
        "text": "Incident · CRITICAL",
        "style": "red",
    }
    (chat_request,) = templated.requests
    assert chat_request.body == {"text": "[firing] Failure rate of emails is 12%", "incident": 9}
    assert chat_request.headers["X-Token"] == "abc"


async def test_email_is_received_by_an_smtp_server(
    smtp_server: Callable[..., tuple[SmtpHandler, int]], make_notifier: Callable[..., Awaitable[Notifier]]
) -> None:
    handler, port = smtp_server()
    smtp = {
        "host": "127.0.0.1",
        "port": port,
        "from": "alerts@example.com",
        "to": ["ops@example.com", "b@example.com"],
    }
    notifier = await make_notifier(channels({"name": "mail", "type": "email", "smtp": smtp}))
    (delivery_id,) = await notifier.submit(fired(11))
    assert await settled(notifier, delivery_id) is DeliveryStatus.DELIVERED
    (envelope,) = handler.envelopes
    assert envelope.mail_from == "alerts@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "b@example.com"]
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "[FIRING] CRITICAL: Failure rate of emails is 12% (queue emails)"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and "Look at the latest failures." in plain.get_content()
    assert rich is not None and "<h2>" in rich.get_content()
    (attempt,) = await notifier.attempts(delivery_id)
    assert attempt.status_code == 250


async def test_smtp_4xx_is_retried_and_5xx_is_not(
    smtp_server: Callable[..., tuple[SmtpHandler, int]], make_notifier: Callable[..., Awaitable[Notifier]]
) -> None:
    later, later_port = smtp_server(["451 Try again later"])
    never, never_port = smtp_server(["554 Transaction failed"])
    base = {"host": "127.0.0.1", "from": "alerts@example.com", "to": ["ops@example.com"]}
    notifier = await make_notifier(
        channels(
            {"name": "later", "type": "email", "smtp": base | {"port": later_port}},
            {"name": "never", "type": "email", "smtp": base | {"port": never_port}},
        )
    )
    later_id, never_id = await notifier.submit(fired(12))
    assert await settled(notifier, later_id) is DeliveryStatus.DELIVERED
    assert await settled(notifier, never_id) is DeliveryStatus.FAILED
    assert [(a.outcome, a.status_code) for a in await notifier.attempts(later_id)] == [
        (AttemptOutcome.RETRY, 451),
        (AttemptOutcome.DELIVERED, 250),
    ]
    assert [(a.outcome, a.status_code) for a in await notifier.attempts(never_id)] == [
        (AttemptOutcome.FAILED, 554)
    ]
    assert len(later.envelopes) == 1 and later.tries == 2 and never.tries == 1


async def test_a_delivery_interrupted_while_sending_becomes_unknown_and_is_never_resent(
    http_server: Callable[..., Awaitable[HttpReceiver]], make_notifier: Callable[..., Awaitable[Notifier]]
) -> None:
    receiver = await http_server()
    # A process that records and enqueues the delivery, starts sending it, and dies.
    crashed = await make_notifier(channels(hook("hook", receiver.url)), receiver=False)
    (delivery_id,) = await crashed.submit(fired(13))
    claimed = await crashed.store.claim(delivery_id, 0, _utcnow())
    assert claimed is not None and claimed.status is DeliveryStatus.SENDING
    await crashed.stop()

    # The next process starts later than any attempt could last; the task message is still queued.
    def later() -> datetime:
        return _utcnow() + timedelta(minutes=5)

    restarted = await make_notifier(channels(hook("hook", receiver.url)), clock=later)
    assert await settled(restarted, delivery_id) is DeliveryStatus.UNKNOWN
    await asyncio.sleep(0.5)
    assert receiver.requests == []
    (attempt,) = await restarted.attempts(delivery_id)
    assert attempt.outcome is AttemptOutcome.UNKNOWN and attempt.error is not None


async def test_a_restart_finishes_pending_retries_and_never_resends_delivered(
    http_server: Callable[..., Awaitable[HttpReceiver]], make_notifier: Callable[..., Awaitable[Notifier]]
) -> None:
    receiver = await http_server(answers=[500])
    config = channels(hook("hook", receiver.url))
    first = await make_notifier(config, backoff_base=1.5)
    transition = fired(14)
    (delivery_id,) = await first.submit(transition)

    async def retry_pending() -> bool:
        row = await first.store.get(delivery_id)
        return row is not None and row.status is DeliveryStatus.QUEUED and row.attempts == 1

    await until(retry_pending)
    await first.stop()  # with the retry waiting out its backoff

    second = await make_notifier(config)
    assert await settled(second, delivery_id) is DeliveryStatus.DELIVERED
    assert await second.submit(transition) == []
    await second.stop()

    third = await make_notifier(config)
    assert await third.submit(transition) == []
    await asyncio.sleep(0.5)
    assert [r.status for r in receiver.requests] == [500, 200]
    assert [a.outcome for a in await third.attempts(delivery_id)] == [
        AttemptOutcome.RETRY,
        AttemptOutcome.DELIVERED,
    ]


async def test_on_delivered_is_told_of_each_delivery(
    http_server: Callable[..., Awaitable[HttpReceiver]], make_notifier: Callable[..., Awaitable[Notifier]]
) -> None:
    ok = await http_server()
    refused = await http_server(answers=[404])
    told: list[tuple[int, str]] = []

    async def record(incident_id: int, channel: str) -> None:
        told.append((incident_id, channel))

    notifier = await make_notifier(
        channels(hook("ok", ok.url), hook("refused", refused.url)), on_delivered=record
    )
    for delivery_id in await notifier.submit(fired(15)):
        await settled(notifier, delivery_id)
    assert told == [(15, "ok")]


async def test_latency_from_fired_to_the_webhook_arriving(
    http_server: Callable[..., Awaitable[HttpReceiver]], make_notifier: Callable[..., Awaitable[Notifier]]
) -> None:
    receiver = await http_server()
    notifier = await make_notifier(channels(hook("hook", receiver.url)))
    transition = fired(16)
    began = time.monotonic()
    await notifier.handle(transition)

    async def arrived() -> bool:
        return bool(receiver.requests)

    await until(arrived, within=10.0)
    latency = receiver.requests[0].at - began
    since_active = (_utcnow() - transition.at).total_seconds()
    print(
        f"\nnotification latency: handle(FIRED) -> webhook received {latency * 1000:.1f} ms "
        f"(incident ACTIVE -> received <= {since_active * 1000:.1f} ms)"
    )
    assert latency < 10.0
