"""Notification routes and grouping: which routes take an incident, which channels then hear of it,
and FIRED notifications of one route sent as one message. Real HTTP receivers and a real SMTP server,
the taskiq receiver on the real Redis, the delivery log on SQLite and PostgreSQL.
"""

# The notifier fixtures are test_notify_delivery's, imported by name: the arguments naming them are
# how pytest hands them over, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import email
import email.policy
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from tests.incidents.test_notify_delivery import (  # noqa: F401 - fixtures used by name
    Incident,
    SmtpHandler,
    Transition,
    _seq,
    channels,
    fired,
    hook,
    make_notifier,
    notify_engine,
    settled,
    smtp_server,
    until,
)
from tests.support.fakes import DateClock
from tests.support.webhooks import HttpReceiver
from workermon_incidents import routing
from workermon_incidents.notify.models import DeliveryStatus
from workermon_incidents.notify.payloads import kakaowork_payload, sample_event, webhook_payload
from workermon_incidents.notify.tasks import Notifier
from workermon_incidents.routing import Route
from workermon_incidents.rules import IncidentType, Severity

Start = Callable[..., Awaitable[HttpReceiver]]
MakeNotifier = Callable[..., Awaitable[Notifier]]


def names(routes: list[Route]) -> list[str]:
    return [r.name for r in routes]


# --- matching -------------------------------------------------------------------------------------


def test_first_match_continue_matching_and_the_default_route() -> None:
    payments = Route("payments", ("pay-slack",), queue_glob="payments*", continue_matching=True)
    critical = Route("critical", ("pager",), severities=frozenset({Severity.CRITICAL}))
    default = Route("default", ("ops",))
    routes = [payments, critical, default]

    # payments continues: the CRITICAL route takes it too, and stops there (no default).
    assert names(routing.select(routes, Incident(queue="payments-eu", severity="CRITICAL"))) == [
        "payments",
        "critical",
    ]
    # Not CRITICAL: payments continues, the default route takes the rest.
    assert names(routing.select(routes, Incident(queue="payments-eu", severity="WARNING"))) == [
        "payments",
        "default",
    ]
    assert names(routing.select(routes, Incident(queue="emails", severity="CRITICAL"))) == ["critical"]
    assert names(routing.select(routes, Incident(queue="emails", severity="INFO"))) == ["default"]
    # Without continue the first match is the only one.
    first_only = [Route("payments", ("pay-slack",), queue_glob="payments*"), critical, default]
    assert names(routing.select(first_only, Incident(queue="payments", severity="CRITICAL"))) == ["payments"]
    assert routing.channels_of(routing.select(routes, Incident(queue="payments", severity="CRITICAL"))) == (
        "pay-slack",
        "pager",
    )
    assert default.matches_everything and not payments.matches_everything


def test_type_severity_queue_glob_and_worker_labels_match() -> None:
    by_type = Route("backlog", types=frozenset({IncidentType.QUEUE_BACKLOG}))
    assert by_type.matches(Incident(type="QUEUE_BACKLOG"))
    assert not by_type.matches(Incident(type="HIGH_FAILURE_RATE"))
    by_glob = Route("eu", queue_glob="*-eu-?")
    assert by_glob.matches(Incident(queue="mail-eu-1"))
    assert not by_glob.matches(Incident(queue="mail-us-1"))
    assert not by_glob.matches(Incident(queue=None, worker_id="w1"))
    severe = Route("severe", severities=frozenset({Severity.CRITICAL, Severity.WARNING}))
    assert severe.matches(Incident(severity="WARNING")) and not severe.matches(Incident(severity="INFO"))
    # Worker labels arrive as incident labels "worker.<key>"; every one asked for must be there.
    team = Route("team", worker_labels={"team": "payments", "region": "eu"})
    worker = {"worker.team": "payments", "worker.region": "eu", "worker.host": "a"}
    assert team.matches(Incident(queue=None, worker_id="w1", labels=worker))
    assert not team.matches(Incident(queue=None, worker_id="w1", labels={"worker.team": "payments"}))
    assert not team.matches(Incident(queue=None, worker_id="w1", labels={"team": "payments", "region": "eu"}))
    # Every matcher set must match.
    both = Route("both", queue_glob="payments", severities=frozenset({Severity.CRITICAL}))
    assert both.matches(Incident(queue="payments", severity="CRITICAL"))
    assert not both.matches(Incident(queue="payments", severity="WARNING"))


# --- routing deliveries ---------------------------------------------------------------------------


async def test_routes_pick_the_channels_and_no_routes_means_every_channel(
    http_server: Start, make_notifier: MakeNotifier
) -> None:
    pay = await http_server()
    pager = await http_server()
    ops = await http_server()
    configured = channels(hook("pay", pay.url), hook("pager", pager.url), hook("ops", ops.url))
    routes = [
        Route("payments", ("pay",), queue_glob="payments*", continue_matching=True, group_wait_seconds=0),
        Route("critical", ("pager",), severities=frozenset({Severity.CRITICAL}), group_wait_seconds=0),
        Route("default", ("ops",), group_wait_seconds=0),
    ]
    notifier = await make_notifier(configured, routes=routes)

    payments_critical = fired(501, queue="payments-eu", severity="CRITICAL")
    assert notifier.route(payments_critical.incident, "FIRED") == (("payments", "critical"), ("pay", "pager"))
    for delivery_id in await notifier.submit(payments_critical):
        assert await settled(notifier, delivery_id) is DeliveryStatus.DELIVERED
    emails_warning = fired(502, queue="emails", severity="WARNING")
    for delivery_id in await notifier.submit(emails_warning):
        assert await settled(notifier, delivery_id) is DeliveryStatus.DELIVERED
    assert [r.body["incidentId"] for r in pay.accepted] == [501]
    assert [r.body["incidentId"] for r in pager.accepted] == [501]
    assert [r.body["incidentId"] for r in ops.accepted] == [502]

    # A resolve goes along the same routes, still only to the channels that want resolves.
    notifier.configure(
        channels(hook("pay", pay.url), hook("pager", pager.url, send_resolved=False), hook("ops", ops.url)),
        routes,
    )
    resolved = Transition(Incident(501, queue="payments-eu", severity="CRITICAL"), "RESOLVED", next(_seq))
    (resolved_id,) = await notifier.submit(resolved)
    assert await settled(notifier, resolved_id) is DeliveryStatus.DELIVERED
    assert [r.body["reason"] for r in pay.accepted] == ["fired", "resolved"]

    # Without routes (a reload that removed them) every channel hears of every incident again.
    notifier.configure(configured, [])
    assert notifier.routes == []
    created = await notifier.submit(fired(503, queue="emails", severity="INFO"))
    assert len(created) == 3
    for delivery_id in created:
        assert await settled(notifier, delivery_id) is DeliveryStatus.DELIVERED
    assert [r.body["incidentId"] for r in ops.accepted] == [502, 503]
    assert notifier.route(Incident(504), "FIRED") == ((), ("pay", "pager", "ops"))


async def test_worker_labels_route_a_worker_incident(http_server: Start, make_notifier: MakeNotifier) -> None:
    team = await http_server()
    ops = await http_server()
    routes = [
        Route("payments-workers", ("team",), worker_labels={"team": "payments"}, group_wait_seconds=0),
        Route("default", ("ops",), group_wait_seconds=0),
    ]
    notifier = await make_notifier(channels(hook("team", team.url), hook("ops", ops.url)), routes=routes)
    worker_down = fired(
        601, type="WORKER_DOWN", queue=None, worker_id="w-7", labels={"worker.team": "payments"}
    )
    (delivery_id,) = await notifier.submit(worker_down)
    assert await settled(notifier, delivery_id) is DeliveryStatus.DELIVERED
    assert [r.body["incidentId"] for r in team.accepted] == [601] and ops.requests == []


# --- grouping -------------------------------------------------------------------------------------


def _grouping_routes(wait: int = 30) -> list[Route]:
    return [Route("all", ("hook", "slack", "tpl", "solo"), group_wait_seconds=wait)]


async def test_fired_within_the_group_wait_go_in_one_message_and_a_later_one_in_the_next(
    http_server: Start, make_notifier: MakeNotifier
) -> None:
    receiver = await http_server()
    slack = await http_server()
    templated = await http_server()
    clock = DateClock()
    notified: list[tuple[int, str]] = []

    async def on_delivered(incident_id: int, channel: str) -> None:
        notified.append((incident_id, channel))

    template = '{"count": {{ incidents | length }}, "first": {{ incident.incident_id }}}'
    notifier = await make_notifier(
        channels(
            hook("hook", receiver.url),
            {"name": "slack", "type": "slack", "url": slack.url},
            hook("tpl", templated.url, template=template),
        ),
        clock=clock,
        routes=_grouping_routes(),
        on_delivered=on_delivered,
    )
    created: list[int] = []
    for incident_id in (701, 702, 703):
        created += await notifier.submit(fired(incident_id, title=f"Incident {incident_id}"))
        clock.advance(timedelta(seconds=5))
    rows = [await notifier.store.get(i) for i in created]
    leaders = [r for r in rows if r is not None and r.status is DeliveryStatus.QUEUED]
    members = [r for r in rows if r is not None and r.status is DeliveryStatus.GROUPED]
    assert len(leaders) == 3 and len(members) == 6  # one group per channel
    assert all(r.incident_id == 701 for r in leaders)
    assert receiver.requests == []  # the group is still waiting

    clock.advance(timedelta(seconds=16))  # 31 s after the group opened
    for delivery_id in created:
        assert await settled(notifier, delivery_id) is DeliveryStatus.DELIVERED
    (message,) = receiver.accepted
    assert [a["labels"]["alertname"] for a in message.body["alerts"]] == ["FAILURE_RATE"] * 3
    assert [a["fingerprint"] for a in message.body["alerts"]] == ["fp-701", "fp-702", "fp-703"]
    assert message.body["reason"] == "fired" and message.body["incidentId"] == 701
    (slack_message,) = slack.accepted
    listed = [b["text"]["text"] for b in slack_message.body["blocks"] if b["type"] == "section"]
    assert len(listed) == 3
    assert all(f"Incident {i}" in t for i, t in zip((701, 702, 703), listed, strict=True))
    assert "3 incidents" in slack_message.body["text"]
    (templated_message,) = templated.accepted
    assert templated_message.body == {"count": 3, "first": 701}
    # Every incident the messages carried is reported delivered (its NOTIFIED entry), once per channel;
    # the reports follow the row's DELIVERED status.
    expected = sorted((i, c) for i in (701, 702, 703) for c in ("hook", "slack", "tpl"))

    async def all_reported() -> bool:
        return sorted(notified) == expected

    await until(all_reported)
    assert len(notified) == 9

    # After the group went, a new FIRED opens the next group: a second message, with it alone.
    later = await notifier.submit(fired(704))
    clock.advance(timedelta(seconds=31))
    for delivery_id in later:
        assert await settled(notifier, delivery_id) is DeliveryStatus.DELIVERED
    assert len(receiver.accepted) == 2
    assert [a["fingerprint"] for a in receiver.accepted[1].body["alerts"]] == ["fp-704"]
    assert "blocks" in slack.accepted[1].body and len(slack.accepted) == 2


async def test_only_fired_groups_and_zero_wait_or_other_routes_do_not(
    http_server: Start, make_notifier: MakeNotifier
) -> None:
    receiver = await http_server()
    clock = DateClock()
    routes = [
        Route("now", ("hook",), queue_glob="urgent", group_wait_seconds=0),
        Route("grouped", ("hook",), group_wait_seconds=30),
    ]
    notifier = await make_notifier(channels(hook("hook", receiver.url)), clock=clock, routes=routes)
    # group_wait 0: sent at once, without the clock moving.
    (urgent,) = await notifier.submit(fired(801, queue="urgent"))
    assert await settled(notifier, urgent) is DeliveryStatus.DELIVERED
    # Reminders are never held for a group.
    (reminder,) = await notifier.submit(Transition(Incident(802), "REMINDER", next(_seq)))
    assert await settled(notifier, reminder) is DeliveryStatus.DELIVERED
    assert [r.body["reason"] for r in receiver.accepted] == ["fired", "reminder"]
    row = await notifier.store.get(reminder)
    assert row is not None and row.group_key is None


async def test_a_waiting_group_survives_a_notifier_restart(
    http_server: Start, make_notifier: MakeNotifier
) -> None:
    receiver = await http_server()
    clock = DateClock()
    configured = channels(hook("hook", receiver.url))
    first = await make_notifier(configured, clock=clock, routes=_grouping_routes(), receiver=False)
    created = await first.submit(fired(901))
    created += await first.submit(fired(902))
    await first.stop()  # the process goes away while the group waits

    clock.advance(timedelta(seconds=31))
    second = await make_notifier(configured, clock=clock, routes=_grouping_routes())
    for delivery_id in created:
        assert await settled(second, delivery_id) is DeliveryStatus.DELIVERED
    (message,) = receiver.accepted
    assert [a["fingerprint"] for a in message.body["alerts"]] == ["fp-901", "fp-902"]
    # A second notifier (another replica) finds nothing more to send.
    other = await make_notifier(configured, clock=clock, routes=_grouping_routes())
    assert (await other.recover(startup=True))[1] == []
    assert len(receiver.requests) == 1


async def test_two_replicas_fill_one_group_and_send_it_once(
    http_server: Start, make_notifier: MakeNotifier
) -> None:
    receiver = await http_server()
    clock = DateClock()
    configured = channels(hook("hook", receiver.url))
    one = await make_notifier(configured, clock=clock, routes=_grouping_routes())
    two = await make_notifier(configured, clock=clock, routes=_grouping_routes())
    created = await one.submit(fired(971)) + await two.submit(fired(972)) + await one.submit(fired(973))
    clock.advance(timedelta(seconds=31))
    for delivery_id in created:
        assert await settled(one, delivery_id) is DeliveryStatus.DELIVERED
    # Both replicas' receivers had the leader's task; one claimed it, and its message carries all three.
    await one.recover(startup=True)
    await two.recover(startup=True)
    (message,) = receiver.requests
    assert [a["fingerprint"] for a in message.body["alerts"]] == ["fp-971", "fp-972", "fp-973"]


async def test_a_pagerduty_channel_on_a_grouping_route_gets_one_event_per_incident(
    http_server: Start, make_notifier: MakeNotifier
) -> None:
    hook_receiver, pagerduty = await http_server(), await http_server()
    clock = DateClock()
    routing_key = "R0uT1nGk3Y0123456789abcdefABCDEF"
    configured = channels(
        hook("hook", hook_receiver.url),
        {"name": "solo", "type": "pagerduty", "routing_key": routing_key, "url": pagerduty.url},
    )
    notifier = await make_notifier(configured, clock=clock, routes=_grouping_routes())
    assert [c.groups for c in notifier.channels] == [True, False]
    created = await notifier.submit(fired(951)) + await notifier.submit(fired(952))

    # PagerDuty's events are per incident (its dedup_key): they go at once, one each, while the
    # webhook's group still waits.
    async def both_events() -> list[Any] | None:
        return pagerduty.accepted if len(pagerduty.accepted) == 2 else None

    events = await until(both_events)
    assert sorted(e.body["dedup_key"] for e in events) == ["fp-951", "fp-952"]
    assert {e.body["event_action"] for e in events} == {"trigger"}
    assert hook_receiver.requests == []
    clock.advance(timedelta(seconds=31))
    for delivery_id in created:
        assert await settled(notifier, delivery_id) is DeliveryStatus.DELIVERED
    (message,) = hook_receiver.accepted
    assert [a["fingerprint"] for a in message.body["alerts"]] == ["fp-951", "fp-952"]
    assert len(pagerduty.requests) == 2


async def test_a_group_by_email_lists_every_incident(
    smtp_server: Callable[..., tuple[SmtpHandler, int]], make_notifier: MakeNotifier
) -> None:
    handler, port = smtp_server()
    smtp = {"host": "127.0.0.1", "port": port, "from": "alerts@example.com", "to": ["ops@example.com"]}
    clock = DateClock()
    notifier = await make_notifier(
        channels({"name": "mail", "type": "email", "smtp": smtp}),
        clock=clock,
        routes=[Route("mail", ("mail",), group_wait_seconds=10)],
    )
    created = await notifier.submit(fired(961, title="Payments failing"))
    created += await notifier.submit(fired(962, title="Refunds failing", severity="WARNING"))
    clock.advance(timedelta(seconds=11))
    for delivery_id in created:
        assert await settled(notifier, delivery_id) is DeliveryStatus.DELIVERED
    (envelope,) = await until(_envelopes(handler))
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert str(message["Subject"]).strip().startswith("[FIRING] 2 incidents, up to CRITICAL")
    assert message["X-Workermon-Incident"] == "961,962"
    plain = message.get_body(("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "Payments failing" in text and "Refunds failing" in text


def _envelopes(handler: SmtpHandler) -> Callable[[], Awaitable[list[Any]]]:
    async def probe() -> list[Any]:
        return list(handler.envelopes)

    return probe


# --- group payloads -------------------------------------------------------------------------------


def test_group_payloads_carry_every_incident() -> None:
    first = sample_event()
    second = replace(first, seq=2, incident_id=2, fingerprint="fp-2", queue="refunds", severity="WARNING")
    webhook, kakao = channels(
        hook("hook", "https://hooks.example/x", link="https://ops.example/i/{incident_id}"),
        {"name": "kakao", "type": "kakaowork", "url": "https://kakaowork.example/hook"},
    )
    body = webhook_payload(first, webhook, [second])
    assert [a["labels"]["queue"] for a in body["alerts"]] == ["emails", "refunds"]
    assert [a["generatorURL"] for a in body["alerts"]] == [
        "https://ops.example/i/1",
        "https://ops.example/i/2",
    ]
    # Only what every alert shares is common; the group key names every incident.
    assert body["commonLabels"] == {"alertname": "FAILURE_RATE", "team": "ops"}
    assert body["groupKey"] == '{}:{incident="1,2"}'
    single = webhook_payload(first, webhook)
    assert len(single["alerts"]) == 1 and single["commonLabels"]["queue"] == "emails"
    message = kakaowork_payload(first, kakao, [second])
    texts = [b["text"] for b in message["blocks"] if b["type"] == "text"]
    assert len(texts) == 2 and "refunds" in texts[1]
    assert message["text"] == "[FIRING] 2 incidents, up to CRITICAL"
