"""The Kafka seam: one settings object, the one place that builds clients.

Everything event-spine does with Kafka goes through here: ``KafkaSettings``
(``SPINE_KAFKA_*``) and the client builders in ``clients``.
"""

from event_spine.kafka.clients import (
    aiokafka_kwargs,
    aiokafka_security_kwargs,
    confluent_config,
    confluent_module,
    faststream_security,
    make_admin,
    make_broker,
    make_confluent_producer,
    make_consumer,
    make_producer,
    ssl_context,
)
from event_spine.kafka.settings import KafkaSettings, KafkaTarget, as_kafka, load_kafka_settings

__all__ = [
    "KafkaSettings",
    "KafkaTarget",
    "aiokafka_kwargs",
    "aiokafka_security_kwargs",
    "as_kafka",
    "confluent_config",
    "confluent_module",
    "faststream_security",
    "load_kafka_settings",
    "make_admin",
    "make_broker",
    "make_confluent_producer",
    "make_consumer",
    "make_producer",
    "ssl_context",
]
