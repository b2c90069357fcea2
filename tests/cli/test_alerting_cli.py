"""`workermon alerting export|import` against a real suite over gRPC: an exported document holds no secret,
and importing it back stores the same configuration as the next revision (the secrets kept)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.support.fakes import TEST_SECRET
from tests.support.suites import start_local_suite
from workermon_cli.alerting_cmd import export_config, import_config, run
from workermon_core.auth import TokenAuthority
from workermon_core.settings import Settings

HOOK = "https://hooks.example.com/services/T0K3N-cli"


@pytest.fixture
async def suite(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[dict[str, Any]]:
    local = await start_local_suite(
        tmp_path,
        redis,
        redis_url,
        prefix,
        authority,
        targets=("heartbeat", "collector", "monitor", "incidents"),
        incident_eval_interval_seconds=3600,
        notify_channels=json.dumps([{"name": "ops", "type": "slack", "url": HOOK}]),
        incident_rules=json.dumps({"payments": {"failure_rate_threshold": 0.3}}),
    )
    yield {"target": local.target, "configs": local.parts["incidents"].configs}
    await local.stop()


async def test_export_then_import_stores_the_same_configuration(
    suite: dict[str, Any], tmp_path: Path
) -> None:
    settings = Settings(jwt_secret=TEST_SECRET, data_dir=tmp_path)
    revision, text = await export_config(settings, suite["target"])
    assert revision == 1 and "T0K3N" not in text
    document = json.loads(text)
    assert document["channels"] == [{"name": "ops", "type": "slack"}]
    assert document["overrides"][0]["thresholds"] == {"failure_rate_threshold": 0.3}

    assert await import_config(settings, suite["target"], document, "dry", dry_run=True) == 2
    assert (await suite["configs"].current()).revision == 1
    assert await import_config(settings, suite["target"], document, "round trip") == 2
    first, second = await suite["configs"].get(1), await suite["configs"].get(2)
    assert second.document == first.document and second.comment == "round trip"
    assert second.document["channels"][0]["url"] == HOOK


async def test_the_command_writes_a_file_and_reads_it_back(suite: dict[str, Any], tmp_path: Path) -> None:
    settings = Settings(jwt_secret=TEST_SECRET, data_dir=tmp_path)
    out = tmp_path / "alerting.json"
    export = argparse.Namespace(alerting_command="export", target=suite["target"], revision=0, output=out)
    assert await asyncio.to_thread(run, export, settings) == 0
    document = json.loads(out.read_text(encoding="utf-8"))
    document["defaults"]["backlog_threshold"] = 777
    out.write_text(json.dumps(document), encoding="utf-8")
    upload = argparse.Namespace(
        alerting_command="import", target=suite["target"], file=out, comment="bigger", dry_run=False
    )
    assert await asyncio.to_thread(run, upload, settings) == 0
    current = await suite["configs"].current()
    assert (current.revision, current.document["defaults"]["backlog_threshold"]) == (2, 777)
    document["routes"] = [{"name": "r", "queue_glob": "pay*", "channels": ["ops"]}]
    out.write_text(json.dumps(document), encoding="utf-8")
    # Refused naming the field; nothing stored.
    assert await asyncio.to_thread(run, upload, settings) == 1
    assert (await suite["configs"].current()).revision == 2
