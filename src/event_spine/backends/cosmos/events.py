"""CosmosEventStore: the layout and the write protocol are in the package docstring."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from typing import Final, TypeVar, cast

from azure.cosmos.exceptions import (
    CosmosBatchOperationError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
)

from event_spine.backends.base import (
    AppendResult,
    DelegatedLifecycle,
    EventIdConflict,
    EventStoreBase,
    ScopeKey,
    StreamBatch,
    StreamCursor,
    StreamKey,
    conflicts_among,
)
from event_spine.backends.cosmos.config import CosmosConfig
from event_spine.backends.cosmos.container import _Container, _mapped, _store_error
from event_spine.backends.cosmos.identity import (
    check_layout,
    claim,
    claim_item,
    find_claim,
    migrate_layout,
)
from event_spine.backends.cosmos.layout import (
    _CURSOR_ID,
    Item,
    _chunks,
    _event_from,
    _event_item,
    _indexing,
)
from event_spine.errors import StorePermanentError, StoreUnavailable
from event_spine.schemas.wire import EventRecord, StoredEvent

# The package's logger, as when the backend was one module.
log = logging.getLogger("event_spine.backends.cosmos")

T = TypeVar("T")

_ATTEMPTS: Final = 20
# The batch's ids, any event in its position range, and the watermark: one round trip.
_STORED: Final = (
    "SELECT c.id, c.position, c.watermark, c._etag FROM c WHERE c.pk = @pk AND (c.id = @cursor"
    " OR ARRAY_CONTAINS(@ids, c.id) OR (c.position >= @lo AND c.position <= @hi))"
)
_EVENT_IN_STREAM: Final = (
    "SELECT c.position, c.body, c.bodyz FROM c WHERE c.pk = @pk AND c.id = @id"
)
# The stored bodies of repeated ids: read only when a batch repeats ids.
_BODIES: Final = (
    "SELECT c.id, c.position, c.body, c.bodyz FROM c"
    " WHERE c.pk = @pk AND ARRAY_CONTAINS(@ids, c.id)"
)
_RANGE: Final = (
    "SELECT c.position, c.body, c.bodyz FROM c WHERE c.pk = @pk"
    " AND c.position > @after AND c.position <= @upto ORDER BY c.position"
)
_RANGE_DESC: Final = _RANGE + " DESC"
# Every watermark item of a scope (and prefix): one per stream, across partitions.
_STREAMS: Final = (
    "SELECT c.pk, c.watermark, c.last_event_id FROM c WHERE c.id = @id AND STARTSWITH(c.pk, @head)"
)


def _batch_unsupported(exc: CosmosHttpResponseError) -> bool:
    """Did the server fail to understand the batch request itself (not its content)?"""
    message = str(exc).lower()
    hint = "x-ms-documentdb-partitionkey" in message or "not supported" in message
    return exc.status_code in (405, 501) or (exc.status_code in (400, 500) and hint)


async def _all(coroutines: Iterable[Awaitable[T]]) -> list[T]:
    """Await all (none left running in the background), then raise the first error."""
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast("list[T]", results)


class _BatchUnsupported(Exception):
    """The server cannot run transactional batches; switch to single creates."""


class CosmosEventStore(DelegatedLifecycle, EventStoreBase):
    """EventStore on one Cosmos container (layout in the package docstring)."""

    def __init__(self, config: CosmosConfig) -> None:
        self.config = config
        self._events = self._resource = _Container(
            config, config.events_container, _indexing("/body/?", "/bodyz/?")
        )
        self._limit = asyncio.Semaphore(config.max_concurrency)
        # None: not tried yet; the first batch runs alone so a refusal leaves no partial work.
        self._batch_ok: bool | None = None if config.transactional_batch else False
        self._layout_checked = False

    async def _check_layout(self) -> None:
        """Checked on first use, not in open() (as DynamoDB: opening needs no server)."""
        if not self._layout_checked:
            await check_layout(self._events)
            self._layout_checked = True

    async def migrate(self) -> str:
        """Bring a layout-1 container to layout 2 (``identity.migrate_layout``)."""
        return await migrate_layout(self._events)

    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        await self._check_layout()
        counts = await _all(self._write_group(group) for group in groups)
        conflicts = tuple(c for _, _, found in counts for c in found)
        return AppendResult(sum(c[0] for c in counts), sum(c[1] for c in counts), conflicts)

    async def _write_group(self, group: StreamBatch) -> tuple[int, int, list[EventIdConflict]]:
        pk = group.key.text()
        items = [_event_item(pk, event) for event in group.events]
        stored, cursor = await self._stored(pk, items)
        fresh = [e for e in group.events if e.event_id not in stored]
        # Claim each new identity before writing its event (layout 2, identity.py):
        # an identity another stream of the scope holds is a repeat or a conflict.
        held = await _all(self._claim(pk, event) for event in fresh)
        elsewhere = [(e, h) for e, h in zip(fresh, held, strict=True) if h is not None]
        taken = {e.event_id for e, _ in elsewhere}
        items = [item for item in items if item["id"] not in stored and item["id"] not in taken]
        try:
            written, duplicates = await self._create_events(pk, items) if items else (0, 0)
        except StorePermanentError:
            # Refused events may be dead-lettered: their claims must not outlive them
            # (a later event of the scope with that id would wait for a body forever).
            mine = [e for e in fresh if e.event_id not in taken]
            await _all(self._unclaim(pk, event) for event in mine)
            raise
        conflicts = await self._conflicts(pk, group, stored)
        conflicts += await self._conflicts_elsewhere(elsewhere)
        refused = {c.event.event_id for c in conflicts}
        settled = [e for e in group.events if e.event_id not in refused]
        # Only now, with every event of the group durable, may the watermark move.
        if settled:
            await self._advance(pk, settled[-1], cursor)
        repeats = len(stored) + len(elsewhere) - len(conflicts)
        return written, duplicates + repeats, conflicts

    async def _claim(self, pk: str, event: StoredEvent) -> Item | None:
        """None when the identity is this event's (claimed now or by an earlier
        attempt at the same place), else the claim of the stream that holds it."""
        async with self._limit:
            held = await claim(self._events, claim_item(pk, event))
        if held is None or (held["stream"], held["at"]) == (pk, event.position):
            return None
        return held

    async def _unclaim(self, pk: str, event: StoredEvent) -> None:
        """Delete this event's claim unless its event item exists (best effort)."""
        params = {"@pk": pk, "@id": event.event_id}
        if await self._events.query(_EVENT_IN_STREAM, params, pk, 1):
            return
        claim = claim_item(pk, event)
        async with self._limit:
            with _mapped(self._events.what), contextlib.suppress(CosmosHttpResponseError):
                await self._events.proxy.delete_item(claim["id"], partition_key=claim["pk"])

    async def _conflicts_elsewhere(
        self, elsewhere: list[tuple[StoredEvent, Item]]
    ) -> list[EventIdConflict]:
        """Compare events whose identity another place holds with the stored body there."""
        found: list[tuple[StoredEvent, EventRecord | None]] = []
        for event, held in elsewhere:
            params = {"@pk": held["stream"], "@id": event.event_id}
            items = await self._events.query(_EVENT_IN_STREAM, params, held["stream"], 1)
            if not items:
                # Claimed, body not written yet: that writer's batch is in flight or will
                # be redelivered (its offsets were not committed). Retry, never guess.
                raise StoreUnavailable(
                    f"{self._events.what}: event {event.event_id!r} is claimed by stream "
                    f"{held['stream']!r} at position {held['at']} but not written yet; retrying"
                )
            found.append((event, _event_from(items[0]).record))
        return conflicts_among(found)

    async def _conflicts(
        self, pk: str, group: StreamBatch, stored: dict[str, int]
    ) -> list[EventIdConflict]:
        """Repeated ids of the stream whose stored content differs. A repeat at its own
        position is the same Kafka record redelivered: only the others are read."""
        moved = sorted(
            e.event_id for e in group.events if stored.get(e.event_id, e.position) != e.position
        )
        if not moved:
            return []
        found = await self._events.query(_BODIES, {"@pk": pk, "@ids": moved}, pk)
        records = {item["id"]: _event_from(item).record for item in found}
        return conflicts_among((e, records.get(e.event_id)) for e in group.events)

    async def _stored(self, pk: str, items: list[Item]) -> tuple[dict[str, int], Item | None]:
        """Ids of ``items`` already stored (with their positions), and the watermark
        item (with its etag).

        Refuses when other events hold positions of ``items`` (reused offsets)."""
        positions = [item["position"] for item in items]
        ids = [item["id"] for item in items]
        params = {"@pk": pk, "@cursor": _CURSOR_ID, "@ids": ids}
        found = await self._events.query(
            _STORED, params | {"@lo": min(positions), "@hi": max(positions)}, pk
        )
        wanted = {item["position"]: item["id"] for item in items}
        stored = {hit["id"] for hit in found}
        for hit in found:
            mine = wanted.get(hit.get("position", -1))
            if mine is not None and mine != hit["id"] and mine not in stored:
                raise StorePermanentError(
                    f"{self._events.what}: event {mine!r} collides with {hit['id']!r} at "
                    f"position {hit['position']} of stream {pk!r}: were the topic's offsets "
                    f"reset? Replay into a fresh store."
                )
        cursor = next((hit for hit in found if hit["id"] == _CURSOR_ID), None)
        mine = set(ids)
        return {hit["id"]: hit.get("position") for hit in found if hit["id"] in mine}, cursor

    async def _create_events(self, pk: str, items: list[Item]) -> tuple[int, int]:
        chunks = _chunks(items)
        counts: list[tuple[int, int]] = []
        if self._batch_ok is None:
            # The first batch runs alone: a server that cannot parse it stored nothing.
            try:
                counts.append(await self._run_batch(pk, chunks[0]))
                self._batch_ok, chunks = True, chunks[1:]
            except _BatchUnsupported as exc:
                log.warning("%s: no transactional batch (%s); single creates", pk, exc)
                self._batch_ok = False
        if self._batch_ok:
            counts += await _all(self._run_batch(pk, chunk) for chunk in chunks)
        else:
            counts.append(await self._create_each(pk, [i for chunk in chunks for i in chunk]))
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    async def _run_batch(self, pk: str, chunk: list[Item]) -> tuple[int, int]:
        """One transactional batch of creates; on 409, drop the ids that exist and retry."""
        pending, written, duplicates = chunk, 0, 0
        for _ in range(_ATTEMPTS):
            if not pending:
                return written, duplicates
            conflict = await self._send_batch(pk, pending)
            if conflict is None:
                return written + len(pending), duplicates
            # Atomic on the service (the others answer 424); count what a lax server kept.
            done = {
                pending[i]["id"]
                for i, response in enumerate(conflict.operation_responses or [])
                if 200 <= int(response.get("statusCode", 0)) < 300
            }
            rest = [item for item in pending if item["id"] not in done]
            existing = (await self._stored(pk, rest))[0] if rest else set()
            pending = [item for item in rest if item["id"] not in existing]
            written, duplicates = written + len(done), duplicates + len(existing)
        raise StoreUnavailable(f"{self._events.what}: batch for {pk!r} kept conflicting")

    async def _send_batch(self, pk: str, items: list[Item]) -> CosmosBatchOperationError | None:
        """Run one batch; return its error if an id already exists (409)."""
        operations = [("create", (item,)) for item in items]
        async with self._limit:
            with _mapped(self._events.what):
                try:
                    await self._events.proxy.execute_item_batch(operations, partition_key=pk)
                except CosmosBatchOperationError as exc:
                    if exc.status_code == 409:
                        return exc
                    raise _store_error(exc, self._events.what) from exc
                except CosmosHttpResponseError as exc:
                    # Once batches worked, every failure is real: raised, never swallowed.
                    if self._batch_ok is not True and _batch_unsupported(exc):
                        raise _BatchUnsupported(str(exc).splitlines()[0]) from exc
                    raise
        return None

    async def _create_each(self, pk: str, items: list[Item]) -> tuple[int, int]:
        """Fallback without batches: concurrent creates; 409 means already stored."""

        async def create(item: Item) -> bool:
            async with self._limit:
                with _mapped(self._events.what):
                    try:
                        await self._events.proxy.create_item(item)
                    except CosmosResourceExistsError:
                        return False
            return True

        created = await _all(create(item) for item in items)
        written = sum(created)
        return written, len(items) - written

    async def _advance(self, pk: str, last: StoredEvent, current: Item | None) -> None:
        """Forward-only watermark: compare, then create or replace under the etag.

        ``current`` may be stale (read before the events were written): the etag
        catches that, and a lost race re-reads."""
        body = {"id": _CURSOR_ID, "pk": pk, "watermark": last.position}
        body["last_event_id"] = last.event_id
        for attempt in range(_ATTEMPTS):
            if attempt:
                current = await self._events.find(pk, _CURSOR_ID)
            if current is not None and current["watermark"] >= last.position:
                return  # a zombie's older batch, or a redelivery: nothing to move
            async with self._limit:
                if await self._events.swap(body, current):
                    return
            # Another writer moved it first: re-read and compare again.
        raise StoreUnavailable(f"{self._events.what}: watermark of {pk!r} kept racing")

    async def _load_cursor(self, key: StreamKey) -> StreamCursor | None:
        await self._check_layout()
        item = await self._events.find(key.text(), _CURSOR_ID)
        if item is None:
            return None
        return StreamCursor(key.stream_id, int(item["watermark"]), item["last_event_id"])

    async def _load_event(self, scope: ScopeKey, event_id: str) -> StoredEvent | None:
        await self._check_layout()
        held = await find_claim(self._events, scope, event_id)
        if held is None:
            return None
        # A claim without its event (a write cut short) is not an event yet: None.
        params = {"@pk": held["stream"], "@id": event_id}
        found = await self._events.query(_EVENT_IN_STREAM, params, held["stream"], 1)
        return _event_from(found[0]) if found else None

    async def _load_range(
        self, key: StreamKey, after_position: int, upto_position: int, limit: int
    ) -> list[StoredEvent]:
        return await self._load_slice(key, after_position, upto_position, limit, descending=False)

    async def _load_slice(
        self, key: StreamKey, low: int, high: int, limit: int, descending: bool
    ) -> list[StoredEvent]:
        pk = key.text()
        params = {"@pk": pk, "@after": low, "@upto": high}
        sql = _RANGE_DESC if descending else _RANGE
        return [_event_from(item) for item in await self._events.query(sql, params, pk, limit)]

    async def _load_streams(
        self, scope: ScopeKey, prefix: str, after: str | None, limit: int, descending: bool
    ) -> list[StreamCursor]:
        """A cross-partition query on the watermark items (docs/backends.md: its cost)."""
        head = "|".join(scope) + "|"
        params: dict[str, object] = {"@id": _CURSOR_ID, "@head": head + prefix}
        sql = _STREAMS
        if after is not None:
            sql += " AND c.pk < @after" if descending else " AND c.pk > @after"
            params["@after"] = head + after
        sql += " ORDER BY c.pk DESC" if descending else " ORDER BY c.pk"
        found = await self._events.query(sql, params, None, limit)
        return [
            StreamCursor(i["pk"][len(head) :], int(i["watermark"]), i["last_event_id"])
            for i in found
        ]
