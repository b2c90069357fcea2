"""Silences on the engine with the real notifier: real HTTP webhook receivers (tests/support/webhooks.py),
the taskiq receiver on the real Redis, the incident database on SQLite and PostgreSQL. A silenced
incident is recorded but not sent; it is sent once when the silence ends or is expired early."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from bullmq import Queue
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.suites import Config
from tests.support.webhooks import HttpReceiver
from workermon_core.errors import InvalidArgument
from workermon_incidents import silences, windows
from workermon_incidents.engine import Change
from workermon_incidents.incident import EventKind, Incident, IncidentStatus, Outcome
from workermon_incidents.notify.channels import parse_channels
from workermon_incidents.notify.tasks import Notifier, build_broker
from workermon_incidents.paused import PausedQueues
from workermon_incidents.rules import IncidentType, RuleBook, RuleConfig
from workermon_incidents.settings import IncidentSettings
from workermon_queues.bullmq.backend import BullMQBackend

from .conftest import Harness

T = TypeVar("T")
RULES = RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=0, incident_quiet_minutes=1)
BAD = {"completed": 10, "failed": 10}
GOOD = {"completed": 20, "failed": 0}


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


@pytest.fixture
async def wired(
    harness_factory: Any,
    db: AsyncEngine,
    http_server: Callable[..., Awaitable[HttpReceiver]],
    redis_url: str,
    prefix: str,
    redis: aioredis.Redis,
) -> AsyncIterator[tuple[Harness, Notifier, HttpReceiver]]:
    """An engine on a hand-moved clock whose transitions go to a real notifier and webhook receiver."""
    receiver = await http_server()
    h: Harness = harness_factory(RULES)
    broker = build_broker(redis_url, prefix)
    channels = parse_channels(json.dumps([{"name": "oncall", "type": "webhook", "url": receiver.url}]))
    notifier = Notifier(Config().of(IncidentSettings), db, broker, channels=channels, backoff_base=0.1)
    await notifier.start()
    h.engine.on_transition(notifier.handle)
    h.engine.route_with(notifier.route)
    yield h, notifier, receiver
    await notifier.stop()
    await redis.delete(broker.queue_name)


async def silence(h: Harness, minutes: float = 30, **matchers: Any) -> silences.Silence:
    now = h.engine.now()
    return await h.engine.create_silence(
        silences.Silence(
            0,
            silences.Matchers(**matchers).validate("silence.matchers"),
            now,
            now + timedelta(minutes=minutes),
            "olivia",
            "deploy of payments",
            now,
        )
    )


def sent_for(receiver: HttpReceiver, queue: str) -> list[Any]:
    return [r for r in receiver.accepted if any(a["labels"].get("queue") == queue for a in r.body["alerts"])]


async def arrived(receiver: HttpReceiver, queue: str) -> list[Any]:
    return sent_for(receiver, queue)


async def fired(changes: list[Change], queue: str) -> Incident:
    [change] = [c for c in changes if c.kind is EventKind.FIRED and c.incident.queue == queue]
    return change.incident


async def test_silenced_incident_is_recorded_not_sent_then_sent_once_when_the_silence_ends(
    wired: tuple[Harness, Notifier, HttpReceiver],
) -> None:
    h, notifier, receiver = wired
    muted = await silence(h, minutes=5, queue_glob="pay*")
    h.source.put("emails", h.minute(0), **BAD)
    changes = await h.tick("payments", **BAD)
    payments = await fired(changes, "payments")
    emails = await fired(changes, "emails")
    # The unsilenced queue's notification arriving is the moment to look at the silenced one.
    await until(lambda: arrived(receiver, "emails"))
    assert sent_for(receiver, "payments") == [] and await notifier.deliveries(payments.id) == []
    stored = await h.engine.store.get(payments.id)
    assert stored is not None and stored.status is IncidentStatus.ACTIVE
    [decision] = stored.decisions
    assert (decision.outcome, decision.silence_id, decision.detail) == (
        Outcome.SILENCED,
        muted.id,
        "deploy of payments",
    )
    assert decision.until == muted.end_time and stored.held_event_id == decision.event_id
    other = await h.engine.store.get(emails.id)
    assert other is not None and [(d.outcome, d.channels) for d in other.decisions] == [
        (Outcome.NOTIFIED, ("oncall",))
    ]

    # Still silenced a few minutes on: nothing.
    for _ in range(3):
        await h.tick("payments", **BAD)
    assert await notifier.deliveries(payments.id) == []

    # The silence ends while the incident still fires: sent once, under the held transition's id.
    h.clock.advance(120)
    await h.tick("payments", **BAD)
    await until(lambda: arrived(receiver, "payments"))
    [delivery] = await notifier.deliveries(payments.id)
    assert delivery.transition_seq == decision.event_id
    await h.tick("payments", **BAD)
    await h.engine.release_held()
    assert len(await notifier.deliveries(payments.id)) == 1
    stored = await h.engine.store.get(payments.id)
    assert stored is not None and stored.held_event_id is None
    assert [d.outcome for d in stored.decisions] == [Outcome.SILENCED, Outcome.NOTIFIED]
    assert "ended" in stored.decisions[-1].detail


async def test_expiring_early_sends_what_was_held_and_a_resolved_incident_is_never_sent(
    wired: tuple[Harness, Notifier, HttpReceiver],
) -> None:
    h, notifier, receiver = wired
    muted = await silence(h, type=IncidentType.HIGH_FAILURE_RATE)
    changes = await h.tick("payments", **BAD)
    payments = await fired(changes, "payments")
    refunds = await fired(await h.tick("refunds", **BAD), "refunds")
    # refunds clears and resolves while silenced: its FIRED and RESOLVED are both held back for good.
    await h.tick("refunds", **GOOD)
    await h.tick("refunds", **GOOD)
    resolved = await h.engine.store.get(refunds.id)
    assert resolved is not None and resolved.status is IncidentStatus.RESOLVED
    assert [d.outcome for d in resolved.decisions] == [Outcome.SILENCED, Outcome.SILENCED]
    assert resolved.held_event_id is None

    expired = await h.engine.expire_silence(muted.id, "olivia")
    assert expired.state(h.engine.now()) is silences.SilenceState.EXPIRED and expired.expired_by == "olivia"
    await until(lambda: arrived(receiver, "payments"))
    assert len(await notifier.deliveries(payments.id)) == 1
    # Expiring again changes nothing and sends nothing more.
    again = await h.engine.expire_silence(muted.id, "olivia")
    assert again.end_time == expired.end_time
    await h.engine.release_held()
    assert len(await notifier.deliveries(payments.id)) == 1
    assert await notifier.deliveries(refunds.id) == []
    assert sent_for(receiver, "refunds") == []


async def test_matchers_and_their_validation_name_the_field(
    wired: tuple[Harness, Notifier, HttpReceiver],
) -> None:
    h, _, _ = wired
    incident = await fired(await h.tick("payments", **BAD), "payments")
    assert silences.Matchers(queue_glob="pay[mx]ents").matches(incident)
    assert not silences.Matchers(queue_glob="pay", type=IncidentType.HIGH_FAILURE_RATE).matches(incident)
    assert not silences.Matchers(worker_id="w-1").matches(incident)
    cases = {
        "silence.matchers": silences.Matchers(),
        "silence.matchers.queue_glob": silences.Matchers(queue_glob="pay[ments"),
        "silence.matchers.worker_id": silences.Matchers(worker_id="bad id with spaces"),
        "silence.matchers.labels[env]": silences.Matchers(labels={"env": "x" * 201}),
    }
    for field, matchers in cases.items():
        with pytest.raises(InvalidArgument) as caught:
            matchers.validate("silence.matchers")
        assert caught.value.field == field
    now = h.engine.now()
    with pytest.raises(InvalidArgument) as caught:
        silences.check_times(now, now - timedelta(minutes=1), now, "silence")
    assert caught.value.field == "silence.end_time"
    with pytest.raises(InvalidArgument) as caught:
        silences.check_comment("x" * 2001, "silence.comment")
    assert caught.value.field == "silence.comment"


async def test_stats_stale_inhibits_the_queue_rules_it_blinds_until_it_resolves(
    wired: tuple[Harness, Notifier, HttpReceiver],
) -> None:
    h, notifier, receiver = wired
    h.engine.config = replace(
        h.engine.config, notify_repeat_hours=0.05, stats_stale_minutes=2, incident_quiet_minutes=1
    )
    payments = await fired(await h.tick("payments", **BAD), "payments")
    await until(lambda: arrived(receiver, "payments"))

    # The data stops: STATS_STALE fires and is sent; the payments reminder falls due and is inhibited.
    stale: Incident | None = None
    for _ in range(10):
        changes = await h.tick()
        stale = next((c.incident for c in changes if c.incident.type is IncidentType.STATS_STALE), stale)
        current = await h.engine.store.get(payments.id)
        assert current is not None
        if current.decisions[-1].outcome is Outcome.INHIBITED:
            break
    assert stale is not None
    [first, inhibited] = current.decisions
    assert first.outcome is Outcome.NOTIFIED and inhibited.kind is EventKind.REMINDER
    assert inhibited.inhibited_by == f"STATS_STALE incident #{stale.id}"
    assert current.held_event_id == inhibited.event_id
    assert len(await notifier.deliveries(payments.id)) == 1

    # The data comes back: once STATS_STALE resolves, the held reminder is sent, once.
    for _ in range(5):
        await h.tick("payments", **BAD)
        resolved = await h.engine.store.get(stale.id)
        assert resolved is not None
        if resolved.status is IncidentStatus.RESOLVED:
            break
    assert resolved.status is IncidentStatus.RESOLVED

    async def two_sent() -> bool:
        return len(sent_for(receiver, "payments")) == 2

    await until(two_sent)
    deliveries = await notifier.deliveries(payments.id)
    assert [d.transition_seq for d in deliveries][1] == inhibited.event_id


async def test_a_maintenance_window_holds_back_inside_and_sends_once_it_closes(
    wired: tuple[Harness, Notifier, HttpReceiver],
) -> None:
    h, notifier, receiver = wired
    local = h.engine.now().astimezone(ZoneInfo("Asia/Seoul"))
    start = local.hour * 60 + local.minute
    window = await h.engine.create_window(
        windows.Window(
            0,
            silences.Matchers(queue_glob="pay*"),
            (windows.WEEKDAYS[local.weekday()],),
            start,
            start + 5,
            "Asia/Seoul",
            "olivia",
            "nightly batch",
            h.engine.now(),
        )
    )
    assert window.is_open(h.engine.now() + timedelta(minutes=1))
    assert not window.is_open(h.engine.now() + timedelta(minutes=5))
    assert not window.is_open(h.engine.now() + timedelta(days=1))
    h.source.put("emails", h.minute(0), **BAD)
    changes = await h.tick("payments", **BAD)
    payments = await fired(changes, "payments")
    await until(lambda: arrived(receiver, "emails"))
    assert await notifier.deliveries(payments.id) == []
    stored = await h.engine.store.get(payments.id)
    assert stored is not None
    [decision] = stored.decisions
    assert (decision.outcome, decision.window_id, decision.detail) == (
        Outcome.MAINTENANCE,
        window.id,
        "nightly batch",
    )

    # Still inside; then the window closes while payments still fires: sent once.
    for _ in range(5):
        await h.tick("payments", **BAD)
    await until(lambda: arrived(receiver, "payments"))
    await h.tick("payments", **BAD)
    [delivery] = await notifier.deliveries(payments.id)
    assert delivery.transition_seq == decision.event_id


async def test_a_paused_queue_mutes_its_no_worker_incident_until_resumed(
    wired: tuple[Harness, Notifier, HttpReceiver], redis: aioredis.Redis, redis_url: str, prefix: str
) -> None:
    h, notifier, receiver = wired
    h.engine.rulebook = RuleBook(replace(RULES, no_workers_pending_minutes=0), {})
    queue_prefix = f"{prefix}-bull"
    h.engine.inhibit_paused_with(PausedQueues(BullMQBackend(redis, queue_prefix)).paused)
    queue = Queue("payments", {"connection": redis_url, "prefix": queue_prefix})
    try:
        await queue.add("job", {})
        await queue.pause()
        # The last collected minute still shows waiting jobs and no worker: the rule fires, muted.
        payments = await fired(await h.tick("payments", waiting=1, online_workers=0), "payments")
        assert payments.type is IncidentType.WORKER_DOWN
        stored = await h.engine.store.get(payments.id)
        assert stored is not None
        [decision] = stored.decisions
        assert (decision.outcome, decision.inhibited_by) == (Outcome.INHIBITED, "queue payments paused")
        await h.tick("payments", waiting=1, online_workers=0)
        assert await notifier.deliveries(payments.id) == []

        # Resumed with the jobs still waiting and no worker: sent, once.
        await queue.resume()
        await h.tick("payments", waiting=1, online_workers=0)
        await until(lambda: arrived(receiver, "payments"))
        await h.tick("payments", waiting=1, online_workers=0)
        [delivery] = await notifier.deliveries(payments.id)
        assert delivery.transition_seq == decision.event_id
    finally:
        await queue.obliterate({"force": True})
        await queue.close()
