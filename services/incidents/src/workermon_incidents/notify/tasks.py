"""Sending notifications: the engine's transition callback, and the taskiq task that delivers.

`Notifier.handle(transition)` is what the incident engine calls (`submit` does the same and returns
the ids of the deliveries it created). It picks the channels that want the transition (every channel
when no routes are configured; otherwise the channels of the routes that take the incident, plus
the escalation steps taken for a reminder, an acknowledgement or a resolve), inserts one
delivery row per channel (ON CONFLICT DO NOTHING on (transition_seq, channel): a transition seen
again, after a restart or by another replica, creates nothing) and enqueues one `deliver` task per
row it created. One task per channel is what keeps a slow or failing
channel from delaying or repeating another. FIRED notifications of one route to a channel that groups
wait `group_wait_seconds` in one group and go out as one message (see store.py).

`deliver(delivery_id, attempts)` makes one attempt: it claims the row (QUEUED -> SENDING, a guarded
UPDATE only one caller wins), sends with httpx or aiosmtplib, records the attempt and moves the row
on: 2xx -> DELIVERED; 5xx, 408, 429, timeouts and connection errors -> QUEUED again with an
exponential backoff (1 s, 2 s, 4 s ... capped; a longer Retry-After wins), or GAVE_UP after
max_attempts; any other answer -> FAILED at once. A row found SENDING after a crash is marked UNKNOWN
and never sent again: at most once per channel, not at least once.

Retries are re-enqueued by the task itself, not by taskiq's SmartRetryMiddleware: the middleware
counts attempts in message labels, which die with the process, and asks the broker for a delayed
message, which ListQueueBroker does not support (it would retry at once) unless a schedule source
and a scheduler run beside it. Here the attempt count and the next attempt's time are in the row:
the re-enqueued task waits until then, and a restart finds every unfinished delivery in the table
(`recover` re-enqueues QUEUED rows; duplicated messages are harmless because a message names the
attempt it is for and `claim` accepts it only once).

A transition committed just before the process died never reached `handle`: at start (and from the
sweep until it succeeds once) `replay` submits again the transitions of the last
WORKERMON_NOTIFY_REPLAY_MINUTES that the engine decided to notify, read by a `ReplaySource`; the
unique key turns those already handled into no-ops. A PagerDuty delivery waits for the earlier
transitions on the same channel of its incident, and of older incidents of its fingerprint (the same
dedup_key), to finish, since PagerDuty applies events in the order they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiosmtplib
import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker, Context, TaskiqDepends
from taskiq.api import run_receiver_task

from workermon_core.backoff import Backoff
from workermon_core.protos import utcnow
from workermon_core.redis_store import key_prefix
from workermon_core.server import Outage
from workermon_core.task_queue import TaskQueueBroker

from .. import routing
from ..routing import Route
from ..settings import IncidentSettings
from .channels import MAX_TIMEOUT_SECONDS, Channel, ChannelType
from .events import IncidentLike, NotifyEvent, TransitionKind, TransitionLike, kind_of, snapshot
from .models import AttemptOutcome, DeliveryStatus
from .payloads import TemplateRenderError, email_message, http_request
from .store import Attempt, Delivery, DeliveryStore, NewDelivery

log = structlog.get_logger("workermon.incidents.notify")

DELIVER_TASK = "workermon.incidents.notify_deliver"
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_BACKOFF_CAP = 300.0
# How often stuck deliveries are looked for (a lost task message, a replica that died mid-send).
DEFAULT_SWEEP_INTERVAL = 30.0
# A QUEUED delivery this far past its time has lost its task message and is enqueued again.
REKICK_GRACE = timedelta(seconds=60)
# A SENDING row older than its channel's timeout plus this was interrupted.
SENDING_GRACE = timedelta(seconds=30)
_REPLY_MAX = 500
# How often a PagerDuty delivery waiting for an earlier one of its incident looks again.
ORDER_POLL_SECONDS = 0.2

Clock = Callable[[], datetime]
# Called once a delivery is DELIVERED, with (incident id, channel name): the engine's record_notified.
OnDelivered = Callable[[int, str], Awaitable[object]]
# The transitions committed since a moment that were decided NOTIFIED, oldest first (the engine's
# timeline): replayed at start, for those whose callback died with the last process.
ReplaySource = Callable[[datetime], Awaitable[Sequence[TransitionLike]]]


async def deliver(
    delivery_id: int,
    attempts: int = 0,
    context: Context = TaskiqDepends(),  # noqa: B008 - taskiq's injection idiom
) -> None:
    """Make the attempt after `attempts` attempts of delivery `delivery_id` (taskiq task)."""
    notifier: Notifier = context.state.notifier
    await notifier.deliver(delivery_id, attempts)


def build_broker(redis_url: str, prefix: str, queue: str = "notify") -> TaskQueueBroker:
    """A broker for the delivery tasks on the suite's Redis (`{prefix}:taskiq:notify`); its receiver
    backs off while Redis is down."""
    return TaskQueueBroker(redis_url, key_prefix(prefix) + ":taskiq:" + queue)


@dataclass(frozen=True, slots=True)
class _Result:
    """What one send attempt came to."""

    outcome: AttemptOutcome  # DELIVERED, RETRY or FAILED
    status_code: int | None = None
    reply: str | None = None
    error: str | None = None
    retry_after: float | None = None


# What one attempt came to, for callers outside this module (a channel test).
SendResult = _Result


class Notifier:
    """Turns incident transitions into deliveries and delivers them through taskiq tasks.

    `engine` is the SQLAlchemy engine of the incident database (with migration 0002 applied);
    `broker` carries the tasks (see `build_broker`); `clock` gives aware UTC datetimes. `channels`
    replaces the configured ones (tests); `on_delivered(incident_id, channel)` is awaited after each
    delivery arrives (the engine's `record_notified`, for the incident's timeline and counter).
    `routes` (routing.Route) pick the channels of each incident; none: every channel. `configure`
    swaps channels and routes at runtime.
    """

    def __init__(
        self,
        settings: IncidentSettings,
        engine: AsyncEngine,
        broker: AsyncBroker,
        clock: Clock = utcnow,
        *,
        channels: Sequence[Channel] | None = None,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
        on_delivered: OnDelivered | None = None,
        replay: ReplaySource | None = None,
        routes: Sequence[Route] = (),
    ) -> None:
        self._settings = settings
        self._store = DeliveryStore(engine)
        self._broker = broker
        self._clock = clock
        configured = settings.channels if channels is None else list(channels)
        self._channels: dict[str, Channel] = {c.name: c for c in configured}
        self._routes: tuple[Route, ...] = tuple(routes)
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._sweep_interval = sweep_interval
        self._on_delivered = on_delivered
        self._replay_source = replay
        # Until one replay succeeds (the database may be down at start), the sweep tries again.
        self._replayed = False
        self._http: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Deliveries under way in this process: taskiq's receiver leaves its tasks running when it is
        # cancelled, so stop() cancels them itself.
        self._running: set[asyncio.Task[object]] = set()
        self._stopped = False
        self._sweep_outage = Outage("notify_sweep")
        broker.state.notifier = self
        self._task = broker.register_task(deliver, task_name=DELIVER_TASK)

    @property
    def channels(self) -> list[Channel]:
        """The configured channels."""
        return list(self._channels.values())

    @property
    def routes(self) -> list[Route]:
        """The configured routes (empty: every channel gets every notification)."""
        return list(self._routes)

    def configure(self, channels: Sequence[Channel], routes: Sequence[Route]) -> None:
        """Swap the channels and routes (a configuration reload); deliveries under way keep going."""
        # One assignment each: a transition handled meanwhile sees the old pair or the new one.
        self._channels = {c.name: c for c in channels}
        self._routes = tuple(routes)

    @property
    def store(self) -> DeliveryStore:
        """The delivery log."""
        return self._store

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self, *, receiver: bool = True, max_async_tasks: int = 64) -> None:
        """Start the broker, recover unfinished deliveries, run the receiver (and the sweep) here."""
        self._stopped = False
        self._http = httpx.AsyncClient(follow_redirects=False)
        await self._broker.startup()
        try:
            await self.recover(startup=True)
        except Exception as exc:
            # The sweep tries again; a database down at start must not keep the service down.
            self._sweep_outage.failed(exc)
        if receiver:
            self._tasks.append(
                asyncio.create_task(
                    run_receiver_task(self._broker, run_startup=False, max_async_tasks=max_async_tasks)
                )
            )
        self._tasks.append(asyncio.create_task(self._sweep_loop()))

    async def stop(self) -> None:
        """Stop the receiver and the sweep, close the broker and the HTTP client.

        Deliveries waiting for a retry stay QUEUED in the table; the next start re-enqueues them.
        """
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        running = list(self._running)
        for running_task in running:
            running_task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self._broker.shutdown()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def recover(self, *, startup: bool = False) -> tuple[list[int], list[int]]:
        """Mark interrupted SENDING rows UNKNOWN and re-enqueue QUEUED rows whose task is lost.

        At start every QUEUED row is enqueued again (their messages may have died with the last
        process); afterwards only those overdue by REKICK_GRACE. Returns (marked unknown, re-enqueued).
        """
        now = self._clock()
        lease = timedelta(seconds=max((c.timeout_seconds for c in self._channels.values()), default=0.0))
        stale_before = now - max(lease, timedelta(seconds=1)) - SENDING_GRACE
        unknown = await self._store.mark_unknown(stale_before, now)
        for delivery_id in unknown:
            log.warning("notification_outcome_unknown", delivery_id=delivery_id)
        queued = await self._store.queued(None if startup else now - REKICK_GRACE)
        kicked: list[int] = []
        for delivery in queued:
            await self._kick(delivery.id, delivery.attempts)
            kicked.append(delivery.id)
        if startup or not self._replayed:
            await self.replay()
        return unknown, kicked

    async def replay(self) -> list[int]:
        """Submit again the transitions decided NOTIFIED in the last WORKERMON_NOTIFY_REPLAY_MINUTES.

        A transition committed just before the process died never reached `handle`; the delivery key
        (transition_seq, channel) makes this a no-op for those that did. Returns the deliveries created.
        """
        minutes = self._settings.notify_replay_minutes
        if self._replay_source is None or minutes <= 0:
            self._replayed = True
            return []
        since = self._clock() - timedelta(minutes=minutes)
        created: list[int] = []
        for transition in await self._replay_source(since):
            created += await self._record(transition)
        self._replayed = True
        if created:
            log.warning("notifications_replayed", deliveries=len(created), since=since.isoformat())
        return created

    async def _sweep_loop(self) -> None:
        while True:
            await self._sweep_outage.pause(self._sweep_interval)
            try:
                await self.recover()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._sweep_outage.failed(exc)
            else:
                self._sweep_outage.ok()

    # --- the engine's callback ----------------------------------------------------------------------

    def wants(self, channel: Channel, kind: TransitionKind) -> bool:
        """Whether `channel` is notified of a `kind` transition."""
        if kind is TransitionKind.RESOLVED:
            return channel.send_resolved
        if kind is TransitionKind.ACKNOWLEDGED:
            return channel.send_acknowledged
        return True

    def route(
        self, incident: IncidentLike, kind: str, seq: int = 0
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The routes that take a `kind` transition of `incident` (event `seq`), and its channels."""
        known = kind_of_name(kind)
        if known is None:
            return (), ()
        names, channels = self._targets(incident, known, seq)
        return names, tuple(c.name for c in channels)

    def _targets(
        self, incident: IncidentLike, kind: TransitionKind, seq: int
    ) -> tuple[tuple[str, ...], list[Channel]]:
        """The routes taken and the configured channels that want the transition, in route order."""
        configured = self._channels
        # The engine's incidents carry the escalation steps taken (incident.Escalation); others none.
        escalations = getattr(incident, "escalations", ())
        if not self._routes and kind is not TransitionKind.ESCALATED:
            return (), [c for c in configured.values() if self.wants(c, kind)]
        if kind is TransitionKind.ESCALATED:
            # The step recorded with this event: its own channels only.
            step = next((e for e in escalations if e.event_id == seq), None)
            if step is None:
                return (), []
            names: tuple[str, ...] = (step.route,)
            wanted: tuple[str, ...] = tuple(step.channels)
        else:
            taken = routing.select(self._routes, incident)
            names = tuple(r.name for r in taken)
            wanted = routing.channels_of(taken)
            if kind is not TransitionKind.FIRED:
                # Whoever an escalation woke up hears how it goes on.
                wanted += tuple(c for e in escalations for c in e.channels)
        picked = [configured[n] for n in dict.fromkeys(wanted) if n in configured]
        return names, [c for c in picked if self.wants(c, kind)]

    async def handle(self, transition: TransitionLike) -> None:
        """The engine's callback (`engine.on_transition(notifier.handle)`): see `submit`."""
        await self.submit(transition)

    async def submit(self, transition: TransitionLike) -> list[int]:
        """Notify the channels that want this transition; the ids of the deliveries it created.

        Never raises into the engine: a database or Redis failure is logged, and deliveries that
        were recorded but not enqueued are picked up by the sweep.
        """
        try:
            return await self._record(transition)
        except Exception as exc:
            log.error("notification_not_recorded", seq=getattr(transition, "seq", None), error=str(exc))
            return []

    async def _record(self, transition: TransitionLike) -> list[int]:
        """`submit` that raises when the deliveries cannot be recorded (replay tries again later)."""
        kind = kind_of(transition)
        if kind is None:
            return []
        routes = self._routes
        try:
            _, channels = self._targets(transition.incident, kind, int(transition.seq))
        except Exception as exc:
            log.error("notification_not_routed", seq=getattr(transition, "seq", None), error=str(exc))
            return []
        if not channels:
            return []
        taken = routing.select(routes, transition.incident) if routes else []
        event = snapshot(transition, kind)
        text = event.to_json()
        items = [
            NewDelivery(
                incident_id=event.incident_id,
                transition_seq=event.seq,
                kind=kind.value,
                channel=channel.name,
                channel_type=channel.type.value,
                event=text,
                **_group(kind, channel, taken),
            )
            for channel in channels
        ]
        created = await self._store.create(items, self._clock())
        for delivery_id in created:
            try:
                await self._kick(delivery_id, 0)
            except Exception as exc:
                log.warning("notification_not_enqueued", delivery_id=delivery_id, error=str(exc))
        return created

    async def deliveries(self, incident_id: int) -> list[Delivery]:
        """The incident's deliveries, oldest first (the "notified" entries of its timeline)."""
        return await self._store.for_incident(incident_id)

    async def attempts(self, delivery_id: int) -> list[Attempt]:
        """The attempts of one delivery, in order."""
        return await self._store.attempts(delivery_id)

    async def _kick(self, delivery_id: int, attempts: int) -> None:
        await self._task.kiq(delivery_id, attempts)

    # --- the task -----------------------------------------------------------------------------------

    async def deliver(self, delivery_id: int, attempts: int) -> None:
        """Make attempt `attempts + 1` of the delivery, when it is due, unless another has made it."""
        if self._stopped:
            return
        current = asyncio.current_task()
        if current is not None:
            self._running.add(current)
        try:
            claimed = await self._claim(delivery_id, attempts)
            if claimed is not None:
                await self._attempt(claimed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A row left QUEUED is re-enqueued by the sweep; one left SENDING becomes UNKNOWN.
            log.error("notification_task_failed", delivery_id=delivery_id, error=repr(exc))
        finally:
            if current is not None:
                self._running.discard(current)

    async def _claim(self, delivery_id: int, attempts: int) -> Delivery | None:
        while True:
            row = await self._store.get(delivery_id)
            if row is None or row.status is not DeliveryStatus.QUEUED or row.attempts != attempts:
                # Done, taken by another task, or this message is a stale duplicate.
                return None
            if await self._overtaking(row):
                await asyncio.sleep(ORDER_POLL_SECONDS)
                continue
            wait = (row.next_attempt_at - self._clock()).total_seconds()
            if wait <= 0:
                return await self._store.claim(delivery_id, attempts, self._clock())
            await asyncio.sleep(min(wait, self._backoff_cap))

    async def _overtaking(self, row: Delivery) -> bool:
        """Whether sending `row` now would overtake an earlier transition of its incident, or of an older
        incident of its fingerprint (the same dedup_key), on a PagerDuty channel: PagerDuty applies
        events in arrival order, so a resolve before its (retried) trigger would leave an alert open for
        good, and an old incident's late resolve would close the new one's alert. Other channels show
        messages, and do not wait."""
        channel = self._channels.get(row.channel)
        if channel is None or channel.type is not ChannelType.PAGERDUTY:
            return False
        return await self._store.unfinished_before(row)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        # The suite's policy without its jitter: the next attempt's time is stored and shown.
        delay = Backoff(self._backoff_base, self._backoff_cap).ceiling(attempt)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._backoff_cap))
        return delay

    def _status_after(
        self, delivery: Delivery, channel: Channel | None, result: _Result, now: datetime
    ) -> tuple[DeliveryStatus, datetime | None]:
        """The delivery's status after an attempt, and when to make the next one if it is retried."""
        if result.outcome is AttemptOutcome.DELIVERED:
            return DeliveryStatus.DELIVERED, None
        if result.outcome is AttemptOutcome.FAILED:
            return DeliveryStatus.FAILED, None
        if channel is not None and delivery.attempts < channel.max_attempts:
            delay = self._backoff(delivery.attempts, result.retry_after)
            return DeliveryStatus.QUEUED, now + timedelta(seconds=delay)
        return DeliveryStatus.GAVE_UP, None

    async def _attempt(self, delivery: Delivery) -> None:
        started = self._clock()
        began = time.monotonic()
        channel = self._channels.get(delivery.channel)
        # A group's leader carries the members that joined while it waited (read after the claim:
        # nobody joins a claimed leader).
        members = await self._store.members(delivery.id) if delivery.group_key else []
        if channel is None:
            result = _Result(AttemptOutcome.FAILED, error="the channel is no longer configured")
        else:
            event = NotifyEvent.from_json(delivery.event)
            result = await self._send(channel, event, [NotifyEvent.from_json(m.event) for m in members])
        duration_ms = round((time.monotonic() - began) * 1000)
        now = self._clock()
        status, next_at = self._status_after(delivery, channel, result, now)
        outcome = AttemptOutcome.GAVE_UP if status is DeliveryStatus.GAVE_UP else result.outcome
        finished = await self._store.finish(
            delivery,
            status=status,
            outcome=outcome,
            started=started,
            now=now,
            duration_ms=duration_ms,
            status_code=result.status_code,
            reply=result.reply,
            error=result.error,
            next_attempt_at=next_at,
        )
        log_fields = {
            "delivery_id": delivery.id,
            "incident_id": delivery.incident_id,
            "channel": delivery.channel,
            "kind": delivery.kind,
            "attempt": delivery.attempts,
            "outcome": outcome.value,
            "status_code": result.status_code,
            "error": result.error,
            "duration_ms": duration_ms,
            "grouped": len(members),
        }
        if status is DeliveryStatus.DELIVERED:
            log.info("notification_delivered", **log_fields)
        elif status is DeliveryStatus.QUEUED:
            log.info("notification_retrying", next_attempt_at=next_at, **log_fields)
        else:
            log.warning("notification_not_delivered", status=status.value, **log_fields)
        if finished and status is DeliveryStatus.DELIVERED and self._on_delivered is not None:
            # Every incident the message carried gets its NOTIFIED timeline entry.
            for carried in (delivery, *members):
                try:
                    await self._on_delivered(carried.incident_id, carried.channel)
                except Exception as exc:
                    log.warning(
                        "notification_not_recorded_on_incident", delivery_id=carried.id, error=str(exc)
                    )
        if finished and status is DeliveryStatus.QUEUED:
            try:
                await self._kick(delivery.id, delivery.attempts)
            except Exception as exc:
                log.warning("notification_not_enqueued", delivery_id=delivery.id, error=str(exc))

    # --- sending ------------------------------------------------------------------------------------

    async def send_once(self, channel: Channel, event: NotifyEvent) -> SendResult:
        """One attempt through `channel`, recorded nowhere (a channel test); works before start()."""
        return await self._send(channel, event)

    async def _send(self, channel: Channel, event: NotifyEvent, group: Sequence[NotifyEvent] = ()) -> _Result:
        # Every attempt is bounded as a whole: httpx's and aiosmtplib's timeouts apply per phase.
        bound = min(channel.timeout_seconds, MAX_TIMEOUT_SECONDS)
        try:
            async with asyncio.timeout(bound):
                if channel.type is ChannelType.EMAIL:
                    return await self._send_email(channel, event, group)
                return await self._send_http(channel, event, group)
        except TimeoutError:
            return _Result(AttemptOutcome.RETRY, error=f"timed out after {bound:g} s")
        except TemplateRenderError as exc:
            return _Result(AttemptOutcome.FAILED, error=f"template: {exc}")

    async def _send_http(self, channel: Channel, event: NotifyEvent, group: Sequence[NotifyEvent]) -> _Result:
        request = http_request(event, channel, group)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "workermon-notify/1"}
        headers.update(request.headers)
        client = self._http
        own_client = client is None
        if client is None:
            client = httpx.AsyncClient(follow_redirects=False)
        try:
            response = await client.post(
                request.url, content=request.body, headers=headers, timeout=channel.timeout_seconds
            )
        except httpx.TimeoutException:
            return _Result(AttemptOutcome.RETRY, error=f"timed out after {channel.timeout_seconds:g} s")
        except httpx.TransportError as exc:
            return _Result(AttemptOutcome.RETRY, error=_scrub(f"{type(exc).__name__}: {exc}", channel))
        finally:
            if own_client:
                await client.aclose()
        code = response.status_code
        reply = _scrub(response.text[:_REPLY_MAX], channel)
        if 200 <= code < 300:
            return _Result(AttemptOutcome.DELIVERED, status_code=code, reply=reply)
        error = f"HTTP {code} {response.reason_phrase}".strip()
        # 408 and 429 say "later", like a 5xx; every other 4xx (and 3xx: redirects are not followed,
        # a moved webhook is a configuration fault) would be refused again.
        if code >= 500 or code in (408, 429):
            retry_after = _retry_after(response.headers.get("retry-after"), self._clock())
            return _Result(
                AttemptOutcome.RETRY, status_code=code, reply=reply, error=error, retry_after=retry_after
            )
        explained = _reply_message(response.text)
        if explained:
            # PagerDuty's 400 says what is wrong with the event: worth more than the status line.
            error = f"{error}: {_scrub(explained, channel)}"
        return _Result(AttemptOutcome.FAILED, status_code=code, reply=reply, error=error)

    async def _send_email(
        self, channel: Channel, event: NotifyEvent, group: Sequence[NotifyEvent]
    ) -> _Result:
        smtp = channel.smtp
        assert smtp is not None  # parse_channels requires smtp for email channels
        message = email_message(event, channel, group)
        try:
            refused, reply = await aiosmtplib.send(
                message,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=None if smtp.password is None else smtp.password.reveal(),
                start_tls=smtp.starttls,
                use_tls=smtp.tls,
                timeout=channel.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            transient = any(400 <= c < 500 for c in codes)
            outcome = AttemptOutcome.RETRY if transient else AttemptOutcome.FAILED
            return _Result(
                outcome, status_code=codes[0] if codes else None, reply=text, error="recipients refused"
            )
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx replies are transient by definition (RFC 5321); 5xx are permanent.
            outcome = AttemptOutcome.RETRY if 400 <= exc.code < 500 else AttemptOutcome.FAILED
            return _Result(outcome, status_code=exc.code, reply=exc.message, error=f"SMTP {exc.code}")
        except aiosmtplib.SMTPNotSupported as exc:
            return _Result(AttemptOutcome.FAILED, error=f"SMTP: {exc}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return _Result(AttemptOutcome.RETRY, error=f"{type(exc).__name__}: {exc}")
        note = reply
        if refused:
            note = f"{reply}; refused: " + ", ".join(f"{addr} {r.code}" for addr, r in refused.items())
        return _Result(AttemptOutcome.DELIVERED, status_code=250, reply=note)


def _reply_message(text: str) -> str:
    """The `message` (and `errors`) of a JSON error reply, as PagerDuty sends them; empty otherwise."""
    try:
        data = json.loads(text)
    except ValueError:
        return ""
    head = data.get("message") if isinstance(data, dict) else None
    if not isinstance(head, str):
        return ""
    errors = data.get("errors")
    details = [str(e) for e in errors] if isinstance(errors, list) else []
    message = head + (f" ({'; '.join(details)})" if details else "")
    return message[:_REPLY_MAX]


def kind_of_name(kind: str) -> TransitionKind | None:
    """The transition kind named `kind`, or None for one notifications do not handle."""
    try:
        return TransitionKind(kind.upper())
    except ValueError:
        return None


def _group(kind: TransitionKind, channel: Channel, taken: Sequence[Route]) -> dict[str, Any]:
    """The group fields of a new delivery: only FIRED ones on a grouping channel, with a route that waits."""
    if kind is not TransitionKind.FIRED or not channel.groups:
        return {}
    route = routing.group_route(taken, channel.name)
    if route is None or route.group_wait_seconds <= 0:
        return {}
    return {
        "group_key": f"{route.name}/{channel.name}",
        "group_wait_seconds": float(route.group_wait_seconds),
    }


def _scrub(text: str, channel: Channel) -> str:
    """`text` without the channel's URL, header values or routing key in it (they carry tokens)."""
    secrets = [channel.url.reveal()] if channel.url else []
    secrets += [value.reveal() for value in channel.headers.values()]
    if channel.routing_key is not None:
        secrets.append(channel.routing_key.reveal())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date), None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return max(0.0, (moment - now).total_seconds())
    return None
