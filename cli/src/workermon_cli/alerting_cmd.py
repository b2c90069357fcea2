"""`workermon alerting export|import`: the alerting configuration as a JSON document, over gRPC.

Export prints the document of a revision without its secrets (webhook URLs, routing keys and SMTP
passwords left out, header values empty). Import uploads a document as the next revision; a secret it
leaves out or empty keeps the one stored for the channel of the same name, so an exported file can be
edited and imported back without ever holding a secret.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import grpc

from workermon.incidents.v1 import incident_service_pb2 as pb
from workermon.incidents.v1 import incident_service_pb2_grpc as pb_grpc
from workermon_core.client import open_channel, stub
from workermon_core.settings import Settings
from workermon_incidents.alerting_config import document_from, document_message

from .runtime import authority_for


def register(sub: Any) -> None:
    """Add the `alerting` command and its subcommands to the CLI's subparsers."""
    alerting = sub.add_parser("alerting", help="export or import the alerting configuration (over gRPC)")
    actions = alerting.add_subparsers(dest="alerting_command", required=True)
    export = actions.add_parser("export", help="print a revision's document as JSON (secrets left out)")
    export.add_argument("--revision", type=int, default=0, help="the revision (default: the one in force)")
    export.add_argument("-o", "--output", type=Path, default=None, help="write to this file, not stdout")
    upload = actions.add_parser("import", help="upload a document as the next revision")
    upload.add_argument("file", type=Path, help="the JSON document (empty secrets keep the stored ones)")
    upload.add_argument("--comment", default="", help="why the configuration changes")
    upload.add_argument("--dry-run", action="store_true", help="check the document, store nothing")
    for parser in (export, upload):
        parser.add_argument(
            "--target", default=None, help="host:port of the suite (default: the configured port)"
        )


def _client(
    settings: Settings, target: str | None, role: str
) -> tuple[pb_grpc.IncidentServiceStub, grpc.aio.Channel]:
    token = authority_for(settings).mint("workermon-cli", role, ttl_seconds=300)
    channel = open_channel(target or f"{settings.grpc_host}:{settings.grpc_port}", token)
    return stub(pb_grpc.IncidentServiceStub, channel), channel


async def export_config(settings: Settings, target: str | None, revision: int = 0) -> tuple[int, str]:
    """A revision's number and its document as JSON text (secrets left out)."""
    client, channel = _client(settings, target, "viewer")
    try:
        reply = await client.GetAlertingConfig(pb.GetAlertingConfigRequest(revision=revision), timeout=10)
    finally:
        await channel.close()
    text = json.dumps(document_from(reply.config), indent=2, ensure_ascii=False) + "\n"
    return int(reply.config.revision), text


async def import_config(
    settings: Settings, target: str | None, document: object, comment: str = "", dry_run: bool = False
) -> int:
    """Upload `document` as the revision after the current one; returns its number."""
    if not isinstance(document, dict):
        raise ValueError("the document must be a JSON object with defaults, overrides, channels and routes")
    config = document_message(document, reveal=True)
    config.comment = comment
    client, channel = _client(settings, target, "admin")
    try:
        current = await client.GetAlertingConfig(pb.GetAlertingConfigRequest(), timeout=10)
        reply = await client.UpdateAlertingConfig(
            pb.UpdateAlertingConfigRequest(
                config=config, expected_revision=current.config.revision, validate_only=dry_run
            ),
            timeout=30,
        )
    finally:
        await channel.close()
    return int(reply.config.revision)


def run(args: Any, settings: Settings) -> int:
    """Run `workermon alerting ...`; the exit status."""
    import asyncio

    try:
        if args.alerting_command == "export":
            _, text = asyncio.run(export_config(settings, args.target, args.revision))
            if args.output is None:
                sys.stdout.write(text)
            else:
                args.output.write_text(text, encoding="utf-8")
            return 0
        document = json.loads(args.file.read_text(encoding="utf-8"))
        revision = asyncio.run(import_config(settings, args.target, document, args.comment, args.dry_run))
    except grpc.aio.AioRpcError as exc:
        print(
            f"workermon alerting {args.alerting_command}: {exc.code().name}: {exc.details()}", file=sys.stderr
        )
        return 1
    except (OSError, ValueError, TypeError, KeyError) as exc:
        print(f"workermon alerting {args.alerting_command}: {exc}", file=sys.stderr)
        return 2
    print(f"valid: it would be revision {revision}" if args.dry_run else f"stored as revision {revision}")
    return 0
