"""PostgresRegistryStore: one row per route, compare-and-set on ``version``."""

from __future__ import annotations

from typing import Any

from event_spine.backends.base import DelegatedLifecycle
from event_spine.backends.postgres.config import PostgresConfig
from event_spine.backends.postgres.database import _ID, _Database, _mapped, _rowcount, _schema_ddl
from event_spine.errors import ConcurrentUpdate
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey

_ROUTES_DDL = f"""
CREATE TABLE IF NOT EXISTS {{routes}} (
    resource_kind {_ID}, tenant_id {_ID}, env {_ID}, project_id {_ID}, mode {_ID},
    version    bigint NOT NULL,
    body       json NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resource_kind, tenant_id, env, project_id, mode)
);
"""
_ROUTE_KEY = "resource_kind = $1 AND tenant_id = $2 AND env = $3 AND project_id = $4"


class PostgresRegistryStore(DelegatedLifecycle):
    """RegistryStore on PostgreSQL: one row per route, compare-and-set on ``version``.

    The compare-and-set is one conditional statement (INSERT ... ON CONFLICT DO
    NOTHING for a new route, UPDATE ... WHERE version = expected otherwise): the
    row lock makes a concurrent writer re-check the version after the first
    commits, so exactly one of two racing saves wins.
    """

    def __init__(self, config: PostgresConfig) -> None:
        routes = config.table("routes")
        self._db = self._resource = _Database(
            config, "routes", _schema_ddl(config) + _ROUTES_DDL.format(routes=routes), ["routes"]
        )
        self._select = f"SELECT body FROM {routes}"
        self._insert = (
            f"INSERT INTO {routes} (resource_kind, tenant_id, env, project_id, mode, version,"
            " body) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
        )
        self._update = (
            f"UPDATE {routes} SET version = $6, body = $7, updated_at = now()"
            f" WHERE {_ROUTE_KEY} AND mode = $5 AND version = $8"
        )

    async def _bodies(self, where: str = "", *args: Any) -> list[ResourceRoute]:
        with _mapped(self._db.where):
            rows = await self._db.pool.fetch(f"{self._select}{where}", *args)
        return [ResourceRoute.model_validate_json(row[0]) for row in rows]

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""
        found = await self._bodies(f" WHERE {_ROUTE_KEY} AND mode = $5", *_key_row(key))
        return found[0] if found else None

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode."""
        return await self._bodies(
            f" WHERE {_ROUTE_KEY} ORDER BY mode", resource_kind.value, tenant_id, env, project_id
        )

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route, in key order."""
        return await self._bodies(" ORDER BY resource_kind, tenant_id, env, project_id, mode")

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Write ``route`` only if the stored version is ``expected_version``."""
        key, body = _key_row(route.key()), route.model_dump_json()
        with _mapped(self._db.where):
            if expected_version == 0:
                status = await self._db.pool.execute(self._insert, *key, route.version, body)
            else:
                status = await self._db.pool.execute(
                    self._update, *key, route.version, body, expected_version
                )
        if _rowcount(status) != 1:
            raise ConcurrentUpdate(
                f"{route.describe()} changed since it was read "
                f"(expected version {expected_version})"
            )


def _key_row(key: RouteKey) -> tuple[str, str, str, str, str]:
    return (key.resource_kind.value, key.tenant_id, key.env, key.project_id, key.mode)
