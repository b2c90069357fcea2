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

from workermon_cli.runtime import migrate, start_suite
from workermon_core.auth import TokenAuthority
from workermon_core.logging import configure_logging
from workermon_core.redis_store import connect
from workermon_core.server import run_until_signal, start_server
from workermon_core.settings import Settings, load_settings
from workermon_heartbeat import service

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


def bench_settings(prefix: str) -> Settings:
    """Settings of the measured server; registration in the client processes reads the same ones."""
    return load_settings(redis_prefix=prefix, grpc_port=0, online_window_seconds=ONLINE_WINDOW_S)


def _announce(port: int, *more: int) -> None:
    print(" ".join(["PORT", str(port), *map(str, more)]), flush=True)


async def serve_heartbeat(redis_url: str, prefix: str, secret: str) -> None:
    """HeartbeatService with its interceptor, auth, Redis scripts and background loops."""
    settings = bench_settings(prefix)
    # Production logs at info as JSON; successful beats log nothing, so this costs what it costs there.
    configure_logging("info", "json")
    redis = connect(redis_url)
    spec, _ = service.build(settings, redis)
    suite = await start_server(
        [spec], TokenAuthority(secret), "127.0.0.1:0", readiness_interval=settings.readiness_interval_seconds
    )
    _announce(suite.port)
    await run_until_signal(suite, grace=1.0)
    await redis.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve_monitor(secret: str, http: bool = False) -> None:
    """Heartbeat, collector and monitor targets in one server, as `workermon serve` runs them; with
    `http`, the HTTP gateway too (`workermon serve --http`), on a free port."""
    # A real port, not 0: MonitorService dials its peers at its own configured address.
    overrides: dict[str, Any] = {"http_port": 0} if http else {}
    settings = load_settings(jwt_secret=secret, grpc_port=_free_port(), **overrides)
    configure_logging(settings.log_level, settings.log_format)
    await migrate(settings)
    suite = await start_suite(settings, "all", http=http)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if suite.http is not None:
        _announce(suite.server.port, suite.http.port)
    else:
        _announce(suite.server.port)
    try:
        await stop.wait()
    finally:
        await suite.stop()


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
