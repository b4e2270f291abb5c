"""Crash recovery by instance name: continue a killed predecessor's group membership.

A worker killed with SIGKILL (or OOM, or a lost node) sends no LeaveGroup: the group
keeps it as a member, with its partitions, until its session times out. A replacement
that knows it replaces that worker (``instance_id``: a StatefulSet pod name, a slot)
finds the member its predecessor left (by the member id ``<instance name>-<UUID>``
the broker made from the predecessor's client id, see ``predecessors``) and continues
as that member instead of joining as a new one:

1. **Sync only** (the fast path). When the group is Stable, the replacement confirms
   the member's generation with Heartbeat requests naming it (Tansu answers
   IllegalGeneration above the group's generation and RebalanceInProgress below it,
   so a few probes find it), then its consumer's first join is a SyncGroup as that
   member at that generation: the broker answers with the member's current
   assignment. No JoinGroup, no rebalance: the survivors keep their partitions and
   the replacement reads its predecessor's from their committed offsets.
2. **Rejoin as the member** when the generation cannot be confirmed (Apache Kafka
   answers IllegalGeneration to any other generation; the group is rebalancing): the
   first JoinGroup names the predecessor's member id. Kafka answers a follower's
   rejoin with unchanged metadata with the current generation, without a rebalance;
   Tansu holds every JoinGroup half a session timeout but keeps the group formed.

Either way the dead member is never left behind holding partitions. Further
members with the same name (several predecessors: unusual) are removed with a
LeaveGroup naming them, as ``predecessors.remove_predecessors`` does.

Read in the local broker's group coordinator and measured (docs/operations.md, crash
recovery; the shipped Tansu is commit 50e5666, not the v0.6.0 tag): JoinGroup is held
``session_timeout_ms / 2`` (3 s at the default 6 s) for every member, the survivor's
rejoin too, and a follower's SyncGroup waits for the leader's in 1 s steps; the
sync-only path has none of these (kill -> first write 1.8-3.8 s median instead of
5.5-6.1 s). One case is slow: a dead member that owned no partition (more workers
than partitions) gets an empty assignment, which Tansu holds up to 0.8 session
timeouts before answering RebalanceInProgress; aiokafka then rejoins as that member.

Two live workers must never share an instance name: the second would continue the
first's membership and both would read the same partitions (writes stay idempotent,
but the work is done twice).
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import for_code
from aiokafka.protocol.group import HeartbeatRequest, LeaveGroupRequest

from event_spine.kafka.clients import make_admin
from event_spine.kafka.internals import continue_membership, send_to_node
from event_spine.kafka.predecessors import is_member_of, remove_predecessors
from event_spine.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

#: Kafka protocol error codes the generation probe reads.
_NONE, _ILLEGAL_GENERATION, _REBALANCE_IN_PROGRESS = 0, 22, 27
#: Probes before giving up: an exponential then a binary search over 31-bit generations.
_MAX_PROBES = 64
_MAX_GENERATION = 2**31 - 1  # an int32 on the wire


@dataclass(frozen=True)
class Takeover:
    """What a starting worker continues from its dead predecessor.

    ``member_id``: the predecessor's member id the consumer joins as (None: join as a
    new member). ``generation``: confirmed, so the first join is a SyncGroup only.
    ``removed``: further predecessors removed with a LeaveGroup. ``state``: the group
    state when looked up.
    """

    member_id: str | None = None
    generation: int | None = None
    removed: tuple[str, ...] = ()
    state: str = ""

    @property
    def mode(self) -> str:
        """``sync`` (sync only), ``rejoin`` (JoinGroup naming the member) or ``join``."""
        if self.member_id is None:
            return "join"
        return "sync" if self.generation is not None else "rejoin"


@dataclass(frozen=True)
class GroupView:
    """A consumer group as DescribeGroups reports it."""

    state: str
    protocol: str
    members: tuple[tuple[str, str], ...]  # (member id, client id)


async def describe_group(admin: Any, group_id: str) -> GroupView:
    """The state, protocol and members of ``group_id``."""
    (response,) = await admin.describe_consumer_groups([group_id])
    for group in response.groups:
        error_code, state, protocol, members = group[0], group[2], group[4], group[5]
        if error_code:
            raise for_code(error_code)(f"describing consumer group {group_id!r}")
        return GroupView(str(state), str(protocol), tuple((str(m[0]), str(m[1])) for m in members))
    return GroupView("Dead", "", ())


async def find_generation(
    heartbeat: Callable[[int], Awaitable[int]], max_probes: int = _MAX_PROBES
) -> int | None:
    """The generation at which ``heartbeat(generation) -> error code`` answers 0.

    Tansu answers IllegalGeneration above the group's generation and
    RebalanceInProgress below it: probe 0, 1, 2, 4, ... until one is too high, then
    bisect. Any other answer (UnknownMemberId: the member is gone; Kafka's
    IllegalGeneration at every other generation) ends the search with None.
    """
    low, high = 0, None  # the generation is in [low, high]
    probe = 0
    for _ in range(max_probes):
        code = await heartbeat(probe)
        if code == _NONE:
            return probe
        if code == _REBALANCE_IN_PROGRESS:
            low = probe + 1
        elif code == _ILLEGAL_GENERATION:
            high = probe - 1
        else:
            return None
        if high is not None and low > high:
            return None
        probe = min(max(1, probe * 2), _MAX_GENERATION) if high is None else (low + high) // 2
    return None


async def plan_takeover(
    settings: KafkaSettings, group_id: str, instance_name: str, *, remove: bool = False
) -> Takeover:
    """Look up the members a consumer named ``instance_name`` left in ``group_id`` and
    decide how to continue the first; remove the others. Call it before this worker's
    own consumer joins. ``remove``: continue none, remove them all (a LeaveGroup each:
    the group rebalances at once)."""
    if remove:
        removal = await remove_predecessors(settings, group_id, instance_name)
        return Takeover(removed=removal.removed)
    admin = make_admin(settings, client_id=f"{instance_name}-recover-{uuid.uuid4().hex[:8]}")
    await admin.start()
    try:
        group = await describe_group(admin, group_id)
        stale = [m for m, c in group.members if is_member_of(instance_name, m, c)]
        if not stale:
            return Takeover(state=group.state)
        node_id = await admin.find_coordinator(group_id)
        member_id, others = stale[0], stale[1:]
        removed: list[str] = []
        for other in others:
            response = await send_to_node(admin, node_id, LeaveGroupRequest(group_id, other))
            if response.error_code == 0:
                removed.append(other)
        generation = None
        if group.state == "Stable":

            async def heartbeat(probe: int) -> int:
                request = HeartbeatRequest(group_id, probe, member_id)
                return int((await send_to_node(admin, node_id, request)).error_code)

            generation = await find_generation(heartbeat)
    finally:
        await admin.close()
    takeover = Takeover(member_id, generation, tuple(removed), group.state)
    log.warning(
        "continuing the group membership %s of a dead predecessor named %r in group %r "
        "(%s%s): its partitions are read again from their committed offsets%s",
        member_id,
        instance_name,
        group_id,
        "sync only, no rebalance" if generation is not None else "rejoining as that member",
        f", generation {generation}" if generation is not None else f", group {group.state}",
        f"; removed {', '.join(removed)}" if removed else "",
    )
    return takeover


class TakeoverListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Wraps a worker's rebalance listener: just before the consumer's first join
    (aiokafka calls ``on_partitions_revoked`` first, with nothing to revoke), make that
    join continue the predecessor's membership."""

    def __init__(
        self, inner: ConsumerRebalanceListener, consumer: Callable[[], Any], takeover: Takeover
    ) -> None:
        self.inner = inner
        self.consumer = consumer
        self.takeover: Takeover | None = takeover if takeover.member_id is not None else None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Before the first join: set it up; then the worker's own callback."""
        takeover, self.takeover = self.takeover, None
        consumer = self.consumer()
        if takeover is not None and takeover.member_id is not None and consumer is not None:
            continue_membership(consumer, takeover.member_id, takeover.generation)
        await _maybe_await(self.inner.on_partitions_revoked(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        """The worker's own callback."""
        await _maybe_await(self.inner.on_partitions_assigned(assigned))


async def _maybe_await(result: Any) -> None:
    if inspect.isawaitable(result):
        await result
