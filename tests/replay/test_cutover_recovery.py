"""A cutover that fails after the switch is finished (--resume) or undone (--abort).

Real local broker and SQLite stores. The failure is injected through the cutover's
step callback right after the route switch (a KafkaConnectionError, what a broker
loss at that moment raises): the one fault the real broker cannot be made to
produce at exactly that step.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from aiokafka.errors import KafkaConnectionError

from event_spine.replay import (
    CutoverPlan,
    CutoverStep,
    ReplayConfig,
    Replayer,
    ReplayFilter,
    ReplayTarget,
    StartFrom,
    run_cutover,
)
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas import BackendType, RequestContext, ResourceKind, RouteKey
from support.pipeline import ctx, new_topic, producer_for, registry_at, route_to_sqlite, unique

STREAMS = [f"orders/{i}" for i in range(4)]


def row_ids(path: Path) -> set[str]:
    """The application's events in a store, without the audit and timeline events the
    CLI emits for its own registry lookups and route changes."""
    with sqlite3.connect(path) as db:
        query = "SELECT event_id FROM spine_events WHERE event_type = 'tick'"
        return {r[0] for r in db.execute(query)}


def cli_own_events(path: Path) -> list[str]:
    """The event types of the audit and timeline events the CLI emitted into a store."""
    with sqlite3.connect(path) as db:
        query = "SELECT event_type FROM spine_events WHERE event_type != 'tick'"
        return [r[0] for r in db.execute(query)]


async def emit(bootstrap: str, topic: str, c: RequestContext, n: int) -> list[str]:
    producer = producer_for(bootstrap, topic)
    try:
        ids = [producer.emit_event(c, "tick", STREAMS[i % 4], {"n": i}) for i in range(n)]
        assert await producer.flush_async(30)
    finally:
        producer.close()
    return ids


async def replay_into(bootstrap: str, topic: str, db: Path, tenant: str) -> None:
    """What a live worker would have written: the tenant's events, into ``db``."""
    await Replayer(
        ReplayConfig(
            kafka=bootstrap,
            topic=topic,
            name=unique("live"),
            target=ReplayTarget.of_backend("sqlite", {"path": str(db)}),
            filters=ReplayFilter.of(tenants=[tenant]),
            include_unrouted=True,
            start=StartFrom.beginning(),
            fetch_max_wait_ms=50,
        )
    ).run()


def key_of(c: RequestContext, kind: ResourceKind = ResourceKind.EVENT_SPINE) -> RouteKey:
    return RouteKey.for_scope(kind, c.key())


async def stores_of(registry: RoutingRegistry, c: RequestContext) -> tuple[Any, Any]:
    writers = await registry.store.load(key_of(c))
    readers = await registry.store.load(key_of(c, ResourceKind.EVENT_STREAM))
    assert writers is not None
    assert readers is not None
    return writers.config["path"], readers.config["path"]


async def failed_cutover(
    broker: Any, tmp: Path, tenant: str
) -> tuple[str, RequestContext, list[str]]:
    """A scope whose cutover to new.db failed right after the switch."""
    bootstrap = broker.bootstrap_servers
    topic = await new_topic(bootstrap, partitions=2)
    c = ctx(tenant)
    registry = await registry_at(tmp / "registry.db")
    try:
        await route_to_sqlite(registry, c, tmp / "old.db")
        history = await emit(bootstrap, topic, c, 60)
        await replay_into(bootstrap, topic, tmp / "old.db", tenant)

        def crash_after_switch(step: CutoverStep, message: str) -> None:
            if step is CutoverStep.SWITCH and message.startswith("route switched"):
                raise KafkaConnectionError("injected: broker lost right after the switch")

        plan = CutoverPlan(
            kafka=bootstrap,
            topic=topic,
            route=key_of(c),
            backend_type=BackendType.SQLITE,
            config={"path": str(tmp / "new.db")},
            actor="ops",
            reason="move disks",
            live_group=None,
            live_route_ttl_s=0,
        )
        report = await run_cutover(plan, registry, on_step=crash_after_switch)
        assert not report.ok
        assert report.failed is not None
        assert "WAS switched" in report.failed
        assert "--resume" in report.failed
        # The state a failed cutover leaves: writers on the new store, readers on the old.
        assert await stores_of(registry, c) == (str(tmp / "new.db"), str(tmp / "old.db"))
    finally:
        await registry.store.close()
    return topic, c, history


def spine_cutover(broker: Any, tmp: Path, topic: str, c: RequestContext, *flags: str) -> Any:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "event_spine.cli.main",
            "cutover",
            "--bootstrap",
            broker.bootstrap_servers,
            "--topic",
            topic,
            "--route",
            f"event_spine:{c.tenant_id}:{c.env}:{c.project_id}:{c.mode}",
            "--actor",
            "ops",
            "--reason",
            "after the incident",
            "--registry",
            f"sqlite:{tmp / 'registry.db'}",
            "--no-live-group",
            "--live-cache-ttl",
            "0",
            "--json",
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return orjson.loads(result.stdout)


async def test_resume_finishes_a_cutover_that_failed_after_the_switch(broker, tmp_path) -> None:
    topic, c, history = await failed_cutover(broker, tmp_path, "t_resume")
    # Events kept coming while nobody finished the cutover.
    later = await emit(broker.bootstrap_servers, topic, c, 20)
    report = await asyncio.to_thread(spine_cutover, broker, tmp_path, topic, c, "--resume")
    assert report["ok"]
    assert report["failed"] is None
    assert next(s["step"] for s in report["steps"]) == "resume"
    assert report["final_verify"]["consistent"]
    # The old store never got the later events: the report says why that is fine.
    assert report["final_verify"]["verdict"].startswith("consistent")
    # The newer events: the 20 emitted, and the audit (and timeline) events of the
    # resume's own registry lookups and changes, which the catch-up carried along.
    own = cli_own_events(tmp_path / "new.db")
    assert "audit.routing.lookup" in own
    assert all(t.startswith(("audit.routing.", "timeline.route.")) for t in own)
    newer = f"{20 + len(own)} newer event(s) in the target"
    assert newer in report["final_verify"]["verdict"]
    assert row_ids(tmp_path / "new.db") == set(history) | set(later)
    registry = await registry_at(tmp_path / "registry.db")
    try:
        new = str(tmp_path / "new.db")
        assert await stores_of(registry, c) == (new, new)  # one store for both
        reads = await registry.history(key_of(c, ResourceKind.EVENT_STREAM))
        assert [h.to_config["path"] for h in reads] == [str(tmp_path / "old.db"), new]
    finally:
        await registry.store.close()
    # A second resume has nothing left to do.
    again = await asyncio.to_thread(spine_cutover, broker, tmp_path, topic, c, "--resume")
    assert again["ok"]
    assert again["settled"]


async def test_abort_puts_writers_back_and_copies_what_only_the_new_store_got(
    broker, tmp_path
) -> None:
    topic, c, history = await failed_cutover(broker, tmp_path, "t_abort")
    # After the switch, live workers wrote new events to the new store only.
    later = await emit(broker.bootstrap_servers, topic, c, 20)
    await replay_into(broker.bootstrap_servers, topic, tmp_path / "new.db", c.tenant_id)
    assert not set(later) & row_ids(tmp_path / "old.db")
    report = await asyncio.to_thread(spine_cutover, broker, tmp_path, topic, c, "--abort")
    assert report["ok"], report
    assert report["final_verify"]["consistent"]
    assert row_ids(tmp_path / "old.db") == set(history) | set(later)
    registry = await registry_at(tmp_path / "registry.db")
    try:
        old = str(tmp_path / "old.db")
        assert await stores_of(registry, c) == (old, old)
        last = (await registry.history(key_of(c)))[-1]
        assert last.reason == "cutover aborted: after the incident"
        assert last.to_config == {"path": old}
    finally:
        await registry.store.close()
    again = await asyncio.to_thread(spine_cutover, broker, tmp_path, topic, c, "--abort")
    assert again["ok"]
    assert again["settled"]
