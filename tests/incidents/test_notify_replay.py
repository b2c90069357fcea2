"""Replay after a crash: a transition committed whose callback never ran (the engine here has no notifier,
as if the process died between the commit and `handle`) is notified when a notifier starts, exactly once
per channel, however often the replay runs. Real engine and delivery log (SQLite and PostgreSQL), real
Redis for the tasks, real HTTP receivers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.suites import Config
from tests.support.webhooks import HttpReceiver
from workermon_incidents import silences
from workermon_incidents.incident import Outcome
from workermon_incidents.notify.channels import Channel, parse_channels
from workermon_incidents.notify.models import DeliveryStatus
from workermon_incidents.notify.tasks import Notifier, build_broker
from workermon_incidents.replay import notified_since
from workermon_incidents.rules import RuleConfig
from workermon_incidents.settings import IncidentSettings

from .conftest import Harness

T = TypeVar("T")

FIRES_AT_ONCE = RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=0)
BAD = {"completed": 10, "failed": 10}


@pytest.fixture
async def make_notifier(
    db: AsyncEngine, redis_url: str, prefix: str, redis: aioredis.Redis
) -> AsyncIterator[Callable[..., Awaitable[Notifier]]]:
    running: list[Notifier] = []
    queues: set[str] = set()

    async def make(h: Harness, channels: list[Channel], clock: Callable[[], datetime]) -> Notifier:
        broker = build_broker(redis_url, prefix)
        queues.add(broker.queue_name)
        notifier = Notifier(
            Config().of(IncidentSettings),
            db,
            broker,
            clock,
            channels=channels,
            replay=functools.partial(notified_since, h.engine.store),
        )
        await notifier.start()
        running.append(notifier)
        return notifier

    yield make
    for notifier in running:
        await notifier.stop()
    if queues:
        await redis.delete(*queues)


def webhooks(*receivers: tuple[str, HttpReceiver]) -> list[Channel]:
    return parse_channels(json.dumps([{"name": n, "type": "webhook", "url": r.url} for n, r in receivers]))


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


async def test_a_transition_whose_callback_never_ran_is_notified_once_at_start(
    harness_factory: Callable[..., Harness],
    http_server: Callable[..., Awaitable[HttpReceiver]],
    make_notifier: Callable[..., Awaitable[Notifier]],
) -> None:
    h = harness_factory(FIRES_AT_ONCE)
    # Fired long before the replay window: its notification was someone else's business back then.
    (old,) = await h.tick("ancient", **BAD)
    h.clock.advance(90 * 60)
    # Silenced: decided SILENCED, so never replayed.
    now = h.engine.now()
    muted = silences.Silence(
        0, silences.Matchers(queue_glob="muted"), now, now + timedelta(hours=1), "adam", "deploy", now
    )
    await h.engine.create_silence(muted)
    changes = await h.tick("emails", **BAD) + await h.tick("muted", **BAD)
    fired = {c.incident.queue: c for c in changes}
    assert set(fired) == {"emails", "muted"}
    crashed = fired["emails"]
    silenced = await h.engine.store.get(fired["muted"].incident.id)
    assert silenced is not None and silenced.decisions[-1].outcome is Outcome.SILENCED

    first, second = await http_server(), await http_server()
    config = webhooks(("first", first), ("second", second))

    def clock() -> datetime:
        return datetime.fromtimestamp(h.clock(), tz=UTC) + timedelta(minutes=1)

    notifier = await make_notifier(h, config, clock)

    async def both_delivered() -> bool:
        rows = await notifier.deliveries(crashed.incident.id)
        return len(rows) == 2 and all(r.status is DeliveryStatus.DELIVERED for r in rows)

    await until(both_delivered)
    for receiver in (first, second):
        (request,) = receiver.requests
        body: dict[str, Any] = request.body
        assert body["incidentId"] == crashed.incident.id and body["sequence"] == crashed.event_id
        assert body["reason"] == "fired"
    assert await notifier.deliveries(old.incident.id) == []
    assert await notifier.deliveries(fired["muted"].incident.id) == []

    # Again, and after a restart: the delivery key makes both a no-op.
    assert await notifier.replay() == []
    await notifier.stop()
    restarted = await make_notifier(h, config, clock)
    assert await restarted.replay() == []
    assert len(await restarted.deliveries(crashed.incident.id)) == 2
    assert len(first.requests) == 1 and len(second.requests) == 1


async def test_replay_takes_the_kind_and_time_of_each_notified_transition(
    harness_factory: Callable[..., Harness], db: AsyncEngine
) -> None:
    h = harness_factory(FIRES_AT_ONCE)
    (fired,) = await h.tick("emails", **BAD)
    h.clock.advance(60)
    await h.engine.acknowledge(fired.incident.id, "olivia", "on it")
    h.clock.advance(60)
    await h.engine.resolve(fired.incident.id, "adam", "fixed")

    since = datetime.fromtimestamp(h.clock(), tz=UTC) - timedelta(minutes=10)
    replayed = await notified_since(h.engine.store, since)
    assert [t.kind for t in replayed] == ["FIRED", "ACKNOWLEDGED", "RESOLVED"]
    assert [t.seq for t in replayed] == sorted(t.seq for t in replayed)
    assert [t.incident.status.value for t in replayed] == ["ACTIVE", "ACKNOWLEDGED", "RESOLVED"]
    assert replayed[0].at == fired.at
    later = datetime.fromtimestamp(h.clock(), tz=UTC) - timedelta(seconds=30)
    assert [t.kind for t in await notified_since(h.engine.store, later)] == ["RESOLVED"]


async def test_a_hold_released_within_the_window_is_replayed_however_old_its_entry(
    harness_factory: Callable[..., Harness],
    http_server: Callable[..., Awaitable[HttpReceiver]],
    make_notifier: Callable[..., Awaitable[Notifier]],
) -> None:
    h = harness_factory(FIRES_AT_ONCE)
    now = h.engine.now()
    silence = await h.engine.create_silence(
        silences.Silence(
            0, silences.Matchers(queue_glob="emails"), now, now + timedelta(hours=3), "adam", "migration", now
        )
    )
    (held,) = await h.tick("emails", **BAD)
    incident = await h.engine.store.get(held.incident.id)
    assert incident is not None and incident.held_event_id == held.event_id
    # Two hours on (twice the replay window), still firing, the silence is ended: the release commits
    # a FIRED under the held entry's id, and the process dies before its callback runs.
    h.clock.advance(120 * 60)
    await h.engine.expire_silence(silence.id, "adam")
    released = await h.engine.store.get(held.incident.id)
    assert released is not None and released.held_event_id is None
    assert released.decisions[-1].outcome is Outcome.NOTIFIED

    receiver = await http_server()

    def clock() -> datetime:
        return datetime.fromtimestamp(h.clock(), tz=UTC) + timedelta(minutes=1)

    notifier = await make_notifier(h, webhooks(("hook", receiver)), clock)

    async def delivered() -> bool:
        rows = await notifier.deliveries(held.incident.id)
        return len(rows) == 1 and rows[0].status is DeliveryStatus.DELIVERED

    await until(delivered)
    (request,) = receiver.requests
    assert request.body["sequence"] == held.event_id and request.body["reason"] == "fired"
    (replayed,) = await notified_since(h.engine.store, clock() - timedelta(minutes=60))
    assert replayed.seq == held.event_id and replayed.at == released.decisions[-1].at
    assert await notifier.replay() == []
    assert len(receiver.requests) == 1
