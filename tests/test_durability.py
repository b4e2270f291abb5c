"""Durability is a property of the backend (BackendSpec.durable), read at every place
a route is accepted: set and switch (registry, CLI), cutover; the worker and replay
are tested through the broker (tests/pipeline/test_identity.py, tests/replay)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from event_spine.backends.catalog import BACKENDS, DURABLE_KINDS, check_route_allowed
from event_spine.errors import BackendNotDurable
from event_spine.replay.cutover import Cutover, CutoverPlan
from event_spine.routing import RoutingRegistry, open_registry_store
from event_spine.schemas import ResourceRoute
from event_spine.schemas.routes import BackendType, ResourceKind, RouteKey


def route(kind: str, mode: str, backend: str = "memory", **config: str) -> ResourceRoute:
    return ResourceRoute(
        resource_kind=kind,
        tenant_id="t_acme",
        env="prod",
        project_id="p_core",
        mode=mode,
        backend_type=backend,
        config=config,
    )


@pytest.fixture
async def registry(tmp_path: Path) -> RoutingRegistry:
    store = await open_registry_store("sqlite", {"path": str(tmp_path / "registry.db")})
    yield RoutingRegistry(store, None)
    await store.close()


def test_the_spec_declares_which_backends_are_durable() -> None:
    assert {b for b, spec in BACKENDS.items() if not spec.durable} == {BackendType.MEMORY}
    assert {b for b, spec in BACKENDS.items() if spec.lab_only} == {BackendType.FILESYSTEM}
    assert {k.value for k in DURABLE_KINDS} == {"event_spine", "event_stream", "tabular_store"}


@pytest.mark.parametrize("kind", sorted(k.value for k in DURABLE_KINDS))
@pytest.mark.parametrize("mode", ["saas", "enterprise", "system"])
async def test_setting_a_durable_kind_to_memory_outside_lab_is_refused(
    registry: RoutingRegistry, kind: str, mode: str
) -> None:
    with pytest.raises(BackendNotDurable, match=rf"{kind}.*not durable.*not '{mode}'"):
        await registry.set_route(route(kind, mode), actor="test")
    assert await registry.list_routes() == []


async def test_memory_stays_allowed_in_lab_and_for_other_kinds(registry: RoutingRegistry) -> None:
    await registry.set_route(route("event_spine", "lab"), actor="test")
    await registry.set_route(route("budget_store", "saas"), actor="test")
    assert len(await registry.list_routes()) == 2


async def test_switching_to_memory_outside_lab_is_refused_and_the_route_kept(
    registry: RoutingRegistry,
) -> None:
    await registry.set_route(route("event_stream", "saas", "sqlite", path="/tmp/a.db"), actor="t")
    key = RouteKey(ResourceKind.EVENT_STREAM, "t_acme", "prod", "p_core", "saas")
    with pytest.raises(BackendNotDurable):
        await registry.switch_route(key, "memory", {}, actor="ops", reason="cheaper")
    kept = await registry.get_route(
        RouteKey(ResourceKind.EVENT_STREAM, "t_acme", "prod", "p_core", "saas")
    )
    assert (kept.backend_type, kept.version) == (BackendType.SQLITE, 1)


def test_the_factory_refuses_to_build_a_store_for_such_a_route() -> None:
    with pytest.raises(BackendNotDurable):
        check_route_allowed(route("tabular_store", "enterprise"))


async def test_cutover_to_memory_outside_lab_stops_before_replaying(
    registry: RoutingRegistry,
) -> None:
    await registry.set_route(route("event_spine", "saas", "sqlite", path="/tmp/a.db"), actor="t")
    plan = CutoverPlan(
        # No broker: the refusal must come before anything is read.
        kafka="127.0.0.1:1",
        topic="spine.events",
        route=RouteKey(ResourceKind.EVENT_SPINE, "t_acme", "prod", "p_core", "saas"),
        backend_type=BackendType.MEMORY,
        config={},
        actor="ops",
        reason="test",
    )
    report = await Cutover(plan, registry).run()
    assert report.failed is not None
    assert "not durable" in report.failed
    assert "route was not switched" in report.failed
    assert report.replay is None
    kept = await registry.get_route(
        RouteKey(ResourceKind.EVENT_SPINE, "t_acme", "prod", "p_core", "saas")
    )
    assert kept.backend_type is BackendType.SQLITE


def test_routes_set_and_switch_from_the_cli_refuse_memory_outside_lab(tmp_path: Path) -> None:
    registry = f"sqlite:{tmp_path / 'registry.db'}"
    scope = ["event_spine", "t_acme", "prod", "p_core", "saas"]

    def spine(*args: str) -> subprocess.CompletedProcess[str]:
        # --no-audit: no Kafka here to audit the lookups and changes through.
        command = [sys.executable, "-m", "event_spine.cli.main", "routes", *args, "--no-audit"]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    refused = spine("set", *scope, "--backend", "memory", "--config", "{}", "--registry", registry)
    assert refused.returncode == 3, refused.stdout + refused.stderr  # configuration
    assert "not durable" in refused.stderr
    made = spine(
        "set", *scope, "--backend", "sqlite", "--config", '{"path": "/tmp/a.db"}',
        "--registry", registry,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    switched = spine(
        "switch", *scope, "--backend", "memory", "--config", "{}", "--reason", "cheaper",
        "--registry", registry,
    )  # fmt: skip
    assert switched.returncode == 3, switched.stdout + switched.stderr
    assert "not durable" in switched.stderr
    shown = spine("show", *scope, "--registry", registry)
    assert "/tmp/a.db" in shown.stdout
