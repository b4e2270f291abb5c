"""Cloud Firestore (native mode) backend: events, routing registry and tabular rows.

Layout (collection ids are ``<collection_prefix><name>``; default prefix ``spine_``)::

    spine_events/{h}-{event_id}       one document per event:
        stream_key "<tenant>|<env>|<mode>|<project>|<stream_id>", position (int64,
        the Kafka offset), and body (bytes, the record's wire JSON) if at most
        max_inline_bytes, else parts (int: how many part documents)
    spine_events/{doc}/parts/{000..}  data: bytes, consecutive slices of the body
    spine_cursors/{quote(stream_key)} position, last_event_id: the stream's watermark
    spine_routes/{quote(route key)}   the route key fields, version, body (JSON)
    spine_route_versions/{quote(route key)}@{n}   a fence per route version n
    spine_rows/{blake2b-128(scope|table|key)}     scope_table, key, value (JSON bytes)

Why:
- Event document id = event id: dedupe is global and ``get`` is a point read.
  ``h`` (4 hex of a hash of the id) spreads writes: UUIDv7 ids begin with a
  timestamp, and close ids hotspot one tablet (~500 writes/s).
- Writes read the existing ids first (``get_all``, masked) and ``create()`` only
  the missing events. A writer that lost a race gets ALREADY_EXISTS, re-reads and
  retries what is still missing: a stored event never moves to another position.
  A new id at a position its stream already holds (reused offsets) is refused
  with StorePermanentError: one range query per stream per batch checks it.
  A commit holds at most 500 writes and about ``max_commit_bytes`` (requests are
  capped at 10 MiB); an event's parts go in the same commit as, and before, it.
- Documents are capped at 1 MiB: larger bodies (events of 1 MiB serialized, and
  up to one commit's size) are split into ``max_inline_bytes`` slices (``parts``).
- The watermark is its own document, written once per stream per batch (a
  document sustains ~1 write/s), after the events' commits, by a transaction that
  reads it and writes only a higher position (forward only, zombies fenced).
- Reads page with range filters (position > p AND position <= watermark), never
  with offsets or query cursors.
- Registry compare-and-set: one batch that ``create()``s the fence of version n+1,
  then sets the route. Batches are atomic, so of two writers expecting version n
  exactly one commits; no update-time precondition is needed.

Indexes a deployment must create (add ``--database=DB`` if not ``(default)``)::

    gcloud firestore indexes composite create --collection-group=spine_events \\
        --query-scope=COLLECTION --field-config=field-path=stream_key,order=ascending \\
        --field-config=field-path=position,order=ascending
    # descending queries (EventStore.query with descending=True):
    gcloud firestore indexes composite create --collection-group=spine_events \\
        --query-scope=COLLECTION --field-config=field-path=stream_key,order=ascending \\
        --field-config=field-path=position,order=descending
    gcloud firestore indexes composite create --collection-group=spine_rows \\
        --query-scope=COLLECTION --field-config=field-path=scope_table,order=ascending \\
        --field-config=field-path=key,order=ascending

and single-field exemptions (``gcloud firestore indexes fields update FIELD
--collection-group=GROUP --disable-indexes``): spine_events body and position
(increasing indexed values hotspot), parts data, spine_routes body, spine_rows
value. Credentials and project: the SDK's default chain (ADC, GOOGLE_CLOUD_PROJECT);
``FIRESTORE_EMULATOR_HOST`` points the client at an emulator.
"""

from __future__ import annotations

from event_spine.backends.firestore.config import MIB, FirestoreConfig
from event_spine.backends.firestore.layout import event_doc_id
from event_spine.backends.spec import BackendSpec, StoreClasses
from event_spine.schemas.routes import BackendType

#: How queries run here, their indexes and costs (docs/backends.md, generated).
QUERY_COSTS = """\
Indexes: one-stream pages use the (stream_key, position) composite index; descending
pages need one more a deployment must create::

    gcloud firestore indexes composite create --collection-group=spine_events \\
        --query-scope=COLLECTION --field-config=field-path=stream_key,order=ascending \\
        --field-config=field-path=position,order=descending

(the emulator needs none). Type and time filters run after reading (event documents
hold no type or ts field): a filtered page reads and bills every document it
examines, at most 10,000 per page. list_streams and prefix queries: a range on the
watermark documents' ``stream_key`` (automatic single-field index), one read per
stream returned; a prefix page then queries each stream it visits (at most 100).
Counts: the whole stream read once (one document read per event).
"""


def _stores() -> StoreClasses[FirestoreConfig]:
    # Imported when a route needs them: they import the backend's SDK.
    from event_spine.backends.firestore.events import FirestoreEventStore  # noqa: PLC0415
    from event_spine.backends.firestore.registry import FirestoreRegistryStore  # noqa: PLC0415
    from event_spine.backends.firestore.tabular import FirestoreTabularStore  # noqa: PLC0415

    return StoreClasses(
        events=FirestoreEventStore, registry=FirestoreRegistryStore, tabular=FirestoreTabularStore
    )


SPEC = BackendSpec(
    backend=BackendType.FIRESTORE,
    config=FirestoreConfig,
    stores=_stores,
    layout=__doc__ or "",
    query_costs=QUERY_COSTS,
    extra="firestore",
)

__all__ = ["MIB", "QUERY_COSTS", "SPEC", "FirestoreConfig", "event_doc_id"]
