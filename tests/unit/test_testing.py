"""event_spine.testing: the real emit path into a list, then the real sink processor."""

from __future__ import annotations

from pathlib import Path

import pytest

from event_spine import (
    BackendNotDurable,
    EventTooLarge,
    EventValidationError,
    ProducerClosed,
    RequestContext,
    emit_event,
    request_context,
)
from event_spine.audit import emit_audit_event
from event_spine.audit.verify import verify_chain
from event_spine.emitters import emit_budget_event, emit_safety_decision
from event_spine.errors import ProducerNotConfigured
from event_spine.kafka.keys import partition_of
from event_spine.producers import ProducerSettings, get_default_producer
from event_spine.schemas import ResourceKind, RouteKey
from event_spine.testing import DeadLettered, LocalSink, MemoryProducer, installed

CTX = RequestContext(
    tenant_id="t_app", env="prod", mode="saas", project_id="p_app", request_id="req-7"
)
LAB = RequestContext(tenant_id="t_app", env="dev", mode="lab", project_id="p_app")


def test_emits_are_kept_as_the_records_the_sink_would_consume() -> None:
    producer = MemoryProducer(partitions=4)
    event_id = producer.emit_event(CTX, "order.created", "orders/o_1", {"amount_cents": 5})
    (rec,) = producer.records
    assert rec.key == b"t_app:orders/o_1"
    assert rec.partition == partition_of("t_app", "orders/o_1", 4)
    assert rec.offset == 0
    assert dict(rec.headers)["spine-schema"] == b"1"
    (event,) = producer.events
    assert (event.event_id, event.event_type) == (event_id, "order.created")
    assert event.metadata["request_id"] == "req-7"
    assert producer.stats.emitted == producer.stats.sent == 1
    assert producer.flush(0)


def test_it_refuses_what_the_real_producer_refuses() -> None:
    producer = MemoryProducer(ProducerSettings(bootstrap_servers="unused:0", max_event_bytes=1024))
    with pytest.raises(EventValidationError) as bad_type:
        producer.emit_event(CTX, "not a type", "s", {})
    assert bad_type.value.field == "event_type"
    with pytest.raises(EventValidationError) as no_ctx:
        producer.emit_event(None, "a.b", "s", {})
    assert no_ctx.value.field == "routing"
    with pytest.raises(EventValidationError) as bad_id:
        producer.emit_event(CTX, "a.b", "s", {}, event_id="not-a-uuid")
    assert bad_id.value.field == "event_id"
    with pytest.raises(EventValidationError) as not_json:
        producer.emit_event(CTX, "a.b", "s", {"x": object()})
    assert not_json.value.field == "payload"
    with pytest.raises(EventTooLarge):
        producer.emit_event(CTX, "a.b", "s", {"x": "y" * 2000})
    assert producer.records == []
    producer.close()
    with pytest.raises(ProducerClosed):
        producer.emit_event(CTX, "a.b", "s", {})


def test_installed_serves_emit_event_and_the_emitters_then_restores() -> None:
    producer = MemoryProducer()
    with installed(producer), request_context(CTX):
        emit_event(None, "order.created", "orders/o_1", {})
        emit_safety_decision(None, "block", "unsafe")
        emit_budget_event(None, "b_q3", "consumed", 12.5)
        emit_audit_event(CTX, "user.invited", surface="admin")
    assert [e.event_type for e in producer.events] == [
        "order.created",
        "safety.decision",
        "budget.consumed",
        "audit.user.invited",
    ]
    with pytest.raises(ProducerNotConfigured):
        get_default_producer()


async def test_the_local_sink_stores_what_was_emitted_readable_with_list_after() -> None:
    producer = MemoryProducer(partitions=3)
    ids = [producer.emit_event(CTX, "order.created", "orders/o_1", {"n": n}) for n in range(5)]
    emit_audit_event(CTX, "order.paid", surface="billing", producer=producer)
    async with LocalSink(producer) as sink:
        outcome = await sink.drain()
        assert (outcome.written, outcome.dead_letters) == (6, [])
        assert [e.event_id for e in await sink.list_after(CTX, "orders/o_1")] == ids
        assert [e.event_id for e in await sink.list_after(CTX, "orders/o_1", ids[2])] == ids[3:]
        # Only what was emitted since: a second drain writes the new event alone.
        later = producer.emit_event(CTX, "order.shipped", "orders/o_1", {})
        assert (await sink.drain()).written == 1
        assert (await sink.list_after(CTX, "orders/o_1", ids[-1]))[0].event_id == later
        # The audit event was linked into the scope's chain, as the live sink does.
        route = await sink.registry.get_route(
            RouteKey.for_scope(ResourceKind.EVENT_SPINE, CTX.key())
        )
        report = await verify_chain(await sink.stores.event_store(route), CTX.scope)
        assert report.ok
        assert report.checked == 1


async def test_a_sqlite_file_can_be_named_and_reopened(tmp_path: Path) -> None:
    producer = MemoryProducer()
    event_id = producer.emit_event(CTX, "a.b", "s/1", {})
    async with LocalSink(producer, path=tmp_path / "events.db") as sink:
        await sink.drain()
    async with LocalSink(MemoryProducer(), path=tmp_path / "events.db") as reopened:
        await reopened.registry.set_route(reopened.route_for(CTX.scope), actor="test")
        assert [e.event_id for e in await reopened.list_after(CTX, "s/1")] == [event_id]


async def test_the_memory_store_serves_mode_lab_only_as_in_production() -> None:
    producer = MemoryProducer()
    event_id = producer.emit_event(LAB, "a.b", "s/1", {})
    async with LocalSink(producer, backend="memory") as sink:
        await sink.drain()
        assert [e.event_id for e in await sink.list_after(LAB, "s/1")] == [event_id]
    producer.emit_event(CTX, "a.b", "s/1", {})
    async with LocalSink(producer, backend="memory") as sink:
        with pytest.raises(BackendNotDurable, match="only in mode 'lab'"):
            await sink.drain()


async def test_unexpected_dead_letters_fail_the_drain_with_the_reason() -> None:
    producer = MemoryProducer()
    producer.emit_event(CTX, "a.b", "s/1", {})
    async with LocalSink(producer, auto_route=False) as sink:
        with pytest.raises(DeadLettered, match="route_missing"):
            await sink.drain()
        assert [letter.reason for letter in sink.dead_letters] == ["route_missing"]
        producer.emit_event(CTX, "a.b", "s/1", {})
        outcome = await sink.drain(allow_dead_letters=True)
        assert [letter.reason for letter in outcome.dead_letters] == ["route_missing"]
