"""Hard-fail at emit: a producer with a RouteChecker refuses scopes without a route.

Real SQLite registry; the producer is not started (nothing here needs the broker:
the check runs before the event reaches the buffer).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from event_spine.errors import RouteNotFound
from event_spine.producers import EventSpineProducer, ProducerSettings, emit_event
from event_spine.producers.emit import set_default_producer
from event_spine.routing.checker import RouteChecker, RouteCheckSettings
from event_spine.routing.registry import AuditHook
from event_spine.schemas import RequestContext, ResourceRoute
from event_spine.timeline import TimelineEntry, emit_timeline_entry
from support.pipeline import registry_at
from support.waiting import wait_until


def scope(tenant: str, mode: str = "saas", env: str = "prod") -> RequestContext:
    return RequestContext(tenant_id=tenant, env=env, mode=mode, project_id="p_core")


ROUTED = scope("t_routed")


async def set_route(registry_db: Path, ctx: RequestContext) -> None:
    registry = await registry_at(registry_db)
    try:
        await registry.set_route(
            ResourceRoute.for_scope(ctx, "event_spine", "sqlite", {"path": "/tmp/x.db"}),
            actor="test",
        )
    finally:
        await registry.store.close()


def checker_for(registry_db: Path, audit: AuditHook | None = None, **kw: object) -> RouteChecker:
    fields: dict[str, object] = {
        "registry_backend": "sqlite",
        "registry_config": {"path": str(registry_db)},
    }
    return RouteChecker(RouteCheckSettings(**(fields | kw)), audit=audit)  # type: ignore[arg-type]


@pytest.fixture
def registry_db(tmp_path: Path) -> Path:
    return tmp_path / "registry.db"


@pytest.fixture
async def producer(registry_db: Path) -> Iterator[EventSpineProducer]:
    await set_route(registry_db, ROUTED)
    checker = checker_for(registry_db)
    settings = ProducerSettings(bootstrap_servers="127.0.0.1:1", topic="unused")
    made = EventSpineProducer(settings, start=False, route_checker=checker)
    yield made
    checker.close()


@pytest.mark.parametrize("mode", ["saas", "enterprise", "system"])
async def test_emit_raises_route_not_found_in_production_modes(producer, mode) -> None:
    assert producer.emit_event(ROUTED, "order.placed", "orders/o_1", {"n": 1})
    unrouted = scope("t_nobody", mode=mode)
    with pytest.raises(RouteNotFound) as caught:
        producer.emit_event(unrouted, "order.placed", "orders/o_1", {"n": 1})
    assert caught.value.tenant_id == "t_nobody"
    assert caught.value.mode == mode
    assert "t_nobody" in str(caught.value)
    # Refused events are not accepted (nothing to be dead-lettered later).
    assert producer.stats.emitted == 1


async def test_lab_and_dev_are_skipped_by_default_and_enforced_on_request(
    producer, registry_db
) -> None:
    for ctx in (scope("t_lab", mode="lab"), scope("t_dev", env="dev")):
        assert producer.emit_event(ctx, "order.placed", "orders/o_1", {"n": 1})
    strict = checker_for(registry_db, lab_and_dev="enforce")
    try:
        producer.route_checker = strict
        for ctx in (scope("t_lab", mode="lab"), scope("t_dev", env="dev")):
            with pytest.raises(RouteNotFound):
                producer.emit_event(ctx, "order.placed", "orders/o_1", {"n": 1})
    finally:
        strict.close()


async def test_a_route_added_later_is_accepted_after_the_miss_ttl(registry_db) -> None:
    checker = checker_for(registry_db, miss_ttl_s=0.2, refresh_s=0.2)
    late = scope("t_late")
    try:
        with pytest.raises(RouteNotFound):
            checker.check(late.key())
        await set_route(registry_db, late)

        def accepted() -> bool:
            try:
                checker.check(late.key())
            except RouteNotFound:
                return False
            return True

        await wait_until(accepted, 10, message="the new route seen by the checker")
    finally:
        checker.close()


async def test_answers_are_cached_the_registry_is_read_once_per_scope(producer) -> None:
    checker = producer.route_checker
    for n in range(1000):
        producer.emit_event(ROUTED, "order.placed", "orders/o_1", {"n": n})
    # One first-sight lookup; the refresher runs only every refresh_s (5 s).
    assert checker.lookups <= 2


async def test_module_level_emit_and_emitters_raise_too(producer) -> None:
    set_default_producer(producer)
    try:
        with pytest.raises(RouteNotFound):
            emit_event(scope("t_nobody"), "order.placed", "orders/o_1", {"n": 1})
        entry = TimelineEntry(kind="note.added", title="hello")
        with pytest.raises(RouteNotFound):
            emit_timeline_entry(producer, scope("t_nobody"), "notes", entry)
    finally:
        set_default_producer(None)
