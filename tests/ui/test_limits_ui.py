"""The admin UI on queues Node BullMQ holds back and stalls (tests/node/limits.mjs): the queue page's
rate limit and global concurrency badges and priorities breakdown, "stalled?" on a job whose worker
was killed, the deduplication id in a job's drawer and the lookup on the Jobs page; in English and
Korean, with no serious or critical axe-core violation."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Page, expect

from tests.support.bull import until
from tests.support.gateway import Gateway
from tests.support.nodejs import NodeProcess, start_produce
from tests.support.ui import UI
from tests.ui.test_screens import axe_problems, data_words, expect_korean

RATED, CAPPED, RANKED, STALLING = "rated", "capped", "ranked", "stalling"


@dataclass
class Held:
    """The Node processes behind the four queues, and the job ids the tests look for."""

    processes: list[NodeProcess]
    kept: str
    stuck: str


@pytest.fixture(scope="module")
async def held(ui_gateway: Gateway) -> AsyncIterator[Held]:
    gateway = ui_gateway
    prefix = gateway.settings.queue_prefix

    async def start(queue: str, mode: str) -> NodeProcess:
        return await start_produce(gateway.redis_url, prefix, queue, mode, script="limits.mjs")

    processes = [await start(RATED, "ratelimit"), await start(CAPPED, "concurrency")]
    ranked = await start(RANKED, "priorities")
    stalled = await start(STALLING, "stall")
    processes += [ranked, stalled]
    os.kill(stalled.ready["pid"], signal.SIGKILL)
    await stalled.proc.wait()
    viewer = gateway.client("viewer")

    async def settled() -> bool:
        rated = (await viewer.get(f"/api/v1/queues/{RATED}")).json()["queue"]
        capped = (await viewer.get(f"/api/v1/queues/{CAPPED}")).json()["queue"]
        stalling = (await viewer.get(f"/api/v1/queues/{STALLING}")).json()["queue"]
        return (
            rated.get("rateLimit", {}).get("limited", False)
            and capped.get("globalConcurrency", {}).get("maxed", False)
            and stalling.get("stalled", {}).get("candidates") == "1"
        )

    await until(settled, what="the rate limit reached, concurrency filled and the killed worker's lock gone")
    # One collection, so the new queues' trend charts have a point to show.
    collected = await gateway.client("operator").post("/api/v1/collector:collectNow", json={})
    assert collected.status_code == 200, collected.text
    try:
        yield Held(processes, kept=ranked.ready["ids"]["kept"], stuck=stalled.ready["ids"]["job"])
    finally:
        for process in processes:
            await process.stop()


async def expect_accessible(page: Page, where: str) -> None:
    await page.wait_for_load_state("networkidle")
    problems = await axe_problems(page)
    assert not problems, f"{where}:\n" + "\n".join(problems)


async def test_limits_priorities_stalls_and_deduplication(ui: UI, held: Held) -> None:
    page = await ui.login("viewer")

    await page.goto(f"{ui.url}/queues/{RATED}")
    await expect(page.get_by_test_id("limit-rate")).to_have_text(
        re.compile(r"^Rate limited — resets in \d+(\.\d)? (s|min), 2 per 1\.0 min$")
    )
    await expect_accessible(page, "rate limited queue")
    await page.goto(f"{ui.url}/queues/{CAPPED}")
    await expect(page.get_by_test_id("limit-concurrency")).to_have_text("Global concurrency 2/2")
    await page.goto(f"{ui.url}/queues/{RANKED}")
    priorities = page.get_by_role("region", name="Priorities")
    await expect(priorities.get_by_role("listitem")).to_have_text(
        ["Priority 1: 3", "Priority 5: 2", "Priority 2097151: 1"]
    )
    await expect_accessible(page, "priorities")
    await page.goto(f"{ui.url}/queues/{STALLING}")
    await expect(page.get_by_test_id("limit-stalled")).to_have_text(
        "1 active job(s) without a lock (stalled?)"
    )
    await ui.screenshot(page, "queue-stalled")

    # The killed worker's job: marked in the list and in its drawer.
    await page.goto(f"{ui.url}/jobs?queue={STALLING}&state=active")
    row = page.get_by_test_id(f"job-row-{held.stuck}")
    await expect(row.get_by_test_id("stalled-suspect")).to_have_text("stalled?")
    await row.click()
    drawer = page.get_by_role("dialog", name=f"Job {held.stuck}")
    await expect(drawer.get_by_test_id("stalled-suspect")).to_be_visible()
    await expect_accessible(page, "stalled job drawer")
    await page.keyboard.press("Escape")

    # Deduplication: the lookup opens the job holding the id; an id nobody holds is said so.
    await page.goto(f"{ui.url}/jobs?queue={RANKED}")
    lookup = page.get_by_label("Deduplication id")
    await lookup.fill("user-42")
    await page.get_by_role("button", name="Find", exact=True).click()
    drawer = page.get_by_role("dialog", name=f"Job {held.kept}")
    await expect(drawer.get_by_test_id("job-deduplication-id")).to_have_text("Deduplication id: user-42")
    await expect_accessible(page, "deduplicated job drawer")
    await page.keyboard.press("Escape")
    await lookup.fill("nobody")
    await lookup.press("Enter")
    await expect(page.get_by_text(f"No job of {RANKED} holds deduplication id nobody")).to_be_visible()
    await expect_accessible(page, "deduplication lookup error")


async def test_limits_in_korean(ui: UI, held: Held) -> None:
    data = data_words(ui) | {RATED, CAPPED, RANKED, STALLING, "prio", "dedup", "stuck", "user", "min"}
    page = await ui.login("viewer")
    await page.get_by_label("Language").click()
    await expect(page.get_by_role("link", name="개요", exact=True)).to_be_visible()

    await page.goto(f"{ui.url}/queues/{RATED}")
    await expect(page.get_by_test_id("limit-rate")).to_have_text(
        re.compile(r"^속도 제한 중 — .+ 후 해제, 1\.0 min당 2개$")
    )
    await expect_korean(page, "rate limited queue", data)
    await page.goto(f"{ui.url}/queues/{CAPPED}")
    await expect(page.get_by_test_id("limit-concurrency")).to_have_text("전역 동시 실행 2/2")
    await page.goto(f"{ui.url}/queues/{RANKED}")
    await expect(
        page.get_by_role("region", name="우선순위별 작업").get_by_role("listitem").first
    ).to_have_text("우선순위 1: 3")
    await expect_korean(page, "priorities", data)
    await page.goto(f"{ui.url}/queues/{STALLING}")
    await expect(page.get_by_test_id("limit-stalled")).to_have_text(
        "잠금이 없는 실행 중 작업 1개 (멈춤 의심)"
    )
    await page.goto(f"{ui.url}/jobs?queue={STALLING}&state=active")
    await expect(page.get_by_test_id("stalled-suspect")).to_have_text("멈춤?")
    await expect_korean(page, "stalled job list", data)
    await page.goto(f"{ui.url}/jobs?queue={RANKED}")
    await page.get_by_label("중복 제거 식별자").fill("user-42")
    await page.get_by_role("button", name="찾기", exact=True).click()
    drawer = page.get_by_role("dialog", name=f"작업 {held.kept}")
    await expect(drawer.get_by_test_id("job-deduplication-id")).to_have_text("중복 제거 식별자: user-42")
    await expect_korean(page, "deduplicated job drawer", data)


async def test_release_a_deduplication_id_from_the_drawer(ui: UI, held: Held) -> None:
    # Runs last: the other tests look the id up.
    viewer = await ui.login("viewer")
    await viewer.goto(f"{ui.url}/jobs?queue={RANKED}&job={held.kept}")
    drawer = viewer.get_by_role("dialog", name=f"Job {held.kept}")
    await expect(drawer.get_by_role("button", name="Release id")).to_be_disabled()

    page = await ui.login("operator")
    await page.goto(f"{ui.url}/jobs?queue={RANKED}&job={held.kept}")
    drawer = page.get_by_role("dialog", name=f"Job {held.kept}")
    await drawer.get_by_role("button", name="Release id").click()
    await expect(
        page.get_by_text("Deduplication id user-42 released: the next job added with it is kept")
    ).to_be_visible()
    await drawer.get_by_role("button", name="Close").click()
    await expect(drawer).to_have_count(0)
    lookup = page.get_by_label("Deduplication id")
    await lookup.fill("user-42")
    await lookup.press("Enter")
    await expect(page.get_by_text(f"No job of {RANKED} holds deduplication id user-42")).to_be_visible()
    audit = await ui.gateway.client("viewer").get(
        "/api/v1/auditLogs", params={"action": "AUDIT_ACTION_DEDUPLICATION_RELEASE"}
    )
    [entry] = audit.json()["auditLogs"]
    assert entry["actor"] == "ui-operator" and entry["outcome"] == "AUDIT_OUTCOME_SUCCEEDED"
