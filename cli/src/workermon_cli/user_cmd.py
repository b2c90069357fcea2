"""`workermon user add|list|remove`: the people who may log in to the HTTP gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workermon_gateway.settings import GatewaySettings

import argparse
import getpass
import secrets
import sys
from typing import Any

from workermon_core.settings import Settings

FIRST_ADMIN = "admin"


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
    remove = actions.add_parser("remove", help="delete a user")
    remove.add_argument("name")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise ValueError("the passwords do not match")
    return first


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out `workermon user ...`; 0 on success, 1 with the reason on stderr otherwise."""
    from workermon_core.settings import load
    from workermon_gateway.settings import GatewaySettings
    from workermon_gateway.users import UserError, UserStore, users_path

    store = UserStore(users_path(load(GatewaySettings), settings.data_dir))
    try:
        if args.user_command == "add":
            store.add(args.name, args.role, _password(args.password_stdin), replace=args.replace)
            print(f"user {args.name!r} saved with role {args.role} in {store.path}")
        elif args.user_command == "list":
            users = store.list()
            if not users:
                print(f"no users in {store.path}; add one with `workermon user add NAME --role admin`")
            width = max((len(u.name) for u in users), default=4)
            for u in users:
                print(f"{u.name:<{width}}  {u.role:<8}  {u.created_at}")
        elif args.user_command == "remove":
            store.remove(args.name)
            print(f"user {args.name!r} removed")
        else:
            return 2
    except (UserError, ValueError, EOFError) as exc:
        print(f"workermon: {exc or 'no password given'}", file=sys.stderr)
        return 1
    return 0


def ensure_first_admin(settings: Settings, gateway: GatewaySettings | None = None) -> str | None:
    """When nobody may log in yet, create `admin` with a random password and return that password.

    Returns None when the users file holds anyone already (the password is shown only once).
    """
    from workermon_core.settings import load
    from workermon_gateway.settings import GatewaySettings
    from workermon_gateway.users import UserStore, users_path

    store = UserStore(users_path(gateway or load(GatewaySettings), settings.data_dir))
    if len(store):
        return None
    password = secrets.token_urlsafe(18)
    created = store.add_first(FIRST_ADMIN, "admin", password)
    return password if created else None
