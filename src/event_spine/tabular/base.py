"""TabularStore: the seam for routed key/value tables.

Rows live under (scope, table, key); a scope never sees another scope's rows.
Values are JSON objects. ``list_prefix`` pages in key order with ``after_key``.
Implementations live in their backend modules (``backends/<name>.py``).
"""

from __future__ import annotations

import re
from typing import Any, Final, Protocol, runtime_checkable

from event_spine.errors import EventValidationError
from event_spine.schemas.scope import Scope

TABLE_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
KEY_RE: Final = re.compile(r"^[A-Za-z0-9_.:@/-]{1,512}$")

Row = tuple[str, dict[str, Any]]


def validate_key(table: str, key: str | None = None) -> None:
    """Table names are snake_case; keys are printable ids (no `|`, no spaces)."""
    if not TABLE_RE.match(table):
        raise EventValidationError("table", f"must match {TABLE_RE.pattern}")
    if key is not None and not KEY_RE.match(key):
        raise EventValidationError("key", f"must match {KEY_RE.pattern}")


@runtime_checkable
class TabularStore(Protocol):
    """Key/value rows per scope and table."""

    async def open(self) -> None:
        """Create what the store needs. Idempotent."""

    async def close(self) -> None:
        """Release resources."""

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
