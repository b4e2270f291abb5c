"""Route -> store instance, built from the backend's spec (``catalog.BACKENDS``).

The store classes are imported on first use (``BackendSpec.load``), so an optional
SDK is needed only by the routes that use it; a missing one raises
MissingDependency naming the extra.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Any, Generic, Literal, TypeVar, overload

from event_spine.backends.catalog import check_route_allowed, spec_of
from event_spine.backends.seams import EventStore, RegistryStore, Store, TabularStore
from event_spine.schemas.routes import BackendType, ResourceRoute

Role = Literal["events", "registry", "tabular"]
S = TypeVar("S", bound=Store)


@overload
def build_store(
    backend: BackendType | str, config: dict[str, Any], role: Literal["events"], context: str = ""
) -> EventStore: ...
@overload
def build_store(
    backend: BackendType | str,
    config: dict[str, Any],
    role: Literal["registry"],
    context: str = "",
) -> RegistryStore: ...
@overload
def build_store(
    backend: BackendType | str, config: dict[str, Any], role: Literal["tabular"], context: str = ""
) -> TabularStore: ...
def build_store(
    backend: BackendType | str, config: dict[str, Any], role: Role, context: str = ""
) -> Store:
    """A new, unopened store of ``role`` for a backend and its config.

    Checked in this order, so the first message names the real problem: the backend
    is known, its config is valid, its SDK is installed.
    """
    spec = spec_of(backend, context)
    parsed = spec.parse(config, context)
    classes = spec.load()
    if role == "events":
        return classes.events(parsed)
    if role == "registry":
        return classes.registry(parsed)
    return classes.tabular(parsed)


def build_event_store(route: ResourceRoute) -> EventStore:
    """A new, unopened EventStore for the route (the spec's route rules checked)."""
    check_route_allowed(route)
    return build_store(route.backend_type, route.config, "events", route.describe())


def build_registry_store(backend: BackendType | str, config: dict[str, Any]) -> RegistryStore:
    """A new, unopened RegistryStore."""
    return build_store(backend, config, "registry", "The routing registry")


class _Factory(abc.ABC, Generic[S]):
    """Opens one store per distinct (backend, config) and reuses it across routes."""

    def __init__(self) -> None:
        self._stores: dict[tuple[str, str], S] = {}
        self._lock = asyncio.Lock()

    @abc.abstractmethod
    def _build(self, route: ResourceRoute) -> S:
        """A new, unopened store for ``route``."""

    async def _get(self, route: ResourceRoute) -> S:
        check_route_allowed(route)
        identity = route.store_identity()
        store = self._stores.get(identity)
        if store is not None:
            return store
        async with self._lock:
            store = self._stores.get(identity)
            if store is None:
                store = self._build(route)
                await store.open()
                self._stores[identity] = store
        return store

    async def close(self) -> None:
        """Close every store opened so far."""
        stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            await store.close()


class StoreFactory(_Factory[EventStore]):
    """Event stores by route."""

    def _build(self, route: ResourceRoute) -> EventStore:
        return build_store(route.backend_type, route.config, "events", route.describe())

    async def event_store(self, route: ResourceRoute) -> EventStore:
        """The open EventStore serving ``route``."""
        return await self._get(route)


class TabularFactory(_Factory[TabularStore]):
    """Tabular stores by route."""

    def _build(self, route: ResourceRoute) -> TabularStore:
        return build_store(route.backend_type, route.config, "tabular", route.describe())

    async def tabular_store(self, route: ResourceRoute) -> TabularStore:
        """The open TabularStore serving ``route``."""
        return await self._get(route)
