"""The scope every event, route and read belongs to."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from event_spine.schemas.formats import PROJECT_ID_PATTERN, TENANT_ID_PATTERN, Env, Mode

#: A scope as a plain tuple, (tenant_id, env, mode, project_id): the one order every
#: hashable scope identity uses (Scope.key(), RequestContext.key(), WireRouting.key(),
#: the sink's batch grouping). RouteKey.for_scope turns it into a registry key, so no
#: caller reorders the four strings. A tuple, not a model, because the sink computes it
#: per event.
ScopeTuple = tuple[str, str, str, str]


class Scope(BaseModel):
    """Who owns data: tenant, deployment env, operating mode and project."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    tenant_id: str = Field(pattern=TENANT_ID_PATTERN, description="Tenant id, e.g. `t_acme`.")
    env: Env = Field(description="Deployment environment.")
    mode: Mode = Field(description="Operating mode; see event_spine.schemas.formats.")
    project_id: str = Field(pattern=PROJECT_ID_PATTERN, description="Project id, e.g. `p_bigdata`.")

    def key(self) -> ScopeTuple:
        """A hashable identity, in (tenant, env, mode, project) order."""
        return (self.tenant_id, self.env, self.mode, self.project_id)

    def describe(self) -> str:
        """Human-readable scope for error messages."""
        return (
            f"tenant_id={self.tenant_id!r}, env={self.env!r}, mode={self.mode!r}, "
            f"project_id={self.project_id!r}"
        )
