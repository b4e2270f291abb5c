"""The store seams, side by side: what a backend implements, and nothing else.

- ``EventStore``: durable, idempotent, cursor-checkpointed events (its semantics and
  the shared implementation: ``base.py``; contract: tests/backends/contract.py and
  query_contract.py).
- ``RegistryStore``: where routes persist, with compare-and-set writes (contract:
  tests/backends/registry_contract.py).
- ``TabularStore``: key/value rows per scope and table (contract:
  tests/backends/tabular_contract.py).
- ``Migratable``: an event store that keeps a layout version ``spine migrate`` can
  bring forward.

Each backend package declares its three classes in the ``SPEC`` of its
``__init__.py`` (a ``BackendSpec``, ``spec.py``); ``factory.py`` builds them from
the spec, nothing else imports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from event_spine.backends.base import AppendResult
from event_spine.backends.keys import StreamCursor
from event_spine.schemas.query import EventPage, EventQuery, StreamPage
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

#: One tabular row: (key, value).
Row = tuple[str, dict[str, Any]]


@runtime_checkable
class Store(Protocol):
    """What every store has: a lifecycle (the factories open and close them)."""

    async def open(self) -> None:
        """Connect and create what the store needs (tables, indexes). Idempotent."""

    async def close(self) -> None:
        """Release connections."""


@runtime_checkable
class EventStore(Store, Protocol):
    """Durable, idempotent, cursor-checkpointed event storage for one backend."""

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the backend answers."""

    async def append_batch(self, events: Sequence[StoredEvent]) -> AppendResult:
        """Store events idempotently, then move each stream's watermark forward."""

    async def list_after(
        self, scope: Scope, stream_id: str, after_event_id: str | None = None, limit: int = 100
    ) -> list[StoredEvent]:
        """Up to ``limit`` visible events after ``after_event_id`` (None: from the start)."""

    async def get(self, scope: Scope, event_id: str) -> StoredEvent | None:
        """One stored event by id, or None."""

    async def cursor(self, scope: Scope, stream_id: str) -> StreamCursor | None:
        """The stream's watermark, or None if nothing was stored."""

    async def query(self, scope: Scope, q: EventQuery) -> EventPage:
        """One page of the visible events ``q`` selects in ``scope`` (see schemas.query)."""

    async def list_streams(
        self, scope: Scope, prefix: str | None = None, limit: int = 100, after: str | None = None
    ) -> StreamPage:
        """Up to ``limit`` streams of ``scope`` (starting with ``prefix``) in id order."""

    async def count_event_types(self, scope: Scope, stream_id: str) -> dict[str, int]:
        """How many visible events of each type the stream holds."""


@runtime_checkable
class Migratable(Protocol):
    """An event store with a layout version: ``spine migrate`` brings an older one forward."""

    async def migrate(self) -> str:
        """Bring the stored layout to this release's (idempotent); say what was done."""


@runtime_checkable
class RegistryStore(Store, Protocol):
    """Durable route storage with compare-and-set writes."""

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """The route at ``key``, or None."""

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, in any mode."""

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route."""

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Write ``route`` only if the stored version is ``expected_version`` (0: absent).

        Raises ConcurrentUpdate otherwise, so two concurrent switches never lose one.
        """


@runtime_checkable
class TabularStore(Store, Protocol):
    """Key/value rows per scope and table.

    Rows live under (scope, table, key); a scope never sees another scope's rows.
    Values are JSON objects. ``list_prefix`` pages in key order with ``after_key``.
    Table names and keys are checked before they reach a store
    (``tabular.service.validate_key``).
    """

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace one row."""

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row's value, or None."""

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row; True if it existed."""

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[Row]:
        """Rows whose key starts with ``prefix``, key > ``after_key``, in key order."""
