"""Every place that reads routes audits its lookups by default (found or not), with an
explicit opt-out: `spine tail`, `spine audit verify|export`, RouteChecker refreshes,
and the read services (through the registry they are given, which has no unaudited
default). Real broker, real SQLite registry; the audit events are read off the topic.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from event_spine.audit import registry_audit_hook
from event_spine.backends import StoreFactory
from event_spine.producers import EventSpineProducer, ProducerSettings
from event_spine.routing import RouteChecker, RouteCheckSettings
from event_spine.routing.registry import RoutingRegistry
from event_spine.routing.stores import open_registry_store
from event_spine.schemas import RequestContext, ResourceRoute
from event_spine.schemas.wire import decode_record
from event_spine.services import EventStreamService
from support.pipeline import new_topic, read_topic, registry_at
from support.waiting import wait_until

CTX = RequestContext(tenant_id="t_seen", env="prod", mode="saas", project_id="p_core")
SCOPE_FLAGS = ["--tenant", "t_seen", "--env", "prod", "--mode", "saas", "--project", "p_core"]


async def routed_registry(tmp_path: Path) -> Path:
    db = tmp_path / "registry.db"
    registry = await registry_at(db)
    route = ResourceRoute.for_scope(CTX, "event_spine", "sqlite", {"path": str(tmp_path / "e.db")})
    await registry.set_route(route, actor="test")
    await registry.store.close()
    return db


def lookups(records: list[Any]) -> list[dict[str, Any]]:
    """The outputs of the `routing.lookup` audit events among ``records``."""
    out = []
    for rec in records:
        record = decode_record(rec.value)
        if record.payload.get("action") == "routing.lookup":
            kind = record.payload["input"]["resource_kind"]
            out.append({"kind": kind, **record.payload["output"]})
    return out


def spine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "event_spine.cli.main", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def test_audit_verify_and_tail_audit_their_lookups_unless_opted_out(broker, tmp_path) -> None:
    db = await routed_registry(tmp_path)
    topic = await new_topic(broker.bootstrap_servers, partitions=1)
    registry = ["--registry", f"sqlite:{db}"]
    kafka = ["--bootstrap", broker.bootstrap_servers]
    # No Kafka and no opt-out: refused, naming the opt-out.
    refused = await asyncio.to_thread(spine, "audit", "verify", *registry, *SCOPE_FLAGS)
    assert refused.returncode == 2, refused.stderr
    assert "--no-audit" in refused.stderr
    verified = await asyncio.to_thread(
        spine, "audit", "verify", *registry, *SCOPE_FLAGS, *kafka, "--audit-topic", topic
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    seen = lookups(await read_topic(broker.bootstrap_servers, topic, 2))
    # The event_spine route (found) and the object_store route (not found): both audited.
    assert {"kind": "event_spine", "found": True, "backend": "sqlite"} in seen
    assert {"kind": "object_store", "found": False} in seen
    tailed = await asyncio.to_thread(
        spine, "tail", *registry, *SCOPE_FLAGS, *kafka, "--topic", topic,
        "--catch-up", "s", "--limit", "1", "--startup-timeout-s", "5",
    )  # fmt: skip
    # The audit events of its own lookups are this scope's events on `--topic`,
    # after the live start: the tail prints one of them and stops (--limit 1).
    assert tailed.returncode == 0, tailed.stderr
    after = lookups(await read_topic(broker.bootstrap_servers, topic, len(seen) + 1))
    assert len(after) > len(seen)
    # Opted out: no new audit event.
    count = len(await read_topic(broker.bootstrap_servers, topic, 1))
    quiet = await asyncio.to_thread(spine, "audit", "verify", *registry, *SCOPE_FLAGS, "--no-audit")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert len(await read_topic(broker.bootstrap_servers, topic, count, timeout_s=2)) == count


async def test_route_checker_refreshes_and_services_audit_through_their_registry(
    broker, tmp_path
) -> None:
    db = await routed_registry(tmp_path)
    topic = await new_topic(broker.bootstrap_servers, partitions=1)
    audit_producer = EventSpineProducer(
        ProducerSettings(bootstrap_servers=broker.bootstrap_servers, topic=topic, linger_ms=2)
    )
    hook = registry_audit_hook(audit_producer)
    settings = RouteCheckSettings(
        registry_backend="sqlite", registry_config={"path": str(db)}, refresh_s=0.2
    )
    checker = RouteChecker(settings, audit=hook)
    try:
        checker.check(CTX.scope.key())  # first sight: one lookup
        await wait_until(lambda: checker.lookups >= 3, 20, message="refreshed twice")
        assert audit_producer.flush(20)
        seen = lookups(await read_topic(broker.bootstrap_servers, topic, 3))
        assert len([s for s in seen if s["kind"] == "event_spine"]) >= 3  # refreshes too
        # A read service audits through the registry it is given: no unaudited default.
        with pytest.raises(TypeError):
            RoutingRegistry(await open_registry_store("sqlite", {"path": str(db)}))  # type: ignore[call-arg]
        store = await open_registry_store("sqlite", {"path": str(db)})
        service = EventStreamService(CTX, RoutingRegistry(store, hook), StoreFactory())
        before = len(seen)
        assert await service.list_after("s") == []
        assert audit_producer.flush(20)
        after = lookups(await read_topic(broker.bootstrap_servers, topic, before + 2))
        # The event_stream route (none: audited as not found), then event_spine.
        assert {"kind": "event_stream", "found": False} in after[before:]
        await store.close()
    finally:
        checker.close()
        audit_producer.close()
