"""The alerting configuration as data, on SQLite and PostgreSQL: the document's checks and conversions,
glob and worker-label overrides reaching the rules, the environment imported once however many replicas
start, and a revision stored by one replica applied by another."""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from tests.support.fakes import FakeClock
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon_core.errors import Aborted, InvalidArgument
from workermon_incidents import alerting_config, routing
from workermon_incidents.alerting_store import AlertingConfigs
from workermon_incidents.audited import AuditHook
from workermon_incidents.engine import EngineConfig
from workermon_incidents.rules import RuleConfig, WorkerState
from workermon_incidents.settings import IncidentSettings
from workermon_incidents.source import worker_of
from workermon_incidents.store import IncidentStore
from workermon_queues.settings import QueueSettings

from .conftest import START, FakeSource, Harness, make_engine

SECRET_URL = "https://hooks.example.com/services/T0K3N"


def document(**changes: Any) -> dict[str, Any]:
    """A valid document: the settings' defaults, one glob and one worker override, a channel, two routes."""
    base = alerting_config.from_environment(IncidentSettings(), QueueSettings())
    base["overrides"] = [
        {"queue_glob": "pay*", "worker_labels": {}, "thresholds": {"failure_rate_threshold": 0.5}},
        {"queue_glob": "payments", "worker_labels": {}, "thresholds": {"failure_rate_threshold": 0.9}},
        {
            "queue_glob": "",
            "worker_labels": {"team": "batch"},
            "thresholds": {"worker_down_missed_beats": 10},
        },
    ]
    base["channels"] = [{"name": "ops", "type": "slack", "url": SECRET_URL}]
    base["routes"] = [
        {"name": "critical", "severities": ["CRITICAL"], "channels": ["ops"], "group_wait_seconds": 0},
        {"name": "default", "channels": []},
    ]
    base.update(changes)
    return base


def test_overrides_apply_first_match_field_by_field() -> None:
    compiled = alerting_config.compile_document(document())
    book = compiled.rulebook
    # The first matching glob wins, even over a later exact name; other fields keep the defaults.
    assert book.for_queue("payments").failure_rate_threshold == 0.5
    assert book.for_queue("payments").backlog_threshold == book.defaults.backlog_threshold
    assert book.for_queue("orders") is book.defaults
    assert book.for_worker({"team": "batch", "zone": "a"}) is not None
    assert book.for_worker({"team": "web"}) is None
    assert [c.name for c in compiled.channels] == ["ops"]
    critical, default = compiled.routes
    assert critical.group_wait_seconds == 0 and default.matches_everything
    assert default.group_wait_seconds == routing.DEFAULT_GROUP_WAIT_SECONDS


def test_document_round_trips_through_the_proto_without_its_secrets() -> None:
    original = document()
    message = alerting_config.document_message(original)
    assert SECRET_URL not in str(message) and message.channels[0].url_hint == "https://hooks.example.com/…"
    back = alerting_config.document_from(message)
    assert back["defaults"] == original["defaults"]
    assert back["overrides"] == original["overrides"]
    assert "url" not in back["channels"][0]
    # An update that leaves the URL empty keeps the stored one (same name, same type only).
    assert alerting_config.keep_secrets(back, original)["channels"][0]["url"] == SECRET_URL
    other = copy.deepcopy(back)
    other["channels"][0]["type"] = "webhook"
    assert "url" not in alerting_config.keep_secrets(other, original)["channels"][0]
    assert alerting_config.masked(original)["channels"][0] == {"name": "ops", "type": "slack"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["defaults"].update(failure_rate_threshold=0), "config.defaults.failure_rate_threshold"),
        (lambda d: d["defaults"].update(enabled="yes"), "config.defaults.enabled"),
        (lambda d: d["defaults"].update(backlog_threshold=1.5), "config.defaults.backlog_threshold"),
        (lambda d: d["defaults"].update(nonsense=1), "config.defaults.nonsense"),
        (lambda d: d["overrides"][1].update(queue_glob="[ab"), "config.overrides[1].queue_glob"),
        (
            lambda d: d["overrides"][0]["thresholds"].update(stuck_minutes=0),
            "config.overrides[0].thresholds.stuck_minutes",
        ),
        (
            lambda d: d["channels"].append(
                {"name": "m", "type": "email", "smtp": {"from": "a@b", "to": ["c@d"]}}
            ),
            "config.channels[1].smtp.host",
        ),
        (
            lambda d: d["channels"].append({"name": "ops", "type": "slack", "url": SECRET_URL}),
            "config.channels[1].name",
        ),
        (lambda d: d["routes"][0].update(types=["NOPE"]), "config.routes[0].types"),
        (
            lambda d: d["routes"][0].update(escalations=[{"after_minutes": 10081, "channels": ["ops"]}]),
            "config.routes[0].escalations[0].after_minutes",
        ),
        (lambda d: d["routes"].reverse(), "config.routes[1]"),
        (lambda d: d.update(extra=1), "config.extra"),
    ],
)
def test_mistakes_name_their_field(change: Any, field: str) -> None:
    broken = document()
    change(broken)
    with pytest.raises(InvalidArgument) as caught:
        alerting_config.compile_document(broken)
    assert caught.value.field == field
    assert SECRET_URL not in str(caught.value)


def test_threshold_bounds_come_from_the_settings() -> None:
    broken = document()
    broken["defaults"]["failure_rate_threshold"] = 1.5
    with pytest.raises(InvalidArgument, match=r"must be > 0 and <= 1 \(got 1.5\)"):
        alerting_config.compile_document(broken)


async def test_worker_label_overrides_reach_the_worker_rule_and_labels_the_finding(
    harness_factory: Any,
) -> None:
    h: Harness = harness_factory(RuleConfig(), beat_interval_seconds=10, worker_down_missed_beats=3)
    compiled = alerting_config.compile_document(document())
    h.engine.configure(
        compiled.rulebook,
        replace(h.engine.config, worker_down_missed_beats=compiled.worker_down_missed_beats),
    )
    now = datetime.fromtimestamp(h.clock(), tz=UTC)
    gone = now - timedelta(seconds=60)  # 6 beats: down by the defaults (4), not for the batch team (10)
    batch = WorkerState("batch-1", False, gone, labels={"team": "batch"})
    web = WorkerState("web-1", False, gone, labels={"team": "web", "zone": "eu"})
    changes = await h.engine.evaluate_workers([batch, web])
    fired = {c.incident.worker_id: c.incident for c in changes}
    assert set(fired) == {"web-1"}
    assert fired["web-1"].labels["worker.zone"] == "eu" and fired["web-1"].labels["worker.team"] == "web"
    # Switched off for the batch team: no finding at all, even much later.
    off = copy.deepcopy(document())
    off["overrides"][2]["thresholds"] = {"enabled": False}
    h.engine.configure(alerting_config.compile_document(off).rulebook, h.engine.config)
    h.clock.advance(3600)
    assert await h.engine.evaluate_workers([batch]) == []


async def test_the_environment_is_imported_once_and_replicas_follow_updates(db: AsyncEngine) -> None:
    settings = IncidentSettings(
        notify_channels=json.dumps([{"name": "ops", "type": "slack", "url": SECRET_URL}]),
        incident_rules=json.dumps({"emails": {"backlog_threshold": 900}}),
    )
    environment = alerting_config.from_environment(settings, QueueSettings(backlog_thresholds="jobs=50"))

    def now() -> datetime:
        return datetime.fromtimestamp(START, tz=UTC)

    store = IncidentStore(db)
    first, second = (
        AlertingConfigs(store, lambda: environment, now),
        AlertingConfigs(store, lambda: environment, now),
    )
    seen: dict[str, list[int]] = {"first": [], "second": []}
    clock = FakeClock(START)
    replica = make_engine(db, FakeSource(), clock, RuleConfig(), worker_down_missed_beats=4)

    def follow(compiled: alerting_config.Compiled) -> None:
        seen["second"].append(compiled.rulebook.for_queue("orders").backlog_threshold)
        replica.configure(
            compiled.rulebook,
            replace(replica.config, worker_down_missed_beats=compiled.worker_down_missed_beats),
        )

    first.on_apply(lambda c: seen["first"].append(c.rulebook.for_queue("orders").backlog_threshold))
    second.on_apply(follow)
    # Two replicas starting at once store one revision 1.
    assert await asyncio.gather(first.sync(), second.sync()) == [1, 1]
    assert [r.revision for r in await first.page(None, 10)] == [1]
    stored = (await first.get(1)).document
    assert stored == environment and stored["overrides"] == [
        {"queue_glob": "emails", "worker_labels": {}, "thresholds": {"backlog_threshold": 900}},
        {"queue_glob": "jobs", "worker_labels": {}, "thresholds": {"backlog_threshold": 50}},
    ]
    assert replica.rulebook.for_queue("jobs").backlog_threshold == 50

    changed = copy.deepcopy(alerting_config.masked(stored))
    changed["defaults"]["backlog_threshold"] = 333
    changed["defaults"]["worker_down_missed_beats"] = 7
    revision = await first.update(changed, expected_revision=1, author="adam", comment="more")
    assert revision.revision == 2 and revision.document["channels"][0]["url"] == SECRET_URL
    with pytest.raises(Aborted):
        await second.update(changed, expected_revision=1, author="eve", comment="late")
    # The other replica picks the revision up on its next poll.
    assert await second.sync() == 2
    assert seen == {"first": [200, 333], "second": [200, 333]}
    assert replica.config.worker_down_missed_beats == 7
    assert replica.rulebook.for_queue("orders").backlog_threshold == 333

    # A third replica started later with another environment keeps the stored revision, and says so once.
    other = AlertingConfigs(
        store, lambda: alerting_config.from_environment(IncidentSettings(), QueueSettings()), now
    )
    with capture_logs() as logs:
        assert await other.sync() == 2
        assert await other.sync() == 2
    events = [e["event"] for e in logs]
    assert events.count("alerting_config_environment_ignored") == 1
    assert SECRET_URL not in repr(logs)


async def test_an_audit_failure_removes_the_revision(db: AsyncEngine) -> None:
    environment = alerting_config.from_environment(IncidentSettings(), QueueSettings())
    configs = AlertingConfigs(IncidentStore(db), lambda: environment, lambda: datetime.now(UTC))
    await configs.sync()

    kept: list[bytes] = []

    def request(change: Any, at: datetime) -> bytes:
        kept.append(f"revision {change[1].revision} after {change[0].revision}".encode())
        return kept[-1]

    async def send(entry: bytes) -> None:
        # The revision and its entry are committed together when the entry is sent.
        assert [r.revision for r in await configs.page(None, 10)] == [2, 1]
        assert [e for _, e in await configs.store.audits_before(datetime(2100, 1, 1, tzinfo=UTC))] == [entry]
        raise RuntimeError("the audit log is down")

    with pytest.raises(RuntimeError):
        await configs.update(
            copy.deepcopy(environment),
            expected_revision=1,
            author="a",
            comment="",
            audit=AuditHook(request, send),
        )
    assert kept == [b"revision 2 after 1"]
    assert [r.revision for r in await configs.page(None, 10)] == [1] and configs.applied == 1
    assert await configs.store.audits_before(datetime(2100, 1, 1, tzinfo=UTC)) == []


def test_engine_config_defaults_stay_for_engines_built_without_a_document() -> None:
    assert EngineConfig().worker_down_missed_beats == 4 and RuleConfig().worker_down_missed_beats is None


def test_a_heartbeat_worker_brings_its_labels() -> None:
    message = hb_pb.Worker(
        report=hb_pb.WorkerReport(worker_id="w-1", labels={"team": "batch"}),
        status=hb_pb.WORKER_STATUS_ONLINE,
    )
    message.last_seen_time.FromDatetime(datetime.fromtimestamp(START, tz=UTC))
    assert worker_of(message).labels == {"team": "batch"}
