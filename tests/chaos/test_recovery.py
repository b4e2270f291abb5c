"""Crash recovery by instance name: a replacement continues its killed predecessor.

Real broker, real processes. Worker "a" runs as a process and is killed with SIGKILL
(no LeaveGroup, no commit); worker "b" survives; the replacement of "a" starts with
the same ``instance_id`` and continues the dead member's group membership (see
kafka/takeover.py). What is checked is ownership and the group's generation, not
timing: the replacement owns exactly the partitions the dead member held, it writes
them, and the survivor's generation never changes (no rebalance happened, so the
dead member did not expire either: an expiry rebalances the group).
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from event_spine.kafka import make_admin
from event_spine.kafka import takeover as takeover_module
from event_spine.kafka.predecessors import group_member_ids, is_member_of
from event_spine.sink_workers.settings import SinkSettings
from event_spine.sink_workers.worker import SinkWorker
from support.chaos import routed, spawn_worker
from support.emitter import BackgroundEmitter
from support.pipeline import as_kafka, producer_for, sink_settings, started_worker
from support.waiting import wait_until

pytestmark = pytest.mark.chaos

#: Tansu holds every JoinGroup half the group's session; 4 s keeps the joins of the
#: setup short and still outlasts the replacement's in-process start by far.
SESSION_MS = 4_000
SESSION = {"session_timeout_ms": SESSION_MS, "heartbeat_interval_ms": 500}
PARTITIONS = 6


async def members(bootstrap: str, group: str) -> list[str]:
    admin = make_admin(as_kafka(bootstrap))
    await admin.start()
    try:
        return [m for m, _ in await group_member_ids(admin, group)]
    finally:
        await admin.close()


def generation(worker: SinkWorker) -> int:
    """The group generation the worker's consumer is in (aiokafka's coordinator)."""
    consumer = worker._own_consumer()
    assert consumer is not None
    return int(consumer._coordinator.generation)


def member_id(worker: SinkWorker) -> str:
    consumer = worker._own_consumer()
    assert consumer is not None
    return str(consumer._coordinator.member_id)


@dataclass
class Killed:
    """Worker "a" killed while "b" survives, under load."""

    bootstrap: str
    group: str
    settings: SinkSettings
    survivor: SinkWorker
    dead_id: str
    dead_partitions: set[int]
    generation: int


@pytest.fixture
async def killed(broker, tmp_path) -> AsyncIterator[Killed]:
    bootstrap = broker.bootstrap_servers
    topic, c, store = await routed(bootstrap, tmp_path, partitions=PARTITIONS)
    await store.close()
    producer = producer_for(bootstrap, topic)
    emitter = BackgroundEmitter(producer, c, [f"s{i}" for i in range(12)], rate_per_s=100)
    emitter.start()
    group = f"{topic}-sink"  # spawn_worker's group
    registry_db = tmp_path / "registry.db"
    flags = ["--instance-id", "a", "--session-timeout-ms", str(SESSION_MS)]
    flags += ["--heartbeat-interval-ms", "500"]
    dead = spawn_worker(bootstrap, topic, registry_db, tmp_path / "a.log", flags)
    survivor: SinkWorker | None = None
    try:
        await wait_until(lambda: _has_member(bootstrap, group, "a"), 60, message="worker a joined")
        settings = sink_settings(bootstrap, topic, registry_db, group_id=group, **SESSION)
        survivor = await started_worker(settings.model_copy(update={"instance_id": "b"}))
        await wait_until(
            lambda: len(survivor.assignment()) in range(1, PARTITIONS),
            60,
            message="worker a and b share the partitions",
        )
        (dead_id,) = [m for m in await members(bootstrap, group) if is_member_of("a", m)]
        owned = {tp.partition for tp in survivor.assignment()}
        before = generation(survivor)

        os.kill(dead.pid, signal.SIGKILL)
        dead.wait(10)
        # Killed: no LeaveGroup. The group still counts it, with its partitions.
        assert dead_id in await members(bootstrap, group)
        yield Killed(
            bootstrap,
            group,
            settings.model_copy(update={"instance_id": "a"}),
            survivor,
            dead_id,
            set(range(PARTITIONS)) - owned,
            before,
        )
        assert {tp.partition for tp in survivor.assignment()} == owned  # never moved
    finally:
        emitter.stop()
        producer.close()
        if dead.poll() is None:
            dead.kill()
        if survivor is not None:
            await survivor.stop()


async def _replace(k: Killed, mode: str) -> None:
    replacement = await started_worker(k.settings)
    try:
        assert replacement.takeover.member_id == k.dead_id
        assert replacement.takeover.mode == mode
        written = replacement.stats.written
        await wait_until(
            lambda: (
                {tp.partition for tp in replacement.assignment()} == k.dead_partitions
                and replacement.stats.written > written
            ),
            30,
            message="the replacement owns and writes the dead member's partitions",
        )
        assert member_id(replacement) == k.dead_id
        assert sorted(await members(k.bootstrap, k.group)) == sorted(
            [k.dead_id, member_id(k.survivor)]
        )
        assert generation(k.survivor) == k.generation == generation(replacement)
    finally:
        await replacement.stop()


async def test_the_replacement_continues_the_dead_member_with_a_sync_only(killed) -> None:
    """Tansu: the generation is found (Heartbeat probes), the first join is a SyncGroup
    as the dead member: it answers the dead member's assignment, no JoinGroup."""
    await _replace(killed, "sync")


async def test_without_a_generation_the_replacement_rejoins_as_the_dead_member(
    killed, monkeypatch
) -> None:
    """Apache Kafka answers IllegalGeneration to every other generation, so there the
    probe finds none: the first JoinGroup names the dead member. Tansu cannot answer
    that way, so the probe's answer is injected; the rejoin itself is real."""

    async def kafkas_answer(heartbeat, max_probes: int = 64) -> None:
        return None

    monkeypatch.setattr(takeover_module, "find_generation", kafkas_answer)
    await _replace(killed, "rejoin")


def test_a_member_id_is_recognised_by_its_instance_name() -> None:
    uid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert is_member_of("worker-0", f"worker-0-{uid}")
    assert not is_member_of("worker-0", f"worker-01-{uid}")  # another replica
    assert not is_member_of("worker-0", "worker-0-extra")  # not a broker-made id
    assert is_member_of("worker-0", "anything", client_id="worker-0")  # Kafka reports it
    assert not is_member_of("worker-0", f"worker-0-{uid}", client_id="worker-1")


async def _has_member(bootstrap: str, group: str, name: str) -> bool:
    try:
        return any(is_member_of(name, m) for m in await members(bootstrap, group))
    except Exception:
        return False
