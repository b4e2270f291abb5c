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

from event_spine.backends.sqlite.config import SqliteConfig
from event_spine.backends.sqlite.events import SqliteEventStore
from event_spine.backends.sqlite.registry import SqliteRegistryStore
from event_spine.backends.sqlite.tabular import SqliteTabularStore

__all__ = [
    "SqliteConfig",
    "SqliteEventStore",
    "SqliteRegistryStore",
    "SqliteTabularStore",
]
