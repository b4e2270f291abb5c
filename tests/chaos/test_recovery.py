"""Crash recovery by instance name: a replacement removes its killed predecessor.

Real broker, real processes. Tansu 0.6.0 keeps one session timeout per group (its first
member's) and holds every JoinGroup for about half of it; a killed member expires one
session after its last heartbeat. So the session here is 12 s (each join waits ~6 s;
at 60 s the two joins took 60 of the test's 68 s), and the wait for the partitions to
move ends before the killed member could expire, counted from the kill: whatever moves
its partitions is the replacement's removal, not the broker's session check.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from event_spine.kafka import make_admin
from event_spine.kafka.predecessors import group_member_ids, is_member_of
from event_spine.sink_workers.worker import SinkWorker
from support.chaos import routed, spawn_worker
from support.emitter import BackgroundEmitter
from support.pipeline import as_kafka, producer_for, sink_settings, started_worker
from support.waiting import wait_until

pytestmark = pytest.mark.chaos

#: The group's session (Tansu: the first member's, the dead worker's here). Its joins
#: wait ~6 s each; the dead member cannot expire before 12 s after its last heartbeat.
SESSION = {"session_timeout_ms": 12_000, "heartbeat_interval_ms": 500}
#: The dead member's last heartbeat was at most one interval before the kill; a second
#: more of margin for the broker's own clock.
EXPIRY_MARGIN_S = 1.5
PARTITIONS = 6


async def members(bootstrap: str, group: str) -> list[str]:
    admin = make_admin(as_kafka(bootstrap))
    await admin.start()
    try:
        return [m for m, _ in await group_member_ids(admin, group)]
    finally:
        await admin.close()


def test_a_member_id_is_recognised_by_its_instance_name() -> None:
    uid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert is_member_of("worker-0", f"worker-0-{uid}")
    assert not is_member_of("worker-0", f"worker-01-{uid}")  # another replica
    assert not is_member_of("worker-0", "worker-0-extra")  # not a broker-made id
    assert is_member_of("worker-0", "anything", client_id="worker-0")  # Kafka reports it
    assert not is_member_of("worker-0", f"worker-0-{uid}", client_id="worker-1")


async def test_the_replacement_removes_its_killed_predecessor_and_takes_partitions(
    broker, tmp_path
) -> None:
    bootstrap = broker.bootstrap_servers
    topic, c, store = await routed(bootstrap, tmp_path, partitions=PARTITIONS)
    await store.close()
    # Under load: a worker learns its partitions from its first batch.
    producer = producer_for(bootstrap, topic)
    emitter = BackgroundEmitter(producer, c, [f"s{i}" for i in range(12)], rate_per_s=100)
    emitter.start()
    group = f"{topic}-sink"  # spawn_worker's group
    registry_db = tmp_path / "registry.db"
    flags = ["--instance-id", "a", "--session-timeout-ms", str(SESSION["session_timeout_ms"])]
    flags += ["--heartbeat-interval-ms", str(SESSION["heartbeat_interval_ms"])]
    dead = spawn_worker(bootstrap, topic, registry_db, tmp_path / "a.log", flags)
    survivor: SinkWorker | None = None
    replacement: SinkWorker | None = None
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

        os.kill(dead.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        dead.wait(10)
        # Killed: no LeaveGroup. The group still counts it, with its partitions.
        assert dead_id in await members(bootstrap, group)
        assert len(survivor.assignment()) < PARTITIONS

        replacement = await started_worker(settings.model_copy(update={"instance_id": "a"}))
        assert replacement.predecessors_removed == (dead_id,)
        await wait_until(
            lambda: (
                len(replacement.assignment()) > 0
                and len(survivor.assignment()) + len(replacement.assignment()) == PARTITIONS
            ),
            # Before the dead member could expire: only the removal can have freed them.
            killed_at + SESSION["session_timeout_ms"] / 1000 - EXPIRY_MARGIN_S - time.monotonic(),
            message="the replacement and the survivor own every partition before the "
            "killed member's session could expire",
        )
        now = await members(bootstrap, group)
        assert dead_id not in now
        assert len(now) == 2
        assert replacement.assignment().isdisjoint(survivor.assignment())
    finally:
        emitter.stop()
        producer.close()
        if dead.poll() is None:
            dead.kill()
        for worker in (replacement, survivor):
            if worker is not None:
                await worker.stop()


async def _has_member(bootstrap: str, group: str, name: str) -> bool:
    try:
        return any(is_member_of(name, m) for m in await members(bootstrap, group))
    except Exception:
        return False
