"""The server process the benchmark measures: HeartbeatService as `workermon serve` hosts it, or a
bare grpc.aio echo that shows what gRPC-Python costs on its own.

    python -m bench.server heartbeat --redis-url URL --prefix P [--profile FILE]
    python -m bench.server monitor
    python -m bench.server gateway
    python -m bench.server echo

`monitor` is the whole suite as `workermon serve` starts it (every target in one gRPC server, its
migrations applied first), configured by the WORKERMON_* / REDIS_URL / DATABASE_URL environment.
`gateway` is the same suite with the HTTP gateway beside it in the same process and event loop
(`workermon serve --http`), on a free port too; it prints `PORT <grpc> <http>`.

The token secret comes in WORKERMON_BENCH_SECRET (not argv, which `ps` shows). Once listening on a
free loopback port, the process prints `PORT <n>` on stdout; it serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import signal
import socket
import sys
from typing import Any

import grpc
import redis.asyncio as aioredis

from workermon_cli.runtime import migrate, open_dependencies, start_suite
from workermon_core.auth import TokenAuthority
from workermon_core.logging import configure_logging
from workermon_core.settings import Settings, load, load_settings
from workermon_heartbeat.settings import HeartbeatSettings
from workermon_heartbeat.store import Registry, RegistryConfig

SECRET_ENV = "WORKERMON_BENCH_SECRET"
ECHO_SERVICE = "workermon.bench.v1.Echo"
ECHO_METHOD = f"/{ECHO_SERVICE}/Echo"
# The benchmark fleet stops beating between phases; a long online window keeps the sweeper idle so
# that workers going offline is not part of what a later phase measures.
ONLINE_WINDOW_S = 600.0
# The channel options start_server uses, so the echo server differs only in what it does per call.
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.so_reuseport", 0),
]


def bench_settings(prefix: str, redis_url: str) -> Settings:
    """Process settings of the measured server."""
    return load_settings(redis_prefix=prefix, grpc_port=0, redis_url=redis_url)


def bench_registry_config() -> RegistryConfig:
    """The registry's configuration in the measured server (the client processes register into it)."""
    settings = load(HeartbeatSettings, online_window_seconds=ONLINE_WINDOW_S)
    return RegistryConfig(
        online_window=settings.online_window_seconds,
        retention=settings.offline_retention_hours * 3600,
        events_max=settings.worker_events_max,
        history_points=settings.worker_history_minutes,
    )


def bench_registry(redis: aioredis.Redis, prefix: str) -> Registry:
    """The registry configured exactly as the measured server's."""
    return Registry(redis, prefix, bench_registry_config())


def _announce(port: int, *more: int) -> None:
    print(" ".join(["PORT", str(port), *map(str, more)]), flush=True)


async def serve_heartbeat(redis_url: str, prefix: str, secret: str) -> None:
    """HeartbeatService with its interceptor, auth, Redis scripts and background loops."""
    settings = bench_settings(prefix, redis_url)
    # Production logs at info as JSON; successful beats log nothing, so this costs what it costs there.
    configure_logging("info", "json")
    deps = open_dependencies(
        settings, overrides={"online_window_seconds": ONLINE_WINDOW_S}, authority=TokenAuthority(secret)
    )
    suite = await start_suite(settings, "heartbeat", deps)
    _announce(suite.grpc_port)
    await _until_signal()
    await suite.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve_monitor(secret: str, http: bool = False) -> None:
    """Heartbeat, collector and monitor targets in one server, as `workermon serve` runs them; with
    `http`, the HTTP gateway too (`workermon serve --http`), on a free port."""
    # A real port, not 0: MonitorService dials its peers at its own configured address.
    overrides: dict[str, Any] = {"http_port": 0} if http else {}
    settings = load_settings(jwt_secret=secret, grpc_port=free_port(), **overrides)
    configure_logging(settings.log_level, settings.log_format)
    await migrate(settings)
    suite = await start_suite(settings, "all" if http else "services")
    gateway = suite.gateway
    if gateway is not None:
        _announce(suite.grpc_port, gateway.port)
    else:
        _announce(suite.grpc_port)
    try:
        await _until_signal()
    finally:
        await suite.stop()


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _echo(request: bytes, _context: Any) -> bytes:
    return request


async def serve_echo() -> None:
    """One unary method that returns the request bytes: no interceptor, no protobuf, no Redis."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    # No (de)serializers: the handler sees and returns raw bytes.
    handler = grpc.method_handlers_generic_handler(
        ECHO_SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _announce(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.server")
    parser.add_argument("kind", choices=("heartbeat", "monitor", "gateway", "echo"))
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--profile", default="", help="write cProfile stats of the event loop to this file")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = _parse(argv)
    if args.kind == "echo":
        job = serve_echo()
    elif args.kind in ("monitor", "gateway"):
        job = serve_monitor(os.environ[SECRET_ENV], http=args.kind == "gateway")
    else:
        job = serve_heartbeat(args.redis_url, args.prefix, os.environ[SECRET_ENV])
    if not args.profile:
        asyncio.run(job)
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(job)
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main(sys.argv[1:])
