"""TabularStoreService: routed, scope-checked key/value access for one caller."""

from __future__ import annotations

from typing import Any, Final

from event_spine.backends.factory import TabularFactory
from event_spine.backends.seams import Row, TabularStore
from event_spine.errors import EventValidationError
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.context import RequestContext
from event_spine.schemas.formats import compile_anchored
from event_spine.schemas.routes import ResourceKind, RouteKey

TABLE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,62}$"
KEY_PATTERN: Final = r"^[A-Za-z0-9_.:@/-]{1,512}$"
TABLE_RE: Final = compile_anchored(TABLE_PATTERN)
KEY_RE: Final = compile_anchored(KEY_PATTERN)


def validate_key(table: str, key: str | None = None) -> None:
    """Table names are snake_case; keys are printable ids (no `|`, no spaces)."""
    if not TABLE_RE.match(table):
        raise EventValidationError("table", f"must match {TABLE_PATTERN}")
    if key is not None and not KEY_RE.match(key):
        raise EventValidationError("key", f"must match {KEY_PATTERN}")


class TabularStoreService:
    """Resolves the caller's ``tabular_store`` route (no fallback) and checks inputs."""

    def __init__(
        self, ctx: RequestContext, registry: RoutingRegistry, stores: TabularFactory
    ) -> None:
        self.ctx = ctx
        self.registry = registry
        self.stores = stores

    async def _store(self) -> TabularStore:
        c = self.ctx
        route = await self.registry.get_route(
            RouteKey.for_scope(ResourceKind.TABULAR_STORE, c.key())
        )
        return await self.stores.tabular_store(route)

    async def put(self, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace a row."""
        validate_key(table, key)
        await (await self._store()).put(self.ctx.scope, table, key, value)

    async def get(self, table: str, key: str) -> dict[str, Any] | None:
        """One row, or None."""
        validate_key(table, key)
        return await (await self._store()).get(self.ctx.scope, table, key)

    async def delete(self, table: str, key: str) -> bool:
        """Remove a row."""
        validate_key(table, key)
        return await (await self._store()).delete(self.ctx.scope, table, key)

    async def list_prefix(
        self, table: str, prefix: str = "", after_key: str | None = None, limit: int = 100
    ) -> list[Row]:
        """Rows by key prefix, paged with after_key."""
        validate_key(table)
        if not 1 <= limit <= 1000:
            raise ValueError(f"`limit` must be between 1 and 1000, got {limit}")
        return await (await self._store()).list_prefix(
            self.ctx.scope, table, prefix, after_key, limit
        )
