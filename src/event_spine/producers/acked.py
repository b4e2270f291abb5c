"""Send one event and wait for the broker's acknowledgement (strict hand-over).

``EventSpineProducer.emit_event`` is fire-and-forget: it "hands over" an event when
the event is validated, serialized and accepted into the producer's in-memory
buffer. From then on delivery is the sender thread's job (at-least-once, retried),
but the caller never learns whether it happened: a crash before the sender drains
the buffer loses the event, and a full buffer under ``drop_newest`` drops it (only
counted in ``ProducerStats.dropped``).

For the few callers that must know (strict audit), "handed over" means more here:
the broker acknowledged the record with the producer's ``acks`` setting (``all`` by
default: every in-sync replica has it). ``emit_acked`` validates exactly like
``emit_event`` (one builder: ``producers/records.py``), then sends it with a
short-lived aiokafka producer of its own and blocks until the ack or the deadline.

Trade-offs, on purpose:
- A connection per call (a few ms on a LAN): strict sends are rare, and nothing
  lingers between them (no thread, no connection to close at exit).
- The record bypasses the producer's buffer, so it may reach the partition before
  events emitted earlier under the same key. Positions still follow the partition
  (the audit chain is assigned by the sink in that order).
- ``DeliveryFailed`` means "not confirmed", not "not delivered": a timeout may hide
  a record the broker did store. Retry with the same ``event_id`` (it is on the
  error) and the store keeps one copy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka.errors import KafkaError

from event_spine.errors import DeliveryFailed
from event_spine.kafka.clients import make_producer
from event_spine.kafka.keys import kafka_key
from event_spine.observability.tracing import current_traceparent
from event_spine.producers.batching import SCHEMA_HEADER, TRACEPARENT
from event_spine.producers.records import build_record
from event_spine.producers.settings import ProducerSettings
from event_spine.schemas.context import RequestContext
from event_spine.schemas.formats import SCHEMA_VERSION
from event_spine.schemas.wire import encode_checked

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Acked:
    """Where the broker put the event: its partition and offset (the store position)."""

    event_id: str
    partition: int
    offset: int


def emit_acked(
    settings: ProducerSettings,
    ctx: RequestContext,
    event_type: str,
    stream_id: str,
    payload: dict[str, Any],
    metadata: Mapping[str, Any] | None = None,
    *,
    event_id: str | None = None,
    timeout_s: float = 5.0,
) -> Acked:
    """Send one event and block until the broker acks it; raises DeliveryFailed.

    Safe from sync code and from inside a running event loop (it then waits on a
    helper thread, blocking the caller's loop for at most ``timeout_s``).
    """
    record = build_record(ctx, event_type, stream_id, payload, metadata, event_id=event_id)
    value = encode_checked(record, settings.max_event_bytes)
    headers = [(SCHEMA_HEADER, str(SCHEMA_VERSION).encode())]
    traceparent = current_traceparent(ctx)
    if traceparent:
        headers.append((TRACEPARENT, traceparent))
    key = kafka_key(ctx.tenant_id, stream_id)
    return _run_blocking(
        lambda: _send_one(settings, record.event_id, key, value, headers, timeout_s)
    )


async def _send_one(
    settings: ProducerSettings,
    event_id: str,
    key: bytes,
    value: bytes,
    headers: list[tuple[str, bytes]],
    timeout_s: float,
) -> Acked:
    producer = make_producer(
        settings.kafka,
        client_id=f"{settings.client_id}-acked",
        acks="all" if settings.acks == "all" else int(settings.acks),
        enable_idempotence=settings.enable_idempotence,
        request_timeout_ms=max(int(timeout_s * 1000), 100),
        max_request_size=settings.max_event_bytes + 64 * 1024,
    )
    try:
        async with asyncio.timeout(timeout_s):
            await producer.start()
            meta = await producer.send_and_wait(settings.topic, value, key=key, headers=headers)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise DeliveryFailed(event_id, exc) from exc
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), timeout=timeout_s)
    return Acked(event_id, meta.partition, meta.offset)


def _run_blocking(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, with or without a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    # asyncio.run() refuses to nest: use a thread with its own loop.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spine-acked") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
