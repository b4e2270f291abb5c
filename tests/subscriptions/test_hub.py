"""LiveHub: followers of a partition share its consumers; a follower behind the head's
ring catches up through the history reader and comes back; a stalled one overflows
alone. Real broker; the store plays no part here (followers start at an offset)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from event_spine.kafka.settings import KafkaSettings
from event_spine.schemas import RequestContext, StoredEvent
from event_spine.subscriptions import SubscriptionFilter
from event_spine.subscriptions.catchup import RecentIds
from event_spine.subscriptions.follower import Follower
from event_spine.subscriptions.hub import LiveHub, LiveOptions
from event_spine.subscriptions.mailbox import Mailbox
from support.app import App, running_app
from support.pipeline import ctx
from support.waiting import wait_until

A = ctx("t_alpha")
STREAM = "orders/hub"


@pytest.fixture
async def app(broker, tmp_path) -> AsyncIterator[App]:
    async with running_app(broker.bootstrap_servers, tmp_path, partitions=2) as running:
        yield running


@pytest.fixture
async def hub(app: App) -> AsyncIterator[LiveHub]:
    live = LiveHub(
        KafkaSettings(bootstrap_servers=app.bootstrap),
        app.topic,
        LiveOptions(ring_records=10, stall_s=0.3, history_linger_s=0.2),
    )
    yield live
    await live.close()


def follower(c: RequestContext, capacity: int = 1000, **kw: object) -> Follower:
    return Follower(c, STREAM, SubscriptionFilter(), RecentIds(100), Mailbox(capacity), **kw)


async def emit(app: App, start: int, stop: int) -> None:
    for i in range(start, stop):
        app.producer.emit_event(A, "order.placed", STREAM, {"seq": i})
    assert await app.producer.flush_async(30)


class Reader:
    """Drains a follower's mailbox into ``got`` (as the SSE writer does)."""

    def __init__(self, f: Follower) -> None:
        self.f = f
        self.got: list[StoredEvent] = []

    def drain(self) -> int:
        self.got.extend(self.f.mailbox.take(1000))
        return len(self.got)

    def seqs(self) -> list[int]:
        return [e.record.payload["seq"] for e in self.got]


async def test_a_follower_behind_the_ring_catches_up_then_shares_the_head(
    app: App, hub: LiveHub
) -> None:
    await emit(app, 0, 40)  # beyond the ring (10) of a head that starts at the end
    now = Reader(follower(A, from_end=True))
    await hub.follow(now.f)
    late = Reader(follower(A))  # after=-1: from the partition's first offset
    await hub.follow(late.f)
    assert hub.stats.fell_behind == 1  # served by the history reader
    await emit(app, 40, 70)  # while the late one catches up
    await wait_until(lambda: late.drain() >= 70 and now.drain() >= 30, 30)
    assert late.seqs() == list(range(70))  # exactly once, in order, across the handover
    assert now.seqs() == list(range(40, 70))
    positions = [e.position for e in late.got]
    assert positions == sorted(set(positions))
    # Handed back to the head: the history reader closed; one consumer feeds both.
    await wait_until(lambda: hub.stats.consumers_open == 1, 30, message="the history to close")
    await emit(app, 70, 75)
    await wait_until(lambda: late.drain() >= 75 and now.drain() >= 35, 30)
    assert late.seqs()[-5:] == now.seqs()[-5:] == list(range(70, 75))
    assert len(hub.tails) == 1


async def test_a_stalled_follower_overflows_alone(app: App, hub: LiveHub) -> None:
    readers = [Reader(follower(A, from_end=True)) for _ in range(3)]
    stalled = follower(A, capacity=5, from_end=True)
    for f in [r.f for r in readers] + [stalled]:
        await hub.follow(f)
    await emit(app, 0, 50)
    await wait_until(lambda: all(r.drain() >= 50 for r in readers), 30)
    await wait_until(stalled.ended.is_set, 30, message="the overflow")
    assert stalled.overflowed
    assert [e.record.payload["seq"] for e in stalled.mailbox.take(100)] == list(range(5))
    for r in readers:
        assert r.seqs() == list(range(50))
        assert not r.f.ended.is_set()
    hub.leave(stalled)
    await wait_until(lambda: hub.stats.consumers_open == 1, 30, message="the history to close")


async def test_many_followers_one_consumer_and_leaving_frees_them(app: App, hub: LiveHub) -> None:
    readers = [Reader(follower(A, from_end=True)) for _ in range(20)]
    for r in readers:
        await hub.follow(r.f)
    await emit(app, 0, 30)
    await wait_until(lambda: all(r.drain() >= 30 for r in readers), 30)
    assert hub.stats.consumers_open == 1
    assert hub.stats.fell_behind == 0
    tail = next(iter(hub.tails.values()))
    assert tail.count == 20
    for r in readers:
        hub.leave(r.f)
    assert tail.count == 0
