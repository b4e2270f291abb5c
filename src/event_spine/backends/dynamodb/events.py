"""DynamoEventStore: the layout and the write steps are in the package docstring."""

from __future__ import annotations

from event_spine.backends.base import (
    AppendResult,
    EventStoreBase,
    ScopeKey,
    StreamBatch,
    StreamCursor,
    StreamKey,
    record_from_json,
)
from event_spine.backends.dynamodb.layout import (
    Item,
    _event_items,
    _id_item,
    _key,
    _n,
    _s,
    _stream_pk,
)
from event_spine.backends.dynamodb.table import _all, _OneTable
from event_spine.errors import StorePermanentError
from event_spine.schemas.wire import StoredEvent

Pending = tuple[str, StoredEvent]  # (ev# pk, event)


class DynamoEventStore(_OneTable, EventStoreBase):
    """EventStore on one DynamoDB table (layout in the package docstring)."""

    _table_field = "events_table"
    _sort_type = "N"

    async def _write(self, groups: list[StreamBatch]) -> AppendResult:
        events = [(_stream_pk(g.key), e) for g in groups for e in g.events]
        new = await self._new_events(events)
        # Order matters: bodies, then id# items, then watermarks (package docstring).
        await self._table.put_all([item for pk, e in new for item in _event_items(pk, e)])
        await self._table.put_all([_id_item(pk, e) for pk, e in new])
        await _all(self._advance(group) for group in groups)
        return AppendResult(len(new), len(events) - len(new))

    async def _new_events(self, events: list[Pending]) -> list[Pending]:
        """Drop ids already stored; refuse a new id at a taken position (reused offsets).

        One read phase for both: the id# items and the ev# items at the positions.
        Not atomic with the writes: two writers racing different events onto one
        position both pass (offsets reused later are caught).
        """
        taken: dict[tuple[str, int], str] = {}
        for pk, event in events:
            holder = taken.setdefault((pk, event.position), event.record.event_id)
            if holder != event.record.event_id:
                raise self._collision(event, holder)
        keys = [_key(f"id#{e.record.event_id}", 0) for _, e in events]
        keys += [_key(pk, position) for pk, position in taken]
        found = await self._table.get_all(keys, "pk, sk, e")
        stored = {i["pk"]["S"][3:] for i in found if i["pk"]["S"].startswith("id#")}
        holders = {(i["pk"]["S"], int(i["sk"]["N"])): i["e"]["S"] for i in found if "e" in i}
        new = [(pk, e) for pk, e in events if e.record.event_id not in stored]
        for pk, event in new:
            holder = holders.get((pk, event.position), event.record.event_id)
            if holder != event.record.event_id:  # same id: a crash before its id# item
                raise self._collision(event, holder)
        return new

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
        item = await self._table.get(_key(f"wm#{key.text()}", 0))
        if item is None:
            return None
        return StreamCursor(key.stream_id, int(item["p"]["N"]), item["e"]["S"])

    async def _load_event(self, scope: ScopeKey, event_id: str) -> StoredEvent | None:
        event = await self._load_by_id(event_id)
        return event if event is not None and event.record.routing.key() == scope else None

    async def _load_by_id(self, event_id: str) -> StoredEvent | None:
        index = await self._table.get(_key(f"id#{event_id}", 0))
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
        heads: list[Item] = []
        low, pk = after_position + 1, _s(_stream_pk(key))
        # Each round trip is a fresh range (a Query page stops at 1 MB).
        while len(heads) < limit and low <= upto_position:
            values = {":pk": pk, ":low": _n(low), ":high": _n(upto_position)}
            response = await self._table.call(
                "query",
                KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues=values,
                ConsistentRead=True,
                Limit=limit - len(heads),
            )
            heads.extend(response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            low = int(last["sk"]["N"]) + 1
        return await self._assemble(heads)

    async def _assemble(self, heads: list[Item]) -> list[StoredEvent]:
        """Decode ev# items, fetching the part# items of multi-part bodies."""
        wanted = [
            _key(f"part#{head['e']['S']}", i)
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
                rest = [parts[event_id, i] for i in range(1, count)]
            except KeyError:
                raise StorePermanentError(
                    f"DynamoDB {self._table.what}: a part of event {event_id!r} is missing"
                ) from None
            body = b"".join([head["b"]["B"], *rest])
            events.append(StoredEvent(record_from_json(body), int(head["sk"]["N"])))
        return events
