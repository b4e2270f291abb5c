"""`spine replay`, `spine verify` and `spine cutover`.

The functions below are registered on the main `spine` app; ``app`` here runs them
stand-alone (``python -m event_spine.cli.replay replay ...``).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import typer

from event_spine.backends.factory import build_event_store, build_store
from event_spine.backends.seams import EventStore
from event_spine.cli.audited import audit_target, no_audit_option, opened_registry
from event_spine.cli.failures import run
from event_spine.cli.kafka_options import KafkaFlags, kafka_options
from event_spine.cli.options import open_registry_at, parse_location
from event_spine.cli.replay_args import (
    ROUTE_HELP,
    parse_json,
    parse_route,
    parse_start,
)
from event_spine.cli.replay_view import console, print_cutover, print_report, progress_bar
from event_spine.cli.routes import print_json
from event_spine.kafka.settings import KafkaSettings
from event_spine.replay.cutover import (
    Cutover,
    CutoverPlan,
    CutoverReport,
    CutoverStep,
    StepCallback,
)
from event_spine.replay.filters import ReplayFilter
from event_spine.replay.progress import ReplayProgress
from event_spine.replay.reader import DEFAULT_MAX_RECORDS
from event_spine.replay.replayer import ProgressCallback, ReplayConfig, Replayer
from event_spine.replay.target import ReplayTarget
from event_spine.replay.verify import VerifyReport, discover_streams, streams_of_scope, verify
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.routes import BackendType
from event_spine.schemas.scope import Scope

T = TypeVar("T")

REGISTRY_HELP = "Routing registry: sqlite:/path or BACKEND:{json}"


def _run(action: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine (errors end the command through `spine`'s one error surface)."""
    return asyncio.run(action())


NoAuditOption = no_audit_option("--topic")


@dataclass(frozen=True)
class _Registry:
    """Where the registry is, and where its lookups and changes are audited."""

    location: str | None
    kafka: KafkaSettings | None
    topic: str
    no_audit: bool

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[RoutingRegistry]:
        if self.location is None:
            raise typer.BadParameter("a route needs `--registry`")
        kafka = audit_target(self.kafka, self.no_audit)
        async with opened_registry(self.location, kafka, self.topic) as registry:
            yield registry


# -- replay ----------------------------------------------------------------------------


def default_replay_name(topic: str, target: ReplayTarget, filters: ReplayFilter) -> str:
    """Same topic, target and filter give the same name: a rerun resumes."""
    identity = orjson.dumps(
        [topic, target.backend_type.value, target.config, filters.describe()],
        option=orjson.OPT_SORT_KEYS,
    )
    return f"{target.backend_type.value}-{hashlib.sha256(identity).hexdigest()[:12]}"


async def _resolve_target(
    into_route: str | None, registry: _Registry, into_backend: str | None, into_config: str
) -> ReplayTarget:
    if (into_route is None) == (into_backend is None):
        raise typer.BadParameter("give exactly one of --into-route and --into-backend")
    if into_backend is not None:
        return ReplayTarget.of_backend(into_backend, parse_json(into_config, "--into-config"))
    assert into_route is not None
    async with registry.opened() as reg:
        return await ReplayTarget.from_registry(reg, parse_route(into_route))


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
    no_audit: bool = NoAuditOption,
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
    filters = ReplayFilter.of(
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
        where = _Registry(registry, settings, topic, no_audit)
        target = await _resolve_target(into_route, where, into_backend, into_config)
        live = None
        if registry is not None and not include_unrouted:
            # The per-event rule checks are not audited: their audit events would go
            # into the topic being replayed (and back into the target with --follow).
            live = RoutingRegistry(await open_registry_at(registry), None)
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
    location: str | None, route: str | None, registry: _Registry, what: str
) -> EventStore:
    if (location is None) == (route is None):
        raise typer.BadParameter(f"give exactly one of --{what} and --{what}-route")
    if location is not None:
        backend, config = parse_location(location, f"--{what}")
        store: EventStore = build_store(backend, config, "events", f"--{what}")
        await store.open()
        return store
    assert route is not None
    async with registry.opened() as reg:
        key = parse_route(route, f"--{what}-route")
        found = await reg.get_route(key)
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
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    no_audit: bool = NoAuditOption,
) -> None:
    """Compare two stores stream by stream; exit 1 when they differ."""
    scope = Scope(tenant_id=tenant, env=env, mode=mode, project_id=project)  # type: ignore[arg-type]
    settings = kafka.settings_if_any()  # finds the scope's streams in the topic
    if not stream and settings is None:
        raise typer.BadParameter("give --stream (repeatable) or --bootstrap to find the streams")

    async def go() -> VerifyReport:
        streams = list(stream)
        if not streams:
            assert settings is not None
            found = await discover_streams(settings, topic, ReplayFilter.of(tenants=[tenant]))
            streams = list(streams_of_scope(found, scope))
        where = _Registry(registry, settings, topic, no_audit)
        left = await _open_side(source, source_route, where, "source")
        try:
            right = await _open_side(target, target_route, where, "target")
            try:
                return await verify(left, right, scope, streams, max_samples=samples)
            finally:
                await right.close()
        finally:
            await left.close()

    report = _run(go)
    if as_json:
        print_json(report.as_dict())
    else:
        print_report(report)
    if not report.identical:
        raise typer.Exit(1)


# -- cutover ---------------------------------------------------------------------------


@kafka_options
def cutover_command(
    kafka: KafkaFlags,
    route: str = typer.Option(..., help=f"The route to move: {ROUTE_HELP}."),
    into_backend: str | None = typer.Option(
        None, help="New backend type (required unless --resume or --abort)."
    ),
    into_config: str = typer.Option("{}", help="New backend config as JSON."),
    actor: str = typer.Option(..., help="Who moves the route (kept in its history)."),
    reason: str = typer.Option(..., help="Why (kept in its history)."),
    registry: str = typer.Option(..., envvar="SPINE_REGISTRY", help=REGISTRY_HELP),
    topic: str = typer.Option("spine.events"),
    name: str | None = typer.Option(None, help="Replay name; default derived from route + store."),
    live_group: str = typer.Option("spine-sink", help="The live sink workers' group."),
    no_live_group: bool = typer.Option(False, help="No live workers: do not wait for them."),
    live_cache_ttl: float = typer.Option(5.0, min=0, help="The workers' route_cache_ttl_s."),
    resume: bool = typer.Option(
        False, "--resume", help="Finish a failed cutover (writers moved, readers held)."
    ),
    abort: bool = typer.Option(
        False, "--abort", help="Undo a failed cutover: writers back, the old store caught up."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON only."),
    no_audit: bool = NoAuditOption,
) -> None:
    """Replay, verify, switch the route, wait out the workers' cache, catch up, verify.

    A failed cutover (writers on the new store, readers held on the old one) is finished
    with --resume or undone with --abort; both end with readers and writers on one store.
    """
    _check_cutover_flags(into_backend, resume=resume, abort=abort)
    key = parse_route(route, "--route")
    config = parse_json(into_config, "--into-config")

    def on_step(step: CutoverStep, message: str) -> None:
        console.print(f"[bold]{step.value}[/bold]: {message}")

    async def go() -> CutoverReport:
        settings = kafka.settings()
        async with _Registry(registry, settings, topic, no_audit).opened() as reg:
            backend, target = BackendType(into_backend) if into_backend else None, config
            if backend is None:  # resume/abort: the target is where the writers are now
                writers = await reg.get_route(key)
                backend, target = writers.backend_type, writers.config
            plan = CutoverPlan(
                kafka=settings,
                topic=topic,
                route=key,
                backend_type=backend,
                config=target,
                actor=actor,
                reason=reason,
                name=name,
                live_group=None if no_live_group else live_group,
                live_route_ttl_s=live_cache_ttl,
            )
            if as_json:
                return await _cutover(plan, reg, resume=resume, abort=abort)
            with progress_bar() as view:
                return await _cutover(
                    plan, reg, resume=resume, abort=abort, on_step=on_step, on_progress=view
                )

    report = _run(go)
    if as_json:
        print_json(report.as_dict())
    else:
        print_cutover(report)
    if not report.ok:
        raise typer.Exit(1)


def _check_cutover_flags(into_backend: str | None, *, resume: bool, abort: bool) -> None:
    if resume and abort:
        raise typer.BadParameter("give at most one of --resume and --abort")
    if into_backend is None and not (resume or abort):
        raise typer.BadParameter("`--into-backend` is required (unless --resume or --abort)")
    if into_backend is not None and into_backend not in {b.value for b in BackendType}:
        known = ", ".join(b.value for b in BackendType)
        raise typer.BadParameter(f"`--into-backend`: unknown backend {into_backend!r} ({known})")


async def _cutover(
    plan: CutoverPlan,
    registry: RoutingRegistry,
    *,
    resume: bool,
    abort: bool,
    on_step: StepCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> CutoverReport:
    cutover = Cutover(plan, registry, on_step=on_step, on_progress=on_progress)
    if resume:
        return await cutover.resume()
    if abort:
        return await cutover.abort()
    return await cutover.run()


app = typer.Typer(no_args_is_help=True, help=__doc__)
app.command("replay")(replay_command)
app.command("verify")(verify_command)
app.command("cutover")(cutover_command)

if __name__ == "__main__":
    sys.exit(run(app))
