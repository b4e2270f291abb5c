"""Producers: the fire-and-forget emit path into Kafka."""

from event_spine.kafka.keys import kafka_key
from event_spine.producers.emit import emit_event, get_default_producer, set_default_producer
from event_spine.producers.producer import (
    CloseReport,
    EventSpineProducer,
    ProducerStats,
)
from event_spine.producers.settings import OverflowPolicy, ProducerSettings
from event_spine.producers.topics import ensure_topic, partition_count

__all__ = [
    "CloseReport",
    "EventSpineProducer",
    "OverflowPolicy",
    "ProducerSettings",
    "ProducerStats",
    "emit_event",
    "ensure_topic",
    "get_default_producer",
    "kafka_key",
    "partition_count",
    "set_default_producer",
]
