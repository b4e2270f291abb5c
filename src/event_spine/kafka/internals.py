"""The only code that touches aiokafka's private attributes.

Why: aiokafka 0.14 has no public way to refresh cluster metadata. A consumer that
is not subscribed (manual assignment, no group) only learns about a topic when its
metadata is refreshed, which happens on its own every ``metadata_max_age_ms``
(5 minutes by default), so ``partitions_for_topic`` answers None for a topic
created after ``start()`` until then. ``AIOKafkaConsumer._client`` is the
``AIOKafkaClient`` and ``force_metadata_update()`` is the refresh its own
coordinator uses. The bootstrap servers a client was built with are only kept on
that inner client too (``_bootstrap_servers``): error messages name them.
tests/kafka/test_internals.py fails if any of these changes.
"""

from __future__ import annotations

from typing import Any


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
