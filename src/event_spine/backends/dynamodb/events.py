"""DynamoEventStore: the layout and the write steps are in the package docstring."""

from __future__ import annotations

from event_spine.backends.base import (
    AppendResult,
    EventIdConflict,
    EventStoreBase,
    ScopeKey,
    StreamBatch,
    StreamCursor,
    StreamKey,
    conflicts_among,
    record_from_json,
    without_conflicts,
)
from event_spine.backends.dynamodb.layout import (
    Item,
    _event_items,
    _id_item,
    _key,
    _n,
    _s,
    _stream_pk,
    identity,
    identity_of,
)
from event_spine.backends.dynamodb.table import _all, _OneTable
from event_spine.errors import StoreLayoutOutdated, StorePermanentError
from event_spine.schemas.wire import StoredEvent

#: Version 2: id# and part# items keyed by scope + event_id (1, unmarked: event_id alone).
LAYOUT_VERSION = 2
_LAYOUT_KEY = _key("layout#events", 0)

Pending = tuple[str, StoredEvent]  # (ev# pk, event)


class DynamoEventStore(_OneTable, EventStoreBase):
    """EventStore on one DynamoDB table (layout in the package docstring)."""

    _table_field = "events_table"
    _sort_type = "N"

    _layout_checked = False

    async def _check_layout(self) -> None:
        """Refuse a table in layout 1; mark an empty one as layout 2. Checked on first
        use, not in open(): opening never needs the server (a table down at start is
        StoreUnavailable at the first write, which the sink retries)."""
        if self._layout_checked:
            return
        if not await self._marked():
            any_item = await self._table.call("scan", Limit=1, ConsistentRead=True)
            # Marked meanwhile: a concurrent first use (the scan may even have found
            # its marker) put it before writing anything. Found by the query contract.
            if any_item.get("Items") and not await self._marked():
                raise StoreLayoutOutdated(
                    f"DynamoDB {self._table.what} holds events in layout 1 (indexed by "
                    f"event_id alone); this release reads layout {LAYOUT_VERSION}. Migrate it "
                    f"first: `spine migrate 'dynamodb:<this route's config as JSON>'`."
                )
            await self._table.call("put_item", Item={**_LAYOUT_KEY, "v": _n(LAYOUT_VERSION)})
        self._layout_checked = True

    async def _marked(self) -> bool:
        marker = await self._table.get(_LAYOUT_KEY)
        return marker is not None and int(marker["v"]["N"]) >= LAYOUT_VERSION

    async def migrate(self) -> str:
        """Re-key a layout-1 table's id# and part# items by scope + event_id.

        Scans the table once; writes the new items before deleting the old ones, and
        marks the table last, so a run cut short can simply be rerun.
        """
        await self._table.open()
        marker = await self._table.get(_LAYOUT_KEY)
        if marker is not None and int(marker["v"]["N"]) >= LAYOUT_VERSION:
            return f"already at layout {LAYOUT_VERSION}: nothing to do"
        items = [item async for page in self._table.pages("scan") for item in page]
        # Layout 1 ids are global, so each id has one scope: its ev# item's.
        scope_of = {
            i["e"]["S"]: _head_ident(i).rpartition("|")[0]
            for i in items
            if i["pk"]["S"].startswith("ev#")
        }
        old = [
            i
            for i in items
            if i["pk"]["S"].startswith(("id#", "part#")) and "|" not in i["pk"]["S"]
        ]
        moved = []
        for item in old:
            prefix, _, event_id = item["pk"]["S"].partition("#")
            if event_id in scope_of:  # else an orphan of a crashed write: dropped
                moved.append({**item, "pk": _s(f"{prefix}#{scope_of[event_id]}|{event_id}")})
        await self._table.put_all(moved)
        await _all(self._table.call("delete_item", Key={"pk": i["pk"], "sk": i["sk"]}) for i in old)
        await self._table.call("put_item", Item={**_LAYOUT_KEY, "v": _n(LAYOUT_VERSION)})
        count = sum(1 for i in moved if i["pk"]["S"].startswith("id#"))
        return f"re-keyed {count} event(s); now at layout {LAYOUT_VERSION}"

    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        await self._check_layout()
        events = [(_stream_pk(g.key), e) for g in groups for e in g.events]
        new, conflicts = await self._new_events(events)
        # Order matters: bodies, then id# items, then watermarks (package docstring).
        await self._table.put_all([item for pk, e in new for item in _event_items(pk, e)])
        await self._table.put_all([_id_item(pk, e) for pk, e in new])
        await _all(self._advance(group) for group in without_conflicts(groups, conflicts))
        duplicates = len(events) - len(new) - len(conflicts)
        return AppendResult(len(new), duplicates, tuple(conflicts))

    async def _new_events(
        self, events: list[Pending]
    ) -> tuple[list[Pending], list[EventIdConflict]]:
        """Split off identities already stored (a repeat, or a conflict if the content
        differs); refuse a new identity at a taken position (reused offsets).

        One read phase for both: the id# items and the ev# items at the positions.
        Not atomic with the writes: two writers racing different events onto one
        position both pass (offsets reused later are caught).
        """
        taken: dict[tuple[str, int], str] = {}
        for pk, event in events:
            holder = taken.setdefault((pk, event.position), event.record.event_id)
            if holder != event.record.event_id:
                raise self._collision(event, holder)
        keys = [_key(f"id#{identity_of(e)}", 0) for _, e in events]
        keys += [_key(pk, position) for pk, position in taken]
        found = await self._table.get_all(keys, "pk, sk, e, s, p")
        stored = {i["pk"]["S"][3:]: i for i in found if i["pk"]["S"].startswith("id#")}
        holders = {(i["pk"]["S"], int(i["sk"]["N"])): i["e"]["S"] for i in found if "e" in i}
        new = [(pk, e) for pk, e in events if identity_of(e) not in stored]
        for pk, event in new:
            holder = holders.get((pk, event.position), event.record.event_id)
            if holder != event.record.event_id:  # same id: a crash before its id# item
                raise self._collision(event, holder)
        # A repeat at its own place (stream, position) is the same Kafka record
        # redelivered: only repeats elsewhere are compared (bodies read only then).
        moved = [
            e
            for pk, e in events
            if identity_of(e) in stored
            and (stored[identity_of(e)]["s"]["S"], int(stored[identity_of(e)]["p"]["N"]))
            != (pk, e.position)
        ]
        return new, await self._conflicts(moved, stored)

    async def _conflicts(
        self, repeats: list[StoredEvent], stored: dict[str, Item]
    ) -> list[EventIdConflict]:
        """Compare repeated identities with what they hold (a read only on repeats)."""
        if not repeats:
            return []
        places = {identity_of(e): stored[identity_of(e)] for e in repeats}
        heads = await self._table.get_all(
            [_key(i["s"]["S"], int(i["p"]["N"])) for i in places.values()]
        )
        records = {identity_of(e): e.record for e in await self._assemble(heads)}
        return conflicts_among((e, records.get(identity_of(e))) for e in repeats)

    def _collision(self, event: StoredEvent, holder: str) -> StorePermanentError:
        return StorePermanentError(
            f"DynamoDB {self._table.what}: event {event.record.event_id!r} collides with "
            f"{holder!r} at stream position {event.position}: were the topic's offsets "
            f"reset? Replay into a fresh table."
        )

    async def _advance(self, group: StreamBatch) -> None:
        last = group.watermark
        # Condition failed = the stored watermark is already at or past ours: fine.
        await self._table.conditional(
            "update_item",
            Key=_key(f"wm#{group.key.text()}", 0),
            UpdateExpression="SET #p = :p, #e = :e",
            ConditionExpression="attribute_not_exists(#p) OR #p < :p",
            ExpressionAttributeNames={"#p": "p", "#e": "e"},
            ExpressionAttributeValues={":p": _n(last.position), ":e": _s(last.record.event_id)},
        )

    async def _load_cursor(self, key: StreamKey) -> StreamCursor | None:
        await self._check_layout()
        item = await self._table.get(_key(f"wm#{key.text()}", 0))
        if item is None:
            return None
        return StreamCursor(key.stream_id, int(item["p"]["N"]), item["e"]["S"])

    async def _load_event(self, scope: ScopeKey, event_id: str) -> StoredEvent | None:
        await self._check_layout()
        index = await self._table.get(_key(f"id#{identity(scope, event_id)}", 0))
        if index is None:
            return None
        head = await self._table.get(_key(index["s"]["S"], int(index["p"]["N"])))
        if head is None:  # never written by _write: id# items follow their events
            raise StorePermanentError(
                f"DynamoDB {self._table.what}: event {event_id!r} is indexed but missing"
            )
        return (await self._assemble([head]))[0]

    async def _load_range(
        self, key: StreamKey, after_position: int, upto_position: int, limit: int
    ) -> list[StoredEvent]:
        return await self._load_slice(key, after_position, upto_position, limit, descending=False)

    async def _load_slice(
        self, key: StreamKey, low: int, high: int, limit: int, descending: bool
    ) -> list[StoredEvent]:
        """One Query per round trip, newest first when descending (ScanIndexForward)."""
        heads: list[Item] = []
        low, pk = low + 1, _s(_stream_pk(key))
        # Each round trip is a fresh range (a Query page stops at 1 MB).
        while len(heads) < limit and low <= high:
            values = {":pk": pk, ":low": _n(low), ":high": _n(high)}
            response = await self._table.call(
                "query",
                KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues=values,
                ConsistentRead=True,
                ScanIndexForward=not descending,
                Limit=limit - len(heads),
            )
            heads.extend(response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            if descending:
                high = int(last["sk"]["N"]) - 1
            else:
                low = int(last["sk"]["N"]) + 1
        return await self._assemble(heads)

    async def _load_streams(
        self, scope: ScopeKey, prefix: str, after: str | None, limit: int, descending: bool
    ) -> list[StreamCursor]:
        """A Scan of the table's wm# items of the scope: the table has no index by
        scope (docs/backends.md: what it costs), so every call reads the whole table."""
        await self._check_layout()
        head = f"wm#{'|'.join(scope)}|"
        found: list[StreamCursor] = []
        async for page in self._table.pages(
            "scan",
            FilterExpression="begins_with(pk, :head)",
            ProjectionExpression="pk, p, e",
            ExpressionAttributeValues={":head": _s(head + prefix)},
        ):
            found.extend(
                StreamCursor(i["pk"]["S"][len(head) :], int(i["p"]["N"]), i["e"]["S"]) for i in page
            )
        found.sort(key=lambda c: c.stream_id, reverse=descending)
        if after is not None:
            found = [
                c for c in found if (c.stream_id < after if descending else c.stream_id > after)
            ]
        return found[:limit]

    async def _assemble(self, heads: list[Item]) -> list[StoredEvent]:
        """Decode ev# items, fetching the part# items of multi-part bodies."""
        wanted = [
            _key(f"part#{_head_ident(head)}", i)
            for head in heads
            for i in range(1, int(head.get("n", {}).get("N", 1)))
        ]
        parts = {
            (item["pk"]["S"][5:], int(item["sk"]["N"])): item["b"]["B"]
            for item in (await self._table.get_all(wanted) if wanted else [])
        }
        events = []
        for head in heads:
            event_id, count = head["e"]["S"], int(head.get("n", {}).get("N", 1))
            try:
                rest = [parts[_head_ident(head), i] for i in range(1, count)]
            except KeyError:
                raise StorePermanentError(
                    f"DynamoDB {self._table.what}: a part of event {event_id!r} is missing"
                ) from None
            body = b"".join([head["b"]["B"], *rest])
            events.append(StoredEvent(record_from_json(body), int(head["sk"]["N"])))
        return events


def _head_ident(head: Item) -> str:
    """The identity of an ev# item: the scope in its pk, then its event id."""
    scope = head["pk"]["S"][3:].split("|")[:4]
    return identity(tuple(scope), head["e"]["S"])
