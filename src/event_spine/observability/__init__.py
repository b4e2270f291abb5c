"""Observability: Prometheus metrics, consumer lag, health endpoints, logs, tracing."""

from event_spine.observability.http import HealthServer
from event_spine.observability.lag import LagProbe, PartitionLag
from event_spine.observability.logs import configure_logging
from event_spine.observability.metrics import ProducerCollector, SinkMetrics

__all__ = [
    "HealthServer",
    "LagProbe",
    "PartitionLag",
    "ProducerCollector",
    "SinkMetrics",
    "configure_logging",
]
