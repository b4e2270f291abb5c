"""One audit chain across route switches (issue 15, item 3), on SQLite and PostgreSQL.

Audit events go through the sink's own audit code (``SinkAudit.link``/``anchor``
with the route the sink resolved, as ``BatchProcessor`` calls them), the route is
switched by ``RoutingRegistry.switch_route`` (what `spine routes switch` and the
switch step of `spine cutover` call), and the chain is verified by the code of
`spine audit verify` and by the exported bundle's verifier in ``python -I -S``.

Each tamper test prints its matrix (run with -s): case, tried, detected.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from event_spine.audit.anchors import load_anchors
from event_spine.audit.chain import AUDIT_HASH, AUDIT_STREAM, Member, link_audit_chain
from event_spine.audit.export import Window
from event_spine.audit.keys import LocalAuditKeys
from event_spine.audit.sink import SinkAudit
from event_spine.backends.factory import StoreFactory, TabularFactory
from event_spine.backends.seams import EventStore
from event_spine.cli import audit as cli_audit
from event_spine.routing.cache import RouteCache
from event_spine.routing.registry import RoutingRegistry
from event_spine.routing.stores import open_registry_store
from event_spine.schemas import StoredEvent
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from support.audit_chain import PostgresRaw, Raw, SqliteRaw, audit_env
from support.events import SCOPE, stored
from support.postgres import temp_database

EVERY = 4
KEY = RouteKey.for_scope(ResourceKind.EVENT_SPINE, SCOPE.key())


@dataclass
class World:
    """A registry, two stores of one backend, the anchors' store, and what was sent."""

    tmp: Path
    backend: str
    locations: list[dict[str, Any]]
    raws: list[Raw]
    registry: RoutingRegistry
    cache: RouteCache
    sink: SinkAudit
    stores: StoreFactory
    sent: list[StoredEvent] = field(default_factory=list)

    @property
    def registry_location(self) -> str:
        return f"sqlite:{self.tmp / 'registry.db'}"

    async def store(self, index: int) -> EventStore:
        route = ResourceRoute.for_scope(SCOPE, "event_spine", self.backend, self.locations[index])
        return await self.stores.event_store(route)

    async def emit(self, count: int, batch: int = 3) -> None:
        """``count`` audit events written as the sink writes them, in batches."""
        start = len(self.sent)
        events = [
            stored(10 * (n + 1), AUDIT_STREAM, event_type="audit.thing", payload={"n": n})
            for n in range(start, start + count)
        ]
        await self.write(events, batch)

    async def write(self, events: list[StoredEvent], batch: int = 3) -> None:
        """Events written as the sink writes them (to the route's current store)."""
        self.sent += events
        count = len(events)
        for i in range(0, count, batch):
            route = await self.cache.event_spine_route(SCOPE.key())
            store = await self.stores.event_store(route)
            members: list[Member] = []
            linked = await self.sink.link(store, events[i : i + batch], members, route)
            await store.append_batch(linked)
            await self.sink.anchor(store, members, route)

    async def switch(self, index: int, *, recorded: bool = False) -> ResourceRoute:
        """Switch to store ``index``; ``recorded``: the registry's audit event of the
        switch (what its audit hook emits by default) lands in the chain, as the sink
        stores it."""
        seen: list[dict[str, Any]] = []
        registry = RoutingRegistry(self.registry.store, lambda _a, _k, d: seen.append(d))
        route = await registry.switch_route(
            KEY, self.backend, self.locations[index], actor="test", reason=f"to {index}"
        )
        if recorded:
            (details,) = seen
            payload = {
                "action": "routing.update", "surface": "routing", "actor_type": "service",
                "actor_id": "test", "input": {"resource_kind": "event_spine"},
                "output": details,
            }  # fmt: skip
            position = 10 * (len(self.sent) + 1)
            record = stored(
                position, AUDIT_STREAM, event_type="audit.routing.update", payload=payload
            )
            await self.write([record])
        return route

    async def rebuild(self, index: int) -> None:
        """What a cutover's replay does: the topic's events linked into the new store."""
        store = await self.store(index)
        for i in range(0, len(self.sent), 5):
            linked = await link_audit_chain(store, self.sent[i : i + 5], self.sink.link_key)
            await store.append_batch(linked)

    async def verify(self) -> Any:
        unaudited = cli_audit._Audit(None, "spine.events")
        return await cli_audit._verify(self.registry_location, SCOPE, AUDIT_STREAM, unaudited)


@pytest.fixture(params=["sqlite", "postgres"])
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    settings = audit_env(monkeypatch, tmp_path, EVERY)
    registry_store = await open_registry_store("sqlite", {"path": str(tmp_path / "registry.db")})
    registry = RoutingRegistry(registry_store, None)
    anchors = {"path": str(tmp_path / "anchors.db")}
    await registry.set_route(
        ResourceRoute.for_scope(SCOPE, "object_store", "sqlite", anchors), actor="t"
    )
    cache = RouteCache(registry, ttl_s=0.0)
    sink = SinkAudit(LocalAuditKeys(settings), cache, settings)
    stores = StoreFactory()
    try:
        if request.param == "sqlite":
            paths = [tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"]
            locations: list[dict[str, Any]] = [{"path": str(p)} for p in paths]
            world = World(tmp_path, "sqlite", locations, [], registry, cache, sink, stores)
            await _start(world)
            world.raws = [SqliteRaw(p) for p in paths]
            yield world
            for raw in world.raws:
                raw.close()
            return
        import asyncpg  # noqa: PLC0415

        async with temp_database("sw_a") as a, temp_database("sw_b") as b:
            locations = [{"dsn": a}, {"dsn": b}]
            world = World(tmp_path, "postgres", locations, [], registry, cache, sink, stores)
            await _start(world)
            conns = [await asyncpg.connect(a), await asyncpg.connect(b)]
            world.raws = [PostgresRaw(c) for c in conns]
            yield world
            await stores.close()
            for c in conns:
                await c.close()
    finally:
        await stores.close()
        await sink.close()
        await registry_store.close()


async def _start(world: World) -> None:
    route = ResourceRoute.for_scope(SCOPE, "event_spine", world.backend, world.locations[0])
    await world.registry.set_route(route, actor="test")
    for i in range(len(world.locations)):
        await world.store(i)  # creates the tables


async def anchors_of(world: World) -> list[dict[str, Any]]:
    table = await TabularFactory().tabular_store(
        ResourceRoute.for_scope(
            SCOPE, "object_store", "sqlite", {"path": str(world.tmp / "anchors.db")}
        )
    )
    return await load_anchors(table, SCOPE, AUDIT_STREAM)


async def build(world: World, cutover: bool, *, recorded: bool = False) -> None:
    """10 audit events in store 0, a switch (a cutover rebuilds first), 7 in store 1
    (``recorded``: the first of them is the registry's audit event of the switch)."""
    await world.emit(10)
    if cutover:
        await world.rebuild(1)
    await world.switch(1, recorded=recorded)
    await world.emit(6 if recorded else 7)
    report = await world.verify()
    assert report.ok, report.describe()


@pytest.mark.parametrize("cutover", [False, True], ids=["plain", "cutover"])
async def test_one_chain_across_a_switch(world: World, cutover: bool) -> None:
    await build(world, cutover)
    old, new = await world.store(0), await world.store(1)
    old_head = await old.get(SCOPE, world.sent[9].event_id)
    assert old_head is not None
    route = await world.registry.get_route(KEY)
    (link,) = route.history[-1].audit_links
    assert (link.position, link.count, link.event_id) == (100, 10, world.sent[9].event_id)
    assert link.head_hash == old_head.record.metadata[AUDIT_HASH]
    assert route.history[-1].from_config == world.locations[0]
    first_new = await new.get(SCOPE, world.sent[10].event_id)
    assert first_new is not None
    assert first_new.record.metadata["audit_prev_hash"] == link.head_hash
    report = await world.verify()
    assert report.checked == 17
    assert report.detail.anchors_checked == 4
    assert "the chain spans 2 stores" in report.describe()
    assert [a["count"] for a in await anchors_of(world)] == [4, 8, 12, 16]
    # In a plain switch the new store holds only its part; a cutover's holds it all.
    held = [e async for e in _audit(new)]
    assert len(held) == (17 if cutover else 7)


async def _audit(store: EventStore) -> AsyncIterator[StoredEvent]:
    page = await store.list_after(SCOPE, AUDIT_STREAM, None, 500)
    for event in page:
        yield event


async def test_two_switches_and_a_worker_restart(world: World) -> None:
    """Anchors and counts go on across two switches, with the anchorer's memory lost."""
    if len(world.locations) < 3:
        pytest.skip("three stores on SQLite only (PostgreSQL: two databases)")
    await world.emit(6)
    await world.switch(1)
    await world.emit(1)  # a store holding one record only
    await world.switch(2)
    world.sink.anchorer._states.clear()  # type: ignore[union-attr]  # as after a restart
    await world.emit(6)
    report = await world.verify()
    assert report.ok, report.describe()
    assert report.checked == 13
    assert [a["count"] for a in await anchors_of(world)] == [4, 8, 12]
    assert "the chain spans 3 stores" in report.describe()


async def test_a_stale_write_to_the_old_store_stays_outside_the_chain(world: World) -> None:
    """A worker whose route cache had not expired writes to the old store after the switch."""
    await world.emit(10)
    stale = await world.cache.event_spine_route(KEY.scope_key())
    await world.switch(1)
    late = stored(105, AUDIT_STREAM, event_type="audit.thing", payload={"n": "late"})
    members: list[Member] = []
    old = await world.stores.event_store(stale)
    await old.append_batch(await world.sink.link(old, [late], members, stale))
    await world.sink.anchor(old, members, stale)  # count 11 there: no anchor due
    await world.emit(7)
    report = await world.verify()
    assert report.ok, report.describe()
    assert report.checked == 17
    assert "1 audit record(s) from position 105 on are in a store after" in report.describe()
    assert [a["count"] for a in await anchors_of(world)] == [4, 8, 12, 16]


async def test_export_across_the_switch_verifies_offline(world: World) -> None:
    await build(world, cutover=True, recorded=True)
    bundle = world.tmp / "bundle"
    count = await export(world, bundle)
    assert count == 17
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert [s["position"] for s in manifest["switches"]] == [100]
    ok = _offline(bundle)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK: 17 audit records" in ok.stdout
    # the recorded link, changed in the bundle, is caught offline too
    manifest["switches"][0]["head_hash"] = "f" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    bad = _offline(bundle)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "broken switch link" in bad.stdout
    assert world.sent[9].event_id in bad.stdout
    # A cutover's bundle exported after the link was removed from the registry: the
    # chain's record of the switch (world.sent[10]) names the link the manifest lacks.
    async with _link_changed(world, remove=True):
        cut = world.tmp / "bundle-unlinked"
        await export(world, cut)
    bad = _offline(cut)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "broken switch link" in bad.stdout
    assert world.sent[10].event_id in bad.stdout


async def export(world: World, bundle: Path) -> int:
    window = Window(cli_audit._aware(_dt("2000-01-01")), cli_audit._aware(_dt("2100-01-01")))
    unaudited = cli_audit._Audit(None, "spine.events")
    return await cli_audit._export(
        world.registry_location, SCOPE, AUDIT_STREAM, window, bundle, unaudited
    )


def _dt(text: str) -> Any:
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(text)


def _offline(bundle: Path) -> subprocess.CompletedProcess[str]:
    script = bundle / "verify_bundle.py"
    return subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(bundle)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


class Matrix:
    """Cases tried and detected, per case name (printed with -s)."""

    def __init__(self, name: str) -> None:
        self.name, self.rows, self.missed = name, {}, []  # type: ignore[var-annotated]
        self.example: dict[str, str] = {}

    def record(self, case: str, report: Any, must_name: str) -> None:
        tried, detected = self.rows.get(case, (0, 0))
        text = report.describe()
        hit = not report.ok and must_name in text
        self.rows[case] = (tried + 1, detected + hit)
        self.example.setdefault(case, text.splitlines()[0][-220:])
        if not hit:
            self.missed.append(f"{case}: {text}")

    def show(self) -> str:
        lines = [
            f"{c:34} tried {t:3}  detected {d:3}\n    {self.example[c]}"
            for c, (t, d) in self.rows.items()
        ]
        return f"\n== {self.name}\n" + "\n".join(lines)


@pytest.mark.parametrize("cutover", [False, True], ids=["plain", "cutover"])
async def test_tampers_across_the_switch_are_detected(world: World, cutover: bool) -> None:
    await build(world, cutover, recorded=True)
    m = Matrix(f"{world.backend} {'cutover' if cutover else 'plain switch'}")
    old_head = world.sent[9].event_id
    # the new store's first record: its own (plain) or the rebuilt copy's (cutover)
    new_first = world.sent[0 if cutover else 10].event_id
    await _body_flips(world, m, "old store's head: byte changed", 0, old_head)
    await _deleted(world, m, "old store's head: deleted", 0, old_head)
    await _body_flips(world, m, "new store's first record: byte", 1, new_first)
    await _deleted(world, m, "new store's first record: deleted", 1, new_first)
    for field_name, value in (("head_hash", "e" * 64), ("count", 9), ("position", 90)):
        async with _link_changed(world, **{field_name: value}):
            m.record(f"recorded link: {field_name}", await world.verify(), "switch")
    # After a cutover the new store holds the whole chain from its start, so without the
    # link it verifies alone: the chain's own record of the switch names the link.
    async with _link_changed(world, remove=True):
        m.record("recorded link: removed", await world.verify(), world.sent[10].event_id)
    async with _link_changed(world, drop_switch=True):
        m.record("recorded switch: removed", await world.verify(), world.sent[10].event_id)
    print(m.show())
    assert not m.missed, m.missed
    assert (await world.verify()).ok


async def _body_flips(world: World, m: Matrix, case: str, index: int, event_id: str) -> None:
    raw = world.raws[index]
    body = bytes(await raw.get(event_id, "body"))
    for i in range(0, len(body), 9):
        await raw.set(event_id, "body", body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :])
        report = await world.verify()
        m.record(case, report, f"store {index + 1} of 2")
        await raw.set(event_id, "body", body)


async def _deleted(world: World, m: Matrix, case: str, index: int, event_id: str) -> None:
    raw = world.raws[index]
    row = await raw.row(event_id)
    await raw.delete(event_id)
    m.record(case, await world.verify(), f"store {index + 1} of 2")
    await raw.insert_row(row)


class _link_changed:  # noqa: N801 (reads as a context manager)
    """The registry's stored switch record, rewritten (an attacker with registry access)."""

    def __init__(
        self, world: World, *, remove: bool = False, drop_switch: bool = False, **changes: Any
    ) -> None:
        self.store, self.remove, self.changes = world.registry.store, remove, changes
        self.drop_switch = drop_switch

    async def __aenter__(self) -> None:
        self.original = route = await self.store.load(KEY)
        assert route is not None
        last = route.history[-1]
        links = (
            ()
            if self.remove
            else tuple(link.model_copy(update=self.changes) for link in last.audit_links)
        )
        history = (*route.history[:-1], last.model_copy(update={"audit_links": links}))
        if self.drop_switch:  # the whole switch erased from the history
            history = route.history[:-1]
        new = route.model_copy(update={"history": history, "version": route.version + 1})
        await self.store.save(new, route.version)

    async def __aexit__(self, *_: object) -> None:
        current = await self.store.load(KEY)
        assert current is not None
        assert self.original is not None
        restored = self.original.model_copy(update={"version": current.version + 1})
        await self.store.save(restored, current.version)
