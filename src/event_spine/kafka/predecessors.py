"""Remove a dead predecessor from a consumer group before joining it (crash recovery).

A worker killed with SIGKILL (or OOM, or a lost node) sends no LeaveGroup: the group
keeps it as a member, with its partitions, until its session times out. A replacement
that knows it replaces that worker (a stable instance name: a StatefulSet pod name,
a slot) can remove it at once, as ``kafka-consumer-groups --delete ... --member`` /
``AdminClient.removeMembersFromConsumerGroup`` do, so the group rebalances now
instead of one session timeout later.

How a predecessor is recognised: the worker's consumer uses the instance name as its
Kafka client id, and brokers build a dynamic member id as ``<client id>-<UUID>``
(Apache Kafka's GroupCoordinator and Tansu 0.6.0's group coordinator both do;
Tansu's DescribeGroups reports an empty client id, so the member id is what is
matched). The removal is a LeaveGroup naming the member id (v0/v1, the versions
aiokafka 0.14 speaks): Tansu 0.6.0 and Apache Kafka both remove the named member and
start a rebalance (Tansu: ``administrator.rs``, ``Inner<Formed>::leave``).

Two live workers must never share an instance name: each would remove the other.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass

from aiokafka.errors import for_code
from aiokafka.protocol.group import LeaveGroupRequest

from event_spine.kafka.clients import make_admin
from event_spine.kafka.internals import send_to_node
from event_spine.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class Removal:
    """What one start removed: the member ids, and the ones the broker no longer knew."""

    removed: tuple[str, ...]
    unknown: tuple[str, ...]


def is_member_of(instance_name: str, member_id: str, client_id: str = "") -> bool:
    """True when a group member was created by a consumer named ``instance_name``."""
    if client_id:
        return client_id == instance_name
    prefix = f"{instance_name}-"
    return member_id.startswith(prefix) and bool(_UUID.fullmatch(member_id[len(prefix) :]))


async def group_member_ids(admin: object, group_id: str) -> list[tuple[str, str]]:
    """(member id, client id) of every member of ``group_id`` the coordinator reports."""
    (response,) = await admin.describe_consumer_groups([group_id])  # type: ignore[attr-defined]
    members: list[tuple[str, str]] = []
    for group in response.groups:
        error_code, members_of_group = group[0], group[5]
        if error_code:
            raise for_code(error_code)(f"describing consumer group {group_id!r}")
        members.extend((str(m[0]), str(m[1])) for m in members_of_group)
    return members


async def remove_predecessors(
    settings: KafkaSettings, group_id: str, instance_name: str
) -> Removal:
    """Remove from ``group_id`` every member a consumer named ``instance_name`` left.

    Call it before this worker's own consumer joins (its own member would match too).
    """
    admin = make_admin(settings, client_id=f"{instance_name}-recover-{uuid.uuid4().hex[:8]}")
    await admin.start()
    try:
        members = await group_member_ids(admin, group_id)
        stale = [m for m, c in members if is_member_of(instance_name, m, c)]
        if not stale:
            return Removal((), ())
        node_id = await admin.find_coordinator(group_id)
        removed: list[str] = []
        unknown: list[str] = []
        for member_id in stale:
            response = await send_to_node(admin, node_id, LeaveGroupRequest(group_id, member_id))
            (removed if response.error_code == 0 else unknown).append(member_id)
    finally:
        await admin.close()
    if removed:
        log.warning(
            "removed %d member(s) of a dead predecessor named %r from group %r: %s "
            "(its partitions are reassigned now, not after its session timeout)",
            len(removed),
            instance_name,
            group_id,
            ", ".join(removed),
        )
    return Removal(tuple(removed), tuple(unknown))
