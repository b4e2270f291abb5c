"""Azure Cosmos DB (NoSQL API) stores on the async SDK ``azure.cosmos.aio``.

Layout: one database, a container per resource kind, each partitioned on ``/pk``
(hash, partition key version 2: keys up to 2 KB hash whole).

- events: ``pk = "<tenant>|<env>|<mode>|<project>|<stream>"``; item ``id = event_id``
  (unique per pk, so only per stream), ``position`` (a number), the record JSON in
  ``body`` or, above 256 KiB, zlib + base64 in ``bodyz`` (so a 1 MiB event stays under
  the 2 MB item limit whatever its content; the SDK escapes non-ASCII up to 3x). The
  watermark is the item ``id = "_cursor"`` (``watermark``, ``last_event_id``) in the
  stream's own partition.
  Index all but ``/body/?`` and ``/bodyz/?``; ranges need ``/position`` (default).
- identity claims (same container, layout 2): ``pk = "id#<tenant>|<env>|<mode>|<project>|
  <event_id>"``, ``id = "id"``, ``stream`` (the event's pk), ``at`` (its position). Created,
  never upserted, *before* the event item: the create that succeeds decides which stream
  holds the identity, so an id is unique per scope as on every backend. A repeat found
  in its own stream, or a claim held by another place, is compared by content (the
  stored body is read only then): same content a duplicate, other content a conflict.
  A claim whose event is not written yet (a crash between the two, or a racing writer)
  makes a repeat elsewhere StoreUnavailable (retried) and ``get`` answer None; a write
  the server refuses (StorePermanentError: the sink may dead-letter those events)
  deletes the claims it made first, so no claim outlives a refused event.
- layout marker: ``pk = "layout"``, ``id = "events"``, ``version = 2``. Layout 1 (unmarked,
  no claims: ids unique per stream only) is refused with StoreLayoutOutdated at the first
  read or write until ``spine migrate`` claims every stored id (rerunnable; ids that layout
  1 let two streams of a scope share are listed, both stay readable in their streams).
- registry: ``pk = "<kind>|<tenant>|<env>|<project>"``, ``id = mode``, ``route``, ``version``.
- tabular: ``pk = "<tenant>|<env>|<mode>|<project>|<table>"``, ``id`` = base64url(key)
  (ids forbid ``/``, max 1023 bytes), ``key``, ``data`` (``/data/*`` not indexed).

Why: a stream is one logical partition, so its range read is a single-partition
query (``position > after ORDER BY position``, never OFFSET), its writes can be
transactional batches, and its watermark shares the partition where Cosmos keeps
writes in order: a reader that sees the watermark sees the events below it.
Writes: one query per stream finds which of its ids, or which events in its position
range, are stored; known ids are duplicates, another event at a wanted position
means reused offsets and is refused (StorePermanentError). The rest go as ``create``
operations, at most 100 / ~1.5 MB per batch: create never overwrites, so an event
never moves; a 409 (a racing writer) re-reads and retries the rest. If the server
cannot parse batches (405/501, or the answer names the partition-key header or says
"not supported") before any batch worked, the store falls back to concurrent single
creates (``max_concurrency``); any other batch failure is raised, never swallowed.
The watermark then moves forward only: read, compare, replace under the etag
(412, or 409 on first create: re-read). ``get`` by scope + id reads the claim, then
the event in its stream's partition: two single-partition queries, no fan-out. The
claims cost one more create per new event (each claim is its own logical partition,
so they spread evenly, never one hot index partition). Point reads are queries on
``c.pk`` and ``c.id`` (a few RU over ``read_item``, answered alike everywhere).
Positions are doubles in Cosmos: checked below 2**53. Credentials never sit in the
route config: the account key comes from the variable named by ``key_env``, else azure-identity's
``DefaultAzureCredential`` when installed.
"""

from __future__ import annotations

from event_spine.backends.cosmos.config import CosmosConfig
from event_spine.backends.cosmos.layout import Item
from event_spine.backends.spec import BackendSpec, StoreClasses
from event_spine.schemas.routes import BackendType

#: How queries run here, their indexes and costs (docs/backends.md, generated).
QUERY_COSTS = """\
Indexes: the default range index on ``/position`` (single-partition ORDER BY, both
directions). Type and time filters run after reading (the body is stored as text):
a filtered page costs the RUs of every item it examines, at most 10,000 per page.
list_streams and prefix queries: one cross-partition query on the watermark items
(``id = "_cursor"``, STARTSWITH on ``/pk``, ORDER BY ``/pk``): a fan-out over every
physical partition, billed per partition. Counts: the whole stream read once (the
emulator has no GROUP BY; real Cosmos could count in a single-partition GROUP BY).
"""


def _stores() -> StoreClasses[CosmosConfig]:
    # Imported when a route needs them: they import the backend's SDK.
    from event_spine.backends.cosmos.events import CosmosEventStore  # noqa: PLC0415
    from event_spine.backends.cosmos.registry import CosmosRegistryStore  # noqa: PLC0415
    from event_spine.backends.cosmos.tabular import CosmosTabularStore  # noqa: PLC0415

    return StoreClasses(
        events=CosmosEventStore, registry=CosmosRegistryStore, tabular=CosmosTabularStore
    )


SPEC = BackendSpec(
    backend=BackendType.COSMOS,
    config=CosmosConfig,
    stores=_stores,
    layout=__doc__ or "",
    query_costs=QUERY_COSTS,
    extra="cosmos",
)

__all__ = ["QUERY_COSTS", "SPEC", "CosmosConfig", "Item"]
