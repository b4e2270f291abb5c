"""The aiokafka internals event_spine.kafka.internals relies on still exist and work.

If aiokafka renames ``_client``, ``force_metadata_update`` or ``_bootstrap_servers``
these fail first, naming what changed (then fix kafka/internals.py only)."""

from __future__ import annotations

import inspect

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient

from event_spine.broker.tansu import TansuBroker
from event_spine.kafka import KafkaSettings, make_admin, make_consumer, make_producer
from event_spine.kafka.internals import bootstrap_servers_of, refresh_metadata
from event_spine.producers.topics import ensure_topic
from support.pipeline import unique


async def test_the_private_attributes_are_where_internals_expects_them() -> None:
    settings = KafkaSettings(bootstrap_servers="h1:9092,h2:9092")
    consumer = make_consumer(settings)
    producer = make_producer(settings)
    admin = make_admin(settings)
    for client in (consumer._client, producer.client, admin._client):
        assert isinstance(client, AIOKafkaClient)
        assert not inspect.iscoroutinefunction(client.force_metadata_update)  # returns a future
        assert client._bootstrap_servers == "h1:9092,h2:9092"
    for built in (consumer, producer, admin):
        assert bootstrap_servers_of(built) == "h1:9092,h2:9092"
    assert isinstance(consumer, AIOKafkaConsumer)
    assert isinstance(producer, AIOKafkaProducer)
    await producer.stop()
    await consumer.stop()
    await admin.close()


async def test_refresh_makes_a_new_topic_known(broker: TansuBroker) -> None:
    """Why the refresh exists: a consumer started before a topic was created does not
    know it until its metadata is refreshed (every 5 minutes on its own)."""
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    consumer = make_consumer(settings, enable_auto_commit=False)
    await consumer.start()
    try:
        topic = unique("internals")
        await ensure_topic(settings, topic, 3)
        assert consumer.partitions_for_topic(topic) is None
        await refresh_metadata(consumer)
        assert consumer.partitions_for_topic(topic) == {0, 1, 2}
    finally:
        await consumer.stop()
