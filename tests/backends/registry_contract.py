"""The RegistryStore contract, run through RoutingRegistry: one suite per backend.

A subclass provides ``open_registry_store``: an async fixture returning an async
callable that opens a *new* client on the *same* registry data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from event_spine.backends import RegistryStore
from event_spine.errors import ConcurrentUpdate, RouteNotFound
from event_spine.routing import RoutingRegistry
from event_spine.schemas import ResourceKind, ResourceRoute, RouteKey

OpenRegistryStore = Callable[[], Awaitable[RegistryStore]]


def route(tenant: str = "t_acme", mode: str = "saas", **kw: Any) -> ResourceRoute:
    """An event_spine route to sqlite (config is opaque to the registry)."""
    fields: dict[str, Any] = {
        "resource_kind": "event_spine",
        "tenant_id": tenant,
        "env": "dev",
        "project_id": "p_core",
        "mode": mode,
        "backend_type": "sqlite",
        "config": {"path": f"/data/{tenant}.db"},
    }
    return ResourceRoute(**(fields | kw))


class RegistryStoreContract:
    """Every registry backend must pass these."""

    @pytest.fixture
    async def registry(self, open_registry_store: OpenRegistryStore) -> RoutingRegistry:
        return RoutingRegistry(await open_registry_store(), None)

    async def test_set_then_get(self, registry: RoutingRegistry) -> None:
        saved = await registry.set_route(route(tier="gold", cost_notes="$"), actor="alice")
        got = await registry.get_route(
            RouteKey(ResourceKind.EVENT_SPINE, "t_acme", "dev", "p_core", "saas")
        )
        assert got == saved
        assert (got.version, got.tier, got.cost_notes) == (1, "gold", "$")
        assert [s.to_backend.value for s in got.history] == ["sqlite"]

    async def test_missing_route_names_the_whole_scope(self, registry: RoutingRegistry) -> None:
        await registry.set_route(route(), actor="alice")
        with pytest.raises(RouteNotFound) as info:
            await registry.get_route(
                RouteKey(ResourceKind.EVENT_SPINE, "t_acme", "prod", "p_core", "saas")
            )
        for part in ("event_spine", "t_acme", "'prod'", "p_core", "saas"):
            assert part in str(info.value)

    async def test_mode_none_finds_the_single_mode(self, registry: RoutingRegistry) -> None:
        await registry.set_route(route(mode="enterprise"), actor="a")
        got = await registry.find_route("event_spine", "t_acme", "dev", "p_core")
        assert got.mode == "enterprise"

    async def test_switch_records_history(self, registry: RoutingRegistry) -> None:
        await registry.set_route(route(), actor="alice", reason="initial")
        key = RouteKey(ResourceKind.EVENT_SPINE, "t_acme", "dev", "p_core", "saas")
        await registry.switch_route(
            key, "postgres", {"dsn": "postgresql://db/x"}, actor="bob", reason="scale out"
        )
        history = await registry.history(key)
        assert [(h.actor, h.from_backend, h.to_backend.value, h.reason) for h in history] == [
            ("alice", None, "sqlite", "initial"),
            ("bob", "sqlite", "postgres", "scale out"),
        ]
        assert history[1].from_config == {"path": "/data/t_acme.db"}
        assert (await registry.get_route(key)).backend_type.value == "postgres"

    async def test_new_client_sees_saved_routes(
        self, registry: RoutingRegistry, open_registry_store: OpenRegistryStore
    ) -> None:
        await registry.set_route(route("t_one"), actor="a")
        await registry.set_route(route("t_two"), actor="a")
        other = RoutingRegistry(await open_registry_store(), None)
        assert {r.tenant_id for r in await other.list_routes()} == {"t_one", "t_two"}

    async def test_concurrent_switches_lose_none(
        self, registry: RoutingRegistry, open_registry_store: OpenRegistryStore
    ) -> None:
        await registry.set_route(route(), actor="setup")
        key = RouteKey(ResourceKind.EVENT_SPINE, "t_acme", "dev", "p_core", "saas")
        clients = [RoutingRegistry(await open_registry_store(), None) for _ in range(4)]

        async def switch(client: RoutingRegistry, n: int) -> None:
            for i in range(5):
                await client.switch_route(
                    key, "sqlite", {"path": f"/d/{n}-{i}.db"}, actor=f"w{n}", reason=f"{n}-{i}"
                )

        await asyncio.gather(*(switch(c, n) for n, c in enumerate(clients)))
        history = await registry.history(key)
        assert len(history) == 1 + 20
        assert sorted(h.reason for h in history[1:]) == sorted(
            f"{n}-{i}" for n in range(4) for i in range(5)
        )
        assert (await registry.get_route(key)).version == 21

    async def test_stale_compare_and_set_is_refused(
        self, open_registry_store: OpenRegistryStore
    ) -> None:
        store = await open_registry_store()
        first = route().model_copy(update={"version": 1})
        await store.save(first, 0)
        with pytest.raises(ConcurrentUpdate):
            await store.save(first.model_copy(update={"version": 2}), 0)
