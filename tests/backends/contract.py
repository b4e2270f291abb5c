"""The EventStore contract: one suite, subclassed once per backend.

A subclass provides ``open_store``: an async fixture returning a zero-argument
async callable that opens a *new* client on the *same* data (a second worker, or
the same store after a restart). Set ``durable = False`` for stores that keep
nothing across clients (the in-memory store shares one instance instead).

A store with a persistent layout also provides ``legacy_store``: an async fixture
returning an async callable that writes the given events in the layout of the
release before scoped identities, and returns a zero-argument callable building a
new, unopened store on that data.
"""

from __future__ import annotations

import asyncio
import random
import string
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import pytest

from event_spine.backends import EventStore
from event_spine.backends.base import content_digest
from event_spine.errors import StoreLayoutOutdated, StorePermanentError, UnknownCursor
from event_spine.schemas import Scope, StoredEvent
from event_spine.schemas.formats import DEFAULT_MAX_EVENT_BYTES
from event_spine.schemas.wire import encode_record
from query_contract import QueryContract
from support.events import OTHER_TENANT, SCOPE, record, stored, stream_of

OpenStore = Callable[[], Awaitable[EventStore]]
LegacyStore = Callable[[list[StoredEvent]], Awaitable[Callable[[], EventStore]]]


def same_id(
    event: StoredEvent, position: int, scope: Scope | None = None, **changes: object
) -> StoredEvent:
    """Another event carrying ``event``'s id (in ``scope``, with ``changes``)."""
    record = event.record
    if scope is not None:
        changes["routing"] = msgspec.structs.replace(
            record.routing,
            tenant_id=scope.tenant_id,
            env=scope.env,
            mode=scope.mode,
            project_id=scope.project_id,
        )
    return StoredEvent(msgspec.structs.replace(record, **changes), position)


async def read_all(
    store: EventStore, scope: Scope, stream_id: str, page: int = 7
) -> list[StoredEvent]:
    """Page through a stream with last_event_id, as readers do."""
    out: list[StoredEvent] = []
    last: str | None = None
    while True:
        batch = await store.list_after(scope, stream_id, last, page)
        if not batch:
            return out
        out.extend(batch)
        last = batch[-1].event_id


class EventStoreContract(QueryContract):
    """Every backend must pass all of these (and the query contract)."""

    durable = True
    #: Offsets reused (a recreated topic) must raise, not drop an event silently.
    refuses_position_collisions = True
    #: Larger than any one write a backend makes (SQLite: 2048 rows per statement,
    #: DynamoDB: 25 items per request, Firestore: 500 writes per batch).
    large_batch = 2_500

    @pytest.fixture
    async def store(self, open_store: OpenStore) -> EventStore:
        return await open_store()

    @pytest.fixture
    async def legacy_store(self) -> LegacyStore | None:
        return None  # no persistent layout: nothing to migrate

    async def test_round_trip_keeps_every_field(self, store: EventStore) -> None:
        ts = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        payload = {
            "text": "naïve café ✓ 日本語 🚀",
            "nested": {"list": [1, 2.5, None, True, {"deep": ["x"]}], "empty": {}},
            "big_int": 2**53,
        }
        metadata = {
            "request_id": "req-1",
            "trace_id": "tr-1",
            "user_id": "u_1",
            "surface_id": "web",
            "run_id": "run-9",
            "custom": {"k": "v"},
        }
        original = stored(0, "orders/o-1:x@y.z", payload=payload, metadata=metadata, ts=ts)
        await store.append_batch([original])
        fetched = await store.get(SCOPE, original.event_id)
        assert fetched == original
        assert fetched.record.ts == ts
        assert await store.list_after(SCOPE, "orders/o-1:x@y.z") == [original]

    async def test_large_payload_near_the_size_limit(self, store: EventStore) -> None:
        rng = random.Random(7)
        base = stored(0, "big", payload={"blob": ""})
        room = DEFAULT_MAX_EVENT_BYTES - len(encode_record(base.record)) - 64
        blob = "".join(rng.choices(string.ascii_letters + string.digits, k=room))
        big = stored(0, "big", payload={"blob": blob})
        assert (
            DEFAULT_MAX_EVENT_BYTES - 128
            < len(encode_record(big.record))
            <= DEFAULT_MAX_EVENT_BYTES
        )
        await store.append_batch([big])
        assert (await store.get(SCOPE, big.event_id)) == big
        assert await store.list_after(SCOPE, "big") == [big]

    async def test_reappending_a_whole_batch_stores_nothing_twice(self, store: EventStore) -> None:
        events = stream_of(50)
        first = await store.append_batch(events)
        again = await store.append_batch(events)
        assert (first.written, first.duplicates) == (50, 0)
        assert (again.written, again.duplicates) == (0, 50)
        assert await read_all(store, SCOPE, "s1") == events

    async def test_partially_overlapping_batch_stores_only_the_new_events(
        self, store: EventStore
    ) -> None:
        events = stream_of(75)
        await store.append_batch(events[:50])
        result = await store.append_batch(events[25:])
        assert (result.written, result.duplicates) == (25, 25)
        assert await read_all(store, SCOPE, "s1") == events

    async def test_same_event_twice_in_one_batch_is_stored_once(self, store: EventStore) -> None:
        events = stream_of(3)
        result = await store.append_batch([*events, events[1]])
        assert (result.written, result.duplicates) == (3, 1)
        assert await read_all(store, SCOPE, "s1") == events

    async def test_paging_returns_each_event_once_in_order_across_many_batches(
        self, store: EventStore
    ) -> None:
        streams = {name: [] for name in ("a", "b", "c")}  # type: dict[str, list[StoredEvent]]
        position = 0
        for _ in range(12):
            batch = []
            for name, events in streams.items():
                for _ in range(random.Random(position).randint(1, 9)):
                    event = stored(position, name, payload={"i": len(events)})
                    position += 3  # positions are offsets: increasing, not contiguous
                    events.append(event)
                    batch.append(event)
            await store.append_batch(batch)
        for name, events in streams.items():
            for page in (1, 5, 100):
                got = await read_all(store, SCOPE, name, page)
                assert [e.event_id for e in got] == [e.event_id for e in events]
            cursor = await store.cursor(SCOPE, name)
            assert cursor is not None
            assert (cursor.position, cursor.last_event_id) == (
                events[-1].position,
                events[-1].event_id,
            )

    async def test_concurrent_appends_from_two_workers_leave_no_gap_or_duplicate(
        self, open_store: OpenStore
    ) -> None:
        # Two clients (a zombie and the new owner) write overlapping slices of the
        # same partition's events at once.
        events = stream_of(120, "shared")
        first, second = await open_store(), await open_store()
        chunks_a = [events[i : i + 20] for i in range(0, 100, 20)]
        chunks_b = [events[i : i + 30] for i in range(30, 120, 30)]

        async def write(store: EventStore, chunks: list[list[StoredEvent]]) -> None:
            for chunk in chunks:
                await store.append_batch(chunk)

        await asyncio.gather(write(first, chunks_a), write(second, chunks_b))
        for reader in (first, second):
            got = await read_all(reader, SCOPE, "shared", 11)
            assert [e.event_id for e in got] == [e.event_id for e in events]
            positions = [e.position for e in got]
            assert positions == sorted(set(positions))
        cursor = await first.cursor(SCOPE, "shared")
        assert cursor is not None
        assert cursor.position == events[-1].position

    async def test_a_batch_larger_than_one_write_is_stored_whole(self, store: EventStore) -> None:
        # Three streams interleaved as in a partition; positions are the offsets.
        names = ("x", "y", "z")
        events = [stored(i, names[i % 3], payload={"i": i}) for i in range(self.large_batch)]
        first = await store.append_batch(events)
        more = [stored(self.large_batch + i, names[i % 3]) for i in range(7)]
        again = await store.append_batch([*events, *more])
        assert (first.written, first.duplicates) == (len(events), 0)
        assert (again.written, again.duplicates) == (7, len(events))
        everything = events + more
        for name in names:
            expected = [e.event_id for e in everything if e.record.stream_id == name]
            got = await read_all(store, SCOPE, name, 1000)
            assert [e.event_id for e in got] == expected
            cursor = await store.cursor(SCOPE, name)
            assert cursor is not None
            assert cursor.last_event_id == expected[-1]

    async def test_watermark_only_moves_forward(self, store: EventStore) -> None:
        events = stream_of(10)
        await store.append_batch(events)
        await store.append_batch(events[:4])  # a zombie's late, older batch
        cursor = await store.cursor(SCOPE, "s1")
        assert cursor is not None
        assert (cursor.position, cursor.last_event_id) == (9, events[-1].event_id)

    async def test_a_new_client_reads_everything_back(self, open_store: OpenStore) -> None:
        if not self.durable:
            pytest.skip("this store keeps nothing across clients")
        writer = await open_store()
        events = stream_of(40, "durable")
        await writer.append_batch(events)
        await writer.close()
        reader = await open_store()
        assert await read_all(reader, SCOPE, "durable") == events
        assert (await reader.get(SCOPE, events[7].event_id)) == events[7]

    async def test_another_scope_never_sees_the_stream(self, store: EventStore) -> None:
        events = stream_of(5)
        await store.append_batch(events)
        for other in (
            OTHER_TENANT,
            SCOPE.model_copy(update={"mode": "saas"}),
            SCOPE.model_copy(update={"env": "prod"}),
            SCOPE.model_copy(update={"project_id": "p_other"}),
        ):
            assert await store.list_after(other, "s1") == []
            assert await store.cursor(other, "s1") is None
            # An event is identified by scope + id: in another scope the id is unknown.
            assert await store.get(other, events[0].event_id) is None
            with pytest.raises(UnknownCursor):
                await store.list_after(other, "s1", events[0].event_id)

    async def test_equal_ids_in_two_scopes_are_two_events(self, open_store: OpenStore) -> None:
        store = await open_store()
        mine = stored(0, "shared")
        theirs = same_id(mine, 1, OTHER_TENANT, payload={"theirs": True})
        later = same_id(mine, 2, SCOPE.model_copy(update={"env": "prod"}))
        first = await store.append_batch([mine, theirs])
        second = await store.append_batch([later])
        assert (first.written, first.duplicates, first.conflicts) == (2, 0, ())
        assert (second.written, second.duplicates, second.conflicts) == (1, 0, ())
        reader = await open_store()
        prod = SCOPE.model_copy(update={"env": "prod"})
        for scope, event in ((SCOPE, mine), (OTHER_TENANT, theirs), (prod, later)):
            assert await read_all(reader, scope, "shared") == [event]
            assert await reader.get(scope, mine.event_id) == event
            cursor = await reader.cursor(scope, "shared")
            assert cursor is not None
            assert (cursor.position, cursor.last_event_id) == (event.position, mine.event_id)
            # Each stream's cursor names its own event: paging after it works.
            assert await reader.list_after(scope, "shared", mine.event_id) == []

    async def test_same_id_same_content_in_one_scope_is_a_no_op(self, store: EventStore) -> None:
        original = stored(0, "s1", payload={"n": 1})
        # A producer retry: same content at a later offset, other delivery metadata.
        retry = same_id(original, 5, metadata={"request_id": "r2", "trace_id": "t2"})
        await store.append_batch([original])
        result = await store.append_batch([retry])
        assert (result.written, result.duplicates, result.conflicts) == (0, 1, ())
        assert await read_all(store, SCOPE, "s1") == [original]
        assert await store.get(SCOPE, original.event_id) == original

    @pytest.mark.parametrize("in_one_batch", [False, True])
    async def test_same_id_other_content_in_one_scope_is_a_conflict(
        self, store: EventStore, in_one_batch: bool
    ) -> None:
        original = stored(0, "s1", payload={"n": 1})
        clash = same_id(original, 1, payload={"n": 2})
        after = stored(2, "s1")
        if in_one_batch:
            result = await store.append_batch([original, clash, after])
            assert (result.written, result.duplicates) == (2, 0)
        else:
            await store.append_batch([original])
            result = await store.append_batch([clash, after])
            assert (result.written, result.duplicates) == (1, 0)
        (conflict,) = result.conflicts
        assert conflict.event is clash
        assert conflict.stored_digest == content_digest(original.record)
        assert conflict.incoming_digest == content_digest(clash.record)
        assert conflict.stored_digest != conflict.incoming_digest
        # The stored event is untouched; the batch's other events are stored.
        assert await read_all(store, SCOPE, "s1") == [original, after]
        assert await store.get(SCOPE, original.event_id) == original
        cursor = await store.cursor(SCOPE, "s1")
        assert cursor is not None
        assert (cursor.position, cursor.last_event_id) == (2, after.event_id)

    async def test_a_conflict_ending_a_batch_moves_no_watermark_onto_it(
        self, store: EventStore
    ) -> None:
        original = stored(0, "s1")
        await store.append_batch([original])
        result = await store.append_batch([same_id(original, 3, stream_id="s1", payload={})])
        assert len(result.conflicts) == 1
        cursor = await store.cursor(SCOPE, "s1")
        assert cursor is not None
        assert (cursor.position, cursor.last_event_id) == (0, original.event_id)

    async def test_a_store_in_the_old_layout_is_refused_until_migrated(
        self, legacy_store: LegacyStore | None
    ) -> None:
        if legacy_store is None:
            pytest.skip("this store has no persistent layout")
        mine = stream_of(3, "s1")
        theirs = stream_of(2, "s1", OTHER_TENANT, start=10)
        make = await legacy_store([*mine, *theirs])
        refused = make()

        async def first_use() -> None:
            await refused.open()  # refused here, or at the first use (cloud stores)
            await refused.list_after(SCOPE, "s1")

        with pytest.raises(StoreLayoutOutdated, match="spine migrate"):
            await first_use()
        await refused.close()
        migrator = make()
        assert "layout 2" in await migrator.migrate()  # type: ignore[attr-defined]
        assert "nothing to do" in await migrator.migrate()  # type: ignore[attr-defined]
        await migrator.close()
        store = make()
        await store.open()
        try:
            assert await read_all(store, SCOPE, "s1") == mine
            assert await read_all(store, OTHER_TENANT, "s1") == theirs
            assert await store.get(SCOPE, mine[1].event_id) == mine[1]
            reused = same_id(mine[0], 20, OTHER_TENANT)
            assert (await store.append_batch([reused])).written == 1
            assert await store.get(OTHER_TENANT, mine[0].event_id) == reused
        finally:
            await store.close()

    async def test_same_stream_id_in_two_tenants_stays_apart(self, store: EventStore) -> None:
        mine, theirs = stream_of(3, "shared-name"), stream_of(4, "shared-name", OTHER_TENANT)
        await store.append_batch([*mine, *theirs])
        assert await read_all(store, SCOPE, "shared-name") == mine
        assert await read_all(store, OTHER_TENANT, "shared-name") == theirs

    async def test_unknown_cursor_is_an_error_not_the_start(self, store: EventStore) -> None:
        await store.append_batch(stream_of(3))
        with pytest.raises(UnknownCursor, match="not in stream"):
            await store.list_after(SCOPE, "s1", record().event_id)

    async def test_cursor_from_another_stream_is_unknown(self, store: EventStore) -> None:
        a, b = stream_of(2, "a"), stream_of(2, "b", start=10)
        await store.append_batch([*a, *b])
        with pytest.raises(UnknownCursor):
            await store.list_after(SCOPE, "a", b[0].event_id)

    async def test_empty_stream_and_missing_event(self, store: EventStore) -> None:
        assert await store.list_after(SCOPE, "nothing-here") == []
        assert await store.cursor(SCOPE, "nothing-here") is None
        assert await store.get(SCOPE, record().event_id) is None

    async def test_limit_is_validated(self, store: EventStore) -> None:
        with pytest.raises(ValueError, match="limit"):
            await store.list_after(SCOPE, "s1", None, 0)

    async def test_ping_answers(self, store: EventStore) -> None:
        await store.ping()

    async def test_another_event_at_a_taken_position_is_refused_not_lost(
        self, store: EventStore
    ) -> None:
        if not self.refuses_position_collisions:
            pytest.skip("this store does not check position collisions")
        first = stored(5, "s1")
        await store.append_batch([first])
        with pytest.raises(StorePermanentError, match="position"):
            await store.append_batch([stored(5, "s1")])
        assert await store.list_after(SCOPE, "s1") == [first]
