"""The emitting request's traceparent crosses the broker and is restored in the sink."""

from __future__ import annotations

import logging

import orjson
import pytest

from event_spine.observability.logs import JsonFormatter
from event_spine.producers import EventSpineProducer, ProducerSettings
from support.pipeline import (
    ctx,
    new_topic,
    producer_for,
    read_topic,
    registry_at,
    route_to_sqlite,
    sink_settings,
    started_worker,
)
from support.waiting import wait_until

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_traceparent_round_trip_through_the_broker(broker, tmp_path, caplog) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=1)
    registry = await registry_at(tmp_path / "registry.db")
    traced = ctx(traceparent=TRACEPARENT)
    await route_to_sqlite(registry, traced, tmp_path / "events.db")
    producer = producer_for(broker.bootstrap_servers, topic)
    producer.emit_event(traced, "traced.call", "s", {"n": 1})
    producer.emit_event(ctx(), "untraced.call", "s", {"n": 2})
    assert producer.flush(30)
    records = await read_topic(broker.bootstrap_servers, topic, 2)
    headers = [dict(r.headers) for r in sorted(records, key=lambda r: r.offset)]
    assert headers[0]["traceparent"] == TRACEPARENT.encode()
    assert "traceparent" not in headers[1]

    caplog.set_level(logging.DEBUG, logger="event_spine.pipeline.processor")
    worker = await started_worker(
        sink_settings(broker.bootstrap_servers, topic, tmp_path / "registry.db")
    )
    try:
        await wait_until(lambda: worker.stats.written == 2, 30)
        written = [r for r in caplog.records if r.getMessage().startswith("wrote ")]
        assert any(TRACEPARENT in getattr(r, "traceparents", []) for r in written)
        line = orjson.loads(JsonFormatter().format(written[-1]))
        assert line["traceparents"] == [TRACEPARENT]
    finally:
        await worker.stop()
        producer.close()
        await registry.store.close()


def test_an_active_opentelemetry_span_is_sent_and_none_means_no_header(monkeypatch) -> None:
    trace = pytest.importorskip("opentelemetry.trace")
    from opentelemetry import context as otel_context  # noqa: PLC0415

    from event_spine.observability import tracing  # noqa: PLC0415

    span = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
            span_id=0x00F067AA0BA902B7,
            is_remote=True,
            trace_flags=trace.TraceFlags(1),
        )
    )
    own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    # The fast read of OpenTelemetry's context and its public get_current() agree.
    for reader in (tracing._current_otel_context, otel_context.get_current):
        monkeypatch.setattr(tracing, "_current_otel_context", reader)
        producer = EventSpineProducer(
            ProducerSettings(bootstrap_servers="127.0.0.1:1"), start=False
        )
        producer.emit_event(ctx(), "x", "s", {})
        with trace.use_span(span):
            producer.emit_event(ctx(), "x", "s", {})
            producer.emit_event(ctx(traceparent=own), "x", "s", {})  # the context's wins
        producer.emit_event(ctx(), "x", "s", {})
        sent = [traceparent for _, _, traceparent in producer._buffer.drain(4)]
        assert sent == [b"", TRACEPARENT.encode(), own.encode(), b""]
