"""The worker registry in Redis: every change one script call, every read one round trip."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.exceptions
from redis.typing import EncodableT, FieldT

from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon_core.coalesce import Coalescer
from workermon_core.redis_store import AnyRedis, key_prefix

from . import scripts

Clock = Callable[[], float]
Beat = tuple[pb.WorkerReport, Sequence[pb.CommandAck]]

_TYPE_NAMES: dict[int, str] = {
    pb.COMMAND_TYPE_QUIET: "QUIET",
    pb.COMMAND_TYPE_RESUME: "RESUME",
    pb.COMMAND_TYPE_STOP: "STOP",
    pb.COMMAND_TYPE_CANCEL_JOB: "CANCEL_JOB",
}
_TYPE_VALUES: dict[str, pb.CommandType.ValueType] = {
    name: pb.CommandType.Value("COMMAND_TYPE_" + name) for name in _TYPE_NAMES.values()
}
_STATUS_VALUES = {
    "PENDING": pb.COMMAND_STATUS_PENDING,
    "DELIVERED": pb.COMMAND_STATUS_DELIVERED,
    "ACKED": pb.COMMAND_STATUS_ACKED,
    "FAILED": pb.COMMAND_STATUS_FAILED,
    "UNSUPPORTED": pb.COMMAND_STATUS_UNSUPPORTED,
}
MAX_COMMANDS_PER_BEAT = 32
SWEEP_LIMIT = 1000
TIMINGS_TTL_SECONDS = 3 * 3600
LIST_SCAN_BUDGET = 5000
MINUTE_MS = 60_000
HISTORY_MAX_POINTS = 1440


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """Timing rules of the registry."""

    online_window: float = 30.0
    retention: float = 24 * 3600.0
    events_max: int = 10_000
    # Minutes of per-worker history kept (one point per minute the worker beat in); 0 keeps none.
    history_points: int = HISTORY_MAX_POINTS


@dataclass(frozen=True, slots=True)
class StoredWorker:
    """A worker row as the registry holds it."""

    worker_id: str
    report: bytes
    online_until_ms: int
    first_seen_ms: int
    last_seen_ms: int
    offline_reason: str


@dataclass(frozen=True, slots=True)
class BeatOutcome:
    """What a beat wrote besides its deadline and last-seen time, and the commands it took."""

    commands: list[pb.WorkerCommand]
    identity_written: bool  # fingerprint, instance, host, queues: only for a new, returning or changed worker
    report_written: bool  # the stored report: only when it differs from the last one


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One transition from the events stream."""

    event_id: str
    kind: str
    worker_id: str
    reason: str
    time_ms: int


def fingerprint(rep: pb.WorkerReport) -> str:
    """What makes a beat an UPDATED transition when it changes (not the load figures)."""
    parts = (
        rep.instance_id,
        tuple(sorted(rep.queues)),
        tuple(sorted(rep.labels.items())),
        rep.version,
        rep.concurrency,
        rep.state,
        rep.hostname,
    )
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def registry_root(prefix: str) -> str:
    """The hash-tagged root of every registry key under the suite's Redis prefix."""
    return key_prefix(prefix) + ":hb"


def beat_header(root: str, config: RegistryConfig, now: int, beats: int) -> list[EncodableT]:
    """The leading arguments of the Beat script for `beats` beats recorded at `now` (ms)."""
    return [
        root,
        now,
        now + int(config.online_window * 1000),
        int(config.retention),
        config.events_max,
        MAX_COMMANDS_PER_BEAT,
        beats,
        config.history_points,
        now - now % MINUTE_MS,
    ]


def history_point(rep: pb.WorkerReport) -> bytes:
    """The per-minute history entry of a beat (stored without its time, which the key entry carries)."""
    return pb.WorkerHistoryPoint(
        active_jobs=rep.active_jobs, concurrency=rep.concurrency, gauges=rep.gauges
    ).SerializeToString()


def beat_arguments(
    rep: pb.WorkerReport, acks: Sequence[pb.CommandAck], *, history: bool = True
) -> list[EncodableT]:
    """One beat's arguments to the Beat script, after its header (`Registry.beat_header`).

    With `history` false the beat carries no history point: its worker's point for this minute is
    known to be written already, so the script need not even look.
    """
    if rep.timings:
        # Timings are kept per queue and minute, not in the worker's stored report.
        stripped = pb.WorkerReport()
        stripped.CopyFrom(rep)
        stripped.ClearField("timings")
        rep = stripped
    args: list[EncodableT] = [
        rep.worker_id,
        rep.SerializeToString(),
        fingerprint(rep),
        rep.instance_id,
        rep.hostname,
        "\n".join(sorted(set(rep.queues))),
        history_point(rep) if history else b"",
        len(acks),
    ]
    for ack in acks:
        args += [ack.command_id, "1" if ack.ok else ("u" if ack.unsupported else "0"), ack.result]
    return args


def client_host(addr: str) -> str:
    """The IP address of a Redis client address (ip:port)."""
    return addr.rpartition(":")[0] or addr


def _text(value: object) -> str:
    """A Redis reply value as text ("" for a missing one)."""
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class Registry:
    """Reads and writes the registry keys; owns nothing but them."""

    def __init__(self, redis: AnyRedis, prefix: str, config: RegistryConfig, clock: Clock = time.time):
        self.redis = redis
        self.root = registry_root(prefix)
        self.config = config
        self.clock = clock
        self.notify_channel = self.root + ":notify"
        self._beat = redis.register_script(scripts.BEAT)
        self._deliver = redis.register_script(scripts.DELIVER)
        self._goodbye = redis.register_script(scripts.GOODBYE)
        self._sweep = redis.register_script(scripts.SWEEP)
        self._list = redis.register_script(scripts.LIST)
        self._summary = redis.register_script(scripts.SUMMARY)
        self._beats: Coalescer[Beat, BeatOutcome] = Coalescer(self._record_beats)
        # Workers whose history point for `_history_minute` is known to be in Redis: their later beats
        # in the same minute skip encoding one. Only a shortcut: the script decides, so a restart or
        # another replica never writes a second point for a minute.
        self._history_minute = -1
        self._history_done: set[str] = set()
        # Each online worker's client hosts by instance: an instance reports its Redis connections once,
        # so a report that named some is parsed again only when its worker restarts.
        self._clients: dict[str, tuple[str, frozenset[str]]] = {}

    def now_ms(self) -> int:
        """The injectable clock, in milliseconds."""
        return int(self.clock() * 1000)

    async def beat(self, rep: pb.WorkerReport, acks: Sequence[pb.CommandAck]) -> BeatOutcome:
        """Record a beat, settle acknowledgements and take the pending commands.

        Beats arriving together share one script call (see Coalescer); each keeps its own outcome.
        """
        outcome = await self._beats.submit((rep, acks))
        if rep.timings:
            await self._keep_timings(rep.timings)
        return outcome

    async def _record_beats(self, beats: list[Beat]) -> list[BeatOutcome | Exception]:
        """One Beat script call for the batch, in arrival order."""
        now = self.now_ms()
        minute = now - now % MINUTE_MS
        if minute != self._history_minute:
            self._history_minute, self._history_done = minute, set()
        done = self._history_done
        keep = self.config.history_points > 0
        args = beat_header(self.root, self.config, now, len(beats))
        for rep, acks in beats:
            args += beat_arguments(rep, acks, history=keep and rep.worker_id not in done)
        replies = await self._beat(keys=[self.root + ":ids"], args=args)
        outcomes = [_outcome(reply) for reply in replies]
        if keep and minute == self._history_minute:
            written = zip(beats, outcomes, strict=True)
            done.update(rep.worker_id for (rep, _), o in written if not isinstance(o, Exception))
        return outcomes

    async def history(self, worker_id: str) -> list[tuple[int, bytes]]:
        """The worker's history as stored: (minute in ms, WorkerHistoryPoint bytes), oldest first."""
        entries = await self.redis.lrange(self.root + ":wh:" + worker_id, 0, -1)
        points = []
        for entry in entries:
            raw = entry if isinstance(entry, bytes) else str(entry).encode()
            minute, _, point = raw.partition(b":")
            points.append((int(minute), point))
        return points

    async def _keep_timings(self, timings: Sequence[pb.JobTimings]) -> None:
        """Append each worker's per-minute sketches; GetQueueTimings merges them when asked."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for timing in timings:
                key = f"{self.root}:tm:{timing.queue}:{timing.minute_time.ToMilliseconds()}"
                pipe.rpush(key, timing.SerializeToString())
                pipe.expire(key, TIMINGS_TTL_SECONDS)
            await pipe.execute()

    async def timings(self, queues: Sequence[str], minute_ms: int) -> dict[str, list[bytes]]:
        """Every sketch reported for the queues in one minute, as stored."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.lrange(f"{self.root}:tm:{queue}:{minute_ms}", 0, -1)
            replies = await pipe.execute()
        return {q: list(r) for q, r in zip(queues, replies, strict=True) if r}

    async def deliver(self, worker_id: str) -> list[pb.WorkerCommand]:
        """Take the pending commands of a worker (for the push path of BeatStream)."""
        flat = await self._deliver(
            keys=[self.root + ":ids"], args=[self.root, worker_id, self.now_ms(), MAX_COMMANDS_PER_BEAT]
        )
        return _commands(flat)

    async def goodbye(self, worker_id: str, instance_id: str, reason: str) -> bool:
        """Mark the worker OFFLINE now; False when it was not online (or a newer instance runs)."""
        done = await self._goodbye(
            keys=[self.root + ":ids"],
            args=[self.root, worker_id, instance_id, self.now_ms(), reason[:200], self.config.events_max],
        )
        return bool(done)

    async def sweep(self) -> tuple[int, int]:
        """Announce workers whose deadline passed as OFFLINE; forget those unseen for the retention."""
        now = self.now_ms()
        expired, forgotten = await self._sweep(
            keys=[self.root + ":ids"],
            args=[
                self.root,
                now,
                now - int(self.config.retention * 1000),
                self.config.events_max,
                SWEEP_LIMIT,
            ],
        )
        return int(expired), int(forgotten)

    async def get(self, worker_id: str) -> StoredWorker | None:
        """One worker, or None when the registry does not know it."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.root + ":w:" + worker_id, ["info", "first", "last", "off"])
            pipe.zscore(self.root + ":deadline", worker_id)
            fields, deadline = await pipe.execute()
        if fields[0] is None:
            return None
        return StoredWorker(
            worker_id=worker_id,
            report=fields[0],
            online_until_ms=int(deadline or 0),
            first_seen_ms=int(fields[1] or 0),
            last_seen_ms=int(fields[2] or 0),
            offline_reason=_text(fields[3]),
        )

    async def own_hosts(self, queues: Iterable[str]) -> set[tuple[str, str]]:
        """(queue, client host) of the Redis connections the online workers of `queues` report as theirs:
        where, as Redis sees it, an instrumented worker of each queue runs."""
        now = self.now_ms()
        names = sorted(queues)
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in names:
                pipe.zrangebyscore(f"{self.root}:q:{queue}", f"({now}", "+inf")
            found = [[_text(i) for i in ids] for ids in await pipe.execute()]
        ids = sorted({i for per_queue in found for i in per_queue})
        if not ids:
            self._clients.clear()
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.hget(self.root + ":w:" + worker_id, "inst")
            instances = [_text(i) for i in await pipe.execute()]
        # An instance with no connections known yet is read again: SDKs report them a beat or two after
        # the first one (they ask Redis), and its first report must not hide them for the instance's life.
        stale = [
            (w, i)
            for w, i in zip(ids, instances, strict=True)
            if self._clients.get(w, ("", frozenset()))[0] != i or not self._clients[w][1]
        ]
        if stale:
            async with self.redis.pipeline(transaction=False) as pipe:
                for worker_id, _ in stale:
                    pipe.hget(self.root + ":w:" + worker_id, "info")
                for (worker_id, instance), info in zip(stale, await pipe.execute(), strict=True):
                    report = pb.WorkerReport.FromString(info) if info else pb.WorkerReport()
                    hosts = frozenset(client_host(c.addr) for c in report.redis_clients)
                    self._clients[worker_id] = (instance, hosts)
        for gone in self._clients.keys() - set(ids):
            del self._clients[gone]
        return {
            (queue, host)
            for queue, per_queue in zip(names, found, strict=True)
            for worker_id in per_queue
            for host in self._clients[worker_id][1]
        }

    async def page(
        self,
        after: str | None,
        page_size: int,
        *,
        status: int,
        queue: str,
        hostname: str,
        search: str = "",
    ) -> tuple[list[StoredWorker], str | None]:
        """A page of workers after the `after` id, and the id to continue from (None at the end).

        `search` keeps the workers whose id or hostname contains it, ignoring ASCII case.
        """
        cursor = "(" + after if after else "-"
        args: list[EncodableT] = [self.root, cursor, page_size, self.now_ms(), status, queue, hostname]
        args += [LIST_SCAN_BUDGET, search]
        last, rows = await self._list(keys=[self.root + ":ids"], args=args)
        workers = [
            StoredWorker(
                worker_id=_text(rows[i]),
                online_until_ms=int(float(rows[i + 1])),
                report=rows[i + 2],
                first_seen_ms=int(rows[i + 3]),
                last_seen_ms=int(rows[i + 4]),
                offline_reason=_text(rows[i + 5]),
            )
            for i in range(0, len(rows), 6)
        ]
        return workers, (_text(last) or None)

    async def summary(self) -> tuple[int, int, list[tuple[str, int]]]:
        """(online, offline, online per queue) in one script call."""
        flat = await self._summary(keys=[self.root + ":ids"], args=[self.root, self.now_ms()])
        online, total = int(flat[0]), int(flat[1])
        queues = [(_text(flat[i]), int(flat[i + 1])) for i in range(2, len(flat), 2)]
        return online, total - online, queues

    async def send_command(
        self, worker_id: str, ctype: int, *, job_id: str, reason: str, ttl: float, requested_by: str
    ) -> pb.Command:
        """Queue a command and wake any stream of that worker, on whichever replica holds it."""
        now = self.now_ms()
        command_id = uuid.uuid4().hex
        record: dict[FieldT, EncodableT] = {
            "worker": worker_id,
            "type": _TYPE_NAMES[ctype],
            "job": job_id,
            "reason": reason,
            "status": "PENDING",
            "created": str(now),
            "exp": str(now + int(ttl * 1000)),
            "by": requested_by,
        }
        key = self.root + ":cmd:" + command_id
        queue = self.root + ":cmdq:" + worker_id
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=record)
            pipe.expire(key, int(self.config.retention))
            pipe.rpush(queue, command_id)
            pipe.ltrim(queue, -100, -1)
            pipe.expire(queue, int(self.config.retention))
            await pipe.execute()
        await self.redis.publish(self.notify_channel, worker_id)
        return self._command(command_id, {str(k): str(v) for k, v in record.items()})

    async def get_command(self, command_id: str) -> pb.Command | None:
        """A command record, with EXPIRED worked out from its expiry time."""
        fields = await self.redis.hgetall(self.root + ":cmd:" + command_id)
        return self._command(command_id, {_text(k): _text(v) for k, v in fields.items()}) if fields else None

    def _command(self, command_id: str, fields: dict[str, str]) -> pb.Command:
        def get(name: str) -> str:
            return fields.get(name, "")

        status = _STATUS_VALUES.get(get("status"), pb.COMMAND_STATUS_UNSPECIFIED)
        expire_ms = int(get("exp") or 0)
        if status in (pb.COMMAND_STATUS_PENDING, pb.COMMAND_STATUS_DELIVERED) and expire_ms <= self.now_ms():
            status = pb.COMMAND_STATUS_EXPIRED
        command = pb.Command(
            command_id=command_id,
            worker_id=get("worker"),
            type=_TYPE_VALUES.get(get("type"), pb.COMMAND_TYPE_UNSPECIFIED),
            job_id=get("job"),
            reason=get("reason"),
            status=status,
            result=get("result"),
            requested_by=get("by"),
        )
        for field, name in (
            ("create_time", "created"),
            ("deliver_time", "delivered"),
            ("complete_time", "done"),
            ("expire_time", "exp"),
        ):
            if get(name):
                getattr(command, field).FromMilliseconds(int(get(name)))
        return command

    async def latest_event_id(self) -> str:
        """Id of the newest transition, so a watcher can start after it."""
        newest = await self.redis.xrevrange(self.root + ":events", count=1)
        return _text(newest[0][0]) if newest else "0-0"

    async def read_events(self, after: str, block_ms: int, count: int = 500) -> list[StoredEvent]:
        """Transitions after `after`, waiting up to `block_ms` for the first one."""
        reply: Any = await self.redis.xread({self.root + ":events": after}, count=count, block=block_ms)
        return [_event(entry_id, fields) for _stream, entries in reply or () for entry_id, fields in entries]

    async def events_after(self, after: str, count: int = 10_000) -> list[StoredEvent]:
        """The backlog of transitions after `after` still held in the capped stream."""
        entries: Any = await self.redis.xrange(self.root + ":events", min="(" + after, count=count)
        return [_event(entry_id, fields) for entry_id, fields in entries]


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> StoredEvent:
    return StoredEvent(
        event_id=_text(entry_id),
        kind=_text(fields.get(b"type")),
        worker_id=_text(fields.get(b"worker")),
        reason=_text(fields.get(b"reason")),
        time_ms=int(fields.get(b"t") or 0),
    )


def _outcome(reply: list[Any]) -> BeatOutcome | Exception:
    if reply[0] == b"error":
        return redis.exceptions.ResponseError(_text(reply[1]))
    identity, report, flat = reply
    return BeatOutcome(commands=_commands(flat), identity_written=bool(identity), report_written=bool(report))


def _commands(flat: list[bytes]) -> list[pb.WorkerCommand]:
    return [
        pb.WorkerCommand(
            command_id=_text(flat[i]),
            type=_TYPE_VALUES.get(_text(flat[i + 1]), pb.COMMAND_TYPE_UNSPECIFIED),
            job_id=_text(flat[i + 2]),
            reason=_text(flat[i + 3]),
        )
        for i in range(0, len(flat), 4)
    ]
