"""The alerting configuration tabs in headless Chromium against the real suite: an admin adds a webhook
channel pointing at a receiver started here, sends a test notification through the unsaved settings (the
receiver gets it), adds a route, saves with a comment, and after a reload sees the channel (its URL as a
hint only), the route and the revision; a viewer sees it all without a button that would be refused;
axe-clean throughout."""

from __future__ import annotations

from playwright.async_api import expect

from tests.support.bull import until
from tests.support.ui import UI, USERS
from tests.support.webhooks import http_receivers

from .test_screens import expect_accessible

CHANNEL = "ui-hook"
ROUTE = "everything"
COMMENT = "route every incident to the ops webhook"


async def test_admin_adds_tests_routes_and_saves_a_webhook_channel(ui: UI) -> None:
    async with http_receivers() as start:
        receiver = await start()
        page = await ui.login("admin")
        await page.goto(f"{ui.url}/alerting?tab=channels")
        await expect(page.get_by_role("tab", name="Channels")).to_have_attribute("aria-selected", "true")
        await expect_accessible(page, "/alerting channels")

        await page.get_by_role("button", name="Add channel").click()
        dialog = page.get_by_role("dialog", name="Add channel")
        await dialog.get_by_label("Name", exact=False).first.fill(CHANNEL)
        await expect(dialog.get_by_label("Type")).to_have_value("WEBHOOK")
        url = dialog.get_by_label("Webhook URL")
        await url.fill(receiver.url)
        # A secret input: the browser never shows the URL once typed.
        await expect(url).to_have_attribute("type", "password")
        await expect_accessible(page, "add-channel dialog")

        # The unsaved settings are tested: the receiver gets the notification now.
        await dialog.get_by_role("button", name="Send test").click()
        result = dialog.get_by_test_id("channel-test-result")
        await expect(result).to_contain_text(f"Test through {CHANNEL} delivered")
        await expect(result).to_contain_text("status 200")

        async def received() -> bool:
            return len(receiver.accepted) >= 1

        await until(received, what="the test notification at the receiver")
        await dialog.get_by_role("button", name="Apply").click()
        await expect(dialog).to_have_count(0)
        await expect(page.get_by_test_id(f"channel-row-{CHANNEL}")).to_contain_text("Webhook")

        # A route taking every incident to the channel: the default route.
        await page.get_by_role("tab", name="Routes").click()
        await page.get_by_role("button", name="Add route").click()
        # No route was configured: the one added is the only, and so the last (default) route.
        last = page.locator('[data-testid^="route-"]').last
        await last.get_by_label("Name", exact=False).first.fill(ROUTE)
        await last.get_by_label(CHANNEL, exact=True).check()
        await expect(last).to_contain_text("Default route")
        await expect(page.get_by_test_id("default-route-warning")).to_have_count(0)
        await expect_accessible(page, "/alerting routes")

        await page.get_by_label("Comment").fill(COMMENT)
        await page.get_by_role("button", name="Save changes").click()
        revision = page.get_by_test_id("alerting-revision")
        await expect(revision).to_contain_text(f"by {USERS['admin']}")
        await expect(revision).not_to_contain_text("unsaved changes")

        # Afresh from the server: the channel (its URL as a hint only), the route, the revision.
        await page.goto(f"{ui.url}/alerting?tab=channels")
        row = page.get_by_test_id(f"channel-row-{CHANNEL}")
        await expect(row).to_contain_text("127.0.0.1")
        await expect(row).not_to_contain_text("T0K3N")
        await row.get_by_role("button", name=f"Edit channel {CHANNEL}").click()
        edit = page.get_by_role("dialog", name=f"Edit channel {CHANNEL}")
        stored_url = edit.get_by_label("Webhook URL")
        await expect(stored_url).to_have_value("")
        described = await stored_url.get_attribute("aria-describedby")
        assert described, "the URL field names its helper text"
        await expect(page.locator(f'[id="{described}"]')).to_contain_text("leave empty to keep")
        await edit.get_by_role("button", name="Cancel").click()

        await page.get_by_role("tab", name="Routes").click()
        saved_route = page.locator('[data-testid^="route-"]').last
        await expect(saved_route).to_contain_text(f": {ROUTE}")
        await expect(saved_route.get_by_label(CHANNEL, exact=True)).to_be_checked()
        await page.get_by_role("tab", name="Revisions").click()
        listed = page.get_by_role("table", name="Revisions").get_by_role("row").filter(has_text=COMMENT)
        await expect(listed).to_contain_text(USERS["admin"])
        await listed.get_by_role("button", name="View revision").click()
        shown = page.get_by_role("dialog", name="Revision")
        await expect(shown).to_contain_text(CHANNEL)
        await expect(shown).not_to_contain_text("T0K3N")
        await expect_accessible(page, "revision dialog")


async def test_a_viewer_sees_the_configuration_without_edit_buttons(ui: UI) -> None:
    page = await ui.login("viewer")
    await page.goto(f"{ui.url}/alerting?tab=rules")
    await expect(page.get_by_text("Read-only: changing the alerting configuration")).to_be_visible()
    await expect(page.get_by_role("button", name="Download JSON")).to_be_enabled()
    for name in ("Save changes", "Check", "Add override"):
        await expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    await expect_accessible(page, "/alerting rules as a viewer")
    await page.get_by_role("tab", name="Channels").click()
    await expect(page.get_by_role("button", name="Add channel")).to_have_count(0)
    await expect(page.get_by_role("button", name="Send test")).to_have_count(0)
    await page.get_by_role("tab", name="Routes").click()
    await expect(page.get_by_role("button", name="Add route")).to_have_count(0)
    await expect_accessible(page, "/alerting routes as a viewer")
