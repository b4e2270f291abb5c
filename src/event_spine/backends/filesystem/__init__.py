"""Filesystem backend: JSON lines and JSON files on local disk, for lab mode only.

Layout under ``root``::

    streams/<tenant>/<env>/<mode>/<project>/<quoted stream_id>/events.jsonl
    streams/.../cursor.json      the watermark, replaced atomically (write, fsync, rename)
    by-id/<tenant>/<env>/<mode>/<project>/<event_id>
                                 one line per stored event: the identity index for get()
    layout.json                  {"version": 2}; layout 1 (unmarked) kept one global
                                 ``ids/<first 2 hex>/<event_id>`` index: refused at
                                 open until ``spine migrate`` rebuilds the index
    routes/<kind>/<tenant>/<env>/<project>/<mode>.json   one route (the registry)
    tables/<tenant>/<env>/<mode>/<project>/<table>/<quoted key>   one row (tabular)

Every id that becomes a path component (tenant, env, mode, project, event id,
stream id, table name) is checked against its format on every read and write, and
the joined path must stay under ``root``: a hostile id cannot escape it.

A crash between appending lines and writing the id index can leave a line twice
after redelivery; readers keep the first line of each event id, so nothing is
returned twice. Refused in saas/enterprise/system modes: it is neither shared
between hosts nor backed up.
"""

from __future__ import annotations

from event_spine.backends.filesystem.config import FilesystemConfig
from event_spine.backends.spec import BackendSpec, StoreClasses
from event_spine.schemas.routes import BackendType

#: How queries run here, their indexes and costs (docs/backends.md, generated).
QUERY_COSTS = """\
Indexes: none. Every query reads the stream's whole events.jsonl once (as
list_after does), filters and orders it in memory; a prefix page lists the scope's
stream folders and reads each stream it visits (at most 100 per page). list_streams:
one folder listing and a cursor.json read per stream returned. Counts: one read of
the stream's file. Lab data only: fine up to a few hundred thousand events a stream.
"""


def _stores() -> StoreClasses[FilesystemConfig]:
    # Imported on first use, as every backend's are (the cloud ones need their SDK).
    from event_spine.backends.filesystem.events import FilesystemEventStore  # noqa: PLC0415
    from event_spine.backends.filesystem.registry import FilesystemRegistryStore  # noqa: PLC0415
    from event_spine.backends.filesystem.tabular import FilesystemTabularStore  # noqa: PLC0415

    return StoreClasses(
        events=FilesystemEventStore,
        registry=FilesystemRegistryStore,
        tabular=FilesystemTabularStore,
    )


SPEC = BackendSpec(
    backend=BackendType.FILESYSTEM,
    config=FilesystemConfig,
    stores=_stores,
    layout=__doc__ or "",
    query_costs=QUERY_COSTS,
    lab_only=True,
    path_key="root",
)

__all__ = ["QUERY_COSTS", "SPEC", "FilesystemConfig"]
