"""Admin UI fixtures: the real suite and gateway serving the built UI (admin/dist), users of each role, a
BullMQ workload, and Debian's Chromium driven by Playwright.

Chromium is never skipped: when it is missing the tests fail and say how to install it (`.ci/run` does).
WORKERMON_CHROMIUM names another Chromium binary (a developer machine's chromium-browser, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bullmq import Job, Queue, Worker
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.support.bull import until
from tests.support.gateway import Gateway, gateway_settings, stop_gateway_suite, wait_ready
from tests.support.suites import start_config
from workermon_gateway.users import UserStore, users_path
from workermon_sdk.bullmq import InstrumentedWorker

ROOT = Path(__file__).resolve().parents[2]
ADMIN_DIST = ROOT / "admin" / "dist"
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM_ENV = "WORKERMON_CHROMIUM"
ADMIN_UI_ENV = "WORKERMON_ADMIN_UI_DIR"
# Headless without any of Chromium's own traffic: this machine's network refuses it.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "ui-test-password-1234"
USERS = {"admin": "ui-admin", "operator": "ui-operator", "viewer": "ui-viewer"}
TIMEOUT_MS = 10_000

# The workload's queues (under the suite's own queue prefix, so the names can read naturally).
EMAILS = "emails"  # a plain worker: jobs complete, those marked "fail" fail until healed
PAYMENTS = "payments"  # an SDK-instrumented worker on slow jobs: active jobs to cancel
INVOICES = "invoices"  # waiting jobs and no worker: a WORKER_DOWN incident, ACTIVE at once
REPORTS = "reports"  # waiting jobs, no worker: pause and resume
THUMBNAILS = "thumbnails"  # waiting jobs, no worker: drained
WEBHOOKS = "webhooks"  # waiting jobs, no worker: the test adds more and watches the count
QUEUES = (EMAILS, PAYMENTS, INVOICES, REPORTS, THUMBNAILS, WEBHOOKS)
# Only the incident test's queue pages; the others would open PENDING incidents that clutter the list.
INCIDENT_RULES = {
    INVOICES: {"no_workers_pending_minutes": 0},
    **{name: {"enabled": False} for name in QUEUES if name != INVOICES},
}


def chromium_executable() -> str:
    """The Chromium binary: WORKERMON_CHROMIUM, else Debian's /usr/bin/chromium or one on PATH."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        if not os.access(configured, os.X_OK):
            pytest.fail(f"{CHROMIUM_ENV}={configured} is not an executable Chromium", pytrace=False)
        return configured
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "Chromium is missing, and the admin UI tests need it: install Debian's chromium "
        "(apt-get install -y --no-install-recommends chromium; .ci/run does it), "
        f"or point {CHROMIUM_ENV} at a Chromium binary.",
        pytrace=False,
    )


def admin_dist() -> Path:
    """WORKERMON_ADMIN_UI_DIR, else admin/dist; failing when the UI has not been built there."""
    dist = Path(os.environ.get(ADMIN_UI_ENV) or ADMIN_DIST)
    if not (dist / "index.html").is_file():
        pytest.fail(
            f"{dist / 'index.html'} is missing: build the admin UI first "
            "(make test does; by hand: npm ci --prefix admin && npm run --prefix admin build).",
            pytrace=False,
        )
    return dist


@dataclass
class Workload:
    """The BullMQ side: queues by name, the workers running, and jobs the tests refer to."""

    gateway: Gateway
    queues: dict[str, Queue] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)
    instrumented: list[InstrumentedWorker] = field(default_factory=list)
    # Job ids of EMAILS that fail while not in here (a test heals one, then retries it).
    healed: set[str] = field(default_factory=set)
    failed_ids: list[str] = field(default_factory=list)
    slow_started: asyncio.Event = field(default_factory=asyncio.Event)
    payments_worker_id: str = ""

    def queue(self, name: str) -> Queue:
        return self.queues[name]

    async def counts(self, name: str, *states: str) -> dict[str, int]:
        counts: dict[str, int] = await self.queue(name).getJobCounts(*states)
        return counts

    async def state(self, name: str, job_id: str) -> str:
        job = await Job.fromId(self.queue(name), job_id)
        return "missing" if job is None else str(await job.getState())

    async def close(self) -> None:
        for worker in self.instrumented:
            await worker.close(force=True)
        for plain in self.workers:
            await plain.close(force=True)
        for queue in self.queues.values():
            await queue.close()


async def start_workload(gateway: Gateway) -> Workload:
    """Queues with jobs in every state the UI shows, a plain worker and an instrumented one."""
    settings = gateway.settings
    connection = {"connection": gateway.redis_url, "prefix": settings.queue_prefix}
    work = Workload(gateway=gateway)
    for name in QUEUES:
        work.queues[name] = Queue(name, connection)

    async def send_email(job: Job, token: str) -> Any:
        if job.data.get("fail") and job.id not in work.healed:
            raise RuntimeError(job.data.get("error") or "connect ECONNREFUSED 10.0.0.25:587")
        return {"sent": True}

    async def charge(job: Job, token: str) -> Any:
        work.slow_started.set()
        await asyncio.sleep(300)  # until cancelled
        return {"charged": True}

    emails = work.queue(EMAILS)
    for i in range(12):
        await emails.add("welcome", {"to": f"user{i}@example.com"})
    for i in range(3):
        job = await emails.add("receipt", {"to": f"bounce{i}@example.com", "fail": True})
        work.failed_ids.append(job.id)
    await emails.add("digest", {"to": "later@example.com"}, {"delay": 3_600_000})
    work.workers.append(Worker(EMAILS, send_email, {**connection, "concurrency": 4}))

    payments = InstrumentedWorker(
        PAYMENTS,
        charge,
        {**connection, "concurrency": 2},
        target=gateway.suite.grpc_target,
        token=gateway.token("worker", "payments-worker-1"),
        worker_id="payments-worker-1",
    )
    await payments.start()
    work.instrumented.append(payments)
    work.payments_worker_id = "payments-worker-1"
    for i in range(3):
        await work.queue(PAYMENTS).add("charge", {"order": 1000 + i, "amount_cents": 1999})

    for name, count in ((INVOICES, 4), (REPORTS, 6), (THUMBNAILS, 9), (WEBHOOKS, 2)):
        for i in range(count):
            await work.queue(name).add(f"{name[:-1]}", {"n": i})

    async def settled() -> bool:
        failed = await work.counts(EMAILS, "failed")
        active = await work.counts(PAYMENTS, "active")
        return failed["failed"] >= 3 and active["active"] >= 1

    await until(settled, what="the workload's failed and active jobs")
    # One collection, so the trend charts have a point to show.
    collected = await gateway.client("operator").post("/api/v1/collector:collectNow", json={})
    assert collected.status_code == 200, collected.text
    return work


@pytest.fixture(scope="module")
async def ui_gateway(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> AsyncIterator[Gateway]:
    """The suite and gateway serving admin/dist, with an admin, an operator and a viewer who can log in."""
    dist = admin_dist()
    tmp = tmp_path_factory.mktemp("ui")
    settings = gateway_settings(
        tmp,
        redis_url,
        admin_ui_dir=dist,
        queues=",".join(QUEUES),
        incident_rules=json.dumps(INCIDENT_RULES),
        stream_overview_interval_seconds=0.5,
        beat_interval_seconds=1,
        # Every test logs in through the form, all from 127.0.0.1.
        login_attempts_per_minute=1000,
    )
    store = UserStore(users_path(settings.gateway, settings.data_dir))
    for role, name in USERS.items():
        store.add(name, role, PASSWORD)
    suite = await start_config(settings)
    running = Gateway(suite=suite, settings=settings, redis_url=redis_url)
    try:
        await wait_ready(running.url)
    except BaseException:
        await stop_gateway_suite(running)
        raise
    yield running
    await stop_gateway_suite(running)


@pytest.fixture(scope="module")
async def workload(ui_gateway: Gateway) -> AsyncIterator[Workload]:
    work = await start_workload(ui_gateway)
    yield work
    await work.close()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium (Playwright gives each launch a fresh, temporary user-data-dir)."""
    executable = chromium_executable()
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()


@dataclass
class UI:
    """The browser on the gateway: log in as a role, save screenshots."""

    gateway: Gateway
    workload: Workload
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.gateway.url

    async def page(self) -> Page:
        """A fresh browser context (no stored session) at a desktop size, in English."""
        context = await self.browser.new_context(
            viewport={"width": 1440, "height": 900}, locale="en-US", color_scheme="light"
        )
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        return await context.new_page()

    async def login(self, role: str) -> Page:
        """Log in through the form as the user of `role`; return the page once the app shows."""
        page = await self.page()
        await page.goto(self.url + "/")
        await page.get_by_label("Username").fill(USERS[role])
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("link", name="Overview")).to_be_visible()
        return page

    async def screenshot(self, page: Page, name: str) -> Path:
        """A full-page screenshot in build/screenshots/<name>.png, once what loads lazily has loaded."""
        # Placeholders while a chart's code or data loads: worth a short wait for a full picture (after a
        # moment for what the last step started to render them).
        await page.wait_for_timeout(300)
        with contextlib.suppress(AssertionError):
            await expect(page.locator(".MuiSkeleton-root")).to_have_count(0, timeout=5_000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True, animations="disabled")
        return path

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def ui(browser: Browser, ui_gateway: Gateway, workload: Workload) -> AsyncIterator[UI]:
    """Chromium first: without it the test fails at once, before the suite starts."""
    running = UI(gateway=ui_gateway, workload=workload, browser=browser)
    yield running
    await running.close()


async def open_incident(ui: UI) -> dict[str, Any]:
    """The open WORKER_DOWN incident of INVOICES (waiting jobs, no worker), after a collection.

    A collection evaluates the rules, and INVOICES pages at once (no pending period).
    """
    operator = ui.gateway.client("operator")
    collected = await operator.post("/api/v1/collector:collectNow", json={"queues": [INVOICES]})
    assert collected.status_code == 200, collected.text
    found: list[dict[str, Any]] = []

    async def opened() -> bool:
        reply = await operator.get("/api/v1/incidents", params={"queue": INVOICES, "openOnly": "true"})
        found[:] = reply.json().get("incidents", []) if reply.status_code == 200 else []
        return bool(found)

    await until(opened, what=f"an incident for {INVOICES}")
    [incident] = found
    assert incident["type"] == "INCIDENT_TYPE_WORKER_DOWN", incident
    return incident
