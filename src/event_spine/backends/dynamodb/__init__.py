"""DynamoDB backend (aioboto3): EventStore, RegistryStore and TabularStore.

One table per resource kind (names in ``DynamoConfig``), each keyed by a String
``pk`` and a sort key ``sk``; no secondary index, so every read is strongly
consistent (a GSI is not: a cursor could name an event a read cannot see yet).
Events table (``sk`` Number), four key spaces told apart by the ``pk`` prefix::

    ev#<tenant>|<env>|<mode>|<project>|<stream>  sk=position  e=event id,
        b=body part 0 (Binary), n=part count (only if > 1)
    part#<tenant>|<env>|<mode>|<project>|<event_id>  sk=1..n-1
                     b=the rest of a body larger than one item
    id#<tenant>|<env>|<mode>|<project>|<event_id>  sk=0
                     s=the event's ev# pk, p=its position
    wm#<tenant>|<env>|<mode>|<project>|<stream>  sk=0  p=watermark, e=its event id
    layout#events    sk=0       v=2 (layout 1, unmarked, keyed id#/part# by event_id
                     alone: refused at open until ``spine migrate`` re-keys it)

Registry (``sk`` String): pk=<kind>|<tenant>|<env>|<project>, sk=<mode>, v=version,
b=route JSON. Tabular (``sk`` String): pk=<tenant>|<env>|<mode>|<project>|<table>,
sk=row key, v=value JSON. ``|`` and ``#`` appear in no id format.

A stream is one partition key: a page is one Query on a position range, never offset
paging. The id# item finds an event by its identity (scope + id: cursors, get) and
dedupes by it (a producer retry can carry one event at two offsets); a repeated
identity with other content is a conflict (its stored body is read, only then).
One append_batch costs two item writes and two reads per event:

1. BatchGetItem the id# items and the ev# items at the batch's positions: found ids
   are duplicates; a new id at a taken position means reused offsets (a recreated
   topic) and is refused (StorePermanentError), never shadowed.
2. BatchWriteItem the ev#/part# items (25 a call, in parallel; UnprocessedItems
   retried with bounded exponential backoff and jitter, then StoreUnavailable).
3. BatchWriteItem the id# items, only now: an id# item means the event is durable
   (after a crash before it, the redelivery finds no id# item and rewrites).
4. One UpdateItem per stream, ``attribute_not_exists(p) OR p < :p``: the watermark
   only moves forward, which also fences a zombie writer.

Keys derive from the event, so a redelivery overwrites identical content. Step 1 is
check-then-write: writers racing different events onto one position could both pass
it, but racing writers of one partition (a zombie, its successor) carry the same
events at the same offsets.
Items hold 400 KB at most: a body is cut into ``PART_BYTES`` parts, part 0 in the
ev# item (most events are one item), the rest in part# items (1 MiB = 3 items).
Production creates the tables with IaC (the key schema above); ``create_tables``
(on-demand billing) is for development and tests. Credentials come from the SDK's
default chain, never from the config.
"""

from __future__ import annotations

from event_spine.backends.dynamodb.config import DynamoConfig
from event_spine.backends.dynamodb.layout import PART_BYTES, Item
from event_spine.backends.spec import BackendSpec, StoreClasses
from event_spine.schemas.routes import BackendType

#: How queries run here, their indexes and costs (docs/backends.md, generated).
QUERY_COSTS = """\
Indexes: none added (the table keeps no secondary index so every read is strongly
consistent). One stream: Query on the ev# partition by position range, ascending or
descending (ScanIndexForward); type and time filters run after reading, because ev#
items hold only the body: a filtered page reads (and bills) every item in the range
it examines, at most 10,000 per page. list_streams and prefix queries: a Scan of the
whole table for the scope's wm# items, sorted in the client; on the real service
that costs read units for every item in the table on each call (DynamoDB Local does
the same), so route streams meant to be listed to a SQL backend, or add a GSI on
the wm# items if this is needed at scale. Counts: the whole stream read once.
"""


def _stores() -> StoreClasses[DynamoConfig]:
    # Imported when a route needs them: they import the backend's SDK.
    from event_spine.backends.dynamodb.events import DynamoEventStore  # noqa: PLC0415
    from event_spine.backends.dynamodb.registry import DynamoRegistryStore  # noqa: PLC0415
    from event_spine.backends.dynamodb.tabular import DynamoTabularStore  # noqa: PLC0415

    return StoreClasses(
        events=DynamoEventStore, registry=DynamoRegistryStore, tabular=DynamoTabularStore
    )


SPEC = BackendSpec(
    backend=BackendType.DYNAMODB,
    config=DynamoConfig,
    stores=_stores,
    layout=__doc__ or "",
    query_costs=QUERY_COSTS,
    extra="dynamodb",
)

__all__ = ["PART_BYTES", "QUERY_COSTS", "SPEC", "DynamoConfig", "Item"]
