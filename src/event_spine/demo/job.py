"""Run the whole pipeline locally and show what landed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from event_spine.backends.factory import StoreFactory
from event_spine.broker.tansu import TansuBroker
from event_spine.demo.engine import SampleEngine
from event_spine.emitters.routing import audited_registry
from event_spine.producers.emit import set_default_producer
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.settings import ProducerSettings
from event_spine.producers.topics import ensure_topic
from event_spine.routing.registry import RoutingRegistry
from event_spine.routing.stores import open_registry_store
from event_spine.schemas.context import RequestContext
from event_spine.schemas.routes import BackendType, ResourceKind, ResourceRoute
from event_spine.services.event_stream import EventStreamService

TENANTS = ("t_acme", "t_globex", "t_initech", "t_umbrella", "t_hooli")
TOPIC = "spine.events"


@dataclass(frozen=True)
class DemoConfig:
    """Knobs of the main job."""

    events: int = 20_000
    tenants: int = 3
    streams: int = 8
    workers: int = 2
    rate: int = 5_000
    partitions: int = 6
    workdir: Path = Path(".spine/demo")
    timeout_s: float = 180.0


class StreamReader:
    """Pages every stream with list_after, the way an application reader would."""

    def __init__(self, services: dict[str, EventStreamService], streams: list[str]) -> None:
        self.services = services
        self.streams = streams
        self.cursors: dict[tuple[str, str], str | None] = {}
        self.seen: Counter[tuple[str, str]] = Counter()
        self.out_of_order = 0
        self._last_seq: dict[tuple[str, str], int] = {}

    async def poll(self) -> int:
        """Read everything new; returns the total read so far."""
        for tenant, service in self.services.items():
            for stream in self.streams:
                await self._drain(tenant, stream, service)
        return sum(self.seen.values())

    async def _drain(self, tenant: str, stream: str, service: EventStreamService) -> None:
        key = (tenant, stream)
        while True:
            page = await service.list_after(stream, self.cursors.get(key), limit=1000)
            if not page:
                return
            for event in page:
                seq = event.record.payload["seq"]
                if seq != self._last_seq.get(key, -1) + 1:
                    self.out_of_order += 1
                self._last_seq[key] = seq
            self.seen[key] += len(page)
            self.cursors[key] = page[-1].event_id


def worker_command(bootstrap: str, registry_db: Path, *flags: str) -> list[str]:
    """The argv of a `spine worker` child process on this interpreter, SQLite routes."""
    return [
        sys.executable,
        "-m",
        "event_spine.cli.main",
        "worker",
        "--bootstrap",
        bootstrap,
        "--registry",
        f"sqlite:{registry_db}",
        *flags,
    ]


def _start_workers(
    count: int, bootstrap: str, registry: Path, logs: Path
) -> list[subprocess.Popen[bytes]]:
    workers = []
    for i in range(count):
        log = (logs / f"worker-{i}.log").open("wb")
        workers.append(
            subprocess.Popen(
                worker_command(
                    bootstrap,
                    registry,
                    "--worker-id",
                    f"demo-worker-{i}",
                    "--http-port",
                    "0",
                    "--session-timeout-ms",
                    "6000",
                    "--heartbeat-interval-ms",
                    "500",
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                # The demo's broker is local and plaintext: SPINE_KAFKA_* may describe
                # the user's real cluster.
                env={k: v for k, v in os.environ.items() if not k.startswith("SPINE_KAFKA_")},
            )
        )
    return workers


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        proc.send_signal(signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _setup_routes(
    registry: RoutingRegistry, contexts: list[RequestContext], workdir: Path
) -> None:
    for ctx in contexts:
        await registry.set_route(
            ResourceRoute.for_scope(
                ctx,
                ResourceKind.EVENT_SPINE,
                BackendType.SQLITE,
                {"path": str(workdir / f"events-{ctx.tenant_id}.db")},
            ),
            actor="spine-demo",
            reason="demo setup",
        )


async def run(config: DemoConfig, console: Console) -> bool:
    """The job; returns True when every emitted event was read back once, in order."""
    workdir = config.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    contexts = [
        RequestContext(tenant_id=t, env="dev", mode="saas", project_id="p_demo", surface_id="demo")
        for t in TENANTS[: config.tenants]
    ]
    with TansuBroker(log_path=workdir / "broker.log") as broker:
        console.print(f"broker: tansu on {broker.bootstrap_servers} (pid {broker.pid})")
        await ensure_topic(broker.kafka, TOPIC, config.partitions)
        registry_path = workdir / "registry.db"
        registry_store = await open_registry_store(BackendType.SQLITE, {"path": str(registry_path)})
        # Audited like every registry event-spine opens: the demo's route changes and
        # its readers' lookups become audit events in each tenant's `audit` stream.
        audited = audited_registry(registry_store, audit_kafka=broker.kafka, audit_topic=TOPIC)
        registry = await audited.__aenter__()
        await _setup_routes(registry, contexts, workdir)
        console.print(f"routes: {len(contexts)} tenants -> SQLite files in {workdir}")
        workers = _start_workers(config.workers, broker.bootstrap_servers, registry_path, workdir)
        console.print(f"sink workers: {config.workers} processes in group spine-sink")
        producer = EventSpineProducer(ProducerSettings(kafka=broker.kafka, topic=TOPIC))
        set_default_producer(producer)
        engine = SampleEngine(contexts, config.streams, config.events, config.rate)
        stores = StoreFactory()
        reader = StreamReader(
            {c.tenant_id: EventStreamService(c, registry, stores) for c in contexts}, engine.streams
        )
        try:
            engine.start()
            read = await _show_progress(config, producer, reader, console)
            engine.join()
            producer.close()
        finally:
            set_default_producer(None)
            _stop_workers(workers)
            await stores.close()
            await audited.__aexit__(None, None, None)  # closes the registry store too
    return _report(config, engine, reader, read, console)


async def _show_progress(
    config: DemoConfig, producer: EventSpineProducer, reader: StreamReader, console: Console
) -> int:
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
    )
    deadline = time.monotonic() + config.timeout_s
    read = 0
    with Progress(*columns, console=console) as progress:
        emitted = progress.add_task("emitted by the engine", total=config.events, extra="")
        acked = progress.add_task("acked by the broker", total=config.events, extra="")
        stored = progress.add_task("persisted (read back)", total=config.events, extra="")
        while read < config.events and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            stats = producer.stats
            read = await reader.poll()
            progress.update(emitted, completed=stats.emitted, extra=f"dropped {stats.dropped}")
            progress.update(acked, completed=stats.sent, extra=f"buffered {stats.buffered}")
            progress.update(stored, completed=read, extra=f"lag {stats.sent - read}")
    return read


def _report(
    config: DemoConfig, engine: SampleEngine, reader: StreamReader, read: int, console: Console
) -> bool:
    table = Table("tenant", "streams", "emitted", "persisted", "read back once, in order")
    for tenant in TENANTS[: config.tenants]:
        emitted = sum(n for (t, _), n in engine.emitted.items() if t == tenant)
        seen = sum(n for (t, _), n in reader.seen.items() if t == tenant)
        ok = emitted == seen
        table.add_row(
            tenant, str(len(engine.streams)), str(emitted), str(seen), "yes" if ok else "NO"
        )
    console.print(table)
    total_emitted = sum(engine.emitted.values())
    ok = total_emitted == read == config.events and reader.out_of_order == 0
    verdict = "[green]OK[/green]" if ok else "[red]MISMATCH[/red]"
    console.print(
        f"{verdict}: emitted {total_emitted}, persisted and read back {read}, "
        f"out of order {reader.out_of_order}"
    )
    return ok
