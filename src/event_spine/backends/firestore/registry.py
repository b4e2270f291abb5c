"""FirestoreRegistryStore: a document per route, compare-and-set through version fences."""

from __future__ import annotations

from typing import Any, Final

from google.api_core import exceptions as gexc
from google.cloud.firestore_v1.base_query import FieldFilter

from event_spine.backends.firestore.client import _FirestoreStore, _mapped
from event_spine.backends.firestore.layout import _doc_id
from event_spine.errors import ConcurrentUpdate
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey

_ROUTE_KEY: Final = ("resource_kind", "tenant_id", "env", "project_id", "mode")


def _route_text(key: RouteKey) -> str:
    return "|".join((key.resource_kind.value, *key[1:]))


class FirestoreRegistryStore(_FirestoreStore):
    """RegistryStore on Firestore: a document per route, CAS through version fences."""

    _collection = "routes"

    async def _query(self, query: Any) -> list[ResourceRoute]:
        with _mapped(self._what):
            return [
                ResourceRoute.model_validate_json(snap.get("body"))
                async for snap in query.stream(**self._rpc)
            ]

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""
        ref = (await self._col()).document(_doc_id(_route_text(key)))
        with _mapped(self._what):
            snap = await ref.get(**self._rpc)
        return ResourceRoute.model_validate_json(snap.get("body")) if snap.exists else None

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode (equality filters: no composite index)."""
        values = (resource_kind.value, tenant_id, env, project_id)
        query = await self._col()
        for name, value in zip(_ROUTE_KEY[:4], values, strict=True):
            query = query.where(filter=FieldFilter(name, "==", value))
        return await self._query(query)

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route."""
        return await self._query(await self._col())

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Compare-and-set: the route and a new version fence, in one atomic batch."""
        client = await self._db()
        text = _route_text(route.key())
        head = (await self._col()).document(_doc_id(text))
        fields: dict[str, Any] = dict(zip(_ROUTE_KEY, text.split("|"), strict=True))
        fields |= {"version": route.version, "body": route.model_dump_json()}
        with _mapped(self._what):
            snap = await head.get(field_paths=["version"], **self._rpc)
            if (snap.get("version") if snap.exists else 0) != expected_version:
                raise ConcurrentUpdate(
                    f"{route.describe()} changed since it was read "
                    f"(expected version {expected_version})"
                )
            fences = await self._col("route_versions")
            fence = fences.document(f"{_doc_id(text)}@{expected_version + 1}")
            batch = client.batch()
            # The fence first: of two writers expecting the same version only one can
            # create it, and a store that applies a failed commit's earlier writes
            # (the emulator) applies nothing.
            batch.create(fence, {"route": text, "version": expected_version + 1})
            batch.set(head, fields)
            try:
                await batch.commit(**self._rpc)
            except gexc.AlreadyExists as exc:
                # A retried commit whose first attempt had landed is our own write.
                now = await head.get(field_paths=["body"], **self._rpc)
                if not (now.exists and now.get("body") == fields["body"]):
                    raise ConcurrentUpdate(
                        f"{route.describe()} was changed by another writer "
                        f"(expected version {expected_version})"
                    ) from exc
