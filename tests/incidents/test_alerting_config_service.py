"""The alerting configuration RPCs end to end (a real suite over gRPC, a real HTTP receiver and a real SMTP
server): the environment imported once as revision 1, secrets never read back nor audited nor logged,
updates checked field by field, ABORTED on a stale revision, pages of revisions, audit entries before and
after, applied at once to the engine and the notifier, and test notifications."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from structlog.testing import capture_logs

from tests.support.bull import until
from tests.support.suites import start_local_suite
from tests.support.webhooks import HttpReceiver
from workermon.incidents.v1 import incident_service_pb2 as pb
from workermon.incidents.v1 import incident_service_pb2_grpc as pb_grpc
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.errors import error_info

from .test_notify_delivery import SmtpHandler

HEADER_SECRET = "Bearer h34d3r-s3cr3t"
SMTP_PASSWORD = "smtp-pa55w0rd"
URL_TOKEN = "T0K3N"  # in every receiver's URL path (tests/support/webhooks.py)


def secrets() -> list[str]:
    return [HEADER_SECRET, SMTP_PASSWORD, URL_TOKEN]


def assert_no_secret(text: str) -> None:
    for secret in secrets():
        assert secret not in text, f"{secret!r} leaked"


def _check_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
) -> AuthResult:
    """Accept exactly the configured login, so a test message proves the stored password was used."""
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


@pytest.fixture
def smtp_login_server() -> Iterator[tuple[SmtpHandler, int]]:
    """A real SMTP server on a free loopback port that wants a login (AUTH without TLS, loopback only)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    handler = SmtpHandler()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, authenticator=_check_login, auth_require_tls=False
    )
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
async def configured(
    tmp_path: Path,
    redis: aioredis.Redis,
    redis_url: str,
    prefix: str,
    authority: TokenAuthority,
    http_server: Callable[..., Awaitable[HttpReceiver]],
    smtp_login_server: tuple[SmtpHandler, int],
) -> AsyncIterator[dict[str, Any]]:
    """A suite whose environment has a webhook (a secret header), an e-mail channel and rule overrides."""
    receiver = await http_server()
    smtp, port = smtp_login_server
    channels = [
        {"name": "hook", "type": "webhook", "url": receiver.url, "headers": {"Authorization": HEADER_SECRET}},
        {
            "name": "mail",
            "type": "email",
            "smtp": {
                "host": "127.0.0.1",
                "port": port,
                "username": "alerts",
                "password": SMTP_PASSWORD,
                "from": "alerts@example.com",
                "to": ["ops@example.com"],
            },
        },
    ]
    local = await start_local_suite(
        tmp_path,
        redis,
        redis_url,
        prefix,
        authority,
        targets=("heartbeat", "collector", "monitor", "incidents"),
        incident_options={"feed_poll_seconds": 0.2, "alerting_config_poll_seconds": 0.2},
        incident_eval_interval_seconds=3600,
        notify_channels=json.dumps(channels),
        incident_rules=json.dumps({"payments": {"failure_rate_threshold": 0.2}}),
        backlog_thresholds="emails=500",
    )
    opened: list[grpc.aio.Channel] = []

    def stub(role: str, subject: str | None = None) -> pb_grpc.IncidentServiceStub:
        channel = open_channel(local.target, authority.mint(subject or f"{role}-user", role))
        opened.append(channel)
        return pb_grpc.IncidentServiceStub(channel)

    def monitor() -> mon_grpc.MonitorServiceStub:
        channel = open_channel(local.target, authority.mint("vera", "viewer"))
        opened.append(channel)
        return mon_grpc.MonitorServiceStub(channel)

    yield {
        "parts": local.parts["incidents"],
        "stub": stub,
        "monitor": monitor,
        "receiver": receiver,
        "smtp": smtp,
    }
    for channel in opened:
        await channel.close()
    await local.stop()


async def refused(call: Any, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def test_the_environment_is_revision_1_with_secrets_masked(configured: dict[str, Any]) -> None:
    viewer = configured["stub"]("viewer")
    config = (await viewer.GetAlertingConfig(pb.GetAlertingConfigRequest())).config
    assert (config.revision, config.author, config.comment) == (1, "system", "imported from the environment")
    assert config.defaults.failure_rate_threshold == 0.05 and config.defaults.worker_down_missed_beats == 4
    overrides = {o.queue_glob: o.thresholds for o in config.overrides}
    assert overrides["payments"].failure_rate_threshold == 0.2
    assert not overrides["payments"].HasField("backlog_threshold")
    assert overrides["emails"].backlog_threshold == 500
    hook, mail = config.channels
    assert (hook.name, hook.type, hook.url) == ("hook", pb.NOTIFICATION_CHANNEL_TYPE_WEBHOOK, "")
    assert hook.url_hint.startswith("http://127.0.0.1:") and hook.url_hint.endswith("/…")
    assert dict(hook.headers) == {"Authorization": ""}
    assert (mail.smtp.password, mail.smtp.password_set, mail.smtp.sender) == ("", True, "alerts@example.com")
    assert_no_secret(str(config))
    # Asked again (another replica's start), nothing new is stored.
    configs = configured["parts"].configs
    assert await configs.import_environment() == 1
    listed = await viewer.ListAlertingConfigRevisions(pb.ListAlertingConfigRevisionsRequest())
    assert [r.revision for r in listed.revisions] == [1]
    await refused(
        viewer.GetAlertingConfig(pb.GetAlertingConfigRequest(revision=7)), grpc.StatusCode.NOT_FOUND
    )


async def test_update_keeps_secrets_refuses_stale_revisions_and_is_audited(
    configured: dict[str, Any],
) -> None:
    admin = configured["stub"]("admin", "adam")
    viewer = configured["stub"]("viewer")
    parts = configured["parts"]
    with capture_logs() as logs:
        config = (await viewer.GetAlertingConfig(pb.GetAlertingConfigRequest())).config
        config.defaults.failure_rate_threshold = 0.1
        config.overrides.append(
            pb.RuleOverride(worker_labels={"team": "batch"}, thresholds=pb.RuleThresholds(enabled=False))
        )
        config.routes.extend(
            [
                pb.NotificationRoute(
                    name="mail-critical", severities=[pb.SEVERITY_CRITICAL], channels=["mail"]
                ),
                pb.NotificationRoute(name="default", channels=["hook"]),
            ]
        )
        config.comment = "critical to mail"
        request = pb.UpdateAlertingConfigRequest(config=config, expected_revision=1)

        checked = (
            await admin.UpdateAlertingConfig(
                pb.UpdateAlertingConfigRequest(config=config, expected_revision=1, validate_only=True)
            )
        ).config
        assert checked.revision == 2
        assert (await viewer.GetAlertingConfig(pb.GetAlertingConfigRequest())).config.revision == 1

        updated = (await admin.UpdateAlertingConfig(request)).config
        assert (updated.revision, updated.author, updated.comment) == (2, "adam", "critical to mail")
        assert [r.name for r in updated.routes] == ["mail-critical", "default"]
        assert_no_secret(str(updated))

        stale = await refused(admin.UpdateAlertingConfig(request), grpc.StatusCode.ABORTED)
        info = error_info(stale)
        assert info is not None and info.reason == "ALERTING_CONFIG_CHANGED"
        assert info.metadata["current_revision"] == "2"
        await refused(
            configured["stub"]("operator").UpdateAlertingConfig(
                pb.UpdateAlertingConfigRequest(config=config, expected_revision=2)
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        )

        # The empty secrets kept the stored ones; this replica applied the revision at once.
        stored = (await parts.configs.get(2)).document
        hook, mail = stored["channels"]
        assert hook["url"].endswith("/hooks/" + URL_TOKEN) and hook["headers"] == {
            "Authorization": HEADER_SECRET
        }
        assert mail["smtp"]["password"] == SMTP_PASSWORD
        assert parts.configs.applied == 2
        assert parts.engine.rulebook.for_queue("orders").failure_rate_threshold == 0.1
        assert parts.engine.rulebook.for_queue("payments").failure_rate_threshold == 0.2
        assert parts.engine.rulebook.for_worker({"team": "batch"}).enabled is False
        assert [c.name for c in parts.notifier.channels] == ["hook", "mail"]
        assert [r.name for r in parts.notifier._routes] == ["mail-critical", "default"]

        first = await viewer.ListAlertingConfigRevisions(pb.ListAlertingConfigRevisionsRequest(page_size=1))
        assert [r.revision for r in first.revisions] == [2] and first.next_page_token
        second = await viewer.ListAlertingConfigRevisions(
            pb.ListAlertingConfigRevisionsRequest(page_size=1, page_token=first.next_page_token)
        )
        assert [r.revision for r in second.revisions] == [1] and not second.next_page_token
        assert_no_secret(str(first) + str(second))

        audit = await configured["monitor"]().ListAuditLogs(
            mon_pb.ListAuditLogsRequest(entity_type="alerting_config")
        )
    entries = [a for a in audit.audit_logs if a.action == mon_pb.AUDIT_ACTION_ALERTING_CONFIG_UPDATE]
    assert [(a.entity_id, a.actor, a.outcome) for a in entries] == [
        ("2", "adam", mon_pb.AUDIT_OUTCOME_SUCCEEDED)
    ]
    entry = entries[0]
    assert '"failure_rate_threshold":0.05' in entry.parameters["before.defaults"]
    assert '"failure_rate_threshold":0.1' in entry.parameters["after.defaults"]
    assert entry.parameters["before.routes"] == "" and entry.result["revision_before"] == "1"
    assert entry.result["after.routes"] == "mail-critical->mail, default->hook"
    assert '{"team":"batch"}: {"enabled":false}' in entry.result["after.overrides"]
    assert_no_secret(str(audit))
    assert logs and any(e["event"] == "alerting_config_applied" for e in logs)
    assert_no_secret(repr(logs))


async def test_bad_configurations_are_refused_naming_the_field(configured: dict[str, Any]) -> None:
    admin = configured["stub"]("admin")
    base = (await configured["stub"]("viewer").GetAlertingConfig(pb.GetAlertingConfigRequest())).config

    def edited(change: Callable[[pb.AlertingConfig], object]) -> pb.AlertingConfig:
        config = pb.AlertingConfig()
        config.CopyFrom(base)
        change(config)
        return config

    def route(**fields: Any) -> pb.NotificationRoute:
        return pb.NotificationRoute(**fields)

    cases: dict[str, tuple[Callable[[pb.AlertingConfig], object], str]] = {
        "config.defaults.failure_rate_threshold": (
            lambda c: setattr(c.defaults, "failure_rate_threshold", 1.5),
            "must be > 0 and <= 1",
        ),
        "config.defaults.stuck_minutes": (lambda c: c.defaults.ClearField("stuck_minutes"), "required"),
        "config.overrides[2].queue_glob": (
            lambda c: c.overrides.append(pb.RuleOverride(queue_glob="pay[", thresholds=pb.RuleThresholds())),
            "glob",
        ),
        "config.overrides[2]": (
            lambda c: c.overrides.append(pb.RuleOverride()),
            "queue_glob or worker_labels",
        ),
        "config.overrides[0].thresholds.worker_down_missed_beats": (
            lambda c: setattr(c.overrides[0].thresholds, "worker_down_missed_beats", 0),
            ">= 1",
        ),
        "config.channels[1].smtp.host": (lambda c: setattr(c.channels[1].smtp, "host", ""), "required"),
        "config.channels[1].smtp.sender": (
            lambda c: setattr(c.channels[1].smtp, "sender", "nobody"),
            "address",
        ),
        "config.channels[2].name": (
            lambda c: c.channels.append(
                pb.NotificationChannel(
                    name="hook", type=pb.NOTIFICATION_CHANNEL_TYPE_SLACK, url="https://hooks.example.com/x"
                )
            ),
            "another channel",
        ),
        "config.channels[2].url": (
            lambda c: c.channels.append(
                pb.NotificationChannel(name="new", type=pb.NOTIFICATION_CHANNEL_TYPE_SLACK)
            ),
            "required",
        ),
        "config.channels[2].type": (
            lambda c: c.channels.append(pb.NotificationChannel(name="odd")),
            "one of",
        ),
        "config.routes[0].channels": (
            lambda c: c.routes.extend([route(name="a", channels=["x"])]),
            "unknown channel 'x'",
        ),
        "config.routes[1]": (
            lambda c: c.routes.extend([route(name="a"), route(name="b", queue_glob="pay*")]),
            "last route",
        ),
        "config.routes[1].name": (lambda c: c.routes.extend([route(name="a"), route(name="a")]), "used"),
        "config.routes[0].name": (lambda c: c.routes.extend([route(name="has space")]), "letters"),
        "config.routes[0].group_wait_seconds": (
            lambda c: c.routes.extend([route(name="a", group_wait_seconds=3601)]),
            "3600",
        ),
        "config.routes[0].escalations[1].after_minutes": (
            lambda c: c.routes.extend(
                [
                    route(
                        name="a",
                        escalations=[
                            pb.EscalationStep(after_minutes=30, channels=["mail"]),
                            pb.EscalationStep(after_minutes=10, channels=["mail"]),
                        ],
                    )
                ]
            ),
            "previous",
        ),
        "config.routes[0].escalations[0].channels": (
            lambda c: c.routes.extend(
                [route(name="a", escalations=[pb.EscalationStep(after_minutes=5, channels=["nope"])])]
            ),
            "unknown channel",
        ),
        "config.comment": (lambda c: setattr(c, "comment", "x" * 2001), "2000"),
        "config.channels[0].headers[X-New]": (
            lambda c: c.channels[0].headers.update({"X-New": ""}),
            "stored",
        ),
    }
    for field, (change, words) in cases.items():
        request = pb.UpdateAlertingConfigRequest(config=edited(change), expected_revision=1)
        error = await refused(admin.UpdateAlertingConfig(request), grpc.StatusCode.INVALID_ARGUMENT)
        details = error.details() or ""
        assert details.startswith(field + ":") and words in details, (field, details)
        assert_no_secret(details)
    assert (await configured["parts"].configs.current()).revision == 1


async def test_test_notifications_reach_a_webhook_and_a_mailbox(configured: dict[str, Any]) -> None:
    admin = configured["stub"]("admin", "adam")
    receiver: HttpReceiver = configured["receiver"]
    smtp: SmtpHandler = configured["smtp"]
    with capture_logs() as logs:
        sent = await admin.TestNotificationChannel(pb.TestNotificationChannelRequest(channel="hook"))
        assert (sent.delivered, sent.status_code, sent.error) == (True, 200, "")
        assert receiver.requests[-1].headers["Authorization"] == HEADER_SECRET
        assert "Test notification" in json.dumps(receiver.requests[-1].body)

        # Unsaved settings: the URL left empty is the stored one; the receiver's refusal is reported.
        receiver.answers.append(500)
        unsaved = pb.NotificationChannel(
            name="hook",
            type=pb.NOTIFICATION_CHANNEL_TYPE_WEBHOOK,
            headers={"Authorization": ""},
            max_attempts=1,
        )
        failed = await admin.TestNotificationChannel(
            pb.TestNotificationChannelRequest(channel="hook", settings=unsaved)
        )
        assert (failed.delivered, failed.status_code) == (False, 500) and failed.error.startswith("HTTP 500")
        assert len(receiver.requests) == 2 and receiver.requests[-1].headers["Authorization"] == HEADER_SECRET

        mailed = await admin.TestNotificationChannel(pb.TestNotificationChannelRequest(channel="mail"))
        assert mailed.delivered and mailed.status_code == 250
        assert len(smtp.envelopes) == 1 and smtp.envelopes[0].rcpt_tos == ["ops@example.com"]

        await refused(
            admin.TestNotificationChannel(pb.TestNotificationChannelRequest(channel="nope")),
            grpc.StatusCode.NOT_FOUND,
        )
        bad = await refused(
            admin.TestNotificationChannel(
                pb.TestNotificationChannelRequest(
                    channel="new", settings=pb.NotificationChannel(type=pb.NOTIFICATION_CHANNEL_TYPE_SLACK)
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert (bad.details() or "").startswith("settings.url:")
        await refused(
            configured["stub"]("viewer", "vera").TestNotificationChannel(
                pb.TestNotificationChannelRequest(channel="hook")
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        monitor = configured["monitor"]()

        async def denied() -> list[tuple[str, str]]:
            found = await monitor.ListAuditLogs(
                mon_pb.ListAuditLogsRequest(
                    action=mon_pb.AUDIT_ACTION_NOTIFICATION_CHANNEL_TEST, outcome=mon_pb.AUDIT_OUTCOME_DENIED
                )
            )
            return [(a.actor, a.entity_id) for a in found.audit_logs]

        async def recorded() -> bool:
            return bool(await denied())

        await until(recorded, what="the refusal audited")
        assert await denied() == [("vera", "hook")]
        audit = await monitor.ListAuditLogs(
            mon_pb.ListAuditLogsRequest(
                action=mon_pb.AUDIT_ACTION_NOTIFICATION_CHANNEL_TEST, outcome=mon_pb.AUDIT_OUTCOME_SUCCEEDED
            )
        )
    tested = sorted((a.entity_id, a.result["delivered"]) for a in audit.audit_logs if a.actor == "adam")
    assert tested == [("hook", False), ("hook", True), ("mail", True)]
    assert_no_secret(str(audit) + repr(logs) + str(sent) + str(failed))
