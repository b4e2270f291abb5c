"""StreamEvent, RequestContext and routes: validation names the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from event_spine.errors import ScopeViolation
from event_spine.schemas import (
    RequestContext,
    ResourceKind,
    ResourceRoute,
    Scope,
    StreamEvent,
    current_context,
    request_context,
)
from support.pipeline import ctx


def event(**kw) -> StreamEvent:
    fields = {
        "event_type": "a.b",
        "stream_id": "s",
        "payload": {},
        "routing": {"tenant_id": "t_acme", "env": "dev", "mode": "lab", "project_id": "p_x"},
    }
    return StreamEvent.model_validate(fields | kw)


def test_defaults_are_generated() -> None:
    e = event()
    assert len(e.event_id) == 36
    assert e.event_id[14] == "7"
    assert e.ts.tzinfo is not None
    assert e.schema_version == 1
    assert e.metadata.request_id is None


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        (
            {"routing": {"tenant_id": "acme", "env": "dev", "mode": "lab", "project_id": "p_x"}},
            "tenant_id",
        ),
        ({"routing": {"tenant_id": "t_a", "env": "qa", "mode": "lab", "project_id": "p_x"}}, "env"),
        (
            {"routing": {"tenant_id": "t_a", "env": "dev", "mode": "beta", "project_id": "p_x"}},
            "mode",
        ),
        (
            {"routing": {"tenant_id": "t_a", "env": "dev", "mode": "lab", "project_id": "x"}},
            "project_id",
        ),
        ({"event_id": "123"}, "event_id"),
        ({"ts": datetime(2026, 1, 1)}, "ts"),
        ({"stream_id": ""}, "stream_id"),
        ({"event_type": "1x"}, "event_type"),
        ({"payload": [1]}, "payload"),
        ({"schema_version": 2}, "schema_version"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_fields_are_named(kw, field) -> None:
    with pytest.raises(ValidationError) as info:
        event(**kw)
    assert field in str(info.value)


def test_timestamps_are_normalised_to_utc() -> None:
    local = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert event(ts=local).ts == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def test_metadata_allows_extra_keys_but_types_known_ones() -> None:
    e = event(metadata={"request_id": "r", "custom": {"a": 1}})
    assert e.metadata.model_dump()["custom"] == {"a": 1}
    with pytest.raises(ValidationError, match="trace_id"):
        event(metadata={"trace_id": 1})


def test_request_context_lives_in_a_contextvar() -> None:
    assert current_context() is None
    c = ctx(request_id="r1")
    with request_context(c):
        assert current_context() is c
    assert current_context() is None


def test_scope_mismatch_raises() -> None:
    c = ctx()
    c.require_same_scope(c.scope)
    with pytest.raises(ScopeViolation, match="t_acme"):
        c.require_same_scope(Scope(tenant_id="t_acme", env="dev", mode="saas", project_id="p_core"))


def test_context_is_validated_once_at_construction() -> None:
    with pytest.raises(ValidationError, match="tenant_id"):
        RequestContext(tenant_id="Acme", env="dev", mode="lab", project_id="p_x")


def test_route_kinds_and_identity() -> None:
    assert {k.value for k in ResourceKind} >= {
        "event_spine",
        "event_stream",
        "tabular_store",
        "routing_registry_store",
        "object_store",
    }
    a = ResourceRoute(
        resource_kind="event_spine",
        tenant_id="t_a",
        env="dev",
        project_id="p_x",
        mode="lab",
        backend_type="sqlite",
        config={"path": "x", "b": 1},
    )
    b = a.model_copy(update={"tenant_id": "t_b", "config": {"b": 1, "path": "x"}})
    assert a.store_identity() == b.store_identity()  # same backend+config share a store
