"""Flows and job schedulers in the admin UI, in headless Chromium, on queues Node BullMQ wrote.

produce.mjs (`flows` mode) leaves root (queue uiflow) waiting on bad (failed) and hold (delayed), with
mid processed (its children ok1 and ok2 in uiflow-kids) and ign ignored; job schedulers `hourly` and
`nightly` on uiflow-sched. The drawer shows the parent link and the tree, expanded level by level; the
stuck root is released with a typed confirmation; schedulers are listed, run and removed; axe-core
finds no serious violation; Korean labels show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from tests.support.nodejs import NodeProcess, start_produce
from tests.support.ui import UI
from tests.ui.test_screens import axe_problems

QUEUE = "uiflow"
KIDS = f"{QUEUE}-kids"
SCHED = f"{QUEUE}-sched"


@pytest.fixture
async def node_flow(ui: UI) -> AsyncIterator[dict[str, str]]:
    node: NodeProcess = await start_produce(
        ui.gateway.redis_url, ui.gateway.settings.queue_prefix, QUEUE, "flows"
    )
    try:
        yield node.ready["ids"]
    finally:
        await node.stop()


async def accessible(page: Page, where: str, context: str = "document") -> None:
    await expect(page.locator('[data-testid="loading"]')).to_have_count(0)
    problems = await axe_problems(page, context)
    assert not problems, f"{where}:\n" + "\n".join(problems)


async def test_flow_tree_parent_link_and_releasing_a_stuck_parent(ui: UI, node_flow: dict[str, str]) -> None:
    ids = node_flow
    page = await ui.login("operator")
    await page.goto(f"{ui.url}/jobs?queue={QUEUE}&job={ids['root']}")
    drawer = page.get_by_role("dialog", name=f"Job {ids['root']}")
    flow = drawer.get_by_test_id("job-flow")
    # The Node workers finish the children while the page loads: the counts settle (refetched on reload).
    counts = flow.get_by_test_id("job-child-counts")
    for _ in range(40):
        if (
            await counts.count()
            and "2 pending · 1 processed · 1 ignored · 0 failed" in await counts.inner_text()
        ):
            break
        await page.wait_for_timeout(250)
        await page.reload()
    await expect(counts).to_have_text("2 pending · 1 processed · 1 ignored · 0 failed")
    tree = flow.get_by_role("list", name=f"Children of job {ids['root']}")
    for name in ("mid", "bad", "ign", "hold"):
        await expect(tree.get_by_test_id(f"flow-node-{ids[name]}")).to_be_visible()
    await expect(tree.get_by_test_id(f"flow-node-{ids['bad']}")).to_contain_text("bad child failed")

    # Expanding mid loads its own children (the third level) only then.
    expand = flow.get_by_role("button", name=f"Show the children of job {ids['mid']}")
    await expect(expand).to_have_attribute("aria-expanded", "false")
    await expand.click()
    level3 = flow.get_by_role("list", name=f"Children of job {ids['mid']}")
    await expect(level3.get_by_test_id(f"flow-node-{ids['ok1']}")).to_be_visible()
    await expect(level3.get_by_test_id(f"flow-node-{ids['ok2']}")).to_be_visible()
    await expect(flow.get_by_role("button", name=f"Hide the children of job {ids['mid']}")).to_have_attribute(
        "aria-expanded", "true"
    )
    await accessible(page, "job drawer with the flow tree expanded", '[role="dialog"]')
    await ui.screenshot(page, "flow-tree")

    # A child's link opens it, and its drawer links back to its parent.
    await level3.get_by_role("link", name=f"ok · job {ids['ok1']} in {KIDS}").click()
    child = page.get_by_role("dialog", name=f"Job {ids['ok1']}")
    await expect(child.get_by_test_id("job-parent")).to_contain_text(f"job {ids['mid']} in {QUEUE}")
    await child.get_by_test_id("job-parent").get_by_role("link").click()
    await expect(page.get_by_role("dialog", name=f"Job {ids['mid']}")).to_be_visible()

    # Releasing the stuck root: a typed confirmation, then the parent moves on and completes.
    await page.goto(f"{ui.url}/jobs?queue={QUEUE}&job={ids['root']}")
    drawer = page.get_by_role("dialog", name=f"Job {ids['root']}")
    await drawer.get_by_role("button", name="Remove pending children").click()
    confirm = page.get_by_role("dialog", name=f"Remove pending children: {ids['root']}")
    go = confirm.get_by_role("button", name="Remove pending children")
    await expect(go).to_be_disabled()
    await accessible(page, "remove-pending-children dialog")
    await confirm.get_by_label("Type the name to confirm").fill(ids["root"])
    await go.click()
    await expect(
        page.get_by_text(f"Job {ids['root']}: 1 removed, 1 unlinked, 0 still running")
    ).to_be_visible()
    rows = await ui.gateway.client("viewer").get(
        "/api/v1/auditLogs", params={"action": "AUDIT_ACTION_JOB_CHILDREN_REMOVE", "pageSize": 10}
    )
    assert [r["entityId"] for r in rows.json()["auditLogs"]] == [f"{QUEUE}/{ids['root']}"], rows.text


async def test_job_schedulers_listed_run_and_removed(ui: UI, node_flow: dict[str, str]) -> None:
    page = await ui.login("operator")
    await page.goto(f"{ui.url}/queues/{SCHED}")
    section = page.get_by_test_id("schedulers")
    hourly = section.get_by_test_id("scheduler-row-hourly")
    nightly = section.get_by_test_id("scheduler-row-nightly")
    await expect(hourly).to_contain_text("every 1h 0m")
    await expect(hourly).to_contain_text('{"x":1}')
    await expect(nightly).to_contain_text("0 3 * * *")
    await expect(nightly).to_contain_text("Asia/Seoul")
    await expect(nightly).to_contain_text(" of 10")
    await accessible(page, "queue page with job schedulers")
    await ui.screenshot(page, "job-schedulers")

    await hourly.get_by_role("button", name="Run now").click()
    await expect(page.get_by_text("added from job scheduler hourly")).to_be_visible()
    remove = nightly.get_by_role("button", name="Remove")
    await expect(remove).to_be_disabled()  # an operator may run, not remove
    await expect(remove.locator("xpath=..")).to_have_attribute("data-reason", "Needs the admin role")

    admin = await ui.login("admin")
    await admin.goto(f"{ui.url}/queues/{SCHED}")
    row = admin.get_by_test_id("schedulers").get_by_test_id("scheduler-row-nightly")
    await row.get_by_role("button", name="Remove").click()
    dialog = admin.get_by_role("dialog", name="Remove job scheduler nightly")
    await accessible(admin, "remove-scheduler dialog")
    await dialog.get_by_label("Type the name to confirm").fill("nightly")
    await dialog.get_by_role("button", name="Remove").click()
    await expect(row).to_have_count(0)
    await expect(admin.get_by_test_id("schedulers").get_by_test_id("scheduler-row-hourly")).to_be_visible()

    # In Korean.
    await admin.get_by_label("Language").click()
    await expect(admin.get_by_role("heading", name="작업 스케줄러")).to_be_visible()
    await expect(admin.get_by_test_id("scheduler-row-hourly")).to_contain_text("지금 실행")
    await expect(admin.get_by_test_id("scheduler-row-hourly")).to_contain_text("1h 0m마다")
