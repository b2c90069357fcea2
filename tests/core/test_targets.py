"""Peers named as lists of replicas: calls are balanced over them and go on when one goes away."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
import redis.asyncio as aioredis

from tests.support.bull import delete_suite_keys
from tests.support.heartbeat import report, start_heartbeat
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as pb_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.settings import ConfigError, Settings, load
from workermon_core.targets import channel_target


def test_targets_name_one_server_a_list_or_a_dns_name() -> None:
    assert channel_target("127.0.0.1:50051") == ("127.0.0.1:50051", False)
    assert channel_target("heartbeat:50051") == ("heartbeat:50051", False)
    assert channel_target("10.0.0.5:50051, 10.0.0.6:50051") == ("ipv4:10.0.0.5:50051,10.0.0.6:50051", True)
    assert channel_target("[::1]:1,[::1]:2") == ("ipv6:[::1]:1,[::1]:2", True)
    assert channel_target("dns:///heartbeat.workermon.svc:50051") == (
        "dns:///heartbeat.workermon.svc:50051",
        True,
    )
    with pytest.raises(ValueError, match="dns:///"):
        channel_target("heartbeat-1:50051,heartbeat-2:50051")


def test_a_bad_list_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="WORKERMON_COLLECTOR_TARGET"):
        load(Settings, collector_target="a:1,b:2")


async def _online(stub: pb_grpc.HeartbeatServiceStub) -> int:
    reply = await stub.GetWorkerSummary(pb.GetWorkerSummaryRequest(), timeout=5)
    return int(reply.online)


async def test_calls_are_balanced_over_replicas_and_survive_one_going_away(
    redis_url: str, redis: aioredis.Redis, prefix: str, authority: TokenAuthority
) -> None:
    # Two servers that keep different registries, so an answer says which one gave it.
    other = "wm-" + uuid.uuid4().hex[:12]
    first = await start_heartbeat(redis_url, prefix, authority, time.time)
    second = await start_heartbeat(redis_url, other, authority, time.time)
    channel = open_channel(f"{first.target},{second.target}", authority.mint("ops", "viewer"))
    try:
        await first.client("worker").Beat(pb.BeatRequest(report=report("only-on-first")))
        stub = pb_grpc.HeartbeatServiceStub(channel)
        answers = {await _online(stub) for _ in range(20)}
        assert answers == {0, 1}, "both replicas answered"

        await first.stop()
        failures = 0
        seen = []
        for _ in range(20):
            try:
                seen.append(await _online(stub))
            except grpc.aio.AioRpcError:
                failures += 1  # at most the call in flight to the replica that went away
        assert failures <= 1 and seen and set(seen) == {0}, (failures, seen)
    finally:
        await channel.close()
        await second.stop()
        await delete_suite_keys(redis, other)
