"""The query contract (EventStore.query / list_streams / count_event_types).

Mixed into EventStoreContract, so every backend's test module runs it on a real
server; the ``store`` fixture comes from there.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from event_spine.backends import EventStore
from event_spine.errors import InvalidQuery, ScopeViolation, UnknownCursor
from event_spine.schemas import EventQuery, Scope, StoredEvent
from support.events import OTHER_TENANT, SCOPE, stored, stream_of

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


async def walk(store: EventStore, scope: Scope, **query: object) -> list[list[StoredEvent]]:
    """Every page of a query, following next_cursor until it is None."""
    pages: list[list[StoredEvent]] = []
    after = None
    while True:
        page = await store.query(scope, EventQuery(after=after, **query))  # type: ignore[arg-type]
        pages.append(page.events)
        if page.next_cursor is None:
            return pages
        after = page.next_cursor
        assert len(pages) < 1000, "the walk does not end"


def flat(pages: list[list[StoredEvent]]) -> list[StoredEvent]:
    return [e for page in pages for e in page]


def typed(count: int, stream_id: str = "s1", scope: Scope = SCOPE) -> list[StoredEvent]:
    """Events cycling through types a, b, c, each a second later than the one before."""
    kinds = ("kind.a", "kind.b", "kind.c")
    return [
        stored(i, stream_id, scope, event_type=kinds[i % 3], ts=T0 + timedelta(seconds=i))
        for i in range(count)
    ]


class QueryContract:
    """query, list_streams and count_event_types, the same on every backend."""

    async def test_query_one_stream_in_position_order_with_paging(self, store: EventStore) -> None:
        events = stream_of(23, start=5, step=3)
        await store.append_batch(events)
        pages = await walk(store, SCOPE, stream_id="s1", limit=5)
        assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
        assert flat(pages) == events

    async def test_query_descending_reads_newest_first(self, store: EventStore) -> None:
        events = stream_of(12)
        await store.append_batch(events)
        pages = await walk(store, SCOPE, stream_id="s1", limit=5, descending=True)
        assert flat(pages) == events[::-1]

    async def test_filter_by_event_types(self, store: EventStore) -> None:
        events = typed(30)
        await store.append_batch(events)
        only_a = flat(await walk(store, SCOPE, stream_id="s1", event_types=("kind.a",), limit=4))
        assert only_a == [e for e in events if e.record.event_type == "kind.a"]
        a_or_c = flat(
            await walk(store, SCOPE, stream_id="s1", event_types=("kind.c", "kind.a"), limit=7)
        )
        assert a_or_c == [e for e in events if e.record.event_type != "kind.b"]
        desc = flat(
            await walk(
                store, SCOPE, stream_id="s1", event_types=("kind.b",), limit=3, descending=True
            )
        )
        assert desc == [e for e in events if e.record.event_type == "kind.b"][::-1]
        none = await store.query(SCOPE, EventQuery(stream_id="s1", event_types=("kind.z",)))
        assert (none.events, none.next_cursor) == ([], None)

    async def test_filter_by_time_since_inclusive_until_exclusive(self, store: EventStore) -> None:
        events = typed(20)
        # The same instants written with another UTC offset must compare as instants.
        plus2 = timezone(timedelta(hours=2))
        shifted = [
            stored(20 + i, "s1", ts=(T0 + timedelta(seconds=5 + i)).astimezone(plus2))
            for i in range(3)
        ]
        await store.append_batch(events + shifted)
        since, until = T0 + timedelta(seconds=5), T0 + timedelta(seconds=9)
        got = flat(await walk(store, SCOPE, stream_id="s1", since=since, until=until, limit=3))
        assert got == events[5:9] + shifted
        later = flat(await walk(store, SCOPE, stream_id="s1", since=T0 + timedelta(seconds=18)))
        assert later == events[18:]
        earlier = flat(
            await walk(store, SCOPE, stream_id="s1", until=T0 + timedelta(seconds=2), limit=1)
        )
        assert earlier == events[:2]
        both = flat(
            await walk(
                store,
                SCOPE,
                stream_id="s1",
                since=since,
                until=until,
                event_types=("kind.b",),
                descending=True,
            )
        )
        assert both == [e for e in events[5:9] if e.record.event_type == "kind.b"][::-1]

    async def test_prefix_orders_by_stream_then_position(self, store: EventStore) -> None:
        streams = ["orders/2", "orders/10", "orders/1", "order", "other", "orders0"]
        events = {s: stream_of(4, s, start=7, step=2) for s in streams}
        await store.append_batch([e for s in streams for e in events[s]])
        expected = [e for s in sorted(["orders/1", "orders/10", "orders/2"]) for e in events[s]]
        for limit in (1, 3, 5, 100):
            got = flat(await walk(store, SCOPE, stream_prefix="orders/", limit=limit))
            assert got == expected, limit
        desc = flat(await walk(store, SCOPE, stream_prefix="orders/", limit=5, descending=True))
        assert desc == expected[::-1]
        everything = flat(await walk(store, SCOPE, stream_prefix="", limit=6))
        assert everything == [e for s in sorted(streams) for e in events[s]]

    async def test_prefix_with_type_filter(self, store: EventStore) -> None:
        a, b = typed(9, "jobs/a"), typed(9, "jobs/b")
        await store.append_batch(a + b)
        got = flat(
            await walk(store, SCOPE, stream_prefix="jobs/", event_types=("kind.c",), limit=2)
        )
        assert got == [e for e in a + b if e.record.event_type == "kind.c"]

    async def test_cursor_paging_while_writes_continue(self, store: EventStore) -> None:
        """Each page is read between two appends: every event once, in order."""
        written: list[StoredEvent] = []
        seen: list[StoredEvent] = []
        after = None
        for batch in range(12):
            events = stream_of(9, start=batch * 9)
            await store.append_batch(events)
            written.extend(events)
            page = await store.query(SCOPE, EventQuery(stream_id="s1", after=after, limit=4))
            seen.extend(page.events)
            after = page.resume_cursor
        while True:
            page = await store.query(SCOPE, EventQuery(stream_id="s1", after=after, limit=4))
            seen.extend(page.events)
            after = page.resume_cursor
            if page.next_cursor is None:
                break
        assert seen == written

    async def test_a_reader_pages_while_a_writer_appends_concurrently(
        self, store: EventStore
    ) -> None:
        """A writer task appends while the reader follows resume cursors: the reader
        ends with every event exactly once, in position order."""
        batches = [stream_of(5, "race", start=b * 5) for b in range(20)]
        written = [e for b in batches for e in b]

        async def write() -> None:
            for batch in batches:
                await store.append_batch(batch)
                await asyncio.sleep(0)

        writer = asyncio.create_task(write())
        seen: list[StoredEvent] = []
        after = None
        deadline = asyncio.get_running_loop().time() + 120
        while len(seen) < len(written) and asyncio.get_running_loop().time() < deadline:
            page = await store.query(SCOPE, EventQuery(stream_id="race", after=after, limit=7))
            seen.extend(page.events)
            after = page.resume_cursor or after
            if not page.events:
                await asyncio.sleep(0.01)
        await writer
        assert seen == written

    async def test_a_selective_filter_comes_back_in_short_pages_with_cursors(
        self, store: EventStore
    ) -> None:
        """Backends filtering after reading stop at their scan budget (lowered here
        to 7 events) and return what they found with a cursor; SQL filters natively."""
        events = typed(40)
        await store.append_batch(events)
        store.scan_budget = 7  # type: ignore[attr-defined]
        pages = await walk(store, SCOPE, stream_id="s1", event_types=("kind.c",), limit=5)
        assert flat(pages) == [e for e in events if e.record.event_type == "kind.c"]
        desc = await walk(
            store, SCOPE, stream_prefix="", event_types=("kind.c",), limit=5, descending=True
        )
        assert flat(desc) == [e for e in events if e.record.event_type == "kind.c"][::-1]

    async def test_prefix_paging_while_writes_continue(self, store: EventStore) -> None:
        """A prefix walk returns everything visible when it began, exactly once, in
        (stream, position) order, whatever is appended meanwhile."""
        names = [f"live/{i:02d}" for i in range(6)]
        before = [e for n in names for e in stream_of(5, n)]
        await store.append_batch(before)
        seen: list[StoredEvent] = []
        after = None
        for round_ in range(100):
            page = await store.query(SCOPE, EventQuery(stream_prefix="live/", after=after, limit=3))
            seen.extend(page.events)
            more = [e for n in names for e in stream_of(1, n, start=5 + round_)]
            await store.append_batch(more)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        keys = [(e.stream_id, e.position) for e in seen]
        assert keys == sorted(set(keys)), "out of order or repeated"
        assert {e.event_id for e in before} <= {e.event_id for e in seen}

    async def test_a_caught_up_reader_resumes_with_the_resume_cursor(
        self, store: EventStore
    ) -> None:
        first = stream_of(3)
        await store.append_batch(first)
        page = await store.query(SCOPE, EventQuery(stream_id="s1", limit=10))
        assert (page.events, page.next_cursor) == (first, None)
        assert page.resume_cursor is not None
        later = stream_of(2, start=3)
        await store.append_batch(later)
        again = await store.query(SCOPE, EventQuery(stream_id="s1", after=page.resume_cursor))
        assert again.events == later

    async def test_after_a_plain_event_id_of_the_stream(self, store: EventStore) -> None:
        events = stream_of(6)
        await store.append_batch([*events, stored(0, "s2")])
        page = await store.query(SCOPE, EventQuery(stream_id="s1", after=events[2].event_id))
        assert page.events == events[3:]
        with pytest.raises(UnknownCursor):
            await store.query(SCOPE, EventQuery(stream_id="s2", after=events[2].event_id))
        with pytest.raises(UnknownCursor):
            await store.query(
                SCOPE, EventQuery(stream_id="s1", after="00000000-0000-7000-8000-000000000000")
            )

    async def test_limit_bounds_every_page(self, store: EventStore) -> None:
        await store.append_batch(stream_of(10))
        page = await store.query(SCOPE, EventQuery(stream_id="s1", limit=10))
        assert len(page.events) == 10
        one = await store.query(SCOPE, EventQuery(stream_id="s1", limit=1))
        assert len(one.events) == 1
        assert one.next_cursor is not None

    async def test_empty_and_unknown_streams(self, store: EventStore) -> None:
        page = await store.query(SCOPE, EventQuery(stream_id="nothing"))
        assert (page.events, page.next_cursor, page.resume_cursor) == ([], None, None)
        assert (await store.query(SCOPE, EventQuery(stream_prefix="nothing/"))).events == []
        assert (await store.list_streams(SCOPE, "nothing")).streams == []
        assert await store.count_event_types(SCOPE, "nothing") == {}

    async def test_another_scope_sees_nothing_and_its_cursors_are_refused(
        self, store: EventStore
    ) -> None:
        mine = stream_of(5, "shared")
        theirs = stream_of(5, "shared", scope=OTHER_TENANT)
        await store.append_batch(mine + theirs + stream_of(2, "theirs-only", OTHER_TENANT))
        assert flat(await walk(store, SCOPE, stream_prefix="", limit=2)) == mine
        other = await store.query(OTHER_TENANT, EventQuery(stream_id="shared", limit=2))
        assert other.events == theirs[:2]
        assert other.next_cursor is not None
        with pytest.raises(ScopeViolation):
            await store.query(SCOPE, EventQuery(stream_id="shared", after=other.next_cursor))
        with pytest.raises(UnknownCursor):
            await store.query(SCOPE, EventQuery(stream_id="shared", after=theirs[0].event_id))
        listed = await store.list_streams(OTHER_TENANT, limit=1)
        assert listed.next_cursor is not None
        with pytest.raises(ScopeViolation):
            await store.list_streams(SCOPE, after=listed.next_cursor)
        assert [s.stream_id for s in (await store.list_streams(SCOPE)).streams] == ["shared"]
        assert await store.count_event_types(SCOPE, "theirs-only") == {}

    async def test_a_cursor_of_another_query_shape_is_refused_by_name(
        self, store: EventStore
    ) -> None:
        await store.append_batch(stream_of(5, "a/1") + stream_of(5, "b/1"))
        page = await store.query(SCOPE, EventQuery(stream_id="a/1", limit=2))
        cursor = page.next_cursor
        assert cursor is not None
        bad = [
            EventQuery(stream_id="b/1", after=cursor),
            EventQuery(stream_id="a/1", after=cursor, descending=True),
            EventQuery(stream_prefix="b/", after=cursor),
            EventQuery(stream_id="a/1", after="not-a-cursor"),
            EventQuery(stream_id="a/1", after=cursor[:-3]),
        ]
        for q in bad:
            with pytest.raises(InvalidQuery) as caught:
                await store.query(SCOPE, q)
            assert caught.value.field == "after"
        prefix = await store.query(SCOPE, EventQuery(stream_prefix="a/", after=cursor))
        assert prefix.events == stream_of_ids(page.events, await store.list_after(SCOPE, "a/1"))

    async def test_invalid_queries_name_the_field(self, store: EventStore) -> None:
        naive = datetime(2026, 1, 1)
        cases: list[tuple[dict[str, object], str]] = [
            ({}, "stream_id"),
            ({"stream_id": "s", "stream_prefix": "s"}, "stream_id"),
            ({"stream_id": "bad id"}, "stream_id"),
            ({"stream_prefix": "/x"}, "stream_prefix"),
            ({"stream_id": "s", "event_types": ("1bad",)}, "event_types"),
            ({"stream_id": "s", "event_types": "kind.a"}, "event_types"),
            ({"stream_id": "s", "event_types": tuple(f"t{i}" for i in range(17))}, "event_types"),
            ({"stream_id": "s", "since": naive}, "since"),
            ({"stream_id": "s", "since": T0, "until": T0}, "until"),
            ({"stream_id": "s", "limit": 0}, "limit"),
            ({"stream_id": "s", "limit": 1001}, "limit"),
            ({"stream_id": "s", "after": ""}, "after"),
        ]
        for kwargs, field in cases:
            with pytest.raises(InvalidQuery) as caught:
                EventQuery(**kwargs)  # type: ignore[arg-type]
            assert caught.value.field == field, kwargs
            assert f"`{field}`" in str(caught.value)
        with pytest.raises(InvalidQuery, match="`limit`"):
            await store.list_streams(SCOPE, limit=0)
        with pytest.raises(InvalidQuery, match="`after`"):
            await store.list_streams(SCOPE, after="garbage")
        with pytest.raises(InvalidQuery, match="`stream_id`"):
            await store.count_event_types(SCOPE, "bad id")

    async def test_list_streams_pages_in_id_order_with_watermarks(self, store: EventStore) -> None:
        names = ["b/2", "a", "b/1", "b/10", "c"]
        batches = {n: stream_of(i + 1, n, start=10) for i, n in enumerate(names)}
        await store.append_batch([e for n in names for e in batches[n]])
        seen = []
        after = None
        while True:
            page = await store.list_streams(SCOPE, limit=2, after=after)
            assert len(page.streams) <= 2
            seen.extend(page.streams)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        assert [s.stream_id for s in seen] == sorted(names)
        for summary in seen:
            last = batches[summary.stream_id][-1]
            assert (summary.last_position, summary.last_event_id) == (
                last.position,
                last.event_id,
            )
        prefixed = await store.list_streams(SCOPE, prefix="b/")
        assert [s.stream_id for s in prefixed.streams] == ["b/1", "b/10", "b/2"]
        assert prefixed.next_cursor is None

    async def test_count_event_types(self, store: EventStore) -> None:
        await store.append_batch(typed(10) + typed(4, "s2"))
        assert await store.count_event_types(SCOPE, "s1") == {
            "kind.a": 4,
            "kind.b": 3,
            "kind.c": 3,
        }


def stream_of_ids(page: list[StoredEvent], stream: list[StoredEvent]) -> list[StoredEvent]:
    """The events of ``stream`` after the last one of ``page``."""
    return stream[len(page) :]


async def assert_reads_stop_at_the_watermark(
    store: EventStore, events: list[StoredEvent], watermark: int
) -> None:
    """``events`` (one stream, positions 0..n-1) are stored, but the stream's watermark
    was put back to ``watermark``: no read may return or count an event above it."""
    stream_id = events[0].stream_id
    visible = events[: watermark + 1]
    assert flat(await walk(store, SCOPE, stream_id=stream_id, limit=3)) == visible
    desc = flat(await walk(store, SCOPE, stream_id=stream_id, limit=3, descending=True))
    assert desc == visible[::-1]
    assert flat(await walk(store, SCOPE, stream_prefix="", limit=2)) == visible
    only = await store.query(SCOPE, EventQuery(stream_id=stream_id, event_types=("kind.a",)))
    assert only.events == [e for e in visible if e.record.event_type == "kind.a"]
    counts = await store.count_event_types(SCOPE, stream_id)
    assert sum(counts.values()) == len(visible)
    (summary,) = (await store.list_streams(SCOPE)).streams
    assert summary.last_position == watermark
