"""subscribe(): catch-up then live, exactly once, in order, filtered, tenant-scoped."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import aclosing

import orjson
import pytest

from event_spine.errors import UnknownCursor
from event_spine.schemas import RequestContext, StoredEvent, new_event_id
from event_spine.subscriptions import SubscriptionFilter, subscribe
from support.app import App, running_app, take
from support.pipeline import ctx

STREAMS = ["orders/a", "orders/b", "orders/c"]
ORDERS = SubscriptionFilter(type_prefixes=("order.",), stream_prefixes=("orders/",))


@pytest.fixture
async def app(broker, tmp_path):
    async with running_app(broker.bootstrap_servers, tmp_path) as running:
        yield running


class Emitter:
    """Numbers each (tenant, stream) from 0 so order and gaps are visible."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.seq: Counter[tuple[str, str]] = Counter()

    def burst(self, c: RequestContext, rounds: int, streams: list[str] = STREAMS) -> None:
        for _ in range(rounds):
            for stream in streams:
                n = self.seq[(c.tenant_id, stream)]
                self.app.producer.emit_event(c, "order.placed", stream, {"seq": n})
                self.seq[(c.tenant_id, stream)] += 1

    def noise(self, c: RequestContext) -> None:
        """Events the ORDERS filter must drop: another type, another stream prefix."""
        self.app.producer.emit_event(c, "note.added", "orders/a-notes", {})
        self.app.producer.emit_event(c, "order.placed", "billing/x", {})


def subscription(app: App, c: RequestContext, after: dict[str, str | None] | None = None):
    return subscribe(
        c,
        ORDERS,
        registry=app.registry,
        stores=app.stores,
        kafka=app.bootstrap,
        topic=app.topic,
        after=after,
    )


async def first_of(events: AsyncGenerator[StoredEvent, None]) -> list[StoredEvent]:
    async with aclosing(events):
        return await take(events, 1)


def by_stream(events: list[StoredEvent]) -> dict[str, list[StoredEvent]]:
    out: dict[str, list[StoredEvent]] = {}
    for e in events:
        out.setdefault(e.stream_id, []).append(e)
    return out


async def test_before_and_during_arrive_exactly_once_in_order(app: App) -> None:
    me, other = ctx("t_me"), ctx("t_other")
    await app.route(me, other)
    emit = Emitter(app)
    worker = await app.start_worker()
    emit.burst(me, 40)  # stored before subscribing: caught up from the store
    emit.burst(other, 40)
    for stream in STREAMS:
        await app.wait_stored(me, stream, 40)
    await app.stop_worker(worker)
    emit.burst(me, 40)  # in the topic but not stored: they must come live
    emit.burst(other, 40)
    emit.noise(me)
    assert app.producer.flush(10)
    events = subscription(app, me, dict.fromkeys(STREAMS))
    async with aclosing(events):
        got = await take(events, 80 * len(STREAMS))
        await app.start_worker()  # the store moves while the subscription is live
        emit.burst(me, 40)
        emit.burst(other, 40)
        emit.noise(me)
        got += await take(events, 40 * len(STREAMS))
        # One marker per stream: within a partition, any repeat would come before it.
        markers = {app.producer.emit_event(me, "order.end", s, {"seq": -1}) for s in STREAMS}
        tail = await take(events, len(STREAMS))
    assert {e.event_id for e in tail} == markers
    assert all(e.record.routing.key() == me.key() for e in got)
    assert len({e.event_id for e in got}) == len(got)
    streams = by_stream(got)
    assert sorted(streams) == STREAMS
    for stream_events in streams.values():
        assert [e.record.payload["seq"] for e in stream_events] == list(range(120))
        positions = [e.position for e in stream_events]
        assert positions == sorted(set(positions))


async def test_another_tenants_events_are_never_delivered(app: App) -> None:
    me, other = ctx("t_me"), ctx("t_other")
    await app.route(me, other)
    await app.start_worker()
    emit = Emitter(app)
    emit.burst(other, 20)
    emit.burst(me, 5)
    emitted = [app.producer.emit_event(other, "order.placed", "orders/a", {}) for _ in range(3)]
    [stored_other] = (await app.wait_stored(other, "orders/a", 23))[-1:]
    events = subscription(app, me, dict.fromkeys(STREAMS))
    async with aclosing(events):
        mine = await take(events, 5 * len(STREAMS))
    assert {e.record.routing.tenant_id for e in mine} == {"t_me"}
    assert not {e.event_id for e in mine} & set(emitted)
    # Naming another tenant's event as a cursor is refused, not followed: in this
    # scope that id names no event.
    with pytest.raises(UnknownCursor):
        await first_of(subscription(app, me, {"orders/a": stored_other.event_id}))


async def test_resumes_after_a_cursor_and_refuses_an_unknown_one(app: App) -> None:
    me = ctx("t_me")
    await app.route(me)
    await app.start_worker()
    Emitter(app).burst(me, 30, ["orders/a"])
    stored = await app.wait_stored(me, "orders/a", 30)
    events = subscription(app, me, {"orders/a": stored[9].event_id})
    async with aclosing(events):
        got = await take(events, 20)
    assert [e.record.payload["seq"] for e in got] == list(range(10, 30))
    with pytest.raises(UnknownCursor):
        await first_of(subscription(app, me, {"orders/a": new_event_id()}))


async def test_fan_out_every_subscriber_and_the_sink_get_every_event(app: App) -> None:
    me = ctx("t_me")
    await app.route(me)
    await app.start_worker()
    first = subscription(app, me, dict.fromkeys(STREAMS[:2]))
    second = subscription(app, me, dict.fromkeys(STREAMS[:2]))
    async with aclosing(first), aclosing(second):
        readers = [asyncio.create_task(take(sub, 200)) for sub in (first, second)]
        Emitter(app).burst(me, 100, STREAMS[:2])
        results = await asyncio.gather(*readers)
    stored = [e for s in STREAMS[:2] for e in await app.wait_stored(me, s, 100)]
    expected = {e.event_id for e in stored}
    assert len(expected) == 200
    for got in results:
        assert len(got) == 200
        assert {e.event_id for e in got} == expected


async def test_tail_cli_prints_filtered_events(app: App) -> None:
    me = ctx("t_me")
    await app.route(me)
    await app.start_worker()
    emit = Emitter(app)
    emit.burst(me, 10, ["orders/a"])
    emit.noise(me)
    await app.wait_stored(me, "orders/a", 10)
    args = ["--bootstrap", app.bootstrap, "--registry", f"sqlite:{app.registry_db}"]
    args += ["--tenant", "t_me", "--env", "dev", "--mode", "lab", "--project", "p_core"]
    args += ["--topic", app.topic, "--type-prefix", "order.", "--stream-prefix", "orders/"]
    args += ["--catch-up", "orders/a", "--limit", "10"]
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "event_spine.cli.tail", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [line["payload"]["seq"] for line in lines] == list(range(10))
    assert {line["routing"]["tenant_id"] for line in lines} == {"t_me"}
