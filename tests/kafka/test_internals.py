"""The aiokafka internals event_spine.kafka.internals relies on still exist and work.

If aiokafka renames ``_client``, ``force_metadata_update``, ``_bootstrap_servers`` or
the group coordinator parts ``continue_membership`` uses, these fail first, naming what
changed (then fix kafka/internals.py only)."""

from __future__ import annotations

import inspect

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance, GroupCoordinator

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


def test_the_group_coordinator_parts_continue_membership_uses_exist() -> None:
    """kafka.internals.continue_membership: a consumer's ``_coordinator`` has
    ``member_id``, ``generation``, ``group_id``, ``coordinator_id``, ``_assignors``,
    ``_session_timeout_ms``, ``_retry_backoff_ms``, ``_do_rejoin_group`` and
    ``_on_join_complete``; ``CoordinatorGroupRebalance`` takes them and has
    ``_on_join_follower`` (a SyncGroup with no assignments)."""
    coordinator_init = inspect.signature(GroupCoordinator.__init__).parameters
    assert {"client", "subscription", "group_id", "assignors"} <= set(coordinator_init)
    for name in ("_do_rejoin_group", "_on_join_complete", "ensure_active_group"):
        assert inspect.iscoroutinefunction(getattr(GroupCoordinator, name)), name
    source = inspect.getsource(GroupCoordinator.__init__)
    for attribute in ("self.member_id", "self.generation", "self.group_id", "self.coordinator_id"):
        assert attribute in source, attribute
    for attribute in ("self._assignors", "self._session_timeout_ms", "self._retry_backoff_ms"):
        assert attribute in source, attribute
    rebalance_init = list(inspect.signature(CoordinatorGroupRebalance.__init__).parameters)
    assert rebalance_init == [
        "self",
        "coordinator",
        "group_id",
        "coordinator_id",
        "subscription",
        "assignors",
        "session_timeout_ms",
        "retry_backoff_ms",
    ]
    assert inspect.iscoroutinefunction(CoordinatorGroupRebalance._on_join_follower)
    # The first join calls the rebalance listener's revoke callback before rejoining:
    # that is where continue_membership is called.
    ensure = inspect.getsource(GroupCoordinator.ensure_active_group)
    assert ensure.index("_on_join_prepare") < ensure.index("_do_rejoin_group")
