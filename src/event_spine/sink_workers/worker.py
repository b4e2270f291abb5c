"""SinkWorker: a faststream batch subscriber that commits only what is durable.

faststream's own batch acks commit every assigned partition's position, before or
regardless of the handler's outcome (docs/design.md, "sink worker"). So the
subscriber runs with AckPolicy.MANUAL and this module commits, per partition,
``max offset + 1`` of the batch, only after the store writes and the dead letters
are acked, and only for partitions this member still owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    ConsumerStoppedError,
    IllegalStateError,
    KafkaError,
)
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.message import FAKE_CONSUMER

from event_spine.audit.emit import registry_audit_hook
from event_spine.audit.sink import SinkAudit
from event_spine.backends.factory import StoreFactory
from event_spine.errors import StoreLayoutOutdated
from event_spine.kafka.clients import make_broker, make_producer
from event_spine.kafka.startup import wait_for_kafka
from event_spine.kafka.takeover import Takeover, TakeoverListener, plan_takeover
from event_spine.observability.ratelimit import DeadLetterLog
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.settings import ProducerSettings
from event_spine.producers.topics import ensure_topic
from event_spine.routing.cache import RouteCache
from event_spine.routing.registry import RoutingRegistry
from event_spine.routing.store import RegistryStore
from event_spine.routing.stores import open_registry_store
from event_spine.sink_workers.backoff import Backoff
from event_spine.sink_workers.dead_letters import DeadLetter
from event_spine.sink_workers.endpoints import WorkerEndpoints
from event_spine.sink_workers.processor import (
    BatchOutcome,
    BatchProcessor,
    BatchRetry,
    PreparedBatch,
)
from event_spine.sink_workers.settings import SinkSettings
from event_spine.sink_workers.stats import SinkStats, WorkerStatus

log = logging.getLogger(__name__)


async def _raw_records(msg: Any) -> Any:
    """faststream decoder: hand the handler the raw ConsumerRecords, undecoded."""
    return msg.raw_message


async def _lean_parser(records: tuple[Any, ...]) -> KafkaMessage:
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


class _Mark(NamedTuple):
    """Where a held partition must be read again from (shaped like a record)."""

    topic: str
    partition: int
    offset: int


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: SinkWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Let the in-flight batch finish and commit, so the next owner starts exactly
        # after it; bounded below rebalance_timeout_ms (past it, redelivery is absorbed
        # by idempotent writes).
        await self.worker.wait_idle(self.worker.settings.rebalance_timeout_ms / 2000)
        # Whoever owns a held partition next starts at its committed (held) offset.
        self.worker.forget_held()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # Pause state is lost on every rebalance: re-pause while backing off.
        self.worker.repause(assigned)


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
        self.stats = SinkStats()
        self._dead_letter_log = DeadLetterLog(log)
        self._registry = registry
        self._own_registry_store: RegistryStore | None = None
        self.stores = stores or StoreFactory()
        self._backoff = Backoff(settings.retry_backoff_initial_ms, settings.retry_backoff_max_ms)
        self._idle = asyncio.Event()
        self._idle.set()
        #: Set when start() finished (or failed): the consumer joins before the rest
        #: of the worker is up, and a batch waits for this.
        self._ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._sink_audit: SinkAudit | None = None
        self._paused: set[TopicPartition] = set()
        self._resume_handle: asyncio.TimerHandle | None = None
        #: The dead predecessor's membership this worker continued on start
        #: (settings.instance_id; kafka/takeover.py).
        self.takeover = Takeover()
        self._dlq: AIOKafkaProducer | None = None
        self._broker: KafkaBroker | None = None
        self._processor: BatchProcessor | None = None
        self._subscriber: Any = None
        self._pending: asyncio.Future[bool] | None = None
        self._pending_records: Sequence[Any] = ()
        #: Held partitions (on_route_missing=hold) -> (held offset, last offset of the
        #: batch that held it). A later batch whose records of one start above the last
        #: was fetched before the rewind (stale, dropped); the refetch starts at the
        #: held offset, and no rewind may move a held partition past it.
        self._held: dict[tuple[str, int], tuple[int, int]] = {}
        self._stopping = False
        self._last_cause: BaseException | None = None
        self._audit_producer: EventSpineProducer | None = None
        self._routes: RouteCache | None = None
        self.endpoints = WorkerEndpoints(settings, self.status)

    @property
    def ready(self) -> bool:
        """False before start, after stop, and from a failed batch (failing backend,
        registry or dead-letter topic) until a batch is written again: through the whole
        outage, so a probe between two retries (partitions resumed) sees no ready worker."""
        return self._broker is not None and not self._paused and not self._backoff.failing

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._broker is not None

    def assignment(self) -> set[TopicPartition]:
        """Partitions this member owns right now."""
        return set(self._consumer.assignment()) if self._consumer is not None else set()

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
        self._processor = BatchProcessor(
            self._routes,
            self.stores,
            max_event_bytes=s.max_event_bytes,
            hold_on_missing_route=s.on_route_missing == "hold",
            max_attempts=s.max_attempts,
            audit=self._sink_audit,
        )
        await ensure_topic(s.kafka, s.dead_letter_topic, s.dlq_partitions)
        self._dlq = make_producer(
            s.kafka,
            client_id=f"{s.worker_id}-dlq",
            acks="all",
            # A dead letter may be an oversize record: anything a fetch can return fits.
            max_request_size=s.max_partition_fetch_bytes + 64 * 1024,
        )
        await self._dlq.start()

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
            listener=TakeoverListener(_Rebalance(self), self._own_consumer, self.takeover),
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
        if self._resume_handle is not None:
            self._resume_handle.cancel()
        await self.endpoints.stop()
        # Finish (and commit) the batch being written while the consumer still runs.
        self._stopping = True
        await self.wait_idle(self.settings.shutdown_timeout_s)
        if self._broker is not None:
            await self._broker.stop()
            self._broker = None
        if self._dlq is not None:
            await self._dlq.stop()
            self._dlq = None
        self._dead_letter_log.flush()
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
        try:
            await asyncio.wait_for(self._drain(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _drain(self) -> None:
        await self._idle.wait()
        pending = self._pending
        if pending is not None:
            await asyncio.shield(pending)

    # -- the batch handler --------------------------------------------------------

    async def _handle(self, body: Any, msg: KafkaMessage) -> None:
        """Prepare batch N while batch N-1 is written; then hand N to a write task.

        Why: decoding is CPU work on this thread, the write mostly waits on the store,
        so the two overlap. Order and commits stay strict: N is written only after
        N-1's write and commit finished, and a failed N-1 sends N back too.
        """
        records: Sequence[Any] = body
        await self._ready.wait()
        if not records or self._stopping:
            return  # not committed: redelivered to whoever consumes next
        self._consumer = self._subscriber.consumer if self._subscriber is not None else None
        self._idle.clear()
        try:
            prepared = await self._prepare(records)  # on failure it rewound `records`
            previous, self._pending = self._pending, None
            previous_ok = await previous if previous is not None else True
            if not previous_ok:
                # N-1 was rewound; N must not be written ahead of it (nor committed).
                # Rewinding both again seeks every partition to the lower offset.
                cause = self._last_cause or RuntimeError("the previous batch is retried")
                self._rewind_and_pause([*self._pending_records, *records], cause, None)
                return
            if prepared is None:
                return
            records = self._drop_stale(records, prepared)
            self._pending_records = records
            self._pending = asyncio.ensure_future(self._complete(records, prepared))
            # Let the write task run up to its first real wait (the store call) now:
            # the next batch is often already buffered, and preparing it never yields,
            # so without this the write would only start after the next prepare.
            await asyncio.sleep(0)
        finally:
            self._idle.set()

    async def _prepare(self, records: Sequence[Any]) -> PreparedBatch | None:
        assert self._processor is not None
        self.stats.batches += 1
        self.stats.records += len(records)
        try:
            return await self._processor.prepare(records)
        except BatchRetry as retry:
            self._rewind_and_pause(records, retry.cause, retry.retry_after_s)
        except Exception as exc:  # a bug must not skip the batch: rewind, like a retry
            log.exception("sink batch failed unexpectedly")
            self._rewind_and_pause(records, exc, None)
        return None

    async def _complete(self, records: Sequence[Any], prepared: PreparedBatch) -> bool:
        """Write, publish dead letters, commit. False when the batch was rewound."""
        assert self._processor is not None
        try:
            outcome = await self._processor.write(prepared)
            await self._publish_dead_letters(outcome.dead_letters)
        except BatchRetry as retry:
            self._rewind_and_pause(records, retry.cause, retry.retry_after_s)
            return False
        except Exception as exc:  # a bug must not skip the batch: rewind, like a retry
            log.exception("sink batch failed unexpectedly")
            self._rewind_and_pause(records, exc, None)
            return False
        if not outcome.held:
            self._backoff.reset()
        self._record(outcome)
        await self._commit(records, outcome.held)
        if outcome.held:
            self._hold(records, outcome)
        self.endpoints.metrics.batch_size.labels(self.settings.topic).observe(len(records))
        for backend, seconds in outcome.write_timings:
            self.endpoints.metrics.write_seconds.labels(backend).observe(seconds)
        return True

    def _record(self, outcome: BatchOutcome) -> None:
        self.stats.written += outcome.written
        self.stats.duplicates += outcome.duplicates
        for letter in outcome.dead_letters:
            self.stats.dead_lettered[letter.reason] = (
                self.stats.dead_lettered.get(letter.reason, 0) + 1
            )
            rec = letter.record
            self._dead_letter_log.parked(
                letter.reason, rec.topic, rec.partition, rec.offset, str(letter.error)
            )
        self._dead_letter_log.tick()

    async def _publish_dead_letters(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        assert self._dlq is not None
        futures = [
            await self._dlq.send(
                self.settings.dead_letter_topic,
                letter.record.value,
                key=letter.record.key,
                headers=letter.headers(self.settings.worker_id),
            )
            for letter in letters
        ]
        try:
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise BatchRetry(exc) from exc

    async def _commit(
        self, records: Sequence[Any], held: dict[tuple[str, int], int] | None = None
    ) -> None:
        consumer = self._consumer
        assert consumer is not None
        ends: dict[tuple[str, int], int] = {}
        for rec in records:  # records of a partition come in offset order
            ends[(rec.topic, rec.partition)] = rec.offset + 1
        ends.update(held or {})  # a held partition: up to its first held event only
        offsets = {TopicPartition(t, p): end for (t, p), end in ends.items()}
        owned = consumer.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in owned}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError, ConsumerStoppedError) as exc:
            # Lost the partitions meanwhile: the new owner rewrites idempotently.
            self.stats.commit_failures += 1
            log.warning("offset commit failed (%r); redelivery will be absorbed", exc)
            return
        self.stats.commits += 1
        for tp, offset in offsets.items():
            self.stats.committed[(tp.topic, tp.partition)] = offset

    # -- holding (on_route_missing=hold, a store to migrate) ---------------------------

    def _hold(self, records: Sequence[Any], outcome: BatchOutcome) -> None:
        """Rewind and pause only the partitions holding an unrouted event (or one whose
        store must be migrated first), from it on."""
        last = {(rec.topic, rec.partition): rec.offset for rec in records}
        for tp, offset in outcome.held.items():
            self._held[tp] = (offset, last[tp])
        marks = [_Mark(topic, part, offset) for (topic, part), offset in outcome.held.items()]
        cause = outcome.held_cause or RuntimeError("route missing (hold)")
        reason = (
            "store_layout_outdated" if isinstance(cause, StoreLayoutOutdated) else "route_missing"
        )
        self.stats.held[reason] = self.stats.held.get(reason, 0) + 1
        if reason == "store_layout_outdated":
            # The operator's action, in one line: the message names `spine migrate`.
            held = ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(outcome.held.items()))
            log.error("holding %s (nothing dead-lettered): %s", held, cause)
        self._rewind_and_pause(marks, cause, None)

    def forget_held(self) -> None:
        """After a revoke: positions restart from the committed offsets, nothing is stale."""
        self._held.clear()

    def _drop_stale(self, records: Sequence[Any], prepared: PreparedBatch) -> Sequence[Any]:
        """Drop the records of held partitions fetched before their rewind."""
        if not self._held:
            return records
        first: dict[tuple[str, int], int] = {}
        for rec in records:
            first.setdefault((rec.topic, rec.partition), rec.offset)
        stale: set[tuple[str, int]] = set()
        for tp, start in first.items():
            if tp not in self._held:
                continue
            if start > self._held[tp][1]:
                stale.add(tp)
            else:
                del self._held[tp]  # read again from the held offset: no longer stale
        if not stale:
            return records
        prepared.drop(stale)
        return [rec for rec in records if (rec.topic, rec.partition) not in stale]

    # -- backing off ----------------------------------------------------------------

    def _rewind_and_pause(
        self, records: Sequence[Any], cause: BaseException, retry_after_s: float | None
    ) -> None:
        consumer = self._consumer
        assert consumer is not None
        self.stats.retries += 1
        self.stats.last_error = repr(cause)
        self._last_cause = cause
        first: dict[TopicPartition, int] = {}
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            first[tp] = min(first.get(tp, rec.offset), rec.offset)
        for tp, offset in list(first.items()):
            # A stale batch of a held partition must not move it past the held event.
            held = self._held.get((tp.topic, tp.partition))
            if held is not None:
                first[tp] = min(offset, held[0])
        owned = consumer.assignment()
        for tp, offset in first.items():
            if tp in owned:
                consumer.seek(tp, offset)
        self._paused |= {tp for tp in first if tp in owned}
        consumer.pause(*[tp for tp in self._paused if tp in owned])
        delay_s = self._backoff.next_delay_s(retry_after_s)
        log.warning("batch rewound, partitions paused for %.2fs: %r", delay_s, cause)
        if self._resume_handle is not None:
            self._resume_handle.cancel()
        self._resume_handle = asyncio.get_running_loop().call_later(delay_s, self._resume)

    def _resume(self) -> None:
        consumer, paused = self._consumer, self._paused
        self._paused = set()
        self._resume_handle = None
        if consumer is not None:
            owned = consumer.assignment()
            consumer.resume(*[tp for tp in paused if tp in owned])

    def repause(self, assigned: Any) -> None:
        """After a rebalance, keep newly assigned partitions paused while backing off."""
        if self._paused and self._consumer is not None:
            self._paused = set(assigned)
            self._consumer.pause(*assigned)
