"""SinkWorker: a faststream batch subscriber wired to the batch pipeline.

faststream's own batch acks commit every assigned partition's position, before or
regardless of the handler's outcome (docs/design.md, "sink worker"). So the
subscriber runs with AckPolicy.MANUAL and hands each batch to a ``BatchPipeline``
(``event_spine.pipeline``), whose ``CommitUnit`` commits per partition only what
is durable. This module only wires: registry, route cache, processor, dead-letter
producer, consumer, endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.message import FAKE_CONSUMER

from event_spine.audit.emit import registry_audit_hook
from event_spine.audit.sink import SinkAudit
from event_spine.backends.factory import StoreFactory
from event_spine.backends.seams import RegistryStore
from event_spine.kafka.clients import make_broker, make_producer
from event_spine.kafka.records import RawRecord
from event_spine.kafka.startup import wait_for_kafka
from event_spine.kafka.takeover import Takeover, TakeoverListener, plan_takeover
from event_spine.pipeline.backoff import Backoff
from event_spine.pipeline.backpressure import RewindAndPause
from event_spine.pipeline.batches import Batch, BatchPipeline, RebalanceListener
from event_spine.pipeline.offsets import CommitUnit
from event_spine.pipeline.processor import BatchProcessor
from event_spine.pipeline.status import PipelineStats
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.settings import ProducerSettings
from event_spine.producers.topics import ensure_topic
from event_spine.routing.cache import RouteCache
from event_spine.routing.registry import RoutingRegistry
from event_spine.routing.stores import open_registry_store
from event_spine.sink_workers.endpoints import WorkerEndpoints
from event_spine.sink_workers.publisher import DeadLetterPublisher
from event_spine.sink_workers.settings import SinkSettings
from event_spine.sink_workers.status import WorkerStatus

log = logging.getLogger(__name__)


async def _raw_records(msg: KafkaMessage) -> Sequence[RawRecord]:
    """faststream decoder: hand the handler the raw ConsumerRecords, undecoded."""
    records: Sequence[RawRecord] = msg.raw_message
    return records


async def _lean_parser(records: tuple[RawRecord, ...]) -> KafkaMessage:
    """faststream parser without per-record work: the default one decodes every
    record's headers into a dict (~7% of the sink's time); the handler reads the raw
    ConsumerRecords itself. The consumer is the worker's (set after start)."""
    first, last = records[0], records[-1]
    return KafkaMessage(
        records,
        records,
        message_id=f"{first.partition}-{first.offset}-{last.offset}",
        consumer=FAKE_CONSUMER,
    )


class SinkWorker:
    """One member of the sink consumer group."""

    def __init__(
        self,
        settings: SinkSettings,
        *,
        registry: RoutingRegistry | None = None,
        stores: StoreFactory | None = None,
    ) -> None:
        self.settings = settings
        self._registry = registry
        self._own_registry_store: RegistryStore | None = None
        self.stores = stores or StoreFactory()
        #: Set when start() finished (or failed): the consumer joins before the rest
        #: of the worker is up, and a batch waits for this.
        self._ready = asyncio.Event()
        self._sink_audit: SinkAudit | None = None
        #: The dead predecessor's membership this worker continued on start
        #: (settings.instance_id; kafka/takeover.py).
        self.takeover = Takeover()
        self._broker: KafkaBroker | None = None
        self._subscriber: Any = None
        self._stopping = False
        self._audit_producer: EventSpineProducer | None = None
        self._routes: RouteCache | None = None
        self.stats = PipelineStats()
        self.endpoints = WorkerEndpoints(settings, self.status)
        self._dead_letters = DeadLetterPublisher(
            settings.dead_letter_topic, settings.worker_id, self.endpoints.metrics
        )
        offsets = CommitUnit(self.stats)
        backoff = Backoff(settings.retry_backoff_initial_ms, settings.retry_backoff_max_ms)
        #: The processor is set once the registry is open (``_start_rest``).
        self.pipeline = BatchPipeline(offsets, RewindAndPause(offsets, backoff), self._dead_letters)

    @property
    def ready(self) -> bool:
        """False before start, after stop, and from a failed batch (failing backend,
        registry or dead-letter topic) until a batch is written again: through the whole
        outage, so a probe between two retries (partitions resumed) sees no ready worker."""
        return self._broker is not None and not self.pipeline.blocked

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._broker is not None

    def assignment(self) -> set[TopicPartition]:
        """Partitions this member owns right now."""
        return set(self.pipeline.offsets.owned())

    def route_cache_counts(self) -> tuple[int, int]:
        """(hits, misses) of the route cache."""
        return (self._routes.hits, self._routes.misses) if self._routes is not None else (0, 0)

    def status(self) -> WorkerStatus:
        """A snapshot for the endpoints (health, readiness, metrics, lag)."""
        return WorkerStatus(
            running=self.running,
            ready=self.ready,
            stats=self.stats,
            owned_partitions=frozenset(tp.partition for tp in self.assignment()),
            route_cache=self.route_cache_counts(),
        )

    async def start(self) -> None:
        """Wait for the cluster (bounded: ``kafka.startup_timeout_s``), connect, join."""
        s = self.settings
        await wait_for_kafka(s.kafka, f"sink worker {s.worker_id}")
        # The registry, the DLQ topic check and the producers (0.3-0.5 s at load 10,
        # benchmarks/results/recovery-timeline) start while the consumer joins; a batch
        # waits for them (``_ready``).
        rest = asyncio.ensure_future(self._start_rest())
        try:
            if s.instance_id is not None:
                # Before joining: continue a dead predecessor's membership, if any.
                # (Static members are the broker's to hand over: remove, never continue.)
                remove = s.instance_recovery == "remove" or s.group_instance_id is not None
                self.takeover = await plan_takeover(
                    s.kafka, s.group_id, s.instance_id, remove=remove
                )
            self._broker = self._build_broker()
            await self._broker.start()  # returns once the consumer owns its partitions
            self.pipeline.bind(self._subscriber.consumer)
            await rest
        except BaseException:
            # Leave as if the consumer had never started: a batch waiting for _ready
            # returns uncommitted, and a failed start() leaves no member behind.
            rest.cancel()
            await asyncio.wait([rest])
            if not rest.cancelled() and (failed := rest.exception()) is not None:
                log.debug("the registry/DLQ/producer start failed too", exc_info=failed)
            self._stopping = True
            self._ready.set()
            broker, self._broker = self._broker, None
            if broker is not None:
                await broker.stop()
            raise
        self._ready.set()
        await self.endpoints.start()

    async def _start_rest(self) -> None:
        """Registry, route cache, processor, DLQ topic and producer."""
        s = self.settings
        if self._registry is None:
            self._own_registry_store = await open_registry_store(
                s.registry_backend, s.registry_config
            )
            audit = None
            if s.audit_route_lookups:
                self._audit_producer = EventSpineProducer(
                    ProducerSettings(
                        bootstrap_servers=s.bootstrap_servers,
                        kafka=s.kafka,
                        topic=s.topic,
                        client_id=f"{s.worker_id}-audit",
                    )
                )
                audit = registry_audit_hook(self._audit_producer)
            self._registry = RoutingRegistry(self._own_registry_store, audit)
        self._routes = RouteCache(self._registry, ttl_s=s.route_cache_ttl_s)
        self._sink_audit = SinkAudit.from_env(self._routes)
        self.pipeline.processor = BatchProcessor(
            self._routes,
            self.stores,
            max_event_bytes=s.max_event_bytes,
            hold_on_missing_route=s.on_route_missing == "hold",
            max_attempts=s.max_attempts,
            audit=self._sink_audit,
        )
        await ensure_topic(s.kafka, s.dead_letter_topic, s.dlq_partitions)
        dlq = self._dead_letters.producer = make_producer(
            s.kafka,
            client_id=f"{s.worker_id}-dlq",
            acks="all",
            # A dead letter may be an oversize record: anything a fetch can return fits.
            max_request_size=s.max_partition_fetch_bytes + 64 * 1024,
        )
        await dlq.start()

    def _build_broker(self) -> KafkaBroker:
        s = self.settings
        broker = make_broker(
            s.kafka,
            # The instance name, when given, is how a successor recognises this member.
            client_id=s.instance_id or s.worker_id,
            graceful_timeout=s.shutdown_timeout_s,
            allow_auto_create_topics=False,  # created explicitly with a fixed partition count
            log_level=logging.DEBUG,  # per-batch "Received/Processed" lines stay quiet
            # Through the root handler (JSON with --log-format json), not faststream's own
            # coloured stdout handler.
            logger=logging.getLogger("faststream.access.spine"),
        )
        subscriber = broker.subscriber(
            s.topic,
            group_id=s.group_id,
            batch=True,
            max_records=s.max_records,
            batch_timeout_ms=s.batch_timeout_ms,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            max_partition_fetch_bytes=s.max_partition_fetch_bytes,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            group_instance_id=s.group_instance_id,
            rebalance_timeout_ms=s.rebalance_timeout_ms,
            ack_policy=AckPolicy.MANUAL,
            # Revoke: wait for the batch in flight, bounded below rebalance_timeout_ms;
            # the first join continues a dead predecessor (kafka/takeover.py).
            listener=TakeoverListener(
                RebalanceListener(self.pipeline, s.rebalance_timeout_ms / 2000),
                self._own_consumer,
                self.takeover,
            ),
            parser=_lean_parser,
            decoder=_raw_records,
        )
        subscriber(self._handle)
        self._subscriber = subscriber
        return broker

    def _own_consumer(self) -> AIOKafkaConsumer | None:
        return getattr(self._subscriber, "consumer", None)

    async def stop(self) -> None:
        """Leave the group; an unfinished batch is not committed (it will come again)."""
        self.pipeline.backpressure.close()
        await self.endpoints.stop()
        # Finish (and commit) the batch being written while the consumer still runs.
        self._stopping = True
        await self.wait_idle(self.settings.shutdown_timeout_s)
        if self._broker is not None:
            await self._broker.stop()
            self._broker = None
        dlq, self._dead_letters.producer = self._dead_letters.producer, None
        if dlq is not None:
            await dlq.stop()
        self._dead_letters.log.flush()
        await self.stores.close()
        if self._sink_audit is not None:
            await self._sink_audit.close()
        if self._audit_producer is not None:
            await asyncio.to_thread(self._audit_producer.close)
        if self._own_registry_store is not None:
            await self._own_registry_store.close()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Start, run until SIGTERM/SIGINT (or ``stop`` is set), then stop."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        # Start as a task racing the stop event: a signal during the startup retries,
        # the topic check or the group join ends it at once (before, the handlers only
        # set an event nobody read until start() returned: SIGTERM waited ~17 s).
        starting = asyncio.ensure_future(self.start())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                log.warning("sink worker stopped by a signal during startup")
                return
            starting.result()  # a startup error (e.g. BrokerUnavailable) ends the run
            await stopped
        finally:
            stopped.cancel()
            await self.stop()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no batch is being handled or written; False on timeout."""
        return await self.pipeline.drain(timeout_s)

    async def _handle(self, body: Any, msg: KafkaMessage) -> None:
        """One batch from faststream, into the pipeline (which prepares it while the
        previous one is written, and commits it once durable).

        ``body`` stays ``Any``: faststream validates a handler's body by its annotation.
        """
        records: Sequence[RawRecord] = body
        arrived_s = time.time()
        await self._ready.wait()
        if not records or self._stopping:
            return  # not committed: redelivered to whoever consumes next
        # Aged at arrival, counted only when handled: a batch handed back here is
        # received again by whoever consumes next (and counted there).
        self.endpoints.metrics.record_ages.observe("received", records, arrived_s)
        if self._subscriber is not None and self._subscriber.consumer is not None:
            self.pipeline.bind(self._subscriber.consumer)
        await self.pipeline.submit(Batch.of(records))
