"""Timelines: scope checks, the route-selected store, the durable path and both."""

from __future__ import annotations

import pytest

from event_spine.backends import StoreFactory
from event_spine.errors import EventValidationError, ScopeViolation, UnknownCursor
from event_spine.producers import EventSpineProducer, ProducerSettings
from event_spine.schemas import ResourceKind, RouteKey
from event_spine.timeline import (
    MemoryTimeline,
    SpineTimeline,
    TeeTimeline,
    TimelineEntry,
    Timelines,
)
from support.app import App, running_app
from support.pipeline import ctx, registry_at, route_to_sqlite
from support.waiting import wait_until


@pytest.fixture
async def app(broker, tmp_path):
    async with running_app(broker.bootstrap_servers, tmp_path) as running:
        yield running


def entries(n: int) -> list[TimelineEntry]:
    return [
        TimelineEntry(kind="deploy.done", title=f"deploy {i}", actor="ci", detail={"i": i})
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "intruder",
    [ctx("t_other"), ctx(mode="saas"), ctx(project="p_other")],
    ids=["tenant", "mode", "project"],
)
async def test_memory_timeline_refuses_another_scope(intruder) -> None:
    owner = ctx()
    timeline = MemoryTimeline(owner.scope)
    [entry] = entries(1)
    await timeline.append(owner, "deploys", entry)
    with pytest.raises(ScopeViolation, match="Scope mismatch"):
        await timeline.append(intruder, "deploys", entry)
    with pytest.raises(ScopeViolation):
        await timeline.list_after(intruder, "deploys")
    assert await timeline.list_after(owner, "deploys") == [entry]


async def test_memory_timeline_pages_and_dedupes() -> None:
    owner = ctx()
    timeline = MemoryTimeline(owner.scope)
    made = entries(5)
    for entry in [*made, made[2]]:  # a retried append stores nothing twice
        await timeline.append(owner, "deploys", entry)
    assert await timeline.list_after(owner, "deploys", None, 2) == made[:2]
    assert await timeline.list_after(owner, "deploys", made[1].entry_id, 10) == made[2:]
    with pytest.raises(UnknownCursor):
        await timeline.list_after(owner, "deploys", entries(1)[0].entry_id)
    with pytest.raises(EventValidationError, match="`name`"):
        await timeline.append(owner, "bad/name", made[0])


async def test_the_route_selects_memory_or_durable_never_the_environment(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("SPINE_TIMELINE_BACKEND", "memory")  # must be ignored
    registry = await registry_at(tmp_path / "registry.db")
    in_memory, durable = ctx("t_mem"), ctx("t_disk")
    for c in (in_memory, durable):
        await route_to_sqlite(registry, c, tmp_path / "events.db")
    key = RouteKey(ResourceKind.EVENT_SPINE, "t_mem", "dev", "p_core", "lab")
    await registry.switch_route(key, "memory", {}, actor="test", reason="fast path")
    producer = EventSpineProducer(ProducerSettings(bootstrap_servers="127.0.0.1:1"), start=False)
    timelines = Timelines(registry, StoreFactory(), producer)
    try:
        first = await timelines.for_context(in_memory)
        assert isinstance(first, MemoryTimeline)
        assert await timelines.for_context(in_memory) is first  # one per scope
        assert isinstance(await timelines.for_context(durable), SpineTimeline)
        timelines.write_both = True
        assert isinstance(await timelines.for_context(durable), TeeTimeline)
        assert isinstance(await timelines.for_context(in_memory), MemoryTimeline)
        with pytest.raises(ScopeViolation):
            await first.append(durable, "deploys", entries(1)[0])
    finally:
        producer.close(0)
        await registry.store.close()


async def test_durable_path_stores_entries_through_the_spine(app: App) -> None:
    c = ctx()
    await app.route(c)
    await app.start_worker()
    timeline = await Timelines(app.registry, app.stores, app.producer).for_context(c)
    made = entries(3)
    for entry in made:
        await timeline.append(c, "deploys", entry)
    stored = await app.wait_stored(c, "timeline/deploys", 3)
    assert [e.record.event_type for e in stored] == ["timeline.deploy.done"] * 3
    assert await timeline.list_after(c, "deploys") == made
    assert await timeline.list_after(c, "deploys", made[0].entry_id) == made[1:]
    with pytest.raises(ScopeViolation):
        await timeline.list_after(ctx("t_other"), "deploys")


async def test_write_both_reads_memory_at_once_and_the_spine_later(app: App) -> None:
    c = ctx()
    await app.route(c)
    timeline = await Timelines(app.registry, app.stores, app.producer, write_both=True).for_context(
        c
    )
    assert isinstance(timeline, TeeTimeline)
    made = entries(4)
    for entry in made:
        await timeline.append(c, "incidents", entry)
    assert await timeline.list_after(c, "incidents") == made  # no worker yet: memory
    assert await timeline.durable.list_after(c, "incidents") == []
    await app.start_worker()

    async def durable_has_all() -> bool:
        return await timeline.durable.list_after(c, "incidents") == made

    await wait_until(durable_has_all, 30, message="entries stored by the sink")
