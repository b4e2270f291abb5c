"""The batch pipeline and its commit unit on in-memory records: every failure class, no broker.

Records come from a MemoryProducer (the real emit path) spread over two partitions;
the consumer is tests/support/memory_consumer.py (the PartitionConsumer seam that
aiokafka's consumer fills on the broker tests); the store is the real memory store
behind the fault wrapper of tests/support/faults.py (down, gated, failing on demand).
The sink's policy is RewindAndPause, the replay's WaitAndRetry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from event_spine.backends.memory.registry import MemoryRegistryStore
from event_spine.errors import ReplayFailed, StoreLayoutOutdated, StoreUnavailable
from event_spine.kafka.keys import partition_of
from event_spine.kafka.records import MemoryRecord
from event_spine.pipeline import (
    Backoff,
    Batch,
    BatchOutcome,
    BatchPipeline,
    BatchProcessor,
    BatchRetry,
    CommitUnit,
    DeadLetter,
    PipelineStats,
    RebalanceListener,
    RewindAndPause,
    WaitAndRetry,
)
from event_spine.pipeline.offsets import HeldMark
from event_spine.replay import ReplayConfig, Replayer, ReplayTarget
from event_spine.routing.cache import RouteCache
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.context import RequestContext
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.wire import decode_record
from event_spine.testing import MemoryProducer
from support.faults import FaultyFactory, FaultyStore
from support.memory_consumer import MemoryConsumer
from support.waiting import wait_until

LAB = RequestContext(tenant_id="t_unit", env="dev", mode="lab", project_id="p_unit")
OTHER = RequestContext(tenant_id="t_other", env="dev", mode="lab", project_id="p_unit")
TOPIC = "spine.events"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def stream_in(partition: int, tenant: str = LAB.tenant_id) -> str:
    """A stream id whose key the partitioner puts in ``partition`` (of two)."""
    return next(f"s/{n}" for n in range(100) if partition_of(tenant, f"s/{n}", 2) == partition)


@dataclass
class Owner:
    """The BatchOwner of these tests: keeps what it was handed; its settle can fail."""

    settled: list[BatchOutcome] = field(default_factory=list)
    committed_batches: list[Batch] = field(default_factory=list)
    #: Raised by settle while set (the dead-letter topic failing).
    fail_settle: Exception | None = None

    async def settle(self, outcome: BatchOutcome) -> None:
        if self.fail_settle is not None:
            raise self.fail_settle
        self.settled.append(outcome)

    def committed(self, batch: Batch, outcome: BatchOutcome) -> None:
        self.committed_batches.append(batch)


@dataclass
class Rig:
    producer: MemoryProducer
    registry: RoutingRegistry
    stores: FaultyFactory
    consumer: MemoryConsumer
    owner: Owner
    stats: PipelineStats
    pipeline: BatchPipeline | None = None

    def build(
        self,
        policy: Literal["rewind", "retry"] = "rewind",
        *,
        hold: bool = False,
        max_attempts: int = 3,
    ) -> BatchPipeline:
        processor = BatchProcessor(
            RouteCache(self.registry, ttl_s=0.0, miss_ttl_s=0.0),
            self.stores,
            max_event_bytes=4096,
            hold_on_missing_route=hold,
            max_attempts=max_attempts,
        )
        offsets = CommitUnit(self.stats)
        # 1-2 ms: a given-back partition is resumed at once (tests wait on the resume).
        backoff = Backoff(1, 2)
        backpressure = (
            RewindAndPause(offsets, backoff)
            if policy == "rewind"
            else WaitAndRetry(backoff, max_attempts, lambda what, cause: ReplayFailed(what))
        )
        self.pipeline = BatchPipeline(offsets, backpressure, self.owner, processor)
        self.pipeline.bind(self.consumer)
        return self.pipeline

    def emit(self, ctx: RequestContext, count: int, partition: int = 0) -> list[MemoryRecord]:
        start = len(self.producer.records)
        stream = stream_in(partition, ctx.tenant_id)
        for n in range(count):
            self.producer.emit_event(ctx, "unit.event", stream, {"n": n})
        records = self.producer.records[start:]
        self.consumer.append(records)
        return records

    async def feed(self) -> Batch:
        """What faststream does: poll, hand the batch over (the write may go on)."""
        assert self.pipeline is not None
        batch = Batch.of(self.consumer.poll())
        assert batch.records, "nothing to poll"
        await self.pipeline.submit(batch)
        return batch

    async def settle(self) -> None:
        assert self.pipeline is not None
        assert await self.pipeline.drain(30)

    async def after_resume(self) -> None:
        """Wait for the given-back partitions to resume, then feed and settle."""
        await wait_until(lambda: not self.consumer.paused, 10, 0.001, "partitions resumed")
        await self.feed()
        await self.settle()

    async def recover(self) -> None:
        """After the last batch was given back: the next one is given back too (it may
        have been fetched before the rewind), the one after it is written."""
        commits = list(self.consumer.commits)
        await self.after_resume()
        assert self.consumer.commits == commits
        await self.after_resume()

    async def route(self, ctx: RequestContext) -> None:
        await self.registry.set_route(
            ResourceRoute.for_scope(ctx, "event_spine", "memory"), actor="test"
        )

    async def store(self, ctx: RequestContext = LAB) -> FaultyStore:
        route = await self.registry.get_route(
            RouteKey.for_scope(ResourceKind.EVENT_SPINE, ctx.key())
        )
        store = await self.stores.event_store(route)
        assert isinstance(store, FaultyStore)
        return store

    async def stored(self, ctx: RequestContext = LAB, partition: int = 0) -> list[str]:
        store = await self.store(ctx)
        stream = stream_in(partition, ctx.tenant_id)
        return [e.event_id for e in await store.list_after(ctx.scope, stream, None, 1000)]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    stores = FaultyFactory()
    rig = Rig(
        MemoryProducer(partitions=2),
        RoutingRegistry(MemoryRegistryStore(), None),
        stores,
        MemoryConsumer(),
        Owner(),
        PipelineStats(),
    )
    await rig.route(LAB)
    yield rig
    if rig.pipeline is not None:
        await rig.pipeline.close()
    await stores.close()


def ids(records: list[MemoryRecord]) -> list[str]:
    return [decode_record(r.value or b"").event_id for r in records]


# -- commit after durable ----------------------------------------------------------------


async def test_a_batch_commits_its_ends_only_once_it_is_durable(rig: Rig) -> None:
    pipeline = rig.build()
    records = [*rig.emit(LAB, 3, partition=0), *rig.emit(LAB, 2, partition=1)]
    store = await rig.store()
    store.gate = asyncio.Event()
    await rig.feed()
    await store.writing.wait()
    assert rig.consumer.commits == []  # written is not durable yet: nothing committed
    store.gate.set()
    await rig.settle()
    assert rig.consumer.commits == [{P0: 3, P1: 2}]  # max offset + 1 per partition
    assert rig.stats.committed == {(TOPIC, 0): 3, (TOPIC, 1): 2}
    assert (rig.stats.written, rig.stats.commits) == (5, 1)
    assert await rig.stored(partition=0) + await rig.stored(partition=1) == ids(records)
    assert not pipeline.blocked


async def test_batch_n_plus_1_waits_for_n_and_commits_after_it(rig: Rig) -> None:
    rig.build()
    first = rig.emit(LAB, 2)
    store = await rig.store()
    store.gate = asyncio.Event()
    await rig.feed()
    await store.writing.wait()
    second = rig.emit(LAB, 2)
    next_submit = asyncio.ensure_future(rig.feed())  # prepared now, written after N
    await asyncio.wait({next_submit}, timeout=0.05)
    assert not next_submit.done()
    assert await rig.stored() == []
    store.gate.set()
    await next_submit
    await rig.settle()
    assert rig.consumer.commits == [{P0: 2}, {P0: 4}]
    assert await rig.stored() == ids(first + second)


async def test_a_commit_the_broker_refuses_is_counted_and_not_retried(rig: Rig) -> None:
    pipeline = rig.build()
    rig.emit(LAB, 2)
    rig.consumer.fail_commits = CommitFailedError("rebalanced")
    await rig.feed()
    await rig.settle()
    assert (rig.stats.commit_failures, rig.stats.retries, rig.stats.written) == (1, 0, 2)
    assert not pipeline.blocked  # the batch is durable: a redelivery is absorbed
    rig.consumer.fail_commits = None
    rig.emit(LAB, 1)
    await rig.feed()
    await rig.settle()
    assert rig.consumer.committed == {P0: 3}


# -- transient failures: the sink gives the batch back, a replay writes it again -----------


async def test_a_store_that_is_down_gets_the_batch_back_then_everything_once(rig: Rig) -> None:
    pipeline = rig.build()
    records = rig.emit(LAB, 4)
    rig.stores.down = True
    await rig.feed()
    await rig.settle()
    assert rig.consumer.commits == []
    assert rig.consumer.positions[P0] == 0  # rewound to the batch's first offset
    assert pipeline.blocked  # not ready until a batch is written again
    assert rig.stats.retries == 1
    assert "connection refused" in (rig.stats.last_error or "")
    rig.stores.down = False
    await rig.recover()
    assert rig.consumer.committed == {P0: 4}
    assert await rig.stored() == ids(records)
    assert (rig.stats.written, rig.stats.duplicates, rig.stats.retries) == (4, 0, 2)
    assert not pipeline.blocked


async def test_a_rebalance_while_backing_off_pauses_the_new_partitions(rig: Rig) -> None:
    pipeline = rig.build()
    rig.emit(LAB, 1)
    pipeline.backpressure = backpressure = RewindAndPause(pipeline.offsets, Backoff(60_000, 60_000))
    rig.stores.down = True
    await rig.feed()
    await rig.settle()
    assert rig.consumer.paused == {P0}
    rig.consumer.revoke(P0)
    rig.consumer.owned = {P0, P1}
    await RebalanceListener(pipeline, 1).on_partitions_assigned({P0, P1})
    assert rig.consumer.paused == {P0, P1}
    backpressure.close()


async def test_a_replay_waits_and_writes_the_same_batch_again(rig: Rig) -> None:
    pipeline = rig.build("retry", max_attempts=1_000)
    records = rig.emit(LAB, 3)
    store = await rig.store()
    rig.stores.down = True
    submitted = asyncio.ensure_future(rig.feed())
    await wait_until(lambda: store.refused_writes >= 2, 10, 0.001, "two refused writes")
    rig.stores.down = False
    await submitted
    await pipeline.flush()
    assert rig.consumer.commits == [{P0: 3}]
    assert rig.consumer.positions[P0] == 3  # never given back
    assert await rig.stored() == ids(records)
    assert rig.stats.retries >= 2
    assert (rig.stats.written, rig.stats.duplicates) == (3, 0)


async def test_a_replay_gives_up_after_max_attempts_with_nothing_committed(rig: Rig) -> None:
    pipeline = rig.build("retry", max_attempts=3)
    rig.emit(LAB, 2)
    rig.stores.down = True
    await rig.feed()
    with pytest.raises(ReplayFailed, match="failed 3 times in a row"):
        await pipeline.flush()
    assert rig.consumer.commits == []
    assert rig.stats.retries == 2  # the third failure gives up


# -- poison and dead letters ------------------------------------------------------------


async def test_poison_is_dead_lettered_and_committed_past(rig: Rig) -> None:
    rig.build()
    good = rig.emit(LAB, 3)
    poison = MemoryRecord(TOPIC, 0, 3, b"t_unit:s/1", b"not json")
    rig.consumer.append([poison])
    await rig.feed()
    await rig.settle()
    (outcome,) = rig.owner.settled
    assert [(d.reason, d.record) for d in outcome.dead_letters] == [("invalid_event", poison)]
    assert rig.stats.dead_lettered == {"invalid_event": 1}
    assert rig.consumer.committed == {P0: 4}  # past the poison
    assert await rig.stored() == ids(good)


async def test_dead_letters_that_cannot_be_published_hold_the_commit(rig: Rig) -> None:
    pipeline = rig.build()
    rig.emit(LAB, 1)
    rig.consumer.append([MemoryRecord(TOPIC, 0, 1, b"t_unit:s/1", b"poison")])
    rig.owner.fail_settle = BatchRetry(KafkaError("dead-letter topic unreachable"))
    await rig.feed()
    await rig.settle()
    assert rig.consumer.commits == []  # a dead letter not acked is not committed past
    assert rig.consumer.positions[P0] == 0
    assert pipeline.blocked
    rig.owner.fail_settle = None
    await rig.recover()
    assert rig.consumer.committed == {P0: 2}
    assert rig.stats.duplicates == 1  # the write before the failed publish, absorbed


# -- revoke, ownership, order across partitions --------------------------------------------


async def test_a_revoke_waits_for_the_batch_in_flight_which_commits_first(rig: Rig) -> None:
    pipeline = rig.build()
    rig.emit(LAB, 3)
    store = await rig.store()
    store.gate = asyncio.Event()
    await rig.feed()
    await store.writing.wait()
    revoke = asyncio.ensure_future(RebalanceListener(pipeline, 30).on_partitions_revoked({P0}))
    await asyncio.wait({revoke}, timeout=0.05)
    assert not revoke.done()  # the batch is still being written
    store.gate.set()
    await revoke
    assert rig.consumer.commits == [{P0: 3}]  # committed before the partition moved


async def test_a_partition_revoked_mid_batch_is_not_committed(rig: Rig) -> None:
    rig.build()
    rig.emit(LAB, 2, partition=0)
    rig.emit(LAB, 2, partition=1)
    store = await rig.store()
    store.gate = asyncio.Event()
    await rig.feed()
    await store.writing.wait()
    rig.consumer.revoke(P1)  # its next owner starts from the last commit
    store.gate.set()
    await rig.settle()
    assert rig.consumer.commits == [{P0: 2}]


async def test_a_failed_batch_sends_back_the_next_one_of_another_partition(rig: Rig) -> None:
    """Out-of-order completion: batch N+1 (partition 1) was prepared while batch N
    (partition 0) was written; N fails after its write, so N+1 is neither written
    ahead of it nor committed; both partitions are read again."""
    pipeline = rig.build()
    first = rig.emit(LAB, 2, partition=0)
    store = await rig.store()
    store.gate = asyncio.Event()
    await rig.feed()
    await store.writing.wait()
    second = rig.emit(LAB, 2, partition=1)
    next_submit = asyncio.ensure_future(rig.feed())
    rig.owner.fail_settle = BatchRetry(KafkaError("dead-letter topic unreachable"))
    store.gate.set()
    await next_submit
    await rig.settle()
    assert rig.consumer.commits == []
    assert (rig.consumer.positions[P0], rig.consumer.positions[P1]) == (0, 0)
    assert await rig.stored(partition=1) == []  # N+1 never written ahead of N
    assert rig.stats.retries == 2  # N given back, then N+1 with it
    rig.owner.fail_settle = None
    store.gate = None
    await rig.after_resume()  # N+1 was given back with N: nothing else is pending
    assert rig.consumer.committed == {P0: 2, P1: 2}
    assert await rig.stored(partition=0) == ids(first)
    assert await rig.stored(partition=1) == ids(second)
    assert not pipeline.blocked


# -- holds -------------------------------------------------------------------------------


async def test_a_held_partition_commits_up_to_its_held_event_and_drops_stale_batches(
    rig: Rig,
) -> None:
    pipeline = rig.build(hold=True)
    first = rig.emit(LAB, 2)
    held = rig.emit(OTHER, 1)  # no route yet: held (on_route_missing=hold)
    rest = rig.emit(LAB, 1)
    assert {r.partition for r in first + held + rest} == {0}
    await rig.feed()
    await rig.settle()
    assert rig.consumer.commits == [{P0: 2}]  # up to the held event only
    assert rig.consumer.positions[P0] == 2
    assert rig.stats.held == {"route_missing": 1}
    assert pipeline.offsets.held == {(TOPIC, 0): HeldMark(offset=2, last=3)}
    # A batch faststream fetched before the rewind (above the held batch): stale.
    late = rig.emit(LAB, 1)
    await pipeline.submit(Batch.of(late))
    await rig.settle()
    assert rig.consumer.commits == [{P0: 2}]
    assert await rig.stored() == ids(first)
    await rig.route(OTHER)
    rig.consumer.positions[P0] = 2  # the refetch after the rewind
    await rig.after_resume()
    assert rig.consumer.committed == {P0: 5}
    assert await rig.stored() == ids(first + rest + late)
    assert await rig.stored(OTHER) == ids(held)
    assert pipeline.offsets.held == {}


async def test_a_replay_cannot_hold_it_stops_after_committing_what_is_durable(rig: Rig) -> None:
    pipeline = rig.build("retry", hold=True)
    rig.emit(LAB, 2)
    rig.emit(OTHER, 1)
    await rig.feed()
    with pytest.raises(ReplayFailed, match="cannot take some events yet"):
        await pipeline.flush()
    assert rig.consumer.commits == [{P0: 2}]


# -- the commit unit alone -----------------------------------------------------------------


def test_the_commit_unit_commits_owned_partitions_never_past_a_held_event() -> None:
    consumer = MemoryConsumer()
    consumer.owned = {P0, P1}
    offsets = CommitUnit(PipelineStats(), consumer)
    ends = {(TOPIC, 0): 10, (TOPIC, 1): 7, (TOPIC, 2): 4}
    assert offsets.to_commit(ends, {(TOPIC, 1): 5}) == {P0: 10, P1: 5}
    offsets.held[(TOPIC, 1)] = HeldMark(offset=5, last=6)
    assert offsets.rewind({(TOPIC, 0): 8, (TOPIC, 1): 6, (TOPIC, 2): 1}) == {P0, P1}
    assert consumer.positions == {P0: 8, P1: 5}  # partition 2 is not ours: left alone
    refetch = MemoryRecord(TOPIC, 1, 5, None, None)
    stale = MemoryRecord(TOPIC, 1, 7, None, None)
    assert offsets.stale([stale]) == {(TOPIC, 1)}
    assert offsets.stale([refetch]) == set()
    assert offsets.held == {}  # read again from the held event: no longer held here


def test_a_batch_commits_max_offset_plus_one_per_partition() -> None:
    records = [
        MemoryRecord(TOPIC, 0, 4, None, None),
        MemoryRecord(TOPIC, 1, 9, None, None),
        MemoryRecord(TOPIC, 0, 5, None, None),
    ]
    batch = Batch.of(records)
    assert batch.ends == {(TOPIC, 0): 6, (TOPIC, 1): 10}
    assert batch.without({(TOPIC, 0)}) == Batch([records[1]], {(TOPIC, 1): 10})


async def test_a_store_error_is_given_back_like_a_retry() -> None:
    """A retriable error raised outside BatchRetry (opening a store) is a retry too."""
    error = StoreUnavailable("throttled", retry_after_s=0.25)
    consumer = MemoryConsumer([MemoryRecord(TOPIC, 0, 0, None, None)])
    offsets = CommitUnit(PipelineStats(), consumer)
    backoff = Backoff(1, 2)
    policy = RewindAndPause(offsets, backoff)
    pipeline = BatchPipeline(offsets, policy, Owner())
    assert not await pipeline._failed(consumer.poll(), error, 1)
    assert offsets.stats.last_error == repr(error)
    assert backoff.failing
    policy.close()


async def test_the_replayer_stops_on_events_its_target_holds_back(tmp_path: Path) -> None:
    """A replay's settle refuses held events (a store to migrate) and store errors: it
    must not commit past events it could not write."""
    config = ReplayConfig(
        kafka="127.0.0.1:1",  # never contacted: settle alone
        topic=TOPIC,
        name="unit",
        target=ReplayTarget.of_backend("sqlite", {"path": str(tmp_path / "t.db")}),
        include_unrouted=True,
    )
    replayer = Replayer(config)
    held = BatchOutcome()
    held.hold([MemoryRecord(TOPIC, 0, 7, None, None)], StoreLayoutOutdated("run spine migrate"))
    with pytest.raises(ReplayFailed, match=r"cannot take some events yet.*spine migrate"):
        await replayer.settle(held)
    failed = BatchOutcome()
    failed.dead_letters.append(
        DeadLetter(MemoryRecord(TOPIC, 0, 8, None, None), "store_error", RuntimeError("bug"))
    )
    with pytest.raises(ReplayFailed, match="failed to write 1 events"):
        await replayer.settle(failed)
    await replayer.settle(BatchOutcome())  # nothing held, nothing failed: commit
