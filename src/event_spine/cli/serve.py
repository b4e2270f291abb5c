"""`spine serve` (the HTTP API) and `spine keys create|list|revoke` (its API keys)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

import orjson
import typer

from event_spine.cli.audit import scope_fields
from event_spine.cli.audited import no_audit_option
from event_spine.cli.kafka_options import KafkaFlags, kafka_options
from event_spine.cli.options import check_registry_exists, open_registry_at, parse_location
from event_spine.cli.routes import RegistryOption

if TYPE_CHECKING:
    from uvicorn import Server

    from event_spine.api import ApiSettings

T = TypeVar("T")

keys_app = typer.Typer(no_args_is_help=True, help="Manage the HTTP API's keys.")


def _missing_api_extra(exc: ImportError) -> typer.BadParameter:
    return typer.BadParameter(
        f"the HTTP API needs the `api` extra: pip install 'event-spine[api]' ({exc.name} "
        f"is missing)"
    )


def _with_keys(location: str, action: Callable[..., Awaitable[T]]) -> T:
    from event_spine.api.keystores import key_store_for  # noqa: PLC0415

    backend, config = parse_location(location)
    check_registry_exists(backend, config, create=False)
    store = key_store_for(backend, config)

    async def go() -> T:
        await store.open()
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(go())


@keys_app.command("create")
def keys_create(
    registry: str = RegistryOption,
    name: str = typer.Option(..., "--name", help="What the key is for (shown in `list`)."),
    admin: bool = typer.Option(False, "--admin", help="An admin key (admin routes only)."),
    tenant: str | None = typer.Option(None, "--tenant"),
    env: str | None = typer.Option(None, "--env"),
    mode: str | None = typer.Option(None, "--mode"),
    project: str | None = typer.Option(None, "--project"),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (the token included)."),
) -> None:
    """Create a key bound to one scope (--tenant --env --mode --project) or --admin.
    The token is printed once; only its hash is stored."""
    from event_spine.api.keys import create_key  # noqa: PLC0415
    from event_spine.schemas.scope import Scope  # noqa: PLC0415

    given = [v for v in (tenant, env, mode, project) if v is not None]
    if admin and given:
        raise typer.BadParameter(
            "`--admin` keys have no scope: drop --tenant/--env/--mode/--project"
        )
    if not admin and len(given) != 4:
        raise typer.BadParameter(
            "a key needs a whole scope (`--tenant`, `--env`, `--mode`, `--project`) or `--admin`"
        )
    scope = (
        None
        if admin
        else Scope.model_validate(scope_fields(str(tenant), str(env), str(mode), str(project)))
    )
    key, token = _with_keys(registry, lambda store: create_key(store, name, scope, admin=admin))
    if json_out:
        typer.echo(orjson.dumps({**key.as_json(), "token": token}).decode())
        return
    typer.echo(f"key {key.key_id} ({key.describe()}) created; the token, shown only now:")
    typer.echo(token)


@keys_app.command("list")
def keys_list(
    registry: str = RegistryOption,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every key (never a token): id, name, scope or admin, created, revoked."""
    keys = _with_keys(registry, lambda store: store.list_keys())
    if json_out:
        typer.echo(orjson.dumps([k.as_json() for k in keys], option=orjson.OPT_INDENT_2).decode())
        return
    for k in keys:
        state = "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d %H:%M}"
        typer.echo(f"{k.key_id}  {k.name:<20} {state:<24} {k.describe()}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="The key id (`spine keys list`)."),
    registry: str = RegistryOption,
) -> None:
    """Revoke a key: its next request gets 401."""
    revoked = _with_keys(registry, lambda store: store.revoke(key_id, datetime.now(UTC)))
    if not revoked:
        raise typer.BadParameter(f"`KEY_ID`: no active key {key_id!r} (see `spine keys list`)")
    typer.echo(f"key {key_id} revoked")


@kafka_options
def serve(
    kafka: KafkaFlags,
    registry: str = RegistryOption,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, min=0, max=65535, help="Port to listen on."),
    topic: str = typer.Option("spine.events", "--topic", help="The events topic."),
    dlq_topic: str | None = typer.Option(None, "--dlq-topic", help="Default: <topic>.dlq."),
    sink_group: str = typer.Option("spine-sink", "--sink-group", help="Group of the lag route."),
    rate_per_s: float = typer.Option(50.0, min=0.1, help="Requests/s per key (token bucket)."),
    rate_burst: int = typer.Option(100, min=1, help="Burst per key above the rate."),
    sse_buffer_events: int = typer.Option(
        1000, min=1, help="SSE: events queued per connection before overflow."
    ),
    sse_heartbeat_s: float = typer.Option(15.0, min=0.1, help="SSE: heartbeat interval (s)."),
    no_emit: bool = typer.Option(False, "--no-emit", help="Refuse POST /v1/events (503)."),
    no_audit: bool = no_audit_option("--topic"),
) -> None:
    """Serve the HTTP API (docs/api.md) with uvicorn until Ctrl-C."""
    try:
        from event_spine.api import ApiSettings  # noqa: PLC0415
    except ImportError as exc:
        raise _missing_api_extra(exc) from exc
    settings = ApiSettings(
        kafka=kafka.settings(),
        topic=topic,
        dlq_topic=dlq_topic,
        sink_group_id=sink_group,
        rate_per_s=rate_per_s,
        rate_burst=rate_burst,
        sse_buffer_events=sse_buffer_events,
        sse_heartbeat_s=sse_heartbeat_s,
    )
    asyncio.run(_serve(settings, registry, host, port, emit=not no_emit, audit=not no_audit))


def _graceful_server(base: type[Server]) -> type[Server]:
    """uvicorn re-raises a caught SIGTERM/SIGINT at the end of serve(), which killed
    the process before the producer flushed events already answered 202: catch the
    signal the same way, but return, so the cleanup below runs and the exit is 0."""

    class GracefulServer(base):  # type: ignore[valid-type,misc]
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            # Live SSE responses never end by themselves: tell them to, or the
            # shutdown waits for every client to leave.
            stopping = self.config.app.state.api.stopping
            asyncio.get_running_loop().call_soon_threadsafe(stopping.set)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return GracefulServer


async def _serve(
    settings: ApiSettings, location: str, host: str, port: int, *, emit: bool, audit: bool
) -> None:
    import uvicorn  # noqa: PLC0415

    from event_spine.api import key_store_for  # noqa: PLC0415
    from event_spine.console import build_app_with_console  # noqa: PLC0415
    from event_spine.dlq.ledgers import replay_ledger_for  # noqa: PLC0415
    from event_spine.emitters.routing import audited_registry  # noqa: PLC0415
    from event_spine.producers.producer import EventSpineProducer  # noqa: PLC0415
    from event_spine.producers.settings import ProducerSettings  # noqa: PLC0415

    registry_store = await open_registry_at(location)
    keys = key_store_for(*parse_location(location))
    await keys.open()
    # The console's DLQ replays are recorded beside the keys (`spine dlq replay` shares it).
    ledger = replay_ledger_for(*parse_location(location))
    await ledger.open()
    producer = (
        EventSpineProducer(ProducerSettings(kafka=settings.kafka, topic=settings.topic))
        if emit
        else None
    )
    # Every route lookup a request makes is audited into the events topic, as in every
    # other command that reads routes (`--no-audit` is the explicit opt-out).
    audit_kafka = settings.kafka if audit else None
    try:
        async with audited_registry(
            registry_store, audit_kafka=audit_kafka, audit_topic=settings.topic
        ) as registry:
            app = build_app_with_console(settings, registry, keys, ledger=ledger, producer=producer)
            config = uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="info",
                lifespan="on",
                # A backstop: requests still running this long after a stop are cancelled.
                timeout_graceful_shutdown=10,
            )
            await _graceful_server(uvicorn.Server)(config).serve()
    finally:
        if producer is not None:
            producer.close()
        await ledger.close()
        await keys.close()
