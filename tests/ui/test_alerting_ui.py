"""The Alerting page in headless Chromium against the real suite: "silence like this" from an incident
(prefilled matchers), the form's own checks and the server's refusal next to its field, the silence
listed, expired after a confirmation, each incident's notification decisions shown, axe-clean."""

from __future__ import annotations

from playwright.async_api import expect

from tests.support.ui import INVOICES, UI, open_incident

from .test_screens import expect_accessible


async def test_silence_like_this_refused_field_created_listed_and_expired(ui: UI) -> None:
    incident = await open_incident(ui)
    page = await ui.login("operator")
    await page.goto(f"{ui.url}/incidents/{incident['id']}")
    detail = page.get_by_role("dialog")
    # The incident fired before any silence: its decision says it was notified.
    await expect(detail.get_by_test_id("notification-decisions")).to_contain_text("Notified")
    await detail.get_by_role("button", name="Silence like this").click()

    await expect(page).to_have_url(f"{ui.url}/alerting?new=1&type=WORKER_DOWN&queue={INVOICES}")
    form = page.get_by_role("dialog", name="New silence")
    glob = form.get_by_label("Queue (glob)")
    await expect(glob).to_have_value(INVOICES)
    await expect(form.get_by_label("Type")).to_have_value("WORKER_DOWN")
    create = form.get_by_role("button", name="Create", exact=True)
    # No comment yet: the form says so and will not send.
    await expect(create).to_be_disabled()
    await expect_accessible(page, "new-silence dialog")

    # A glob the server refuses: its reason shows under the glob field.
    await glob.fill(INVOICES + "[")
    await form.get_by_label("Comment").fill("deploy of invoices")
    await create.click()
    described = await glob.get_attribute("aria-describedby")
    assert described, "the glob field names its helper text"
    await expect(page.locator(f'[id="{described}"]')).to_contain_text("The server said: is not a valid glob")
    await expect(glob).to_have_attribute("aria-invalid", "true")
    await expect_accessible(page, "new-silence dialog with the server's refusal")

    await glob.fill(INVOICES)
    await create.click()
    await expect(form).to_have_count(0)
    table = page.get_by_role("table", name="Silences")
    row = table.get_by_role("row").filter(has_text="deploy of invoices")
    await expect(row).to_contain_text(f"Queue={INVOICES}")
    await expect(row).to_contain_text("operator")
    # Afresh, without the toast (the app's filled toasts are checked where they are made).
    await page.goto(f"{ui.url}/alerting")
    await expect(row).to_contain_text("deploy of invoices")
    await expect_accessible(page, "/alerting")

    # Expire, confirmed in a dialog; the active list no longer has it, the expired one does.
    await row.get_by_role("button", name="Expire").click()
    confirm = page.get_by_role("dialog", name="Expire silence")
    await confirm.get_by_role("button", name="Expire").click()
    await expect(confirm).to_have_count(0)
    await expect(page.get_by_text("No silence in this state.")).to_be_visible()
    await page.get_by_label("Status", exact=True).select_option("SILENCE_STATE_EXPIRED")
    await expect(table.get_by_role("row").filter(has_text="deploy of invoices")).to_contain_text("expired")


async def test_a_viewer_sees_silences_but_cannot_create_them(ui: UI) -> None:
    page = await ui.login("viewer")
    await page.get_by_role("link", name="Alerting", exact=True).click()
    await expect(page.get_by_role("heading", name="Alerting", level=1)).to_be_visible()
    await expect(page.get_by_role("button", name="New silence")).to_be_disabled()


async def test_maintenance_window_refused_zone_next_to_its_field_created_and_deleted(ui: UI) -> None:
    page = await ui.login("operator")
    await page.goto(f"{ui.url}/alerting")
    await page.get_by_role("button", name="New maintenance window").click()
    form = page.get_by_role("dialog", name="New maintenance window")
    await form.get_by_label("Queue (glob)").fill("reports*")
    zone = form.get_by_label("Time zone")
    await zone.fill("Mars/Olympus_Mons")
    await form.get_by_label("Sat").check()
    await form.get_by_label("Comment").fill("weekly reindex")
    await expect_accessible(page, "new-window dialog")
    await form.get_by_role("button", name="Create", exact=True).click()
    described = await zone.get_attribute("aria-describedby")
    assert described, "the time zone field names its helper text"
    await expect(page.locator(f'[id="{described}"]')).to_contain_text("is not an IANA time zone")
    await expect(zone).to_have_attribute("aria-invalid", "true")

    await zone.fill("Asia/Seoul")
    await form.get_by_role("button", name="Create", exact=True).click()
    await expect(form).to_have_count(0)
    table = page.get_by_role("table", name="Maintenance windows")
    row = table.get_by_role("row").filter(has_text="weekly reindex")
    await expect(row).to_contain_text("Mon, Tue, Wed, Thu, Fri, Sat")
    await expect(row).to_contain_text("02:00\u201304:00 (Asia/Seoul)")
    await row.get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("dialog", name="Delete maintenance window")
    await confirm.get_by_role("button", name="Delete").click()
    await expect(page.get_by_text("No maintenance window.")).to_be_visible()
