"""`spine routes`: list, show, set, switch and the history of routes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from event_spine.cli.audited import AuditTopicOption, NoAuditOption, audit_target
from event_spine.cli.kafka_options import KafkaFlags, kafka_options
from event_spine.cli.options import open_registry_at
from event_spine.cli.replay_args import parse_json
from event_spine.emitters.routing import audited_registry
from event_spine.kafka.settings import KafkaSettings
from event_spine.routing.registry import RoutingRegistry
from event_spine.routing.switching import Readers, switch_scope
from event_spine.schemas.routes import HealthStatus, ResourceKind, ResourceRoute, RouteKey

app = typer.Typer(no_args_is_help=True, help="Manage the routing registry.")
console = Console()
T = TypeVar("T")

RegistryOption = typer.Option(
    ...,
    "--registry",
    envvar="SPINE_REGISTRY",
    help="sqlite:/path, filesystem:/dir or BACKEND:{json}. It must exist (see --create).",
)
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _with_registry(
    location: str,
    action: Callable[[RoutingRegistry], Awaitable[T]],
    audit_kafka: KafkaSettings | None = None,
    audit_topic: str = "spine.events",
    *,
    create: bool = False,
) -> T:
    async def go() -> T:
        store = await open_registry_at(location, create=create)
        # Lookups and changes become audit events (and switches timeline entries).
        async with audited_registry(
            store, audit_kafka=audit_kafka, audit_topic=audit_topic
        ) as registry:
            return await action(registry)

    return asyncio.run(go())


def print_json(value: Any) -> None:
    """One JSON document on stdout (``--json``): no colour, no wrapping."""
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode())


def _key(kind: str, tenant: str, env: str, project: str, mode: str) -> RouteKey:
    try:
        return RouteKey(ResourceKind(kind), tenant, env, project, mode)
    except ValueError:
        known = ", ".join(k.value for k in ResourceKind)
        raise typer.BadParameter(f"`KIND` must be one of {known}; got {kind!r}") from None


@app.command("list")
def list_routes(
    registry: str = RegistryOption,
    create: bool = typer.Option(
        False, "--create", help="Create an empty registry when none exists at --registry."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Every route with its backend, tier, health and cost notes."""
    found = _with_registry(registry, lambda r: r.list_routes(), create=create)
    if as_json:
        print_json([route.model_dump(mode="json") for route in found])
        return
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
@kafka_options
def show(
    kafka: KafkaFlags,
    kind: str,
    tenant: str,
    env: str,
    project: str,
    mode: str,
    registry: str = RegistryOption,
    audit_topic: str = AuditTopicOption,
    no_audit: bool = NoAuditOption,
    as_json: bool = JsonOption,
) -> None:
    """One route as JSON (the lookup is audited, found or not; ``--json``: plain JSON)."""
    key = _key(kind, tenant, env, project, mode)
    found = _with_registry(
        registry,
        lambda r: r.get_route(key),
        audit_target(kafka, no_audit),
        audit_topic,
    )
    if as_json:
        print_json(found.model_dump(mode="json"))
        return
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
    audit_topic: str = AuditTopicOption,
    no_audit: bool = NoAuditOption,
) -> None:
    """Create or replace a route (a backend change is recorded as a switch)."""
    route = ResourceRoute(
        resource_kind=_key(kind, tenant, env, project, mode).resource_kind,
        tenant_id=tenant,
        env=env,
        project_id=project,
        mode=mode,
        backend_type=backend,
        config=parse_json(config, "--config"),
        tier=tier,
        cost_notes=cost_notes,
    )
    saved = _with_registry(
        registry,
        lambda r: r.set_route(route, actor=actor, reason=reason),
        audit_target(kafka, no_audit),
        audit_topic,
        create=True,
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
    move_readers: bool = typer.Option(
        False, "--move-readers", help="Also switch the scope's event_stream route (readers)."
    ),
    split_readers: bool = typer.Option(
        False, "--split-readers", help="Leave the event_stream route where it is, on purpose."
    ),
    registry: str = RegistryOption,
    audit_topic: str = AuditTopicOption,
    no_audit: bool = NoAuditOption,
) -> None:
    """Point a route at another backend, recording who, when, from, to and why.

    Switching event_spine while the scope has an event_stream route (left by a cutover)
    is refused unless --move-readers or --split-readers says what readers should do.
    """
    if move_readers and split_readers:
        raise typer.BadParameter("give at most one of --move-readers and --split-readers")
    readers = Readers.MOVE if move_readers else Readers.SPLIT if split_readers else Readers.REFUSE
    key = _key(kind, tenant, env, project, mode)
    cfg = parse_json(config, "--config")
    moved = _with_registry(
        registry,
        lambda r: switch_scope(r, key, backend, cfg, actor=actor, reason=reason, readers=readers),
        audit_target(kafka, no_audit),
        audit_topic,
    )
    for saved in moved:
        console.print(
            f"switched {saved.describe()} -> {saved.backend_type.value} (v{saved.version})"
        )


@app.command()
def history(
    kind: str,
    tenant: str,
    env: str,
    project: str,
    mode: str,
    registry: str = RegistryOption,
    as_json: bool = JsonOption,
) -> None:
    """The switch history of one route."""
    switches = _with_registry(registry, lambda r: r.history(_key(kind, tenant, env, project, mode)))
    if as_json:
        print_json([s.model_dump(mode="json") for s in switches])
        return
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
    audit_topic: str = AuditTopicOption,
    no_audit: bool = NoAuditOption,
) -> None:
    """Edit a route's tier, health status or cost notes (not a switch)."""
    key = _key(kind, tenant, env, project, mode)
    if health is not None and health not in {h.value for h in HealthStatus}:
        known = ", ".join(h.value for h in HealthStatus)
        raise typer.BadParameter(f"`--health` must be one of {known}; got {health!r}")
    saved = _with_registry(
        registry,
        lambda r: r.update_metadata(
            key, actor=actor, tier=tier, health_status=health, cost_notes=cost_notes
        ),
        audit_target(kafka, no_audit),
        audit_topic,
    )
    console.print(
        f"updated {saved.describe()}: tier={saved.tier}, health={saved.health_status.value}, "
        f"cost_notes={saved.cost_notes!r} (v{saved.version})"
    )
