"""The audit hash chain: assigned by the sink, verified from the store, tamper-evident."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import orjson
import pytest

from event_spine.audit import emit_audit_event, registry_audit_hook
from event_spine.audit.chain import AUDIT_HASH, AUDIT_STREAM, link_audit_chain, linked
from event_spine.audit.emit import audit_failures
from event_spine.audit.verify import verify_chain
from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.events import SqliteEventStore
from event_spine.broker.tansu import free_port
from event_spine.producers import EventSpineProducer, ProducerSettings
from event_spine.routing import RoutingRegistry
from event_spine.schemas import ResourceKind, RouteKey, StoredEvent
from support.app import App, running_app
from support.events import SCOPE, stored
from support.pipeline import ctx

POSITIONS = [10, 20, 30, 40, 50, 60]


@pytest.fixture
async def app(broker, tmp_path):
    async with running_app(broker.bootstrap_servers, tmp_path) as running:
        yield running


def verify_cli(registry_db: Path, tenant: str = "t_acme") -> subprocess.CompletedProcess[str]:
    args = ["--registry", f"sqlite:{registry_db}", "--tenant", tenant, "--env", "dev"]
    args += ["--mode", "lab", "--project", "p_core", "--no-audit"]
    return subprocess.run(
        [sys.executable, "-m", "event_spine.cli.audit", "verify", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_routing_updates_are_chained_in_the_store(app: App) -> None:
    c = ctx()
    audited = RoutingRegistry(app.registry.store, registry_audit_hook(app.producer))
    await app.route(c)  # not audited: the sink must not depend on the hook
    key = RouteKey.for_scope(ResourceKind.EVENT_SPINE, c.key())
    await audited.update_metadata(key, actor="ops", tier="gold")
    await audited.get_route(key)
    await app.start_worker(audit_route_lookups=True)  # its own lookups are audited too
    emit_audit_event(c, "report.exported", surface="reports", producer=app.producer)
    events = await app.wait_stored(c, AUDIT_STREAM, 4)
    actions = [e.record.payload["action"] for e in events]
    assert {"routing.update", "routing.lookup", "report.exported"} <= set(actions)
    assert {e.record.payload["surface"] for e in events} >= {"routing", "reports"}
    store = app.open_events_store()
    await store.open()
    try:
        report = await verify_chain(store, c.scope)
    finally:
        await store.close()
    assert report.ok, report.describe()
    assert report.checked == len(events)
    assert report.head_hash == events[-1].record.metadata[AUDIT_HASH]
    result = verify_cli(app.registry_db)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(events)} audit events chained" in result.stdout


async def build_chain(path: Path) -> list[StoredEvent]:
    """Six audit events and one non-audit event in one stream, linked and stored."""
    store = SqliteEventStore(SqliteConfig(path=str(path)))
    await store.open()
    events = [
        stored(p, AUDIT_STREAM, event_type="audit.thing", payload={"n": p}) for p in POSITIONS
    ]
    events.insert(3, stored(35, AUDIT_STREAM, event_type="note.added"))
    chain = await link_audit_chain(store, events)
    await store.append_batch(chain)
    assert (await verify_chain(store, SCOPE)).ok
    await store.close()
    return [e for e in chain if e.record.event_type.startswith("audit.")]


def modify(db: sqlite3.Connection, chain: list[StoredEvent], i: int) -> int:
    body = orjson.loads(
        db.execute(
            "SELECT body FROM spine_events WHERE event_id=?", (chain[i].event_id,)
        ).fetchone()[0]
    )
    body["payload"]["n"] = -1
    db.execute(
        "UPDATE spine_events SET body=? WHERE event_id=?", (orjson.dumps(body), chain[i].event_id)
    )
    return chain[i].position


def delete(db: sqlite3.Connection, chain: list[StoredEvent], i: int) -> int:
    db.execute("DELETE FROM spine_events WHERE event_id=?", (chain[i].event_id,))
    # The next member no longer follows; the last one is named by the watermark.
    return chain[i + 1].position if i + 1 < len(chain) else chain[i].position


def insert(db: sqlite3.Connection, chain: list[StoredEvent], i: int) -> int:
    # The strongest insert short of rewriting the tail: a correctly linked forgery.
    prev = chain[i - 1].record.metadata[AUDIT_HASH] if i else "0" * 64
    forged = linked(stored(chain[i].position - 1, AUDIT_STREAM, event_type="audit.thing"), prev)
    r = forged.record
    row = (r.event_id, *SCOPE.key(), AUDIT_STREAM, forged.position, r.event_type)
    db.execute(
        "INSERT INTO spine_events VALUES (?,?,?,?,?,?,?,?,?,?)",
        (*row, r.ts.isoformat(), msgspec.json.encode(r)),
    )
    return forged.position  # named: it and the next record claim the same predecessor


def reorder(db: sqlite3.Connection, chain: list[StoredEvent], i: int) -> int:
    j = i + 1 if i + 1 < len(chain) else i - 1
    a, b = sorted((i, j))
    sql = "UPDATE spine_events SET position=? WHERE event_id=?"
    db.execute(sql, (-1, chain[a].event_id))
    db.execute(sql, (chain[a].position, chain[b].event_id))
    db.execute(sql, (chain[b].position, chain[a].event_id))
    return chain[a].position


async def test_redelivery_zombie_and_producer_retry_agree(tmp_path: Path) -> None:
    store = SqliteEventStore(SqliteConfig(path=str(tmp_path / "events.db")))
    await store.open()
    batch = [stored(p, AUDIT_STREAM, event_type="audit.thing") for p in POSITIONS]
    zombie = await link_audit_chain(store, batch)  # computed before anyone wrote
    owner = await link_audit_chain(store, batch)
    assert zombie == owner
    assert (await store.append_batch(owner)).written == 6
    assert (await store.append_batch(zombie)).duplicates == 6  # identical: a no-op
    # Redelivered overlap, a producer retry of a stored event at a new offset, new events.
    retry = StoredEvent(batch[1].record, 65)
    more = [stored(p, AUDIT_STREAM, event_type="audit.thing") for p in (70, 80)]
    again = await link_audit_chain(store, [*batch[4:], retry, *more])
    assert again[:3] == [*batch[4:], retry]  # left as they are: the store drops them
    await store.append_batch(again)
    # A non-audit event ends the stream: the predecessor is found by a scan.
    await store.append_batch([stored(90, AUDIT_STREAM, event_type="note.added")])
    last = await link_audit_chain(store, [stored(100, AUDIT_STREAM, event_type="audit.thing")])
    await store.append_batch(last)
    report = await verify_chain(store, SCOPE)
    await store.close()
    assert report.ok, report.describe()
    assert report.checked == 9


@pytest.mark.parametrize("tamper", [modify, delete, insert, reorder])
async def test_tampering_with_any_record_is_detected(
    tmp_path: Path, tamper: Callable[[sqlite3.Connection, list[StoredEvent], int], int]
) -> None:
    for i in range(len(POSITIONS)):
        path = tmp_path / f"{tamper.__name__}-{i}.db"
        chain = await build_chain(path)
        with sqlite3.connect(path) as db:
            expected_position = tamper(db, chain, i)
        store = SqliteEventStore(SqliteConfig(path=str(path)))
        await store.open()
        report = await verify_chain(store, SCOPE)
        await store.close()
        assert not report.ok, f"{tamper.__name__} of record {i} went unnoticed"
        assert report.broken is not None
        assert report.broken.position == expected_position, report.describe()


async def test_cli_prints_the_first_broken_link(app: App) -> None:
    c = ctx()
    await app.route(c)
    await app.start_worker()
    for n in range(5):
        emit_audit_event(c, "thing.done", input_data={"n": n}, producer=app.producer)
    events = await app.wait_stored(c, AUDIT_STREAM, 5)
    await app.stop_worker(app.workers[0])
    with sqlite3.connect(app.events_db) as db:
        modify(db, events, 2)
    result = verify_cli(app.registry_db)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"position {events[2].position}" in result.stdout
    assert events[2].event_id in result.stdout
    assert "modified" in result.stdout


async def test_chain_holds_across_worker_restart_and_rebalance(app: App) -> None:
    contexts = [ctx(f"t_chain{i}") for i in range(4)]  # spread over the 4 partitions
    await app.route(*contexts)
    emitted: dict[str, list[str]] = {c.tenant_id: [] for c in contexts}

    def burst(n: int) -> None:
        for k in range(n):
            for c in contexts:
                eid = emit_audit_event(c, "step.done", input_data={"k": k}, producer=app.producer)
                emitted[c.tenant_id].append(eid)

    first = await app.start_worker(max_records=17)
    burst(60)
    await app.wait_stored(contexts[0], AUDIT_STREAM, 20)
    second = await app.start_worker(max_records=17)  # rebalance while events flow
    burst(60)
    await app.stop_worker(first)  # rebalance: the second takes every partition
    burst(60)
    for c in contexts:
        await app.wait_stored(c, AUDIT_STREAM, 180)
    assert second.stats.written > 0
    await app.stop_worker(second)
    burst(60)  # nobody consumes these until the restart
    await app.start_worker(max_records=17)
    store = app.open_events_store()
    await store.open()
    try:
        for c in contexts:
            events = await app.wait_stored(c, AUDIT_STREAM, 240, timeout_s=60)
            assert [e.event_id for e in events] == emitted[c.tenant_id]
            report = await verify_chain(store, c.scope)
            assert report.ok, report.describe()
            assert report.checked == 240
    finally:
        await store.close()


def closed_port_producer() -> EventSpineProducer:
    settings = ProducerSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", topic="nowhere")
    return EventSpineProducer(settings, start=False)


def test_fire_and_forget_hands_over_to_the_buffer_and_counts_failures() -> None:
    producer = closed_port_producer()
    c = ctx()
    # Fire-and-forget hands over to the buffer: no network, no error.
    emit_audit_event(c, "key.rotated", producer=producer)
    assert producer.stats.emitted == 1
    producer.close(0)
    before = audit_failures()
    emit_audit_event(c, "key.rotated", producer=producer)  # closed: counted, not raised
    assert audit_failures() == before + 1
