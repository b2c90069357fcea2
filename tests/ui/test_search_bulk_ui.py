"""Search across queues, bulk actions and export on the Jobs page, and obliterate, in headless Chromium
against the real suite: results link to their job, progress shows, the server's counts come back, the
file downloads, every new screen without serious axe-core violations, and in Korean with no English."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Page, expect

from tests.support.bull import until
from tests.support.ui import EMAILS, REPORTS, THUMBNAILS, UI, WEBHOOKS
from tests.ui.test_screens import data_words, expect_accessible, expect_korean, nav


async def test_search_across_queues_links_to_the_job(ui: UI) -> None:
    page = await ui.login("viewer")
    await nav(page, "Search")
    await expect(page.get_by_role("heading", name="Search across queues")).to_be_visible()
    await expect(page.get_by_role("button", name="Search", exact=True)).to_be_disabled()
    await page.get_by_label("Text in data or failure reason").fill("BOUNCE1@example")
    await page.get_by_role("button", name="Search", exact=True).click()
    progress = page.get_by_test_id("search-progress")
    await expect(progress).to_contain_text(
        re.compile(r"1 job\(s\) found · Scanned \d+ of \d+ jobs · Search complete")
    )
    failed_id = ui.workload.failed_ids[1]
    hit = page.get_by_test_id(f"hit-{EMAILS}-{failed_id}")
    await expect(hit).to_contain_text("data")
    await expect_accessible(page, "search results")
    await hit.get_by_role("link", name=f"Open job {failed_id} of {EMAILS}").click()
    await expect(page).to_have_url(re.compile(rf"/jobs\?queue={EMAILS}&job={failed_id}$"))
    await expect(page.get_by_role("dialog", name=re.compile(f"^Job {failed_id}"))).to_be_visible()

    # A search by name prefix alone, in one queue chosen from the list.
    await page.keyboard.press("Escape")
    await nav(page, "Search")
    await page.get_by_label("Name starts with").fill("thumb")
    await page.get_by_label("Queue", exact=True).select_option(THUMBNAILS)
    await page.get_by_role("button", name="Search", exact=True).click()
    await expect(page.get_by_test_id("search-progress")).to_contain_text("9 job(s) found")


async def bulk_status(page: Page, action: str) -> str:
    status = page.get_by_test_id("bulk-status")
    await expect(status).to_contain_text(f"{action} done: ")
    return str(await status.inner_text())


async def test_bulk_actions_and_export_from_the_jobs_page(ui: UI, tmp_path: Path) -> None:
    viewer = await ui.login("viewer")
    await viewer.goto(f"{ui.url}/jobs?queue={REPORTS}")
    await expect(viewer.locator('[data-testid^="job-row-"]').first).to_be_visible()
    await expect(viewer.get_by_role("button", name="Retry", exact=True)).to_be_disabled()

    page = await ui.login("admin")
    await page.goto(f"{ui.url}/jobs?queue={REPORTS}")
    rows = page.locator('[data-testid^="job-row-"]')
    await expect(rows).to_have_count(6)
    # Two ticked jobs removed: the server reports its counts, the list shrinks.
    await page.get_by_role("checkbox", name=re.compile(r"^Select job ")).nth(0).check()
    await page.get_by_role("checkbox", name=re.compile(r"^Select job ")).nth(1).check()
    await expect(page.get_by_test_id("bulk-count")).to_have_text("2 selected")
    await page.get_by_role("button", name="Remove", exact=True).click()
    assert "Remove done: 2 changed, 0 skipped, 0 failed of 2" in await bulk_status(page, "Remove")
    await expect(rows).to_have_count(4)
    await expect_accessible(page, "jobs page with a finished bulk action")

    # Every job matching the filter: retrying waiting jobs skips them all (only failed ones retry).
    await page.get_by_label("All jobs matching the filter").check()
    await expect(page.get_by_test_id("bulk-count")).to_have_text("4 selected")
    await page.get_by_role("button", name="Retry", exact=True).click()
    assert "Retry done: 0 changed, 4 skipped, 0 failed of 4" in await bulk_status(page, "Retry")

    async with page.expect_download() as caught:
        await page.get_by_role("button", name="Export CSV", exact=True).click()
    download = await caught.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    lines = saved.read_text().splitlines()
    assert download.suggested_filename == f"{REPORTS}-jobs.csv" and lines[0].startswith("queue,job_id,name")
    assert len(lines) == 5

    await page.get_by_label("With job data (admin, audited)").check()
    async with page.expect_download() as caught:
        await page.get_by_role("button", name="Export JSON lines", exact=True).click()
    download = await caught.value
    await download.save_as(tmp_path / "with-data.jsonl")
    assert '"data": "{\\"n\\":' in (tmp_path / "with-data.jsonl").read_text()

    audit = ui.gateway.client("admin")

    async def audited() -> bool:
        reply = await audit.get("/api/v1/auditLogs", params={"queue": REPORTS})
        actions = [a["action"] for a in reply.json()["auditLogs"]]
        return "AUDIT_ACTION_JOB_EXPORT" in actions and actions.count("AUDIT_ACTION_JOB_BULK_ACTION") == 2

    await until(audited, what="the bulk actions and the data export in the audit log")


async def test_obliterate_from_the_danger_zone(ui: UI) -> None:
    page = await ui.login("admin")
    await page.goto(f"{ui.url}/queues/{WEBHOOKS}")
    zone = page.get_by_role("group", name="Danger zone")
    await zone.get_by_role("button", name="Obliterate", exact=True).click()
    dialog = page.get_by_role("dialog", name=f"Obliterate: {WEBHOOKS}")
    await expect(dialog).to_contain_text("This cannot be undone")
    confirm = dialog.get_by_role("button", name="Obliterate", exact=True)
    await expect(confirm).to_be_disabled()
    await expect_accessible(page, "obliterate dialog")
    await dialog.get_by_label("Type the name to confirm").fill(WEBHOOKS)
    await confirm.click()
    await expect(page.get_by_text(f"Obliterated {WEBHOOKS}")).to_be_visible()
    assert (await ui.workload.counts(WEBHOOKS, "waiting"))["waiting"] == 0


async def test_search_and_bulk_bar_in_korean(ui: UI) -> None:
    data = data_words(ui) | {"bounce0", "example", "com"}
    page = await ui.login("admin")
    await page.get_by_label("Language").click()
    await expect(page.get_by_role("link", name="검색", exact=True)).to_be_visible()
    await nav(page, "검색")
    await page.get_by_label("데이터 또는 실패 사유의 텍스트").fill("bounce0")
    await page.get_by_role("button", name="검색", exact=True).click()
    await expect(page.get_by_test_id("search-progress")).to_contain_text("작업 1개 찾음")
    await expect_korean(page, "/search", data)
    await page.goto(f"{ui.url}/jobs?queue={EMAILS}&state=failed")
    await expect(page.locator('[data-testid^="job-row-"]').first).to_be_visible()
    await page.get_by_label("필터와 일치하는 모든 작업").check()
    await page.get_by_role("button", name="재시도", exact=True).click()
    await expect(page.get_by_test_id("bulk-status")).to_contain_text("재시도 완료")
    await expect_korean(page, "/jobs with the bulk bar", data)
    await page.goto(f"{ui.url}/queues/{THUMBNAILS}")
    await page.get_by_role("button", name="완전 삭제", exact=True).click()
    await expect(page.get_by_role("dialog")).to_be_visible()
    await expect_korean(page, "obliterate dialog", data)
