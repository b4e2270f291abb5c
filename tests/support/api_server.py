"""`spine serve`'s app under a real uvicorn on a loopback port, in a thread of the test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from event_spine.api import ApiSettings, create_key, key_store_for
from event_spine.api.state import ApiState
from event_spine.broker.tansu import free_port
from event_spine.console import build_app_with_console
from event_spine.dlq import replay_ledger_for
from event_spine.kafka.settings import KafkaSettings
from event_spine.producers import EventSpineProducer, ProducerSettings
from event_spine.routing import RoutingRegistry
from event_spine.routing.stores import open_registry_store
from event_spine.schemas.routes import BackendType
from event_spine.schemas.scope import Scope


async def make_key(registry_db: Path, scope: Scope | None, name: str = "test") -> tuple[str, str]:
    """(key_id, token) of a new key in the registry's key table."""
    store = key_store_for(BackendType.SQLITE, {"path": str(registry_db)})
    await store.open()
    try:
        key, token = await create_key(store, name, scope, admin=scope is None)
    finally:
        await store.close()
    return key.key_id, token


@dataclass
class ApiServer:
    """A running server: its URL and, for assertions, the app's state."""

    port: int
    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> ApiState:
        state: ApiState = self.app.state.api
        return state


def api_settings(bootstrap: str, topic: str, **kw: Any) -> ApiSettings:
    base = ApiSettings(kafka=KafkaSettings(bootstrap_servers=bootstrap), topic=topic)
    return replace(base, **kw)


@contextmanager
def running_api(registry_db: Path, settings: ApiSettings) -> Iterator[ApiServer]:
    """Serve until the block ends; the registry, keys and producer are the server's own."""
    port = free_port()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        registry_store = await open_registry_store("sqlite", {"path": str(registry_db)})
        keys = key_store_for(BackendType.SQLITE, {"path": str(registry_db)})
        await keys.open()
        ledger = replay_ledger_for(BackendType.SQLITE, {"path": str(registry_db)})
        await ledger.open()
        producer = EventSpineProducer(
            ProducerSettings(kafka=settings.kafka, topic=settings.topic, linger_ms=2)
        )
        try:
            registry = RoutingRegistry(registry_store, None)  # unaudited: a test server
            app = build_app_with_console(settings, registry, keys, ledger=ledger, producer=producer)
            config = uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
            )
            server = uvicorn.Server(config)
            box["app"], box["server"] = app, server
            ready.set()
            await server.serve()
        finally:
            producer.close(5)
            await ledger.close()
            await keys.close()
            await registry_store.close()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            box.setdefault("errors", []).append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="api-server", daemon=True)
    thread.start()
    if not ready.wait(30) or "server" not in box:
        raise RuntimeError(f"the API server did not start: {box.get('errors')}")
    running = ApiServer(port, box["app"], box["server"], thread)
    deadline = time.monotonic() + 30
    while not running.server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start listening: {box.get('errors')}")
        time.sleep(0.02)
    try:
        yield running
    finally:
        running.server.should_exit = True
        thread.join(30)
