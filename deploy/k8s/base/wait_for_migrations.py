"""Wait until the database schema is at the revision this image ships (or past it), then exit 0.

The initContainer of the Deployments that use the database (deploy/k8s/base/wait-for-migrations.yaml):
the Job `workermon-migrate` runs `workermon migrate`, and the pods start only once it has. It reads
DATABASE_URL like the suite does and only reads: it never creates or alters a table.

Per service that keeps tables (or only the targets named), the schema is
- at head: done;
- at a revision this image does not know: newer than the image (a rolling update, the Job already ran
  with the next image): done, the suite's migrations stay compatible with the code before them;
- not migrated yet, or at an older revision, or the database does not answer: wait and ask again.

Exits 1 when `--timeout` seconds pass first (the pod then restarts and waits again), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from alembic.script import ScriptDirectory
from alembic.util import CommandError

from workermon_cli import registry
from workermon_core.db import database_url
from workermon_core.migrations import Migrations
from workermon_core.settings import ConfigError, load_settings


def _is_known(migrations: Migrations, revision: str) -> bool:
    """Whether `revision` is one of the scripts this image ships."""
    try:
        return ScriptDirectory.from_config(migrations.config()).get_revision(revision) is not None
    except CommandError:  # alembic's ResolutionError: no such revision
        return False


async def _pending(names: list[str], url: str) -> dict[str, str]:
    """What each service still waits for, by name; empty when every schema is ready."""
    waiting: dict[str, str] = {}
    for name in names:
        migrations = registry.BY_NAME[name].migrations
        assert migrations is not None
        head = migrations.head_revision()
        try:
            current = await migrations.current_revision(url)
        except Exception as exc:  # the database does not answer (yet): wait like for a migration
            waiting[name] = f"database not answering ({type(exc).__name__})"
            continue
        if current == head or (current is not None and not _is_known(migrations, current)):
            continue
        waiting[name] = f"at {current or 'no revision'}, this image needs {head}"
    return waiting


def _parser() -> argparse.ArgumentParser:
    with_tables = [m.name for m in registry.with_migrations()]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"any of {', '.join(with_tables)} (default: all)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between two looks")
    return parser


async def _wait(names: list[str], url: str, give_up_after: float, interval: float) -> bool:
    deadline = time.monotonic() + give_up_after
    said: dict[str, str] = {}
    while True:
        waiting = await _pending(names, url)
        if not waiting:
            print(f"schema ready: {', '.join(names)}", flush=True)
            return True
        if waiting != said:
            for name, why in waiting.items():
                print(f"waiting for the migration of {name}: {why}", flush=True)
            said = waiting
        if time.monotonic() >= deadline:
            print(f"gave up after {give_up_after:g} s: run `workermon migrate` (the Job workermon-migrate)")
            return False
        await asyncio.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    """Entry point: wait for the named targets' schemas (all by default)."""
    parser = _parser()
    args = parser.parse_args(argv)
    with_tables = [m.name for m in registry.with_migrations()]
    if unknown := [name for name in args.targets if name not in with_tables]:
        parser.error(f"no migrations for {', '.join(unknown)}; choose among {', '.join(with_tables)}")
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"wait_for_migrations: {exc}", file=sys.stderr)
        return 2
    names = args.targets or with_tables
    ready = asyncio.run(_wait(names, database_url(settings), args.timeout, args.interval))
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
