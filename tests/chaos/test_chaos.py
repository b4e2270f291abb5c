"""Break things, then count every event: kill -9 of workers, rebalances, broker restarts.

Real broker, real SQLite, real processes. Each test reports sent / stored /
dead-lettered / duplicated on stdout (run with -s to see it).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess

import pytest

from event_spine.broker.tansu import TansuBroker
from support.chaos import routed, spawn_worker
from support.emitter import BackgroundEmitter
from support.pipeline import (
    producer_for,
    sink_settings,
    started_worker,
)
from support.s3 import STORAGE_URL
from support.stores import stored_ids
from support.waiting import wait_until

pytestmark = pytest.mark.chaos
STREAMS = [f"s{i}" for i in range(6)]


async def all_stored(store, scope, sent: list[str], timeout_s: float) -> list[str]:
    """Wait (bounded) until the store holds as many events as were sent; return their ids."""

    async def caught_up() -> bool:
        return len(await stored_ids(store, scope, STREAMS)) >= len(sent)

    await wait_until(caught_up, timeout_s, interval_s=0.25, message="every event stored")
    return await stored_ids(store, scope, STREAMS)


async def wait_writing(store, scope, message: str) -> None:
    """Until the store holds more events than now (bounded)."""
    floor = len(await stored_ids(store, scope, STREAMS))

    async def writing() -> bool:
        return len(await stored_ids(store, scope, STREAMS)) > floor

    await wait_until(writing, 60, message=message)


async def assert_each_once(emitter, producer, store, scope, name: str) -> None:
    """Stop the load, then count every event straight from the store: each exactly once."""
    sent = emitter.stop()
    assert producer.flush(30)
    stored = await all_stored(store, scope, sent, 120)
    report(name, len(sent), stored, 0)
    assert emitter.errors == []
    assert sorted(stored) == sorted(sent)  # each exactly once


def report(name: str, sent: int, stored: list[str], dead: int, extra: str = "") -> None:
    duplicated = len(stored) - len(set(stored))
    print(
        f"\n[{name}] sent={sent} stored={len(set(stored))} dead_lettered={dead} "
        f"duplicated={duplicated} {extra}"
    )


async def test_twenty_sigkills_at_random_points_lose_and_duplicate_nothing(
    broker, tmp_path
) -> None:
    topic, c, store = await routed(broker.bootstrap_servers, tmp_path)
    producer = producer_for(broker.bootstrap_servers, topic)
    emitter = BackgroundEmitter(producer, c, STREAMS, rate_per_s=300).start()
    log = tmp_path / "workers.log"
    rng = random.Random(20)
    worker = spawn_worker(broker.bootstrap_servers, topic, tmp_path / "registry.db", log)
    try:
        for _ in range(20):
            await wait_writing(store, c.scope, "the new worker is writing")
            await _pause_ms(rng.randint(0, 400))  # a random point inside the flow
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
            worker = spawn_worker(broker.bootstrap_servers, topic, tmp_path / "registry.db", log)
        await assert_each_once(emitter, producer, store, c.scope, "20 x kill -9")
    finally:
        emitter.stop()
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        producer.close()
        await store.close()


async def _pause_ms(ms: int) -> None:
    await asyncio.sleep(ms / 1000)


async def test_rebalance_under_load_second_worker_joins_then_leaves(broker, tmp_path) -> None:
    topic, c, store = await routed(broker.bootstrap_servers, tmp_path, partitions=6)
    settings = sink_settings(
        broker.bootstrap_servers, topic, tmp_path / "registry.db", max_records=40
    )
    producer = producer_for(broker.bootstrap_servers, topic)
    emitter = BackgroundEmitter(producer, c, STREAMS, rate_per_s=400).start()
    first = await started_worker(settings)
    second = None
    try:
        await wait_until(lambda: first.stats.written > 300, 60, message="first worker writing")
        second = await started_worker(settings.model_copy(update={"worker_id": "second"}))
        await wait_until(
            lambda: second.stats.written > 200, 60, message="second worker got partitions"
        )
        await second.stop()  # leaves mid-stream: its partitions move back
        written_by_second = second.stats.written
        await wait_until(
            lambda: first.stats.written > 0 and len(first.assignment()) == 6,
            60,
            message="first worker owns every partition again",
        )
        sent = emitter.stop()
        assert producer.flush(30)

        stored = await all_stored(store, c.scope, sent, 60)
        redelivered = first.stats.duplicates + second.stats.duplicates
        report(
            "rebalance",
            len(sent),
            stored,
            0,
            f"second_worker_wrote={written_by_second} redelivered_absorbed={redelivered}",
        )
        assert sorted(stored) == sorted(sent)
        assert first.stats.written + second.stats.written == len(sent)  # no event written twice
    finally:
        emitter.stop()
        await first.stop()
        producer.close()
        await store.close()


async def test_broker_stopped_and_restarted_while_producing(s3_storage, tmp_path) -> None:
    durable = TansuBroker(storage_url=STORAGE_URL, env=s3_storage)
    durable.start()
    topic, c, store = await routed(durable.bootstrap_servers, tmp_path)
    # Harness workaround (Tansu on S3): after a restart the broker serves about one
    # stored record batch per fetch, so a tail of one-record batches takes minutes to
    # re-read. A longer linger makes fewer, fuller batches; delivery semantics are equal.
    producer = producer_for(durable.bootstrap_servers, topic, linger_ms=200)
    emitter = BackgroundEmitter(producer, c, STREAMS, rate_per_s=300).start()
    worker = await started_worker(
        sink_settings(durable.bootstrap_servers, topic, tmp_path / "registry.db")
    )
    try:
        await wait_until(lambda: worker.stats.written > 200, 60, message="flowing")
        before = len(emitter.latencies_ns)
        durable.stop()
        await wait_until(
            lambda: producer.stats.buffered > 300, 60, message="events wait in the buffer"
        )
        during = len(emitter.latencies_ns)
        durable.start()  # same port, same S3 storage
        backlog = producer.stats.emitted  # everything emitted up to the restart
        try:
            await wait_until(lambda: producer.stats.sent >= backlog, 60, message="backlog acked")
        except AssertionError:
            print("DIAG producer", producer.stats, "backlog", backlog, "broker", durable.running)
            raise
        sent = emitter.stop()
        assert await producer.flush_async(60)

        try:
            stored = await all_stored(store, c.scope, sent, 120)
        except AssertionError:
            print("DIAG worker", worker.stats, worker.assignment(), worker.ready, worker.running)
            print("DIAG producer", producer.stats, len(sent))
            print("DIAG stored", len(set(await stored_ids(store, c.scope, STREAMS))))
            raise
        report(
            "broker restart",
            len(sent),
            stored,
            0,
            f"emit_p99_us before={_p99(emitter, 0, before):.1f} "
            f"outage={_p99(emitter, before, during):.1f}",
        )
        assert emitter.errors == []
        assert producer.stats.dropped == 0
        assert sorted(stored) == sorted(sent)
    finally:
        emitter.stop()
        await worker.stop()
        producer.close()
        await store.close()
        durable.stop()


def _p99(emitter: BackgroundEmitter, start: int, end: int) -> float:
    values = sorted(emitter.latencies_ns[start:end])
    return values[int(len(values) * 0.99)] / 1000 if values else 0.0


async def test_sigterm_mid_stream_exits_cleanly_and_loses_nothing(broker, tmp_path) -> None:
    topic, c, store = await routed(broker.bootstrap_servers, tmp_path)
    producer = producer_for(broker.bootstrap_servers, topic)
    emitter = BackgroundEmitter(producer, c, STREAMS, rate_per_s=400).start()
    log = tmp_path / "workers.log"
    worker = spawn_worker(broker.bootstrap_servers, topic, tmp_path / "registry.db", log)
    try:
        for _ in range(3):
            await wait_writing(store, c.scope, "this worker is writing")
            worker.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(worker.wait, 30) == 0  # graceful: exit code 0
            worker = spawn_worker(broker.bootstrap_servers, topic, tmp_path / "registry.db", log)
        sent = emitter.stop()
        assert producer.flush(30)

        stored = await all_stored(store, c.scope, sent, 90)
        report("3 x SIGTERM", len(sent), stored, 0)
        assert sorted(stored) == sorted(sent)
    finally:
        emitter.stop()
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        producer.close()
        await store.close()


@pytest.mark.parametrize("flag", ["--instance-id", "--group-instance-id"])
async def test_kill_9_under_load_with_a_stable_replica_name_loses_and_duplicates_nothing(
    broker, tmp_path, flag: str
) -> None:
    """The crash-recovery settings (SinkSettings' session/heartbeat, a stable name per
    replica: ``--instance-id``, the replacement continues its killed predecessor's group
    membership; or ``--group-instance-id``, static membership): worker "a" of two is killed 5
    times under load and replaced under the same name; every event is then counted
    straight from the SQLite store."""
    topic, c, store = await routed(broker.bootstrap_servers, tmp_path)
    producer = producer_for(broker.bootstrap_servers, topic)
    emitter = BackgroundEmitter(producer, c, STREAMS, rate_per_s=300).start()
    log = tmp_path / "workers.log"
    registry_db = tmp_path / "registry.db"

    def spawn(slot: str) -> subprocess.Popen[bytes]:
        return spawn_worker(broker.bootstrap_servers, topic, registry_db, log, [flag, slot])

    workers = {slot: spawn(slot) for slot in ("a", "b")}
    try:
        for _ in range(5):
            await wait_writing(store, c.scope, "the workers are writing")
            os.kill(workers["a"].pid, signal.SIGKILL)
            workers["a"].wait(10)
            workers["a"] = spawn("a")
        await assert_each_once(emitter, producer, store, c.scope, f"5 x kill -9, {flag}")
    finally:
        emitter.stop()
        for worker in workers.values():
            worker.send_signal(signal.SIGTERM)
        for worker in workers.values():
            worker.wait(30)
        producer.close()
        await store.close()
