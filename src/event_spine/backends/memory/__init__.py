"""Memory backend: dicts in the process, for users' tests and the timeline's fast path.

Events by (scope, event_id) and as a position-sorted list per stream, watermarks by
stream, routes by route key, rows by (scope, table, key). Nothing survives the
process: not durable, so routes of durable kinds may name it only in mode ``lab``.
"""

from __future__ import annotations

from event_spine.backends.memory.config import MemoryConfig
from event_spine.backends.spec import BackendSpec, StoreClasses
from event_spine.schemas.routes import BackendType

#: How queries run here, their indexes and costs (docs/backends.md, generated).
QUERY_COSTS = """\
Indexes: none (a dict per scope and id, a position-sorted list per stream). One
stream: a binary search to the cursor, then type and time filters in Python over the
positions read (at most 10,000 examined per page, then a short page with a cursor).
Prefix pages and list_streams sort the scope's stream ids on each call. Counts: one
pass over the stream.
"""


def _stores() -> StoreClasses[MemoryConfig]:
    # Imported on first use, as every backend's are (the cloud ones need their SDK).
    from event_spine.backends.memory.events import MemoryEventStore  # noqa: PLC0415
    from event_spine.backends.memory.registry import MemoryRegistryStore  # noqa: PLC0415
    from event_spine.backends.memory.tabular import MemoryTabularStore  # noqa: PLC0415

    return StoreClasses(
        events=MemoryEventStore, registry=MemoryRegistryStore, tabular=MemoryTabularStore
    )


SPEC = BackendSpec(
    backend=BackendType.MEMORY,
    config=MemoryConfig,
    stores=_stores,
    layout=__doc__ or "",
    query_costs=QUERY_COSTS,
    durable=False,
    in_process=True,
)

__all__ = ["QUERY_COSTS", "SPEC", "MemoryConfig"]
