"""History in the admin UI, end to end in headless Chromium: a queue's range kept in the URL, wait time
beside processing time, failures by category (and their empty state), and a worker's 24-hour drawer
reached from its sparkline."""

from __future__ import annotations

import time

from playwright.async_api import Locator, Page, expect

from tests.support.bull import until
from tests.support.ui import EMAILS, REPORTS, UI
from workermon_collector.follower import MINUTE_MS


async def nav(page: Page, name: str) -> None:
    """Follow a link of the main navigation."""
    await page.get_by_role("link", name=name, exact=True).click()


# What a chart draws for its data (not its axes or legend): a line of two points or more, an area, or
# the mark of a point standing alone between gaps.
DATA = ".MuiLineElement-root[d*='L'], .MuiAreaElement-root[d*='L'], .MuiMarkElement-root"


async def drawn(chart: Locator) -> None:
    """The chart shows data, not only its axes."""
    await expect(chart).to_be_visible()
    await expect(chart.locator(DATA).first).to_be_attached()


async def collect_recent_minutes(ui: UI, queue: str) -> None:
    """Rows for the last few minutes of `queue` (the workload's failures among them); minutes the
    workload's own collection wrote already are left as they are."""
    collector = ui.gateway.suite.parts("collector").collector
    now = int(time.time() * 1000)
    for minute in range(now - now % MINUTE_MS - 5 * MINUTE_MS, now + 1, MINUTE_MS):
        await collector.collect([queue], minute_ms=minute)


async def test_queue_history_ranges_wait_time_and_failure_categories(ui: UI) -> None:
    await collect_recent_minutes(ui, EMAILS)
    viewer = ui.gateway.client("viewer")

    async def failures_in_trend() -> bool:
        reply = await viewer.get(f"/api/v1/queues/{EMAILS}/trend", params={"hours": 1})
        points = reply.json().get("points", []) if reply.status_code == 200 else []
        return any(p.get("failuresByCategory") for p in points)

    await until(failures_in_trend, what=f"failures by category in the trend of {EMAILS}")

    page = await ui.login("viewer")
    await nav(page, "Queues")
    await page.get_by_test_id(f"queue-row-{EMAILS}").click()
    await drawn(page.get_by_role("img", name="Processing time (ms)"))
    await drawn(page.get_by_role("img", name="Wait time (ms)"))
    categories = page.get_by_test_id("failure-categories")
    await drawn(categories.get_by_role("img", name="Failures by category"))
    # The legend names the category of the workload's failures (connection refused).
    await expect(categories.get_by_text("network", exact=True)).to_be_visible()
    await ui.screenshot(page, "queue-history")

    # A longer range is kept in the URL: a reload (or a shared link) shows the same range.
    await page.get_by_role("button", name="7 d", exact=True).click()
    await expect(page).to_have_url(f"{ui.url}/queues/{EMAILS}?range=7d")
    await page.reload()
    await expect(page.get_by_role("button", name="7 d", exact=True)).to_have_attribute("aria-pressed", "true")
    await drawn(page.get_by_role("img", name="Wait time (ms)"))
    # Choosing another queue keeps the range.
    await page.get_by_test_id(f"queue-row-{REPORTS}").click()
    await expect(page).to_have_url(f"{ui.url}/queues/{REPORTS}?range=7d")
    await expect(page.get_by_test_id("failure-categories-empty")).to_have_text("No failure in this range.")


async def test_worker_detail_shows_its_day_in_charts(ui: UI) -> None:
    worker_id = ui.workload.payments_worker_id
    page = await ui.login("viewer")
    await nav(page, "Workers")
    row = page.get_by_test_id(f"worker-row-{worker_id}")
    spark = row.get_by_test_id(f"worker-spark-{worker_id}")
    await expect(spark.locator("svg")).to_be_visible()
    await spark.click()
    await expect(page).to_have_url(f"{ui.url}/workers/{worker_id}")
    drawer = page.get_by_role("dialog", name=f"Worker {worker_id}")
    await expect(drawer).to_be_visible()
    for chart in ("Active jobs", "CPU (%)", "Memory, RSS (MB)"):
        await drawn(drawer.get_by_role("img", name=chart))
    await ui.screenshot(page, "worker-detail")

    # The drawer is a route of its own: opened straight from its address too.
    await page.reload()
    await drawn(page.get_by_role("dialog", name=f"Worker {worker_id}").get_by_role("img", name="Active jobs"))
    await page.get_by_role("dialog", name=f"Worker {worker_id}").get_by_role("button", name="Close").click()
    await expect(page).to_have_url(f"{ui.url}/workers")
    await expect(page.get_by_role("dialog", name=f"Worker {worker_id}")).to_have_count(0)
    await expect(page.get_by_test_id(f"worker-row-{worker_id}")).to_be_visible()
