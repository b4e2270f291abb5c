"""Routes: which backend serves a resource kind for a scope, and how that changed."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from event_spine.schemas.formats import PROJECT_ID_PATTERN, TENANT_ID_PATTERN, Env, Mode
from event_spine.schemas.scope import Scope, ScopeTuple


class ResourceKind(StrEnum):
    """The canonical kinds of resource a tenant's route can point at."""

    EVENT_SPINE = "event_spine"
    EVENT_STREAM = "event_stream"
    TABULAR_STORE = "tabular_store"
    ANALYTICS_STORE = "analytics_store"
    BUDGET_STORE = "budget_store"
    MEMORY_STORE = "memory_store"
    ROUTING_REGISTRY_STORE = "routing_registry_store"
    VECTOR_STORE = "vector_store"
    OBJECT_STORE = "object_store"


class BackendType(StrEnum):
    """Store implementations a route can name."""

    SQLITE = "sqlite"
    FILESYSTEM = "filesystem"
    MEMORY = "memory"
    POSTGRES = "postgres"
    FIRESTORE = "firestore"
    DYNAMODB = "dynamodb"
    COSMOS = "cosmos"


class HealthStatus(StrEnum):
    """Operator-set health of a route's backend."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"


def _now() -> datetime:
    return datetime.now(UTC)


class RouteKey(NamedTuple):
    """Registry key: one route per resource kind and scope."""

    resource_kind: ResourceKind
    tenant_id: str
    env: str
    project_id: str
    mode: str

    @classmethod
    def for_scope(cls, kind: ResourceKind | str, scope: Scope | ScopeTuple) -> RouteKey:
        """The key of ``kind``'s route for a scope (a Scope, or its ``key()`` tuple): the
        one place that maps the scope order onto the registry key's field order."""
        tenant_id, env, mode, project_id = scope.key() if isinstance(scope, Scope) else scope
        return cls(ResourceKind(kind), tenant_id, env, project_id, mode)

    def scope_key(self) -> ScopeTuple:
        """(tenant, env, mode, project): the same order as Scope.key()."""
        return (self.tenant_id, self.env, self.mode, self.project_id)

    def describe(self) -> str:
        """Human-readable identity for messages."""
        return (
            f"{self.resource_kind.value} route for tenant_id={self.tenant_id!r}, "
            f"env={self.env!r}, project_id={self.project_id!r}, mode={self.mode!r}"
        )


class AuditLink(BaseModel):
    """Where an audit chain stood in the old store when its route was switched.

    The new store's chain continues from here (docs/audit.md, "Route switches"):
    its first record names ``head_hash`` as predecessor, its count goes on from
    ``count``. ``first_time_s`` is the chain's first record's event time (the base
    of the time rule before the first anchor).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream: str
    position: int
    event_id: str
    head_hash: str
    count: int
    first_time_s: float


class RouteSwitch(BaseModel):
    """One change of a route's backend: who, when, from, to and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime = Field(default_factory=_now)
    actor: str
    reason: str
    from_backend: BackendType | None
    from_config: dict[str, Any] = Field(default_factory=dict)
    to_backend: BackendType
    to_config: dict[str, Any] = Field(default_factory=dict)
    #: The audit chains' heads in the old store (event_spine routes; empty before
    #: this release, or when the route had no audit records).
    audit_links: tuple[AuditLink, ...] = ()


class ResourceRoute(BaseModel):
    """Where one resource kind of one scope lives.

    ``config`` holds what the backend needs to connect (path, DSN without password,
    table, endpoint...). Credentials never go here: they come from the environment
    or the cloud SDK's default chain.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    resource_kind: ResourceKind
    tenant_id: str = Field(pattern=TENANT_ID_PATTERN)
    env: Env
    project_id: str = Field(pattern=PROJECT_ID_PATTERN)
    mode: Mode
    backend_type: BackendType
    config: dict[str, Any] = Field(default_factory=dict)
    tier: str = "standard"
    health_status: HealthStatus = HealthStatus.UNKNOWN
    cost_notes: str = ""
    history: tuple[RouteSwitch, ...] = ()
    version: int = Field(default=0, ge=0, description="Bumped by every save (compare-and-set).")
    updated_at: AwareDatetime = Field(default_factory=_now)

    @classmethod
    def for_scope(
        cls,
        scope: Scope,
        resource_kind: ResourceKind | str,
        backend_type: BackendType | str,
        config: dict[str, Any] | None = None,
    ) -> ResourceRoute:
        """The route of one resource kind of ``scope`` (a Scope or a RequestContext)."""
        return cls.model_validate(
            {
                "resource_kind": resource_kind,
                "tenant_id": scope.tenant_id,
                "env": scope.env,
                "project_id": scope.project_id,
                "mode": scope.mode,
                "backend_type": backend_type,
                "config": config or {},
            }
        )

    def scope_key(self) -> ScopeTuple:
        """(tenant, env, mode, project): the same order as Scope.key()."""
        return (self.tenant_id, self.env, self.mode, self.project_id)

    def key(self) -> RouteKey:
        """The registry key of this route."""
        return RouteKey(self.resource_kind, self.tenant_id, self.env, self.project_id, self.mode)

    def describe(self) -> str:
        """Human-readable identity for messages."""
        return self.key().describe()

    def store_identity(self) -> tuple[str, str]:
        """What makes two routes share one store instance: backend and its config."""
        import orjson  # noqa: PLC0415 - keeps module import light for schema-only users

        return (
            self.backend_type.value,
            orjson.dumps(self.config, option=orjson.OPT_SORT_KEYS).decode(),
        )
