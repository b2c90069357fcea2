"""`workermon user add|list|remove|logout-all`: the people who may log in to the HTTP gateway.

Adding, removing and logging out everywhere are written to the audit log first (through the running
suite's MonitorService, else straight into the audit table of the suite's database, so they work while
the services are down), with the acting account `cli:<login name>`; when the audit log cannot be
written, nothing is changed. Removing
a user and logging out everywhere revoke the user's tokens in the suite's Redis, which every process
reads within seconds (workermon_core.revocation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workermon_gateway.settings import GatewaySettings
    from workermon_gateway.users import UserStore

import argparse
import asyncio
import getpass
import json
import os
import secrets
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from workermon_core.errors import Unavailable
from workermon_core.private_files import write_private_file
from workermon_core.settings import Settings

FIRST_ADMIN = "admin"
# Where a generated first-admin password goes when no terminal can show it (0600, in the data dir).
FIRST_PASSWORD_FILE = "first-admin-password"


def register(sub: Any) -> None:
    """Add the `user` command and its subcommands to the CLI's subparsers."""
    from workermon_gateway.users import USER_ROLES

    user = sub.add_parser("user", help="manage who may log in to the HTTP gateway (users file)")
    actions = user.add_subparsers(dest="user_command", required=True)
    add = actions.add_parser("add", help="create a user (asks for the password twice)")
    add.add_argument("name", help="1-64 letters, digits and . _ @ -")
    add.add_argument("--role", required=True, choices=USER_ROLES)
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin"
    )
    add.add_argument("--replace", action="store_true", help="replace the user when it exists already")
    actions.add_parser("list", help="list the users and their roles")
    remove = actions.add_parser("remove", help="delete a user and revoke their tokens")
    remove.add_argument("name")
    logout = actions.add_parser(
        "logout-all", help="revoke every token of a user in every service (they must log in again)"
    )
    logout.add_argument("name")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise ValueError("the passwords do not match")
    return first


def cli_actor() -> str:
    """Who acts through the CLI, for the audit log: `cli:<login name>` (no user name has a colon)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli:{name}"


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out `workermon user ...`; 0 on success, 1 with the reason on stderr otherwise."""
    from workermon_core.settings import load
    from workermon_gateway.settings import GatewaySettings
    from workermon_gateway.users import UserError, UserStore, users_path

    store = UserStore(users_path(load(GatewaySettings), settings.data_dir))
    try:
        if args.user_command == "add":
            password = _password(args.password_stdin)
            asyncio.run(_add(settings, store, args.name, args.role, password, replace=args.replace))
            print(f"user {args.name!r} saved with role {args.role} in {store.path}")
        elif args.user_command == "list":
            users = store.list()
            if not users:
                print(f"no users in {store.path}; add one with `workermon user add NAME --role admin`")
            width = max((len(u.name) for u in users), default=4)
            for u in users:
                print(f"{u.name:<{width}}  {u.role:<8}  {u.created_at}")
        elif args.user_command == "remove":
            asyncio.run(_remove(settings, store, args.name))
            print(f"user {args.name!r} removed; their tokens are refused from now on")
        elif args.user_command == "logout-all":
            asyncio.run(_logout_all(settings, args.name))
            print(f"every token of {args.name!r} is refused from now on; they must log in again")
        else:
            return 2
    except (UserError, ValueError, EOFError, Unavailable) as exc:
        print(f"workermon: {exc or 'no password given'}", file=sys.stderr)
        return 1
    return 0


async def _add(
    settings: Settings, store: UserStore, name: str, role: str, password: str, *, replace: bool
) -> None:
    from workermon_gateway.users import UserExists, check_name, check_password, check_role

    check_name(name)
    check_role(role)
    check_password(password, name)
    if not replace and store.role_of(name) is not None:
        raise UserExists(f"user {name!r} exists already; replace it explicitly")
    await audit_user_action(
        settings, "USER_ADD", name, {"role": role, "replace": replace}, actor=cli_actor(), role="admin"
    )
    store.add(name, role, password, replace=replace)


async def _remove(settings: Settings, store: UserStore, name: str) -> None:
    from workermon_gateway.users import UnknownUser

    if name not in {u.name for u in store.list()}:
        raise UnknownUser(f"no user named {name!r}")
    await audit_user_action(settings, "USER_REMOVE", name, {}, actor=cli_actor(), role="admin")
    # Revoked first: when the suite's Redis does not answer, the user stays, and nothing is half done.
    await revoke_tokens(settings, name)
    store.remove(name)


async def _logout_all(settings: Settings, name: str) -> None:
    from workermon_gateway.users import check_name

    check_name(name)
    await audit_user_action(settings, "LOGOUT_ALL", name, {}, actor=cli_actor(), role="admin")
    await revoke_tokens(settings, name)


async def revoke_tokens(settings: Settings, subject: str) -> float:
    """Void every token of `subject` issued until now, in the suite's Redis (configured or embedded)."""
    from workermon_core.redis_store import EmbeddedRedis, connect_any
    from workermon_core.revocation import RevocationStore

    embedded = EmbeddedRedis(settings.data_dir) if settings.redis_url is None else None
    url = embedded.start() if embedded is not None else settings.redis_url
    assert url is not None
    client = connect_any(url)
    try:
        return await RevocationStore(client, settings.redis_prefix).revoke(subject)
    except Exception as exc:
        raise Unavailable(
            f"the tokens of {subject!r} could not be revoked: the suite's Redis did not answer ({exc})",
            reason="REVOCATION_UNAVAILABLE",
        ) from None
    finally:
        await client.aclose()
        if embedded is not None:
            embedded.stop()


async def audit_user_action(
    settings: Settings,
    action: str,
    user: str,
    parameters: dict[str, Any],
    *,
    actor: str,
    role: str,
    through_suite: bool = True,
) -> None:
    """Write a user action (USER_ADD, USER_REMOVE, LOGOUT_ALL) to the audit log; Unavailable (and the
    action is not to be done) when it cannot be written.

    Through the running suite's MonitorService (CreateAuditLog) when it answers, as every other writer
    does; else straight into the audit table of the suite's database when this process has one (a
    configured DATABASE_URL, or the SQLite file of the data directory), so users can be managed while
    the suite is stopped. `through_suite=False` goes to the database at once (`workermon up`, before
    the suite starts)."""
    details = {**parameters, "via": "cli", "host": socket.gethostname()}
    problem = "the suite is not asked"
    if through_suite:
        try:
            await _append_through_suite(settings, action, user, details, actor=actor, role=role)
            return
        except Unavailable as exc:
            problem = exc.message
    if not _has_database(settings):
        raise Unavailable(
            f"the audit log cannot be written ({problem}) and this process has no database of the suite;"
            " nothing was changed (start the suite, or set DATABASE_URL)",
            reason="AUDIT_UNAVAILABLE",
        )
    await _append_to_database(settings, action, user, details, actor=actor, role=role)


def _has_database(settings: Settings) -> bool:
    from workermon_core.db import SQLITE_FILE

    return bool(settings.database_url) or (settings.data_dir / SQLITE_FILE).is_file()


async def _append_through_suite(
    settings: Settings, action: str, user: str, details: dict[str, Any], *, actor: str, role: str
) -> None:
    from google.protobuf import struct_pb2

    from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
    from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
    from workermon_core.audit_client import append_audit_log
    from workermon_core.client import open_channel

    from .runtime import authority_for

    entry = mon_pb.AuditLog(
        actor=actor,
        role=role,
        action=mon_pb.AuditAction.Value(f"AUDIT_ACTION_{action}"),
        entity_type="user",
        entity_id=user,
        outcome=mon_pb.AUDIT_OUTCOME_SUCCEEDED,
    )
    parameters = struct_pb2.Struct()
    parameters.update(details)
    entry.parameters.CopyFrom(parameters)
    # CreateAuditLog needs admin: whoever holds the suite's key holds that (the subject says who).
    token = authority_for(settings).mint(cli_actor(), "admin", ttl_seconds=60)
    channel = open_channel(settings.monitor_target or settings.grpc_address, token)
    try:
        await append_audit_log(mon_grpc.MonitorServiceStub(channel), entry)
    finally:
        await channel.close()


async def _append_to_database(
    settings: Settings, action: str, user: str, details: dict[str, Any], *, actor: str, role: str
) -> None:
    from workermon_core.db import create_engine, database_url
    from workermon_core.protos import utcnow
    from workermon_monitor.audit.store import AuditEntry, AuditStore

    engine = create_engine(database_url(settings))
    try:
        await AuditStore(engine).append(
            AuditEntry(
                time=utcnow(),
                actor=actor,
                role=role,
                action=action,
                entity_type="user",
                entity_id=user,
                outcome="SUCCEEDED",
                parameters=json.dumps(details),
            )
        )
    except Exception as exc:
        # The first line says it (SQLAlchemy appends the statement and its parameters).
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise Unavailable(
            f"the audit log cannot be written ({why}); nothing was changed"
            " (is the database migrated? `workermon migrate`)",
            reason="AUDIT_UNAVAILABLE",
        ) from None
    finally:
        await engine.dispose()


@dataclass(frozen=True, slots=True)
class FirstAdmin:
    """The first admin just created; `password` is the generated one (None: it was supplied)."""

    name: str
    password: str | None


def ensure_first_admin(settings: Settings, gateway: GatewaySettings | None = None) -> FirstAdmin | None:
    """When nobody may log in yet, create `admin` with WORKERMON_FIRST_ADMIN_PASSWORD (checked by the
    password policy) or a random password; None when the users file holds anyone already."""
    from workermon_core.settings import load
    from workermon_gateway.settings import GatewaySettings
    from workermon_gateway.users import UserStore, check_password, users_path

    gw = gateway or load(GatewaySettings)
    store = UserStore(users_path(gw, settings.data_dir))
    if len(store):
        return None
    supplied = gw.first_admin_password.get_secret_value() if gw.first_admin_password else None
    if supplied is not None:
        check_password(supplied, FIRST_ADMIN, field="WORKERMON_FIRST_ADMIN_PASSWORD")
    password = supplied or secrets.token_urlsafe(18)
    if not store.add_first(FIRST_ADMIN, "admin", password):
        return None
    return FirstAdmin(FIRST_ADMIN, None if supplied else password)


def show_first_password(
    first: FirstAdmin, data_dir: Path, open_terminal: Callable[[], TextIO | None] | None = None
) -> str:
    """Show a generated first-admin password once, on the terminal only (never stdout or a log, which
    may be kept); without a terminal, put it in an owner-only file. Returns the line for the banner."""
    if first.password is None:
        return f"    user {first.name}, password as set in WORKERMON_FIRST_ADMIN_PASSWORD"
    terminal = (open_terminal or _open_terminal)()
    if terminal is not None:
        terminal.write(
            f"\nFirst admin (shown only this once): user {first.name}, password {first.password}\n"
            f"Change it with: workermon user add {first.name} --role admin --replace\n\n"
        )
        terminal.flush()
        return f"    user {first.name}, password shown on the terminal (not in this output)"
    path = data_dir / FIRST_PASSWORD_FILE
    write_private_file(path, first.password + "\n")
    return f"    user {first.name}, password in {path.resolve()} (readable by you only; delete it once read)"


def _open_terminal() -> TextIO | None:
    """The terminal the command runs in: stderr when it is one, else the controlling terminal."""
    if sys.stderr.isatty():
        return sys.stderr
    try:
        return open("/dev/tty", "w", encoding="utf-8")
    except OSError:
        return None
