"""Prometheus metrics. Counters are read from the components' own stats at scrape
time (custom collectors), so the hot paths do no metric bookkeeping of their own."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from event_spine.observability.ages import RecordAges
from event_spine.observability.lag import PartitionLag

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# What the collectors read, as protocols: observability imports no component (the
# producer's ProducerStats and the pipeline's PipelineStats have these fields), so
# the components may import observability without an import cycle.
class ProducerCounters(Protocol):
    """A producer's stats snapshot (``ProducerStats``)."""

    @property
    def emitted(self) -> int: ...
    @property
    def sent(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def spilled(self) -> int: ...
    @property
    def buffered(self) -> int: ...
    @property
    def spill_bytes(self) -> int: ...
    @property
    def connected(self) -> bool: ...


class SinkCounters(Protocol):
    """A sink worker's pipeline counters (``PipelineStats``)."""

    @property
    def batches(self) -> int: ...
    @property
    def records(self) -> int: ...
    @property
    def written(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def commits(self) -> int: ...
    @property
    def commit_failures(self) -> int: ...
    @property
    def dead_lettered(self) -> Mapping[str, int]: ...


class ProducerCollector(Collector):
    """spine_producer_* from a producer's stats snapshot."""

    def __init__(self, stats: Callable[[], ProducerCounters], topic: str) -> None:
        self._stats = stats
        self._topic = topic

    def collect(self) -> Iterator[Metric]:
        """One sample per counter and gauge."""
        s = self._stats()
        for name, value, doc in (
            ("emitted", s.emitted, "Events accepted by emit()."),
            ("sent", s.sent, "Events acked by the broker."),
            ("failed", s.failed, "Send attempts that failed (the events are retried)."),
            ("dropped", s.dropped, "Events dropped by the overflow policy."),
            ("spilled", s.spilled, "Events written to the on-disk spill."),
        ):
            family = CounterMetricFamily(f"spine_producer_events_{name}", doc, labels=["topic"])
            family.add_metric([self._topic], value)
            yield family
        for name, value, doc in (
            ("buffer_depth", s.buffered, "Events accepted and not yet acked."),
            ("spill_bytes", s.spill_bytes, "Bytes waiting in the on-disk spill."),
            ("connected", int(s.connected), "1 while the sender reaches the broker."),
        ):
            gauge = GaugeMetricFamily(f"spine_producer_{name}", doc, labels=["topic"])
            gauge.add_metric([self._topic], value)
            yield gauge


class _SinkCollector(Collector):
    def __init__(self, metrics: SinkMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        s, topic = self._m.stats(), self._m.topic
        for name, value, doc in (
            ("batches", s.batches, "Batches handled."),
            ("records", s.records, "Records consumed."),
            ("events_written", s.written, "Events newly stored."),
            ("duplicates", s.duplicates, "Redelivered events the stores absorbed."),
            ("retries", s.retries, "Batches rewound for a retry (backend or registry down)."),
            ("commits", s.commits, "Offset commits."),
            ("commit_failures", s.commit_failures, "Offset commits refused (rebalance)."),
        ):
            family = CounterMetricFamily(f"spine_sink_{name}", doc, labels=["topic"])
            family.add_metric([topic], value)
            yield family
        dead = CounterMetricFamily(
            "spine_sink_dead_letters",
            "Records dead-lettered, by reason.",
            labels=["topic", "reason"],
        )
        for reason, count in sorted(s.dead_lettered.items()):
            dead.add_metric([topic, reason], count)
        yield dead
        yield from self._route_cache_and_health()
        yield from self._m.record_ages.families(
            "spine_sink_record_age_seconds",
            "Age of each record (now minus its Kafka timestamp) when the worker received "
            "it and when it was durable (written, offsets committed).",
            topic,
        )
        lag = GaugeMetricFamily(
            "spine_sink_consumer_lag",
            "High watermark minus the group's committed offset.",
            labels=["topic", "partition"],
        )
        for item in self._m.lag():
            lag.add_metric([topic, str(item.partition)], item.lag)
        yield lag

    def _route_cache_and_health(self) -> Iterator[Metric]:
        hits, misses = self._m.route_cache()
        for name, value in (("hits", hits), ("misses", misses)):
            family = CounterMetricFamily(f"spine_sink_route_cache_{name}", f"Route cache {name}.")
            family.add_metric([], value)
            yield family
        ready = GaugeMetricFamily("spine_sink_ready", "1 while the worker is ready.")
        ready.add_metric([], int(self._m.ready()))
        yield ready


class SinkMetrics:
    """A sink worker's metrics in their own registry (no global state)."""

    def __init__(
        self,
        topic: str,
        stats: Callable[[], SinkCounters],
        route_cache: Callable[[], tuple[int, int]],
        ready: Callable[[], bool],
    ) -> None:
        self.topic = topic
        self.stats = stats
        self.route_cache = route_cache
        self.ready = ready
        self._lag: list[PartitionLag] = []
        #: Counted by the worker (received) and the publisher (durable), per batch.
        self.record_ages = RecordAges()
        self.registry = CollectorRegistry()
        self.batch_size = Histogram(
            "spine_sink_batch_size",
            "Records per consumed batch.",
            ["topic"],
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "spine_sink_write_seconds",
            "Duration of one store write (append_batch).",
            ["backend"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.registry.register(_SinkCollector(self))

    def lag(self) -> list[PartitionLag]:
        """The last measured lag (refreshed before each scrape)."""
        return self._lag

    def set_lag(self, lag: list[PartitionLag]) -> None:
        """Store a fresh measurement."""
        self._lag = lag

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
