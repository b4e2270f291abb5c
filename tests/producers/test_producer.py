"""The producer against the real local broker: keys, order, counters, overflow, close.

Tests that exercise sending run once per transport (aiokafka, confluent-kafka): the
same producer contract on both.
"""

from __future__ import annotations

import os
import sys
import threading

import orjson
import pytest

from event_spine.broker.tansu import TansuBroker, free_port
from event_spine.errors import (
    BufferFull,
    ConfigurationError,
    EventTooLarge,
    EventValidationError,
    ProducerClosed,
    ProducerNotConfigured,
)
from event_spine.producers import (
    EventSpineProducer,
    ProducerSettings,
    emit_event,
    ensure_topic,
    kafka_key,
    set_default_producer,
)
from event_spine.schemas import StreamEvent, request_context
from support.pipeline import ctx, new_topic, producer_for, read_topic
from support.s3 import STORAGE_URL
from support.waiting import wait_until

TRANSPORTS = ["aiokafka", "confluent"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_events_arrive_keyed_by_tenant_and_stream_in_order(broker, transport) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=3)
    producer = producer_for(broker.bootstrap_servers, topic, transport=transport)
    contexts = [ctx("t_a", request_id="req-1"), ctx("t_b")]
    for n in range(300):
        producer.emit_event(contexts[n % 2], "thing.done", f"s{n % 5}", {"n": n})
    assert producer.flush(30)
    stats = producer.stats
    assert (stats.emitted, stats.sent, stats.dropped, stats.buffered) == (300, 300, 0, 0)
    records = await read_topic(broker.bootstrap_servers, topic, 300)
    assert len(records) == 300
    partitions_by_key: dict[bytes, set[int]] = {}
    order: dict[bytes, list[int]] = {}
    for rec in sorted(records, key=lambda r: (r.partition, r.offset)):
        body = orjson.loads(rec.value)
        assert rec.key == kafka_key(body["routing"]["tenant_id"], body["stream_id"])
        assert dict(rec.headers)["spine-schema"] == b"1"
        partitions_by_key.setdefault(rec.key, set()).add(rec.partition)
        order.setdefault(rec.key, []).append(body["payload"]["n"])
        StreamEvent.model_validate_json(rec.value)  # the public schema accepts the wire
    assert all(len(p) == 1 for p in partitions_by_key.values())  # one stream, one partition
    assert all(ns == sorted(ns) for ns in order.values())  # emit order kept per stream
    first_a = next(orjson.loads(r.value) for r in records if r.key.startswith(b"t_a:"))
    assert first_a["metadata"]["request_id"] == "req-1"
    producer.close()


async def test_emit_never_blocks_while_the_broker_is_down_and_counts_drops(transport) -> None:
    dead = f"127.0.0.1:{free_port()}"
    producer = EventSpineProducer(
        ProducerSettings(
            bootstrap_servers=dead, topic="t", buffer_max_events=100, transport=transport
        )
    )
    c = ctx()
    # Returning at all proves emit never waits on the network (a hang would time out).
    ids = [producer.emit_event(c, "x", "s", {"n": n}) for n in range(150)]
    assert len(set(ids)) == 150
    stats = producer.stats
    assert (stats.emitted, stats.dropped, stats.sent) == (100, 50, 0)
    assert stats.buffered == 100
    assert not stats.connected
    report = producer.close(timeout_s=0.5)
    assert (report.sent, report.unsent, report.dropped) == (0, 100, 50)


def test_overflow_policy_raise_and_block() -> None:
    dead = f"127.0.0.1:{free_port()}"
    for policy in ("raise", "block"):
        producer = EventSpineProducer(
            ProducerSettings(
                bootstrap_servers=dead,
                buffer_max_events=2,
                overflow_policy=policy,
                block_timeout_ms=50,
            )
        )
        producer.emit_event(ctx(), "x", "s", {})
        producer.emit_event(ctx(), "x", "s", {})
        with pytest.raises(BufferFull, match="buffer_max_events"):
            producer.emit_event(ctx(), "x", "s", {})
        assert producer.stats.emitted == 2
        producer.close(timeout_s=0.1)


def test_bad_input_names_the_field_and_nothing_is_buffered() -> None:
    producer = EventSpineProducer(ProducerSettings(bootstrap_servers="127.0.0.1:1"), start=False)
    c = ctx()
    cases = [
        ({"event_type": "", "stream_id": "s", "payload": {}}, "event_type"),
        ({"event_type": "ok", "stream_id": "has space", "payload": {}}, "stream_id"),
        ({"event_type": "ok", "stream_id": "s", "payload": [1]}, "payload"),
        ({"event_type": "ok", "stream_id": "s", "payload": {"x": object()}}, "payload"),
        (
            {"event_type": "ok", "stream_id": "s", "payload": {}, "metadata": {"trace_id": 5}},
            "metadata.trace_id",
        ),
        (
            {"event_type": "ok", "stream_id": "s", "payload": {}, "event_id": "not-a-uuid"},
            "event_id",
        ),
    ]
    for kwargs, field in cases:
        with pytest.raises(EventValidationError) as info:
            producer.emit_event(c, **kwargs)
        assert info.value.field == field
        assert f"`{field}`" in str(info.value)
    with pytest.raises(EventTooLarge, match="max_event_bytes"):
        producer.emit_event(c, "ok", "s", {"blob": "x" * (1024 * 1024)})
    with pytest.raises(EventValidationError, match="RequestContext"):
        producer.emit_event(None, "ok", "s", {})
    assert producer.stats.emitted == 0
    producer.close(timeout_s=0)
    with pytest.raises(ProducerClosed):
        producer.emit_event(c, "ok", "s", {})


async def test_module_level_emit_uses_the_installed_producer_and_context(broker) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=1)
    with pytest.raises(ProducerNotConfigured):
        emit_event(ctx(), "x", "s", {})
    producer = producer_for(broker.bootstrap_servers, topic)
    set_default_producer(producer)
    try:
        with request_context(ctx("t_ctx", user_id="u_7")):
            event_id = emit_event(None, "x", "s", {"k": 1})
        assert producer.flush(30)
    finally:
        set_default_producer(None)
        producer.close()
    (record,) = await read_topic(broker.bootstrap_servers, topic, 1)
    body = orjson.loads(record.value)
    assert (body["event_id"], body["routing"]["tenant_id"], body["metadata"]["user_id"]) == (
        event_id,
        "t_ctx",
        "u_7",
    )


async def test_pydantic_events_go_through_the_same_path(broker) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=1)
    producer = producer_for(broker.bootstrap_servers, topic)
    event = StreamEvent(event_type="x.y", stream_id="s", routing=ctx().scope, payload={"a": [1]})
    assert producer.emit(event) == event.event_id
    assert producer.flush(30)
    producer.close()
    (record,) = await read_topic(broker.bootstrap_servers, topic, 1)
    assert StreamEvent.model_validate_json(record.value) == event


async def test_spill_keeps_everything_while_the_broker_is_down_then_delivers_in_order(
    tmp_path, transport
) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    settings = ProducerSettings(
        bootstrap_servers=bootstrap,
        topic="spilled",
        buffer_max_events=50,
        spill_dir=str(tmp_path / "spill"),
        linger_ms=2,
        transport=transport,
    )
    producer = EventSpineProducer(settings)
    c = ctx()
    first = [producer.emit_event(c, "x", f"s{n % 3}", {"n": n}) for n in range(400)]
    stats = producer.stats
    assert (stats.emitted, stats.dropped) == (400, 0)
    assert stats.spilled >= 350
    assert stats.spill_bytes > 0
    report = producer.close(timeout_s=0.2)  # broker still down: the backlog stays on disk
    assert report.unsent == 0
    assert report.kept_on_disk == 400
    with TansuBroker(port=port) as running:
        await ensure_topic(running.bootstrap_servers, "spilled", 2)
        again = EventSpineProducer(settings)  # a restarted process finds the spill
        later = [again.emit_event(c, "x", f"s{n % 3}", {"n": n}) for n in range(400, 450)]
        assert await again.flush_async(60)
        assert again.close().unsent == 0
        records = await read_topic(running.bootstrap_servers, "spilled", 450)
    got = [
        orjson.loads(r.value)["event_id"]
        for r in sorted(records, key=lambda r: (r.partition, r.offset))
    ]
    assert sorted(got) == sorted(first + later)
    per_stream: dict[str, list[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        body = orjson.loads(r.value)
        per_stream.setdefault(body["stream_id"], []).append(body["payload"]["n"])
    assert all(ns == sorted(ns) for ns in per_stream.values())
    assert not list((tmp_path / "spill").glob("*.spill")) or all(
        p.stat().st_size == 0 for p in (tmp_path / "spill").glob("*.spill")
    )


async def test_both_transports_put_a_stream_in_the_same_partition(broker) -> None:
    # Mixed producers (e.g. during a rollout) must not split a stream across partitions:
    # positions are offsets, so a stream has to live in one partition.
    topic = await new_topic(broker.bootstrap_servers, partitions=7)
    streams = [f"orders/o_{n}" for n in range(60)]
    for transport in TRANSPORTS:
        producer = producer_for(broker.bootstrap_servers, topic, transport=transport)
        for stream in streams:
            producer.emit_event(ctx("t_mix"), "x", stream, {"by": transport})
        assert producer.flush(30)
        producer.close()
    records = await read_topic(broker.bootstrap_servers, topic, 2 * len(streams))
    partitions: dict[bytes, set[int]] = {}
    for rec in records:
        partitions.setdefault(rec.key, set()).add(rec.partition)
    assert len(partitions) == len(streams)
    assert all(len(found) == 1 for found in partitions.values())
    assert len({p for found in partitions.values() for p in found}) > 1  # really spread


def test_confluent_transport_needs_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # as if not installed
    with pytest.raises(ConfigurationError, match=r"event-spine\[confluent\]"):
        EventSpineProducer(
            ProducerSettings(bootstrap_servers="127.0.0.1:1", transport="confluent"), start=False
        )


async def test_events_failed_after_a_broker_loss_are_sent_again_in_order(
    transport, s3_storage
) -> None:
    # Connected, then the broker goes away: what the client held expires
    # (request_timeout_ms), returns to the buffer and goes out again, in order, once the
    # broker is back on the same address.
    # Harness workaround: Tansu acknowledges a produce to a topic it does not have, and
    # drops it. A restarted in-memory broker has no topics, and the producer reconnects
    # before a test could create one, so the broker keeps its topics on S3 (moto).
    port = free_port()
    settings = ProducerSettings(
        bootstrap_servers=f"127.0.0.1:{port}",
        topic="lost",
        linger_ms=2,
        request_timeout_ms=1_500,
        retry_backoff_max_ms=200,
        transport=transport,
    )
    c = ctx()

    def durable_broker() -> TansuBroker:
        return TansuBroker(port=port, storage_url=STORAGE_URL, env=s3_storage)

    with durable_broker() as first:
        await ensure_topic(first.bootstrap_servers, "lost", 2)
        producer = EventSpineProducer(settings)
        before = producer.emit_event(c, "x", "s0", {"n": -1})
        assert await producer.flush_async(30)
    ids = [producer.emit_event(c, "x", f"s{n % 3}", {"n": n}) for n in range(60)]
    await wait_until(
        lambda: producer.stats.failed > 0, 30, message="the client gave up on them at least once"
    )
    assert producer.stats.buffered == 60
    with durable_broker() as second:
        assert await producer.flush_async(60), producer.stats
        assert producer.close().unsent == 0
        records = await read_topic(second.bootstrap_servers, "lost", 61, timeout_s=60)
    bodies = [orjson.loads(r.value) for r in sorted(records, key=lambda r: (r.partition, r.offset))]
    assert sorted(b["event_id"] for b in bodies) == sorted([before, *ids])  # none twice
    per_stream: dict[str, list[int]] = {}
    for body in bodies:
        per_stream.setdefault(body["stream_id"], []).append(body["payload"]["n"])
    assert all(ns == sorted(ns) for ns in per_stream.values())


def _producer_threads() -> set[int]:
    """OS threads of this process that are the sender's or no Python thread's (the
    client library's own, e.g. librdkafka's)."""
    python = {t.native_id for t in threading.enumerate() if t.name != "spine-producer"}
    return {int(task) for task in os.listdir("/proc/self/task")} - python


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
async def test_a_closed_producer_leaves_no_threads_behind(broker, transport) -> None:
    # A closed producer must not keep client threads dialling the broker (the
    # confluent client lived on until the cyclic GC collected it).
    before = _producer_threads()
    producer = producer_for(
        broker.bootstrap_servers, await new_topic(broker.bootstrap_servers), transport=transport
    )
    producer.emit_event(ctx(), "x", "s", {"n": 1})
    assert await producer.flush_async(30)
    assert _producer_threads() - before  # the sender runs (and librdkafka's, if used)
    assert producer.close().unsent == 0
    await wait_until(lambda: not _producer_threads() - before, 10, message="threads ended")


async def test_events_the_client_holds_when_closing_with_the_broker_gone_go_to_the_spill(
    tmp_path, transport
) -> None:
    # Connected, then the broker goes away: events already handed to the client
    # (librdkafka's queue, aiokafka's batches) are neither acked nor lost. close()
    # takes them back (a purge reports each as failed) and keeps them on disk; none
    # is counted as sent. A producer started later on the same spill delivers them.
    port = free_port()
    settings = ProducerSettings(
        bootstrap_servers=f"127.0.0.1:{port}",
        topic="held",
        linger_ms=2,
        spill_dir=str(tmp_path / "spill"),
        transport=transport,
    )
    c = ctx()
    with TansuBroker(port=port) as first:
        await ensure_topic(first.bootstrap_servers, "held", 2)
        producer = EventSpineProducer(settings)
        before = producer.emit_event(c, "x", "s0", {"n": -1})
        assert await producer.flush_async(30)
    ids = [producer.emit_event(c, "x", f"s{n % 3}", {"n": n}) for n in range(40)]
    # In the client (or already failed back by it): not visible in stats, so the
    # sender's own counter.
    await wait_until(
        lambda: bool(producer._sender.in_flight or producer.stats.failed),
        10,
        message="the sender handed the events to the client",
    )
    report = producer.close(timeout_s=0.5)
    assert (report.sent, report.unsent, report.kept_on_disk) == (1, 0, 40)
    with TansuBroker(port=port) as second:
        await ensure_topic(second.bootstrap_servers, "held", 2)
        again = EventSpineProducer(settings)
        assert await again.flush_async(60), again.stats
        assert again.close().unsent == 0
        records = await read_topic(second.bootstrap_servers, "held", 40, timeout_s=60)
    assert before not in {orjson.loads(r.value)["event_id"] for r in records}
    assert sorted(orjson.loads(r.value)["event_id"] for r in records) == sorted(ids)
