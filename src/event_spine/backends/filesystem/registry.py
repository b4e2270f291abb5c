"""RegistryStore: one JSON file per route."""

from __future__ import annotations

import asyncio
from pathlib import Path

from event_spine.backends.filesystem.config import FilesystemConfig
from event_spine.backends.filesystem.files import (
    _checked_scope,
    _inside,
    _locked,
    _mapped_errors,
    _replace_durably,
)
from event_spine.errors import ConcurrentUpdate
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey


class FilesystemRegistryStore:
    """RegistryStore as one JSON file per route, written atomically (fsync, rename).

    Compare-and-set holds an exclusive lock file, so processes sharing the folder
    cannot lose each other's switches.
    """

    def __init__(self, config: FilesystemConfig) -> None:
        self.root = Path(config.root) / "routes"

    async def open(self) -> None:
        """Create the folder."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        """Nothing held open."""

    def _path(self, key: RouteKey) -> Path:
        scope = _checked_scope((key.tenant_id, key.env, key.mode, key.project_id))
        path = self.root.joinpath(
            key.resource_kind.value, scope[0], scope[1], scope[3], f"{key.mode}.json"
        )
        return _inside(self.root, path)

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""
        return await asyncio.to_thread(self._load_sync, key)

    def _load_sync(self, key: RouteKey) -> ResourceRoute | None:
        path = self._path(key)
        with _mapped_errors(self.root):
            if not path.exists():
                return None
            return ResourceRoute.model_validate_json(path.read_bytes())

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode."""

        def read() -> list[ResourceRoute]:
            _checked_scope((tenant_id, env, "lab", project_id))
            folder = self.root.joinpath(resource_kind.value, tenant_id, env, project_id)
            with _mapped_errors(self.root):
                return [
                    ResourceRoute.model_validate_json(p.read_bytes())
                    for p in sorted(folder.glob("*.json"))
                ]

        return await asyncio.to_thread(read)

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route."""

        def read() -> list[ResourceRoute]:
            with _mapped_errors(self.root):
                return [
                    ResourceRoute.model_validate_json(p.read_bytes())
                    for p in sorted(self.root.glob("*/*/*/*/*.json"))
                ]

        return await asyncio.to_thread(read)

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Compare-and-set under the folder's lock."""

        def write() -> None:
            with _mapped_errors(self.root):
                self.root.mkdir(parents=True, exist_ok=True)
                with _locked(self.root / ".lock"):
                    current = self._load_sync(route.key())
                    if (current.version if current else 0) != expected_version:
                        raise ConcurrentUpdate(
                            f"{route.describe()} changed since it was read "
                            f"(expected version {expected_version})"
                        )
                    data = route.model_dump_json(indent=2).encode()
                    _replace_durably(self._path(route.key()), data, fsync=True)

        await asyncio.to_thread(write)
