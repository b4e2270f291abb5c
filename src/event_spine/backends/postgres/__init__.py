"""PostgreSQL backend (asyncpg, one connection pool per store).

Data layout (``<s>`` = config ``schema``, ``<p>`` = config ``table_prefix``)::

    <s>.<p>events   event_id PK; UNIQUE INDEX <p>events_by_stream
                    (tenant_id, env, mode, project_id, stream_id, position);
                    event_type, ts (for operators), body BYTEA = the record's JSON
    <s>.<p>cursors  PK (tenant_id, env, mode, project_id, stream_id):
                    position, last_event_id, updated_at  -- the per-stream watermark
    <s>.<p>routes   PK (resource_kind, tenant_id, env, project_id, mode): version, body JSON
    <s>.<p>rows     PK (tenant_id, env, mode, project_id, tbl, key): value JSON

Why: the event_id key makes a redelivered event a no-op; the stream index serves
``list_after`` as one range scan (``position > p AND position <= watermark ORDER
BY position LIMIT n``, never OFFSET) and exposes two events claiming one offset
(refused: a silent skip would lose one). Ids are ``COLLATE "C"``: byte order is
code point order (what ``list_prefix`` promises), no locale cost. The body is
BYTEA, not JSONB: kept byte for byte (JSONB reorders keys, turns 1e300 into an
integer, refuses ``\\u0000``), not parsed by the server, TOAST-compressed; a 1 MiB
event needs no chunking (a BYTEA value holds up to 1 GB).

One batch is one transaction. A batch of new events (the steady state) is one
binary ``COPY`` of its rows straight into the events table, then one upsert of
every stream's watermark ``... WHERE excluded.position > cursors.position``
(forward only: fences a zombie writer). COPY has no ``ON CONFLICT``: a batch
holding an event already stored (a redelivery) or an event at a taken position
fails with a unique violation and rolls back, and is written again the staged
way, as are the next 32 batches (redeliveries come in runs, after a crash or a
rebalance): binary ``COPY`` of its rows into a session temporary table
``spine_events_staging`` (created when missing, emptied at commit), one
``INSERT ... SELECT`` from it ``ON CONFLICT (event_id, tenant_id, env, mode,
project_id) DO NOTHING`` (the command tag counts the rows written), then the
watermarks. An event at a taken position fails that INSERT with a unique
violation; the batch is then written again with both unique indexes as arbiters,
and the skipped event is refused (see below). Why COPY: binding the rows as
arrays cost the event loop about three times the CPU; why straight into the
table while the events are new: 51k against 42k events/s for 2,000-event batches
(no temporary heap written and scanned again); naming only the identity as
arbiter saves a third of the server's insert time (benchmarks/results/PROFILE.md,
round 3; the figures in ``benchmarks/results/<date>-sink.json`` and
``<date>-pg_write.json``). The staging table needs the TEMPORARY privilege on the
database (PUBLIC has it unless revoked); a role without it writes redelivered
batches with ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`` per
~8 MiB of bodies: same rows, same counts, slower.
Streams and events go in one fixed order, so overlapping writers never deadlock.

``open()`` creates missing tables under a transaction-scoped advisory lock
(concurrent opens must not race on the catalog). When they all exist it runs no
DDL, so a role without CREATE privilege works on tables a migration made with
the DDL of events.py, registry.py and tabular.py. Credentials never go in
``dsn``: PGPASSWORD or ~/.pgpass supply them. Behind PgBouncer in transaction
mode set ``statement_cache_size`` to 0.
"""

from __future__ import annotations

from event_spine.backends.postgres.config import PostgresConfig
from event_spine.backends.spec import BackendSpec, StoreClasses
from event_spine.schemas.routes import BackendType

#: How queries run here, their indexes and costs (docs/backends.md, generated).
QUERY_COSTS = """\
Indexes: ``{p}events_by_stream`` (scope, stream_id, position) serves one-stream and
prefix pages (a row-value range from the cursor, walked in page order; each row checked
against its watermark by a primary-key point read);
``{p}events_by_type`` (scope, stream_id, event_type, position) serves one-type pages
and counts. Ids are ``COLLATE "C"``: byte order, the order cursors use. Times are
``timestamptz``, compared exactly in SQL, not indexed (they filter the position range
read). Cost of the type index, measured (100k events, 100 streams x 10 types, local
server, shared machine): writes 9.5k -> 8.9k events/s (within noise); a one-type page
of 100: p50 3.6 -> 1.6 ms. Existing tables (no layout change): an open()
by a role that may create it runs CREATE INDEX IF NOT EXISTS, which blocks writes
while it builds; a role without DDL rights opens without it (a warning; reads stay
correct, slower) until ``spine migrate`` as the owner creates it. On a large table
create it beforehand with ``CREATE INDEX CONCURRENTLY "<prefix>events_by_type" ON
<events table> (tenant_id, env, mode, project_id, stream_id, event_type, position)``.
"""


def _stores() -> StoreClasses[PostgresConfig]:
    # Imported when a route needs them: they import the backend's SDK.
    from event_spine.backends.postgres.events import PostgresEventStore  # noqa: PLC0415
    from event_spine.backends.postgres.registry import PostgresRegistryStore  # noqa: PLC0415
    from event_spine.backends.postgres.tabular import PostgresTabularStore  # noqa: PLC0415

    return StoreClasses(
        events=PostgresEventStore, registry=PostgresRegistryStore, tabular=PostgresTabularStore
    )


SPEC = BackendSpec(
    backend=BackendType.POSTGRES,
    config=PostgresConfig,
    stores=_stores,
    layout=__doc__ or "",
    query_costs=QUERY_COSTS,
    extra="postgres",
)

__all__ = ["QUERY_COSTS", "SPEC", "PostgresConfig"]
