"""`spine replay`, `spine verify` and `spine cutover`.

The functions below are registered on the main `spine` app; ``app`` here runs them
stand-alone (``python -m event_spine.cli.replay replay ...``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
import typer
from pydantic import ValidationError

from event_spine.backends.base import EventStore
from event_spine.backends.factory import build_event_store, build_store
from event_spine.cli.kafka_options import KafkaFlags, kafka_options
from event_spine.cli.options import parse_location
from event_spine.cli.replay_args import (
    ROUTE_HELP,
    parse_json,
    parse_route,
    parse_start,
)
from event_spine.cli.replay_view import console, print_report, progress_bar
from event_spine.errors import SpineError
from event_spine.replay.cutover import CutoverPlan, CutoverReport, CutoverStep, run_cutover
from event_spine.replay.filters import EventFilter
from event_spine.replay.progress import ReplayProgress
from event_spine.replay.reader import DEFAULT_MAX_RECORDS
from event_spine.replay.replayer import ReplayConfig, Replayer
from event_spine.replay.target import ReplayTarget
from event_spine.replay.verify import VerifyReport, discover_streams, streams_of_scope, verify
from event_spine.routing.registry import RoutingRegistry
from event_spine.routing.stores import open_registry_store
from event_spine.schemas.routes import BackendType
from event_spine.schemas.scope import Scope

T = TypeVar("T")

REGISTRY_HELP = "Routing registry: sqlite:/path or BACKEND:{json}"


def _run(action: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; the spine's errors end the command with exit code 2."""
    try:
        return asyncio.run(action())
    except SpineError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


async def _open_registry(location: str | None) -> RoutingRegistry:
    if location is None:
        raise typer.BadParameter("a route needs `--registry`")
    backend, config = parse_location(location)
    return RoutingRegistry(await open_registry_store(backend, config))


# -- replay ----------------------------------------------------------------------------


def default_replay_name(topic: str, target: ReplayTarget, filters: EventFilter) -> str:
    """Same topic, target and filter give the same name: a rerun resumes."""
    identity = orjson.dumps(
        [topic, target.backend_type.value, target.config, filters.describe()],
        option=orjson.OPT_SORT_KEYS,
    )
    return f"{target.backend_type.value}-{hashlib.sha256(identity).hexdigest()[:12]}"


async def _resolve_target(
    into_route: str | None, registry: str | None, into_backend: str | None, into_config: str
) -> ReplayTarget:
    if (into_route is None) == (into_backend is None):
        raise typer.BadParameter("give exactly one of --into-route and --into-backend")
    if into_backend is not None:
        return ReplayTarget.of_backend(into_backend, parse_json(into_config, "--into-config"))
    assert into_route is not None
    reg = await _open_registry(registry)
    try:
        return await ReplayTarget.from_registry(reg, parse_route(into_route))
    finally:
        await reg.store.close()


@kafka_options
def replay_command(
    kafka: KafkaFlags,
    topic: str = typer.Option("spine.events"),
    into_route: str | None = typer.Option(None, help=f"Target route: {ROUTE_HELP}."),
    registry: str | None = typer.Option(None, envvar="SPINE_REGISTRY", help=REGISTRY_HELP),
    into_backend: str | None = typer.Option(None, help="Target backend type (e.g. sqlite)."),
    into_config: str = typer.Option("{}", help="Target backend config as JSON."),
    tenant: list[str] = typer.Option([], help="Keep these tenants (repeat the option)."),
    env: list[str] = typer.Option([]),
    project: list[str] = typer.Option([]),
    mode: list[str] = typer.Option([]),
    event_type: list[str] = typer.Option([]),
    stream_prefix: list[str] = typer.Option([]),
    from_beginning: bool = typer.Option(False, help="Start at the log start, ignoring the group."),
    from_offsets: str | None = typer.Option(None, help="0=123,1=456 (only these partitions)."),
    from_time: str | None = typer.Option(None, help="ISO 8601 with a timezone."),
    follow: bool = typer.Option(False, help="Keep going past the end until Ctrl-C."),
    name: str | None = typer.Option(None, help="Replay name (group spine-replay-NAME)."),
    max_records: int = typer.Option(DEFAULT_MAX_RECORDS, min=1),
    include_unrouted: bool = typer.Option(
        False,
        "--include-unrouted",
        help=(
            "Write every scope read. Without it, the live sink's rules apply (they need "
            "--registry when the target is --into-backend): scopes without an "
            "event_spine route, or routed to a non-durable backend outside lab, are "
            "skipped and counted (route_missing, route_not_durable)."
        ),
    ),
) -> None:
    """Replay the topic into a store. Without --from-*, a rerun resumes where it stopped.

    Like the live sink, it stores only events whose scope has a durable event_spine
    route in --registry (unless --include-unrouted); the final line counts the events
    written, the duplicates, and the events skipped by reason (route_missing,
    route_not_durable, poison reasons).
    """
    filters = EventFilter.of(
        tenants=tenant,
        envs=env,
        projects=project,
        modes=mode,
        event_types=event_type,
        stream_prefixes=stream_prefix,
    )
    start = parse_start(from_beginning, from_offsets, from_time)
    settings = kafka.settings()

    async def go() -> ReplayProgress:
        target = await _resolve_target(into_route, registry, into_backend, into_config)
        live = None
        if registry is not None and not include_unrouted:
            live = await _open_registry(registry)
        try:
            return await _replay(target, live)
        finally:
            if live is not None:
                await live.store.close()

    async def _replay(target: ReplayTarget, live: RoutingRegistry | None) -> ReplayProgress:
        config = ReplayConfig(
            kafka=settings,
            topic=topic,
            name=name or default_replay_name(topic, target, filters),
            target=target,
            filters=filters,
            start=start,
            follow=follow,
            max_records=max_records,
            registry=live,
            include_unrouted=include_unrouted,
        )
        keeping = config.effective_filter().describe()
        console.print(
            f"replay [bold]{config.name}[/bold] (group {config.group_id}) from "
            f"{start.describe()} into {target.describe()}; keeping {keeping}"
        )
        with progress_bar() as view:
            return await Replayer(config, on_progress=view).run()

    try:
        done = _run(go)
    except KeyboardInterrupt:
        console.print("interrupted: rerun with the same --name (and no --from-*) to resume")
        raise typer.Exit(130) from None
    console.print(done.summary())
    unrouted = {r: done.skipped.get(r, 0) for r in ("route_missing", "route_not_durable")}
    if not include_unrouted:
        console.print(
            "not stored by the live sink's rules: "
            + ", ".join(f"{reason}={count}" for reason, count in unrouted.items())
        )
    for sample in done.skipped_samples:
        console.print(
            f"  skipped p{sample.partition}@{sample.offset} {sample.reason}: {sample.message[:200]}"
        )


# -- verify ----------------------------------------------------------------------------


async def _open_side(
    location: str | None, route: str | None, registry: str | None, what: str
) -> EventStore:
    if (location is None) == (route is None):
        raise typer.BadParameter(f"give exactly one of --{what} and --{what}-route")
    if location is not None:
        backend, config = parse_location(location, f"--{what}")
        store: EventStore = build_store(backend, config, "events", f"--{what}")
        await store.open()
        return store
    assert route is not None
    reg = await _open_registry(registry)
    try:
        key = parse_route(route, f"--{what}-route")
        found = await reg.get_route(
            key.resource_kind, key.tenant_id, key.env, key.project_id, key.mode
        )
    finally:
        await reg.store.close()
    routed = build_event_store(found)
    await routed.open()
    return routed


@kafka_options
def verify_command(
    kafka: KafkaFlags,
    tenant: str = typer.Option(...),
    env: str = typer.Option(...),
    mode: str = typer.Option(...),
    project: str = typer.Option(...),
    source: str | None = typer.Option(None, help="sqlite:/path or BACKEND:{json}"),
    source_route: str | None = typer.Option(None, help=ROUTE_HELP),
    target: str | None = typer.Option(None, help="sqlite:/path or BACKEND:{json}"),
    target_route: str | None = typer.Option(None, help=ROUTE_HELP),
    registry: str | None = typer.Option(None, envvar="SPINE_REGISTRY", help=REGISTRY_HELP),
    stream: list[str] = typer.Option(
        [], help="Streams to compare (repeat); default: from the topic."
    ),
    topic: str = typer.Option("spine.events"),
    samples: int = typer.Option(5, min=1, help="Event ids shown per kind of difference."),
) -> None:
    """Compare two stores stream by stream; exit 1 when they differ."""
    try:
        scope = Scope(tenant_id=tenant, env=env, mode=mode, project_id=project)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise typer.BadParameter(f"invalid scope: {exc}") from exc
    settings = kafka.settings_if_any()  # finds the scope's streams in the topic
    if not stream and settings is None:
        raise typer.BadParameter("give --stream (repeatable) or --bootstrap to find the streams")

    async def go() -> VerifyReport:
        streams = list(stream)
        if not streams:
            assert settings is not None
            found = await discover_streams(settings, topic, EventFilter.of(tenants=[tenant]))
            streams = list(streams_of_scope(found, scope))
        left = await _open_side(source, source_route, registry, "source")
        try:
            right = await _open_side(target, target_route, registry, "target")
            try:
                return await verify(left, right, scope, streams, max_samples=samples)
            finally:
                await right.close()
        finally:
            await left.close()

    report = _run(go)
    print_report(report)
    if not report.identical:
        raise typer.Exit(1)


# -- cutover ---------------------------------------------------------------------------


@kafka_options
def cutover_command(
    kafka: KafkaFlags,
    route: str = typer.Option(..., help=f"The route to move: {ROUTE_HELP}."),
    into_backend: str = typer.Option(..., help="New backend type."),
    into_config: str = typer.Option("{}", help="New backend config as JSON."),
    actor: str = typer.Option(..., help="Who moves the route (kept in its history)."),
    reason: str = typer.Option(..., help="Why (kept in its history)."),
    registry: str = typer.Option(..., envvar="SPINE_REGISTRY", help=REGISTRY_HELP),
    topic: str = typer.Option("spine.events"),
    name: str | None = typer.Option(None, help="Replay name; default derived from route + store."),
    live_group: str = typer.Option("spine-sink", help="The live sink workers' group."),
    no_live_group: bool = typer.Option(False, help="No live workers: do not wait for them."),
    live_cache_ttl: float = typer.Option(5.0, min=0, help="The workers' route_cache_ttl_s."),
) -> None:
    """Replay, verify, switch the route, wait out the workers' cache, catch up, verify."""
    if into_backend not in {b.value for b in BackendType}:
        raise typer.BadParameter(f"`--into-backend`: unknown backend {into_backend!r}")
    plan = CutoverPlan(
        kafka=kafka.settings(),
        topic=topic,
        route=parse_route(route, "--route"),
        backend_type=BackendType(into_backend),
        config=parse_json(into_config, "--into-config"),
        actor=actor,
        reason=reason,
        name=name,
        live_group=None if no_live_group else live_group,
        live_route_ttl_s=live_cache_ttl,
    )

    def on_step(step: CutoverStep, message: str) -> None:
        console.print(f"[bold]{step.value}[/bold]: {message}")

    async def go() -> CutoverReport:
        reg = await _open_registry(registry)
        try:
            with progress_bar() as view:
                return await run_cutover(plan, reg, on_step=on_step, on_progress=view)
        finally:
            await reg.store.close()

    report = _run(go)
    for checked in (report.verify, report.final_verify):
        if checked is not None and not checked.identical:
            print_report(checked)
    if not report.ok:
        console.print(f"[red]cutover failed:[/red] {report.failed}")
        raise typer.Exit(1)
    console.print(f"[green]cutover done[/green]: {plan.route.describe()} -> {into_backend}")


app = typer.Typer(no_args_is_help=True, help=__doc__)
app.command("replay")(replay_command)
app.command("verify")(verify_command)
app.command("cutover")(cutover_command)

if __name__ == "__main__":
    app()
