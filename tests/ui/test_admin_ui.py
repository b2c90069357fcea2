"""The admin UI end to end, in headless Chromium against the real suite with a BullMQ workload: log in,
watch counts change live, pause and resume a queue, drain it with the typed confirmation, retry a failed
job, cancel an active one, acknowledge an incident, find each action in the audit log; a viewer cannot
act. Every screen's screenshot is saved in build/screenshots/ (docs/screenshots/ holds the README's).
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Locator, Page, expect

from tests.support.bull import until
from tests.support.ui import (
    EMAILS,
    INVOICES,
    PASSWORD,
    PAYMENTS,
    REPORTS,
    THUMBNAILS,
    UI,
    USERS,
    WEBHOOKS,
    open_incident,
)

# Faster than the queue list's own 15 s refetch: a change seen within this was pushed by the live stream.
LIVE_MS = 8_000


async def nav(page: Page, name: str) -> None:
    """Follow a link of the main navigation."""
    await page.get_by_role("link", name=name, exact=True).click()


def status(page: Page, text: str) -> Locator:
    """An action's result (role="status") containing `text`."""
    return page.get_by_role("status").filter(has_text=text)


async def expect_refused(page: Page, button: Locator, reason: str) -> None:
    """The button is disabled and hovering it shows why."""
    await expect(button).to_be_disabled()
    # A disabled button takes no pointer events: the reason sits on its wrapper, which shows the tooltip.
    wrapper = button.locator("xpath=..")
    await expect(wrapper).to_have_attribute("data-reason", reason)
    await wrapper.hover()
    await expect(page.get_by_role("tooltip").filter(has_text=reason)).to_be_visible()
    await page.mouse.move(0, 0)
    await expect(page.get_by_role("tooltip")).to_have_count(0)


async def expect_audited(page: Page, action: str, *texts: str) -> None:
    """The audit log lists `action` on a row also showing each of `texts`."""
    await nav(page, "Audit log")
    rows = page.locator('[data-testid^="audit-row-"]').filter(has_text=action)
    for text in texts:
        rows = rows.filter(has_text=text)
    await expect(rows.first).to_be_visible()


async def open_queue(page: Page, name: str) -> Locator:
    """The Queues page with `name` selected; its row."""
    await nav(page, "Queues")
    row = page.get_by_test_id(f"queue-row-{name}")
    await row.click()
    return row


async def open_job(page: Page, queue: str, job_id: str, state: str) -> Locator:
    """The Jobs page filtered to `queue` and `state`, the job found by search, its drawer open."""
    await nav(page, "Jobs")
    await page.get_by_label("Queue", exact=True).select_option(queue)
    await page.get_by_label("State", exact=True).select_option(state)
    await page.get_by_label("Search", exact=True).fill(job_id)
    # The search applies once typing pauses (300 ms): past the pause, the list is down to the one job.
    await page.wait_for_timeout(400)
    await expect(page.locator('[data-testid^="job-row-"]')).to_have_count(1)
    row = page.get_by_test_id(f"job-row-{job_id}")
    await row.click()
    drawer = page.get_by_role("dialog", name=f"Job {job_id}")
    await expect(drawer).to_be_visible()
    return drawer


async def close(drawer: Locator) -> None:
    """Close a drawer or dialog with its Close button."""
    await drawer.get_by_role("button", name="Close", exact=True).click()
    await expect(drawer).to_have_count(0)


async def test_login_overview_language_and_dark_mode(ui: UI) -> None:
    page = await ui.page()
    await page.goto(ui.url + "/")
    await page.get_by_label("Username").fill(USERS["admin"])
    await page.get_by_label("Password").fill(PASSWORD + "-wrong")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Login failed")
    await expect(page.get_by_role("link", name="Overview")).to_have_count(0)

    page = await ui.login("admin")
    await expect(page.get_by_label("Live status")).to_have_text("Live")
    for kpi in (
        "waiting",
        "active",
        "delayed",
        "failed",
        "workers-online",
        "jobs-per-minute",
        "success-rate",
        "p95",
    ):
        await expect(page.get_by_test_id(f"kpi-{kpi}")).to_be_visible()
    await expect(page.get_by_test_id("kpi-failed")).to_contain_text("3")
    # The instrumented payments worker and the plain bullmq worker of the emails queue, seen without the SDK.
    await expect(page.get_by_test_id("kpi-workers-online")).to_contain_text("2")
    await ui.screenshot(page, "overview")

    await page.get_by_label("Language").click()
    await expect(page.get_by_role("link", name="Overview", exact=True)).to_have_count(0)
    # In Korean, the switch's own label is Korean too ("언어": language).
    await page.get_by_label("언어").click()
    await expect(page.get_by_role("link", name="Overview", exact=True)).to_be_visible()

    async def background() -> str:
        color: str = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        return color

    light = await background()

    async def darkened() -> bool:
        return await background() != light

    async def lightened() -> bool:
        return await background() == light

    await page.get_by_label("Toggle dark mode").click()
    await until(darkened, limit=5, what="the dark theme")
    await ui.screenshot(page, "overview-dark")
    await page.get_by_label("Toggle dark mode").click()
    await until(lightened, limit=5, what="the light theme")


async def test_counts_change_live(ui: UI) -> None:
    page = await ui.login("viewer")
    await nav(page, "Queues")
    await expect(page.get_by_label("Live status")).to_have_text("Live")
    waiting = page.get_by_test_id(f"queue-waiting-{WEBHOOKS}")
    await expect(waiting).to_have_text("2")
    for i in range(5):
        await ui.workload.queue(WEBHOOKS).add("webhook", {"n": 100 + i})
    # No reload: the live stream tells the page to read the queues again.
    await expect(waiting).to_have_text("7", timeout=LIVE_MS)
    await ui.screenshot(page, "queues")


async def test_pause_and_resume_a_queue(ui: UI) -> None:
    page = await ui.login("operator")
    await open_queue(page, REPORTS)
    queue_status = page.get_by_test_id(f"queue-status-{REPORTS}")
    await expect(queue_status).not_to_contain_text("PAUSED")
    await ui.screenshot(page, "queue-detail")

    await page.get_by_role("button", name="Pause", exact=True).click()
    await expect(status(page, f"Paused queue {REPORTS}")).to_be_visible()
    await expect(queue_status).to_contain_text("PAUSED")
    assert await ui.workload.queue(REPORTS).isPaused()

    await page.get_by_role("button", name="Resume", exact=True).click()
    await expect(status(page, f"Resumed queue {REPORTS}")).to_be_visible()
    await expect(queue_status).not_to_contain_text("PAUSED")
    assert not await ui.workload.queue(REPORTS).isPaused()

    await expect_audited(page, "QUEUE_PAUSE", REPORTS)
    await expect_audited(page, "QUEUE_RESUME", REPORTS)


async def test_drain_with_the_typed_confirmation(ui: UI) -> None:
    page = await ui.login("admin")
    await open_queue(page, THUMBNAILS)
    await expect(page.get_by_test_id(f"queue-waiting-{THUMBNAILS}")).to_have_text("9")
    await page.get_by_role("button", name="Drain", exact=True).click()
    dialog = page.get_by_role("dialog")
    confirm_field = dialog.get_by_label("Type the name to confirm")
    confirm = dialog.get_by_role("button", name="Drain", exact=True)
    await expect(confirm).to_be_disabled()
    await confirm_field.fill(THUMBNAILS[:-1])
    await expect(confirm).to_be_disabled()
    await confirm_field.fill(THUMBNAILS.upper())
    await expect(confirm).to_be_disabled()
    await confirm_field.fill(THUMBNAILS)
    await expect(confirm).to_be_enabled()
    await ui.screenshot(page, "drain-dialog")
    assert (await ui.workload.counts(THUMBNAILS, "waiting"))["waiting"] == 9

    await confirm.click()
    await expect(status(page, f"Drained {THUMBNAILS}")).to_be_visible()
    await expect(dialog).to_have_count(0)
    await expect(page.get_by_test_id(f"queue-waiting-{THUMBNAILS}")).to_have_text("0")
    assert (await ui.workload.counts(THUMBNAILS, "waiting"))["waiting"] == 0
    await expect_audited(page, "QUEUE_DRAIN", THUMBNAILS)


async def test_retry_a_failed_job(ui: UI) -> None:
    work = ui.workload
    job_id = work.failed_ids[0]
    page = await ui.login("operator")
    await nav(page, "Jobs")
    await page.get_by_label("Queue", exact=True).select_option(EMAILS)
    await page.get_by_label("State", exact=True).select_option("failed")
    for failed in work.failed_ids:
        await expect(page.get_by_test_id(f"job-row-{failed}")).to_be_visible()
    await ui.screenshot(page, "jobs")

    drawer = await open_job(page, EMAILS, job_id, "failed")
    await expect(drawer).to_contain_text("ECONNREFUSED")
    await drawer.evaluate("drawer => drawer.scrollTo(0, 0)")
    await ui.screenshot(page, "job-drawer")
    work.healed.add(job_id)  # the retried attempt succeeds
    await drawer.get_by_role("button", name="Retry", exact=True).click()
    await expect(status(page, f"Job {job_id} retried")).to_be_visible()

    async def completed() -> bool:
        return await work.state(EMAILS, job_id) == "completed"

    await until(completed, what="the retried job completing")
    await close(drawer)
    await expect_audited(page, "JOB_RETRY", EMAILS)


async def test_cancel_an_active_job(ui: UI) -> None:
    work = ui.workload
    [job, *_] = await work.queue(PAYMENTS).getJobs(["active"])
    job_id = str(job.id)
    admin = ui.gateway.client("admin")

    async def reported() -> bool:
        # Cancelling goes through the worker holding the job: wait until its beat names it.
        reply = await admin.get("/api/v1/workers")
        workers: list[dict[str, Any]] = reply.json().get("workers", [])
        return any(job_id in w.get("report", {}).get("activeJobIds", []) for w in workers)

    await until(reported, what="the instrumented worker reporting the job")
    page = await ui.login("admin")
    drawer = await open_job(page, PAYMENTS, job_id, "active")
    await drawer.get_by_role("button", name="Cancel", exact=True).click()
    await expect(status(page, f"Job {job_id} cancel: cancelled")).to_be_visible()

    async def failed() -> bool:
        return await work.state(PAYMENTS, job_id) == "failed"

    await until(failed, what="the cancelled job failing")
    await close(drawer)
    await expect_audited(page, "JOB_CANCEL", PAYMENTS)


async def test_workers_quiet_and_resume(ui: UI) -> None:
    worker_id = ui.workload.payments_worker_id
    page = await ui.login("operator")
    await nav(page, "Workers")
    row = page.get_by_test_id(f"worker-row-{worker_id}")
    await expect(row).to_contain_text(PAYMENTS)
    await expect(row.get_by_role("button", name="Stop", exact=True)).to_be_disabled()
    await ui.screenshot(page, "workers")
    await row.get_by_role("button", name="Quiet", exact=True).click()
    # The instrumented worker acknowledges: the result says it is done, not merely "sent".
    await expect(status(page, f"{worker_id} is quiet: it acknowledged and takes no new jobs")).to_be_visible()
    await row.get_by_role("button", name="Resume", exact=True).click()
    await expect(status(page, f"{worker_id} acknowledged and takes jobs again")).to_be_visible()
    await expect_audited(page, "WORKER_QUIET", worker_id)


async def test_acknowledge_an_incident(ui: UI) -> None:
    incident = await open_incident(ui)
    assert incident["status"] == "INCIDENT_STATUS_ACTIVE", incident
    incident_id = str(incident["id"])

    page = await ui.login("operator")
    await nav(page, "Incidents")
    row = page.get_by_test_id(f"incident-row-{incident_id}")
    await expect(row).to_contain_text(INVOICES)
    await expect(row).to_contain_text("active")
    await expect(row.get_by_role("button", name="Resolve", exact=True)).to_be_disabled()
    await row.get_by_role("button", name="Acknowledge", exact=True).click()
    await expect(status(page, f"Incident #{incident_id} acknowledged")).to_be_visible()
    await expect(row).to_contain_text("acknowledged")
    await status(page, "acknowledged").get_by_role("button", name="Close").click()
    reply = await ui.gateway.client("viewer").get(f"/api/v1/incidents/{incident_id}")
    assert reply.json()["incident"]["status"] == "INCIDENT_STATUS_ACKNOWLEDGED"
    await ui.screenshot(page, "incidents")
    await expect_audited(page, "INCIDENT_ACKNOWLEDGE", USERS["operator"])
    await ui.screenshot(page, "audit-log")


async def test_a_viewer_cannot_act(ui: UI) -> None:
    page = await ui.login("viewer")
    await open_queue(page, REPORTS)
    for name in ("Pause", "Resume", "Retry failed", "Promote"):
        await expect_refused(
            page, page.get_by_role("button", name=name, exact=True), "Needs the operator role"
        )
    for name in ("Drain", "Clean"):
        await expect_refused(page, page.get_by_role("button", name=name, exact=True), "Needs the admin role")

    await nav(page, "Workers")
    row = page.get_by_test_id(f"worker-row-{ui.workload.payments_worker_id}")
    await expect_refused(page, row.get_by_role("button", name="Quiet", exact=True), "Needs the operator role")
    await expect_refused(page, row.get_by_role("button", name="Stop", exact=True), "Needs the admin role")

    drawer = await open_job(page, EMAILS, ui.workload.failed_ids[1], "failed")
    await expect_refused(
        page, drawer.get_by_role("button", name="Retry", exact=True), "Needs the operator role"
    )
    await close(drawer)

    incident = await open_incident(ui)
    await nav(page, "Incidents")
    row = page.get_by_test_id(f"incident-row-{incident['id']}")
    await expect_refused(page, row.get_by_role("button", name="Acknowledge"), "Needs the operator role")
    await expect_refused(page, row.get_by_role("button", name="Resolve"), "Needs the admin role")


async def test_an_expired_token_is_renewed_and_the_page_stays_logged_in(ui: UI) -> None:
    page = await ui.login("viewer")
    await nav(page, "Workers")
    await expect(page.get_by_test_id(f"worker-row-{ui.workload.payments_worker_id}")).to_be_visible()
    # The access token runs out while the page is open (a wall dashboard overnight): the next call is
    # refused with TOKEN_EXPIRED, the page trades its refresh cookie for a new token and carries on.
    expired = ui.gateway.authority.mint(USERS["viewer"], "viewer", ttl_seconds=-10)
    await page.evaluate("token => sessionStorage.setItem('workermon.token', token)", expired)
    await nav(page, "Audit log")
    await nav(page, "Workers")

    async def renewed() -> bool:
        token = await page.evaluate("sessionStorage.getItem('workermon.token')")
        return token not in (None, expired)

    await until(renewed, limit=10, what="a renewed access token")
    await expect(page.get_by_test_id(f"worker-row-{ui.workload.payments_worker_id}")).to_be_visible()
    await expect(page.get_by_role("button", name="Log in")).to_have_count(0)


async def test_log_out_everywhere_voids_every_token_of_the_user(ui: UI) -> None:
    """The header's "Log out everywhere": this page goes back to the login form, and a token the same
    user holds elsewhere (a script's, another browser's) is refused by the gateway within seconds."""
    elsewhere = ui.gateway.authority.mint(USERS["viewer"], "viewer", ttl_seconds=600)
    client = ui.gateway.client()
    headers = {"authorization": f"Bearer {elsewhere}"}
    assert (await client.get("/api/v1/overview", headers=headers)).status_code == 200
    page = await ui.login("viewer")
    await page.get_by_role("button", name="Log out everywhere").click()
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()

    async def refused() -> bool:
        return (await client.get("/api/v1/overview", headers=headers)).status_code == 401

    await until(refused, limit=10, what="the other token refused after logging out everywhere")
    # Logging in again afterwards works: only tokens issued before the revocation are void.
    await ui.login("viewer")
