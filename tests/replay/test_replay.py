"""Replay, verify and cutover against the real local broker, SQLite and PostgreSQL.

No broker or store is mocked. The 100k-event history is produced once per module
and also written by a live sink worker, the reference every replay is verified
against.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from aiokafka import TopicPartition

from event_spine.backends import EventStore, StoreFactory
from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.events import SqliteEventStore
from event_spine.errors import ConfigurationError
from event_spine.kafka import as_kafka, make_consumer
from event_spine.producers import kafka_key
from event_spine.replay import (
    CutoverPlan,
    CutoverReport,
    CutoverStep,
    ReplayConfig,
    Replayer,
    ReplayFailed,
    ReplayFilter,
    ReplayProgress,
    ReplayTarget,
    StartFrom,
    discover_streams,
    replay_group,
    run_cutover,
    streams_of_scope,
    verify,
)
from event_spine.schemas import (
    BackendType,
    RequestContext,
    ResourceKind,
    ResourceRoute,
    RouteKey,
    Scope,
    StoredEvent,
)
from servers.emulators import free_port
from support.emitter import BackgroundEmitter
from support.events import stored
from support.pipeline import (
    ctx,
    new_topic,
    producer_for,
    raw_send,
    read_topic,
    registry_at,
    route_to_sqlite,
    sink_settings,
    started_worker,
    unique,
)
from support.postgres import temp_database
from support.stores import stored_ids
from support.waiting import wait_until

HISTORY_EVENTS = 100_000
HISTORY_CONTEXTS = (
    ctx("t_acme"),
    ctx("t_globex", mode="saas"),
    ctx("t_initech", project="p_other"),
)
HISTORY_STREAMS = [f"orders/o_{i}" for i in range(8)]


def now_ms() -> int:
    return int(time.time() * 1000)


def sqlite_target(path: Path) -> ReplayTarget:
    return ReplayTarget.of_backend("sqlite", {"path": str(path)})


def row_count(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM spine_events").fetchone()[0])


def row_ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT event_id FROM spine_events")}


async def open_sqlite(path: Path) -> SqliteEventStore:
    store = SqliteEventStore(SqliteConfig(path=str(path)))
    await store.open()
    return store


async def committed(
    bootstrap: str, topic: str, group: str, partitions: Iterable[int]
) -> dict[int, int | None]:
    consumer = make_consumer(as_kafka(bootstrap), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        return {tp.partition: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()


def replay_config(bootstrap: str, topic: str, target: ReplayTarget, **kw: Any) -> ReplayConfig:
    fields_: dict[str, Any] = {
        "name": unique("replay"),
        "start": StartFrom.beginning(),
        "fetch_max_wait_ms": 50,
        # The routing tests below pass a registry instead (the live sink's rules).
        "include_unrouted": True,
    }
    return ReplayConfig(kafka=bootstrap, topic=topic, target=target, **(fields_ | kw))


# -- the 100k history, written once by a live sink worker ------------------------------


@dataclass
class History:
    bootstrap: str
    topic: str
    partitions: int
    registry_db: Path
    live_db: Path
    ids: set[str]
    produce_s: float
    sink_s: float


async def _produce_history(bootstrap: str, topic: str) -> set[str]:
    producer = producer_for(bootstrap, topic, overflow_policy="block", block_timeout_ms=60_000)
    ids: set[str] = set()
    try:
        for n in range(HISTORY_EVENTS):
            c = HISTORY_CONTEXTS[n % 3]
            stream = HISTORY_STREAMS[(n // 3) % len(HISTORY_STREAMS)]
            ids.add(producer.emit_event(c, "order.placed", stream, {"n": n, "amount": n % 997}))
        assert await producer.flush_async(120), producer.stats
        assert producer.stats.dropped == 0
    finally:
        producer.close()
    return ids


@pytest.fixture(scope="module")
async def history(broker, tmp_path_factory) -> AsyncIterator[History]:
    tmp = tmp_path_factory.mktemp("history")
    bootstrap = broker.bootstrap_servers
    topic = await new_topic(bootstrap, partitions=6)
    registry = await registry_at(tmp / "registry.db")
    for c in HISTORY_CONTEXTS:
        await route_to_sqlite(registry, c, tmp / "live.db")
    await registry.store.close()
    started = time.monotonic()
    ids = await _produce_history(bootstrap, topic)
    produced = time.monotonic()
    worker = await started_worker(
        sink_settings(bootstrap, topic, tmp / "registry.db", max_records=5000)
    )
    try:
        await wait_until(
            lambda: worker.stats.written == HISTORY_EVENTS, 300, 0.1, "live sink wrote 100k"
        )
    finally:
        await worker.stop()
    history = History(
        bootstrap,
        topic,
        6,
        tmp / "registry.db",
        tmp / "live.db",
        ids,
        produced - started,
        time.monotonic() - produced,
    )
    print(
        f"\n[replay-bench] produce 100k: {history.produce_s:.1f}s, live sink: {history.sink_s:.1f}s"
    )
    return history


async def verify_history(history: History, target: EventStore) -> None:
    """Every scope of the history: the target is identical to the live sink's store."""
    found = await discover_streams(history.bootstrap, history.topic)
    live = await open_sqlite(history.live_db)
    try:
        total = 0
        for c in HISTORY_CONTEXTS:
            streams = streams_of_scope(found, c.scope)
            assert sorted(streams) == sorted(HISTORY_STREAMS)
            report = await verify(live, target, c.scope, streams)
            assert report.identical, report.lines()
            assert report.total("source") == report.total("target")
            total += report.total("target")
        assert total == HISTORY_EVENTS
    finally:
        await live.close()


async def _replay_history_into(
    history: History, target: ReplayTarget, label: str
) -> ReplayProgress:
    config = replay_config(history.bootstrap, history.topic, target)
    progress = await Replayer(config).run()
    rate = progress.read / progress.elapsed_s
    print(f"\n[replay-bench] replay 100k into {label}: {progress.elapsed_s:.1f}s, {rate:,.0f} ev/s")
    assert progress.read == progress.written == HISTORY_EVENTS
    assert (progress.duplicates, progress.filtered, progress.skipped) == (0, 0, {})
    assert progress.done
    ends = {p: part.end for p, part in progress.partitions.items()}
    assert sum(ends.values()) == HISTORY_EVENTS  # ends are high watermarks, not batch bases
    assert await committed(history.bootstrap, history.topic, config.group_id, ends) == ends
    return progress


async def test_replay_100k_into_fresh_sqlite_matches_live_sink(history: History, tmp_path) -> None:
    await _replay_history_into(history, sqlite_target(tmp_path / "replayed.db"), "SQLite")
    assert row_count(tmp_path / "replayed.db") == HISTORY_EVENTS
    target = await open_sqlite(tmp_path / "replayed.db")
    try:
        await verify_history(history, target)
    finally:
        await target.close()


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def pg_dsn() -> AsyncIterator[str]:
    """A database of this module's own, dropped at the end."""
    async with temp_database("spine_replay") as dsn:
        yield dsn


async def test_replay_100k_into_postgres_matches_live_sink(history: History, pg_dsn: str) -> None:
    config = {"dsn": pg_dsn, "schema": "replayed"}
    await _replay_history_into(history, ReplayTarget.of_backend("postgres", config), "PostgreSQL")
    stores = StoreFactory()
    try:
        route = ReplayTarget.of_backend("postgres", config).route_for(
            RouteKey(ResourceKind.EVENT_SPINE, "t_acme", "dev", "p_core", "lab")
        )
        await verify_history(history, await stores.event_store(route))
    finally:
        await stores.close()


# -- interrupted and resumed --------------------------------------------------------------


async def test_cancelled_replay_resumes_without_duplicates(history: History, tmp_path) -> None:
    db = tmp_path / "resumed.db"
    config = replay_config(history.bootstrap, history.topic, sqlite_target(db), max_records=2000)
    some_committed = asyncio.Event()

    def on_progress(progress: ReplayProgress) -> None:
        if progress.commits >= 4:  # the start positions, then at least three batches
            some_committed.set()

    task = asyncio.create_task(Replayer(config, on_progress=on_progress).run())
    await asyncio.wait_for(some_committed.wait(), 120)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    done = await committed(
        history.bootstrap, history.topic, config.group_id, range(history.partitions)
    )
    done_total = sum(o or 0 for o in done.values())
    stored_before = row_count(db)
    assert 0 < done_total < HISTORY_EVENTS
    assert stored_before >= done_total  # commits only follow durable writes

    resumed = dataclasses.replace(config, start=StartFrom.resume())
    progress = await Replayer(resumed).run()
    assert {p: part.start for p, part in progress.partitions.items()} == {
        p: o or 0 for p, o in done.items()
    }
    assert progress.read == HISTORY_EVENTS - done_total
    # What was written after the last commit comes again and is absorbed, nothing else.
    assert progress.duplicates == stored_before - done_total
    assert progress.written == HISTORY_EVENTS - stored_before
    assert row_count(db) == HISTORY_EVENTS
    target = await open_sqlite(db)
    try:
        await verify_history(history, target)
    finally:
        await target.close()


def spine_replay(*args: str) -> list[str]:
    return [sys.executable, "-m", "event_spine.cli.replay", *args]


async def test_cli_replay_sigkilled_then_rerun_completes_and_verifies(
    history: History, tmp_path
) -> None:
    db = tmp_path / "cli.db"
    name = unique("cli")
    command = spine_replay(
        "replay",
        "--bootstrap",
        history.bootstrap,
        "--topic",
        history.topic,
        "--into-backend",
        "sqlite",
        "--into-config",
        orjson.dumps({"path": str(db)}).decode(),
        "--name",
        name,
        "--max-records",
        "1000",
        "--registry",  # the live sink's routes: every history scope has one
        f"sqlite:{history.registry_db}",
    )
    log = (tmp_path / "replay.log").open("wb")
    first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    group, parts = replay_group(name), range(history.partitions)

    async def mid_way() -> bool:
        return (
            sum(
                o or 0
                for o in (await committed(history.bootstrap, history.topic, group, parts)).values()
            )
            >= 5000
        )

    try:
        await wait_until(mid_way, 120, 0.05, "first CLI run committed 5000")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    killed_at = sum(
        o or 0 for o in (await committed(history.bootstrap, history.topic, group, parts)).values()
    )
    assert killed_at < HISTORY_EVENTS, "the first run finished before it was killed"

    rerun = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"read {HISTORY_EVENTS - killed_at}," in rerun.stdout
    assert row_count(db) == HISTORY_EVENTS
    c = HISTORY_CONTEXTS[1]
    checked = await asyncio.to_thread(
        subprocess.run,
        spine_replay(
            "verify",
            "--tenant",
            c.tenant_id,
            "--env",
            c.env,
            "--mode",
            c.mode,
            "--project",
            c.project_id,
            "--source",
            f"sqlite:{history.live_db}",
            "--target",
            f"sqlite:{db}",
            "--bootstrap",
            history.bootstrap,
            "--topic",
            history.topic,
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "8 stream(s)" in checked.stdout
    assert "identical" in checked.stdout


# -- verify finds each kind of difference --------------------------------------------------


async def test_verify_reports_missing_extra_payload_and_position_differences(tmp_path) -> None:
    scope = HISTORY_CONTEXTS[0].scope
    events = [stored(10 * i, "s", scope, payload={"i": i}) for i in range(6)]
    tampered = msgspec.structs.replace(events[2].record, payload={"i": "tampered"})
    target_events = [
        events[0],
        events[1],
        StoredEvent(tampered, events[2].position),  # payload differs
        StoredEvent(events[3].record, events[3].position + 5),  # position differs
        events[4],
        # events[5] missing; one extra:
        stored(70, "s", scope, payload={"extra": True}),
    ]
    source, target = await open_sqlite(tmp_path / "a.db"), await open_sqlite(tmp_path / "b.db")
    try:
        await source.append_batch(events)
        await target.append_batch(target_events)
        await target.append_batch([stored(0, "untouched", scope)])
        report = await verify(source, target, scope, ["s"])
        (stream,) = report.streams
        assert not report.identical
        assert stream.missing_in_target.event_ids == [events[5].event_id]
        assert stream.extra_in_target.event_ids == [target_events[5].event_id]
        assert stream.payload_mismatch.event_ids == [events[2].event_id]
        assert stream.payload_mismatch.samples[0].detail == "payload"
        assert stream.position_mismatch.event_ids == [events[3].event_id]
        assert stream.source_digest != stream.target_digest
        assert (stream.source_count, stream.target_count) == (6, 6)
        assert any("missing in target: 1" in line for line in report.lines())
        # The verdict names what differs, and extra target events do not excuse the rest.
        verdict = report.verdict(allow_extra_in_target=True)
        assert verdict.startswith("DIFFERENT: 1 missing in target, 1 payload mismatch")
        assert "1 position mismatch" in verdict
        newer = await verify(source, source, scope, ["s"])
        assert newer.verdict().startswith("identical")
        bounded = await verify(source, target, scope, ["s"], until={"s": 20})
        assert bounded.identical
        assert bounded.total("source") == 2
        assert (await verify(target, target, scope, ["s", "untouched"])).identical
    finally:
        await source.close()
        await target.close()


# -- cutover while events keep flowing ------------------------------------------------------


def cutover_plan(bootstrap: str, topic: str, key: RouteKey, new_db: Path) -> CutoverPlan:
    return CutoverPlan(
        kafka=bootstrap,
        topic=topic,
        route=key,
        backend_type=BackendType.SQLITE,
        config={"path": str(new_db)},
        actor="ops",
        reason="move to the new disk",
        live_group=f"{topic}-sink",
        live_route_ttl_s=0.3,
    )


def assert_cutover_ok(report: CutoverReport, steps: list[CutoverStep], history: int) -> None:
    assert report.ok, (report.failed, report.steps)
    recovery = {CutoverStep.RESUME, CutoverStep.ABORT}  # only `--resume` / `--abort` use them
    assert list(dict.fromkeys(steps)) == [s for s in CutoverStep if s not in recovery]
    assert report.verify is not None
    assert report.verify.identical
    assert report.verify.total("target") >= history
    assert report.catch_up is not None
    assert report.catch_up.skipped == {}
    # Events kept flowing, so the workers wrote some to the old store between the
    # replay's end and the switch: the catch-up is what brought them over.
    assert report.catch_up.written > 0
    assert report.final_verify is not None
    assert report.final_verify.consistent(allow_extra_in_target=True)


async def test_cutover_while_events_flow_moves_every_event_to_the_new_backend(
    broker, tmp_path
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = await new_topic(bootstrap, partitions=4)
    c, streams = ctx("t_move"), [f"s{i}" for i in range(6)]
    old_db, new_db = tmp_path / "old.db", tmp_path / "new.db"
    registry = await registry_at(tmp_path / "registry.db")
    await route_to_sqlite(registry, c, old_db)
    key = RouteKey.for_scope(ResourceKind.EVENT_SPINE, c.key())
    producer = producer_for(bootstrap, topic)
    history = [producer.emit_event(c, "tick", streams[n % 6], {"n": n}) for n in range(3000)]
    worker = await started_worker(
        sink_settings(bootstrap, topic, tmp_path / "registry.db", route_cache_ttl_s=0.3)
    )
    emitter = BackgroundEmitter(producer, c, streams, rate_per_s=500).start()
    steps: list[CutoverStep] = []
    try:
        plan = cutover_plan(bootstrap, topic, key, new_db)
        report = await run_cutover(plan, registry, on_step=lambda step, _: steps.append(step))
        assert_cutover_ok(report, steps, len(history))
        # From here on, new events must land in the new backend only.
        old_rows, mark = row_count(old_db), len(emitter.ids)
        await wait_until(lambda: len(emitter.ids) >= mark + 300, 30, message="300 more emitted")
    finally:
        live = emitter.stop()
    try:
        assert not emitter.errors
        emitted = history + live
        assert await producer.flush_async(30)
        new = await open_sqlite(new_db)
        try:

            async def all_in_new() -> bool:
                return len(await stored_ids(new, c.scope, streams)) >= len(emitted)

            await wait_until(all_in_new, 60, 0.1, "every emitted event in the new backend")
            in_new = await stored_ids(new, c.scope, streams)
        finally:
            await new.close()
        assert sorted(in_new) == sorted(emitted)  # every event, once
        assert row_count(old_db) == old_rows  # the old store stopped receiving
        assert not row_ids(old_db) & set(live[mark:])
        assert row_ids(old_db) <= set(in_new)
        last = (await registry.history(key))[-1]
        assert (last.actor, last.reason) == ("ops", "move to the new disk")
        assert (last.from_config, last.to_config) == ({"path": str(old_db)}, {"path": str(new_db)})
        # Readers were held on the old store during the catch-up, then moved last.
        reads = await registry.history(key._replace(resource_kind=ResourceKind.EVENT_STREAM))
        assert [h.to_config for h in reads] == [{"path": str(old_db)}, {"path": str(new_db)}]
    finally:
        await worker.stop()
        producer.close()
        await registry.store.close()


# -- filters and start positions on a small mixed topic ---------------------------------------


@dataclass
class Mixed:
    bootstrap: str
    topic: str
    # event_id -> (tenant, project, stream, event_type, partition, offset, phase)
    events: dict[str, tuple[str, str, str, str, int, int, int]] = field(default_factory=dict)
    phase2_from_ms: int = 0
    poison: int = 1

    def ids(self, **where: Any) -> set[str]:
        names = ("tenant", "project", "stream", "event_type", "partition", "offset", "phase")
        return {
            event_id
            for event_id, values in self.events.items()
            if all(dict(zip(names, values, strict=True))[k] == v for k, v in where.items())
        }


MIXED = [
    (ctx("t_acme"), "orders/1", "order.placed"),
    (ctx("t_acme"), "orders/2", "order.placed"),
    (ctx("t_acme"), "carts/1", "cart.added"),
    (ctx("t_acme", project="p_other"), "orders/9", "order.placed"),
    (ctx("t_globex"), "orders/1", "order.placed"),
    (ctx("t_globex"), "carts/1", "cart.added"),
]


@pytest.fixture(scope="module")
async def mixed(broker) -> Mixed:
    bootstrap = broker.bootstrap_servers
    topic = await new_topic(bootstrap, partitions=2)
    producer = producer_for(bootstrap, topic)
    phase: dict[str, int] = {}
    meta: dict[str, tuple[RequestContext, str, str]] = {}
    for n in range(120):
        c, stream, event_type = MIXED[n % len(MIXED)]
        event_id = producer.emit_event(c, event_type, stream, {"n": n})
        phase[event_id], meta[event_id] = 1, (c, stream, event_type)
    assert await producer.flush_async(30)
    await raw_send(bootstrap, topic, [(kafka_key("t_acme", "orders/1"), b"{not json")])
    # Every phase-1 record is stamped before phase2_from_ms, every phase-2 one at or after:
    # the mark is taken once all of phase 1 is readable in the log.
    assert len(await read_topic(bootstrap, topic, 121)) == 121
    phase2_from = now_ms() + 1
    await wait_until(lambda: now_ms() > phase2_from, 5, 0.001, "the clock passed the phase mark")
    for n in range(30):
        c, stream, event_type = MIXED[n % 3]
        event_id = producer.emit_event(c, event_type, stream, {"phase2": n})
        phase[event_id], meta[event_id] = 2, (c, stream, event_type)
    assert await producer.flush_async(30)
    producer.close()
    found = Mixed(bootstrap, topic, phase2_from_ms=phase2_from)
    for rec in await read_topic(bootstrap, topic, 151):
        event_id = orjson.loads(rec.value)["event_id"] if rec.value.startswith(b'{"') else None
        if event_id in meta:
            c, stream, event_type = meta[event_id]
            found.events[event_id] = (
                c.tenant_id,
                c.project_id,
                stream,
                event_type,
                rec.partition,
                rec.offset,
                phase[event_id],
            )
    assert len(found.events) == 150
    return found


async def replay_ids(mixed: Mixed, db: Path, **kw: Any) -> tuple[ReplayProgress, set[str]]:
    target = kw.pop("target", None) or sqlite_target(db)
    progress = await Replayer(replay_config(mixed.bootstrap, mixed.topic, target, **kw)).run()
    return progress, row_ids(db) if db.exists() else set()


async def test_filters_keep_only_matching_events(mixed: Mixed, tmp_path) -> None:
    progress, ids = await replay_ids(mixed, tmp_path / "all.db")
    assert ids == set(mixed.events)
    assert progress.skipped == {"invalid_event": 1}  # poison is counted and skipped
    (sample,) = progress.skipped_samples
    assert sample.reason == "invalid_event"
    assert "JSON" in sample.message
    assert progress.read == 151
    assert progress.written == 150

    progress, ids = await replay_ids(
        mixed, tmp_path / "globex.db", filters=ReplayFilter.of(tenants=["t_globex"])
    )
    assert ids == mixed.ids(tenant="t_globex")
    assert progress.filtered == 151 - len(ids)  # the poison's key names t_acme: filtered
    assert progress.skipped == {}

    _, ids = await replay_ids(
        mixed, tmp_path / "carts.db", filters=ReplayFilter.of(event_types=["cart.added"])
    )
    assert ids == mixed.ids(event_type="cart.added")

    _, ids = await replay_ids(
        mixed, tmp_path / "orders.db", filters=ReplayFilter.of(stream_prefixes=["orders/"])
    )
    assert ids == set(mixed.events) - mixed.ids(stream="carts/1")

    combined = ReplayFilter.of(tenants=["t_acme"], projects=["p_core"], stream_prefixes=["orders/"])
    _, ids = await replay_ids(mixed, tmp_path / "combined.db", filters=combined)
    assert ids == mixed.ids(tenant="t_acme", project="p_core", stream="orders/1") | mixed.ids(
        tenant="t_acme", project="p_core", stream="orders/2"
    )


async def test_route_target_keeps_only_the_route_scope(mixed: Mixed, tmp_path) -> None:
    route = ResourceRoute(
        resource_kind="event_spine",
        tenant_id="t_globex",
        env="dev",
        project_id="p_core",
        mode="lab",
        backend_type="sqlite",
        config={"path": str(tmp_path / "routed.db")},
    )
    _, ids = await replay_ids(mixed, tmp_path / "routed.db", target=ReplayTarget.of_route(route))
    assert ids == mixed.ids(tenant="t_globex")
    with pytest.raises(ConfigurationError, match="exclude the target route"):
        ReplayConfig(
            kafka=mixed.bootstrap,
            topic=mixed.topic,
            name="x",
            target=ReplayTarget.of_route(route),
            filters=ReplayFilter.of(tenants=["t_acme"]),
        ).effective_filter()


async def test_start_from_offsets_and_from_time(mixed: Mixed, tmp_path) -> None:
    offsets = sorted(offset for *_, partition, offset, _ in mixed.events.values() if partition == 1)
    start_at = offsets[len(offsets) // 2]
    name = unique("offsets")
    progress, ids = await replay_ids(
        mixed, tmp_path / "offsets.db", start=StartFrom.at_offsets({1: start_at}), name=name
    )
    assert set(progress.partitions) == {1}  # unlisted partitions are not read
    again, _ = await replay_ids(mixed, tmp_path / "offsets.db", start=StartFrom.resume(), name=name)
    assert set(again.partitions) == {1}  # a resume covers what the replay covered
    assert again.read == 0
    assert ids == {i for i, v in mixed.events.items() if v[4] == 1 and v[5] >= start_at}
    store = await open_sqlite(tmp_path / "offsets.db")
    try:
        for event_id in ids:  # positions are the Kafka offsets, as the live sink stores them
            got = await store.get(Scope(**_scope_of(mixed, event_id)), event_id)
            assert got is not None
            assert got.position == mixed.events[event_id][5]
    finally:
        await store.close()

    when = datetime.fromtimestamp(mixed.phase2_from_ms / 1000, UTC)
    progress, ids = await replay_ids(mixed, tmp_path / "time.db", start=StartFrom.at_time(when))
    assert ids == mixed.ids(phase=2)
    assert progress.read == 30

    future = datetime.fromtimestamp(now_ms() / 1000 + 3600, UTC)
    progress, ids = await replay_ids(mixed, tmp_path / "future.db", start=StartFrom.at_time(future))
    assert (progress.read, ids, progress.done) == (0, set(), True)


def _scope_of(mixed: Mixed, event_id: str) -> dict[str, str]:
    tenant, project = mixed.events[event_id][:2]
    return {"tenant_id": tenant, "env": "dev", "mode": "lab", "project_id": project}


async def test_discover_streams_finds_each_scope_and_partition(mixed: Mixed) -> None:
    found = await discover_streams(
        mixed.bootstrap, mixed.topic, ReplayFilter.of(tenants=["t_acme"])
    )
    acme = streams_of_scope(found, ctx("t_acme").scope)
    assert set(acme) == {"orders/1", "orders/2", "carts/1"}
    for stream, partition in acme.items():
        assert {v[4] for v in mixed.events.values() if v[:3] == ("t_acme", "p_core", stream)} == {
            partition
        }
    assert set(streams_of_scope(found, ctx("t_acme", project="p_other").scope)) == {"orders/9"}
    assert not streams_of_scope(found, ctx("t_globex").scope)  # filtered out


async def test_follow_keeps_replaying_new_events_until_cancelled(broker, tmp_path) -> None:
    bootstrap = broker.bootstrap_servers
    topic = await new_topic(bootstrap, partitions=2)
    producer = producer_for(bootstrap, topic)
    first = {producer.emit_event(ctx(), "e", f"s{n % 3}", {"n": n}) for n in range(50)}
    assert await producer.flush_async(30)
    config = replay_config(bootstrap, topic, sqlite_target(tmp_path / "follow.db"), follow=True)
    replayer = Replayer(config)
    task = asyncio.create_task(replayer.run())
    try:
        await wait_until(lambda: replayer.progress.written == 50, 30, message="history replayed")
        later = {producer.emit_event(ctx(), "e", f"s{n % 3}", {"n": n}) for n in range(50, 80)}
        await wait_until(lambda: replayer.progress.written == 80, 30, message="new events followed")
        assert not task.done()
        ends = {p: part.end for p, part in replayer.progress.partitions.items()}
        assert sum(ends.values()) == 80  # ends track the high watermark while following
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        producer.close()
    assert row_ids(tmp_path / "follow.db") == first | later


async def test_cli_cutover_without_live_workers(mixed: Mixed, tmp_path) -> None:
    registry = await registry_at(tmp_path / "registry.db")
    c = ctx("t_globex")
    await route_to_sqlite(registry, c, tmp_path / "old.db")
    await registry.store.close()
    # The old store holds the scope's history (no live worker runs here).
    await Replayer(
        replay_config(
            mixed.bootstrap,
            mixed.topic,
            sqlite_target(tmp_path / "old.db"),
            filters=ReplayFilter.of(tenants=["t_globex"]),
        )
    ).run()
    result = await asyncio.to_thread(
        subprocess.run,
        spine_replay(
            "cutover",
            "--bootstrap",
            mixed.bootstrap,
            "--topic",
            mixed.topic,
            "--route",
            f"event_spine:{c.tenant_id}:{c.env}:{c.project_id}:{c.mode}",
            "--into-backend",
            "sqlite",
            "--into-config",
            orjson.dumps({"path": str(tmp_path / "new.db")}).decode(),
            "--actor",
            "ops",
            "--reason",
            "cli cutover",
            "--registry",
            f"sqlite:{tmp_path / 'registry.db'}",
            "--no-live-group",
            "--live-cache-ttl",
            "0",
            "--no-audit",  # audit events of the scope would land in the replayed topic
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cutover done" in result.stdout
    assert row_ids(tmp_path / "new.db") == mixed.ids(tenant="t_globex")
    registry = await registry_at(tmp_path / "registry.db")
    try:
        key = RouteKey.for_scope(ResourceKind.EVENT_SPINE, c.key())
        assert (await registry.history(key))[-1].reason == "cli cutover"
        route = await registry.get_route(key)
        assert route.config == {"path": str(tmp_path / "new.db")}
    finally:
        await registry.store.close()
    differs = await asyncio.to_thread(
        subprocess.run,
        spine_replay(
            "verify",
            "--tenant",
            "t_acme",
            "--env",
            "dev",
            "--mode",
            "lab",
            "--project",
            "p_core",
            "--source",
            f"sqlite:{tmp_path / 'old.db'}",
            "--target",
            f"sqlite:{tmp_path / 'empty.db'}",
            "--stream",
            "orders/1",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert differs.returncode == 0  # t_acme is in neither store: identical (both empty)


async def test_unavailable_target_stops_the_replay_without_committing(mixed: Mixed) -> None:
    dead = {"dsn": f"postgresql://127.0.0.1:{free_port()}/x", "connect_timeout_s": 1}
    config = replay_config(
        mixed.bootstrap,
        mixed.topic,
        ReplayTarget.of_backend("postgres", dead),
        max_batch_attempts=3,
        retry_backoff_initial_ms=10,
        retry_backoff_max_ms=20,
    )
    replayer = Replayer(config)
    with pytest.raises(ReplayFailed, match="rerun with the same name"):
        await replayer.run()
    assert replayer.progress.retries == 2
    assert replayer.progress.written == 0
    # Only the start positions were committed: a rerun starts over, nothing is skipped.
    starts = {p: part.start for p, part in replayer.progress.partitions.items()}
    assert await committed(mixed.bootstrap, mixed.topic, config.group_id, starts) == starts
