"""producer: sustained events/s from emit_event() to acked by the local broker.

Ours: one thread calls emit_event() as fast as it can (overflow_policy="block", so
a full buffer applies backpressure instead of dropping), the producer's sender
thread ships them; the clock stops when flush() sees every event acked. It runs
twice: with the default aiokafka transport and with the optional confluent-kafka
transport.

Baselines send the same events already serialized (ours also validates and
serializes them), with the same batching (linger 5 ms, 256 KiB batches),
compression (lz4) and acks (all), every ack awaited:
- the default transport against a raw aiokafka ``create_batch``/``send_batch`` loop,
  the API our sender uses (the goal), and against a raw ``send()`` loop (beside it);
- the confluent transport against a raw confluent-kafka ``produce()`` loop with the
  transport's own librdkafka options (``librdkafka_options``).
Beside them, the same send_batch loop doing our work too: each event built (new
UUIDv7 id, time) and serialized with the library's encoder as the loop takes it, in
one thread with no hand-off (the same work done in one loop; no goal). Emit alone (a
producer that is never started: validate, serialize, buffer) is the ceiling of emit
-> acked on either transport; its ratio to the send_batch loop says how far the goal
can be reached at all while the caller's thread and the sender share one GIL.
Connecting is excluded on every side; the sides rotate order between repeats, each on
a fresh topic.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Comparison, Goal, Measured, log
from benchmarks.pipeline import (
    CTX,
    EVENT_TYPE,
    close_undelivered,
    encoded_items,
    make_items,
    new_topic,
    payload,
    stream_ids,
)
from benchmarks.rawloops import raw_confluent, raw_send, raw_send_batch
from event_spine.broker.tansu import TansuBroker
from event_spine.producers.confluent import librdkafka_options
from event_spine.producers.emit import emit_event, set_default_producer
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.settings import ProducerSettings

NAME = "producer"
DESCRIPTION = (
    "events/s from emit_event() to acked by the local broker (aiokafka and confluent-kafka "
    "transports) vs raw loops sending the same serialized events with the same settings: "
    "aiokafka send_batch (and send()), confluent-kafka produce()"
)
COMPARISONS = [
    Comparison(
        "producer throughput",
        "ours_per_s",
        "raw_batch_per_s",
        "higher",
        Goal("ratio_min", 1.0, "ratio >= 1.0"),
        "emit_event -> acked",
        "raw aiokafka send_batch (pre-serialized)",
    ),
    Comparison(
        "producer throughput vs a send() loop",
        "ours_per_s",
        "raw_send_per_s",
        "higher",
        None,
        "emit_event -> acked",
        "raw aiokafka send() (pre-serialized)",
    ),
    Comparison(
        "producer throughput vs the same work in one loop",
        "ours_per_s",
        "raw_batch_encoding_per_s",
        "higher",
        None,
        "emit_event -> acked",
        "raw aiokafka send_batch, each event built and serialized in the loop",
    ),
    Comparison(
        "emit alone, no sending (ceiling of emit -> acked)",
        "emit_only_per_s",
        "raw_batch_per_s",
        "higher",
        None,
        "emit_event into a producer never started",
        "raw aiokafka send_batch (pre-serialized)",
    ),
    Comparison(
        "producer throughput, confluent-kafka transport",
        "confluent_per_s",
        "raw_confluent_per_s",
        "higher",
        Goal("min", 150_000, ">= 150k events/s"),
        "emit_event -> acked (transport=confluent)",
        "raw confluent-kafka produce() (pre-serialized)",
    ),
]
#: Our producer's transport per side of ours; the raw loops are the baselines.
OURS = {"ours": "aiokafka", "confluent": "confluent"}
SIDES = [
    "ours",
    "confluent",
    "raw_batch",
    "raw_batch_encoding",
    "raw_send",
    "raw_confluent",
    "emit_only",
]


def params(smoke: bool) -> dict[str, Any]:
    """Sizes: 200k events per side and repeat (smoke: 2k)."""
    return {"events": 2_000 if smoke else 200_000}


def _ours(bootstrap: str, topic: str, events: int, transport: str) -> float:
    producer = EventSpineProducer(
        ProducerSettings(
            bootstrap_servers=bootstrap,
            topic=topic,
            overflow_policy="block",
            block_timeout_ms=120_000,
            transport=transport,
        )
    )
    set_default_producer(producer)
    try:
        emit_event(CTX, EVENT_TYPE, "orders/warmup", payload(0))  # connect first
        if not producer.flush(30):
            raise RuntimeError("the producer did not connect")
        streams = stream_ids()
        started = time.perf_counter()
        for i in range(events):
            emit_event(CTX, EVENT_TYPE, streams[i % len(streams)], payload(i))
        if not producer.flush(300):
            raise RuntimeError(f"not every event was acked: {producer.stats}")
        elapsed = time.perf_counter() - started
        stats = producer.stats
        if stats.sent != events + 1 or stats.dropped:
            raise RuntimeError(f"unexpected producer stats: {stats}")
        return elapsed
    finally:
        set_default_producer(None)
        producer.close(timeout_s=5)


def _emit_only(events: int) -> float:
    """emit_event() into a producer whose sender never starts (nothing is sent)."""
    producer = EventSpineProducer(
        ProducerSettings(bootstrap_servers="127.0.0.1:1", buffer_max_events=events + 1),
        start=False,
    )
    set_default_producer(producer)
    try:
        streams = stream_ids()
        started = time.perf_counter()
        for i in range(events):
            emit_event(CTX, EVENT_TYPE, streams[i % len(streams)], payload(i))
        elapsed = time.perf_counter() - started
        if producer.stats.emitted != events:
            raise RuntimeError(f"unexpected producer stats: {producer.stats}")
        return elapsed
    finally:
        set_default_producer(None)
        close_undelivered(producer, 0)  # never started: every event buffered by design


def _side(side: str, bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> float:
    """Elapsed seconds of one side."""
    events = len(items)
    if side in OURS:
        return _ours(bootstrap, topic, events, OURS[side])
    if side == "emit_only":
        return _emit_only(events)
    if side == "raw_batch":
        return asyncio.run(raw_send_batch(bootstrap, topic, items))
    if side == "raw_batch_encoding":
        return asyncio.run(raw_send_batch(bootstrap, topic, encoded_items(events)))
    if side == "raw_send":
        return asyncio.run(raw_send(bootstrap, topic, items))
    options = librdkafka_options(ProducerSettings(bootstrap_servers=bootstrap, topic=topic))
    return raw_confluent(bootstrap, topic, items, options)


def run(p: dict[str, Any], repeats: int, workdir: Path) -> Measured:
    """One broker for the run; each repeat runs every side on a fresh topic."""
    events = p["events"]
    items = make_items(events)
    measured = Measured(info={"event_bytes_avg": sum(len(v) for _, v in items) / len(items)})
    with TansuBroker() as broker:
        bootstrap = broker.bootstrap_servers
        for k in range(repeats):
            log(f"producer: repeat {k + 1}/{repeats}")
            run_metrics: dict[str, float] = {}
            sides = SIDES[k % len(SIDES) :] + SIDES[: k % len(SIDES)]
            for side in sides:
                topic = asyncio.run(new_topic(bootstrap))
                elapsed = _side(side, bootstrap, topic, items)
                run_metrics[f"{side}_per_s"] = events / elapsed
                run_metrics[f"{side}_elapsed_s"] = elapsed
            measured.runs.append(run_metrics)
    return measured
