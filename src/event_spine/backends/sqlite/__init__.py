"""SQLite EventStore: the embedded default.

One connection on one dedicated thread per store (sqlite3 objects are bound to
their thread); WAL so readers in other processes never block the writer.

A batch is written as one multi-row ``INSERT`` statement (per 2048 events), which
commits on its own; a trigger moves each stream's watermark forward inside that
same statement, so a crash leaves either all of a statement's events and their
watermarks or none of them. Why one statement rather than ``executemany`` inside
``BEGIN``/``COMMIT``: sqlite3 releases the GIL around every statement step and
must take it back afterwards, waiting up to the interpreter's switch interval
(5 ms) while the event loop thread decodes the next batch. ``executemany`` steps
once per row: measured 1.9 ms per row next to a busy thread, against 11 us with
one statement per batch (``benchmarks/results/PROFILE.md``).

``list_after`` reads on the caller's thread through a read-only connection of its
own (``inline_reads``, on by default): in WAL mode a reader never waits for the
writer, and the hop to the database thread cost more than the page read itself
(PROFILE.md, round 3; figures in ``benchmarks/results/<date>-list_after.json``).
The event loop waits for the page meanwhile (a cold cache: for the disk). SQLite
is told not to wait there: a busy file (crash recovery, an exclusive-locking
connection) sends the read to the database thread, which waits up to
``busy_timeout_ms``. An in-memory database (``:memory:``) always reads there.
"""

from __future__ import annotations

from event_spine.backends.spec import BackendSpec, StoreClasses
from event_spine.backends.sqlite.config import SqliteConfig
from event_spine.schemas.routes import BackendType

#: How queries run here, their indexes and costs (docs/backends.md, generated).
QUERY_COSTS = """\
Indexes: ``spine_events_by_stream`` (scope, stream_id, position) serves one-stream
and prefix pages in order (a prefix page starts at the cursor's (stream_id,
position) row value), each bounded by its watermark row (primary key of
spine_cursors). ``spine_events_by_type`` (scope, stream_id, event_type, position)
serves one-type pages (a range already in position order) and counts (a covering,
index-only walk). A page of several types reads the stream index and filters rows.
Time filters: ``ts`` is ISO text with any UTC offset, compared in SQL as julianday()
seconds (millisecond precision) widened by 1 s, then exactly in Python; not
indexed, so a narrow window on a long stream scans its position range from the cursor.
Cost of the type index, measured (200k events, 100 streams x 10 types, batches of
1,000, a shared and loaded 2-core machine): writes with synchronous=FULL (default)
14.6k -> 9.2-10.8k events/s (-30%), with NORMAL 28-30k -> 17k (-40%); a one-type
page of 100: p50 1.6 -> 0.10 ms; counts of a 2,000-event stream: 2.3 -> 0.31 ms.
A route whose throughput matters more than type queries sets ``type_index: false``
(the same answers, read by scanning the stream). Existing files: the index is
created (CREATE INDEX IF NOT EXISTS) when this release first opens the file, holding
the write lock meanwhile (0.45 s per 200k events measured); the layout version stays
2 and older releases keep working with the index present.
"""


def _stores() -> StoreClasses[SqliteConfig]:
    # Imported when a route needs them: they import the backend's SDK.
    from event_spine.backends.sqlite.events import SqliteEventStore  # noqa: PLC0415
    from event_spine.backends.sqlite.registry import SqliteRegistryStore  # noqa: PLC0415
    from event_spine.backends.sqlite.tabular import SqliteTabularStore  # noqa: PLC0415

    return StoreClasses(
        events=SqliteEventStore, registry=SqliteRegistryStore, tabular=SqliteTabularStore
    )


SPEC = BackendSpec(
    backend=BackendType.SQLITE,
    config=SqliteConfig,
    stores=_stores,
    layout=__doc__ or "",
    query_costs=QUERY_COSTS,
    path_key="path",
)

__all__ = ["QUERY_COSTS", "SPEC", "SqliteConfig"]
