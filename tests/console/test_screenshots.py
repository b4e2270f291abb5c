"""Screenshots of the console's main pages over a real pipeline.

`scripts/console-screenshots.sh` runs this test with SPINE_CONSOLE_SCREENSHOTS=docs/console
to regenerate the pictures in docs/console/; without it they go to the test's tmp dir
(the test still checks that every page renders).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from playwright.async_api import Page, expect

from event_spine.audit.chain import AUDIT_STREAM
from support.api import A, Api
from support.console import browser_page, log_in
from support.pipeline import ctx
from support.waiting import wait_until

PAGES = (
    "login",
    "home",
    "routes",
    "streams",
    "stream",
    "event",
    "lag",
    "dlq",
    "dlq-record",
    "audit",
)


async def _shot(page: Page, out: Path, name: str) -> None:
    await page.screenshot(path=str(out / f"{name}.png"), full_page=True)


async def test_screenshots_of_the_main_pages(api: Api, tmp_path: Path) -> None:
    out = Path(os.environ.get("SPINE_CONSOLE_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    ids = api.emit(A, "orders-42", 6)
    api.app.producer.emit_event(A, "order.shipped", "orders-42", {"carrier": "dhl"})
    api.emit(A, "invoices-7", 2)
    audit = [
        api.app.producer.emit_event(A, "audit.login", AUDIT_STREAM, {"n": n}) for n in range(3)
    ]
    late = ctx("t_unrouted")
    for seq in (1, 2):
        api.app.producer.emit_event(late, "order.placed", "s", {"seq": seq})
    await api.app.wait_stored(A, "orders-42", 7)
    await api.app.wait_stored(A, AUDIT_STREAM, 3)
    worker = api.app.workers[0]
    await wait_until(lambda: worker.stats.dead_lettered.get("route_missing") == 2, 30)
    async with browser_page(api.server.url) as page:
        await page.goto("/console/login")
        await _shot(page, out, "login")
        await log_in(page, api.tokens["a"])
        await _shot(page, out, "home")
        await page.goto("/console/routes")
        await _shot(page, out, "routes")
        await page.goto("/console/streams")
        await expect(page.locator("#streams")).to_contain_text("orders-42")
        await _shot(page, out, "streams")
        await page.goto("/console/streams/orders-42?order=asc&limit=5")
        await page.click("#follow")
        await expect(page.locator("#events tbody tr.live")).to_have_count(2)
        await _shot(page, out, "stream")
        await page.goto(f"/console/events/{ids[0]}")
        await _shot(page, out, "event")
        db = sqlite3.connect(api.app.events_db, isolation_level=None)
        try:
            db.execute(
                "UPDATE spine_events SET body=replace(body, '\"n\":1', '\"n\":7') WHERE event_id=?",
                (audit[1],),
            )
        finally:
            db.close()
        await page.goto("/console/audit?verify=1")
        await expect(page.locator("#audit-result")).to_contain_text("BROKEN")
        await _shot(page, out, "audit")
    async with browser_page(api.server.url) as page:
        await log_in(page, api.tokens["admin"])
        await page.goto("/console/lag")
        await expect(page.locator("#total-lag")).to_have_text("0")
        await api.app.stop_worker(worker)  # so the chart has lag to show
        api.emit(A, "orders-42", 25, start=100)
        assert api.app.producer.flush(30)
        await expect(page.locator("#total-lag")).to_have_text("25", timeout=60_000)
        await expect(page.locator("#lag-chart rect.bar")).to_have_count(4)
        await _shot(page, out, "lag")
        await page.goto("/console/dlq")
        await expect(page.locator("#letters tbody tr")).to_have_count(2)
        # Replay one (its route added): the list marks it, the other stays selectable.
        await api.app.route_late(late)
        await page.locator("#letters input[type=checkbox]").first.check()
        await page.click("#replay")
        await expect(page.locator("#outcome")).to_have_text("Replay: replayed 1.")
        await expect(page.locator("#letters tr.replayed")).to_have_count(1)
        await _shot(page, out, "dlq")
        await page.locator("#letters a").first.click()
        await expect(page.locator("#reason")).to_have_text("route_missing")
        await expect(page.locator("#replay-state")).to_contain_text("Replayed")
        await _shot(page, out, "dlq-record")
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(PAGES)
