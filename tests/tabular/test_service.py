"""TabularStoreService: routed per scope, never defaulted, filesystem only in lab mode."""

from __future__ import annotations

import pytest

from event_spine.backends import TabularFactory
from event_spine.errors import BackendNotAllowed, EventValidationError, RouteNotFound
from event_spine.schemas import ResourceRoute
from event_spine.tabular import TabularStoreService
from support.pipeline import ctx, registry_at


def tabular_route(c, backend: str, config: dict) -> ResourceRoute:
    return ResourceRoute.for_scope(c, "tabular_store", backend, config)


async def test_routed_key_value_per_tenant(tmp_path) -> None:
    registry = await registry_at(tmp_path / "registry.db")
    a, b = ctx("t_a", mode="saas"), ctx("t_b", mode="lab")
    await registry.set_route(
        tabular_route(a, "sqlite", {"path": str(tmp_path / "a.db")}), actor="t"
    )
    await registry.set_route(
        tabular_route(b, "filesystem", {"root": str(tmp_path / "b")}), actor="t"
    )
    stores = TabularFactory()
    try:
        svc_a, svc_b = (TabularStoreService(c, registry, stores) for c in (a, b))
        await svc_a.put("budgets", "team/1", {"cents": 100})
        await svc_b.put("budgets", "team/1", {"cents": 7})
        assert await svc_a.get("budgets", "team/1") == {"cents": 100}
        assert await svc_b.get("budgets", "team/1") == {"cents": 7}
        assert (tmp_path / "a.db").exists()
        assert (tmp_path / "b" / "tables").exists()
        assert [k for k, _ in await svc_a.list_prefix("budgets", "team/")] == ["team/1"]
        assert await svc_a.delete("budgets", "team/1") is True
        with pytest.raises(EventValidationError, match="`table`"):
            await svc_a.get("Bad Table", "k")
        with pytest.raises(RouteNotFound, match="tabular_store"):
            await TabularStoreService(ctx("t_none"), registry, stores).get("budgets", "k")
    finally:
        await stores.close()
        await registry.store.close()


async def test_filesystem_is_refused_outside_lab_mode(tmp_path) -> None:
    registry = await registry_at(tmp_path / "registry.db")
    try:
        for mode in ("saas", "enterprise", "system"):
            with pytest.raises(BackendNotAllowed, match="lab"):
                await registry.set_route(
                    tabular_route(ctx(mode=mode), "filesystem", {"root": str(tmp_path)}), actor="t"
                )
    finally:
        await registry.store.close()
