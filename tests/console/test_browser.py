"""The console in a real browser (Debian's Chromium, headless, driven by Playwright)
over a real pipeline: broker, sink worker, SQLite stores, `spine serve`."""

from __future__ import annotations

import sqlite3

import orjson
from playwright.async_api import expect

from event_spine.audit.chain import AUDIT_STREAM
from event_spine.schemas.routes import ResourceKind, RouteKey
from support.api import A, Api, B
from support.console import browser_page, log_in
from support.pipeline import ctx
from support.waiting import wait_until


async def test_browse_a_stream_while_events_arrive(api: Api) -> None:
    ids = api.emit(A, "orders-1", 3)
    api.app.producer.emit_event(A, "order.shipped", "orders-1", {"n": 0})
    await api.app.wait_stored(A, "orders-1", 4)
    async with browser_page(api.server.url) as page:
        await log_in(page, api.tokens["a"])
        await page.click("text=Streams")
        await page.click("#streams >> text=orders-1")
        await expect(page.locator("#events tbody tr")).to_have_count(4)
        await page.fill("input[name=types_text]", "order.shipped")
        await page.click("#query button[type=submit]")
        await expect(page.locator("#events tbody tr")).to_have_count(1)
        await page.goto("/console/streams/orders-1")
        await page.click("#follow")
        await expect(page.locator("#live-status")).to_have_text("following")
        more = api.emit(A, "orders-1", 2, start=3)
        await expect(page.locator("#events tbody tr.live")).to_have_count(2)
        for event_id in more:
            await expect(page.locator(f"#events tr.live >> text={event_id}")).to_be_visible()
        await page.click(f"text={ids[0]}")
        body = orjson.loads(await page.locator("#event-body").inner_text())
        assert (body["event_id"], body["payload"]) == (ids[0], {"seq": 0})


async def test_lag_moves_on_the_chart(api: Api) -> None:
    worker = api.app.workers[0]
    async with browser_page(api.server.url) as page:
        await log_in(page, api.tokens["admin"])
        await page.goto("/console/lag")
        await expect(page.locator("#total-lag")).to_have_text("0")
        await api.app.stop_worker(worker)
        api.emit(A, "lagging", 20)
        assert api.app.producer.flush(30)
        await expect(page.locator("#total-lag")).to_have_text("20", timeout=60_000)
        bars = page.locator("#lag-chart rect.bar")
        lags = [int(await b.get_attribute("data-lag") or "0") for b in await bars.all()]
        assert sum(lags) == 20
        await api.app.start_worker()
        await expect(page.locator("#total-lag")).to_have_text("0", timeout=60_000)
        await api.app.wait_stored(A, "lagging", 20)


async def test_replay_a_dead_letter_and_see_it_stored(api: Api) -> None:
    late = ctx("t_late")
    ids = [api.app.producer.emit_event(late, "x", "s", {"n": n}) for n in range(2)]
    assert api.app.producer.flush(30)
    worker = api.app.workers[0]
    await wait_until(lambda: worker.stats.dead_lettered.get("route_missing") == 2, 30)
    await api.app.route_late(late)
    by = f"console:{api.key_ids['admin']}"
    async with browser_page(api.server.url) as page:
        await log_in(page, api.tokens["admin"])
        await page.goto("/console/dlq")
        await expect(page.locator("#reasons")).to_contain_text("route_missing: 2")
        await page.click("#reasons >> text=route_missing")
        rows = page.locator("#letters tbody tr")
        await expect(rows).to_have_count(2)
        # Inspect the second one, with its headers, then replay only it.
        second = rows.nth(1)
        await second.locator("a").click()
        await expect(page.locator("#reason")).to_have_text("route_missing")
        await expect(page.locator("#headers")).to_contain_text("spine-dlq-reason")
        await expect(page.locator("#replay-state")).to_have_text("Not replayed.")
        value = orjson.loads(await page.locator("#value").inner_text())
        chosen = value["event_id"]
        await page.go_back()
        # A second tab shows the list as it was before the replay, the same letter ticked.
        stale = await page.context.new_page()
        await stale.goto("/console/dlq?reason=route_missing")
        await stale.locator("#letters tbody tr").nth(1).locator("input[type=checkbox]").check()
        await rows.nth(1).locator("input[type=checkbox]").check()
        await page.click("#replay")
        await expect(page.locator("#outcome")).to_have_text("Replay: replayed 1.")
        marked = page.locator("#letters tr.replayed")
        await expect(marked).to_have_count(1)
        await expect(marked).to_contain_text(f"by {by}")
        await expect(marked.locator("input[type=checkbox]")).to_be_disabled()
        letter = await marked.get_attribute("data-letter")
        # Submitting the same letter again (the stale tab) re-publishes nothing, and says so.
        await stale.click("#replay")
        await expect(stale.locator("#outcome")).to_contain_text(
            f"replayed 0; skipped 1 already replayed ({letter})"
        )
    stored = await api.app.wait_stored(late, "s", 1)
    assert [e.event_id for e in stored] == [chosen]
    assert chosen in ids
    with sqlite3.connect(api.app.events_db) as db:
        count = db.execute(
            "SELECT count(*) FROM spine_events WHERE tenant_id='t_late' AND stream_id='s'"
        ).fetchone()
    assert count == (1,)
    with sqlite3.connect(api.app.registry_db) as db:
        ledger = db.execute(
            "SELECT dlq_partition || ':' || dlq_offset, replayed_by FROM spine_dlq_replays"
        ).fetchall()
    assert ledger == [(letter, by)]


async def test_switch_a_route(api: Api) -> None:
    target = api.app.tmp / "moved.db"
    async with browser_page(api.server.url) as page:
        await log_in(page, api.tokens["admin"])
        await page.goto("/console/routes?tenant_id=t_alpha")
        section = page.locator("section.route[data-kind=event_spine]")
        await expect(section).to_have_count(1)
        await section.locator("summary").click()
        await section.locator("input[name=config]").fill(
            orjson.dumps({"path": str(target)}).decode()
        )
        await section.locator("input[name=reason]").fill("move alpha to its own file")
        await section.locator("button[type=submit]").click()
        await expect(page.locator("#switched")).to_contain_text("t_alpha")
        timeline = page.locator("section.route[data-kind=event_spine] .timeline li")
        await expect(timeline.last).to_contain_text("move alpha to its own file")
    route = await api.app.registry.get_route(
        RouteKey(ResourceKind.EVENT_SPINE, "t_alpha", A.env, A.project_id, A.mode)
    )
    assert route.config == {"path": str(target)}
    assert route.history[-1].actor == f"console:{api.key_ids['admin']}"
    assert route.history[-1].reason == "move alpha to its own file"


async def test_audit_break_after_the_store_is_tampered(api: Api) -> None:
    ids = [api.app.producer.emit_event(A, "audit.thing", AUDIT_STREAM, {"n": n}) for n in range(4)]
    await api.app.wait_stored(A, AUDIT_STREAM, 4)
    async with browser_page(api.server.url) as page:
        await log_in(page, api.tokens["a"])
        await page.goto("/console/audit")
        await page.click("#verify button[type=submit]")
        await expect(page.locator("#audit-result")).to_contain_text("OK: 4 audit events")
        db = sqlite3.connect(api.app.events_db, isolation_level=None)
        try:
            body = db.execute(
                "SELECT body FROM spine_events WHERE event_id=?", (ids[2],)
            ).fetchone()[0]
            tampered = bytes(body).replace(b'"n":2', b'"n":9')
            assert tampered != bytes(body)
            db.execute("UPDATE spine_events SET body=? WHERE event_id=?", (tampered, ids[2]))
        finally:
            db.close()
        await page.click("#verify button[type=submit]")
        await expect(page.locator("#audit-result")).to_contain_text("BROKEN")
        await expect(page.locator("#broken")).to_contain_text(ids[2])
        await expect(page.locator("#broken-body")).to_contain_text('"n": 9')


async def test_a_tenant_sees_nothing_of_another(api: Api) -> None:
    ids_a = api.emit(A, "alpha-only", 2)
    api.emit(B, "beta-only", 1)
    await api.app.wait_stored(A, "alpha-only", 2)
    await api.app.wait_stored(B, "beta-only", 1)
    async with browser_page(api.server.url) as page:
        await log_in(page, api.tokens["b"])
        await page.goto("/console/streams")
        await expect(page.locator("#streams")).to_contain_text("beta-only")
        await expect(page.locator("#streams")).not_to_contain_text("alpha-only")
        await page.goto("/console/streams/alpha-only")
        await expect(page.locator("#no-events")).to_be_visible()
        await page.goto(f"/console/events/{ids_a[0]}")
        await expect(page.locator("#error")).to_contain_text("No event")
        await page.goto("/console/routes")
        await expect(page.locator("main")).not_to_contain_text("t_alpha")
        await page.goto("/console/dlq")
        await expect(page.locator("#error")).to_contain_text("needs an admin key")
        await page.goto("/console/audit?verify=1&tenant_id=t_alpha")
        await expect(page.locator("#audit-result")).to_contain_text("t_beta")
        await expect(page.locator("main")).not_to_contain_text("t_alpha")
