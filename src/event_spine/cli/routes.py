"""`spine routes`: list, show, set, switch and the history of routes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from event_spine.cli.kafka_options import KafkaFlags, kafka_options
from event_spine.cli.options import parse_location
from event_spine.emitters.routing import routing_hook
from event_spine.errors import SpineError
from event_spine.kafka.settings import KafkaSettings
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.settings import ProducerSettings
from event_spine.routing.registry import RoutingRegistry
from event_spine.routing.stores import open_registry_store
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey

app = typer.Typer(no_args_is_help=True, help="Manage the routing registry.")
console = Console()
T = TypeVar("T")

AuditTopic = typer.Option("spine.events", "--audit-topic", help="Topic the audit events go to.")
RegistryOption = typer.Option(
    ...,
    "--registry",
    envvar="SPINE_REGISTRY",
    help="sqlite:/path, filesystem:/dir or BACKEND:{json}",
)


def _with_registry(
    location: str,
    action: Callable[[RoutingRegistry], Awaitable[T]],
    audit_kafka: KafkaSettings | None = None,
    audit_topic: str = "spine.events",
) -> T:
    async def go() -> T:
        backend, config = parse_location(location)
        store = await open_registry_store(backend, config)
        producer = None
        if audit_kafka is not None:
            # Changes become audit events (and switches timeline entries) in the spine.
            producer = EventSpineProducer(ProducerSettings(kafka=audit_kafka, topic=audit_topic))
        try:
            hook = routing_hook(producer) if producer is not None else None
            return await action(RoutingRegistry(store, hook))
        finally:
            await store.close()
            if producer is not None:
                report = await asyncio.to_thread(producer.close)
                if report.unsent:
                    console.print(f"[yellow]{report.unsent} audit event(s) not delivered[/yellow]")

    try:
        return asyncio.run(go())
    except SpineError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _key(kind: str, tenant: str, env: str, project: str, mode: str) -> RouteKey:
    return RouteKey(ResourceKind(kind), tenant, env, project, mode)


@app.command("list")
def list_routes(registry: str = RegistryOption) -> None:
    """Every route with its backend, tier, health and cost notes."""
    found = _with_registry(registry, lambda r: r.list_routes())
    table = Table(
        "kind",
        "tenant",
        "env",
        "project",
        "mode",
        "backend",
        "tier",
        "health",
        "cost notes",
        "switches",
    )
    for route in found:
        table.add_row(
            route.resource_kind.value,
            route.tenant_id,
            route.env,
            route.project_id,
            route.mode,
            route.backend_type.value,
            route.tier,
            route.health_status.value,
            route.cost_notes,
            str(len(route.history)),
        )
    console.print(table)


@app.command()
def show(
    kind: str, tenant: str, env: str, project: str, mode: str, registry: str = RegistryOption
) -> None:
    """One route as JSON."""
    found = _with_registry(registry, lambda r: r.get_route(kind, tenant, env, project, mode))
    console.print_json(found.model_dump_json())


@app.command("set")
@kafka_options
def set_route(
    kafka: KafkaFlags,
    kind: str,
    tenant: str,
    env: str,
    project: str,
    mode: str,
    backend: str = typer.Option(..., help="Backend type."),
    config: str = typer.Option("{}", help="Backend config as JSON."),
    tier: str = typer.Option("standard"),
    cost_notes: str = typer.Option(""),
    actor: str = typer.Option("cli"),
    reason: str = typer.Option("set from CLI"),
    registry: str = RegistryOption,
    audit_topic: str = AuditTopic,
) -> None:
    """Create or replace a route (a backend change is recorded as a switch)."""
    route = ResourceRoute(
        resource_kind=ResourceKind(kind),
        tenant_id=tenant,
        env=env,
        project_id=project,
        mode=mode,
        backend_type=backend,
        config=orjson.loads(config),
        tier=tier,
        cost_notes=cost_notes,
    )
    saved = _with_registry(
        registry,
        lambda r: r.set_route(route, actor=actor, reason=reason),
        kafka.settings_if_any(),
        audit_topic,
    )
    console.print(f"saved {saved.describe()} -> {saved.backend_type.value} (v{saved.version})")


@app.command()
@kafka_options
def switch(
    kafka: KafkaFlags,
    kind: str,
    tenant: str,
    env: str,
    project: str,
    mode: str,
    backend: str = typer.Option(...),
    config: str = typer.Option("{}"),
    actor: str = typer.Option("cli"),
    reason: str = typer.Option(...),
    registry: str = RegistryOption,
    audit_topic: str = AuditTopic,
) -> None:
    """Point a route at another backend, recording who, when, from, to and why."""
    key = _key(kind, tenant, env, project, mode)
    cfg: dict[str, Any] = orjson.loads(config)
    saved = _with_registry(
        registry,
        lambda r: r.switch_route(key, backend, cfg, actor=actor, reason=reason),
        kafka.settings_if_any(),
        audit_topic,
    )
    console.print(f"switched {saved.describe()} -> {saved.backend_type.value} (v{saved.version})")


@app.command()
def history(
    kind: str, tenant: str, env: str, project: str, mode: str, registry: str = RegistryOption
) -> None:
    """The switch history of one route."""
    switches = _with_registry(registry, lambda r: r.history(_key(kind, tenant, env, project, mode)))
    table = Table("at", "actor", "from", "to", "reason", "audit link")
    for s in switches:
        table.add_row(
            s.at.isoformat(),
            s.actor,
            s.from_backend.value if s.from_backend else "-",
            s.to_backend.value,
            s.reason,
            # stream@position #count head: where the chain goes on (docs/audit.md)
            " ".join(
                f"{a.stream}@{a.position} #{a.count} {a.head_hash[:12]}" for a in s.audit_links
            )
            or "-",
        )
    console.print(table)


@app.command()
@kafka_options
def update(
    kafka: KafkaFlags,
    kind: str,
    tenant: str,
    env: str,
    project: str,
    mode: str,
    tier: str | None = typer.Option(None),
    health: str | None = typer.Option(None, help="healthy, degraded, down or unknown"),
    cost_notes: str | None = typer.Option(None),
    actor: str = typer.Option("cli"),
    registry: str = RegistryOption,
    audit_topic: str = AuditTopic,
) -> None:
    """Edit a route's tier, health status or cost notes (not a switch)."""
    key = _key(kind, tenant, env, project, mode)
    saved = _with_registry(
        registry,
        lambda r: r.update_metadata(
            key, actor=actor, tier=tier, health_status=health, cost_notes=cost_notes
        ),
        kafka.settings_if_any(),
        audit_topic,
    )
    console.print(
        f"updated {saved.describe()}: tier={saved.tier}, health={saved.health_status.value}, "
        f"cost_notes={saved.cost_notes!r} (v{saved.version})"
    )
