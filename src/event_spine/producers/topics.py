"""Create topics with an explicit partition count (brokers auto-create with their own)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from event_spine.errors import ConfigurationError


async def ensure_topic(
    bootstrap_servers: str,
    topic: str,
    partitions: int,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> int:
    """Create ``topic`` if missing; returns its partition count.

    An existing topic with another partition count raises: the count is fixed for a
    topic's life (changing it moves streams between partitions and breaks order).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await _ensure_once(bootstrap_servers, topic, partitions, replication_factor)
        except (KafkaError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise ConfigurationError(
                    f"Could not create topic {topic!r} on {bootstrap_servers}: {exc!r}"
                ) from exc
            await asyncio.sleep(0.2)


async def _ensure_once(bootstrap: str, topic: str, partitions: int, replication: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    actual = await partition_count(bootstrap, topic)
    if actual != partitions:
        raise ConfigurationError(
            f"Topic {topic!r} has {actual} partitions, configured {partitions}. A topic's "
            f"partition count is fixed for its life: use a new topic and replay into it."
        )
    return actual


async def partition_count(bootstrap_servers: str, topic: str) -> int:
    """How many partitions ``topic`` has (0 if the broker does not know it)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        await consumer.stop()
