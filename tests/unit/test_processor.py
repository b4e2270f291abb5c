"""The sink's batch processor on in-memory records: every failure class, no broker.

Records come from a MemoryProducer (the real emit path) or are built by hand for
poison; the store is the real memory store (mode lab) behind the fault wrapper of
tests/support/faults.py, which only injects what a server cannot answer on demand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from event_spine.backends.memory.registry import MemoryRegistryStore
from event_spine.errors import (
    BrokerUnavailable,
    ConcurrentUpdate,
    ConfigurationError,
    EventValidationError,
    ScopeViolation,
    StoreLayoutOutdated,
    StorePermanentError,
    StoreUnavailable,
)
from event_spine.kafka.records import MemoryRecord
from event_spine.pipeline.dead_letters import (
    EVENT_DIGEST,
    REASON,
    STORED_DIGEST,
    DeadLetter,
)
from event_spine.pipeline.processor import (
    BatchProcessor,
    BatchRetry,
    PreparedBatch,
    failure_class,
)
from event_spine.routing.cache import RouteCache
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.context import RequestContext
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.wire import decode_record
from event_spine.testing import MemoryProducer
from support.faults import FaultyFactory

LAB = RequestContext(tenant_id="t_unit", env="dev", mode="lab", project_id="p_unit")
OTHER = RequestContext(tenant_id="t_other", env="dev", mode="lab", project_id="p_unit")
SAAS = RequestContext(tenant_id="t_unit", env="prod", mode="saas", project_id="p_unit")


class FlakyRegistryStore(MemoryRegistryStore):
    """The registry store answering 'unavailable' while ``down`` (an injected fault)."""

    down = False

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        if self.down:
            raise StoreUnavailable("injected fault: registry unreachable", retry_after_s=0.5)
        return await super().load(key)


@dataclass
class Sink:
    registry_store: FlakyRegistryStore
    registry: RoutingRegistry
    stores: FaultyFactory
    producer: MemoryProducer

    def processor(self, *, max_attempts: int = 3, hold: bool = False) -> BatchProcessor:
        return BatchProcessor(
            RouteCache(self.registry, ttl_s=0.0, miss_ttl_s=0.0),
            self.stores,
            max_event_bytes=4096,
            hold_on_missing_route=hold,
            max_attempts=max_attempts,
        )

    async def route(self, ctx: RequestContext, backend: str = "memory") -> None:
        await self.registry.set_route(
            ResourceRoute.for_scope(ctx, "event_spine", backend), actor="test"
        )

    async def plant(self, ctx: RequestContext, backend: str) -> None:
        """A route the registry would refuse today (written before the rule existed)."""
        route = ResourceRoute.for_scope(ctx, "event_spine", backend, {"root": "/nowhere"})
        await self.registry_store.save(route, 0)

    def emit(self, ctx: RequestContext, count: int, stream: str = "s/1") -> list[MemoryRecord]:
        start = len(self.producer.records)
        for n in range(count):
            self.producer.emit_event(ctx, "unit.event", stream, {"n": n})
        return self.producer.records[start:]

    async def failing_write(
        self, ctx: RequestContext, error: Exception, *, count: int = 2, max_attempts: int = 3
    ) -> tuple[list[MemoryRecord], BatchProcessor, PreparedBatch]:
        """``count`` events of routed ``ctx`` prepared; their store then fails with ``error``."""
        await self.route(ctx)
        records = self.emit(ctx, count)
        processor = self.processor(max_attempts=max_attempts)
        prepared = await processor.prepare(records)
        self.stores.wrapped[0].fail_with = error
        return records, processor, prepared

    async def stored(self, ctx: RequestContext, stream: str = "s/1") -> list[str]:
        route = await self.registry.get_route(
            RouteKey.for_scope(ResourceKind.EVENT_SPINE, ctx.key())
        )
        store = await self.stores.event_store(route)
        return [e.event_id for e in await store.list_after(ctx.scope, stream, None, 1000)]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    registry_store = FlakyRegistryStore()
    stores = FaultyFactory()
    yield Sink(registry_store, RoutingRegistry(registry_store, None), stores, MemoryProducer())
    await stores.close()


def ids(records: list[MemoryRecord]) -> list[str]:
    return [decode_record(r.value or b"").event_id for r in records]


def reasons(letters: list[DeadLetter]) -> list[str]:
    return [letter.reason for letter in letters]


async def test_a_batch_is_written_in_order_and_a_redelivery_is_absorbed(sink: Sink) -> None:
    await sink.route(LAB)
    records = sink.emit(LAB, 10)
    outcome = await sink.processor().process(records)
    assert (outcome.written, outcome.duplicates, outcome.dead_letters) == (10, 0, [])
    assert await sink.stored(LAB) == ids(records)
    again = await sink.processor().process(records)
    assert (again.written, again.duplicates) == (0, 10)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json at all", "invalid_event"),
        (None, "invalid_event"),  # a tombstone
        (b'{"schema_version":1}', "invalid_event"),
        (b'{"schema_version":99,"event_id":"x"}', "unknown_schema_version"),
        (b"{" + b" " * 5000 + b"}", "oversize"),
    ],
    ids=["bad-json", "tombstone", "missing-fields", "unknown-version", "oversize"],
)
async def test_poison_is_dead_lettered_and_the_rest_written(
    sink: Sink, value: bytes | None, reason: str
) -> None:
    await sink.route(LAB)
    good = sink.emit(LAB, 2)
    poison = MemoryRecord("spine.events", 0, 2, b"t_unit:s/1", value)
    outcome = await sink.processor().process([good[0], poison, good[1]])
    assert reasons(outcome.dead_letters) == [reason]
    assert outcome.dead_letters[0].record is poison
    assert outcome.written == 2


async def test_an_event_invalid_on_the_wire_or_under_a_foreign_key_is_poison(sink: Sink) -> None:
    await sink.route(LAB)
    (rec,) = sink.emit(LAB, 1)
    assert rec.value is not None
    bad_type = rec.value.replace(b'"unit.event"', b'"bad type!"')
    records = [
        MemoryRecord(rec.topic, 0, 5, rec.key, bad_type),
        MemoryRecord(rec.topic, 0, 6, b"t_other:s/1", rec.value),  # key of another stream
    ]
    outcome = await sink.processor().process(records)
    assert reasons(outcome.dead_letters) == ["invalid_event", "invalid_event"]
    errors = [letter.error for letter in outcome.dead_letters]
    assert isinstance(errors[0], EventValidationError)
    assert errors[0].field == "event_type"
    assert isinstance(errors[1], EventValidationError)
    assert errors[1].field == "key"


async def test_a_scope_without_route_is_dead_lettered_others_are_written(sink: Sink) -> None:
    await sink.route(LAB)
    routed = sink.emit(LAB, 2)
    unrouted = sink.emit(OTHER, 2)
    outcome = await sink.processor().process([*routed, *unrouted])
    assert reasons(outcome.dead_letters) == ["route_missing", "route_missing"]
    assert outcome.written == 2
    assert await sink.stored(LAB) == ids(routed)


async def test_hold_stops_the_partition_at_the_first_unrouted_event(sink: Sink) -> None:
    await sink.route(LAB)
    first = sink.emit(LAB, 2)
    held = sink.emit(OTHER, 1)
    after = sink.emit(LAB, 2)
    outcome = await sink.processor(hold=True).process([*first, *held, *after])
    assert outcome.dead_letters == []
    assert outcome.held == {("spine.events", 0): held[0].offset}
    assert outcome.held_cause is not None
    assert outcome.written == 2  # nothing of the partition from the held event on
    assert await sink.stored(LAB) == ids(first)


async def test_a_route_to_a_store_that_is_not_durable_is_dead_lettered(sink: Sink) -> None:
    await sink.plant(SAAS, "memory")
    outcome = await sink.processor().process(sink.emit(SAAS, 2))
    assert reasons(outcome.dead_letters) == ["route_not_durable"] * 2
    assert outcome.written == 0


async def test_a_route_the_backend_spec_refuses_is_dead_lettered_as_invalid(sink: Sink) -> None:
    await sink.plant(SAAS, "filesystem")  # lab only
    outcome = await sink.processor().process(sink.emit(SAAS, 1))
    assert reasons(outcome.dead_letters) == ["route_invalid"]


async def test_an_event_id_reused_with_other_content_is_a_conflict(sink: Sink) -> None:
    await sink.route(LAB)
    event_id = "0190a4c5-7b1e-7c3d-9a55-2f7d0c1e9b10"
    sink.producer.emit_event(LAB, "unit.event", "s/1", {"n": 1}, event_id=event_id)
    sink.producer.emit_event(LAB, "unit.event", "s/1", {"n": 2}, event_id=event_id)
    sink.producer.emit_event(LAB, "unit.event", "s/1", {"n": 1}, event_id=event_id)
    outcome = await sink.processor().process(sink.producer.records)
    assert (outcome.written, outcome.duplicates) == (1, 1)
    (letter,) = outcome.dead_letters
    assert letter.reason == "event_id_conflict"
    assert letter.record.offset == 1
    headers = dict(letter.headers("w1"))
    assert headers[REASON] == b"event_id_conflict"
    assert headers[STORED_DIGEST] != headers[EVENT_DIGEST]


async def test_a_store_that_is_down_retries_the_whole_batch(sink: Sink) -> None:
    await sink.route(LAB)
    records = sink.emit(LAB, 3)
    processor = sink.processor()
    sink.stores.down = True
    with pytest.raises(BatchRetry) as retry:
        await processor.process(records)
    assert isinstance(retry.value.cause, StoreUnavailable)
    sink.stores.down = False
    outcome = await processor.process(records)
    assert (outcome.written, outcome.dead_letters) == (3, [])


async def test_a_registry_that_is_down_retries_with_its_retry_after(sink: Sink) -> None:
    await sink.route(LAB)
    records = sink.emit(LAB, 1)
    sink.registry_store.down = True
    with pytest.raises(BatchRetry) as retry:
        await sink.processor().prepare(records)
    assert isinstance(retry.value.cause, StoreUnavailable)
    assert retry.value.retry_after_s == 0.5


async def test_a_refused_event_is_retried_then_dead_lettered_alone(sink: Sink) -> None:
    await sink.route(LAB)
    records = sink.emit(LAB, 5)
    refused = ids(records)[2]
    sink.stores.reject = lambda e: e.event_id == refused
    processor = sink.processor(max_attempts=3)
    for _ in range(2):
        with pytest.raises(BatchRetry):
            await processor.process(records)
    outcome = await processor.process(records)
    assert reasons(outcome.dead_letters) == ["store_rejected"]
    assert outcome.dead_letters[0].attempts == 3
    assert outcome.written == 4
    assert await sink.stored(LAB) == [i for i in ids(records) if i != refused]


async def test_an_unexpected_error_is_retried_then_the_group_dead_lettered(sink: Sink) -> None:
    records, processor, prepared = await sink.failing_write(
        LAB, RuntimeError("a bug in a backend"), max_attempts=2
    )
    with pytest.raises(BatchRetry):
        await processor.write(prepared)
    outcome = await processor.process(records)
    assert reasons(outcome.dead_letters) == ["store_error", "store_error"]
    assert all(letter.attempts == 2 for letter in outcome.dead_letters)


@pytest.mark.parametrize(
    "error",
    [
        ConcurrentUpdate("lost a race"),  # a ConfigurationError, but retriable
        BrokerUnavailable("no answer"),
        StoreUnavailable("throttled", retry_after_s=2.0),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_retriable_errors_retry_the_batch_whatever_their_class(
    sink: Sink, error: Exception
) -> None:
    _, processor, prepared = await sink.failing_write(LAB, error, max_attempts=1)
    with pytest.raises(BatchRetry) as retry:
        await processor.write(prepared)
    assert retry.value.cause is error
    assert retry.value.retry_after_s == getattr(error, "retry_after_s", None)


async def test_a_store_refusing_the_route_at_write_dead_letters_the_group(sink: Sink) -> None:
    _, processor, prepared = await sink.failing_write(
        LAB, ConfigurationError("the store refuses the route")
    )
    outcome = await processor.write(prepared)
    assert reasons(outcome.dead_letters) == ["route_invalid", "route_invalid"]


async def test_a_store_found_outdated_at_write_holds_its_partition(sink: Sink) -> None:
    """An older layout is fixed by `spine migrate`: held, never dead-lettered."""
    records, processor, prepared = await sink.failing_write(
        LAB, StoreLayoutOutdated("written by an older release")
    )
    outcome = await processor.write(prepared)
    assert outcome.dead_letters == []
    assert outcome.held == {(records[0].topic, records[0].partition): records[0].offset}
    assert isinstance(outcome.held_cause, StoreLayoutOutdated)


async def test_a_scope_violation_is_isolated_as_such(sink: Sink) -> None:
    _, processor, prepared = await sink.failing_write(
        LAB, ScopeViolation("another tenant's stream"), count=1, max_attempts=1
    )
    outcome = await processor.write(prepared)
    assert reasons(outcome.dead_letters) == ["scope_violation"]


def test_the_failure_class_is_read_from_the_type() -> None:
    assert failure_class(StoreUnavailable("x")) == "transient"
    assert failure_class(ConcurrentUpdate("x")) == "transient"
    assert failure_class(StoreLayoutOutdated("x")) == "configuration"
    assert failure_class(StorePermanentError("x")) == "refused"
    assert failure_class(ScopeViolation("x")) == "refused"
    assert failure_class(KeyError("x")) == "unexpected"


async def test_dropping_partitions_forgets_their_records_and_dead_letters(sink: Sink) -> None:
    await sink.route(LAB)
    kept = sink.emit(LAB, 2)
    poison = MemoryRecord("spine.events", 1, 0, b"t_unit:s/2", b"nope")
    processor = sink.processor()
    prepared = await processor.prepare([*kept, poison])
    prepared.drop({("spine.events", 1)})
    outcome = await processor.write(prepared)
    assert (outcome.written, outcome.dead_letters) == (2, [])
