"""SqliteRegistryStore: one row per route, compare-and-set on its version."""

from __future__ import annotations

from event_spine.backends.base import DelegatedLifecycle
from event_spine.backends.sqlite.config import SqliteConfig
from event_spine.backends.sqlite.database import SqliteDatabase
from event_spine.errors import ConcurrentUpdate
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey

_REGISTRY_SCHEMA = """
CREATE TABLE IF NOT EXISTS spine_routes (
    resource_kind TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    env           TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    mode          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    body          TEXT NOT NULL,
    PRIMARY KEY (resource_kind, tenant_id, env, project_id, mode)
) WITHOUT ROWID;
"""
_ROUTE_KEY = "resource_kind = ? AND tenant_id = ? AND env = ? AND project_id = ? AND mode = ?"


class SqliteRegistryStore(DelegatedLifecycle):
    """RegistryStore on SQLite: one row per route, compare-and-set on ``version``."""

    def __init__(self, config: SqliteConfig) -> None:
        self._database = self._resource = SqliteDatabase(config, _REGISTRY_SCHEMA)

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""

        def read() -> ResourceRoute | None:
            row = self._database.db.execute(
                f"SELECT body FROM spine_routes WHERE {_ROUTE_KEY}",
                _key_row(key),
            ).fetchone()
            return None if row is None else ResourceRoute.model_validate_json(row[0])

        return await self._database.run(read)

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode."""

        def read() -> list[ResourceRoute]:
            rows = self._database.db.execute(
                "SELECT body FROM spine_routes WHERE resource_kind = ? AND tenant_id = ?"
                " AND env = ? AND project_id = ?",
                (resource_kind.value, tenant_id, env, project_id),
            ).fetchall()
            return [ResourceRoute.model_validate_json(body) for (body,) in rows]

        return await self._database.run(read)

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route."""

        def read() -> list[ResourceRoute]:
            rows = self._database.db.execute("SELECT body FROM spine_routes").fetchall()
            return [ResourceRoute.model_validate_json(body) for (body,) in rows]

        return await self._database.run(read)

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Compare-and-set on the stored version inside one write transaction."""

        def write() -> None:
            key = _key_row(route.key())
            with self._database.transaction() as db:
                row = db.execute(
                    f"SELECT version FROM spine_routes WHERE {_ROUTE_KEY}",
                    key,
                ).fetchone()
                if (row[0] if row else 0) != expected_version:
                    raise ConcurrentUpdate(
                        f"{route.describe()} changed since it was read "
                        f"(expected version {expected_version})"
                    )
                db.execute(
                    "INSERT OR REPLACE INTO spine_routes VALUES (?,?,?,?,?,?,?)",
                    (*key, route.version, route.model_dump_json()),
                )

        await self._database.run(write)


def _key_row(key: RouteKey) -> tuple[str, str, str, str, str]:
    return (key.resource_kind.value, key.tenant_id, key.env, key.project_id, key.mode)
