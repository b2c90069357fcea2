"""The live stream over real HTTP (uvicorn) in front of the real services (heartbeat, collector, monitor)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from starlette.routing import BaseRoute

from tests.support.services import Services, serve_http, start_services, stop_http
from tests.support.sse import SseReader
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.backoff import Backoff
from workermon_core.peer import Peer, ServiceTokens
from workermon_gateway.stream.endpoint import stream_routes
from workermon_gateway.stream.hub import LiveStream
from workermon_sdk.client import HeartbeatClient

# --- the gateway over real HTTP -----------------------------------------------------------------------


@dataclass
class Gateway:
    url: str
    live: LiveStream
    services: Services
    authority: TokenAuthority
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def token(self, role: str = "viewer") -> str:
        return self.authority.mint(f"{role}-user", role)

    def client(self, timeout: float = 10.0) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=self.url, timeout=timeout)
        self.clients.append(client)
        return client

    def worker(self, worker_id: str) -> HeartbeatClient:
        return HeartbeatClient(
            self.services.target,
            self.authority.mint(worker_id, "worker", worker=worker_id),
            worker_id=worker_id,
            queues=["emails"],
            beat_interval=1.0,
        )


StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start_gateway(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[StartGateway]:
    """`await start_gateway(keepalive_seconds=..., **LiveStream options)`: services, LiveStream, uvicorn."""
    services, stop_services = await start_services(tmp_path, redis, redis_url, prefix, authority)
    started: list[tuple[Gateway, uvicorn.Server, asyncio.Task[None], list[Peer[Any]]]] = []

    async def start(keepalive_seconds: float = 15.0, **options: Any) -> Gateway:
        tokens = ServiceTokens(authority, "gateway", "viewer")
        monitor = Peer(lambda: services.target, mon_grpc.MonitorServiceStub, tokens.own)
        heartbeat = Peer(lambda: services.target, hb_grpc.HeartbeatServiceStub, tokens.own)
        options.setdefault("overview_interval", 0.2)
        options.setdefault("replay_seconds", 300.0)
        options.setdefault("backoff", Backoff(0.1, 0.5))
        live = LiveStream(monitor, heartbeat, **options)
        await live.start()
        routes: list[BaseRoute] = list(
            stream_routes(services.settings.gateway, live, authority, keepalive_seconds=keepalive_seconds)
        )
        url, server, task = await serve_http(routes)
        gateway = Gateway(url, live, services, authority)
        started.append((gateway, server, task, [monitor, heartbeat]))
        return gateway

    yield start
    for gateway, server, task, peers in started:
        for client in gateway.clients:
            await client.aclose()
        await gateway.live.stop()
        await stop_http(server, task)
        for peer in peers:
            await peer.close()
    await stop_services()


# --- reading Server-Sent Events ----------------------------------------------------------------------


def id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


async def wait_for(check: Callable[[], bool], within: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within}s")
        await asyncio.sleep(0.02)


def published(live: LiveStream, kind: str) -> list[dict[str, Any]]:
    return [event.data for event in live._ring if event.kind == kind]


# --- tests --------------------------------------------------------------------------------------------


async def test_overview_at_connect_then_worker_transitions(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    headers = {"Authorization": f"Bearer {gw.token()}"}
    async with gw.client().stream("GET", "/api/v1/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = SseReader(response)
        first = await reader.next()
        assert first.event == "overview"
        assert first.id is not None and id_key(first.id)[1] >= 1
        assert {"queuesTotal", "workersOnline", "pausedQueues", "activeIncidents"} <= set(first.json)

        worker = gw.worker("gw-stream-1")
        await worker.start()
        online = await reader.next(kinds=("worker",), within=15)
        assert online.json["type"] == "WORKER_EVENT_TYPE_ONLINE"
        assert online.json["workerId"] == "gw-stream-1"
        assert online.json["reason"] and online.json["time"].endswith("Z")
        assert online.json["worker"]["report"]["queues"] == ["emails"]
        assert online.json["worker"]["status"] == "WORKER_STATUS_ONLINE"
        assert id_key(online.id or "") > id_key(first.id)

        # The overview follows the registry: sent again because it changed.
        changed = await reader.next(kinds=("overview",), within=15)
        assert changed.json["workersOnline"] == 1

        await worker.stop(reason="test over")
        offline = await reader.next(kinds=("worker",), within=15)
        assert offline.json["type"] == "WORKER_EVENT_TYPE_OFFLINE"
        assert "goodbye" in offline.json["reason"]
        assert id_key(offline.id or "") > id_key(online.id or "")


async def test_many_clients_share_one_upstream_subscription(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    token = gw.token()
    client = gw.client()
    async with contextlib.AsyncExitStack() as stack:
        responses = [
            await stack.enter_async_context(client.stream("GET", f"/api/v1/stream?access_token={token}"))
            for _ in range(20)
        ]
        firsts = await asyncio.gather(*(SseReader(r).next() for r in responses))
        assert {event.event for event in firsts} == {"overview"}
        assert gw.live.clients == 20
        # Still one poller and one WatchWorkers follower, whatever the number of clients.
        assert len(gw.live._tasks) == 2
    await wait_for(lambda: gw.live.clients == 0, what="clients gone")


async def test_resume_with_last_event_id_receives_the_missed_transitions(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    token = gw.token()
    async with gw.client().stream("GET", f"/api/v1/stream?access_token={token}") as response:
        seen = await SseReader(response).next()
    assert seen.event == "overview" and seen.id

    # Disconnected: two transitions happen meanwhile.
    worker = gw.worker("gw-resume-1")
    await worker.start()
    await wait_for(lambda: len(published(gw.live, "worker")) >= 1, what="ONLINE published")
    await worker.stop(reason="away")
    await wait_for(lambda: len(published(gw.live, "worker")) >= 2, what="OFFLINE published")

    headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": seen.id}
    async with gw.client().stream("GET", "/api/v1/stream", headers=headers) as response:
        reader = SseReader(response)
        replayed: list[dict[str, Any]] = []
        while len(replayed) < 2:
            event = await reader.next()
            assert event.event != "reset"
            assert id_key(event.id or "") > id_key(seen.id)
            if event.event == "worker":
                replayed.append(event.json)
        assert [(e["type"], e["workerId"]) for e in replayed] == [
            ("WORKER_EVENT_TYPE_ONLINE", "gw-resume-1"),
            ("WORKER_EVENT_TYPE_OFFLINE", "gw-resume-1"),
        ]
        # Then live events on the same connection.
        again = gw.worker("gw-resume-2")
        await again.start()
        live = await reader.next(kinds=("worker",), within=15)
        assert live.json["workerId"] == "gw-resume-2"
        await again.stop()

    # The lastEventId query parameter works as the header does (an EventSource opened afresh by the UI).
    async with gw.client().stream(
        "GET", f"/api/v1/stream?access_token={token}&lastEventId={seen.id}"
    ) as response:
        event = await SseReader(response).next(kinds=("worker",))
        assert (event.json["type"], event.json["workerId"]) == ("WORKER_EVENT_TYPE_ONLINE", "gw-resume-1")


async def test_an_id_older_than_the_buffer_gets_a_reset_first(start_gateway: StartGateway) -> None:
    gw = await start_gateway(max_events=5)
    old = gw.live.publish("incident", {"n": 0})
    for n in range(1, 10):
        gw.live.publish("incident", {"n": n})
    headers = {"Authorization": f"Bearer {gw.token()}"}
    for stale in (old.id, "1600000000000-1", "not-an-id"):
        async with gw.client().stream(
            "GET", "/api/v1/stream", headers={**headers, "Last-Event-ID": stale}
        ) as r:
            reader = SseReader(r)
            reset = await reader.next()
            assert reset.event == "reset", stale
            # It carries the newest id, so the browser's next reconnect resumes from now.
            assert reset.id == gw.live._last_id
            await wait_for(lambda: gw.live._overview is not None, what="first overview")
            assert (await reader.next(kinds=("overview", "incident"))).event in ("overview", "incident")

    # Within the buffer: exactly what was missed, nothing else.
    recent = list(gw.live._ring)[-3]
    async with gw.client().stream(
        "GET", "/api/v1/stream", headers={**headers, "Last-Event-ID": recent.id}
    ) as r:
        reader = SseReader(r)
        got = [await reader.next(), await reader.next()]
        assert [e.id for e in got] == [e.id for e in list(gw.live._ring)[-2:]]


async def test_replay_window_expires_by_time(start_gateway: StartGateway) -> None:
    now = [time.time()]
    gw = await start_gateway(replay_seconds=60.0, clock=lambda: now[0])
    first = gw.live.publish("incident", {"n": 1})
    gw.live.publish("incident", {"n": 2})
    now[0] += 120  # both are now older than the replay window
    gw.live.publish("incident", {"n": 3})
    headers = {"Authorization": f"Bearer {gw.token()}", "Last-Event-ID": first.id}
    async with gw.client().stream("GET", "/api/v1/stream", headers=headers) as response:
        assert (await SseReader(response).next()).event == "reset"


async def test_keepalive_comments(start_gateway: StartGateway) -> None:
    gw = await start_gateway(keepalive_seconds=0.3)
    async with gw.client().stream("GET", f"/api/v1/stream?access_token={gw.token()}") as response:
        reader = SseReader(response)
        pings = 0
        async with asyncio.timeout(5):
            while pings < 2:
                pings += (await reader.block()).is_ping


async def test_a_client_too_slow_is_dropped_and_the_others_are_not(start_gateway: StartGateway) -> None:
    gw = await start_gateway(client_queue_size=4, max_events=50)
    token = gw.token()
    payload = {"blob": "x" * 65536}
    client = gw.client()
    async with (
        client.stream("GET", f"/api/v1/stream?access_token={token}") as stuck,
        client.stream("GET", f"/api/v1/stream?access_token={token}") as healthy,
    ):
        reader = SseReader(healthy)
        await wait_for(lambda: gw.live.clients == 2, what="two clients")
        sent = 0
        # In step with the healthy reader: it never falls behind, while the stuck one (never reading)
        # fills its socket buffers, then its queue.
        while gw.live.dropped_clients == 0 and sent < 2000:
            event = gw.live.publish("incident", {**payload, "n": sent})
            sent += 1
            while (got := await reader.next(kinds=("incident",))).id != event.id:
                assert got.json["n"] < sent
        assert gw.live.dropped_clients == 1, f"not dropped after {sent} events (~{sent * 64} KiB)"
        assert gw.live.clients == 1
        # The healthy client goes on receiving.
        last = gw.live.publish("incident", {"n": "after"})
        assert (await reader.next(kinds=("incident",))).id == last.id

        # The stuck client finds its stream ended (cut short) once it reads, well before all was sent.
        received = 0
        with pytest.raises((EOFError, httpx.RemoteProtocolError, httpx.ReadError)):
            stuck_reader = SseReader(stuck)
            while True:
                await stuck_reader.next(within=10)
                received += 1
        assert received < sent


async def test_unauthenticated_and_worker_tokens_are_refused(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    client = gw.client()
    missing = await client.get("/api/v1/stream")
    assert missing.status_code == 401
    body = missing.json()
    assert body["error"]["code"] == 401 and body["error"]["status"] == "UNAUTHENTICATED"
    assert body["error"]["message"] and body["error"]["details"][0]["domain"] == "gateway.workermon"
    assert missing.headers["www-authenticate"] == "Bearer"

    bad = await client.get("/api/v1/stream?access_token=not-a-jwt")
    assert bad.status_code == 401 and bad.json()["error"]["status"] == "UNAUTHENTICATED"
    wrong_scheme = await client.get("/api/v1/stream", headers={"Authorization": "Basic abc"})
    assert wrong_scheme.status_code == 401
    other_key = TokenAuthority("another-secret-" + "y" * 40).mint("x", "viewer")
    forged = await client.get("/api/v1/stream", headers={"Authorization": f"Bearer {other_key}"})
    assert forged.status_code == 401

    worker = await client.get(f"/api/v1/stream?access_token={gw.token('worker')}")
    assert worker.status_code == 403 and worker.json()["error"]["status"] == "PERMISSION_DENIED"
    assert gw.live.clients == 0

    for role in ("viewer", "operator", "admin"):
        async with client.stream("GET", f"/api/v1/stream?access_token={gw.token(role)}") as response:
            assert response.status_code == 200


async def test_the_stream_ends_when_its_token_expires(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    token = gw.authority.mint("short", "viewer", ttl_seconds=2)
    async with gw.client().stream("GET", f"/api/v1/stream?access_token={token}") as response:
        reader = SseReader(response)
        started = time.monotonic()
        with pytest.raises(EOFError):
            while True:
                await reader.next(within=10)
        assert time.monotonic() - started < 5


async def test_upstream_down_keeps_the_stream_open_and_says_so(start_gateway: StartGateway) -> None:
    gw = await start_gateway(keepalive_seconds=0.5)
    async with gw.client().stream("GET", f"/api/v1/stream?access_token={gw.token()}") as response:
        reader = SseReader(response)
        assert (await reader.next()).event == "overview"

        await gw.services.stop()
        down = await reader.next(kinds=("status",), within=15)
        assert down.json["upstream"] == "unavailable"
        # Still open: keep-alives keep coming while the upstream is away.
        async with asyncio.timeout(5):
            while not (await reader.block()).is_ping:
                pass

        # A client connecting now learns at once that the upstream is away.
        async with gw.client().stream("GET", f"/api/v1/stream?access_token={gw.token()}") as other:
            other_reader = SseReader(other)
            kinds = [(await other_reader.next()).event for _ in range(2)]
            assert "status" in kinds

        await gw.services.start()  # same port
        while True:
            status = await reader.next(kinds=("status",), within=20)
            if status.json["upstream"] == "ok":
                break
        assert set(status.json["services"].values()) == {"ok"}

        # Transitions flow again, through the new WatchWorkers call.
        worker = gw.worker("gw-after-outage")
        await worker.start()
        event = await reader.next(kinds=("worker",), within=15)
        assert event.json["workerId"] == "gw-after-outage"
        await worker.stop()


def test_another_replicas_event_id_is_never_taken_for_ours() -> None:
    # Two gateway replicas publish the same upstream events at the same moments; an id of one must not
    # be replayed from by the other (the client would miss events), whatever the timing.
    now = [time.time()]

    def replica() -> LiveStream:
        # No upstream is asked here: the replicas only number and keep what they are given.
        return LiveStream(
            cast(Any, None), cast(Any, None), overview_interval=2.0, replay_seconds=60.0, clock=lambda: now[0]
        )

    for _ in range(20):
        first, second = replica(), replica()
        for n in range(5):
            ours = first.publish("worker", {"n": n})
            second.publish("worker", {"n": n})
        resumed = second.subscribe(ours.id)
        assert [event.kind for event in resumed.backlog][:1] == ["reset"], ours.id
