"""The only code that touches aiokafka's private attributes.

Why: aiokafka 0.14 has no public way to refresh cluster metadata. A consumer that
is not subscribed (manual assignment, no group) only learns about a topic when its
metadata is refreshed, which happens on its own every ``metadata_max_age_ms``
(5 minutes by default), so ``partitions_for_topic`` answers None for a topic
created after ``start()`` until then. ``AIOKafkaConsumer._client`` is the
``AIOKafkaClient`` and ``force_metadata_update()`` is the refresh its own
coordinator uses. The bootstrap servers a client was built with are only kept on
that inner client too (``_bootstrap_servers``): error messages name them. Crash
recovery (``takeover``) continues a dead member's group membership, which aiokafka has
no API for: ``continue_membership`` sets the group coordinator's ``member_id`` and
``generation`` and, for one join, replaces its ``_do_rejoin_group`` with a SyncGroup
through aiokafka's own ``CoordinatorGroupRebalance._on_join_follower`` and
``_on_join_complete``. tests/kafka/test_internals.py fails if any of these changes.
"""

from __future__ import annotations

from typing import Any

from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance


async def refresh_metadata(client: Any) -> None:
    """Refresh the cluster metadata of a started aiokafka consumer (or producer).

    Raises aiokafka's errors (KafkaConnectionError...) when no broker answers.
    """
    await _inner(client).force_metadata_update()


def bootstrap_servers_of(client: Any) -> str:
    """The bootstrap servers an aiokafka client was built with, for messages."""
    servers = _inner(client)._bootstrap_servers
    return servers if isinstance(servers, str) else ",".join(servers)


def _inner(client: Any) -> Any:
    """The AIOKafkaClient of a consumer or admin (``_client``) or producer (``client``)."""
    return client._client if hasattr(client, "_client") else client.client


async def send_to_node(admin: Any, node_id: int, request: Any) -> Any:
    """Send one protocol request (a class from ``aiokafka.protocol``) through a started
    admin client to broker ``node_id``; aiokafka's admin has no public call for
    requests it does not wrap (LeaveGroup naming another member)."""
    return await admin._send_request_to_node(node_id, request)


def continue_membership(consumer: Any, member_id: str, generation: int | None) -> None:
    """Make the next join of a started, subscribed consumer continue ``member_id``.

    Call it from the rebalance listener's ``on_partitions_revoked`` of the first join
    (aiokafka calls it right before joining). With a ``generation`` the join is a
    SyncGroup only, as that member at that generation; when the broker refuses it
    (another generation by now, the member gone), aiokafka joins again normally (a
    JoinGroup naming the member, or a new member when the broker did not know it).
    Without a generation the JoinGroup names the member.
    """
    coordinator = consumer._coordinator
    coordinator.member_id = member_id
    if generation is None:
        return

    async def sync_only(subscription: Any) -> bool:
        del coordinator._do_rejoin_group  # one join only: later ones are aiokafka's own
        coordinator.generation = generation
        rebalance = CoordinatorGroupRebalance(
            coordinator,
            coordinator.group_id,
            coordinator.coordinator_id,
            subscription,
            coordinator._assignors,
            coordinator._session_timeout_ms,
            coordinator._retry_backoff_ms,
        )
        assignment = await rebalance._on_join_follower()
        if assignment is None or not subscription.active:
            return False  # aiokafka's error handling ran; the loop joins again
        protocol = coordinator._assignors[0].name
        await coordinator._on_join_complete(generation, member_id, protocol, assignment)
        return True

    coordinator._do_rejoin_group = sync_only
