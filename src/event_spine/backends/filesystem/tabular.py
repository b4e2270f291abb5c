"""TabularStore: one JSON file per row."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import orjson

from event_spine.backends.filesystem.config import FilesystemConfig
from event_spine.backends.filesystem.files import (
    _checked_scope,
    _inside,
    _mapped_errors,
    _replace_durably,
)
from event_spine.backends.spec import refuse_outside_lab
from event_spine.errors import EventValidationError
from event_spine.schemas.scope import Scope


class FilesystemTabularStore:
    """TabularStore as one JSON file per row (lab mode only, like the event store)."""

    def __init__(self, config: FilesystemConfig) -> None:
        self.root = Path(config.root) / "tables"

    async def open(self) -> None:
        """Create the folder."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        """Nothing held open."""

    def _folder(self, scope: Scope, table: str) -> Path:
        if not table or quote(table, safe="") != table or table in {".", ".."}:
            raise EventValidationError("table", "not a valid name: refused as a path component")
        return _inside(self.root, self.root.joinpath(*_checked_scope(scope.key()), table))

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace, atomically."""
        refuse_outside_lab(scope.mode)
        path = self._folder(scope, table) / quote(key, safe="")
        data = orjson.dumps(value)
        with _mapped_errors(self.root):
            await asyncio.to_thread(_replace_durably, path, data, fsync=True)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""
        path = self._folder(scope, table) / quote(key, safe="")

        def read() -> dict[str, Any] | None:
            with _mapped_errors(self.root):
                return orjson.loads(path.read_bytes()) if path.exists() else None

        return await asyncio.to_thread(read)

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row."""
        path = self._folder(scope, table) / quote(key, safe="")

        def remove() -> bool:
            with _mapped_errors(self.root):
                try:
                    path.unlink()
                except FileNotFoundError:
                    return False
                return True

        return await asyncio.to_thread(remove)

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows by key prefix, in key order."""
        folder = self._folder(scope, table)

        def read() -> list[tuple[str, dict[str, Any]]]:
            with _mapped_errors(self.root):
                if not folder.exists():
                    return []
                keys = sorted(
                    unquote(p.name) for p in folder.iterdir() if not p.name.startswith(".")
                )
                keys = [k for k in keys if k.startswith(prefix) and k > (after_key or "")][:limit]
                return [(k, orjson.loads((folder / quote(k, safe="")).read_bytes())) for k in keys]

        return await asyncio.to_thread(read)
