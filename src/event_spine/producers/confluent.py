"""An optional transport on confluent-kafka (librdkafka) instead of aiokafka.

Why: librdkafka partitions, batches, compresses and sends in its own C threads, so
the sender thread holds the GIL for little more than one ``produce()`` call per
event (``spine bench producer`` measures both transports against raw aiokafka).
Select it with ``ProducerSettings(transport="confluent")`` or
``SPINE_PRODUCER_TRANSPORT=confluent``; install ``event-spine[confluent]``.

Same contract as the aiokafka sender (``SenderBase``): accepted events are never
dropped here, a failed delivery goes back to the front of the buffer in emit order,
and close() hands what is left to the spill. Keys land in the same partitions as
with aiokafka: librdkafka's ``murmur2_random`` partitioner is the Java client's
murmur2, as aiokafka's DefaultPartitioner is, so both transports can write one topic
without splitting a stream across partitions.
"""

from __future__ import annotations

import logging
from typing import Any

from event_spine.kafka.clients import confluent_module, make_confluent_producer
from event_spine.kafka.diagnose import auth_failure, probe_tls
from event_spine.producers.batching import SCHEMA_HEADERS, TRACEPARENT, Numbered, headers_of
from event_spine.producers.buffer import EmitBuffer
from event_spine.producers.sender import SenderBase
from event_spine.producers.settings import ProducerSettings
from event_spine.producers.spill import SpillQueue

#: librdkafka error codes meaning "no broker reachable" (seen in error_cb).
_BROKERS_DOWN = ("_ALL_BROKERS_DOWN", "_TRANSPORT", "_RESOLVE")
_PROBE_TIMEOUT_S = 1.0
#: librdkafka's RD_KAFKA_PARTITION_UA: the configured partitioner picks.
_ANY_PARTITION = -1
#: Retry order of events refused before they were queued: after every reported one.
_LOCAL_FAILURE = 1 << 62
#: librdkafka's own log lines (connect failures and the like) go through logging, so
#: they get the process's format and level instead of raw lines on stderr.
_CLIENT_LOG = logging.getLogger("event_spine.producers.librdkafka")


def librdkafka_options(settings: ProducerSettings) -> dict[str, Any]:
    """The librdkafka options the transport sends with (``spine bench producer``'s raw
    confluent-kafka loop uses the same ones)."""
    s = settings
    return {
        "client.id": s.client_id,
        "acks": s.acks,
        "compression.type": s.compression_type,
        "linger.ms": s.linger_ms,
        "batch.size": s.max_batch_bytes,
        "message.max.bytes": s.max_event_bytes + 64 * 1024,
        "request.timeout.ms": s.request_timeout_ms,
        # As aiokafka expires a batch after request_timeout_ms: the events then go
        # back to the emit buffer and are retried with the sender's backoff.
        "message.timeout.ms": s.request_timeout_ms,
        "enable.idempotence": s.enable_idempotence,
        "partitioner": "murmur2_random",
        # The sender never hands over more than max_in_flight_events.
        "queue.buffering.max.messages": s.max_in_flight_events,
        # Only failures reach Python; a success is counted when librdkafka has let
        # the event go without one (``_settle``). A report per event cost the sender
        # thread a Message object (key and value copied), a Python call and its
        # bookkeeping: sender CPU 4.65 -> 3.05 us per event with positional
        # produce() (median of 8 paired runs, emit -> acked, load 6-8;
        # benchmarks/results/profiles/profile-producer-confluent*.txt).
        "delivery.report.only.error": True,
    }


class ConfluentSender(SenderBase):
    """One librdkafka producer; delivery reports are served by this thread's poll()."""

    def __init__(
        self, settings: ProducerSettings, buffer: EmitBuffer, spill: SpillQueue | None
    ) -> None:
        super().__init__(settings, buffer, spill)
        self._kafka = confluent_module()
        self._producer: Any = None
        self._probed = False
        self._reported_failures = 0
        #: The one clear error when the security settings are why no broker answers
        #: (found once: librdkafka's own reports are vague and repeat).
        self._security_error: str | None = None
        self._tls_checked = False

    def _config(self) -> dict[str, Any]:
        """librdkafka options of this sender (``librdkafka_options`` plus callbacks);
        address and security come from ``settings.kafka`` through
        ``make_confluent_producer``."""
        return {
            **librdkafka_options(self.settings),
            "error_cb": self._on_error,
            "on_delivery": self._report,
            "logger": _CLIENT_LOG,
        }

    async def _ready(self) -> bool:
        """Created once; sending starts after the first answer from a broker.

        Like the aiokafka sender's connect: until a broker answered once, events wait
        in the emit buffer (bounded, spilled) instead of librdkafka's queue.
        """
        if self._producer is None:
            self._producer = make_confluent_producer(self.settings.kafka, **self._config())
        if not self._probed:
            try:
                self._producer.list_topics(self.settings.topic, timeout=_PROBE_TIMEOUT_S)
            except self._kafka.KafkaException as exc:
                self.last_error = self._connect_error(exc)
                return False
            self._probed = self.connected = True
            self.last_error = None
        return True

    async def _send(self, numbered: list[Numbered]) -> None:
        producer, topic = self._producer, self.settings.topic
        produce = producer.produce
        for index, (_, (key, value, traceparent)) in enumerate(numbered):
            # Positional arguments (topic, value, key, partition, callback, on_delivery,
            # timestamp, headers): keywords cost a dict per call, 0.3 us of ~2.3.
            headers = SCHEMA_HEADERS if not traceparent else headers_of((key, value, traceparent))
            while True:
                try:
                    produce(topic, value, key, _ANY_PARTITION, None, None, 0, headers)
                    break
                except BufferError:  # librdkafka's queue is full: serve reports, try again
                    producer.poll(0.01)
                except self._kafka.KafkaException as exc:  # refused locally: this and the
                    # rest retry after every report is in, behind the reported failures
                    # (which are all older: nothing was produced after them).
                    rest = [(_LOCAL_FAILURE + s, i) for s, i in numbered[index:]]
                    self.fail(rest, exc)
                    self._settle()
                    return
        producer.poll(0)
        self._settle()

    def _settle(self) -> None:
        """Count as delivered what librdkafka no longer holds.

        ``len(producer)`` counts the events librdkafka still holds: queued, in flight,
        or waiting for their report to be served. With
        ``delivery.report.only.error`` a success has no Python callback; the event
        leaves that count only after the broker acked it (or after its failure was
        reported to ``_report``, which already took it out of ``in_flight``). The
        count can be high (it includes other queued client events), never low: an
        event is never counted delivered too early.
        """
        delivered = self.in_flight - len(self._producer)
        if delivered > 0:
            self.delivered(delivered)

    def _report(self, err: Any, msg: Any) -> None:
        """librdkafka's report of a failed delivery (successes have none, see
        ``_settle``); reports come in produce order per partition, so their arrival
        order keeps each stream's order when they go back to the buffer."""
        if err is None:  # not sent with delivery.report.only.error; counted by _settle
            return
        self._reported_failures += 1
        headers = dict(msg.headers() or ())
        item = (msg.key(), msg.value(), headers.get(TRACEPARENT, b""))
        self.fail([(self._reported_failures, item)], self._kafka.KafkaException(err))

    def _connect_error(self, exc: Exception) -> str:
        if self._security_error is None and not self._tls_checked:
            self._tls_checked = True  # one probe (a TLS handshake, <= 5 s) per sender
            found = probe_tls(self.settings.kafka)
            self._security_error = str(found) if found else None
        return self._security_error or f"connect: {exc!r}"

    def _on_error(self, err: Any) -> None:
        # A SASL refusal becomes the one clear message naming mechanism and user.
        refused = auth_failure(err, self.settings.kafka)
        if refused is not None:
            self._security_error = str(refused)
        self.last_error = self._security_error or str(err)
        if err.name() in _BROKERS_DOWN:
            self.connected = False

    async def _wait(self, seconds: float) -> None:
        if self._producer is None:
            self._stopping.wait(seconds)
        else:
            self._producer.poll(seconds)
            self._settle()

    async def _close(self) -> None:
        """Whatever librdkafka still holds when the caller's deadline passed is purged:
        its reports land in ``retry`` and go back to the buffer (or the spill)."""
        producer = self._producer
        if producer is None:
            return
        producer.poll(0)
        self._settle()
        if self.in_flight:
            producer.purge(in_queue=True, in_flight=True, blocking=False)
        producer.flush(1.0)
        self._settle()
        # Release librdkafka's threads and connections now: the client holds this
        # sender through its callbacks, so it would otherwise live (and keep dialling
        # a lost broker) until the cyclic GC happens to collect the pair. Older
        # confluent-kafka releases have no close(): dropping the last reference frees
        # the client there.
        self._producer = None
        if hasattr(producer, "close"):
            producer.close()
