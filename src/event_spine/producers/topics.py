"""Create topics with an explicit partition count (brokers auto-create with their own)."""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from event_spine.errors import ConfigurationError
from event_spine.kafka.clients import make_admin, make_consumer
from event_spine.kafka.internals import refresh_metadata
from event_spine.kafka.settings import KafkaSettings, KafkaTarget, as_kafka


async def ensure_topic(
    kafka: KafkaTarget,
    topic: str,
    partitions: int,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> int:
    """Create ``topic`` if missing; returns its partition count.

    An existing topic with another partition count raises: the count is fixed for a
    topic's life (changing it moves streams between partitions and breaks order).
    """
    settings = as_kafka(kafka)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await _ensure_once(settings, topic, partitions, replication_factor)
        except (KafkaError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise ConfigurationError(
                    f"Could not create topic {topic!r} on {settings.bootstrap_servers}: {exc!r}"
                ) from exc
            await asyncio.sleep(0.2)


async def _ensure_once(
    settings: KafkaSettings, topic: str, partitions: int, replication: int
) -> int:
    admin = make_admin(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    actual = await partition_count(settings, topic)
    if actual != partitions:
        raise ConfigurationError(
            f"Topic {topic!r} has {actual} partitions, configured {partitions}. A topic's "
            f"partition count is fixed for its life: use a new topic and replay into it."
        )
    return actual


async def partition_count(kafka: KafkaTarget, topic: str) -> int:
    """How many partitions ``topic`` has (0 if the broker does not know it)."""
    consumer = make_consumer(as_kafka(kafka))
    await consumer.start()
    try:
        await refresh_metadata(consumer)
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        await consumer.stop()
