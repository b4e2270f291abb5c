"""`spine tail`: print one tenant's events as JSON lines as they come."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
import orjson
import typer

from event_spine.backends.factory import StoreFactory
from event_spine.cli.audit import (
    EnvOption,
    ModeOption,
    ProjectOption,
    RegistryOption,
    TenantOption,
    scope_fields,
)
from event_spine.cli.audited import audit_target, no_audit_option, opened_registry
from event_spine.cli.kafka_options import KafkaFlags, kafka_options
from event_spine.kafka.settings import KafkaSettings
from event_spine.schemas.context import RequestContext
from event_spine.schemas.wire import StoredEvent
from event_spine.subscriptions import SubscriptionFilter, subscribe


def event_line(event: StoredEvent) -> str:
    """One event as a JSON line: its position, then the wire fields."""
    return orjson.dumps({"position": event.position, **msgspec.to_builtins(event.record)}).decode()


@kafka_options
def tail(
    kafka: KafkaFlags,
    registry: str = RegistryOption,
    tenant: str = TenantOption,
    env: str = EnvOption,
    mode: str = ModeOption,
    project: str = ProjectOption,
    topic: str = typer.Option("spine.events", "--topic"),
    type_prefix: list[str] = typer.Option([], "--type-prefix", help="Repeatable."),
    stream_prefix: list[str] = typer.Option([], "--stream-prefix", help="Repeatable."),
    catch_up: list[str] = typer.Option(
        [], "--catch-up", help="A stream to print from its start first (repeatable)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Stop after N events."),
    no_audit: bool = no_audit_option("--topic"),
) -> None:
    """Print the tenant's events (stored ones of --catch-up streams, then live) until
    Ctrl-C or --limit. Only this scope's events are ever printed. Its route lookups
    are audited (into --topic) unless --no-audit."""
    ctx = RequestContext.model_validate(scope_fields(tenant, env, mode, project))
    event_filter = SubscriptionFilter(tuple(type_prefix), (), tuple(stream_prefix))
    settings = kafka.settings()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _tail(
                ctx,
                event_filter,
                (settings, audit_target(settings, no_audit)),
                registry,
                topic,
                dict.fromkeys(catch_up),
                limit,
            )
        )


async def _tail(
    ctx: RequestContext,
    event_filter: SubscriptionFilter,
    kafka: tuple[KafkaSettings, KafkaSettings | None],
    location: str,
    topic: str,
    after: dict[str, str | None],
    limit: int | None,
) -> None:
    settings, audit_kafka = kafka
    stores = StoreFactory()
    async with opened_registry(location, audit_kafka, topic) as registry:
        events = subscribe(
            ctx,
            event_filter,
            registry=registry,
            stores=stores,
            kafka=settings,
            topic=topic,
            after=after,
        )
        printed = 0
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    typer.echo(event_line(event))
                    printed += 1
                    if limit is not None and printed >= limit:
                        break
        finally:
            await stores.close()


if __name__ == "__main__":
    typer.run(tail)
