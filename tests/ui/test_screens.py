"""The operator screens end to end, in headless Chromium against the real suite: add a job from the UI
(live JSON validation, bounds, the server's refusal next to its field, the new job's link), the failure
category filter kept in the URL, the workers page paged and searched on the server among hundreds of
workers, the incident banner on every page, the whole UI in Korean with no English word left, and
axe-core finding no serious or critical violation on any page or dialog, all usable by keyboard.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from bullmq import Job
from playwright.async_api import Locator, Page, expect

from tests.support.bull import until
from tests.support.heartbeat import report
from tests.support.ui import EMAILS, PAYMENTS, QUEUES, REPORTS, UI, USERS, open_incident
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon_core.client import open_channel

ROOT = Path(__file__).resolve().parents[2]
AXE_JS = ROOT / "admin" / "node_modules" / "axe-core" / "axe.min.js"
FLEET = 120  # workers beating besides the workload's own: more than two pages of 50


async def nav(page: Page, name: str) -> None:
    """Follow a link of the main navigation."""
    await page.get_by_role("link", name=name, exact=True).click()


def query(page: Page) -> dict[str, list[str]]:
    """The page URL's query parameters."""
    return parse_qs(urlparse(page.url).query)


# --- add a job ---------------------------------------------------------------------------------------


async def test_add_a_job_from_the_queue_page(ui: UI) -> None:
    page = await ui.login("operator")
    await nav(page, "Queues")
    await page.get_by_test_id(f"queue-row-{REPORTS}").click()
    opener = page.get_by_role("button", name="Add job", exact=True)
    await opener.click()
    dialog = page.get_by_role("dialog", name="Add a job")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Queue", exact=True)).to_have_value(REPORTS)
    add = dialog.get_by_role("button", name="Add", exact=True)
    await expect(add).to_be_disabled()  # no name yet

    await dialog.get_by_label("Job name").fill("nightly-report")
    data = dialog.get_by_label("Data (JSON)")
    await data.fill('{\n  "region": "eu",\n  oops\n}')
    await expect(dialog).to_contain_text("Not valid JSON: line 3, column 3")
    await expect(add).to_be_disabled()
    await data.fill('{"region": "eu", "pages": [1, 2]}')
    await expect(dialog).to_contain_text("Valid JSON")
    await expect(add).to_be_enabled()

    for label, bad, bounds in (
        ("Priority", "2097153", "A whole number from 0 to 2,097,152"),
        ("Attempts", "0", "A whole number from 1 to 100"),
        ("Delay (seconds)", "-5", "A whole number from 0 to"),
    ):
        field = dialog.get_by_label(label, exact=True)
        previous = await field.input_value()
        await field.fill(bad)
        await expect(dialog).to_contain_text(bounds)
        await expect(add).to_be_disabled()
        await field.fill(previous)
    await dialog.get_by_label("Priority", exact=True).fill("5")
    await dialog.get_by_label("Attempts", exact=True).fill("3")
    await dialog.get_by_label("Delay (seconds)", exact=True).fill("600")
    await expect(add).to_be_enabled()
    await ui.screenshot(page, "add-job-dialog")
    await add.click()

    added = dialog.get_by_test_id("job-added")
    await expect(added).to_contain_text(f"added to {REPORTS}")
    job_id = re.search(r"Job (\S+) added", await added.inner_text())
    assert job_id, await added.inner_text()
    stored = await Job.fromId(ui.workload.queue(REPORTS), job_id.group(1))
    assert stored is not None
    assert stored.name == "nightly-report" and stored.data == {"region": "eu", "pages": [1, 2]}
    assert stored.opts.get("priority") == 5 and stored.opts.get("attempts") == 3
    assert stored.opts.get("delay") == 600_000
    assert await stored.getState() == "delayed"

    # The link opens the new job in the Jobs page's drawer.
    await added.get_by_role("link", name=f"Open job {job_id.group(1)}").click()
    drawer = page.get_by_role("dialog", name=f"Job {job_id.group(1)}")
    await expect(drawer).to_be_visible()
    await expect(drawer).to_contain_text("nightly-report")
    assert query(page)["queue"] == [REPORTS]

    rows = await ui.gateway.client("viewer").get(
        "/api/v1/auditLogs", params={"action": "AUDIT_ACTION_JOB_ADD", "pageSize": 10}
    )
    assert any(r.get("entityId") == REPORTS for r in rows.json()["auditLogs"]), rows.text


async def test_the_servers_refusal_shows_next_to_its_field(ui: UI) -> None:
    page = await ui.login("operator")
    # A queue name the server refuses (over 200 characters), reached through the Jobs page's URL.
    long_name = "q" * 201
    await page.goto(f"{ui.url}/jobs?queue={long_name}")
    await page.get_by_role("button", name="Add job", exact=True).click()
    dialog = page.get_by_role("dialog", name="Add a job")
    await dialog.get_by_label("Job name").fill("refused")
    await dialog.get_by_role("button", name="Add", exact=True).click()
    queue_field = dialog.get_by_label("Queue", exact=True)
    described = await queue_field.get_attribute("aria-describedby")
    assert described, "the queue field names its helper text"
    helper = page.locator(f'[id="{described}"]')
    await expect(helper).to_contain_text("The server said: must be 1-200 characters")
    await expect(queue_field).to_have_attribute("aria-invalid", "true")
    # Escape closes the dialog, and focus returns to the button that opened it.
    await page.keyboard.press("Escape")
    await expect(dialog).to_have_count(0)
    await expect(page.get_by_role("button", name="Add job", exact=True)).to_be_focused()


async def test_a_viewer_cannot_add_a_job(ui: UI) -> None:
    page = await ui.login("viewer")
    await nav(page, "Jobs")
    button = page.get_by_role("button", name="Add job", exact=True)
    await expect(button).to_be_disabled()
    await expect(button.locator("xpath=..")).to_have_attribute("data-reason", "Needs the operator role")


# --- failure categories ------------------------------------------------------------------------------


async def categories_seen(ui: UI, queue: str, wanted: set[str]) -> None:
    """Collect until the queue's reply names each of `wanted` among its failure categories.

    Failures are counted per minute, and the collector reads a minute once it has ended: this waits for
    the next minute (collecting every 2 s rather than at every poll).
    """
    operator = ui.gateway.client("operator")
    collected_at = [0.0]

    async def seen() -> bool:
        if time.monotonic() - collected_at[0] >= 2:
            collected_at[0] = time.monotonic()
            collected = await operator.post("/api/v1/collector:collectNow", json={"queues": [queue]})
            assert collected.status_code == 200, collected.text
        reply = await operator.get(f"/api/v1/queues/{queue}")
        categories = reply.json()["queue"].get("topFailureCategories", [])
        return wanted <= {c["category"] for c in categories}

    await until(seen, limit=90, what=f"{queue}'s failure categories {sorted(wanted)}")


async def test_failure_category_filter_narrows_the_failed_list(ui: UI) -> None:
    # Two failures of another category (a timeout) beside the workload's network failures.
    timeouts = []
    for i in range(2):
        data = {"to": f"slow{i}@example.com", "fail": True, "error": "SMTP timeout after 30000 ms"}
        job = await ui.workload.queue(EMAILS).add("receipt", data)
        timeouts.append(str(job.id))

    async def failed() -> bool:
        return all([await ui.workload.state(EMAILS, job_id) == "failed" for job_id in timeouts])

    await until(failed, what="the timeout failures")
    network = [str(job.id) for job in await ui.workload.queue(EMAILS).getJobs(["failed"])]
    network = [job_id for job_id in network if job_id not in timeouts]
    assert len(network) >= 3

    await categories_seen(ui, EMAILS, {"network", "timeout"})

    page = await ui.login("viewer")
    await nav(page, "Jobs")
    await page.get_by_label("Queue", exact=True).select_option(EMAILS)
    rows = page.locator('[data-testid^="job-row-"]')
    category = page.get_by_label("Failure category", exact=True)
    # The select offers the categories the queue has seen; choosing one lists its failed jobs.
    await expect(category.locator("option")).to_have_text(["Any category", "network", "timeout"])
    await category.select_option("timeout")
    assert query(page)["category"] == ["timeout"] and query(page)["state"] == ["failed"]
    await expect(rows).to_have_count(len(timeouts))

    # The filter in the URL, as a shared link carries it: the failed list narrows to the category.
    await page.goto(f"{ui.url}/jobs?queue={EMAILS}&state=failed&category=network")
    await expect(category).to_have_value("network")
    await expect(rows).to_have_count(len(network))
    for job_id in network:
        await expect(page.get_by_test_id(f"job-row-{job_id}")).to_be_visible()
    await page.goto(f"{ui.url}/jobs?queue={EMAILS}&state=failed&category=timeout")
    await expect(rows).to_have_count(len(timeouts))
    for job_id in timeouts:
        await expect(page.get_by_test_id(f"job-row-{job_id}")).to_be_visible()
    await page.reload()
    await expect(page.get_by_label("Failure category", exact=True)).to_have_value("timeout")
    await expect(rows).to_have_count(len(timeouts))

    # No filter: every failed job; a category nothing failed with: none.
    await page.get_by_label("Failure category", exact=True).select_option("")
    assert "category" not in query(page)
    await expect(rows).to_have_count(len(network) + len(timeouts))
    await page.goto(f"{ui.url}/jobs?queue={EMAILS}&state=failed&category=auth")
    await expect(page.get_by_test_id("empty-state")).to_contain_text("No job matches")
    await page.get_by_label("State", exact=True).select_option("completed")
    await expect(page.get_by_label("Failure category", exact=True)).to_have_value("")
    assert "category" not in query(page)


# --- workers -----------------------------------------------------------------------------------------


async def beat_fleet(ui: UI) -> list[str]:
    """FLEET workers beat once each (hostnames rack-0 .. rack-3); their ids, sorted."""
    channel = open_channel(
        ui.gateway.suite.grpc_target, ui.gateway.authority.mint("fleet", "worker", worker="fleet-*")
    )
    ids = [f"fleet-{i:03d}" for i in range(FLEET)]
    try:
        stub = hb_grpc.HeartbeatServiceStub(channel)
        for i, worker_id in enumerate(ids):
            beat = hb_pb.BeatRequest(report=report(worker_id, (PAYMENTS,), hostname=f"Rack-{i % 4}"))
            await stub.Beat(beat, timeout=10)
    finally:
        await channel.close()
    return ids


async def test_workers_paged_searched_and_filtered(ui: UI) -> None:
    ids = await beat_fleet(ui)
    page = await ui.login("viewer")
    await nav(page, "Workers")
    rows = page.locator('[data-testid^="worker-row-"]')
    await expect(rows).to_have_count(50)
    await expect(page.get_by_text("Page 1", exact=True)).to_be_visible()
    first_page = await rows.evaluate_all("rows => rows.map(r => r.dataset.testid)")
    await page.get_by_role("button", name="Next page").click()
    await expect(page.get_by_text("Page 2", exact=True)).to_be_visible()
    await expect(rows).to_have_count(50)
    second_page = await rows.evaluate_all("rows => rows.map(r => r.dataset.testid)")
    assert not set(first_page) & set(second_page)

    # The search runs on the server: a hostname in any case, then an id.
    search = page.get_by_label("Search workers")
    await search.fill("RACK-3")
    expected = [w for i, w in enumerate(ids) if i % 4 == 3]
    await expect(page.get_by_text("Page 1", exact=True)).to_be_visible()
    await expect(rows).to_have_count(len(expected))
    assert query(page)["search"] == ["RACK-3"]
    await search.fill("fleet-11")
    await expect(rows).to_have_count(10)
    await expect(page.get_by_test_id("worker-row-fleet-117")).to_be_visible()

    # The status filter, and the empty state when nothing matches.
    await search.fill(ui.workload.payments_worker_id)
    await expect(rows).to_have_count(1)
    await page.get_by_label("Status", exact=True).select_option("WORKER_STATUS_OFFLINE")
    await expect(page.get_by_test_id("empty-state")).to_contain_text("No worker matches")
    await page.get_by_label("Status", exact=True).select_option("WORKER_STATUS_ONLINE")
    await expect(rows).to_have_count(1)
    await search.fill("no-such-worker")
    await expect(page.get_by_test_id("empty-state")).to_contain_text("No worker matches")
    await ui.screenshot(page, "workers-no-match")


async def test_a_worker_without_the_sdk_is_shown_without_commands(ui: UI) -> None:
    # The workload's plain bullmq worker on the emails queue has no SDK: the suite sees its connection.
    page = await ui.login("operator")
    await page.goto(f"{ui.url}/workers?kind=WORKER_KIND_UNINSTRUMENTED")
    rows = page.locator('[data-testid^="worker-row-"]')
    await expect(rows).to_have_count(1, timeout=20_000)
    row = rows.first
    await expect(row).to_contain_text(EMAILS)
    await expect(row).to_contain_text("Online · no SDK")
    for action in ("Quiet", "Resume", "Stop"):
        await expect(row.get_by_role("button", name=action)).to_be_disabled()
    await expect(row.locator('[data-testid^="worker-connection-"]')).to_contain_text("127.0.0.1:")
    await expect_accessible(page, "workers without the SDK")
    # The other kind: the instrumented workers only, the payments worker among them.
    await page.get_by_label("Kind", exact=True).select_option("WORKER_KIND_INSTRUMENTED")
    await page.get_by_label("Search workers").fill(ui.workload.payments_worker_id)
    await expect(page.get_by_test_id(f"worker-row-{ui.workload.payments_worker_id}")).to_be_visible()
    await expect(page.get_by_text("Online · no SDK")).to_have_count(0)
    assert query(page)["kind"] == ["WORKER_KIND_INSTRUMENTED"]


# --- the incident banner -----------------------------------------------------------------------------


async def test_incident_banner_on_every_page(ui: UI) -> None:
    await open_incident(ui)
    page = await ui.login("viewer")
    banner = page.get_by_test_id("incident-banner-global")
    for name in ("Overview", "Queues", "Workers", "Jobs", "Audit log"):
        await nav(page, name)
        await expect(banner).to_contain_text("open incident(s)")
    await banner.get_by_role("link", name="Open incidents").click()
    await expect(page).to_have_url(f"{ui.url}/incidents")
    await expect(page.get_by_role("heading", name="Incidents", level=1)).to_be_visible()


# --- Korean ------------------------------------------------------------------------------------------

# Words the Korean UI may show in Latin letters: the product's and tools' names, units, and the data
# (queue, job and worker names, user names) — every other English word is a missed translation.
ALLOWED = {
    "redis",
    "bullmq",
    "readme",
    "sdk",
    "json",
    "csv",
    "ms",
    "s",
    "m",
    "h",
    "d",
    "b",
    "min",
    "kb",
    "mb",
    "gb",
    "cpu",
    "rss",
    "p95",
    "p50",
    "pid",
    "ui",
    "admin",
    "viewer",
    "operator",
    "gpu",
}

# The visible text of the page, minus what is marked as not to translate (ids, JSON, stack traces) or
# as English from the server (failure reasons, incident texts): lang="en" and translate="no".
VISIBLE_TEXT = """() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || !node.textContent.trim()) continue;
    if (el.closest('[lang="en"], [translate="no"], script, style, textarea, [aria-hidden="true"]')) continue;
    if (!el.checkVisibility({ visibilityProperty: true, opacityProperty: false })) continue;
    out.push(node.textContent);
  }
  for (const el of document.querySelectorAll('[aria-label], [placeholder]')) {
    if (el.closest('[lang="en"], [translate="no"], [aria-hidden="true"]')) continue;
    if (!el.checkVisibility({ visibilityProperty: true })) continue;
    out.push(el.getAttribute('aria-label') || '', el.getAttribute('placeholder') || '');
  }
  return out.join('\\n');
}"""


def english_words(text: str, data: set[str]) -> set[str]:
    """Latin-letter words of `text` that are neither allowed nor part of the data."""
    words = set(re.findall(r"[A-Za-z][A-Za-z0-9]*", text))
    return {w for w in words if w.lower() not in ALLOWED and w.lower() not in data}


async def expect_korean(page: Page, where: str, data: set[str]) -> None:
    """No English word in the page's visible text (polled: what loads late is read too)."""
    await page.wait_for_load_state("networkidle")
    await expect(page.locator('[data-testid="loading"]')).to_have_count(0)
    text: str = await page.evaluate(VISIBLE_TEXT)
    left = english_words(text, data)
    assert not left, f"{where}: English left in the Korean UI: {sorted(left)}"


def data_words(ui: UI) -> set[str]:
    """Words that come from the data: queue, job and worker names, user names, ids."""
    words = {w for name in QUEUES for w in re.findall(r"[A-Za-z0-9]+", name)}
    words |= {"welcome", "receipt", "digest", "charge", "invoice", "report", "thumbnail", "webhook"}
    words |= {"payments", "worker", "fleet", "rack", "host", "inst", "ui", "nightly", "refused"}
    words |= {w for user in USERS.values() for w in re.findall(r"[A-Za-z0-9]+", user)}
    return {w.lower() for w in words}


async def test_korean_everywhere(ui: UI) -> None:
    incident = await open_incident(ui)
    data = data_words(ui)
    page = await ui.login("admin")
    await page.get_by_label("Language").click()
    await expect(page.get_by_role("link", name="개요", exact=True)).to_be_visible()
    assert await page.evaluate("document.documentElement.lang") == "ko"

    for path in ("/", "/queues", f"/queues/{EMAILS}", "/workers", "/incidents", "/audit"):
        await page.goto(ui.url + path)
        await expect_korean(page, path, data)
    await page.goto(f"{ui.url}/jobs?queue={EMAILS}&state=failed")
    await expect(page.locator('[data-testid^="job-row-"]').first).to_be_visible()
    await expect_korean(page, "/jobs", data)

    # The dialogs: add a job, drain, a job's drawer, an incident, resolving it.
    await page.get_by_role("button", name="작업 추가", exact=True).click()
    dialog = page.get_by_role("dialog", name="작업 추가")
    await dialog.get_by_label("데이터 (JSON)").fill("{oops")
    await expect_korean(page, "add-job dialog", data)
    await page.keyboard.press("Escape")
    await expect(dialog).to_have_count(0)

    await page.locator('[data-testid^="job-row-"]').first.click()
    drawer = page.get_by_role("dialog", name=re.compile("^작업 "))
    await expect(drawer).to_be_visible()
    await expect_korean(page, "job drawer", data)
    await page.keyboard.press("Escape")

    await page.goto(f"{ui.url}/queues/{EMAILS}")
    await page.get_by_role("button", name="비우기", exact=True).click()
    await expect(page.get_by_role("dialog")).to_be_visible()
    await expect_korean(page, "drain dialog", data)
    await page.keyboard.press("Escape")

    await page.goto(f"{ui.url}/incidents/{incident['id']}")
    await expect(page.get_by_role("dialog")).to_be_visible()
    await expect_korean(page, "incident dialog", data)
    await page.get_by_role("dialog").get_by_role("button", name="해결", exact=True).click()
    await expect(page.get_by_role("dialog", name=re.compile("^해결"))).to_be_visible()
    await expect_korean(page, "resolve dialog", data)
    await page.keyboard.press("Escape")

    await expect(page.get_by_role("dialog", name=re.compile("^해결"))).to_have_count(0)

    # The login page, after logging out, still in Korean.
    await page.goto(ui.url + "/")
    await page.get_by_role("button", name="로그아웃", exact=True).click()
    await expect(page.get_by_role("button", name="로그인")).to_be_visible()
    await expect_korean(page, "login", data)
    await ui.screenshot(page, "login-ko")


# --- accessibility -----------------------------------------------------------------------------------


async def axe_problems(page: Page, context: str = "document") -> list[str]:
    """The serious and critical axe-core violations on the page (or in `context`, a CSS selector)."""
    # A dialog fading in is part transparent: its colours are judged once transitions have ended.
    await page.evaluate(
        "() => Promise.all(document.getAnimations()"
        ".filter((a) => a.effect?.getTiming().iterations !== Infinity)"
        ".map((a) => a.finished.catch(() => null)))"
    )
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated rather than added as a <script>: the gateway's CSP rightly refuses inline scripts.
        await page.evaluate(AXE_JS.read_text())
    target = "document" if context == "document" else json.dumps(context)
    results: dict[str, Any] = await page.evaluate(f"axe.run({target}, {{ resultTypes: ['violations'] }})")
    problems = []
    for violation in results["violations"]:
        if violation["impact"] in ("serious", "critical"):
            nodes = "; ".join(" ".join(n["target"]) for n in violation["nodes"][:5])
            problems.append(f"{violation['id']} ({violation['impact']}): {violation['help']} — {nodes}")
    return problems


async def expect_accessible(page: Page, where: str) -> None:
    await page.wait_for_load_state("networkidle")
    await expect(page.locator('[data-testid="loading"]')).to_have_count(0)
    problems = await axe_problems(page)
    assert not problems, f"{where}:\n" + "\n".join(problems)


async def test_no_serious_accessibility_violation(ui: UI) -> None:
    assert AXE_JS.is_file(), f"{AXE_JS} is missing: npm ci --prefix admin installs axe-core"
    page = await ui.page()
    await page.goto(ui.url + "/")
    await expect(page.get_by_label("Username")).to_be_visible()
    await expect_accessible(page, "login")

    page = await ui.login("operator")
    for path in (
        "/",
        "/queues",
        f"/queues/{EMAILS}",
        "/workers",
        f"/jobs?queue={EMAILS}",
        "/incidents",
        "/audit",
    ):
        await page.goto(ui.url + path)
        await expect_accessible(page, path)
    await page.goto(f"{ui.url}/jobs?queue={EMAILS}")
    await page.get_by_role("button", name="Add job", exact=True).click()
    dialog = page.get_by_role("dialog", name="Add a job")
    await expect(dialog).to_be_visible()
    await expect_accessible(page, "add-job dialog")
    await dialog.get_by_label("Data (JSON)").fill("{oops")
    await expect_accessible(page, "add-job dialog with an error")


async def keyboard_to(page: Page, target: Locator, limit: int = 60) -> None:
    """Press Tab until `target` has the focus."""
    for _ in range(limit):
        if await target.evaluate("el => el === document.activeElement"):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"{target} not reached by Tab in {limit} presses")


async def test_dialogs_by_keyboard(ui: UI) -> None:
    page = await ui.login("operator")
    await page.goto(f"{ui.url}/jobs?queue={REPORTS}")
    opener = page.get_by_role("button", name="Add job", exact=True)
    await keyboard_to(page, opener)
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Add a job")
    await expect(dialog).to_be_visible()
    # The first field to type in has the focus; the form fills and submits from the keyboard.
    await expect(dialog.get_by_label("Job name")).to_be_focused()
    await page.keyboard.type("keyboard-job")
    await keyboard_to(page, dialog.get_by_role("button", name="Add", exact=True))
    await page.keyboard.press("Enter")
    await expect(dialog.get_by_test_id("job-added")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(dialog).to_have_count(0)
    await expect(opener).to_be_focused()
    assert (await ui.workload.counts(REPORTS, "waiting"))["waiting"] >= 1

    # The drain dialog as well: Escape closes it and the focus goes back to its button.
    admin = await ui.login("admin")
    await admin.goto(f"{ui.url}/queues/{REPORTS}")
    drain = admin.get_by_role("button", name="Drain", exact=True)
    await keyboard_to(admin, drain)
    await admin.keyboard.press("Enter")
    await expect(admin.get_by_role("dialog")).to_be_visible()
    await expect(admin.get_by_role("dialog").get_by_label("Type the name to confirm")).to_be_focused()
    await admin.keyboard.press("Escape")
    await expect(admin.get_by_role("dialog")).to_have_count(0)
    await expect(drain).to_be_focused()

    # A job's drawer, opened from its row with Enter; an incident's dialog, from its button.
    await admin.goto(f"{ui.url}/jobs?queue={EMAILS}&state=completed")
    row = admin.locator('[data-testid^="job-row-"]').first
    await keyboard_to(admin, row)
    await admin.keyboard.press("Enter")
    drawer = admin.get_by_role("dialog", name=re.compile("^Job "))
    await expect(drawer).to_be_visible()
    await admin.keyboard.press("Escape")
    await expect(drawer).to_have_count(0)
    await expect(row).to_be_focused()

    await open_incident(ui)
    await admin.goto(f"{ui.url}/incidents")
    details = admin.locator('[data-testid^="incident-row-"]').first.get_by_role("button").first
    await keyboard_to(admin, details)
    await admin.keyboard.press("Enter")
    await expect(admin.get_by_role("dialog")).to_be_visible()
    await admin.keyboard.press("Escape")
    await expect(admin.get_by_role("dialog")).to_have_count(0)
    await expect(details).to_be_focused()
