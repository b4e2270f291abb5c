"""Route -> store instance. The only place that switches on ``backend_type``.

Each backend module exposes a config model and up to three store classes (events,
registry, tabular). Modules are imported lazily so an optional SDK is needed only
by the routes that use it; a missing one raises MissingDependency naming the extra.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from event_spine.backends.base import EventStore
from event_spine.errors import (
    BackendNotAllowed,
    BackendNotDurable,
    ConfigurationError,
    MissingDependency,
    UnknownBackend,
)
from event_spine.schemas.formats import PRODUCTION_MODES
from event_spine.schemas.routes import BackendType, ResourceKind, ResourceRoute

if TYPE_CHECKING:
    from event_spine.routing.store import RegistryStore
    from event_spine.tabular.base import TabularStore

Role = Literal["events", "registry", "tabular"]
S = TypeVar("S")


#: Resources that must survive a restart: outside mode ``lab`` their routes may
#: only name a durable backend (``BackendSpec.durable``).
DURABLE_KINDS: Final = frozenset(
    {ResourceKind.EVENT_SPINE, ResourceKind.EVENT_STREAM, ResourceKind.TABULAR_STORE}
)


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives, its classes per role, which extra it needs, and its rules.

    ``durable``: what it stores survives a restart of the process that wrote it.
    ``lab_only``: refused outside mode ``lab`` for every resource kind. Read here
    (``check_route_allowed``) by the registry, the workers' factory and cutover.
    """

    module: str
    config_class: str
    classes: dict[str, str]
    extra: str | None = None
    sdk_module: str | None = None
    lab_only: bool = False
    durable: bool = True


def _spec(
    module: str,
    prefix: str,
    extra: str | None = None,
    sdk: str | None = None,
    *,
    lab_only: bool = False,
    durable: bool = True,
) -> BackendSpec:
    return BackendSpec(
        module,
        f"{prefix}Config",
        {
            "events": f"{prefix}EventStore",
            "registry": f"{prefix}RegistryStore",
            "tabular": f"{prefix}TabularStore",
        },
        extra,
        sdk,
        lab_only,
        durable,
    )


BACKENDS: dict[BackendType, BackendSpec] = {
    BackendType.MEMORY: _spec("memory", "Memory", durable=False),
    BackendType.SQLITE: _spec("sqlite", "Sqlite"),
    BackendType.FILESYSTEM: _spec("filesystem", "Filesystem", lab_only=True),
    BackendType.POSTGRES: _spec("postgres", "Postgres", "postgres", "asyncpg"),
    BackendType.DYNAMODB: _spec("dynamodb", "Dynamo", "dynamodb", "aioboto3"),
    BackendType.FIRESTORE: _spec("firestore", "Firestore", "firestore", "google.cloud.firestore"),
    BackendType.COSMOS: _spec("cosmos", "Cosmos", "cosmos", "azure.cosmos"),
}


def refuse_outside_lab(mode: str, what: str = "The filesystem store") -> None:
    """Raise BackendNotAllowed for production modes."""
    if mode in PRODUCTION_MODES:
        raise BackendNotAllowed(
            f"{what} is allowed only in mode 'lab', not {mode!r}: it is not shared "
            f"between hosts nor backed up. Route this scope to sqlite, postgres or a "
            f"cloud store."
        )


def check_route_allowed(route: ResourceRoute) -> None:
    """Refuse routes whose backend is not allowed in the route's mode (its spec's rules)."""
    spec = BACKENDS.get(route.backend_type)
    if spec is None:
        return
    if spec.lab_only:
        refuse_outside_lab(
            route.mode,
            f"The {route.backend_type.value} backend ({route.describe()})",
        )
    if not spec.durable and route.resource_kind in DURABLE_KINDS and route.mode != "lab":
        raise BackendNotDurable(
            f"{route.describe()}: backend {route.backend_type.value!r} is not durable (what "
            f"it holds is lost on restart); a {route.resource_kind.value} route may name it "
            f"only in mode 'lab', not {route.mode!r}. Route this scope to sqlite, postgres "
            f"or a cloud store."
        )


def build_store(
    backend: BackendType | str, config: dict[str, Any], role: Role, context: str = ""
) -> Any:
    """A new, unopened store of ``role`` for a backend and its config."""
    backend = BackendType(backend)
    spec = BACKENDS.get(backend)
    if spec is None:
        raise UnknownBackend(f"{context or 'A route'} names backend {backend.value!r}: unknown.")
    if spec.sdk_module is not None:
        try:
            importlib.import_module(spec.sdk_module)
        except ImportError as exc:
            raise MissingDependency(backend.value, spec.extra or "", spec.sdk_module) from exc
    module = importlib.import_module(f"event_spine.backends.{spec.module}")
    store_class = getattr(module, spec.classes[role], None)
    if store_class is None:
        raise UnknownBackend(f"Backend {backend.value!r} has no {role} store.")
    config_model: type[BaseModel] = getattr(module, spec.config_class)
    try:
        parsed = config_model.model_validate(config)
    except ValidationError as exc:
        # Field names and problems only: input values could hold secrets.
        problems = "; ".join(
            f"`{'.'.join(map(str, e['loc'])) or 'config'}`: {e['msg']}"
            for e in exc.errors(include_input=False)
        )
        raise ConfigurationError(
            f"{context or 'Backend ' + backend.value}: invalid `config` for backend "
            f"{backend.value!r}: {problems}"
        ) from None
    return store_class(parsed)


def build_event_store(route: ResourceRoute) -> EventStore:
    """A new, unopened EventStore for the route (lab-only backends checked)."""
    check_route_allowed(route)
    store: EventStore = build_store(route.backend_type, route.config, "events", route.describe())
    return store


class _Factory(Generic[S]):
    """Opens one store per distinct (backend, config) and reuses it across routes."""

    def __init__(self, role: Role) -> None:
        self._role: Role = role
        self._stores: dict[tuple[str, str], S] = {}
        self._lock = asyncio.Lock()

    async def _get(self, route: ResourceRoute) -> S:
        check_route_allowed(route)
        identity = route.store_identity()
        store = self._stores.get(identity)
        if store is not None:
            return store
        async with self._lock:
            store = self._stores.get(identity)
            if store is None:
                store = build_store(route.backend_type, route.config, self._role, route.describe())
                await store.open()
                self._stores[identity] = store
        return store

    async def close(self) -> None:
        """Close every store opened so far."""
        stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            await store.close()  # type: ignore[attr-defined]


class StoreFactory(_Factory[EventStore]):
    """Event stores by route."""

    def __init__(self) -> None:
        super().__init__("events")

    async def event_store(self, route: ResourceRoute) -> EventStore:
        """The open EventStore serving ``route``."""
        return await self._get(route)


class TabularFactory(_Factory["TabularStore"]):
    """Tabular stores by route."""

    def __init__(self) -> None:
        super().__init__("tabular")

    async def tabular_store(self, route: ResourceRoute) -> TabularStore:
        """The open TabularStore serving ``route``."""
        return await self._get(route)


def build_registry_store(backend: BackendType | str, config: dict[str, Any]) -> RegistryStore:
    """A new, unopened RegistryStore."""
    store: RegistryStore = build_store(backend, config, "registry", "The routing registry")
    return store
